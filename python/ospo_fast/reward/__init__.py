"""The reward layer: answer extraction, the NDCG@pool retrieval reward, ranking metrics,
and the retrievers behind them (:mod:`ospo_fast.reward.retrievers`)."""

from ospo_fast.reward.answer import answer_token_mask, answer_token_masks, extract_answer, is_blank
from ospo_fast.reward.query_plan import QueryPlan, check_finite, plan_queries
from ospo_fast.reward.retrieval_reward import METRIC_CUTOFFS, Pools, RetrievalReward, lookup_rows

__all__ = [
    "METRIC_CUTOFFS",
    "Pools",
    "QueryPlan",
    "RetrievalReward",
    "answer_token_mask",
    "answer_token_masks",
    "check_finite",
    "extract_answer",
    "is_blank",
    "lookup_rows",
    "plan_queries",
]
