"""BM25 over the catalog texts (the `bm25s` library): a lexical retriever family.

Catalog and queries share one tokenisation (lower-cased words of two or more
characters, English stopwords dropped). A query with no indexed word scores 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ospo_fast.reward.retrievers.encoders import check_texts

Bm25Method = Literal["robertson", "lucene", "atire", "bm25l", "bm25+"]


class BM25Retriever:
    """Scores every catalog row for each query: `score(texts)` -> float32 [Q, N]."""

    def __init__(
        self,
        catalog_texts: Sequence[str],
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: Bm25Method = "lucene",
        stopwords: str | None = "en",
    ) -> None:
        import bm25s

        texts = check_texts(catalog_texts, "catalog_texts")
        if not texts:
            raise ValueError("catalog_texts must hold at least one text")
        tokens = bm25s.tokenize(texts, stopwords=stopwords, show_progress=False)
        if not tokens.vocab:
            raise ValueError("catalog_texts holds no indexable word (all empty or stopwords)")
        self.model = bm25s.BM25(k1=k1, b=b, method=method)
        self.model.index(tokens, show_progress=False)
        self.stopwords = stopwords
        self.name = "bm25"
        self.n_items = len(texts)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """BM25 score of every catalog row for each query: float32 [Q, N]."""
        import bm25s

        queries = check_texts(texts)
        out = np.zeros((len(queries), self.n_items), dtype=np.float32)  # [Q, N]
        if not queries:
            return out
        query_tokens = bm25s.tokenize(queries, stopwords=self.stopwords, return_ids=False, show_progress=False)
        for row, tokens in enumerate(query_tokens):
            if tokens:
                out[row] = self.model.get_scores(tokens)
        return out
