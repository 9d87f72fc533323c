"""Fidelity as the field measures it: the language model's next-token loss when one block's output is
replaced by a dictionary's reconstruction, as the share of the loss recovered between ablating the block's
output and the clean model.

    spliced = SplicedModel(model, tokenizer, held_out_stories, layer=21)
    rows = spliced.rows                      # (n, d_model) the block's output at every real token
    spliced.clean_loss, spliced.zero_ablation_loss, spliced.loss_with(rows * 0.5)
    loss_recovered(spliced, dictionary)      # {"loss", "loss_recovered", "loss_recovered_mean", ...}

The model runs once, clean, over the stories (in batches): a hook keeps block `layer`'s output and what
the next block is called with (the attention mask, the rotary embeddings: every later block gets the
same). Each patched loss then runs only the blocks after the hook, the final norm and the head, with the
real tokens' rows replaced; special tokens (the prepended BOS) keep their clean rows, as the dictionaries
never saw them. The loss is the mean next-token cross-entropy over every position whose next token is a
real token of its story.

    loss recovered = (L_ablated - L_patched) / (L_ablated - L_clean)

with L_ablated the zero ablation (and, reported beside it, the mean ablation: every real row replaced
by the mean row of the training activations). 1 is the clean model, 0 no better than ablating.
"""
from __future__ import annotations

import numpy as np
import torch

from ..checks import matrix, positive_int
from ..data.extract import block_modules, tokenize_stories

__all__ = ["SplicedModel", "loss_recovered", "recovered_with", "fidelity_sweep", "final_norm"]

NORM_NAMES = ("norm", "ln_f", "final_layernorm", "final_layer_norm")  # Llama, GPT-2/Neo, Phi, OPT


def final_norm(model) -> torch.nn.Module:
    """The norm between the last block and the head (model.model.norm for Llama, transformer.ln_f for
    GPT-2 and GPT-Neo, ...); an identity for a model without one."""
    trunk = getattr(model, "base_model", model)
    for name in NORM_NAMES:
        module = getattr(trunk, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return torch.nn.Identity()


class _Stop(Exception):
    pass


class SplicedModel:
    """A causal LM split after block `layer`, on fixed stories: its clean loss, and the loss with the
    real tokens' rows of that block's output replaced (module docstring)."""

    @torch.no_grad()
    def __init__(self, model, tokenizer, texts: list[str], layer: int, *, mean_row=None, max_tokens: int = 256,
                 batch_size: int = 8):
        n_layers = int(model.config.num_hidden_layers)
        if not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise ValueError(f"layer={layer!r}: expected a block index in [0, {n_layers - 1}]")
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise ValueError("texts: expected a non-empty list of non-empty stories (held-out text)")
        max_tokens = positive_int("max_tokens", max_tokens, minimum=2)
        batch_size = positive_int("batch_size", batch_size)
        self.model, self.layer = model.eval(), layer
        self.blocks = block_modules(model, n_layers)
        self.norm, self.head = final_norm(model), model.get_output_embeddings()
        ids, special = tokenize_stories(tokenizer, list(texts), True)
        ids, special = [x[:max_tokens] for x in ids], [s[:max_tokens] for s in special]
        pad_id = next(t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None)
        self.batches, rows = [], []
        captured = {}

        def keep_output(module, args, output):
            captured["h"] = output if isinstance(output, torch.Tensor) else output[0]
            if layer + 1 == n_layers:
                raise _Stop

        def keep_call(module, args, kwargs):
            captured["args"], captured["kwargs"] = args[1:], kwargs
            raise _Stop  # the blocks after the hook run in loss(), not here

        hooks = [self.blocks[layer].register_forward_hook(keep_output)]
        if layer + 1 < n_layers:
            hooks.append(self.blocks[layer + 1].register_forward_pre_hook(keep_call, with_kwargs=True))
        device = next(model.parameters()).device
        try:
            for start in range(0, len(ids), batch_size):
                chunk = range(start, min(start + batch_size, len(ids)))
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(chunk), width), dtype=torch.long)
                real = torch.zeros((len(chunk), width), dtype=torch.bool)
                for row, i in enumerate(chunk):  # right padding
                    input_ids[row, :len(ids[i])] = torch.from_numpy(ids[i])
                    attention[row, :len(ids[i])] = 1
                    real[row, :len(ids[i])] = torch.from_numpy(~special[i])
                try:
                    model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False)
                except _Stop:
                    pass
                # the loss counts position t when token t + 1 is a real token of the story
                labels = input_ids[:, 1:].clone()
                labels[~real[:, 1:]] = -100
                hidden = captured.pop("h").detach()
                self.batches.append({"hidden": hidden, "real": real.to(hidden.device), "labels": labels.to(hidden.device),
                                     "args": captured.pop("args", ()), "kwargs": captured.pop("kwargs", {})})
                rows.append(hidden[real.to(hidden.device)].float().cpu())
        finally:
            for h in hooks:
                h.remove()
        self.rows = torch.cat(rows)  # (n, d_model): the block's output at every real token, story after story
        self.n_labels = int(sum(int((b["labels"] != -100).sum()) for b in self.batches))
        if self.n_labels == 0:
            raise ValueError("texts: no position has a real next token; give longer stories")
        self.clean_loss = self.loss_with(self.rows)
        self.zero_ablation_loss = self.loss_with(torch.zeros_like(self.rows))
        # mean ablation: every real row replaced by mean_row (d_model,), the training activations' mean
        # (None: the held-out rows' own mean)
        mean = self.rows.mean(0) if mean_row is None else matrix("mean_row", torch.as_tensor(np.asarray(mean_row))[None],
                                                                 self.rows.shape[1], cols_name="d_model")[0]
        self.mean_ablation_loss = self.loss_with(mean.expand_as(self.rows))

    @torch.no_grad()
    def loss_with(self, rows) -> float:
        """The mean next-token cross-entropy with the real tokens' rows of block `layer`'s output replaced by
        rows (n, d_model), in the order of self.rows; only the blocks after it run."""
        rows = matrix("rows", rows, self.rows.shape[1], cols_name="d_model")
        if rows.shape[0] != self.rows.shape[0]:
            raise ValueError(f"rows has {rows.shape[0]} rows: expected one per real token, {self.rows.shape[0]}")
        total, offset = 0.0, 0
        for batch in self.batches:
            h = batch["hidden"].clone()
            n = int(batch["real"].sum())
            h[batch["real"]] = rows[offset:offset + n].to(h.device, h.dtype)
            offset += n
            for block in self.blocks[self.layer + 1:]:
                out = block(h, *batch["args"], **batch["kwargs"])
                h = out if isinstance(out, torch.Tensor) else out[0]
            logits = self.head(self.norm(h))[:, :-1].float()  # (B, T - 1, vocab): position t predicts t + 1
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                             batch["labels"].reshape(-1), ignore_index=-100,
                                                             reduction="sum"))
        return total / self.n_labels


def loss_recovered(spliced: SplicedModel, dictionary, batch_size: int = 4096) -> dict:
    """The loss with each real row replaced by the dictionary's reconstruction (its own code, then its
    decode), and the share recovered against zero ablation and against mean ablation (SplicedModel's)."""
    with torch.no_grad():
        recon = torch.cat([dictionary.decode(dictionary.encode(spliced.rows[i:i + batch_size]).float()).float()
                           for i in range(0, spliced.rows.shape[0], batch_size)])
    return recovered_with(spliced, recon)


def recovered_with(spliced: SplicedModel, recon) -> dict:
    """loss_recovered's numbers for a reconstruction already computed: recon (n, d_model), one row per
    row of spliced.rows."""
    patched = spliced.loss_with(recon)
    clean, zero, mean = spliced.clean_loss, spliced.zero_ablation_loss, spliced.mean_ablation_loss
    return {"loss": patched, "clean_loss": clean, "zero_ablation_loss": zero, "mean_ablation_loss": mean,
            "loss_recovered": (zero - patched) / (zero - clean) if zero != clean else float("nan"),
            "loss_recovered_mean": (mean - patched) / (mean - clean) if mean != clean else float("nan")}


def fidelity_sweep(makers: dict, X_train, spliced: SplicedModel, seed: int, *, fitted: dict | None = None,
                   workers: int = 1) -> dict:
    """Each method at each sparsity setting on the language model: fitted on X_train (n, d_model) with
    `seed` (single-thread CPU seconds; in `workers` processes: experiments.workers), then scored on the
    held-out stories' rows of `spliced`: its L0, explained variance and loss recovered (loss_recovered);
    dead units are those never active on X_train (the field's count over a window of training tokens: a
    few thousand held-out tokens would leave units of a sparse code unfired by chance, e^(-2048/1152) =
    17% of a uniform k = 1 code's).

    makers: method -> {setting (e.g. k): make(X) -> fit(seed) -> Dictionary}. fitted: {(method, setting):
    (dictionary, cpu_seconds)} already fitted the same way (ladder.choose's tuning fits, on X_train with
    `seed`), used instead of fitting again. Returns method -> [{"setting", "l0", "explained_variance",
    "dead_fraction", "loss", "loss_recovered", "loss_recovered_mean", "cpu_seconds"}]."""
    from ..measure.recovery import explained_variance
    from .workers import Done, submit_fit

    X_train = matrix("X_train", X_train, spliced.rows.shape[1], cols_name="d_model", min_rows=2)
    fitted = fitted or {}
    pending = [(method, setting, Done(*fitted[method, setting]) if (method, setting) in fitted
                else submit_fit(make, X_train, seed, workers=workers))
               for method, settings in makers.items() for setting, make in settings.items()]
    out = {}
    for method, setting, handle in pending:
        dictionary, seconds = handle.result()
        with torch.no_grad():
            codes = torch.cat([dictionary.encode(spliced.rows[i:i + 4096]).float()
                               for i in range(0, spliced.rows.shape[0], 4096)])
            recon = torch.cat([dictionary.decode(codes[i:i + 4096]).float() for i in range(0, codes.shape[0], 4096)])
            fired = torch.zeros(codes.shape[1], dtype=torch.bool)
            for i in range(0, X_train.shape[0], 4096):
                fired |= (dictionary.encode(X_train[i:i + 4096]) != 0).any(0)
        fidelity = recovered_with(spliced, recon)  # the rows coded once, for EV, L0 and the loss
        out.setdefault(method, []).append({
            "setting": setting, "l0": float((codes != 0).sum(1, dtype=torch.float64).mean()),
            "explained_variance": explained_variance(spliced.rows, recon),
            "dead_fraction": float((~fired).double().mean()),
            **{k: fidelity[k] for k in ("loss", "loss_recovered", "loss_recovered_mean")},
            "cpu_seconds": round(seconds, 2)})
    return out
