"""The characteristic function v(S) of a whole RL step, in one batched pass.

For every coalition of every response, the partial query y_S is built from the answer's
segments; identical (text, pool) pairs are scored once, all texts go through the encoder
in one length-sorted pass, and one fused NDCG@pool call scores every pair against its
own sample's pool under the global top-k rule. v(∅) = 0, and so is the value of any
coalition whose text is blank.

The encoder pass, fastest first (each falls back to the next when it does not apply):

* packed token ids: each segment is tokenized once and each unique partial query's
  encoder row is assembled from its segments' ids (:mod:`ospo_fast.packing`), then the
  rows run longest first, each batch cut to its longest row. Needs ``join="space"``, a
  retriever whose ``encoder`` takes token ids (``encode_token_ids``), and a tokenizer for
  which packing equals tokenizing the joined text (BERT WordPiece; see
  :func:`ospo_fast.packing.packs_like_joined_text`).
* the encoder's own length-sorted text batches (``join="slice"``, other tokenizers);
* ``retriever.embed_queries`` for a retriever without a token encoder.

On the CPU a torch sentence-transformers encoder runs through its onnxruntime export
(:mod:`ospo_fast.retrieval.fast_minilm`: exported once, checked against torch, cached;
the same embeddings to 1e-5) unless ``onnx_on_cpu=False``; a model that cannot be
exported stays on torch.

Partial queries (spec §4):

* ``join="space"`` (the reference): the coalition's segment texts joined by single spaces.
* ``join="slice"``: the original answer text from the first to the last segment of the
  coalition. For a non-contiguous mask, each run of consecutive members is sliced and
  the runs are joined by single spaces, so no non-member's words enter the query.

Coalition plans, CSR over responses by ``coalition_offsets [B+1]``:

* windows: int ``[K, 2]`` half-open ``(start, end)`` segment ranges; ∅ is ``(0, 0)``;
* masks: bool ``[K, n_max]``, row k a member mask over its response's segments, padded
  with False beyond that response's ``n`` segments (``n_max`` = the largest ``n``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ospo_fast import packing
from ospo_fast.retrieval.encoders import SentenceTransformerEncoder, TokenEncoder
from ospo_fast.retrieval.onnx_encoder import OnnxEncoder
from ospo_fast.reward import QueryPlan, RetrievalReward, check_finite, plan_queries

JoinMode = Literal["space", "slice"]
DEFAULT_ENCODE_BATCH = 64

# One onnxruntime twin per torch encoder, shared by every evaluator over it (None: not exportable).
_onnx_twins: weakref.WeakKeyDictionary[SentenceTransformerEncoder, TokenEncoder | None] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class EvaluationStats:
    """Seconds per stage and sizes of the last :meth:`CoalitionEvaluator.evaluate` call.

    ``pack_s`` is tokenizing the segments and packing the encoder rows; it is 0 when the
    texts were tokenized inside the encoder call (then that time is in ``encode_s``).
    ``encoder`` names the path that ran: "packed ids", "text batches" or "retriever",
    with the encoder's backend.
    """

    build_s: float
    dedupe_s: float
    encode_s: float
    ndcg_s: float
    n_coalitions: int
    n_nonblank: int
    n_unique_texts: int
    n_unique_pairs: int
    pack_s: float = 0.0
    encoder: str = "retriever"

    @property
    def total_s(self) -> float:
        return self.build_s + self.dedupe_s + self.pack_s + self.encode_s + self.ndcg_s


def check_spans(spans: Sequence[np.ndarray], answers: Sequence[str]) -> list[np.ndarray]:
    """int64 ``[n_i, 2]`` ordered, non-overlapping spans inside each answer."""
    out = []
    for i, (raw, answer) in enumerate(zip(spans, answers)):
        s = np.asarray(raw, dtype=np.int64).reshape(-1, 2)  # [n, 2]
        if len(s) and (
            s[0, 0] < 0 or s[-1, 1] > len(answer) or (s[:, 0] > s[:, 1]).any() or (s[1:, 0] < s[:-1, 1]).any()
        ):
            raise ValueError(
                f"spans[{i}] must be ordered, non-overlapping (start, end) spans inside answers[{i}] "
                f"(length {len(answer)}), got {s.tolist()}"
            )
        out.append(s)
    return out


def check_offsets(coalition_offsets: np.ndarray, n_responses: int, n_coalitions: int) -> np.ndarray:
    offsets = np.asarray(coalition_offsets, dtype=np.int64).reshape(-1)  # [B+1]
    if (
        len(offsets) != n_responses + 1
        or offsets[0] != 0
        or offsets[-1] != n_coalitions
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(
            f"coalition_offsets must be [B+1] = [{n_responses + 1}] non-decreasing from 0 to the "
            f"{n_coalitions} coalitions, got {offsets.tolist()[:8]}{'...' if len(offsets) > 8 else ''}"
        )
    return offsets


def window_queries(
    answer: str, spans: np.ndarray, windows: np.ndarray, join: JoinMode
) -> list[str]:
    """Partial queries of one response's windows ``[k, 2]``."""
    if join == "space":
        segments = [answer[start:end] for start, end in spans.tolist()]
        return [" ".join(segments[a:b]) for a, b in windows.tolist()]
    starts, ends = spans[:, 0].tolist(), spans[:, 1].tolist()
    return [answer[starts[a] : ends[b - 1]] if b > a else "" for a, b in windows.tolist()]


def mask_queries(answer: str, spans: np.ndarray, masks: np.ndarray, join: JoinMode) -> list[str]:
    """Partial queries of one response's member masks ``[k, n]``."""
    segments = [answer[start:end] for start, end in spans.tolist()]
    if join == "space":
        return [" ".join(segments[i] for i in np.flatnonzero(row)) for row in masks]
    out = []
    for row in masks:
        padded = np.concatenate(([False], row, [False]))
        edges = np.flatnonzero(padded[1:] != padded[:-1])  # run starts and ends, alternating
        out.append(" ".join(answer[spans[a, 0] : spans[b - 1, 1]] for a, b in zip(edges[::2], edges[1::2])))
    return out


def build_queries(
    answers: Sequence[str],
    spans: Sequence[np.ndarray],
    coalition_offsets: np.ndarray,
    coalitions: np.ndarray,
    join: JoinMode,
) -> list[str]:
    """y_S of every coalition of the step, in plan order: ``[K]`` strings."""
    counts = np.array([len(s) for s in spans], dtype=np.int64)  # [B]
    n_of_row = np.repeat(counts, np.diff(coalition_offsets))  # [K]
    is_mask = coalitions.dtype == bool
    if is_mask:
        if coalitions.ndim != 2 or coalitions.shape[1] < counts.max(initial=0):
            raise ValueError(
                f"mask coalitions must be bool [K, n_max >= {counts.max(initial=0)}], got {coalitions.shape}"
            )
        beyond = np.arange(coalitions.shape[1])[None, :] >= n_of_row[:, None]  # [K, n_max]
        if (coalitions & beyond).any():
            raise ValueError("mask coalitions must be False beyond their response's segments")
    else:
        if coalitions.ndim != 2 or coalitions.shape[1] != 2:
            raise ValueError(f"window coalitions must be int [K, 2], got shape {coalitions.shape}")
        if ((coalitions[:, 0] < 0) | (coalitions[:, 0] > coalitions[:, 1]) | (coalitions[:, 1] > n_of_row)).any():
            raise ValueError("window coalitions must satisfy 0 <= start <= end <= n_segments of their response")
    queries: list[str] = []
    for b, (answer, s) in enumerate(zip(answers, spans)):
        rows = coalitions[coalition_offsets[b] : coalition_offsets[b + 1]]
        if is_mask:
            queries += mask_queries(answer, s, rows[:, : len(s)], join)
        else:
            queries += window_queries(answer, s, rows, join)
    return queries


def onnx_twin(encoder: SentenceTransformerEncoder) -> TokenEncoder | None:
    """The onnxruntime export of ``encoder``, or None when it cannot be exported."""
    if encoder not in _onnx_twins:
        from ospo_fast.retrieval.fast_minilm import onnx_from_sentence_transformer

        try:
            _onnx_twins[encoder] = onnx_from_sentence_transformer(encoder)
        except (ImportError, ValueError):
            # Not mean-pooled, or onnx / onnxruntime missing: torch is the encoder.
            _onnx_twins[encoder] = None
    return _onnx_twins[encoder]


def token_encoder(retriever: Any, *, onnx_on_cpu: bool) -> TokenEncoder | None:
    """The encoder to drive with token ids, or None when ``retriever`` has none."""
    encoder = getattr(retriever, "encoder", None)
    if not isinstance(encoder, TokenEncoder):
        return None
    on_cpu_torch = isinstance(encoder, SentenceTransformerEncoder) and encoder.model.device.type == "cpu"
    if onnx_on_cpu and on_cpu_torch:
        return onnx_twin(encoder) or encoder
    return encoder


def encoder_backend(encoder: TokenEncoder) -> str:
    if isinstance(encoder, OnnxEncoder):
        return "onnxruntime"
    if isinstance(encoder, SentenceTransformerEncoder):
        return f"torch on {encoder.model.device}"
    return type(encoder).__name__


def pack_unique_queries(
    tokenizer: Any,
    max_length: int,
    answers: Sequence[str],
    spans: Sequence[np.ndarray],
    coalition_offsets: np.ndarray,
    coalitions: np.ndarray,
    text_query: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder rows of the coalitions ``text_query [U]`` (ascending), from per-segment ids.

    Returns ``(input_ids, attention_mask)`` int64 ``[U, L]``, right-padded, row u equal to
    the tokenizer's ids of query ``text_query[u]`` joined by spaces.
    """
    segments = [[answer[start:end] for start, end in s.tolist()] for answer, s in zip(answers, spans)]
    tokens = packing.tokenize_segments(tokenizer, segments)
    owner = np.searchsorted(coalition_offsets, text_query, side="right") - 1  # [U] response of each row
    offsets = np.zeros(len(answers) + 1, dtype=np.int64)  # [B+1] CSR of the kept rows
    np.cumsum(np.bincount(owner, minlength=len(answers)), out=offsets[1:])
    pack = packing.pack_query_subsets if coalitions.dtype == bool else packing.pack_query_windows
    return pack(
        tokens, offsets, coalitions[text_query], packing.special_ids(tokenizer), max_length=max_length, backend="cpu"
    )


def encode_rows_length_sorted(
    encoder: TokenEncoder, input_ids: np.ndarray, attention_mask: np.ndarray, batch_size: int
) -> np.ndarray:
    """Embed right-padded rows ``[U, L]`` longest first, each batch cut to its longest row: float32 ``[U, d]``."""
    lengths = attention_mask.sum(axis=1)  # [U]
    order = np.argsort(-lengths, kind="stable")  # [U]
    out = np.empty((len(lengths), encoder.dim), dtype=np.float32)  # [U, d]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows[0]])
        out[rows] = encoder.encode_token_ids(input_ids[rows, :width], attention_mask[rows, :width])
    return out


class CoalitionEvaluator:
    """v(S) for every coalition of a step, scored by ``reward`` in one batched pass.

    ``pack_segments``: build encoder rows from per-segment token ids when that is exact
    (module docstring). ``onnx_on_cpu``: run a CPU torch encoder through onnxruntime.
    ``encode_batch_size``: rows per encoder call. ``last_stats`` holds the stage timings
    and sizes of the latest :meth:`evaluate`.
    """

    def __init__(
        self,
        reward: RetrievalReward,
        *,
        join: JoinMode = "space",
        pack_segments: bool = True,
        onnx_on_cpu: bool = True,
        encode_batch_size: int = DEFAULT_ENCODE_BATCH,
    ) -> None:
        if join not in ("space", "slice"):
            raise ValueError(f"join must be 'space' or 'slice', got {join!r}")
        for name, flag in (("pack_segments", pack_segments), ("onnx_on_cpu", onnx_on_cpu)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if isinstance(encode_batch_size, bool) or not isinstance(encode_batch_size, int) or encode_batch_size < 1:
            raise ValueError(f"encode_batch_size must be an int >= 1, got {encode_batch_size!r}")
        self.reward = reward
        self.join: JoinMode = join
        self.pack_segments = pack_segments
        self.onnx_on_cpu = onnx_on_cpu
        self.encode_batch_size = encode_batch_size
        self.last_stats: EvaluationStats | None = None

    @property
    def encoder(self) -> TokenEncoder | None:
        """The encoder :meth:`evaluate` drives itself; None: the retriever embeds the texts."""
        if not self.reward.dense:
            return None
        return token_encoder(self.reward.retriever, onnx_on_cpu=self.onnx_on_cpu)

    def evaluate(
        self,
        answers: Sequence[str],
        spans: Sequence[np.ndarray],
        sample_index: np.ndarray,
        samples: Sequence[Mapping[str, Any]],
        coalition_offsets: np.ndarray,
        coalitions: np.ndarray,
    ) -> np.ndarray:
        """Coalition values ``v [K]`` float64, in plan order.

        answers           [B] answer texts (the scored query of each response)
        spans             [B] int64 [n_b, 2] segment char spans inside each answer
        sample_index      [B] int64 row of ``samples`` that response b is judged on
        samples           rows with ``candidate_pool`` and ``pool_relevance``
        coalition_offsets [B+1] int64 CSR into ``coalitions``
        coalitions        int [K, 2] windows or bool [K, n_max] masks (module docstring)
        """
        start = time.perf_counter()
        if len(spans) != len(answers):
            raise ValueError(f"got {len(answers)} answers but {len(spans)} span arrays")
        sample_index = np.asarray(sample_index, dtype=np.int64).reshape(-1)  # [B]
        if len(sample_index) != len(answers) or (
            len(sample_index) and (sample_index.min() < 0 or sample_index.max() >= len(samples))
        ):
            raise ValueError(f"sample_index must be [B] = [{len(answers)}] rows of the {len(samples)} samples")
        coalitions = np.asarray(coalitions)
        offsets = check_offsets(coalition_offsets, len(answers), len(coalitions))
        checked_spans = check_spans(spans, answers)
        queries = build_queries(answers, checked_spans, offsets, coalitions, self.join)  # [K]
        pools = self.reward.load_pools(samples)
        built = time.perf_counter()
        coalition_pool = np.repeat(pools.of_sample[sample_index], np.diff(offsets))  # [K]
        plan = plan_queries(queries, coalition_pool, len(pools.items))
        planned = time.perf_counter()
        encoder = self.encoder
        if encoder is None or not plan.texts:
            pair_values, seconds = self.reward.score_pairs(plan, pools)  # [C]
            path = "retriever"
        else:
            pair_values, seconds, path = self._score_with(encoder, plan, pools, answers, checked_spans, offsets, coalitions)
        values = check_finite(plan.scatter(pair_values), "coalition values")  # [K]
        self.last_stats = EvaluationStats(
            build_s=built - start,
            dedupe_s=planned - built,
            encode_s=seconds["encode"],
            ndcg_s=seconds["ndcg"],
            n_coalitions=len(queries),
            n_nonblank=int((plan.query_pair >= 0).sum()),
            n_unique_texts=len(plan.texts),
            n_unique_pairs=len(plan.pair_text),
            pack_s=seconds.get("pack", 0.0),
            encoder=path,
        )
        return values

    def _score_with(
        self,
        encoder: TokenEncoder,
        plan: QueryPlan,
        pools: Any,
        answers: Sequence[str],
        spans: list[np.ndarray],
        offsets: np.ndarray,
        coalitions: np.ndarray,
    ) -> tuple[np.ndarray, dict[str, float], str]:
        """Pair values ``[C]`` with ``encoder`` driven here, stage seconds, and the path taken."""
        start = time.perf_counter()
        if self.join == "space" and self.pack_segments and packing.packs_like_joined_text(encoder.tokenizer):
            input_ids, attention_mask = pack_unique_queries(
                encoder.tokenizer, encoder.max_length, answers, spans, offsets, coalitions, plan.text_query
            )  # [U, L]
            packed = time.perf_counter()
            embeddings = encode_rows_length_sorted(encoder, input_ids, attention_mask, self.encode_batch_size)
            path = "packed ids"
        else:
            packed = start
            embeddings = encoder.encode(plan.texts, batch_size=self.encode_batch_size)  # [U, d]
            path = "text batches"
        encoded = time.perf_counter()
        values = self.reward.score_embedded(embeddings, plan, pools)  # [C]
        seconds = {"pack": packed - start, "encode": encoded - packed, "ndcg": time.perf_counter() - encoded}
        return values, seconds, f"{path}, {encoder_backend(encoder)}"
