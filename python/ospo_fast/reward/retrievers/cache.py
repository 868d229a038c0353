"""Disk cache of corpus embeddings, keyed by encoder name and catalog content.

A catalog is identified by a sha256 over its texts, each prefixed by its byte length,
so ["ab", "c"] and ["a", "bc"] differ. A changed catalog, or another encoder, gets a
different key and never sees stale vectors. Files are written to a temporary name in
the same directory and moved into place with os.replace, so a crash leaves either the
old entry or none, never a partial one.

Layout: `<cache_dir>/corpus/<key>.npy` (float32 [N, d]) and `<key>.json`
({"model", "n", "dim", "catalog_sha256", "vectors_sha256"}).

A cached entry is used only when its vectors match the sha256 stored beside them and
are finite. Anything else (a truncated or bit-flipped file, rows reordered or swapped
for another file of the same shape, a NaN) is recomputed and rewritten, with a
RuntimeWarning naming the file: a bad entry never scores a run, and never needs
deleting by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
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


def vectors_sha256(vectors: np.ndarray) -> str:
    """Digest of a float32 matrix's shape and C-order bytes."""
    digest = hashlib.sha256(f"{vectors.dtype.str}{vectors.shape}".encode())
    digest.update(np.ascontiguousarray(vectors).tobytes())
    return digest.hexdigest()


def _entry_paths(cache_dir: Path, model: str, catalog_hash: str) -> tuple[Path, Path]:
    stem = Path(cache_dir) / "corpus" / cache_key(model, catalog_hash)
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def load_corpus_embeddings(cache_dir: Path, model: str, catalog_hash: str, n: int) -> np.ndarray | None:
    """The cached float32 [n, d] matrix, or None when there is no entry or it fails a check
    (then with a RuntimeWarning that names the file and the check)."""
    npy, meta_path = _entry_paths(cache_dir, model, catalog_hash)
    if not npy.exists() and not meta_path.exists():
        return None
    problem = _entry_problem(npy, meta_path, model, catalog_hash, n)
    if isinstance(problem, str):
        warnings.warn(f"corpus embedding cache {npy}: {problem}; recomputing it", RuntimeWarning, stacklevel=3)
        return None
    return problem


def _entry_problem(npy: Path, meta_path: Path, model: str, catalog_hash: str, n: int) -> np.ndarray | str:
    """The entry's vectors, or what is wrong with it."""
    try:
        meta = json.loads(meta_path.read_text())
        # Memory-mapped first: a damaged header may claim any shape, and must not be allocated.
        mapped = np.load(npy, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # a damaged file makes the readers raise anything, even tokenize.TokenError
        return f"unreadable ({type(error).__name__}: {error})"
    if not isinstance(meta, dict):
        return f"{meta_path.name} is not a JSON object"
    if mapped.dtype != np.float32 or mapped.shape != (n, meta.get("dim")):
        return f"holds {mapped.dtype} {mapped.shape}, not float32 {(n, meta.get('dim'))}"
    vectors = np.array(mapped)  # [n, d], read into memory
    expected = {"model": model, "n": n, "catalog_sha256": catalog_hash}
    wrong = [key for key, value in expected.items() if meta.get(key) != value]
    if wrong:
        return f"{meta_path.name} records {wrong[0]} = {meta.get(wrong[0])!r}, not {expected[wrong[0]]!r}"
    if meta.get("vectors_sha256") != vectors_sha256(vectors):
        return f"its vectors do not match the sha256 in {meta_path.name} (changed, reordered or corrupted)"
    if not np.isfinite(vectors).all():
        return "holds NaN or inf"
    return vectors


def save_corpus_embeddings(cache_dir: Path, model: str, catalog_hash: str, vectors: np.ndarray) -> None:
    """Store float32 [n, d] vectors; the .json (with their digest) is written last and marks
    the entry complete. Non-finite vectors are refused: an encoder that made them is broken."""
    if not np.isfinite(vectors).all():
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))[:5].tolist()
        raise FloatingPointError(f"encoder {model!r} produced NaN or inf embeddings for catalog rows {bad}")
    npy, meta_path = _entry_paths(cache_dir, model, catalog_hash)
    meta = {"model": model, "n": int(vectors.shape[0]), "dim": int(vectors.shape[1]), "catalog_sha256": catalog_hash,
            "vectors_sha256": vectors_sha256(vectors)}
    write_atomic(npy, lambda handle: np.save(handle, vectors, allow_pickle=False))
    write_atomic(meta_path, lambda handle: handle.write(json.dumps(meta, indent=1).encode()))


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
    vectors = np.asarray(encoder.encode(texts, batch_size=batch_size, show_progress=show_progress))  # [N, d]
    save_corpus_embeddings(root, encoder.name, catalog_hash, vectors)
    return vectors
