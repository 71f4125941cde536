"""A Progress that records what a provider reports, for the provider tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from server.providers import ModelUsage


class RecordingProgress:
    """Records every call in order, as (kind, stage title, details...) tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.usages: list[ModelUsage] = []
        self._current: str | None = None

    @asynccontextmanager
    async def stage(self, title: str) -> AsyncIterator[None]:
        assert self._current is None, "stages do not nest"
        self._current = title
        self.events.append(("enter", title))
        try:
            yield
        except BaseException:
            self.events.append(("fail", title))
            raise
        finally:
            self._current = None
        self.events.append(("exit", title))

    async def message(self, text: str) -> None:
        assert self._current is not None, f"message outside a stage: {text}"
        self.events.append(("message", self._current, text))

    async def output(self, paths: Sequence[str]) -> None:
        self.events.append(("output", str(self._current), *paths))

    def usage(self, usage: ModelUsage) -> None:
        self.usages.append(usage)

    @property
    def messages(self) -> list[str]:
        return [event[2] for event in self.events if event[0] == "message"]

    @property
    def outputs(self) -> list[list[str]]:
        return [list(event[2:]) for event in self.events if event[0] == "output"]

    def clean_run(self) -> list[str]:
        """The titles of the stages run; each was entered and exited once, and output came inside one."""
        stages = [event for event in self.events if event[0] in ("enter", "exit", "fail")]
        titles = [event[1] for event in stages if event[0] == "enter"]
        assert stages == [(kind, title) for title in titles for kind in ("enter", "exit")]
        assert all(event[1] != "None" for event in self.events if event[0] == "output"), (
            "output outside a stage"
        )
        return titles
