"""Array type aliases shared by every room: one name per dtype."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Statistics, metrics and experiment columns: float64, so sums over many samples stay exact enough.
FloatArray = npt.NDArray[np.float64]
# Embedding vectors: float32, what every backend returns and every index stores.
VectorArray = npt.NDArray[np.float32]

__all__ = ["FloatArray", "VectorArray"]
