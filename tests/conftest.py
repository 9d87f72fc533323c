import os

# The Triton kernels are tested on the CPU in Triton's interpreter. The variable must be set
# before triton is first imported, so it is set here, before any test module loads.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
