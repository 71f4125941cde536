"""Fan-out: one request, several outputs. Checks the `variants` or `count` of a Generate or
Regenerate and says what each output is asked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.domain.errors import FieldViolation, InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Variant:
    """One output asked for: a short name, a text added to the prompt, or both."""

    name: str = ""
    prompt_suffix: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    """One output of a fan-out: its variant's name, and what is added to the prompt for it."""

    variant: str
    suffix: str

    def prompt(self, base: str) -> str:
        return f"{base}\n\n{self.suffix}" if self.suffix else base


def plan_outputs(variants: Sequence[Variant], count: int | None, *, limit: int) -> list[Output] | None:
    """The outputs a request asks for, or None for a single version (no variants, no count).

    A variant's name alone is also its suffix; a suffix alone is named by its position (1-based);
    `count` outputs are named 1..count and add nothing to the prompt.
    """
    if variants and count is not None:
        raise InvalidArgument(
            "variants and count were both given; a fan-out takes one or the other",
            reason="VARIANTS_AND_COUNT",
            violations=[FieldViolation("count", "must be unset when variants are given")],
        )
    if count is not None:
        if not 1 <= count <= limit:
            raise InvalidArgument(
                f"count is {count}; it must be between 1 and {limit} (the server's max_batch_size)",
                reason="INVALID_COUNT",
                metadata={"count": str(count), "limit": str(limit)},
                violations=[FieldViolation("count", f"must be between 1 and {limit}")],
            )
        return [Output(variant=str(number), suffix="") for number in range(1, count + 1)]
    if not variants:
        return None
    if len(variants) > limit:
        raise InvalidArgument(
            f"{len(variants)} variants were given; at most {limit} (the server's max_batch_size)",
            reason="TOO_MANY_VARIANTS",
            metadata={"variants": str(len(variants)), "limit": str(limit)},
            violations=[FieldViolation("variants", f"must hold at most {limit} variants")],
        )
    outputs: list[Output] = []
    indices: list[int] = []
    violations: list[FieldViolation] = []
    for index, variant in enumerate(variants):
        name, suffix = variant.name, variant.prompt_suffix.strip()
        if not name and not suffix:
            violations.append(FieldViolation(f"variants[{index}]", "must have a name or a prompt_suffix"))
            continue
        if name and not _NAME.match(name):
            violations.append(
                FieldViolation(
                    f"variants[{index}].name",
                    "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                )
            )
            continue
        outputs.append(Output(variant=name or str(index + 1), suffix=suffix or name))
        indices.append(index)
    names = [output.variant for output in outputs]
    violations.extend(
        FieldViolation(f"variants[{indices[position]}].name", f"repeats the name {name!r}")
        for position, name in enumerate(names)
        if name in names[:position]
    )
    if violations:
        raise InvalidArgument(
            f"variants[...]: {violations[0].description}"
            + (f" (and {len(violations) - 1} more problems)" if len(violations) > 1 else ""),
            reason="INVALID_VARIANT",
            violations=violations,
        )
    return outputs
