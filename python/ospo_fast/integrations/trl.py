"""OSPO inside TRL's ``GRPOTrainer`` (TRL >= 0.26; read against TRL 1.16.0).

Two pieces:

* :func:`make_trl_reward` — the NDCG@pool reward as a TRL reward function
  ``reward_func(prompts, completions, completion_ids, **kwargs) -> list[float]``. TRL
  hands every dataset column but ``prompt`` to reward functions as a keyword list, so
  the dataset needs the columns ``candidate_pool`` and ``pool_relevance`` (``answer``
  and ``query_id`` are passed on when present).
* :class:`OSPOGRPOTrainer` — a ``GRPOTrainer`` whose training batches carry per-token
  advantages ``[B, T]`` instead of TRL's ``[B]``. It overrides one method,
  ``_generate_and_score_completions``: TRL's own rewards and group advantages ``Â`` are
  kept, and each row is redistributed over its tokens with mean ``Â``. TRL's
  ``_compute_loss`` has consumed ``[B, T]`` advantages as they are since 0.26 (it
  unsqueezes only a 1-D tensor), so the loss needs no override. Settings under which
  TRL's loss would not see each row's mean ``Â`` are refused (:func:`check_trl_settings`),
  and the per-token statistics go into TRL's metrics (``ospo/*``) and completion tables.

TRL is imported only when :class:`OSPOGRPOTrainer` is first looked up; everything
else here needs torch alone, and :func:`trl_token_advantages` is the whole OSPO step
on TRL-shaped tensors.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ospo_fast.attribution.advantages import StepAdvantages, step_token_advantages
from ospo_fast.attribution.completions import decode_completions
from ospo_fast.integrations import check_prefix_mask
from ospo_fast.ops.device import to_numpy
from ospo_fast.types import RedistributionMode

if TYPE_CHECKING:
    from ospo_fast.attribution.coalition_values import CoalitionEvaluator
    from ospo_fast.attribution.config import OwenConfig
    from ospo_fast.reward.retrieval_reward import RetrievalReward

MIN_TRL_VERSION = "0.26"
REQUIRED_COLUMNS = ("candidate_pool", "pool_relevance")
PASSED_COLUMNS = ("candidate_pool", "pool_relevance", "answer", "query_id")

# Per-completion columns OSPO adds to TRL's completion tables.
TABLE_COLUMNS = ("ospo_adv_std", "ospo_answer_share")

__all__ = [
    "MIN_TRL_VERSION",
    "OSPOGRPOTrainer",
    "TABLE_COLUMNS",
    "check_trl_settings",
    "completion_texts",
    "make_trl_reward",
    "row_statistics",
    "samples_from_columns",
    "trl_token_advantages",
]


def completion_texts(completions: Sequence[Any]) -> list[str]:
    """TRL completions as text: a str as is, a conversational one as its last message's content."""
    texts = []
    for i, completion in enumerate(completions):
        if isinstance(completion, str):
            texts.append(completion)
        elif isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
            content = completion[-1].get("content")
            if not isinstance(content, str):
                raise TypeError(
                    f"completions[{i}]: the last message's content must be a str, got {type(content).__name__}"
                )
            texts.append(content)
        else:
            raise TypeError(
                f"completions[{i}] must be a str or a list of chat messages, got {type(completion).__name__}"
            )
    return texts


def samples_from_columns(columns: Mapping[str, Any], n_rows: int) -> list[dict[str, Any]]:
    """One sample dict per completion from TRL's per-column keyword lists."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(
            f"the training dataset has no column {missing[0]!r}: TRL passes dataset columns to reward functions "
            f"as keyword lists, and the OSPO reward needs {list(REQUIRED_COLUMNS)}"
        )
    present = [name for name in PASSED_COLUMNS if name in columns]
    for name in present:
        if len(columns[name]) != n_rows:
            raise ValueError(f"column {name!r} has {len(columns[name])} values but there are {n_rows} completions")
    return [{name: columns[name][i] for name in present} for i in range(n_rows)]


def make_trl_reward(reward: RetrievalReward) -> Callable[..., list[float]]:
    """``reward`` as a TRL reward function; TRL logs it as ``ospo_ndcg``."""
    if not callable(reward):
        raise TypeError(f"reward must be a callable RetrievalReward, got {type(reward).__name__}")

    def ospo_ndcg(
        prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float]:
        # TRL also passes trainer_state, log_extra and log_metric; only dataset columns matter here.
        texts = completion_texts(completions)
        samples = samples_from_columns(kwargs, len(texts))
        return [float(r) for r in reward(texts, samples)]

    return ospo_ndcg


def trl_token_advantages(
    output: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    eos_ids: Sequence[int],
    evaluator: CoalitionEvaluator,
    owen_config: OwenConfig,
    mode: RedistributionMode = "prop",
    *,
    seed: int,
    alpha: float = 0.7,
    invert_negative: bool = False,
) -> StepAdvantages:
    """OSPO advantages of one TRL generation batch; ``token_advantages`` float32 ``[B, T]`` on the batch's device.

    output  what ``GRPOTrainer._generate_and_score_completions`` returns: ``prompt_ids``,
            ``prompt_mask`` [B, P] left-padded; ``completion_ids``, ``completion_mask`` [B, T]
            right-padded; ``advantages`` [B] (TRL's Â)
    inputs  [B] the dataset rows of the batch (row b produced completion b); they are the
            samples ``evaluator`` scores on, so they need ``candidate_pool`` and ``pool_relevance``

    Completions are decoded from their ids here, so each token's characters are known
    and the answer's credit lands on the answer's own tokens.
    """
    for key in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "advantages"):
        if key not in output:
            raise ValueError(f"output has no {key!r}: pass what GRPOTrainer._generate_and_score_completions returned")
    completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
    advantages = output["advantages"]
    if completion_ids.ndim != 2 or completion_mask.shape != completion_ids.shape:
        raise ValueError(
            f"completion_ids and completion_mask must both be [B, T], got {tuple(completion_ids.shape)} and "
            f"{tuple(completion_mask.shape)}"
        )
    if advantages.shape != (completion_ids.shape[0],):
        raise ValueError(f"advantages must be [B] = [{completion_ids.shape[0]}], got {tuple(advantages.shape)}")
    if len(inputs) != completion_ids.shape[0]:
        raise ValueError(f"got {len(inputs)} inputs for {completion_ids.shape[0]} completions")
    missing = [name for name in REQUIRED_COLUMNS if any(name not in row for row in inputs)]
    if missing:
        raise ValueError(
            f"the training dataset has no column {missing[0]!r}; OSPO scores coalitions on {list(REQUIRED_COLUMNS)}"
        )
    check_prefix_mask(completion_mask.cpu().numpy(), "completion_mask")
    mask = completion_mask.bool().cpu().numpy()  # [B, T]
    texts, token_offsets = decode_completions(tokenizer, completion_ids.cpu().numpy(), mask, eos_ids)
    return step_token_advantages(
        texts, token_offsets, mask, advantages.detach().double().cpu().numpy(), inputs, evaluator, owen_config,
        seed=seed, mode=mode, alpha=alpha, invert_negative=invert_negative, out_device=advantages.device,
    )


def row_statistics(step: StepAdvantages, token_mask: Any) -> dict[str, list[float]]:
    """Per completion: the std of its ``A_t`` and the share of its tokens in the answer (``TABLE_COLUMNS``)."""
    values = np.asarray(to_numpy(step.token_advantages), dtype=np.float64)  # [B, T]
    real = np.asarray(to_numpy(token_mask), dtype=bool)  # [B, T]
    counts = np.maximum(real.sum(axis=1), 1)  # [B]
    means = (values * real).sum(axis=1) / counts
    spread = np.sqrt((((values - means[:, None]) ** 2) * real).sum(axis=1) / counts)
    share = (step.answer_mask & real).sum(axis=1) / counts
    return dict(zip(TABLE_COLUMNS, (spread.tolist(), share.tolist())))


def check_trl_settings(arguments: Mapping[str, Any]) -> None:
    """Refuse ``GRPOTrainer`` arguments under which TRL's loss would not see each row's mean ``Â``.

    arguments  the ``GRPOTrainer.__init__`` arguments by name (``inspect.signature(...).bind``)
    """
    if arguments.get("tools") or arguments.get("environment_factory"):
        raise ValueError(
            "OSPOGRPOTrainer does not support tool calls (tools=, environment_factory=): tool output would be "
            "scored as answer text, and TRL's loss masks it out of the rows OSPO keeps at mean Â"
        )
    args = arguments.get("args")
    quantile = 1.0 if args is None else getattr(args, "top_entropy_quantile", 1.0)
    if quantile < 1.0:
        raise ValueError(
            f"OSPOGRPOTrainer needs GRPOConfig.top_entropy_quantile = 1.0, got {quantile}: the entropy mask "
            "drops low-entropy tokens from TRL's loss, so the tokens it trains on would no longer average to Â"
        )


def require_trl() -> Any:
    """The ``trl`` module, or an ImportError that says how to get a usable one."""
    try:
        import trl
        from trl import GRPOTrainer  # noqa: F401  (TRL imports its trainers lazily; this surfaces missing deps)
    except (ImportError, RuntimeError) as err:
        raise ImportError(
            f"OSPOGRPOTrainer needs TRL >= {MIN_TRL_VERSION} with its dependencies: "
            f"pip install 'trl>={MIN_TRL_VERSION}'"
        ) from err
    from packaging.version import Version

    if Version(trl.__version__) < Version(MIN_TRL_VERSION):
        raise ImportError(
            f"OSPOGRPOTrainer needs TRL >= {MIN_TRL_VERSION} (its loss takes [B, T] advantages from then on), "
            f"found {trl.__version__}: pip install -U 'trl>={MIN_TRL_VERSION}'"
        )
    return trl


@functools.cache
def trainer_class() -> type:
    """Build :class:`OSPOGRPOTrainer` on the installed TRL (once)."""
    from accelerate.utils import gather_object

    from ospo_fast.attribution.completions import eos_token_ids
    from ospo_fast.attribution.config import OwenConfig
    from ospo_fast.attribution.seeds import step_seed
    from ospo_fast.integrations import advantage_metrics, check_ospo_setup

    trl = require_trl()
    grpo_signature = inspect.signature(trl.GRPOTrainer.__init__)

    class OSPOGRPOTrainer(trl.GRPOTrainer):
        """``trl.GRPOTrainer`` with OSPO per-token advantages (spec §6).

        Every argument of ``GRPOTrainer`` is accepted as is; in addition:

        evaluator        an ospo_fast ``CoalitionEvaluator`` (scores coalitions with the reward)
        owen_config      ``OwenConfig`` (w_max, M, segmenter, join); ``evaluator.join`` must match
        mode             'prop', 'rank' or 'hybrid' redistribution
        alpha            HYBRID's share of PROP
        invert_negative  mirror the credit of rows with Â < 0 (spec §10 open question)

        Evaluation batches keep TRL's ``[B]`` advantages: OSPO changes only training (spec §6.6).
        Refused: tool calling, ``top_entropy_quantile < 1`` (:func:`check_trl_settings`), and a
        ``rollout_func`` that returns ``env_mask`` (found at the first batch).
        """

        def __init__(
            self,
            *args: Any,
            evaluator: CoalitionEvaluator,
            owen_config: OwenConfig | None = None,
            mode: RedistributionMode = "prop",
            alpha: float = 0.7,
            invert_negative: bool = False,
            **kwargs: Any,
        ) -> None:
            owen_config = OwenConfig() if owen_config is None else owen_config
            check_ospo_setup(evaluator, owen_config, mode, alpha)
            check_trl_settings(grpo_signature.bind(self, *args, **kwargs).arguments)
            super().__init__(*args, **kwargs)
            self.ospo_evaluator = evaluator
            self.ospo_owen_config = owen_config
            self.ospo_mode: RedistributionMode = mode
            self.ospo_alpha = float(alpha)
            self.ospo_invert_negative = bool(invert_negative)

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            output = super()._generate_and_score_completions(inputs)
            if "tool_mask" in output:
                raise ValueError(
                    "rollout_func returned env_mask: TRL's loss would skip the environment's tokens while OSPO "
                    "scores the whole completion as the policy's answer and keeps each row's mean Â over all "
                    "its tokens; OSPOGRPOTrainer supports rollout_func without env_mask only"
                )
            if not self.model.training:
                # The tables' OSPO columns keep one value per logged completion.
                self._log_table_columns(dict.fromkeys(TABLE_COLUMNS, [None] * len(inputs)))
                return output
            tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
            step = trl_token_advantages(
                output,
                inputs,
                tokenizer,
                eos_token_ids(tokenizer, self.model),
                self.ospo_evaluator,
                self.ospo_owen_config,
                self.ospo_mode,
                seed=step_seed(self.args.seed, self.state.global_step, self.accelerator.process_index,
                               self.accelerator.num_processes),
                alpha=self.ospo_alpha,
                invert_negative=self.ospo_invert_negative,
            )
            output["advantages"] = step.token_advantages  # [B, T]
            self._log_ospo(step, output["completion_mask"])
            return output

        def _log_ospo(self, step: StepAdvantages, completion_mask: torch.Tensor) -> None:
            """Batch statistics into TRL's metrics (averaged over processes), per-row ones into its tables."""
            metrics = advantage_metrics(step, completion_mask)
            local = torch.tensor(list(metrics.values()), dtype=torch.float32, device=completion_mask.device)
            averaged = self.accelerator.gather(local).view(-1, len(metrics)).mean(dim=0).tolist()
            for name, value in zip(metrics, averaged):
                self._metrics["train"][name].append(value)
            self._log_table_columns(row_statistics(step, completion_mask))

        def _log_table_columns(self, columns: Mapping[str, list[Any]]) -> None:
            # TRL's completion tables take user columns from _logs["extra"] (TRL 1.x; older TRL has none).
            extra = self._logs.get("extra")
            if extra is None:
                return
            for column, values in columns.items():
                extra[column].extend(gather_object(values))

    return OSPOGRPOTrainer


def __getattr__(name: str) -> Any:
    # PEP 562: the subclass needs TRL's base class, so it is built on first use.
    if name == "OSPOGRPOTrainer":
        return trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
