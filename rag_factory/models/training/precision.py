"""Training precision: fp32, or bf16 autocast (fp32 master weights, bf16 matrix products).

``"auto"`` means bf16 on a GPU that supports it and fp32 on a CPU. On a CPU bf16 is a trade, not a
default, for two measured reasons:
- Its speed depends on the chip. On an AMD EPYC (Zen 4, AVX512_BF16) a MiniLM training step took
  3.1 s against 4.5 s in fp32, and encoding ran at 40 against 23 documents/s. On an Intel Xeon that
  also has AVX512_BF16 (but no AMX) the same step took 5.3 s against 2.9 s.
- It scored lower where the recipe was chosen: on SciFact validation, the default recipe in bf16
  peaked at 0.7994 against 0.8041 in fp32 (checkpoint average 0.8050 against 0.8119).
Whatever the precision, the weights stay fp32, and so does the saved model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

Precision = Literal["auto", "fp32", "bf16"]
ResolvedPrecision = Literal["fp32", "bf16"]


def resolve_precision(requested: Precision, device: str) -> ResolvedPrecision:
    """The precision a run trains and encodes in: ``requested``, with ``"auto"`` decided for ``device``."""
    if requested != "auto":
        return requested
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


@contextlib.contextmanager
def autocast(precision: ResolvedPrecision, device: str) -> Iterator[None]:
    """Run the body under bf16 autocast when ``precision`` is ``"bf16"``; otherwise change nothing."""
    if precision != "bf16":
        yield
        return
    import torch

    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        yield
