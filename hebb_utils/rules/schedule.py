"""The schedule and history shared by the Hebbian rules: the run options, ``lr_at`` and one run logger.

Step size. Every rule multiplies its update by ``eta_t = lr_t / scale`` with
``lr_t = lr * (1 - t / T)`` for update t = 0 .. T-1 of a run of T planned updates (linear decay
to zero; ``lr_decay=False``: constant ``lr``). ``scale`` is ``lambda_hat``, the top eigenvalue of
``C`` estimated by power iteration on a sample of up to ``scale_rows`` rows (a seeded random
subset of a tensor, the first batches of an iterable); the recurrent circuit uses ``alpha`` and
ICA, which runs on whitened data, uses 1 instead (see each function). Multiplying the data by s
multiplies both the Hebbian term and ``lambda_hat`` by s^2, so the same ``lr`` works on data of any
overall scale, and ``eta * lambda_1 ~ lr`` keeps the linearised dynamics stable for lr < 1.
The decay removes the stochastic jitter that a constant step leaves: the last updates are tiny
and average over many batches. (A 1/t schedule, the textbook Robbins-Monro choice, either decays
too fast to converge the minor components or leaves too large a final step; the linear decay did
better on the spectra tried: flat, 1/i power law, Student-t tails.)
T needs the batches per epoch: ceil(n / batch_size) for a tensor, counted on the first full pass
(the mean pass when centring, else one extra pass) for an iterable.

Length of a run. ``epochs`` passes over the data, or ``steps`` updates, whichever ends first; with
both ``None`` (default) it runs whole epochs until at least ``DEFAULT_MIN_STEPS`` updates are made.
Divergence. Every ``log_every`` and every 100 updates, and at the end, the weights are checked
(finite, or a rule's own bound); a run that diverges raises RuntimeError naming the step and the fix.
Convergence curves. Pass ``history=[]`` and a ``reference``; every ``log_every`` steps (and at the
last step) a dict ``{"step", "epoch", "lr", ...}`` is appended (``lr`` is ``eta_t * scale``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import torch

from ..checks import check_finite, finite_float, positive_int
from .stream import Stream

DEFAULT_MIN_STEPS = 2000  # updates made when neither epochs nor steps is given


def lr_at(step: int, lr: float, total: int, decay: bool = True) -> float:
    """lr of update `step` (0-based) of `total`: ``lr * max(0, 1 - step / total)``, or ``lr`` without decay."""
    return lr * max(0.0, 1.0 - step / total) if decay else lr


@dataclasses.dataclass(frozen=True, eq=False)
class RunConfig:
    """The options every rule shares (keyword arguments of each rule; its own defaults may differ).

    lr: step in units of 1/scale (> 0). epochs, steps: the run's length (module docstring; None =
    at least DEFAULT_MIN_STEPS updates). batch_size: rows per update. seed: the generator of the
    initial weights, the shuffles and the lambda_hat sample. center: subtract the data mean.
    shuffle: reshuffle a tensor every epoch. lr_decay: linear decay to zero. scale_rows: rows of
    the lambda_hat sample. reference, history, log_every: the convergence curve (module docstring).
    """

    lr: float = 0.5
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 256
    seed: int = 0
    center: bool = True
    shuffle: bool = True
    lr_decay: bool = True
    scale_rows: int = 4096
    reference: object = None
    history: list | None = None
    log_every: int = 10

    def __post_init__(self):
        fix = {"lr": finite_float("lr", self.lr, minimum=0, strict_minimum=True, hint="e.g. lr=0.5"),
               "seed": positive_int("seed", self.seed, 0),
               **{n: bool(getattr(self, n)) for n in ("center", "shuffle", "lr_decay")},
               **{n: positive_int(n, getattr(self, n)) for n in ("batch_size", "scale_rows", "log_every")},
               **{n: positive_int(n, v, hint="or None") for n in ("epochs", "steps")
                  if (v := getattr(self, n)) is not None}}
        if self.history is not None and not isinstance(self.history, list):
            raise ValueError(f"history: expected a list to append to (or None), got {type(self.history).__name__}")
        for name, value in fix.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, rule: str, options: dict, unused: tuple = (), **defaults) -> "RunConfig":
        """The config of one call of `rule`: its `defaults`, overridden by the caller's `options`."""
        wrong = set(options) - ({f.name for f in dataclasses.fields(cls)} - set(unused))
        if wrong:
            raise TypeError(f"{rule}() got unexpected keyword argument(s) {sorted(wrong)}")
        return cls(**{**defaults, **options})


def reference_of(reference, shape: tuple[int, int], what: str, vector: bool = False) -> torch.Tensor | None:
    """The reference as a finite `shape` float64 CPU tensor (a (D,) vector allowed as one row with `vector`)."""
    if reference is None:
        return None
    try:
        ref = torch.as_tensor(reference).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"reference: expected {what}, a tensor or array, got {type(reference).__name__}") from None
    if vector and ref.ndim == 1:
        ref = ref[None]
    if tuple(ref.shape) != shape:
        raise ValueError(f"reference has shape {tuple(ref.shape)}: expected {what} of shape {shape}"
                         + (f" (or ({shape[1]},) for one component)" if vector else ""))
    check_finite("reference", ref)
    return ref


class Run:
    """One run of a rule: the step budget over the data stream, ``lr_at``, the history log and the
    divergence check. ``values(W)`` gives the history entries of the weights W; ``check(W)`` returns
    None, or what diverged (the run then raises RuntimeError); by default W must stay finite."""

    def __init__(self, rule: str, data: Stream, cfg: RunConfig, values: Callable[[torch.Tensor], dict],
                 check: Callable[[torch.Tensor], str | None] | None = None, hint: str = ""):
        self.rule, self.data, self.cfg, self.values = rule, data, cfg, values
        self.check = check or (lambda W: None if bool(torch.isfinite(W).all()) else "the weights diverged (not finite)")
        self.hint = hint or f"lower lr (now {cfg.lr})"
        self.history, self.log_every = cfg.history, cfg.log_every
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = self.epoch = 0
        self._total = None

    @property
    def total(self) -> int:
        """T, the number of updates the run will make."""
        if self._total is None:
            per_epoch, epochs, steps = self.data.batches_per_epoch(), self.cfg.epochs, self.cfg.steps
            if epochs is None and steps is None:  # whole epochs, at least DEFAULT_MIN_STEPS
                self._total = per_epoch * -(-DEFAULT_MIN_STEPS // per_epoch)
            else:  # whichever of epochs and steps ends first
                self._total = min(n for n in (steps, epochs and epochs * per_epoch) if n is not None)
        return self._total

    @property
    def lr(self) -> float:
        """lr of the update being made (inside the loop, `step` already counts it; before it, the first)."""
        return lr_at(max(self.step - 1, 0), self.cfg.lr, self.total, self.cfg.lr_decay)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield batches until the epochs / steps budget is spent. `step` counts the updates made,
        the one about to be made with the yielded batch included."""
        total = self.total
        while True:
            for xb in self.data.batches(self.gen):
                if self.step >= total:
                    return
                self.step += 1
                yield xb
            self.epoch += 1
            if self.step >= total:
                return

    def log(self, W: torch.Tensor) -> None:
        if self.history is not None:
            self.history.append({"step": self.step, "epoch": self.epoch, "lr": self.lr, **self.values(W)})

    def watch(self, W: torch.Tensor) -> None:
        """After each update: the divergence check every log_every and every 100 steps, and the log."""
        if self.step % self.log_every == 0 or self.step % 100 == 0:
            self._check(W)
            if self.step % self.log_every == 0:
                self.log(W)

    def finish(self, W: torch.Tensor) -> None:
        """After the last update: the divergence check, and the last step's log entry."""
        self._check(W)
        if self.history is not None and self.history[-1]["step"] != self.step:
            self.log(W)

    def _check(self, W: torch.Tensor) -> None:
        problem = self.check(W)
        if problem is not None:
            raise RuntimeError(f"{self.rule}: {problem} at step {self.step}; {self.hint}")



def schedule_progress(step: int, total_steps: int) -> float:
    """Where step (0-based) of total_steps lies in training: 0 at the first step, 1 at the last."""
    return step / (total_steps - 1) if total_steps > 1 else 1.0



def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed` (None: a fresh random seed, so runs differ)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def training_steps(n_samples: int, batch_size: int, epochs: int = 1) -> int:
    """Steps train_softhebb takes: every batch of `batch_size`, and a last partial batch unless it
    holds a single sample (BatchNorm needs two). 50,000 CIFAR images at batch 64 give 782 steps."""
    return int(epochs) * (int(n_samples) // int(batch_size) + (int(n_samples) % int(batch_size) >= 2))


def snapshot_steps(total_steps: int, every: int | None) -> list[int]:
    """The step after which each of train_softhebb's snapshots was taken: 0 (the initial weights),
    every `every`-th step, and the last step (not twice). every=None: [0, total_steps]."""
    every = int(every or total_steps)
    steps = list(range(0, total_steps + 1, every))
    return steps if steps[-1] == total_steps else steps + [total_steps]


# -----------------------------------------------------------------------------
# settings
