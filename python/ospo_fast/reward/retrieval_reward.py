"""The retrieval reward r(x, y) = NDCG@pool of the answer's query (spec §1-2).

Only the answer of a completion is scored (:func:`extract_answer`, in the reward's
``answer_format``: lenient as the reference, or strict, a closed ``<answer>`` only). All
queries of a call are deduplicated as (text, pool) pairs, embedded in one batched
encoder pass, and scored by one fused NDCG call with the global top-k rule: a pool item
counts only when it ranks in the top k of the whole catalog. Empty or blank queries
score 0 and are never encoded. So does a query that ties every catalog row (BM25 junk
that matches no catalog word, an all-zero embedding): it ranks nothing, and the tie rule
would otherwise pay it for the pool items in the lowest rows
(:mod:`ospo_fast.reward.degenerate_queries`).

Where it runs: with ``device=None`` (the default) everything is numpy and the C++ core
(the screened CPU kernel, an onnxruntime encoder). With a torch device, the corpus
embeddings are copied there once, queries are embedded there, and the fused NDCG runs
there (on CUDA: the Triton kernel); ``backend`` picks the kernels
(:mod:`ospo_fast.ops.dispatch`). Rewards always come back as float64 numpy ``[B]``.

Gains from the ESCI labels of ``pool_relevance`` (E/S/C/I = 3/2/1/0):
``binary`` (the reference): exact = 1, else 0; ``graded``: 3/2/1/0; ``exp``: 2^g − 1.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ospo_fast.ops.device import is_tensor, to_numpy
from ospo_fast.ops.ndcg import PreparedCorpus, pool_ndcg, pool_ndcg_dense, prepare_corpus
from ospo_fast.types import AnswerFormat, Backend, GainMode, RewardGain, check_choice
from ospo_fast.reward.answer import extract_answer, is_blank
from ospo_fast.reward.degenerate_queries import can_tie, dense_ties, lexical_ties, spread_directions
from ospo_fast.reward.metrics import ranking_metrics
from ospo_fast.reward.query_plan import QueryPlan, check_finite, plan_queries

METRIC_CUTOFFS = (10, 20, 50, 100, 1000)
ESCI_LABELS = (0, 1, 2, 3)
EXACT = 3
# Rows of the [rows, N] score blocks built by metrics() and the lexical path.
SCORE_BLOCK_ROWS = 256


@dataclass(frozen=True)
class Pools:
    """Candidate pools of a batch, identical pools stored once.

    items     [S, P] int64 catalog rows, -1 padding
    relevance [S, P] float64 relevance for the core's gain mode (see ``RetrievalReward``)
    labels    [S, P] int64 ESCI labels, -1 padding
    of_sample [len(samples)] int64 the pool row of each sample
    """

    items: np.ndarray
    relevance: np.ndarray
    labels: np.ndarray
    of_sample: np.ndarray


def _sample_name(sample: Mapping[str, Any], index: int) -> str:
    query_id = sample.get("query_id") if hasattr(sample, "get") else None
    return f"sample {index} (query_id {query_id!r})" if query_id is not None else f"sample {index}"


def _field(sample: Mapping[str, Any], name: str, index: int) -> list:
    try:
        value = sample[name]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"{_sample_name(sample, index)} has no {name!r} field") from err
    if isinstance(value, str):
        raise ValueError(f"{_sample_name(sample, index)}: {name!r} must be a list, got a str")
    return list(value)


def lookup_rows(ranked: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each ``ranked [B, L]`` catalog row, its value among ``keys [B, K]`` -> ``values [B, K]``.

    Rows absent from their query's keys, and -1 entries, get 0. Memory is O(B·(L + K)).
    """
    span = int(max(ranked.max(initial=0), keys.max(initial=0))) + 1
    batch = np.arange(len(keys), dtype=np.int64)[:, None]  # [B, 1]
    real_key = keys >= 0
    key_codes = (batch * span + keys)[real_key]  # [R]
    order = np.argsort(key_codes, kind="stable")
    key_codes, key_values = key_codes[order], values[real_key][order]
    if len(key_codes) == 0:
        return np.zeros(ranked.shape, dtype=np.float64)
    codes = batch * span + ranked  # [B, L]
    at = np.minimum(np.searchsorted(key_codes, codes), len(key_codes) - 1)  # [B, L]
    found = (key_codes[at] == codes) & (ranked >= 0)
    return np.where(found, key_values[at], 0.0)


def is_dense(retriever: Any) -> bool:
    """Dense retrievers expose their corpus embeddings and a query embedder."""
    return getattr(retriever, "corpus", None) is not None and callable(getattr(retriever, "embed_queries", None))


class RetrievalReward:
    """NDCG@pool reward of ``retriever`` over the catalog ``catalog_ids`` (one id per row).

    ``answer_format``: which text of a completion is scored (:mod:`ospo_fast.reward.answer`).
    ``device``: None scores with numpy and the C++ core; a torch device (``"cuda"``,
    ``"cuda:1"``, ``"cpu"``) keeps the corpus, the query embeddings and the fused NDCG
    there. ``backend``: the kernels of the fused NDCG (``"auto"`` follows the device;
    ``"triton"`` on a CPU device needs ``TRITON_INTERPRET=1``).
    """

    def __init__(
        self,
        retriever: Any,
        catalog_ids: Sequence[str],
        *,
        k: int = 1000,
        gain: RewardGain = "binary",
        answer_format: AnswerFormat = "lenient",
        device: Any = None,
        backend: Backend = "auto",
    ) -> None:
        check_choice("gain", gain, RewardGain)
        check_choice("answer_format", answer_format, AnswerFormat)
        check_choice("backend", backend, Backend)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        ids = [str(i) for i in catalog_ids]
        n_items = int(retriever.n_items)
        if len(ids) != n_items:
            raise ValueError(f"catalog_ids has {len(ids)} ids but the retriever ranks {n_items} catalog rows")
        self.row_of = {pid: row for row, pid in enumerate(ids)}
        if len(self.row_of) != len(ids):
            repeated = next(pid for pid in ids if ids.count(pid) > 1)
            raise ValueError(f"catalog_ids must be unique; {repeated!r} appears more than once")
        self.retriever = retriever
        self.dense = is_dense(retriever)
        self.k = int(k)
        self.gain: RewardGain = gain
        self.core_gain: GainMode = "exp" if gain == "exp" else "linear"
        self.answer_format: AnswerFormat = answer_format
        self.device = resolve_torch_device(device)
        self.backend: Backend = backend
        self._prepared_corpus: PreparedCorpus | None = None  # packed on first use, like an index
        self._spread_directions: tuple[np.ndarray | None] | None = None  # found on first use

    @property
    def prepared_corpus(self) -> PreparedCorpus:
        """The corpus embeddings prepared once for the fused NDCG, on this reward's device."""
        if not self.dense:
            raise TypeError(f"{self.retriever.name!r} is not a dense retriever: it has no corpus embeddings")
        if self._prepared_corpus is None:
            self._prepared_corpus = prepare_corpus(self.retriever.corpus, device=self.device)
        return self._prepared_corpus

    @property
    def spread_directions(self) -> np.ndarray | None:
        """The directions in which the corpus embeddings differ (``degenerate_queries``)."""
        if self._spread_directions is None:
            self._spread_directions = (spread_directions(np.asarray(self.retriever.corpus, dtype=np.float32)),)
        return self._spread_directions[0]

    def embeddings_tie(self, embeddings: Any) -> Any:
        """bool ``[U]``: query embeddings ``[U, d]`` that tie every catalog row (numpy, or a
        tensor on the embeddings' device)."""
        if can_tie(self.retriever.n_items):
            return dense_ties(embeddings, self.spread_directions)
        if is_tensor(embeddings):
            return embeddings.new_zeros(len(embeddings), dtype=bool)
        return np.zeros(len(embeddings), dtype=bool)

    def scores_tie(self, scores: np.ndarray) -> np.ndarray:
        """bool ``[Q]``: rows of ``scores [Q, N]`` that tie every catalog row."""
        if not can_tie(scores.shape[1]):
            return np.zeros(scores.shape[0], dtype=bool)
        return lexical_ties(scores)

    # ------------------------------------------------------------------ pools

    def catalog_rows(self, product_ids: Sequence[str], what: str) -> np.ndarray:
        """int64 catalog rows of ``product_ids``; an unknown id raises ValueError naming ``what``."""
        try:
            return np.fromiter((self.row_of[str(pid)] for pid in product_ids), dtype=np.int64, count=len(product_ids))
        except KeyError as err:
            raise ValueError(f"{what}: product id {err.args[0]!r} is not in the catalog") from None

    def relevance_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """ESCI labels -> the relevance the core's gain mode turns into this reward's gain."""
        if self.gain == "binary":
            return (labels == EXACT).astype(np.float64)
        return np.maximum(labels, 0).astype(np.float64)

    def gain_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """ESCI labels -> the gain used in DCG (padding -1 -> 0)."""
        relevance = self.relevance_of_labels(labels)
        gains = np.exp2(relevance) - 1.0 if self.core_gain == "exp" else relevance
        return gains * (labels >= 0)

    def load_pools(self, samples: Sequence[Mapping[str, Any]]) -> Pools:
        """Map each sample's ``candidate_pool``/``pool_relevance`` to catalog rows, once per distinct pool."""
        pool_row: dict[tuple, int] = {}
        pools: list[tuple[np.ndarray, np.ndarray]] = []
        of_sample = np.empty(len(samples), dtype=np.int64)
        for i, sample in enumerate(samples):
            ids = tuple(str(p) for p in _field(sample, "candidate_pool", i))
            labels = tuple(int(g) for g in _field(sample, "pool_relevance", i))
            key = (ids, labels)
            if key not in pool_row:
                name = _sample_name(sample, i)
                if len(ids) != len(labels):
                    raise ValueError(
                        f"{name}: candidate_pool has {len(ids)} ids but pool_relevance {len(labels)} labels"
                    )
                if not set(labels) <= set(ESCI_LABELS):
                    raise ValueError(f"{name}: pool_relevance must hold ESCI labels 0-3, got {sorted(set(labels))}")
                if len(set(ids)) != len(ids):
                    raise ValueError(f"{name}: candidate_pool repeats a product id")
                pool_row[key] = len(pools)
                pools.append((self.catalog_rows(ids, f"{name} candidate_pool"), np.asarray(labels, dtype=np.int64)))
            of_sample[i] = pool_row[key]
        width = max((len(items) for items, _ in pools), default=0)
        items = np.full((len(pools), width), -1, dtype=np.int64)  # [S, P]
        labels_out = np.full((len(pools), width), -1, dtype=np.int64)  # [S, P]
        for row, (pool_items, pool_labels) in enumerate(pools):
            items[row, : len(pool_items)] = pool_items
            labels_out[row, : len(pool_labels)] = pool_labels
        return Pools(items, self.relevance_of_labels(labels_out), labels_out, of_sample)

    # ------------------------------------------------------------------ scoring

    def embed(self, texts: Sequence[str]) -> Any:
        """Query embeddings ``[U, d]`` float32: numpy, or a tensor on this reward's device."""
        if self.device is None:
            return self.retriever.embed_queries(texts)
        encoder = self.retriever.encoder
        if callable(getattr(encoder, "encode_token_tensors", None)):
            return encoder.encode(texts, batch_size=self.retriever.batch_size, device=self.device)
        return on_device(self.device, self.retriever.embed_queries(texts))

    def score_pairs(self, plan: QueryPlan, pools: Pools) -> tuple[Any, dict[str, float]]:
        """NDCG@pool of each (text, pool) pair of ``plan``: ``[C]`` (numpy float64, or a tensor
        on this reward's device for a dense retriever), plus stage seconds."""
        if not plan.texts:
            return np.zeros(0, dtype=np.float64), {"encode": 0.0, "ndcg": 0.0}
        if self.dense:
            start = time.perf_counter()
            embeddings = self.embed(plan.texts)  # [U, d]
            encoded = time.perf_counter()
            values = self.score_embedded(embeddings, plan, pools)  # [C]
            return values, {"encode": encoded - start, "ndcg": time.perf_counter() - encoded}
        return self._score_pairs_lexical(plan, pools)

    def score_embedded(self, embeddings: Any, plan: QueryPlan, pools: Pools) -> Any:
        """Fused NDCG@pool of each pair of ``plan`` from its text's embedding ``[U, d]``: ``[C]``.

        For callers that embed ``plan.texts`` themselves (the coalition evaluator packs
        token ids); a dense retriever only. numpy embeddings give float64 numpy; a tensor
        gives a tensor on its device (float32 on CUDA).
        """
        if not self.dense:
            raise TypeError(f"score_embedded needs a dense retriever; {self.retriever.name!r} has no corpus embeddings")
        dim = self.retriever.corpus.shape[1]
        if tuple(embeddings.shape) != (len(plan.texts), dim):
            raise ValueError(
                f"embeddings must be [U, d] = [{len(plan.texts)}, {dim}], got {tuple(embeddings.shape)}"
            )
        if not plan.texts:
            return embeddings.new_zeros(0) if is_tensor(embeddings) else np.zeros(0, dtype=np.float64)
        if is_tensor(embeddings):
            device = embeddings.device
            pair_text = on_device(device, plan.pair_text)
            queries = embeddings[pair_text]  # [C, d]
            pool_arrays = [on_device(device, a) for a in (pools.items, pools.relevance, plan.pair_pool)]
        else:
            pair_text = plan.pair_text
            queries = embeddings[pair_text]  # [C, d]
            pool_arrays = [pools.items, pools.relevance, plan.pair_pool]
        values = pool_ndcg_dense(
            queries, self.prepared_corpus, *pool_arrays, self.k, self.core_gain, backend=self.backend
        )  # [C]
        tied = self.embeddings_tie(embeddings)[pair_text]  # [C]
        return values.masked_fill(tied, 0.0) if is_tensor(values) else np.where(tied, 0.0, values)

    def _score_pairs_lexical(self, plan: QueryPlan, pools: Pools) -> tuple[np.ndarray, dict[str, float]]:
        # Pairs are sorted by text, so a block of texts owns a contiguous run of pairs.
        values = np.empty(len(plan.pair_text), dtype=np.float64)  # [C]
        seconds = {"encode": 0.0, "ndcg": 0.0}
        for first in range(0, len(plan.texts), SCORE_BLOCK_ROWS):
            start = time.perf_counter()
            scores = np.asarray(self.retriever.score(plan.texts[first : first + SCORE_BLOCK_ROWS]))  # [rows, N]
            scored = time.perf_counter()
            lo, hi = np.searchsorted(plan.pair_text, [first, first + SCORE_BLOCK_ROWS])
            pool_rows = plan.pair_pool[lo:hi]
            text_rows = plan.pair_text[lo:hi] - first
            ndcg = pool_ndcg(
                scores[text_rows], pools.items[pool_rows], pools.relevance[pool_rows], self.k, self.core_gain
            )
            values[lo:hi] = np.where(self.scores_tie(scores)[text_rows], 0.0, ndcg)
            seconds["encode"] += scored - start
            seconds["ndcg"] += time.perf_counter() - scored
        return values, seconds

    def score_answers(self, answers: Sequence[str], samples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Rewards of already extracted answer texts: float64 ``[B]``."""
        if len(answers) != len(samples):
            raise ValueError(f"got {len(answers)} answers but {len(samples)} samples")
        pools = self.load_pools(samples)
        plan = plan_queries(answers, pools.of_sample, len(pools.items))
        values, _ = self.score_pairs(plan, pools)
        return check_finite(np.asarray(to_numpy(plan.scatter(values)), dtype=np.float64), "rewards")

    def __call__(self, completions: Sequence[str], samples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Reward of each completion on its sample: float64 ``[B]``."""
        return self.score_answers([extract_answer(c, self.answer_format)[0] for c in completions], samples)

    # ------------------------------------------------------------------ evaluation

    def _score_rows(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``[len(texts), N]`` similarity of each text to every catalog row, and which
        texts tie every row (bool ``[len(texts)]``)."""
        if self.dense:
            embeddings = self.retriever.embed_queries(texts)  # [rows, d]
            return embeddings @ self.retriever.corpus.T, self.embeddings_tie(embeddings)
        scores = np.asarray(self.retriever.score(texts), dtype=np.float32)
        return scores, self.scores_tie(scores)

    def _rank(self, answers: list[str], real: np.ndarray, pool_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Catalog top rows ``[B, depth]`` (-1 for blank answers) and global ranks of pool items ``[B, P]``.

        Ranking: score descending, ties to the lower catalog row (a stable sort of −score).
        Padding, blank answers and answers that tie every catalog row get rank int64 max,
        so they are never kept, and no top rows.
        """
        depth = min(max(METRIC_CUTOFFS), self.retriever.n_items)
        top = np.full((len(answers), depth), -1, dtype=np.int64)  # [B, depth]
        pool_rank = np.full(pool_items.shape, np.iinfo(np.int64).max, dtype=np.int64)  # [B, P]
        for first in range(0, len(real), SCORE_BLOCK_ROWS):
            block = real[first : first + SCORE_BLOCK_ROWS]
            scores, tied = self._score_rows([answers[b] for b in block])
            rows = block[~tied]
            order = np.argsort(-scores[~tied], axis=1, kind="stable")  # [rows, N]
            rank = np.empty_like(order)  # [rows, N] rank of each catalog row
            np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
            top[rows] = order[:, :depth]
            items = pool_items[rows]  # [rows, P]
            pool_rank[rows] = np.where(
                items < 0, pool_rank[rows], np.take_along_axis(rank, np.maximum(items, 0), axis=1)
            )
        return top, pool_rank

    def metrics(self, completions: Sequence[str], samples: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """NDCG, Recall, MRR and AP at k in (10, 20, 50, 100, 1000) and @pool: float64 ``[B]`` each.

        ``@k`` ranks the whole catalog; ``@pool`` ranks the pool items kept by the global
        top-k rule (``ndcg@pool`` is the reward). Relevant items for Recall/MRR/AP are the
        sample's ``answer`` targets; NDCG gains come from the pool labels with this
        reward's gain. Definitions: :mod:`ospo_fast.reward.metrics`. Blank answers score 0.
        """
        if len(completions) != len(samples):
            raise ValueError(f"got {len(completions)} completions but {len(samples)} samples")
        answers = [extract_answer(c, self.answer_format)[0] for c in completions]
        pools = self.load_pools(samples)
        pool_items = pools.items[pools.of_sample]  # [B, P]
        pool_gains = self.gain_of_labels(pools.labels[pools.of_sample])  # [B, P]
        targets = [
            self.catalog_rows(_field(s, "answer", i), f"{_sample_name(s, i)} answer") for i, s in enumerate(samples)
        ]
        n_relevant = np.array([len(np.unique(t)) for t in targets], dtype=np.int64)  # [B]
        width = max((len(t) for t in targets), default=0)
        target_rows = np.full((len(samples), width), -1, dtype=np.int64)  # [B, T]
        for b, rows in enumerate(targets):
            target_rows[b, : len(rows)] = rows

        real = np.flatnonzero([not is_blank(a) for a in answers])
        top, pool_rank = self._rank(answers, real, pool_items)
        target_hit = np.ones(target_rows.shape, dtype=np.float64)  # [B, T]
        hits = lookup_rows(top, target_rows, target_hit) > 0  # [B, depth]
        gains = lookup_rows(top, pool_items, pool_gains)  # [B, depth]
        out = ranking_metrics(hits, gains, n_relevant, pool_gains, {str(c): c for c in METRIC_CUTOFFS})
        # @pool: the pool items inside the global top k, in ranking order, -1 after them.
        kept_order = np.argsort(pool_rank, axis=1, kind="stable")  # [B, P]
        kept = np.take_along_axis(pool_items, kept_order, axis=1)  # [B, P]
        kept[np.take_along_axis(pool_rank, kept_order, axis=1) >= self.k] = -1
        pool_hits = lookup_rows(kept, target_rows, target_hit) > 0
        out |= ranking_metrics(
            pool_hits, lookup_rows(kept, pool_items, pool_gains), n_relevant, pool_gains, {"pool": self.k}
        )
        return {name: check_finite(values, name) for name, values in out.items()}


def resolve_torch_device(device: Any) -> Any:
    """None, or ``device`` as a ``torch.device`` (a name such as "cuda:0" is accepted)."""
    if device is None:
        return None
    import torch

    try:
        return torch.device(device)
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"device must be None or a torch device such as 'cuda' or 'cpu', got {device!r}") from err


def on_device(device: Any, array: Any) -> Any:
    """A numpy array (or tensor) as a tensor on ``device``, dtypes kept."""
    import torch

    return torch.as_tensor(array).to(device)
