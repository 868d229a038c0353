"""The scored query of a completion (spec §1), and the completion tokens that carry it.

Two formats (``AnswerFormat``): ``lenient`` is the reference's (an unclosed answer is
scored to the end of the completion, an untagged one whole); ``strict`` scores only the
text inside a closed ``<answer>…</answer>``, so a completion that runs on past its
answer, or never writes one, scores as the empty query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ospo_fast.types import AnswerFormat, check_choice

_ANSWER = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
_CLOSED_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def extract_answer(completion: str, answer_format: AnswerFormat = "lenient") -> tuple[str, int]:
    """The scored query of a completion and its char offset in the completion.

    ``lenient``: the first ``<answer>`` after the last ``</think>`` (else anywhere) up to
    its ``</answer>``, or to the end when unclosed. Without an answer tag (spec §1): the
    text after the last ``</think>``; a ``<think>`` never closed leaves nothing to score;
    with no tags at all the whole completion is the answer. ``strict``: the first closed
    ``<answer>…</answer>`` after the last ``</think>`` (else anywhere), and nothing
    otherwise. Surrounding whitespace is stripped.
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be str, got {type(completion).__name__}")
    check_choice("answer_format", answer_format, AnswerFormat)
    closes = list(_THINK_CLOSE.finditer(completion))
    after_think = closes[-1].end() if closes else 0
    if answer_format == "strict":
        closed = _CLOSED_ANSWER.search(completion, after_think) or _CLOSED_ANSWER.search(completion)
        if closed is None:
            return "", len(completion)
        return _stripped(closed.group(1), closed.start(1))
    match = _ANSWER.search(completion, after_think) or _ANSWER.search(completion)
    if match is not None:
        raw, start = match.group(1), match.start(1)
    elif closes:
        raw, start = completion[after_think:], after_think
    elif _THINK_OPEN.search(completion):
        return "", len(completion)
    else:
        raw, start = completion, 0
    return _stripped(raw, start)


def _stripped(raw: str, start: int) -> tuple[str, int]:
    """``raw`` (found at ``start``) without surrounding whitespace, and where that text starts."""
    text = raw.strip()
    return text, start + (len(raw) - len(raw.lstrip()) if text else 0)


def is_blank(text: str) -> bool:
    return not text or text.isspace()


def answer_token_mask(completion: str, token_offsets: np.ndarray, answer_format: AnswerFormat = "lenient") -> np.ndarray:
    """bool ``[T]``: tokens sharing a character with the answer the reward scores.

    ``token_offsets [T, 2]`` are half-open char spans in ``completion``; empty spans
    (EOS, padding) are never answer tokens.
    """
    offsets = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
    answer, start = extract_answer(completion, answer_format)
    if not answer:
        return np.zeros(len(offsets), dtype=bool)
    end = start + len(answer)
    return (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])


def answer_token_masks(
    completions: Sequence[str], token_offsets: np.ndarray, token_mask: np.ndarray, answer_format: AnswerFormat = "lenient"
) -> np.ndarray:
    """bool ``[B, T]``: :func:`answer_token_mask` of each row, restricted to real tokens."""
    out = np.zeros(np.shape(token_mask), dtype=bool)
    for b, completion in enumerate(completions):
        out[b] = answer_token_mask(completion, token_offsets[b], answer_format) & token_mask[b]
    return out
