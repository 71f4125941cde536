"""Short names: what a person types for a generation or a version, and the full name it stands for.

    generations/0196a3…/versions/3    a full name passes through as it is
    0196a3…  or  a3f9                 a generation: its whole id, or a unique start or end of it
                                      (ids start with their creation time, so the last
                                      characters tell generations made close together apart)
    a3f9/3   or  a3f9/v3              version 3 of that generation
    v3                                version 3 of the current generation: the one last named or
                                      made by this command against this server, else the newest

A generation named where a version is expected stands for its latest version. The current
generation is kept per server in a small state file: `$ATELIER_STATE_FILE`, else
`$XDG_STATE_HOME/atelier/state.json` (default `~/.local/state/atelier/state.json`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from atelier._cli._exit_codes import Usage
from atelier._client import AtelierClient
from atelier._errors import InvalidArgument, NotFound, sdk_error
from atelier._types import Generation

_PREFIX = "generations/"
# `v3` alone; after a generation, `3` or `v3`.
_CURRENT_VERSION = re.compile(r"v(\d+)")
_VERSION = re.compile(r"v?(\d+)")
_ID = re.compile(r"[A-Za-z0-9-]+")
# How many of the caller's generations a short name is looked up among (newest first).
_SEARCHED = 1000


def state_file() -> Path:
    """Where the current generation of each server is remembered."""
    explicit = os.environ.get("ATELIER_STATE_FILE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "atelier" / "state.json"


class Names:
    """Turns short names into full ones for one run of the command against one server."""

    def __init__(self, client: AtelierClient) -> None:
        self._client = client
        self._file = state_file()
        self._resolved: dict[str, str] = {}

    # The current generation

    def remember(self, name: str) -> None:
        """Makes the generation of `name` (a generation or a version) the current one. A state
        file that cannot be written only loses the shortcut, never the command."""
        generation = generation_name(name)
        state = self._read_state()
        if state.get(self._client.target) == generation:
            return
        state[self._client.target] = generation
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            partial = self._file.with_suffix(".tmp")
            partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            partial.replace(self._file)
        except OSError:
            pass

    def current(self) -> str:
        """The current generation: the one remembered for this server, else the newest one."""
        remembered = self._read_state().get(self._client.target)
        if isinstance(remembered, str) and remembered.startswith(_PREFIX):
            return remembered
        newest = next(iter(self._client.list_generations(page_size=1)), None)
        if newest is None:
            raise Usage("you have no generations yet: `v3` needs one; start one with `atelier generate`")
        return newest.name

    def _read_state(self) -> dict[str, str]:
        try:
            state = json.loads(self._file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    # Resolving

    @staticmethod
    def names_a_version(text: str) -> bool:
        """Whether `text` names one version (rather than a generation, standing for its latest)."""
        if text.startswith(_PREFIX):
            return "/versions/" in text
        return bool(_CURRENT_VERSION.fullmatch(text)) or "/" in text

    def generation(self, text: str, *, deleted: bool = False) -> str:
        """The full name of the generation `text` names (or of the version it names); `deleted`
        looks among deleted generations too."""
        if text.startswith(_PREFIX):
            name = generation_name(text)
        elif _CURRENT_VERSION.fullmatch(text):
            name = self.current()
        else:
            name = self._generation(text.split("/", 1)[0], deleted=deleted)
        self.remember(name)
        return name

    def version(self, text: str) -> str:
        """The full name of the version `text` names; a generation stands for its latest version."""
        if "/versions/" in text and text.startswith(_PREFIX):
            self.remember(text)
            return text
        if text.startswith(_PREFIX):
            generation, number = generation_name(text), None
        elif match := _CURRENT_VERSION.fullmatch(text):
            generation, number = self.current(), match.group(1)
        else:
            head, _, tail = text.partition("/")
            tail = tail.removeprefix("versions/")
            match = _VERSION.fullmatch(tail) if tail else None
            if tail and match is None:
                raise Usage(f"{text!r}: after the generation comes a version number, such as {head}/3")
            generation, number = self._generation(head), match.group(1) if match else None
        self.remember(generation)
        if number is not None:
            return f"{generation}/versions/{int(number)}"
        return self._client.get_generation(generation).latest_version

    def _generation(self, short: str, *, deleted: bool = False) -> str:
        if short in self._resolved:
            return self._resolved[short]
        if not _ID.fullmatch(short):
            raise Usage(f"{short!r} is not a generation: name one by its id (see `atelier list`)")
        if not deleted:
            # A whole id needs no listing.
            with contextlib.suppress(NotFound, InvalidArgument):
                self._resolved[short] = self._client.get_generation(_PREFIX + short).name
                return self._resolved[short]
        ids = [generation_name(g.name).removeprefix(_PREFIX) for g in self._generations(deleted)]
        if short in ids:
            found = short
        else:
            matches = [i for i in ids if i.startswith(short) or i.endswith(short)]
            if len(matches) > 1:
                shown = ", ".join(matches[:5]) + (", …" if len(matches) > 5 else "")
                raise Usage(
                    f"{short!r} could be any of {len(matches)} generations ({shown}): give more of its id"
                )
            if not matches:
                raise _no_generation(short, ids)
            found = matches[0]
        self._resolved[short] = _PREFIX + found
        return self._resolved[short]

    def _generations(self, deleted: bool) -> Iterator[Generation]:
        listed = self._client.list_generations(page_size=200, show_deleted=deleted)
        for index, generation in enumerate(listed):
            if index >= _SEARCHED:
                return
            yield generation


def _no_generation(short: str, ids: list[str]) -> NotFound:
    close = difflib.get_close_matches(short, ids, n=3, cutoff=0.6)
    # A mistyped short name is as close to the start or end of an id as to the whole id.
    close += [
        i
        for i in ids
        if i not in close
        and (
            difflib.SequenceMatcher(None, short, i[: len(short)]).ratio() >= 0.75
            or difflib.SequenceMatcher(None, short, i[-len(short) :]).ratio() >= 0.75
        )
    ][: 3 - len(close)]
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `atelier list` shows yours"
    return sdk_error(
        NotFound, f"no generation of yours is named {short!r}{hint}", reason="GENERATION_NOT_FOUND"
    )


def generation_name(name: str) -> str:
    """The generation a full name belongs to (`generations/{g}`)."""
    return name.split("/versions/", 1)[0].removesuffix("/session")
