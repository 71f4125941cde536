"""The scripted provider: one particular behaviour on demand, for tests.

Tests run the server in a subprocess, so the script travels in the prompt. A prompt that
parses as a JSON object is a script; any other prompt runs the defaults. Every field is
optional:

    {
      "stages": 2,                  titles "Step 1" .. "Step N" (0 runs no stage)
      "delay": 0.0,                 seconds of (cancellable) sleep in each stage
      "messages_per_stage": 1,
      "files": {"answer.txt": "..."},          path -> text; the default answers with the prompt
      "binary_files": {"a.png": "<base64>"},   path -> base64 content
      "deletions": ["old.txt"],
      "renames": [["a.txt", "b.txt"]],
      "fail": {"code": "UNAVAILABLE", "reason": "SCRIPTED_FAILURE", "message": "...", "retryable": false},
      "crash": "message",           raises a plain RuntimeError instead of a ProviderError
      "fail_at_stage": 1            where "fail" or "crash" happens, inside that stage;
                                    by default after the last stage
      "quota_storm_until": 1.7e9,   the "model" answers 429 to every request until this Unix time
      "retry_after": 1.0,           ...asking to wait this long (the RetryInfo delay)
      "usage": {"input_tokens": 10, "output_tokens": 20, "thinking_tokens": 0}
    }

DraftPrompt's text is a script too: the draft is the text itself (`fail` and `crash` apply,
and `usage` is what the draft reports).

Before its stages, the provider makes one request to its "model" through the gate, as a real
provider would: the runner's cooldowns and budgets apply to it. Its input tokens are the
prompt's estimate (estimate_tokens), corrected by `usage.input_tokens` when the script gives them.

The default answer.txt is written only when the script names no files, deletions or
renames. Paths are not checked: a test may want the runner to see a bad one. The files
are reported as output at the end of the last stage, before a failure that comes after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from server.files import FileContent, guess_mime_type
from server.providers._base import (
    OPEN_GATE,
    ChangeSet,
    DraftAnswer,
    DraftRequest,
    ModelGate,
    ModelUsage,
    Progress,
    ProviderError,
    ProviderRequest,
    TokenCount,
    estimate_tokens,
)

_FIELDS = {
    "stages",
    "delay",
    "messages_per_stage",
    "files",
    "binary_files",
    "deletions",
    "renames",
    "fail",
    "crash",
    "fail_at_stage",
    "quota_storm_until",
    "retry_after",
    "usage",
}
_FAIL_FIELDS = {"code", "reason", "message", "retryable"}
# gRPC status code names other than OK. Spelled out: providers know nothing of gRPC.
_STATUS_CODES = {
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
}


@dataclass(frozen=True, slots=True)
class Failure:
    code: str = "UNAVAILABLE"
    reason: str = "SCRIPTED_FAILURE"
    message: str = "scripted failure"
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Script:
    stages: int = 2
    delay: float = 0.0
    messages_per_stage: int = 1
    upserts: tuple[FileContent, ...] = ()
    deletions: tuple[str, ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    fail: Failure | None = None
    crash: str | None = None
    # 1-based; None fails after the last stage.
    fail_at_stage: int | None = None
    # The scripted "model" refuses every request (429, asking for `retry_after` seconds) until this
    # Unix time: a quota storm shared by every job that names the same time.
    quota_storm_until: float = 0.0
    retry_after: float | None = None
    usage: ModelUsage | None = None

    @property
    def titles(self) -> tuple[str, ...]:
        return tuple(f"Step {number}" for number in range(1, self.stages + 1))


class ScriptedProvider:
    """Does what the prompt's script says. `ScriptedProvider()` takes no settings."""

    @property
    def name(self) -> str:
        return "scripted"

    async def ready(self) -> None:
        """Always ready: it runs in the server's process."""

    async def aclose(self) -> None:
        """Nothing to end."""

    async def count_tokens(self, model: str, text: str) -> TokenCount:
        # No model, no token counter: the documented estimate.
        return estimate_tokens(text)

    def stage_titles(self, request: ProviderRequest) -> Sequence[str]:
        try:
            return parse_script(request.prompt).titles
        except ProviderError:
            # `run` reports the invalid script before it starts any stage.
            return Script().titles

    async def run(
        self, request: ProviderRequest, progress: Progress, gate: ModelGate = OPEN_GATE
    ) -> ChangeSet:
        script = parse_script(request.prompt)
        await _call_the_model(script, gate, progress, input_tokens=estimate_tokens(request.prompt).tokens)
        paths = [file.path for file in script.upserts]
        for number, title in enumerate(script.titles, start=1):
            async with progress.stage(title):
                await _work(script, number, progress)
                if number == script.fail_at_stage:
                    _fail(script)
                if number == script.stages and paths:
                    await progress.output(paths)
        if script.stages == 0 and paths:
            await progress.output(paths)
        if script.fail_at_stage is None:
            _fail(script)
        count = len(script.upserts)
        return ChangeSet(
            upserts=script.upserts,
            deletions=script.deletions,
            renames=script.renames,
            summary=f"wrote {count} file{'s' if count != 1 else ''}",
        )

    async def draft(self, request: DraftRequest, gate: ModelGate = OPEN_GATE) -> DraftAnswer:
        script = parse_script(request.text)
        _fail(script)
        return DraftAnswer(prompt=request.text, usage=script.usage)


def parse_script(prompt: str) -> Script:
    """The script in a prompt, or the defaults; raises ProviderError(SCRIPT_INVALID) for a bad one."""
    try:
        document = json.loads(prompt)
    except (ValueError, RecursionError):
        # Not JSON, or nested too deeply to be a script: an ordinary prompt.
        document = None
    if not isinstance(document, dict):
        return Script(upserts=(_text_file("answer.txt", prompt),))
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _invalid(f"unknown script fields: {', '.join(unknown)}")
    stages = _count(document, "stages", 2)
    fail = _failure(document.get("fail"))
    crash = document.get("crash")
    if crash is not None and not isinstance(crash, str):
        raise _invalid("crash must be a string")
    if fail is not None and crash is not None:
        raise _invalid("give fail or crash, not both")
    fail_at_stage = document.get("fail_at_stage")
    if fail_at_stage is not None:
        fail_at_stage = _count(document, "fail_at_stage", 0)
        if fail is None and crash is None:
            raise _invalid("fail_at_stage needs fail or crash")
        if not 1 <= fail_at_stage <= stages:
            raise _invalid(f"fail_at_stage must be between 1 and {stages}")
    named = {"files", "binary_files", "deletions", "renames"} & set(document)
    files = _mapping(document, "files") if named else {"answer.txt": prompt}
    upserts = [_text_file(path, _string(text, f"files[{path!r}]")) for path, text in files.items()]
    upserts += [_binary_file(path, data) for path, data in _mapping(document, "binary_files").items()]
    return Script(
        stages=stages,
        delay=_delay(document.get("delay", 0.0)),
        messages_per_stage=_count(document, "messages_per_stage", 1),
        upserts=tuple(upserts),
        deletions=tuple(_string(path, "deletions[]") for path in _list(document, "deletions")),
        renames=tuple(_rename(pair) for pair in _list(document, "renames")),
        fail=fail,
        crash=crash,
        fail_at_stage=fail_at_stage,
        quota_storm_until=_number(document, "quota_storm_until", 0.0),
        retry_after=_number(document, "retry_after", None),
        usage=_usage(document.get("usage")),
    )


async def _call_the_model(script: Script, gate: ModelGate, progress: Progress, *, input_tokens: int) -> None:
    """One request to the scripted "model", through the gate as a real provider's would go: its
    input tokens are the prompt's estimate, corrected by the script's usage if it gives one."""
    while True:
        await gate.before_request(input_tokens)
        if time.time() < script.quota_storm_until:
            gate.refused(retry_after=script.retry_after)
            continue
        gate.answered()
        break
    if script.usage is not None:
        progress.usage(script.usage)
        if script.usage.input_tokens:
            gate.tokens_counted(estimated=input_tokens, actual=script.usage.input_tokens)


def _number(document: Mapping[str, Any], key: str, default: float | None) -> Any:
    value = document.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
        raise _invalid(f"{key} must be a number of seconds, not negative")
    return value


def _usage(value: Any) -> ModelUsage | None:
    if value is None:
        return None
    keys = {"input_tokens", "output_tokens", "thinking_tokens"}
    if (
        not isinstance(value, dict)
        or set(value) - keys
        or not all(isinstance(v, int) for v in value.values())
    ):
        raise _invalid(f"usage must be an object of whole numbers: {', '.join(sorted(keys))}")
    return ModelUsage(**value)


async def _work(script: Script, number: int, progress: Progress) -> None:
    count = script.messages_per_stage
    for index in range(1, count + 1):
        await progress.message(f"step {number}: message {index} of {count}")
        if script.delay:
            # Spread over the messages, so a watcher sees them arrive while the stage runs.
            await anyio.sleep(script.delay / count)
    if count == 0 and script.delay:
        await anyio.sleep(script.delay)


def _fail(script: Script) -> None:
    if script.crash is not None:
        raise RuntimeError(script.crash)
    if script.fail is not None:
        fail = script.fail
        raise ProviderError(fail.message, reason=fail.reason, code=fail.code, retryable=fail.retryable)


def _failure(value: Any) -> Failure | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Failure(message=value)
    if not isinstance(value, dict):
        raise _invalid("fail must be an object or a message")
    unknown = sorted(set(value) - _FAIL_FIELDS)
    if unknown:
        raise _invalid(f"unknown fail fields: {', '.join(unknown)}")
    default = Failure()
    failure = Failure(
        code=_string(value.get("code", default.code), "fail.code"),
        reason=_string(value.get("reason", default.reason), "fail.reason"),
        message=_string(value.get("message", default.message), "fail.message"),
        retryable=value.get("retryable", default.retryable),
    )
    if failure.code not in _STATUS_CODES:
        raise _invalid(f"fail.code {failure.code!r} is not the name of a gRPC status code other than OK")
    if not isinstance(failure.retryable, bool):
        raise _invalid("fail.retryable must be true or false")
    return failure


def _count(document: Mapping[str, Any], key: str, default: int) -> int:
    value = document.get(key, default)
    # bool is an int in Python but never a count in a script.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _invalid(f"{key} must be a whole number, 0 or more")
    return value


def _delay(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise _invalid("delay must be a number of seconds, 0 or more")
    return float(value)


def _mapping(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise _invalid(f"{key} must be an object of path to content")
    return value


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list")
    return value


def _rename(pair: Any) -> tuple[str, str]:
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(path, str) for path in pair)):
        raise _invalid("each rename must be a pair of paths [old, new]")
    return pair[0], pair[1]


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a string")
    return value


def _text_file(path: str, text: str) -> FileContent:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # JSON can spell a lone surrogate ("\\ud800"), which no UTF-8 file can hold.
        raise _invalid(f"files[{path!r}] is not valid Unicode: {exc.reason}") from None
    return FileContent(path=path, mime_type=guess_mime_type(path, data), data=data)


def _binary_file(path: str, encoded: Any) -> FileContent:
    try:
        data = base64.b64decode(_string(encoded, f"binary_files[{path!r}]"), validate=True)
    except binascii.Error as exc:
        raise _invalid(f"binary_files[{path!r}] is not base64: {exc}") from None
    return FileContent(path=path, mime_type=guess_mime_type(path, data), data=data)


def _invalid(message: str) -> ProviderError:
    return ProviderError(f"invalid script: {message}", reason="SCRIPT_INVALID", code="INVALID_ARGUMENT")
