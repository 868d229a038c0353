"""Type stub of the compiled core (csrc/bindings). Arrays must already have the kind and
size of the dtype shown (compared by value, so arrays that went through pickle pass; a
swapped byte order is converted); the Python wrappers in ospo_fast convert and the
bindings check. Sizes are checked for int64 overflow, and an output too large to
allocate raises MemoryError naming the argument it comes from. Values whose sums would
overflow float64 raise ValueError naming them (coalition values past DBL_MAX / 4,
phi past 3/4 DBL_MAX, an advantage past DBL_MAX / T, gains past DBL_MAX / (2 length))."""


import numpy as np
import numpy.typing as npt

from ospo_fast.types import AdvantageScale, GainMode, OwenEstimator, RedistributionMode, SubsetSizes

with_cuda: bool

def num_threads() -> int: ...
def set_num_threads(n_threads: int) -> None: ...

# coalitions
def contiguous_coalitions(
    n_segments: int, w_max: int, include_empty: bool, include_full: bool
) -> npt.NDArray[np.int32]: ...
def sample_coalitions(
    n_segments: int, w_max: int, max_coalitions: int, seed: int, stream: int
) -> npt.NDArray[np.int32]: ...
def sample_subset_coalitions(
    n_segments: int, max_coalitions: int, seed: int, stream: int, sizes: SubsetSizes = "half"
) -> npt.NDArray[np.bool_]: ...
def coalition_plan(
    n_segments: npt.NDArray[np.int64], w_max: int, max_coalitions: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...

# Owen / Shapley
def owen_values(
    n_segments: int,
    coalitions: npt.NDArray[np.int32] | npt.NDArray[np.bool_],
    values: npt.NDArray[np.float64],
    estimator: OwenEstimator = "spec",
) -> npt.NDArray[np.float64]: ...
def owen_values_batch(
    n_segments: npt.NDArray[np.int64],
    coalition_offsets: npt.NDArray[np.int64],
    coalitions: npt.NDArray[np.int32],
    values: npt.NDArray[np.float64],
    estimator: OwenEstimator = "spec",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
def exact_shapley(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]: ...

# credit and advantages
def token_credit(
    segment_spans: npt.NDArray[np.int64], token_offsets: npt.NDArray[np.int64], phi: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def redistribute(
    credit: npt.NDArray[np.float64],
    advantage: float,
    mode: RedistributionMode,
    answer_mask: npt.NDArray[np.bool_] | None,
    alpha: float,
    credit_scale: float | None = None,
) -> npt.NDArray[np.float64]: ...
def redistribute_batch(
    credit: npt.NDArray[np.float64],
    advantages: npt.NDArray[np.float64],
    mode: RedistributionMode,
    token_mask: npt.NDArray[np.bool_],
    answer_mask: npt.NDArray[np.bool_],
    alpha: float,
    credit_scale: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]: ...
def token_credit_batch(
    segment_spans: npt.NDArray[np.int64],
    phi_offsets: npt.NDArray[np.int64],
    phi: npt.NDArray[np.float64],
    token_offsets: npt.NDArray[np.int64],
    token_mask: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]: ...
def token_advantages_batch(
    n_segments: npt.NDArray[np.int64],
    coalition_offsets: npt.NDArray[np.int64],
    coalitions: npt.NDArray[np.int32],
    values: npt.NDArray[np.float64],
    segment_spans: npt.NDArray[np.int64],
    token_offsets: npt.NDArray[np.int64],
    token_mask: npt.NDArray[np.bool_],
    answer_mask: npt.NDArray[np.bool_],
    advantages: npt.NDArray[np.float64],
    mode: RedistributionMode,
    alpha: float,
    invert_negative: bool,
    estimator: OwenEstimator = "spec",
    credit_scale: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(advantages [B, T], phi [sum n_segments]): the step's token advantages and its Owen values."""
def group_advantages(
    rewards: npt.NDArray[np.float64], group_size: int, eps: float, scale: AdvantageScale
) -> npt.NDArray[np.float64]: ...

# NDCG
def ndcg_at_k(
    scores: npt.NDArray[np.float64], relevance: npt.NDArray[np.float64], k: int, gain: GainMode
) -> npt.NDArray[np.float64]: ...

class PoolRanking:
    """Pool ranks accumulated over corpus score tiles (spec §2 NDCG@pool without [C, N])."""

    def __init__(
        self,
        pool_scores: npt.NDArray[np.float64],
        pool_items: npt.NDArray[np.int64],
        pool_relevance: npt.NDArray[np.float64],
        gain: GainMode,
        n_items: int,
        k: int,
    ) -> None: ...
    def add_tile(self, tile_scores: npt.NDArray[np.float32] | npt.NDArray[np.float64], tile_start: int) -> None: ...
    def ndcg(self) -> npt.NDArray[np.float64]: ...

def bf16_screen_supported() -> bool: ...

class ScreenedCorpus:
    """A corpus packed once for the bf16-screened fused NDCG@pool (exact fp64 scores)."""

    def __init__(self, corpus: npt.NDArray[np.float32]) -> None: ...
    @property
    def n_items(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def pool_ndcg(
        self,
        queries: npt.NDArray[np.float32],
        pool_items: npt.NDArray[np.int64],
        pool_relevance: npt.NDArray[np.float64],
        k: int,
        gain: GainMode,
    ) -> npt.NDArray[np.float64] | None: ...

# partial-query packing (csrc/ospo/pack.cpp); returns (input_ids, attention_mask) int64 [K, L]
def pack_query_windows(
    segment_token_ids: npt.NDArray[np.int32],
    segment_token_offsets: npt.NDArray[np.int64],
    segment_offsets: npt.NDArray[np.int64],
    coalition_offsets: npt.NDArray[np.int64],
    coalitions: npt.NDArray[np.int32],
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_length: int,
    pad_to: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
def pack_query_subsets(
    segment_token_ids: npt.NDArray[np.int32],
    segment_token_offsets: npt.NDArray[np.int64],
    segment_offsets: npt.NDArray[np.int64],
    coalition_offsets: npt.NDArray[np.int64],
    masks: npt.NDArray[np.bool_],
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_length: int,
    pad_to: int | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

# CUDA launchers, present only when with_cuda; arguments are device addresses (int),
# sizes, and the CUDA stream as an int. the ospo_fast.ops *_gpu launchers are the typed front end.
def cuda_device_count() -> int: ...
def owen_token_advantages_cuda(
    n_segments: int,
    coalition_offsets: int,
    coalitions: int,
    values: int,
    phi_offsets: int,
    segment_spans: int,
    token_offsets: int,
    token_mask: int,
    answer_mask: int,
    advantages: int,
    *,
    n_responses: int,
    n_tokens: int,
    mode: str,
    alpha: float,
    invert_negative: bool,
    phi: int,
    scratch: int,
    out: int,
    stream: int,
    estimator: str = "spec",
    credit_scales: int = 0,
) -> None: ...
def pack_query_windows_cuda(
    segment_token_ids: int,
    segment_token_offsets: int,
    first_segment: int,
    windows: int,
    *,
    n_rows: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_length: int,
    width: int,
    input_ids: int,
    attention_mask: int,
    stream: int,
) -> None: ...
def pack_query_subsets_cuda(
    segment_token_ids: int,
    segment_token_offsets: int,
    first_segment: int,
    masks: int,
    *,
    mask_stride: int,
    n_rows: int,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    max_length: int,
    width: int,
    input_ids: int,
    attention_mask: int,
    stream: int,
) -> None: ...
