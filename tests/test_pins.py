"""The float pins (hebb_utils/pins.py) make the probe's bytes independent of the CPU, Intel or AMD.

The probe extracts activations from the offline stand-in, trains 30 steps of the CIFAR-10 layer
(PyTorch: MKL, ATen, oneDNN) and fits MiniSom and a logistic regression (numpy, scipy and
scikit-learn: OpenBLAS). Its expected hashes are committed below: the first two were printed with the
pins by an AMD EPYC (AVX2 only) and by the project's Intel Xeon (AVX-512, AMX) alike; the third (the
OpenBLAS part) was measured on the Intel Xeon. A run on any other CPU that prints other hashes fails
with what differs: the CPU, each library's branch, and which pins each hash depends on there (the
probe is rerun with each pin unset in turn).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hebb_utils.pins import PINNED_LIBRARY, PINS, pin_status

ROOT = Path(__file__).resolve().parents[1]
MIRROR = os.environ.get("HEBB_DATA_MIRROR", "").strip()

# what the pinned probe prints on every CPU (2 threads): the references' machines agree on these
EXPECTED = {
    "activations": "c0f5ea2f7967464c72d976eb867586e2ef74e965ddc33300212024277c0b415d",  # Intel Xeon and AMD EPYC
    "training": "fe7fc8a1064b9f001a1b9e8dd6e8df2cfa3cb1ac2c0c7af6cfbd0f134cf7c0e3",  # Intel Xeon and AMD EPYC
    "openblas": "f400e560a2e53820c376f700eeab9188436f2cebd9b7475d348caaae31d55af7",  # Intel Xeon
}
# a variable that changes a float path besides the pins (cleared so that nothing is inherited); OPENBLAS_L2_SIZE,
# which some machines set so that older OpenBLAS builds do not crash, is left as the machine has it
OTHERS = ("MKL_ENABLE_INSTRUCTIONS",)

PROBE = """
import hashlib, json, warnings
import numpy as np, torch
from hebb_utils import (Lateral, SoftHebbLinear, acts_checksum, extract_activations, load_language_model,
                        load_tinystories, train_softhebb)
from hebb_utils.report.tables import run_info
torch.set_num_threads(2)
model, tokenizer, info = load_language_model(None)  # offline: the stand-in SmolLM2-135M (matmuls on MKL)
acts = extract_activations(model, tokenizer, load_tinystories(6), layer=5, batch_size=3, progress=False).acts
g = torch.Generator().manual_seed(0)
X = torch.rand(64 * 30, 3072, generator=g)  # CIFAR-10-shaped pixels in [0, 1]: 30 steps of the published layer
layer = SoftHebbLinear(3072, 450, 300.0, lateral=Lateral((15, 30)), seed=42)
train_softhebb(layer, X, lr=0.08, seed=42, progress=False, backend="torch")
trained = hashlib.sha256(layer.weight.numpy().tobytes() + layer.responses(X[:256]).numpy().tobytes()).hexdigest()
# OpenBLAS: MiniSom (numpy) and scikit-learn's L-BFGS probe (scipy), at the notebooks' shapes, scaled down
from minisom import MiniSom
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(0)
Y = rng.random((2000, 576), dtype=np.float32)
som = MiniSom(8, 16, 576, random_seed=0)
som.train_random(Y, 300)
labels = (Y[:, :10].argmax(1) + (Y[:, 10:20] @ Y[:, 20:30].T).argmax(1)) % 10
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = LogisticRegression(max_iter=30).fit(Y @ Y[:64].T, labels)
openblas = hashlib.sha256(som.get_weights().tobytes() + clf.coef_.tobytes()).hexdigest()
run = run_info()
print(json.dumps({"activations": acts_checksum(acts), "training": trained, "openblas": openblas,
                  "cpu": run["cpu_vendor"] + " " + run["cpu"], "aten": run["cpu_capability"],
                  "mkl_cbwr": run["mkl_cbwr"], "openblas_kernels": run["openblas"]}))
"""


def _run(env_pins: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINS and k not in OTHERS}
    env.update(env_pins, OMP_NUM_THREADS="2")
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def diagnose(pinned: dict, rerun=_run) -> str:
    """What differs, in words: the CPU and each library's branch, the hashes that differ from EXPECTED,
    and for each the pins it depends on here (a rerun with that pin unset changes it)."""
    differ = [k for k in EXPECTED if pinned[k] != EXPECTED[k]]
    depends = {k: [] for k in differ}
    for name in PINS:
        changed = rerun({n: v for n, v in PINS.items() if n != name})
        for k in differ:
            if changed[k] != pinned[k]:
                depends[k].append(f"{name} ({PINNED_LIBRARY[name]})")
    lines = [f"the pinned probe differs from the references on this CPU: {pinned['cpu']}; "
             f"PyTorch's kernels {pinned['aten']}, MKL_CBWR={pinned['mkl_cbwr']}, "
             f"OpenBLAS kernels {pinned['openblas_kernels']}"]
    for k in differ:
        lines.append(f"  {k}: {pinned[k][:12]}... instead of {EXPECTED[k][:12]}...; on this CPU it depends on "
                     + (", ".join(depends[k]) if depends[k] else "no pin (a library branch no pin reaches)"))
    return "\n".join(lines)


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


def test_diagnose_names_the_cpu_the_hash_and_the_pins_it_depends_on():
    pinned = {**EXPECTED, "training": "f" * 64, "cpu": "AuthenticAMD AMD EPYC", "aten": "AVX2",
              "mkl_cbwr": "COMPATIBLE", "openblas_kernels": "Haswell"}
    # a rerun without MKL_CBWR changes the training hash; without any other pin nothing changes
    rerun = lambda pins: {**pinned, "training": "e" * 64} if "MKL_CBWR" not in pins else dict(pinned)  # noqa: E731
    text = diagnose(pinned, rerun)
    assert "AuthenticAMD AMD EPYC" in text and "MKL_CBWR=COMPATIBLE" in text and "OpenBLAS kernels Haswell" in text
    assert "training: ffffffffffff... instead of fe7fc8a1064b..." in text
    assert "depends on MKL_CBWR (MKL (PyTorch's matmuls))" in text
    assert "activations" not in text.split("\n", 1)[1] and "openblas:" not in text  # the hashes that agree are not named


@pytest.mark.skipif(not MIRROR, reason="HEBB_DATA_MIRROR is not set: the probe extracts from the mirror's stories")
def test_pinned_probe_prints_the_committed_hashes_and_unpinned_differs():
    pinned = _run(PINS)
    assert pinned["aten"] == "AVX2" and pinned["mkl_cbwr"] == "COMPATIBLE" and pinned["openblas_kernels"] == "Haswell"
    assert all(pinned[k] == EXPECTED[k] for k in EXPECTED), diagnose(pinned)
    unpinned = _run({})
    if unpinned["aten"] in ("AVX512", "AVX512_VNNI"):  # a CPU whose default differs from the pins
        assert unpinned["activations"] != EXPECTED["activations"] and unpinned["training"] != EXPECTED["training"], \
            "unpinned on AVX-512 gave the pinned bytes: the probe shows nothing"
    if unpinned["openblas_kernels"] not in ("Haswell", "none loaded"):
        assert unpinned["openblas"] != EXPECTED["openblas"], "OpenBLAS's own kernels gave Haswell's bytes"
