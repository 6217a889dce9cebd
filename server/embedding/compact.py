"""The compact weight format of the bundled all-MiniLM-L6-v2: int8 matrices with one scale per row.

A matrix ``W`` (rows = output channels, or tokens for the word embeddings) is stored as ``<name>.q8``
(int8, ``round(W / scale)``) and ``<name>.scale`` (float32, ``max|row| / 127``); vectors stay float32.
That is a quarter of the float32 file, and the embeddings stay within cosine 0.99 of the reference
(measured by ``benchmarks/bench_compact_weights.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

QUANTIZED = ".q8"
SCALE = ".scale"


def quantize(weights: dict[str, Array]) -> dict[str, npt.NDArray[np.generic]]:
    """The compact form of ``weights``: every 2-D tensor as int8 rows with a float32 scale per row."""
    compact: dict[str, npt.NDArray[np.generic]] = {}
    for name, tensor in weights.items():
        tensor = np.asarray(tensor, dtype=np.float32)
        if tensor.ndim != 2:
            compact[name] = np.ascontiguousarray(tensor)
            continue
        scale = np.abs(tensor).max(axis=1) / np.float32(127.0)
        scale[scale == 0] = np.float32(1.0)
        compact[name + QUANTIZED] = np.clip(np.rint(tensor / scale[:, None]), -127, 127).astype(np.int8)
        compact[name + SCALE] = scale.astype(np.float32)
    return compact


def dequantize(stored: dict[str, npt.NDArray[np.generic]]) -> dict[str, Array]:
    """Float32 weights from a file in either form (plain float tensors pass through, cast to float32)."""
    weights: dict[str, Array] = {}
    for name, tensor in stored.items():
        if name.endswith(SCALE):
            continue
        if name.endswith(QUANTIZED):
            base = name[: -len(QUANTIZED)]
            scale = np.asarray(stored[base + SCALE], dtype=np.float32)
            matrix = tensor.astype(np.float32)
            matrix *= scale[:, None]
            weights[base] = matrix
        else:
            weights[name] = np.asarray(tensor).astype(np.float32, copy=False)
    return weights
