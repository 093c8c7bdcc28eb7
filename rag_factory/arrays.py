"""Array type aliases shared by every room: one name per dtype."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Statistics, metrics and experiment columns: float64, so sums over many samples stay exact enough.
FloatArray = NDArray[np.float64]
# Embedding vectors: float32, what every backend returns and every index stores.
VectorArray = NDArray[np.float32]

__all__ = ["FloatArray", "VectorArray"]
