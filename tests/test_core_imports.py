"""The core imports with torch and numpy alone: a GPU image without datasets, pandas, scikit-learn,
matplotlib, transformers or MiniSom must still import the package and train a layer."""
import subprocess
import sys
import textwrap

BLOCKED = ("datasets", "transformers", "pandas", "pyarrow", "sklearn", "scipy", "matplotlib", "minisom", "papermill",
           "safetensors", "IPython")

SCRIPT = textwrap.dedent(f"""
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"blocked for this test: {{name}}")
            return None

    sys.meta_path.insert(0, Block())
    import torch
    import hebb_utils
    from hebb_utils import Lateral, SoftHebbLinear, train_softhebb, topographic_error, sanger
    import hebb_utils.kernels, hebb_utils.backend, hebb_utils.parallel
    X = torch.randn(500, 8)
    layer, _ = train_softhebb(SoftHebbLinear(8, 12, 20.0, lateral=Lateral((3, 4)), seed=0), X, progress=False)
    assert 0 <= topographic_error(layer.responses(X), (3, 4)) <= 1
    assert sanger(X, 2, steps=20).shape == (2, 8)
    print("core ok", sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}))
""")


def test_core_imports_with_torch_and_numpy_alone():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "core ok []" in run.stdout, run.stdout
