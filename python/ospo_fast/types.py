"""The names of every mode and choice of the package, spelled once.

Each ``Literal`` type below is the only place its names are written; code that lists or
checks them takes :func:`choices_of` of the type, so a new mode is added here alone.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

RedistributionMode = Literal["prop", "rank", "hybrid", "signed"]
"""How the answer's tokens share ``T · Â``: spec §6.4's PROP, RANK and HYBRID weight the
min-max credit; ``signed`` adds the centred credit to Â, so a phrase that hurt gets less
than one that did nothing, in good and in bad responses."""
OwenEstimator = Literal["spec", "stratified"]
"""Owen values from the scored coalitions: spec §5's Shapley-kernel weights, or each
coalition size weighted alike (then shifted to sum to v(N))."""
SubsetSizes = Literal["half", "kernel"]
"""The non-contiguous ablation's subsets: each player in with chance ½, or sizes drawn
from the Shapley kernel's distribution."""
SubsetBudget = Literal["max_coalitions", "contiguous"]
"""The ablation's coalitions per response: M, or as many as the contiguous plan scores."""
GainMode = Literal["linear", "exp"]
"""DCG gain of a relevance: as is, or ``2^rel − 1``."""
RewardGain = Literal["binary", "graded", "exp"]
"""ESCI labels as gains: exact = 1 (the reference), 3/2/1/0, or ``2^g − 1``."""
AdvantageScale = Literal["std", "none"]
"""GRPO's division by the group std, or none (Dr. GRPO)."""
Backend = Literal["auto", "cpu", "cuda", "triton"]
"""Which kernels an op runs: ``auto`` follows the data (CUDA tensors: GPU kernels)."""
Kernel = Literal["cpu", "cuda", "triton"]
"""The kernel family that :func:`ospo_fast.ops.dispatch.resolve_backend` chose."""
DotPrecision = Literal["ieee", "tf32x3", "tf32"]
"""``tl.dot`` input precision of the Triton NDCG kernel."""
CpuNdcgKernel = Literal["auto", "screened", "tiled"]
"""The CPU kernel of the fused NDCG."""
JoinMode = Literal["space", "slice"]
"""Spec §4 partial query: segment texts joined by spaces, or the original slice."""
SegmenterName = Literal["phrase", "sentence", "spacy", "word"]
"""Spec §3: how an answer is cut into players."""
AnswerFormat = Literal["lenient", "strict"]
"""Which text of a completion is scored: the reference's fallbacks, or only a closed ``<answer>…</answer>``."""


def choices_of(literal: Any) -> tuple[str, ...]:
    """The names a ``Literal`` type admits, in their written order."""
    return tuple(typing.get_args(literal))


def check_choice(name: str, value: Any, literal: Any) -> None:
    """Raise ``ValueError`` naming ``name`` and its choices unless ``value`` is one of them."""
    allowed = choices_of(literal)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in allowed)}; got {value!r}")
