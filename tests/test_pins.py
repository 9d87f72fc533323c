"""The float pins (hebb_utils/pins.py) hold without a second machine: an extraction and a short
CIFAR-shaped training give the same bytes pinned on this CPU (its widest instructions available)
and with every library capped at AVX2, as on a CPU without AVX-512. Unpinned, on a CPU with AVX-512,
they differ: the probe is sensitive to what the pins are for."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hebb_utils.pins import PINS, pin_status

ROOT = Path(__file__).resolve().parents[1]
MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()

# an AVX2-only CPU, simulated: every library told so by its own switch (written out here, not taken from PINS)
CAPPED = {"MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
          "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_DYNAMIC": "FALSE"}

PROBE = """
import hashlib, torch
from hebb_utils import (Lateral, SoftHebbLinear, acts_checksum, extract_activations, load_language_model,
                        load_tinystories, train_softhebb)
torch.set_num_threads(2)
model, tokenizer, info = load_language_model(None)  # offline: the stand-in SmolLM2-135M (matmuls on MKL)
acts = extract_activations(model, tokenizer, load_tinystories(6), layer=5, batch_size=3, progress=False).acts
g = torch.Generator().manual_seed(0)
X = torch.rand(64 * 30, 3072, generator=g)  # CIFAR-10-shaped pixels in [0, 1]: 30 steps of the published layer
layer = SoftHebbLinear(3072, 450, 300.0, lateral=Lateral((15, 30)), seed=42)
train_softhebb(layer, X, lr=0.08, seed=42, progress=False, backend="torch")
trained = hashlib.sha256(layer.weight.numpy().tobytes() + layer.responses(X[:256]).numpy().tobytes()).hexdigest()
print(acts_checksum(acts), trained, torch.backends.cpu.get_cpu_capability())
"""


def _run(env_pins: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in CAPPED}  # nothing inherited from make's exports
    env.update(env_pins, OMP_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.split()


def test_makefile_exports_the_pins():
    exported = dict(re.findall(r"^export (\w+) \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M))
    assert {k: exported.get(k) for k in PINS} == PINS


def test_pin_status_says_what_is_pinned(monkeypatch):
    for name, value in PINS.items():
        monkeypatch.setenv(name, value.lower())
    assert pin_status()["all_pinned"] is True
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    status = pin_status()
    assert status["ONEDNN_MAX_CPU_ISA"] == "unset" and status["all_pinned"] is False


@pytest.mark.skipif(not MIRROR, reason="HEBB_DATA_MIRROR is not set: the probe extracts from the mirror's stories")
def test_pinned_equals_capped_at_avx2_and_unpinned_differs():
    pinned, capped, unpinned = _run(PINS), _run(CAPPED), _run({})
    assert pinned[2] == capped[2] == "AVX2"
    assert pinned[:2] == capped[:2], "the pins leave a float path to the CPU: pinned and AVX2-capped runs differ"
    if unpinned[2] in ("AVX512", "AVX512_VNNI"):  # a CPU whose default differs from the pins
        assert unpinned[:2] != capped[:2], "unpinned on AVX-512 gave AVX2's bytes: the probe shows nothing"
