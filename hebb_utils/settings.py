"""The published SoftHebb settings, written once (ground floor: imports nothing).

The published notebooks (github.com/thexuanphuc/OJa) train one SoftHebb layer on CIFAR-10 images
and one on a language model's residual-stream tokens, with a fixed disc support of radius 1 and
gain 0.3 on the neuron grid. The command line's defaults, the rules' defaults, the dictionary
methods' and every error hint that quotes a published value read them here, and each checkpoint
saves the set it started from (`rules/checkpoint.py`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["SoftHebbSettings", "PUBLISHED", "CIFAR10", "LM_TOKENS", "published_hint"]


@dataclass(frozen=True)
class SoftHebbSettings:
    """One published run's settings: softmax inverse temperature, step size (of the max-normalised
    update), the lateral disc's radius (grid units) and gain, batch size, epochs and seed."""

    t_invert: float
    lr: float
    radius: float = 1.0
    gain: float = 0.3
    batch_size: int = 64
    epochs: int = 1
    seed: int = 42

    def as_dict(self) -> dict:
        return asdict(self)


# The two published runs, by the data they learn from.
PUBLISHED = {
    "CIFAR-10": SoftHebbSettings(t_invert=300.0, lr=0.08),
    "LM tokens": SoftHebbSettings(t_invert=100.0, lr=0.2),
}
CIFAR10, LM_TOKENS = PUBLISHED["CIFAR-10"], PUBLISHED["LM tokens"]


def published_hint(name: str) -> str:
    """'published: 300 for CIFAR-10, 100 for LM tokens' for the setting `name`: what an error hint quotes."""
    values = {data: getattr(s, name) for data, s in PUBLISHED.items()}
    if len(set(values.values())) == 1:
        return f"published: {_number(next(iter(values.values())))}"
    return "published: " + ", ".join(f"{_number(v)} for {data}" for data, v in values.items())


def _number(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
