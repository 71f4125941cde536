"""What a generation prompt asks for: the language, the names and the files of the project.

Generation turns a prompt into a small project: the first language the prompt names
(Python, JavaScript, TypeScript, Go, Rust or a static web page; Python when it names
none), named after the prompt's words. A prompt that asks for a picture (image, logo,
icon, ...) also gets a PNG drawn from its words; one that asks only for a picture, and
names no language or kind of software, gets just the picture and a README.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from server.providers._base import ProviderError
from server.providers.offline._text import ascii_fold, one_line, word_set


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


# Reading the prompt. Deliberately plain word lists: predictable beats clever here.


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
_STOP = word_set(
    "a an the that which who whom whose to from for of in on at by with without and or but not no",
    "is are be been it its this these those my our your their me i we you us please some any into",
    "as so can could should would will shall may might must using use used uses written write",
    "writes build builds make makes create creates generate generates implement implements simple",
    "small tiny basic little new want need needs like just also then very all each every them",
    "there what when where how why give gives let lets has have had do does called named about",
    "over under up down out if else than via per one two go get gets quick quickly don doesn didn isn",
    "aren wasn won shouldn couldn wouldn",
)
_LANGUAGE_WORDS = word_set(
    "python py javascript js node nodejs typescript ts golang rust rustlang cargo html css",
    "deno npm django flask fastapi express",
)
_VERBS = word_set(
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
_PICTURE_WORDS = word_set(
    "image images picture pictures logo logos icon icons png drawing drawings illustration",
    "illustrations artwork painting paintings banner banners avatar avatars",
)
_ACRONYMS = {"cli", "api", "ui", "url", "http", "json", "csv", "pdf", "sql", "html", "css", "ai", "id", "png"}
# Names that would not work as a package, crate or module name in one of the languages.
_RESERVED = word_set(
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


# Names and layouts. Each language has a layout (what the README lists); _render writes the files.


def camel_case(words: list[str]) -> str:
    return words[0] + "".join(word.capitalize() for word in words[1:])


def pascal_case(words: list[str]) -> str:
    return "".join(word.capitalize() for word in words)


def snake_case(plan: ProjectPlan) -> str:
    """The name of the project's one function, in snake_case."""
    return "_".join(plan.function_words)


def dashed_slug(plan: ProjectPlan) -> str:
    """The project's name as a package or command: its slug with dashes."""
    return plan.slug.replace("_", "-")


# Each language as the README and the progress messages name it.
LABELS = {
    "python": "Python",
    "javascript": "JavaScript (Node.js)",
    "typescript": "TypeScript",
    "go": "Go",
    "rust": "Rust",
    "web": "static web page",
    "image": "picture",
}

_LAYOUTS: dict[str, Callable[[ProjectPlan], list[tuple[str, str]]]] = {
    "python": lambda plan: [
        ("pyproject.toml", f"package metadata and the `{dashed_slug(plan)}` command"),
        (f"src/{plan.slug}/__init__.py", "the package's public names"),
        (f"src/{plan.slug}/main.py", f"`{snake_case(plan)}()` and the command-line entry point"),
        ("tests/test_main.py", f"tests for `{snake_case(plan)}()`"),
    ],
    "javascript": lambda plan: [
        ("package.json", "package metadata and scripts"),
        ("src/index.js", f"`{camel_case(plan.function_words)}()` and the command-line entry point"),
        ("test/index.test.js", f"tests for `{camel_case(plan.function_words)}()`, run by `node --test`"),
    ],
    "typescript": lambda plan: [
        ("package.json", "package metadata, scripts and the TypeScript compiler"),
        ("tsconfig.json", "compiler settings"),
        ("src/index.ts", f"`{camel_case(plan.function_words)}()` and the command-line entry point"),
        ("src/index.test.ts", f"tests for `{camel_case(plan.function_words)}()`"),
    ],
    "go": lambda plan: [
        ("go.mod", "the module definition"),
        ("main.go", "the command-line entry point"),
        (f"{plan.action}.go", f"`{pascal_case(plan.function_words)}()` and the prompt"),
        (f"{plan.action}_test.go", "its test"),
    ],
    "rust": lambda plan: [
        ("Cargo.toml", "the crate definition"),
        ("src/lib.rs", f"`{snake_case(plan)}()` and its tests"),
        ("src/main.rs", "the command-line entry point"),
    ],
    "web": lambda plan: [
        ("index.html", "the page"),
        ("styles.css", "its colours and layout"),
        ("script.js", f"`{camel_case(plan.function_words)}()`, run when the form is sent"),
    ],
    "image": lambda plan: [],
}
