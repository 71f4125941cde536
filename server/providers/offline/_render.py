"""Writing a planned project: the README and each language's files, the same bytes every time."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from html import escape

from server.files import FileContent, guess_mime_type
from server.providers.offline._plan import (
    LABELS,
    ProjectPlan,
    camel_case,
    dashed_slug,
    pascal_case,
    snake_case,
)
from server.providers.offline._png import prompt_picture
from server.providers.offline._text import one_line


def render_project(plan: ProjectPlan, attachments: Sequence[FileContent] = ()) -> list[FileContent]:
    """Writes the planned files, in the planned order."""
    texts = {"README.md": _readme(plan, attachments), **_RENDERERS[plan.language](plan)}
    planned = [path for path, _ in plan.files]
    files: list[FileContent] = []
    # Anything planned but not rendered, or rendered but not planned, is left for Check to report.
    for path in [*planned, *(path for path in texts if path not in planned)]:
        if path == plan.picture:
            data = prompt_picture(plan.prompt)
        elif path in texts:
            data = texts[path].encode("utf-8")
        else:
            continue
        files.append(FileContent(path=path, mime_type=guess_mime_type(path, data), data=data))
    return files


def _literal(text: str) -> str:
    # JSON escapes of control-free text are only \" and \\, valid in every language we write.
    return json.dumps(text, ensure_ascii=False)


def _readme(plan: ProjectPlan, attachments: Sequence[FileContent]) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in plan.prompt.split("\n"))
    if plan.language == "image":
        intro = (
            "Generated offline by Atelier: a picture drawn from the prompt's words, so the same prompt "
            "always draws the same picture."
        )
    else:
        intro = (
            f"Generated offline by Atelier from the prompt above: a small {LABELS[plan.language]} project."
        )
    listing = "\n".join(f"- `{path}`: {about}" for path, about in plan.files if path != "README.md")
    sections = [f"# {plan.title}", quoted, intro, f"## Files\n\n{listing}"]
    if plan.language in _USAGE:
        sections.append(f"## Usage\n\n```sh\n{_USAGE[plan.language](plan)}\n```")
    if attachments:
        names = [one_line(item.path).replace("`", "'") for item in attachments]
        listed = "\n".join(
            f"- `{name}` ({item.mime_type}, {len(item.data)} bytes)"
            for name, item in zip(names, attachments, strict=True)
        )
        sections.append(f"## Attachments\n\nThe prompt came with:\n\n{listed}")
    return "\n\n".join(sections) + "\n"


_USAGE: dict[str, Callable[[ProjectPlan], str]] = {
    "python": lambda plan: f"pip install -e .\n{dashed_slug(plan)} 42\npytest",
    "javascript": lambda plan: "node src/index.js 42\nnpm test",
    "typescript": lambda plan: "npm install\nnpm run build && node dist/index.js 42\nnpm test",
    "go": lambda plan: "go run . 42\ngo test ./...",
    "rust": lambda plan: "cargo run -- 42\ncargo test",
    "web": lambda plan: "python3 -m http.server  # then open http://localhost:8000",
}


def _python(plan: ProjectPlan) -> dict[str, str]:
    function = snake_case(plan)
    dashed = dashed_slug(plan)
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{dashed}"\nversion = "0.1.0"\ndescription = {_literal(plan.headline)}\n'
            'readme = "README.md"\nrequires-python = ">=3.11"\n\n'
            f'[project.scripts]\n{dashed} = "{plan.slug}.main:main"\n\n'
            '[tool.pytest.ini_options]\npythonpath = ["src"]\n'
        ),
        f"src/{plan.slug}/__init__.py": (
            f'"""{plan.title}, generated offline by Atelier."""\n\n'
            f"from {plan.slug}.main import {function}\n\n"
            f'__all__ = ["{function}"]\n'
        ),
        f"src/{plan.slug}/main.py": (
            f'"""{plan.title}: {plan.phrase}.\n\n'
            'Generated offline by Atelier from the prompt in PROMPT.\n"""\n\n'
            "from __future__ import annotations\n\nimport sys\n\n"
            f"PROMPT = {_literal(plan.headline)}\n\n\n"
            f"def {function}(text: str) -> str:\n"
            f'    """{plan.phrase.capitalize()}: the heart of {plan.title}."""\n'
            f'    return f"{plan.phrase}: {{text}}"\n\n\n'
            "def main(argv: list[str] | None = None) -> int:\n"
            "    args = sys.argv[1:] if argv is None else argv\n"
            f'    print({function}(" ".join(args)))\n'
            "    return 0\n\n\n"
            'if __name__ == "__main__":\n    raise SystemExit(main())\n'
        ),
        "tests/test_main.py": (
            "import pytest\n\n"
            f"from {plan.slug}.main import {function}, main\n\n\n"
            f"def test_{function}_mentions_its_input() -> None:\n"
            f'    assert "42" in {function}("42")\n\n\n'
            "def test_main_prints_the_result(capsys: pytest.CaptureFixture[str]) -> None:\n"
            '    assert main(["42"]) == 0\n'
            '    assert "42" in capsys.readouterr().out\n'
        ),
    }


def _package_json(plan: ProjectPlan, extra: dict[str, object]) -> str:
    document = {
        "name": dashed_slug(plan),
        "version": "0.1.0",
        "description": plan.headline,
        "type": "module",
        **extra,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _entry_point(plan: ProjectPlan, typed: bool) -> str:
    function = camel_case(plan.function_words)
    parameter = "text: string): string" if typed else "text)"
    return (
        f"// {plan.title}: {plan.phrase}. Generated offline by Atelier.\n"
        'import { fileURLToPath } from "node:url";\n\n'
        f"export const PROMPT = {_literal(plan.headline)};\n\n"
        f"export function {function}({parameter} {{\n"
        f"  return `{plan.phrase}: ${{text}}`;\n}}\n\n"
        "if (process.argv[1] === fileURLToPath(import.meta.url)) {\n"
        f'  console.log({function}(process.argv.slice(2).join(" ")));\n}}\n'
    )


def _node_test(plan: ProjectPlan, module: str) -> str:
    function = camel_case(plan.function_words)
    return (
        'import { test } from "node:test";\nimport assert from "node:assert/strict";\n'
        f'import {{ {function} }} from "{module}";\n\n'
        f'test("{function} mentions its input", () => {{\n'
        f'  assert.match({function}("42"), /42/);\n}});\n'
    )


def _javascript(plan: ProjectPlan) -> dict[str, str]:
    scripts = {"start": "node src/index.js", "test": "node --test"}
    return {
        "package.json": _package_json(plan, {"main": "src/index.js", "scripts": scripts}),
        "src/index.js": _entry_point(plan, typed=False),
        "test/index.test.js": _node_test(plan, "../src/index.js"),
    }


def _typescript(plan: ProjectPlan) -> dict[str, str]:
    scripts = {"build": "tsc", "start": "node dist/index.js", "test": "tsc && node --test dist/*.test.js"}
    tools = {"@types/node": "^22.0.0", "typescript": "^5.6.0"}
    options = {
        "target": "ES2022",
        "module": "NodeNext",
        "moduleResolution": "NodeNext",
        "rootDir": "src",
        "outDir": "dist",
        "strict": True,
        "declaration": True,
    }
    return {
        "package.json": _package_json(
            plan, {"main": "dist/index.js", "scripts": scripts, "devDependencies": tools}
        ),
        "tsconfig.json": json.dumps({"compilerOptions": options, "include": ["src"]}, indent=2) + "\n",
        "src/index.ts": _entry_point(plan, typed=True),
        "src/index.test.ts": _node_test(plan, "./index.js"),
    }


def _go(plan: ProjectPlan) -> dict[str, str]:
    function = pascal_case(plan.function_words)
    return {
        "go.mod": f"module example.com/{dashed_slug(plan)}\n\ngo 1.22\n",
        "main.go": (
            f"// Command {dashed_slug(plan)}: {plan.phrase}. Generated offline by Atelier.\n"
            'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"strings"\n)\n\n'
            f'func main() {{\n\tfmt.Println({function}(strings.Join(os.Args[1:], " ")))\n}}\n'
        ),
        f"{plan.action}.go": (
            "package main\n\n"
            "// Prompt is the request this program was generated from.\n"
            f"const Prompt = {_literal(plan.headline)}\n\n"
            f"// {function} is the heart of {plan.title}: {plan.phrase}.\n"
            f'func {function}(text string) string {{\n\treturn "{plan.phrase}: " + text\n}}\n'
        ),
        f"{plan.action}_test.go": (
            'package main\n\nimport (\n\t"strings"\n\t"testing"\n)\n\n'
            f"func Test{function}(t *testing.T) {{\n"
            f'\tif got := {function}("42"); !strings.Contains(got, "42") {{\n'
            f'\t\tt.Fatalf("{function}(42) = %q, want it to mention 42", got)\n\t}}\n}}\n'
        ),
    }


def _rust(plan: ProjectPlan) -> dict[str, str]:
    function = snake_case(plan)
    return {
        "Cargo.toml": (
            f'[package]\nname = "{dashed_slug(plan)}"\nversion = "0.1.0"\nedition = "2021"\n'
            f"description = {_literal(plan.headline)}\n\n[dependencies]\n"
        ),
        "src/lib.rs": (
            f"//! {plan.title}: {plan.phrase}. Generated offline by Atelier.\n\n"
            "/// The request this crate was generated from.\n"
            f"pub const PROMPT: &str = {_literal(plan.headline)};\n\n"
            f"/// {plan.phrase.capitalize()}: the heart of {plan.title}.\n"
            f'pub fn {function}(text: &str) -> String {{\n    format!("{plan.phrase}: {{text}}")\n}}\n\n'
            "#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n"
            f'    fn mentions_its_input() {{\n        assert!({function}("42").contains("42"));\n    }}\n}}\n'
        ),
        "src/main.rs": (
            "fn main() {\n"
            '    let text = std::env::args().skip(1).collect::<Vec<_>>().join(" ");\n'
            f'    println!("{{}}", {plan.slug}::{function}(&text));\n}}\n'
        ),
    }


def _web(plan: ProjectPlan) -> dict[str, str]:
    function = camel_case(plan.function_words)
    digest = hashlib.sha256(plan.prompt.encode("utf-8")).digest()
    accent = digest[:3].hex()
    # Mixed halfway to white, so text in the accent colour stays readable on it.
    background = bytes((byte + 255) // 2 for byte in digest[3:6]).hex()
    title = escape(plan.title)
    image = f'      <img src="{plan.picture}" alt="{title}" width="64" height="64">\n' if plan.picture else ""
    return {
        "index.html": (
            '<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8">\n'
            '    <meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'    <title>{title}</title>\n    <link rel="stylesheet" href="styles.css">\n  </head>\n'
            f"  <body>\n    <main>\n      <h1>{title}</h1>\n{image}"
            f'      <p class="prompt">{escape(plan.headline)}</p>\n'
            '      <form id="form">\n        <label for="input">Input</label>\n'
            '        <input id="input" name="input" autocomplete="off">\n'
            f'        <button type="submit">{escape(plan.action.capitalize())}</button>\n      </form>\n'
            '      <output id="result" for="input"></output>\n    </main>\n'
            '    <script src="script.js"></script>\n  </body>\n</html>\n'
        ),
        "styles.css": (
            f"/* {plan.title}: colours drawn from the prompt. */\n"
            f":root {{\n  --accent: #{accent};\n  --background: #{background};\n}}\n\n"
            "body {\n  margin: 0;\n  font-family: system-ui, sans-serif;\n"
            "  background: var(--background);\n}\n\n"
            "main {\n  max-width: 40rem;\n  margin: 4rem auto;\n  padding: 2rem;\n  background: white;\n"
            "  border-top: 0.5rem solid var(--accent);\n}\n\n"
            "button {\n  background: var(--accent);\n  color: white;\n  border: 0;\n"
            "  padding: 0.5rem 1rem;\n}\n"
        ),
        "script.js": (
            f"// {plan.title}: {plan.phrase}. Generated offline by Atelier.\n"
            f"function {function}(text) {{\n  return `{plan.phrase}: ${{text}}`;\n}}\n\n"
            'document.getElementById("form").addEventListener("submit", (event) => {\n'
            "  event.preventDefault();\n"
            '  const input = document.getElementById("input");\n'
            f'  document.getElementById("result").textContent = {function}(input.value);\n}});\n'
        ),
    }


_RENDERERS: dict[str, Callable[[ProjectPlan], dict[str, str]]] = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _typescript,
    "go": _go,
    "rust": _rust,
    "web": _web,
    "image": lambda plan: {},
}
