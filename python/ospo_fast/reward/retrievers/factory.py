"""Retrievers and encoders by name: the one place that knows every kind.

``"minilm"`` is all-MiniLM-L6-v2 on torch (``backend="torch"``) or on onnxruntime
(``backend="onnx"``, the same numerics to 1e-5, faster on a CPU);
``"paraphrase-minilm-l3"`` is the unseen retriever of the shift test (ONNX);
``"bm25"`` is lexical. Any other name or path is loaded as a sentence-transformers model
from local files; a name that is none of these, no folder and not in the local model
cache raises ValueError listing what exists, before any model hub is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ospo_fast.reward.retrievers.bm25 import BM25Retriever
from ospo_fast.reward.retrievers.encoders import (
    Encoder,
    EncoderBackend,
    SentenceTransformerEncoder,
    check_texts,
    resolve_device,
)
from ospo_fast.reward.retrievers.fast_minilm import onnx_from_sentence_transformer
from ospo_fast.reward.retrievers.index import DenseRetriever, Retriever
from ospo_fast.reward.retrievers.models import is_local_model, load_sentence_transformer, minilm_name, minilm_path
from ospo_fast.reward.retrievers.onnx_encoder import load_paraphrase_minilm_l3


ENCODER_NAMES = ("minilm", "paraphrase-minilm-l3")
RETRIEVER_NAMES = (*ENCODER_NAMES, "bm25")


def retriever_problem(name: str) -> str | None:
    """Why ``name`` names no retriever this machine has (None when it does)."""
    if name in RETRIEVER_NAMES or is_local_model(name):
        return None
    return (f"{name!r} is not one of {', '.join(map(repr, RETRIEVER_NAMES))}, not a model folder, and not a "
            "sentence-transformers model in the local cache (runs never download models)")


def load_encoder(
    name: str = "minilm",
    *,
    device: str | None = None,
    backend: EncoderBackend = "torch",
    cache_dir: Path | None = None,
) -> Encoder:
    """Load an encoder by short name ("minilm", "paraphrase-minilm-l3") or sentence-transformers name/path.

    `backend="onnx"` runs a mean-pooling sentence-transformers model on onnxruntime
    (CPU), exporting it once into `cache_dir` (default: $OSPO_CACHE_DIR or
    ~/.cache/ospo_fast). "paraphrase-minilm-l3" always runs on onnxruntime.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if backend not in ("torch", "onnx"):
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
    if name == "paraphrase-minilm-l3":
        return load_paraphrase_minilm_l3(device=device)
    if name == "minilm":
        encoder = SentenceTransformerEncoder(load_sentence_transformer(minilm_path(), device), name=minilm_name())
    elif name == "bm25":
        raise ValueError("name 'bm25' is the lexical retriever, not an encoder: use build_retriever")
    elif (problem := retriever_problem(name)) is not None:
        raise ValueError(f"encoder name {problem}")
    else:
        # A local path is named by its absolute form so the cache key does not hang on the cwd.
        stable_name = str(Path(name).resolve()) if Path(name).exists() else name
        encoder = SentenceTransformerEncoder(load_sentence_transformer(name, device), name=stable_name)
    if backend == "torch":
        return encoder
    if resolve_device(device) != "cpu":
        raise ValueError(f"backend='onnx' runs on the CPU; got device={device!r}")
    return onnx_from_sentence_transformer(encoder, cache_dir=cache_dir)


def build_retriever(
    name: str,
    catalog_texts: Sequence[str],
    *,
    cache_dir: Path | None = None,
    device: str | None = None,
    backend: EncoderBackend = "torch",
) -> Retriever:
    """"bm25", or a dense retriever over `load_encoder(name, device=..., backend=...)`."""
    texts = check_texts(catalog_texts, "catalog_texts")
    if name == "bm25":
        return BM25Retriever(texts)
    encoder = load_encoder(name, device=device, backend=backend, cache_dir=cache_dir)
    return DenseRetriever(encoder, texts, cache_dir)
