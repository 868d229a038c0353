"""The partial queries y_S of a step's coalitions (spec §4), as text.

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

from collections.abc import Sequence

import numpy as np

from ospo_fast.types import JoinMode


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
