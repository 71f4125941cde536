"""A target of the benchmark, and the one place that decides whether a figure meets it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on one measured value: at least `floor`, or at most `ceiling` (exactly one is set)."""

    key: str
    title: str
    floor: float | None = None
    ceiling: float | None = None

    def __post_init__(self) -> None:
        if (self.floor is None) == (self.ceiling is None):
            raise ValueError(f"target {self.key}: give a floor or a ceiling, not both or neither")

    def met(self, value: float | None) -> bool:
        """Whether `value` meets the target; a figure that could not be measured never does."""
        if value is None:
            return False
        if self.floor is not None:
            return value >= self.floor
        assert self.ceiling is not None
        return value <= self.ceiling

    @property
    def bound(self) -> str:
        return f">= {self.floor:g}" if self.floor is not None else f"<= {self.ceiling:g}"


# A target with the figure it was judged on (None: not measured) and whether it is met.
Verdict = tuple[Target, float | None, bool]


def judge(target: Target, value: float | None) -> Verdict:
    return target, value, target.met(value)


def verdict_text(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
