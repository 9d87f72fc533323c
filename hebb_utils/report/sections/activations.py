"""Notebook 01's part of the README: the language model's activations, their size and checksum."""
from __future__ import annotations

__all__ = ["results", "MACHINE"]

MACHINE = True  # a deterministic run: its JSON names the machine of the README's numbers


def results(res: dict, number: int) -> tuple[list[str], int]:
    """One line: which model, how many tokens of which width, after which block, and the SHA-256."""
    r, model = res["results"], res["source"]["model"]
    return [f"**Activations** ({res['source'].get('label', model['name'])}): {r['n_tokens']:,} tokens x {r['d_model']} "
            f"from {r['n_stories']} TinyStories stories, after block {r['layer']}; SHA-256 `{r['acts_sha256'][:16]}...`",
            ""], number
