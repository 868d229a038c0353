"""The characteristic function v(S) of a whole RL step, in one batched pass.

For every coalition of every response, the partial query y_S is built from the answer's
segments (:mod:`ospo_fast.attribution.partial_queries`); identical (text, pool) pairs
are scored once, all texts go through the encoder in one length-sorted pass, and one
fused NDCG@pool call scores every pair against its own sample's pool under the global
top-k rule. v(∅) = 0, and so is the value of any coalition whose text is blank.

The encoder pass, fastest first (each falls back to the next when it does not apply):

* packed token ids: each segment is tokenized once and each unique partial query's
  encoder row is assembled from its segments' ids (:mod:`ospo_fast.ops.packing`), then
  the rows run longest first, each batch cut to its longest row. Needs ``join="space"``,
  a retriever whose ``encoder`` takes token ids, and a tokenizer for which packing
  equals tokenizing the joined text (BERT WordPiece; see
  :func:`ospo_fast.ops.packing.packs_like_joined_text`).
* the encoder's own length-sorted text batches (``join="slice"``, other tokenizers);
* ``retriever.embed_queries`` for a retriever without a token encoder.

Where it runs follows the reward (:class:`~ospo_fast.reward.RetrievalReward`): with no
device, numpy and the C++ core, and a CPU torch sentence-transformers encoder runs
through its onnxruntime export (:mod:`ospo_fast.reward.retrievers.fast_minilm`:
exported once, checked against torch, cached; the same embeddings to 1e-5) unless
``onnx_on_cpu=False``. On a torch device, the encoder rows are packed there (the CUDA
or Triton pack kernel), embedded there, scored there, and v(S) comes back as a tensor
there; only the strings (segments, partial queries, dedup) stay on the host.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ospo_fast.attribution.partial_queries import build_queries, check_offsets, check_spans
from ospo_fast.ops.device import is_tensor, synchronize
from ospo_fast.ops.packing import (
    pack_query_subsets,
    pack_query_windows,
    packs_like_joined_text,
    special_ids,
    tokenize_segments,
)
from ospo_fast.types import Backend, JoinMode, check_choice
from ospo_fast.reward.query_plan import QueryPlan, check_finite, plan_queries
from ospo_fast.reward.retrieval_reward import Pools, RetrievalReward
from ospo_fast.reward.retrievers.encoders import SentenceTransformerEncoder, TokenEncoder
from ospo_fast.reward.retrievers.fast_minilm import onnx_from_sentence_transformer
from ospo_fast.reward.retrievers.onnx_encoder import OnnxEncoder

# Encoder rows per call: small batches suit a CPU, a GPU wants many rows at once.
CPU_ENCODE_BATCH = 64
GPU_ENCODE_BATCH = 512

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


def onnx_twin(encoder: SentenceTransformerEncoder, cache_dir: Any = None) -> TokenEncoder | None:
    """The onnxruntime export of ``encoder`` (kept under ``cache_dir``), or None when it cannot be exported."""
    if encoder not in _onnx_twins:
        try:
            _onnx_twins[encoder] = onnx_from_sentence_transformer(encoder, cache_dir=cache_dir)
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
        return onnx_twin(encoder, getattr(retriever, "cache_dir", None)) or encoder
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
    *,
    device: Any = None,
    backend: Backend = "auto",
) -> tuple[Any, Any]:
    """Encoder rows of the coalitions ``text_query [U]`` (ascending), from per-segment ids.

    Returns ``(input_ids, attention_mask)`` int64 ``[U, L]``, right-padded, row u equal to
    the tokenizer's ids of query ``text_query[u]`` joined by spaces: numpy, or tensors
    packed on ``device`` by the kernels ``backend`` resolves to.
    """
    segments = [[answer[start:end] for start, end in s.tolist()] for answer, s in zip(answers, spans)]
    tokens = tokenize_segments(tokenizer, segments)
    owner = np.searchsorted(coalition_offsets, text_query, side="right") - 1  # [U] response of each row
    offsets = np.zeros(len(answers) + 1, dtype=np.int64)  # [B+1] CSR of the kept rows
    np.cumsum(np.bincount(owner, minlength=len(answers)), out=offsets[1:])
    rows = coalitions[text_query]
    if device is not None:
        import torch

        tokens = type(tokens)(*(torch.from_numpy(a).to(device) for a in
                                (tokens.token_ids, tokens.token_offsets, tokens.segment_offsets)))
        offsets, rows = torch.from_numpy(offsets).to(device), torch.from_numpy(rows).to(device)
    pack = pack_query_subsets if coalitions.dtype == bool else pack_query_windows
    return pack(tokens, offsets, rows, special_ids(tokenizer), max_length=max_length,
                backend=backend if device is not None else "cpu")


def encode_rows_length_sorted(encoder: TokenEncoder, input_ids: Any, attention_mask: Any, batch_size: int) -> Any:
    """Embed right-padded rows ``[U, L]`` longest first, each batch cut to its longest row.

    numpy rows give float32 numpy ``[U, d]``; tensor rows a float32 tensor on their device.
    """
    if not is_tensor(input_ids):
        lengths = attention_mask.sum(axis=1)  # [U]
        order = np.argsort(-lengths, kind="stable")  # [U]
        out = np.empty((len(lengths), encoder.dim), dtype=np.float32)  # [U, d]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows[0]])
            out[rows] = encoder.encode_token_ids(input_ids[rows, :width], attention_mask[rows, :width])
        return out
    import torch

    lengths = attention_mask.sum(dim=1)  # [U]
    order = torch.argsort(-lengths, stable=True)  # [U]
    widths = lengths[order[::batch_size]].tolist()  # one host read for every batch's width
    out_t = torch.empty((lengths.numel(), encoder.dim), dtype=torch.float32, device=input_ids.device)  # [U, d]
    for batch, start in enumerate(range(0, order.numel(), batch_size)):
        rows = order[start : start + batch_size]
        width = int(widths[batch])
        out_t[rows] = encoder.encode_token_tensors(input_ids[rows, :width], attention_mask[rows, :width])
    return out_t


class CoalitionEvaluator:
    """v(S) for every coalition of a step, scored by ``reward`` in one batched pass.

    ``join``: how partial queries are built (module docstring). ``pack_segments``: build
    encoder rows from per-segment token ids when that is exact. ``onnx_on_cpu``: run a
    CPU torch encoder through onnxruntime. ``encode_batch_size``: rows per encoder call
    (None: 64 on the CPU, 512 on a GPU). The device and kernels are the reward's
    (``reward.device``, ``reward.backend``). ``last_stats`` holds the stage timings and
    sizes of the latest :meth:`evaluate`.
    """

    def __init__(
        self,
        reward: RetrievalReward,
        *,
        join: JoinMode = "space",
        pack_segments: bool = True,
        onnx_on_cpu: bool = True,
        encode_batch_size: int | None = None,
    ) -> None:
        check_choice("join", join, JoinMode)
        for name, flag in (("pack_segments", pack_segments), ("onnx_on_cpu", onnx_on_cpu)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        if encode_batch_size is None:
            on_gpu = reward.device is not None and reward.device.type == "cuda"
            encode_batch_size = GPU_ENCODE_BATCH if on_gpu else CPU_ENCODE_BATCH
        if isinstance(encode_batch_size, bool) or not isinstance(encode_batch_size, int) or encode_batch_size < 1:
            raise ValueError(f"encode_batch_size must be an int >= 1, got {encode_batch_size!r}")
        self.reward = reward
        self.join: JoinMode = join
        self.pack_segments = pack_segments
        self.onnx_on_cpu = onnx_on_cpu
        self.encode_batch_size = encode_batch_size
        self.last_stats: EvaluationStats | None = None

    @property
    def device(self) -> Any:
        """Where v(S) is computed and returned: None (numpy) or a torch device."""
        return self.reward.device

    @property
    def backend(self) -> Backend:
        return self.reward.backend

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
    ) -> Any:
        """Coalition values ``v [K]`` in plan order: float64 numpy, or a tensor on :attr:`device`.

        answers           [B] answer texts (the scored query of each response)
        spans             [B] int64 [n_b, 2] segment char spans inside each answer
        sample_index      [B] int64 row of ``samples`` that response b is judged on
        samples           rows with ``candidate_pool`` and ``pool_relevance``
        coalition_offsets [B+1] int64 CSR into ``coalitions``
        coalitions        int [K, 2] windows or bool [K, n_max] masks (partial_queries docstring)
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
        values = plan.scatter(pair_values)  # [K]
        if self.device is not None and not is_tensor(values):
            import torch

            values = torch.from_numpy(values).to(self.device)
        values = check_finite(values, "coalition values")
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
        pools: Pools,
        answers: Sequence[str],
        spans: list[np.ndarray],
        offsets: np.ndarray,
        coalitions: np.ndarray,
    ) -> tuple[Any, dict[str, float], str]:
        """Pair values ``[C]`` with ``encoder`` driven here, stage seconds, and the path taken."""
        device = self.device
        start = time.perf_counter()
        if self.join == "space" and self.pack_segments and packs_like_joined_text(encoder.tokenizer):
            input_ids, attention_mask = pack_unique_queries(
                encoder.tokenizer, encoder.max_length, answers, spans, offsets, coalitions, plan.text_query,
                device=device, backend=self.backend,
            )  # [U, L]
            synchronize(device)
            packed = time.perf_counter()
            embeddings = encode_rows_length_sorted(encoder, input_ids, attention_mask, self.encode_batch_size)
            path = "packed ids"
        else:
            packed = start
            if device is None:
                embeddings = encoder.encode(plan.texts, batch_size=self.encode_batch_size)  # [U, d]
            else:
                embeddings = encoder.encode(plan.texts, batch_size=self.encode_batch_size, device=device)  # type: ignore[call-arg]
            path = "text batches"
        synchronize(device)
        encoded = time.perf_counter()
        values = self.reward.score_embedded(embeddings, plan, pools)  # [C]
        synchronize(device)
        seconds = {"pack": packed - start, "encode": encoded - packed, "ndcg": time.perf_counter() - encoded}
        return values, seconds, f"{path}, {encoder_backend(encoder)}"
