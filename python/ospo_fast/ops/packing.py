"""Partial-query packing: the encoder batch of every coalition, without re-tokenizing.

A step evaluates thousands of coalitions, each the space-joined text of some of a
response's segments. Instead of tokenizing every joined text, each segment is
tokenized once (:func:`tokenize_segments`) and each coalition's encoder row is built
from the ids (:func:`pack_query_windows` / :func:`pack_query_subsets`)::

    [CLS] ids(segment a) ids(segment a+1) ... [SEP] [PAD] ...

truncated to ``max_length`` with ``[SEP]`` kept last, and padded to the longest row
(or ``pad_to``). The native op is ``ospo::pack_windows`` (csrc/ospo/pack.cpp); the same
rows come from ``kernels/cuda/pack_queries.cu`` or ``kernels/triton/pack_queries.py`` for
CUDA tensors (:mod:`ospo_fast.ops.pack_gpu`).

When packing is exact, and when it is not
-----------------------------------------
The packed ids equal the tokenizer's ids of the space-joined text exactly when no
token can straddle the joining space and no token depends on what precedes it. That
holds for BERT-style WordPiece tokenizers (the retrievers of this project: the
all-MiniLM and paraphrase-MiniLM models share one uncased WordPiece vocabulary):
their normaliser works character by character (cleaning, CJK spacing, lowercasing,
accent stripping) and their pre-tokenizer splits at every whitespace and punctuation
character before WordPiece runs word by word, so the joining space is always a word
boundary. :func:`packs_like_joined_text` checks exactly that configuration (WordPiece
model, ``BertPreTokenizer``, ``BertNormalizer`` or none, no added token containing
whitespace, ``[CLS] x [SEP]`` framing).

It does not hold for byte-level BPE (RoBERTa, GPT-2, Qwen) or SentencePiece (T5,
XLM-R, mpnet's newer exports): they mark a word's leading space inside the token
(``Ġword``, ``▁word``), so a segment tokenized alone starts without the space it has
inside the joined text, and merges may cross the boundary. For those tokenizers
:func:`encoder_batch` does not pack: it builds the joined texts and tokenizes them,
which is always correct, only slower.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ospo_fast.ops import pack_gpu
from ospo_fast.ops.arrays import as_bool, as_int, as_pairs
from ospo_fast.ops.device import like_inputs, to_numpy
from ospo_fast.ops.dispatch import resolve_backend, work_device
from ospo_fast.ops.native import core
from ospo_fast.types import Backend


@dataclass(frozen=True)
class SegmentTokens:
    """Every segment's token ids of a step, in CSR form.

    ``token_ids`` int32 ``[total]``; segment s owns ``token_ids[token_offsets[s]:token_offsets[s + 1]]``
    (``token_offsets`` int64 ``[S+1]``); response b owns segments
    ``segment_offsets[b]:segment_offsets[b + 1]`` (int64 ``[B+1]``).
    """

    token_ids: np.ndarray
    token_offsets: np.ndarray
    segment_offsets: np.ndarray


@dataclass(frozen=True)
class SpecialIds:
    """The framing ids of an encoder row."""

    cls_id: int
    sep_id: int
    pad_id: int


def special_ids(tokenizer: Any) -> SpecialIds:
    """``[CLS]``, ``[SEP]`` and ``[PAD]`` ids of a BERT-style tokenizer."""
    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    if any(i is None for i in ids):
        raise ValueError(
            f"tokenizer must define cls, sep and pad tokens to pack queries, got ids {ids} "
            f"for {type(tokenizer).__name__}"
        )
    return SpecialIds(*(int(i) for i in ids))


def packs_like_joined_text(tokenizer: Any) -> bool:
    """True when packed segment ids equal the ids of the space-joined text (see module doc)."""
    from tokenizers import models, normalizers, pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    if not isinstance(backend.model, models.WordPiece):
        return False
    if not isinstance(backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer):
        return False
    if backend.normalizer is not None and not isinstance(backend.normalizer, normalizers.BertNormalizer):
        return False
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    if any(any(ch.isspace() for ch in token.content) for token in added):
        return False
    if None in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id):
        return False
    framing = tokenizer(["", "a"], add_special_tokens=True)["input_ids"]
    bare = tokenizer(["a"], add_special_tokens=False)["input_ids"][0]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return list(framing[0]) == [cls, sep] and list(framing[1]) == [cls, *bare, sep]


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` with every surrogate code point replaced by U+FFFD, one for one.

    A Python str may hold lone surrogates (decoded with ``surrogateescape``, or sliced
    from a model's output); tokenizers take only valid Unicode and reject the whole
    batch over one. Replacing them keeps every other character, and every offset.
    """
    return [_SURROGATE.sub("\ufffd", text) for text in texts]


def tokenize_segments(tokenizer: Any, segments: Sequence[Sequence[str]]) -> SegmentTokens:
    """Tokenize every segment of every response once, without special tokens.

    ``segments[b]`` is response b's segment texts in order.
    """
    flat = encodable_texts([text for response in segments for text in response])
    per_segment = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    lengths = np.fromiter((len(ids) for ids in per_segment), dtype=np.int64, count=len(per_segment))
    token_offsets = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(lengths, out=token_offsets[1:])
    token_ids = np.fromiter(
        (i for ids in per_segment for i in ids), dtype=np.int32, count=int(token_offsets[-1])
    )
    segment_offsets = np.zeros(len(segments) + 1, dtype=np.int64)
    np.cumsum([len(response) for response in segments], out=segment_offsets[1:])
    return SegmentTokens(token_ids, token_offsets, segment_offsets)


def joined_texts(
    segments: Sequence[Sequence[str]], coalition_offsets: Any, coalitions: Any
) -> list[str]:
    """The reference's partial queries: each coalition's segment texts joined by single spaces.

    ``coalitions`` is int ``[K, 2]`` windows or bool ``[K, n_max]`` masks, CSR by
    ``coalition_offsets [B+1]``.
    """
    offsets = as_int("coalition_offsets", coalition_offsets)
    rows = np.asarray(coalitions)
    texts: list[str] = []
    for b, response in enumerate(segments):
        for row in rows[offsets[b] : offsets[b + 1]]:
            members = np.flatnonzero(row) if rows.dtype == bool else range(int(row[0]), int(row[1]))
            texts.append(" ".join(response[j] for j in members))
    return texts


def _window_members(tokens: SegmentTokens, coalition_offsets: np.ndarray, windows: np.ndarray) -> list[np.ndarray]:
    """Absolute segment indices of each window row."""
    members = []
    for b in range(len(coalition_offsets) - 1):
        first = tokens.segment_offsets[b]
        rows = windows[coalition_offsets[b] : coalition_offsets[b + 1]]
        members += [np.arange(first + a, first + e) for a, e in rows]
    return members


def _subset_members(tokens: SegmentTokens, coalition_offsets: np.ndarray, masks: np.ndarray) -> list[np.ndarray]:
    """Absolute segment indices of each mask row."""
    members = []
    for b in range(len(coalition_offsets) - 1):
        first = tokens.segment_offsets[b]
        members += [first + np.flatnonzero(row) for row in masks[coalition_offsets[b] : coalition_offsets[b + 1]]]
    return members


def _pack_members(
    tokens: SegmentTokens, members: list[np.ndarray], special: SpecialIds, max_length: int, pad_to: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy twin of ``ospo::pack_windows`` / ``ospo::pack_subsets``."""
    rows = []
    for segs in members:
        parts = [tokens.token_ids[tokens.token_offsets[s] : tokens.token_offsets[s + 1]] for s in segs]
        content = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        rows.append([special.cls_id, *content[: max_length - 2].tolist(), special.sep_id])
    width = _width(max((len(r) for r in rows), default=0), pad_to)
    input_ids = np.full((len(rows), width), special.pad_id, dtype=np.int64)  # [K, L]
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)  # [K, L]
    for k, row in enumerate(rows):
        input_ids[k, : len(row)] = row
        attention_mask[k, : len(row)] = 1
    return input_ids, attention_mask


def _width(longest: int, pad_to: int | None) -> int:
    if pad_to is None:
        return longest
    if pad_to < longest:
        raise ValueError(f"pad_to must be >= the longest packed row ({longest}), got {pad_to}")
    return pad_to


def _check_max_length(max_length: int) -> None:
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 ([CLS] and [SEP]), got {max_length}")


def _on_cpu(tokens: SegmentTokens, coalition_offsets: Any) -> tuple[SegmentTokens, np.ndarray]:
    """The CSR inputs as the core's numpy dtypes."""
    cpu_tokens = SegmentTokens(
        as_int("segment_token_ids", to_numpy(tokens.token_ids), np.int32),
        as_int("segment_token_offsets", to_numpy(tokens.token_offsets)),
        as_int("segment_offsets", to_numpy(tokens.segment_offsets)),
    )
    return cpu_tokens, as_int("coalition_offsets", to_numpy(coalition_offsets))


def _row_owners(tokens: SegmentTokens, coalition_offsets: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(response of each row [K], segment count of each response [B]), after checking the CSR."""
    n_segments = np.diff(tokens.segment_offsets)
    if coalition_offsets.shape != tokens.segment_offsets.shape:
        raise ValueError(
            f"coalition_offsets must have B + 1 = {tokens.segment_offsets.shape[0]} entries like "
            f"segment_offsets, got {coalition_offsets.shape[0]}"
        )
    if coalition_offsets[0] != 0 or coalition_offsets[-1] != n_rows or np.any(np.diff(coalition_offsets) < 0):
        raise ValueError(f"coalition_offsets must rise from 0 to the {n_rows} coalition rows, got {coalition_offsets}")
    return np.repeat(np.arange(len(n_segments)), np.diff(coalition_offsets)), n_segments


def pack_query_windows(
    tokens: SegmentTokens,
    coalition_offsets: Any,
    coalitions: Any,
    special: SpecialIds,
    *,
    max_length: int,
    pad_to: int | None = None,
    backend: Backend = "auto",
) -> tuple[Any, Any]:
    """Encoder rows of window coalitions: ``(input_ids, attention_mask)`` int64 ``[K, L]``.

    ``coalitions [K, 2]`` are half-open windows relative to their response's first
    segment, CSR by ``coalition_offsets [B+1]``. CUDA tensors in ``tokens`` and
    ``coalitions`` (or ``backend="cuda"`` / ``"triton"``) use a GPU kernel and return
    tensors on that device.
    """
    _check_max_length(max_length)
    arrays = (tokens.token_ids, tokens.token_offsets, tokens.segment_offsets, coalition_offsets, coalitions)
    options = {"cls_id": special.cls_id, "sep_id": special.sep_id, "pad_id": special.pad_id,
               "max_length": max_length, "pad_to": pad_to}
    kernel = resolve_backend("pack", backend, *arrays)
    if kernel != "cpu":
        return like_inputs(pack_gpu.pack_windows(kernel, work_device(kernel, *arrays), *arrays, **options), *arrays)
    cpu_tokens, offsets = _on_cpu(tokens, coalition_offsets)
    windows = as_pairs("coalitions", to_numpy(coalitions), np.int32)
    if core is not None and hasattr(core, "pack_query_windows"):
        packed = core.pack_query_windows(
            cpu_tokens.token_ids, cpu_tokens.token_offsets, cpu_tokens.segment_offsets, offsets, windows, **options
        )
    else:
        owner, n_segments = _row_owners(cpu_tokens, offsets, len(windows))
        start, end = windows[:, 0], windows[:, 1]
        if np.any(start < 0) or np.any(start > end) or np.any(end > n_segments[owner]):
            raise ValueError(
                "coalitions must be windows (start, end) with 0 <= start <= end <= the response's segments"
            )
        packed = _pack_members(cpu_tokens, _window_members(cpu_tokens, offsets, windows), special, max_length, pad_to)
    return like_inputs(packed, *arrays)


def pack_query_subsets(
    tokens: SegmentTokens,
    coalition_offsets: Any,
    masks: Any,
    special: SpecialIds,
    *,
    max_length: int,
    pad_to: int | None = None,
    backend: Backend = "auto",
) -> tuple[Any, Any]:
    """Encoder rows of subset coalitions (the non-contiguous ablation).

    ``masks`` bool ``[K, n_max]``: column j is the response's segment j; columns past a
    response's segment count must be false. Otherwise as :func:`pack_query_windows`.
    """
    _check_max_length(max_length)
    arrays = (tokens.token_ids, tokens.token_offsets, tokens.segment_offsets, coalition_offsets, masks)
    options = {"cls_id": special.cls_id, "sep_id": special.sep_id, "pad_id": special.pad_id,
               "max_length": max_length, "pad_to": pad_to}
    kernel = resolve_backend("pack", backend, *arrays)
    if kernel != "cpu":
        return like_inputs(pack_gpu.pack_subsets(kernel, work_device(kernel, *arrays), *arrays, **options), *arrays)
    cpu_tokens, offsets = _on_cpu(tokens, coalition_offsets)
    rows = as_bool("masks", to_numpy(masks))
    if rows.ndim != 2:
        raise ValueError(f"masks must be [K, n_max], got shape {rows.shape}")
    if core is not None and hasattr(core, "pack_query_subsets"):
        packed = core.pack_query_subsets(
            cpu_tokens.token_ids, cpu_tokens.token_offsets, cpu_tokens.segment_offsets, offsets, rows, **options
        )
    else:
        owner, n_segments = _row_owners(cpu_tokens, offsets, len(rows))
        if np.any(rows & (np.arange(rows.shape[1])[None, :] >= n_segments[owner][:, None])):
            raise ValueError("masks must not set a column past its response's segment count")
        packed = _pack_members(cpu_tokens, _subset_members(cpu_tokens, offsets, rows), special, max_length, pad_to)
    return like_inputs(packed, *arrays)


def encoder_batch(
    tokenizer: Any,
    segments: Sequence[Sequence[str]],
    coalition_offsets: Any,
    coalitions: Any,
    *,
    max_length: int,
    pad_to: int | None = None,
) -> dict[str, np.ndarray]:
    """The encoder inputs of every coalition of a step, int64 ``[K, L]`` arrays.

    ``segments[b]`` holds response b's segment texts; ``coalitions`` int ``[K, 2]``
    windows or bool ``[K, n_max]`` masks, CSR by ``coalition_offsets [B+1]``. Packs the
    segments' ids when :func:`packs_like_joined_text` holds, and tokenizes the joined
    texts otherwise; both give the ids of the space-joined text. Keys:
    ``input_ids``, ``attention_mask`` and, when the tokenizer uses them,
    ``token_type_ids`` (zeros: one sentence).
    """
    _check_max_length(max_length)
    rows = np.asarray(coalitions)
    if packs_like_joined_text(tokenizer):
        tokens = tokenize_segments(tokenizer, segments)
        pack = pack_query_subsets if rows.dtype == bool else pack_query_windows
        input_ids, attention_mask = pack(
            tokens, coalition_offsets, rows, special_ids(tokenizer), max_length=max_length, pad_to=pad_to, backend="cpu"
        )
    else:
        input_ids, attention_mask = _tokenize_joined(
            tokenizer, joined_texts(segments, coalition_offsets, rows), max_length, pad_to
        )
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if "token_type_ids" in getattr(tokenizer, "model_input_names", ()):
        batch["token_type_ids"] = np.zeros_like(input_ids)
    return batch


def _tokenize_joined(
    tokenizer: Any, texts: list[str], max_length: int, pad_to: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The tokenizer's own rows for the joined texts, padded like the packed rows."""
    if not texts:
        width = _width(0, pad_to)
        return np.zeros((0, width), dtype=np.int64), np.zeros((0, width), dtype=np.int64)
    encoded = tokenizer(
        encodable_texts(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="np"
    )
    width = _width(encoded["input_ids"].shape[1], pad_to)
    extra = ((0, 0), (0, width - encoded["input_ids"].shape[1]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = np.pad(encoded["input_ids"].astype(np.int64), extra, constant_values=pad_id)  # [K, L]
    attention_mask = np.pad(encoded["attention_mask"].astype(np.int64), extra)  # [K, L]
    return input_ids, attention_mask
