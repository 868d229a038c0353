"""Disk cache of corpus embeddings, keyed by encoder name and catalog content.

A catalog is identified by a sha256 over its texts, each prefixed by its byte length,
so ["ab", "c"] and ["a", "bc"] differ. A changed catalog, or another encoder, gets a
different key and never sees stale vectors. Files are written to a temporary name in
the same directory and moved into place with os.replace, so a crash leaves either the
old entry or none, never a partial one.

Layout: `<cache_dir>/corpus/<key>.npy` (float32 [N, d]) and `<key>.json`
({"model", "n", "dim", "catalog_sha256"}).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from ospo_fast.reward.retrievers.encoders import Encoder, check_texts


def default_cache_dir() -> Path:
    """$OSPO_CACHE_DIR, else ~/.cache/ospo_fast."""
    env = os.environ.get("OSPO_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ospo_fast"


def catalog_sha256(texts: Sequence[str]) -> str:
    """Content hash of an ordered list of texts, boundaries included."""
    items = check_texts(texts, "catalog_texts")
    digest = hashlib.sha256()
    digest.update(len(items).to_bytes(8, "little"))
    for text in items:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cache_key(model: str, catalog_hash: str) -> str:
    """File stem: a readable slug of the model plus a hash of (model, catalog)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[-48:]
    both = hashlib.sha256(f"{model}\0{catalog_hash}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{slug}-{both[:24]}"


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_corpus_embeddings(cache_dir: Path, model: str, catalog_hash: str, n: int) -> np.ndarray | None:
    """The cached float32 [n, d] matrix, or None when absent or not matching its meta."""
    stem = Path(cache_dir) / "corpus" / cache_key(model, catalog_hash)
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
        vectors = np.load(stem.with_suffix(".npy"), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    expected = {"model": model, "n": n, "catalog_sha256": catalog_hash}
    if any(meta.get(k) != v for k, v in expected.items()):
        return None
    if vectors.dtype != np.float32 or vectors.shape != (n, meta.get("dim")):
        return None
    return vectors


def save_corpus_embeddings(cache_dir: Path, model: str, catalog_hash: str, vectors: np.ndarray) -> None:
    """Store float32 [n, d] vectors; the .json is written last and marks the entry complete."""
    stem = Path(cache_dir) / "corpus" / cache_key(model, catalog_hash)
    meta = {"model": model, "n": int(vectors.shape[0]), "dim": int(vectors.shape[1]), "catalog_sha256": catalog_hash}
    write_atomic(stem.with_suffix(".npy"), lambda handle: np.save(handle, vectors, allow_pickle=False))
    write_atomic(stem.with_suffix(".json"), lambda handle: handle.write(json.dumps(meta, indent=1).encode()))


def cached_corpus_embeddings(
    encoder: Encoder,
    catalog_texts: Sequence[str],
    cache_dir: Path | None = None,
    *,
    batch_size: int = 64,
    show_progress: bool = True,
) -> np.ndarray:
    """Encode the catalog once per (encoder, catalog content); later calls read the disk."""
    texts = check_texts(catalog_texts, "catalog_texts")
    root = default_cache_dir() if cache_dir is None else Path(cache_dir)
    catalog_hash = catalog_sha256(texts)
    cached = load_corpus_embeddings(root, encoder.name, catalog_hash, len(texts))
    if cached is not None and cached.shape[1] == encoder.dim:
        return cached
    vectors = encoder.encode(texts, batch_size=batch_size, show_progress=show_progress)  # [N, d]
    save_corpus_embeddings(root, encoder.name, catalog_hash, vectors)
    return vectors
