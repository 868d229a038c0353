"""Top-k search over corpus embeddings, and the retrievers built on them.

`ExactIndex` is exact inner-product top-k: faiss IndexFlatIP when faiss imports, the
project's own numpy path otherwise (chunked matmul + partition). Both follow the
package's tie rule: score descending, equal scores to the lower catalog row first.
faiss alone does not, so its results are reordered, and a query whose k-th score is
tied with the (k+1)-th is recomputed exactly. `HnswIndex` is approximate (faiss HNSW,
M=32, efSearch=200) for catalogs of millions of items.

Results always have k columns; where k exceeds the catalog, ids are -1 and scores -inf.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from ospo_fast.reward.retrievers.cache import cached_corpus_embeddings
from ospo_fast.reward.retrievers.encoders import Encoder, check_texts

SearchBackend = Literal["auto", "faiss", "numpy"]
# Cap on the [rows, N] score block one chunk of the numpy path holds (float32 elements).
CHUNK_ELEMENTS = 1 << 24


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def check_corpus(corpus: np.ndarray) -> np.ndarray:
    arr = np.asarray(corpus)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"corpus must be 2-d [N, d] with N, d >= 1, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"corpus must be floating point, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("corpus holds NaN or inf")
    return arr


def check_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    arr = np.asarray(queries)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"queries must be 2-d [Q, {dim}], got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"queries must be floating point, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("queries hold NaN or inf")
    return arr


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return int(k)


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of float32 [q, N] (k <= N) under the tie rule."""
    q, n = scores.shape
    kth = np.partition(scores, n - k, axis=1)[:, n - k : n - k + 1]  # [q, 1] k-th largest
    above = scores > kth  # [q, N]
    tied = scores == kth  # [q, N]
    room = k - above.sum(axis=1, keepdims=True)  # [q, 1] >= 1: tied slots left
    # Row-wise running count of ties: the lowest rows win the remaining slots.
    take = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))  # [q, N], k per row
    ids = np.nonzero(take)[1].reshape(q, k).astype(np.int64)  # [q, k] ascending row
    values = np.take_along_axis(scores, ids, axis=1)  # [q, k]
    order = np.argsort(-values, axis=1, kind="stable")  # stable: ties keep ascending row
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(ids, order, axis=1)


def order_by_tie_rule(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, then by id ascending."""
    order = np.lexsort((ids, -scores), axis=-1)  # [Q, k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def pad_results(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen [Q, k'] results to k columns with score -inf and id -1."""
    missing = k - scores.shape[1]
    if missing <= 0:
        return scores, ids
    q = scores.shape[0]
    return (
        np.concatenate([scores, np.full((q, missing), -np.inf, dtype=np.float32)], axis=1),
        np.concatenate([ids, np.full((q, missing), -1, dtype=np.int64)], axis=1),
    )


class ExactIndex:
    """Exact inner-product top-k over float32 [N, d] rows."""

    def __init__(self, corpus: np.ndarray, *, backend: SearchBackend = "auto") -> None:
        if backend not in ("auto", "faiss", "numpy"):
            raise ValueError(f"backend must be 'auto', 'faiss' or 'numpy', got {backend!r}")
        if backend == "faiss" and not faiss_available():
            raise ImportError("backend='faiss' needs the faiss package (faiss-cpu or faiss-gpu)")
        self.corpus = check_corpus(corpus)  # [N, d]
        self.n_items, self.dim = self.corpus.shape
        self.backend = ("faiss" if faiss_available() else "numpy") if backend == "auto" else backend
        self.faiss_index = None
        if self.backend == "faiss":
            import faiss

            self.faiss_index = faiss.IndexFlatIP(self.dim)
            self.faiss_index.add(self.corpus)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores float32 [Q, k], ids int64 [Q, k])."""
        q = check_queries(queries, self.dim)  # [Q, d]
        k = check_k(k)
        kept = min(k, self.n_items)
        if self.backend == "faiss":
            scores, ids = self.search_faiss(q, kept)
        else:
            scores, ids = self.search_numpy(q, kept)
        return pad_results(scores, ids, k)

    def search_numpy(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.empty((queries.shape[0], k), dtype=np.float32)  # [Q, k]
        ids = np.empty((queries.shape[0], k), dtype=np.int64)  # [Q, k]
        rows = max(1, CHUNK_ELEMENTS // self.n_items)
        for start in range(0, queries.shape[0], rows):
            block = queries[start : start + rows] @ self.corpus.T  # [rows, N]
            scores[start : start + rows], ids[start : start + rows] = top_k_rows(block, k)
        return scores, ids

    def search_faiss(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # One extra column shows whether the k-th score is tied with a row beyond the cut.
        extra = int(k < self.n_items)
        scores, ids = self.faiss_index.search(queries, k + extra)  # [Q, k + extra]
        boundary_tied = np.nonzero(scores[:, k - 1] == scores[:, k])[0] if extra else np.empty(0, np.int64)
        scores, ids = order_by_tie_rule(scores[:, :k], ids[:, :k].astype(np.int64))
        if boundary_tied.size:
            scores[boundary_tied], ids[boundary_tied] = self.search_numpy(queries[boundary_tied], k)
        return scores, ids


class HnswIndex:
    """Approximate inner-product top-k (faiss HNSW) for catalogs of millions of items."""

    def __init__(self, corpus: np.ndarray, *, m: int = 32, ef_search: int = 200, ef_construction: int = 40) -> None:
        if not faiss_available():
            raise ImportError("HnswIndex needs the faiss package (faiss-cpu or faiss-gpu)")
        import faiss

        self.corpus = check_corpus(corpus)  # [N, d]
        self.n_items, self.dim = self.corpus.shape
        self.faiss_index = faiss.IndexHNSWFlat(self.dim, m, faiss.METRIC_INNER_PRODUCT)
        self.faiss_index.hnsw.efConstruction = ef_construction
        self.faiss_index.hnsw.efSearch = ef_search
        step = 65_536
        for start in tqdm(range(0, self.n_items, step), desc="hnsw add", unit="chunk", disable=self.n_items <= step):
            self.faiss_index.add(self.corpus[start : start + step])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k per query: (scores float32 [Q, k], ids int64 [Q, k])."""
        q = check_queries(queries, self.dim)
        k = check_k(k)
        scores, ids = self.faiss_index.search(q, min(k, self.n_items))
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        scores, ids = order_by_tie_rule(scores, ids.astype(np.int64))
        return pad_results(scores, ids, k)


@runtime_checkable
class Retriever(Protocol):
    """Scores every catalog row for a batch of query texts."""

    name: str
    n_items: int

    def score(self, texts: Sequence[str]) -> np.ndarray:  # float32 [Q, N]
        ...


class DenseRetriever:
    """An encoder plus the catalog's embeddings (cached on disk): cosine scores."""

    def __init__(
        self,
        encoder: Encoder,
        catalog_texts: Sequence[str],
        cache_dir: Path | None = None,
        *,
        batch_size: int = 64,
        show_progress: bool = True,
    ) -> None:
        texts = check_texts(catalog_texts, "catalog_texts")
        if not texts:
            raise ValueError("catalog_texts must hold at least one text")
        self.encoder = encoder
        self.name = encoder.name
        self.batch_size = batch_size
        # Where this retriever's derived files (corpus embeddings, ONNX exports) are kept.
        self.cache_dir = cache_dir
        self.corpus = cached_corpus_embeddings(
            encoder, texts, cache_dir, batch_size=batch_size, show_progress=show_progress
        )  # [N, d]
        self.n_items = self.corpus.shape[0]
        self.index: ExactIndex | None = None

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query embeddings: float32 [Q, d], unit rows."""
        return self.encoder.encode(texts, batch_size=self.batch_size)

    def score_embeddings(self, queries: np.ndarray) -> np.ndarray:
        """queries float32 [Q, d] @ corpus.T -> float32 [Q, N]."""
        q = check_queries(queries, self.corpus.shape[1])
        out = np.empty((q.shape[0], self.n_items), dtype=np.float32)  # [Q, N]
        rows = max(1, CHUNK_ELEMENTS // self.n_items)
        # Chunks written in place through out=: no second [Q, N] temporary at any time.
        for start in range(0, q.shape[0], rows):
            np.matmul(q[start : start + rows], self.corpus.T, out=out[start : start + rows])
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each query text to every catalog row: float32 [Q, N]."""
        return self.score_embeddings(self.embed_queries(texts))

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k catalog rows per query: (scores float32 [Q, k], ids int64 [Q, k])."""
        if self.index is None:
            self.index = ExactIndex(self.corpus)
        return self.index.search(self.embed_queries(texts), k)
