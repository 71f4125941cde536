"""The offline provider: the embedded default. Deterministic, no network, no waiting.

Generation turns a prompt into a small project: the first language the prompt names
(Python, JavaScript, TypeScript, Go, Rust or a static web page; Python when it names
none), named after the prompt's words. A prompt that asks for a picture (image, logo,
icon, ...) also gets a PNG drawn from its words; one that asks only for a picture, and
names no language or kind of software, gets just the picture and a README.

Refinement follows the instructions described in `_instructions`. The same request
always gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

from server.files import guess_mime_type
from server.providers._base import Attachment, ChangeSet, FileUpsert, Progress, ProviderError, ProviderRequest
from server.providers._instructions import (
    Draft,
    Outcome,
    ascii_fold,
    one_line,
    parse_instructions,
)
from server.providers._png import prompt_picture, read_png_header

STAGE_TITLES = ("Plan", "Write", "Check")


class OfflineProvider:
    """Writes plausible files from the prompt alone. `OfflineProvider()` takes no settings."""

    @property
    def name(self) -> str:
        return "offline"

    def stage_titles(self, request: ProviderRequest) -> Sequence[str]:
        return STAGE_TITLES

    async def run(self, request: ProviderRequest, progress: Progress) -> ChangeSet:
        # A refinement is known by its tree: Regenerate of an empty tree generates.
        if request.source_files:
            return await _refine(request, progress)
        return await _generate(request, progress)


@dataclass(frozen=True, slots=True)
class ProjectPlan:
    """What a prompt asks for, as far as words can tell."""

    prompt: str
    # The prompt on one line, short enough for a string constant.
    headline: str
    language: str
    slug: str
    title: str
    action: str
    topic: tuple[str, ...]
    # Where the picture goes, if the prompt asks for one.
    picture: str | None
    # (path, what the file is), in the order they are written.
    files: tuple[tuple[str, str], ...]

    @property
    def function_words(self) -> list[str]:
        return [self.action, *(self.topic or ("input",))]

    @property
    def phrase(self) -> str:
        return " ".join(self.function_words)


def plan_project(prompt: str) -> ProjectPlan:
    """Reads a generation prompt; raises ProviderError if it is empty."""
    text = "\n".join(one_line(line) for line in prompt.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    text = text.strip("\n")
    if not text:
        raise ProviderError("the prompt is empty", reason="OFFLINE_EMPTY_PROMPT", code="INVALID_ARGUMENT")
    lowered = ascii_fold(text.lower())
    picture_word = _IMAGE.search(lowered)
    language = _language(lowered)
    if language is None:
        language = "image" if picture_word and not _SOFTWARE.search(lowered) else "python"
    words = re.findall(r"[a-z0-9]+", lowered)
    action, topic, kind = _understand(words, language)
    picture_name = _picture_name(picture_word[0]) if picture_word else None
    if language == "image":
        kind = picture_name
    parts = [*topic, kind] if kind else list(topic)
    slug = "_".join(parts or [action or "project"])
    if slug[0].isdigit():
        slug = f"project_{slug}"
    if slug in _RESERVED:
        slug = f"{slug}_project"
    headline = one_line(text)
    picture = None
    if picture_name:
        picture = f"{picture_name}.png" if language == "image" else f"assets/{picture_name}.png"
    draft = ProjectPlan(
        prompt=text,
        headline=headline if len(headline) <= 160 else headline[:159] + "\u2026",
        language=language,
        slug=slug,
        title=" ".join(word.upper() if word in _ACRONYMS else word.capitalize() for word in slug.split("_")),
        action=action or "handle",
        topic=tuple(topic),
        picture=picture,
        files=(),
    )
    files = [("README.md", "what this is and how to use it"), *_LAYOUTS[language](draft)]
    if picture:
        files.append((picture, "a 64\u00d764 picture drawn from the prompt's words"))
    return dataclasses.replace(draft, files=tuple(files))


def render_project(plan: ProjectPlan, attachments: Sequence[Attachment] = ()) -> list[FileUpsert]:
    """Writes the planned files, in the planned order."""
    texts = {"README.md": _readme(plan, attachments), **_RENDERERS[plan.language](plan)}
    planned = [path for path, _ in plan.files]
    files: list[FileUpsert] = []
    # Anything planned but not rendered, or rendered but not planned, is left for Check to report.
    for path in [*planned, *(path for path in texts if path not in planned)]:
        if path == plan.picture:
            data = prompt_picture(plan.prompt)
        elif path in texts:
            data = texts[path].encode("utf-8")
        else:
            continue
        files.append(FileUpsert(path=path, mime_type=guess_mime_type(path, data), data=data))
    return files


def file_problems(path: str, data: bytes) -> list[str]:
    """What is wrong with a file of a type we know how to check: syntax, encoding, structure."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix == ".png":
        try:
            read_png_header(data)
        except ValueError as exc:
            return [f"{path} is not a valid PNG: {exc}"]
        return []
    if suffix not in _TEXT_SUFFIXES:
        return []
    try:
        text = data.decode("utf-8")
        if suffix == ".py":
            compile(data, path, "exec", dont_inherit=True)
        elif suffix == ".json":
            json.loads(text)
        elif suffix == ".toml":
            tomllib.loads(text)
        elif suffix in (".html", ".htm"):
            _check_tags(text)
    except (SyntaxError, ValueError) as exc:
        return [f"{path}: {exc}"]
    return []


async def _generate(request: ProviderRequest, progress: Progress) -> ChangeSet:
    async with progress.stage("Plan"):
        plan = plan_project(request.prompt)
        await progress.message(
            f"planned {len(plan.files)} files for {plan.title}, a {_LABELS[plan.language]} project"
        )
    async with progress.stage("Write"):
        files = render_project(plan, request.attachments)
        for file in files:
            await progress.message(f"wrote {file.path} ({len(file.data)} bytes)")
        await progress.output([file.path for file in files])
    async with progress.stage("Check"):
        problems = [problem for file in files for problem in file_problems(file.path, file.data)]
        readme = files[0].data.decode("utf-8")
        problems += [
            f"README.md does not mention {file.path}" for file in files[1:] if f"`{file.path}`" not in readme
        ]
        if [file.path for file in files] != [path for path, _ in plan.files]:
            problems.append("the files written are not the files planned")
        _raise_if_any(problems)
        await progress.message(f"checked {len(files)} files")
    count = len(files)
    return ChangeSet(
        upserts=tuple(files),
        summary=f"wrote {count} file{'s' if count != 1 else ''}",
        notes=(f"language: {plan.language}", f"project: {plan.slug}"),
    )


async def _refine(request: ProviderRequest, progress: Progress) -> ChangeSet:
    async with progress.stage("Plan"):
        if not request.prompt.strip():
            raise ProviderError("the prompt is empty", reason="OFFLINE_EMPTY_PROMPT", code="INVALID_ARGUMENT")
        instructions = parse_instructions(request.prompt, [file.path for file in request.source_files])
        count = len(instructions)
        await progress.message(
            f"planned {count} edit{'s' if count != 1 else ''}: "
            + "; ".join(instruction.summary for instruction in instructions)
        )
    async with progress.stage("Write"):
        draft = Draft(request.source_files)
        notes: list[str] = []
        for instruction in instructions:
            notes.append(draft.apply(instruction))
            await progress.message(notes[-1])
        outcome = draft.outcome()
        produced = sorted([file.path for file in outcome.upserts] + [new for _, new in outcome.renames])
        if produced:
            await progress.output(produced)
    async with progress.stage("Check"):
        notes += _check_outcome(outcome)
        written = len(outcome.upserts)
        await progress.message(f"checked {written} written file{'s' if written != 1 else ''}")
    return ChangeSet(
        upserts=outcome.upserts,
        deletions=outcome.deletions,
        renames=outcome.renames,
        summary=outcome.summary,
        notes=tuple(notes),
    )


def _check_outcome(outcome: Outcome) -> list[str]:
    """Fails on a problem in our own writing; returns warnings for content we were given."""
    problems: list[str] = []
    warnings: list[str] = []
    for file in outcome.upserts:
        found = file_problems(file.path, file.data)
        baseline = outcome.baselines.get(file.path)
        if found and baseline is not None and file_problems(file.path, baseline):
            warnings.append(f"kept as given, though {found[0]}")
        else:
            problems += found
    _raise_if_any(problems)
    return warnings


def _raise_if_any(problems: list[str]) -> None:
    if problems:
        raise ProviderError(
            "the offline provider wrote invalid files: " + "; ".join(problems),
            reason="OFFLINE_CHECK_FAILED",
            code="INTERNAL",
        )


class _TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_ELEMENTS:
            return
        if not self.open or self.open[-1] != tag:
            raise ValueError(f"</{tag}> closes {'<' + self.open[-1] + '>' if self.open else 'nothing'}")
        self.open.pop()


def _check_tags(text: str) -> None:
    parser = _TagBalance()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f"<{parser.open[-1]}> is never closed")


# Reading the prompt. Deliberately plain word lists: predictable beats clever here.


def _word_set(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


_LANGUAGES = (
    ("typescript", r"\btypescript\b|\bts\b|\bdeno\b"),
    ("javascript", r"\bjavascript\b|\bnode(?:\.?js)?\b|\bjs\b|\bnpm\b|\bexpress\b"),
    (
        "go",
        # "go" is also an English verb, so it counts only where a language name would stand.
        r"\bgolang\b|\b(?:a|in|using|with)\s+go\b"
        r"|\bgo\s+(?:\w+\s+)?(?:program|cli|service|module|server|app|application|tool|library|binary|api)\b",
    ),
    ("rust", r"\brust\b|\brustlang\b|\bcargo\b"),
    ("web", r"\bhtml\b|\bcss\b|\bweb\s*pages?\b|\bwebsite\b|\blanding\s+page\b|\bhomepage\b"),
    ("python", r"\bpython\b|\bpy\b|\bdjango\b|\bflask\b|\bfastapi\b"),
)
_IMAGE = re.compile(
    r"\b(?:images?|pictures?|logos?|icons?|png|drawings?|illustrations?|artwork|paintings?|banners?|avatars?)\b"
)
_SOFTWARE = re.compile(
    r"\b(?:cli|apps?|application|tool|utility|script|service|server|api|library|lib|bot|game|program"
    r"|function|class|module|code|backend|frontend|dashboard|website)\b"
)
_STOP = _word_set(
    "a an the that which who whom whose to from for of in on at by with without and or but not no",
    "is are be been it its this these those my our your their me i we you us please some any into",
    "as so can could should would will shall may might must using use used uses written write",
    "writes build builds make makes create creates generate generates implement implements simple",
    "small tiny basic little new want need needs like just also then very all each every them",
    "there what when where how why give gives let lets has have had do does called named about",
    "over under up down out if else than via per one two go get gets quick quickly don doesn didn isn",
    "aren wasn won shouldn couldn wouldn",
)
_LANGUAGE_WORDS = _word_set(
    "python py javascript js node nodejs typescript ts golang rust rustlang cargo html css",
    "deno npm django flask fastapi express",
)
_VERBS = _word_set(
    "convert calculate compute sort parse fetch download upload track search find summarize",
    "summarise validate check translate send show display manage store greet resize merge split",
    "encode decode compress render play schedule monitor scrape crawl analyze analyse filter",
    "transform encrypt decrypt shorten sync predict classify recommend roll flip guess solve draw",
    "plot visualize visualise remind clean extract compare measure estimate simulate answer serve",
    "notify share reverse count list format",
)
# A base-form verb is the action only where English puts one: first, or after one of these.
_VERB_CUES = {"that", "which", "who", "to", "can", "will", "and", "should", "must", "helps", "help", "lets"}
_KINDS = {
    "cli": "cli",
    "app": "app",
    "application": "app",
    "tool": "tool",
    "utility": "tool",
    "script": "script",
    "service": "service",
    "server": "server",
    "api": "api",
    "library": "library",
    "lib": "library",
    "bot": "bot",
    "game": "game",
    "website": "site",
    "site": "site",
    "page": "page",
    "webpage": "page",
    "homepage": "page",
    "dashboard": "dashboard",
    "program": "program",
    "backend": "backend",
}
_PICTURE_WORDS = _word_set(
    "image images picture pictures logo logos icon icons png drawing drawings illustration",
    "illustrations artwork painting paintings banner banners avatar avatars",
)
_VOID_ELEMENTS = _word_set("area base br col embed hr img input link meta source track wbr")
_ACRONYMS = {"cli", "api", "ui", "url", "http", "json", "csv", "pdf", "sql", "html", "css", "ai", "id", "png"}
# Names that would not work as a package, crate or module name in one of the languages.
_RESERVED = _word_set(
    "and as assert async await break case chan class const continue core crate def default defer",
    "del delete elif else enum except false finally fn for from func function global go if impl",
    "import in interface is lambda let loop main map match mod move mut new none nonlocal not or",
    "package pass pub raise ref return select self static std struct super switch test tests",
    "trait true try type typeof unsafe use var void where while with yield",
)


def _language(lowered: str) -> str | None:
    found = [(match.start(), name) for name, pattern in _LANGUAGES if (match := re.search(pattern, lowered))]
    return min(found)[1] if found else None


def _understand(words: list[str], language: str) -> tuple[str | None, list[str], str | None]:
    """The prompt's action (a verb), topic (up to three words) and kind of software.

    When the picture is all the prompt asks for, its word ("logo") names the kind instead.
    """
    picture_is_the_work = language == "image"
    action: str | None = None
    kind: str | None = None
    topic: list[str] = []
    seen_content = False
    for index, word in enumerate(words):
        # One letter is the tail of a contraction ("let's") or an article, never a topic.
        if len(word) < 2 or word in _STOP or word in _LANGUAGE_WORDS or (word == "web" and language == "web"):
            continue
        base = _verb_base(word)
        if base is not None:
            cue = not seen_content or (index > 0 and words[index - 1] in _VERB_CUES)
            if action is None and (base != word or cue):
                action, seen_content = base, True
                continue
            if base != word:
                continue
        seen_content = True
        if word in _KINDS:
            kind = kind or _KINDS[word]
        elif not (picture_is_the_work and word in _PICTURE_WORDS) and word not in topic and len(topic) < 3:
            topic.append(word[:20])
    return action, topic, kind


def _verb_base(word: str) -> str | None:
    candidates = [word, word[:-1], word[:-2], word[:-3] + "y", word[:-3], word[:-3] + "e", word[:-4]]
    endings = ["", "s", "es", "ies", "ing", "ing", "ing"]
    for candidate, ending in zip(candidates, endings, strict=True):
        if word.endswith(ending) and candidate in _VERBS:
            return candidate
    return None


def _picture_name(word: str) -> str:
    singular = word.removesuffix("s")
    return singular if singular in ("logo", "icon", "banner", "avatar") else "image"


# Writing the files. Each language has a layout (what the README lists) and a renderer.


def _camel(words: list[str]) -> str:
    return words[0] + "".join(word.capitalize() for word in words[1:])


def _pascal(words: list[str]) -> str:
    return "".join(word.capitalize() for word in words)


def _snake(plan: ProjectPlan) -> str:
    return "_".join(plan.function_words)


def _dashed(plan: ProjectPlan) -> str:
    return plan.slug.replace("_", "-")


def _literal(text: str) -> str:
    # JSON escapes of control-free text are only \" and \\, valid in every language we write.
    return json.dumps(text, ensure_ascii=False)


def _readme(plan: ProjectPlan, attachments: Sequence[Attachment]) -> str:
    quoted = "\n".join(f"> {line}" if line else ">" for line in plan.prompt.split("\n"))
    if plan.language == "image":
        intro = (
            "Generated offline by Atelier: a picture drawn from the prompt's words, so the same prompt "
            "always draws the same picture."
        )
    else:
        intro = (
            f"Generated offline by Atelier from the prompt above: a small {_LABELS[plan.language]} project."
        )
    listing = "\n".join(f"- `{path}`: {about}" for path, about in plan.files if path != "README.md")
    sections = [f"# {plan.title}", quoted, intro, f"## Files\n\n{listing}"]
    if plan.language in _USAGE:
        sections.append(f"## Usage\n\n```sh\n{_USAGE[plan.language](plan)}\n```")
    if attachments:
        names = [one_line(item.name).replace("`", "'") for item in attachments]
        listed = "\n".join(
            f"- `{name}` ({item.mime_type}, {len(item.data)} bytes)"
            for name, item in zip(names, attachments, strict=True)
        )
        sections.append(f"## Attachments\n\nThe prompt came with:\n\n{listed}")
    return "\n\n".join(sections) + "\n"


_LABELS = {
    "python": "Python",
    "javascript": "JavaScript (Node.js)",
    "typescript": "TypeScript",
    "go": "Go",
    "rust": "Rust",
    "web": "static web page",
    "image": "picture",
}

_USAGE: dict[str, Callable[[ProjectPlan], str]] = {
    "python": lambda plan: f"pip install -e .\n{_dashed(plan)} 42\npytest",
    "javascript": lambda plan: "node src/index.js 42\nnpm test",
    "typescript": lambda plan: "npm install\nnpm run build && node dist/index.js 42\nnpm test",
    "go": lambda plan: "go run . 42\ngo test ./...",
    "rust": lambda plan: "cargo run -- 42\ncargo test",
    "web": lambda plan: "python3 -m http.server  # then open http://localhost:8000",
}

_LAYOUTS: dict[str, Callable[[ProjectPlan], list[tuple[str, str]]]] = {
    "python": lambda plan: [
        ("pyproject.toml", f"package metadata and the `{_dashed(plan)}` command"),
        (f"src/{plan.slug}/__init__.py", "the package's public names"),
        (f"src/{plan.slug}/main.py", f"`{_snake(plan)}()` and the command-line entry point"),
        ("tests/test_main.py", f"tests for `{_snake(plan)}()`"),
    ],
    "javascript": lambda plan: [
        ("package.json", "package metadata and scripts"),
        ("src/index.js", f"`{_camel(plan.function_words)}()` and the command-line entry point"),
        ("test/index.test.js", f"tests for `{_camel(plan.function_words)}()`, run by `node --test`"),
    ],
    "typescript": lambda plan: [
        ("package.json", "package metadata, scripts and the TypeScript compiler"),
        ("tsconfig.json", "compiler settings"),
        ("src/index.ts", f"`{_camel(plan.function_words)}()` and the command-line entry point"),
        ("src/index.test.ts", f"tests for `{_camel(plan.function_words)}()`"),
    ],
    "go": lambda plan: [
        ("go.mod", "the module definition"),
        ("main.go", "the command-line entry point"),
        (f"{plan.action}.go", f"`{_pascal(plan.function_words)}()` and the prompt"),
        (f"{plan.action}_test.go", "its test"),
    ],
    "rust": lambda plan: [
        ("Cargo.toml", "the crate definition"),
        ("src/lib.rs", f"`{_snake(plan)}()` and its tests"),
        ("src/main.rs", "the command-line entry point"),
    ],
    "web": lambda plan: [
        ("index.html", "the page"),
        ("styles.css", "its colours and layout"),
        ("script.js", f"`{_camel(plan.function_words)}()`, run when the form is sent"),
    ],
    "image": lambda plan: [],
}


def _python(plan: ProjectPlan) -> dict[str, str]:
    function = _snake(plan)
    dashed = _dashed(plan)
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
        "name": _dashed(plan),
        "version": "0.1.0",
        "description": plan.headline,
        "type": "module",
        **extra,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _entry_point(plan: ProjectPlan, typed: bool) -> str:
    function = _camel(plan.function_words)
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
    function = _camel(plan.function_words)
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
    function = _pascal(plan.function_words)
    return {
        "go.mod": f"module example.com/{_dashed(plan)}\n\ngo 1.22\n",
        "main.go": (
            f"// Command {_dashed(plan)}: {plan.phrase}. Generated offline by Atelier.\n"
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
    function = _snake(plan)
    return {
        "Cargo.toml": (
            f'[package]\nname = "{_dashed(plan)}"\nversion = "0.1.0"\nedition = "2021"\n'
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
    function = _camel(plan.function_words)
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
# Files that must be UTF-8 text, checked further where the suffix has a parser.
_TEXT_SUFFIXES = _word_set(".md .py .json .toml .html .htm .css .js .ts .go .mod .rs .txt .yaml .yml")
