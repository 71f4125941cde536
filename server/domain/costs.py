"""What models cost: a request's price from the price table (server.config.ModelConfig), the same
rule for the ledger after a job and for EstimateCost before one."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import ModelConfig

CURRENCY = "USD"
_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request would cost, and what the estimate assumed."""

    model: ModelConfig
    outputs: int
    calls: int
    input_tokens: int
    input_tokens_counted: bool
    output_tokens: int
    images: int
    cost: float
    assumptions: tuple[str, ...]


def cost_of(model: ModelConfig | None, *, input_tokens: int, output_tokens: int, images: int) -> float:
    """The price of one request's usage (thinking tokens belong in `output_tokens`); 0 for a model
    no longer configured."""
    if model is None:
        return 0.0
    return (
        input_tokens * model.input_price_per_million / _MILLION
        + output_tokens * model.output_price_per_million / _MILLION
        + images * model.image_price
    )
