"""The thin trainer: SFT warm start, then GRPO or OSPO with a LoRA policy.

One RL step, on every rank for its own share of prompts (spec data flow):

    prompts ─► generate G each ─► completions + token char offsets
            ─► reward (NDCG@pool) ─► Â (group_advantages)
            ─► [OSPO] answers ─► attribute (segments, plan, batched v(S), Owen φ)
               ─► token credit on the answer's tokens ─► redistribute (PROP/RANK/HYBRID)
            ─► A[b, t] ─► μ passes of token-level PPO clip ─► AdamW on the LoRA weights

The maths lives in small modules (token_advantages, loss, rollout, policy); this file
only orders them, keeps the run's state, and writes records and checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ospo_fast.attribution.advantages import StepAdvantages, broadcast_advantages, step_token_advantages
from ospo_fast.attribution.coalition_values import CoalitionEvaluator
from ospo_fast.attribution.config import OwenConfig
from ospo_fast.attribution.seeds import step_seed
from ospo_fast.data import WorldConfig
from ospo_fast.ops.grpo import group_advantage_scales, group_advantages
from ospo_fast.reward.retrieval_reward import RetrievalReward
from ospo_fast.train import checkpoint as ckpt
from ospo_fast.train.config import TrainConfig, config_to_toml
from ospo_fast.train.credit_view import CreditSample, pick_credit_rows, write_credit_view
from ospo_fast.train.evaluate import evaluate_policy, per_query_records, text_statistics
from ospo_fast.train.loss import ppo_clip_loss
from ospo_fast.train.paired import PER_QUERY_DIR, paired_report, per_query_means, per_query_path, write_per_query
from ospo_fast.train.plots import flat_panels, plot_run
from ospo_fast.train.policy import (
    add_lora,
    chat_prompt,
    completion_logprobs,
    describe_adapter,
    load_adapter_into,
    load_base_model,
    load_tokenizer,
    merge_adapter,
    policy_dtype,
    resolve_model,
)
from ospo_fast.train.progress import JobClock, evaluations_left, format_duration, is_evaluation_step
from ospo_fast.train.records import METRICS_FILE, MetricsLog, code_version, read_records, records_of, truncate_after
from ospo_fast.train.rollout import Rollout, generate
from ospo_fast.train.sft import sft_loss, sft_target

SFT_ADAPTER_DIR = "sft_adapter"
SUMMARY_FILE = "summary.json"
CREDIT_VIEW_DIR = "credit_view"
SFT_TARGET_TOKENS = 64
SUMMARY_METRIC = "ndcg@pool"
ATTRIBUTION_TIMINGS = ("segment", "plan", "evaluate", "advantages")


# ------------------------------------------------------------------ pure helpers


def batch_indices(n_rows: int, batch: int, step: int, rank: int, world_size: int, seed: int) -> np.ndarray:
    """Rows of one rank's batch at ``step``: consecutive slices of per-epoch shuffles.

    A function of the step alone, so a resumed run draws exactly the prompts it would
    have drawn; ranks take disjoint slices of the same order. int64 ``[batch]``.
    """
    if n_rows < 1:
        raise ValueError("the training split is empty")
    positions = (step * world_size + rank) * batch + np.arange(batch)  # [batch] global positions
    epochs, within = np.divmod(positions, n_rows)
    out = np.empty(batch, dtype=np.int64)
    for epoch in np.unique(epochs):
        order = np.random.default_rng([seed, int(epoch)]).permutation(n_rows)
        out[epochs == epoch] = order[within[epochs == epoch]]
    return out


def generated_world_config(cfg: TrainConfig) -> WorldConfig:
    """The synthetic world a run generates when it names no ``world_dir``."""
    return WorldConfig(
        n_products=cfg.world_products, n_train=cfg.world_train, n_test=cfg.world_test,
        seed=cfg.world_seed, direct_hint_rate=cfg.world_direct_hint_rate,
        imperfect_distractor_rate=cfg.world_imperfect_distractor_rate,
    )


def owen_config_of(cfg: TrainConfig) -> OwenConfig:
    """The coalitions a run scores (spec §3-4)."""
    return OwenConfig(
        w_max=cfg.w_max, max_coalitions=cfg.M, contiguous=cfg.contiguous, join=cfg.join,
        segmenter=cfg.segmenter, cover_all_words=cfg.cover_all_words, estimator=cfg.estimator,
        subset_sizes=cfg.subset_sizes, subset_budget=cfg.subset_budget,
    )


def credit_scales_of(cfg: TrainConfig, rewards: np.ndarray) -> np.ndarray | None:
    """ospo-signed's credit scale per response: the factor Â divides the group's reward
    differences by (``group_advantage_scales``); None for the other algorithms."""
    if cfg.algorithm != "ospo-signed":
        return None
    return group_advantage_scales(rewards, cfg.G, cfg.advantage_eps, cfg.advantage_scale)


def rollout_token_advantages(
    cfg: TrainConfig,
    texts: Sequence[str],
    token_offsets: np.ndarray,
    token_mask: np.ndarray,
    advantages: np.ndarray,
    samples: Sequence[Mapping[str, Any]],
    evaluator: CoalitionEvaluator,
    *,
    seed: int,
    out_device: Any = None,
    credit_scale: np.ndarray | None = None,
) -> StepAdvantages:
    """The ``A[b, t]`` the loss receives: Â broadcast for GRPO, else the library's
    :func:`~ospo_fast.attribution.advantages.step_token_advantages` (``credit_scale``:
    :func:`credit_scales_of`)."""
    if not cfg.is_ospo:
        return broadcast_advantages(texts, token_offsets, token_mask, advantages, answer_format=cfg.answer_format,
                                    out_device=out_device)
    return step_token_advantages(
        texts, token_offsets, token_mask, advantages, samples, evaluator, owen_config_of(cfg), seed=seed,
        mode=cfg.redistribution, alpha=cfg.alpha, invert_negative=cfg.invert_negative, clip=cfg.advantage_clip,
        out_device=out_device, credit_scale=credit_scale,
    )


def micro_batches(n_groups: int, group_size: int, n_chunks: int) -> list[slice]:
    """``n_chunks`` contiguous row slices of near-equal size, each holding whole groups."""
    bounds = np.linspace(0, n_groups, n_chunks + 1).round().astype(int) * group_size
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def trim_padding(rollout: Rollout, rows: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, slice]:
    """Rows of a rollout without the columns that are padding in all of them.

    Returns ``(prompt_ids, prompt_mask, completion_ids, completion_mask, kept completion columns)``.
    """
    prompt_mask = rollout.prompt_mask[rows]
    first = int((prompt_mask.sum(dim=0) > 0).nonzero().min()) if prompt_mask.any() else 0
    completion_mask = rollout.completion_mask[rows]
    width = int(completion_mask.sum(dim=1).max()) if completion_mask.any() else 1
    columns = slice(0, max(width, 1))
    return (
        rollout.prompt_ids[rows, first:], prompt_mask[:, first:],
        rollout.completion_ids[rows, columns], completion_mask[:, columns], columns,
    )


# ------------------------------------------------------------------ the trainer


class Trainer:
    """A run of :class:`TrainConfig`: ``Trainer(cfg).train()``.

    ``resume``: ``False`` starts fresh (and refuses a directory with checkpoints), ``True``
    continues from the newest checkpoint in ``output_dir`` (fresh when there is none),
    or a path continues from that checkpoint. ``world`` overrides the configured one.
    """

    def __init__(self, cfg: TrainConfig, *, resume: bool | str | os.PathLike[str] = False, world: Any = None) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        self.started = time.perf_counter()  # the summary's wall time counts the setup too
        use_bf16 = torch.cuda.is_available() and policy_dtype(cfg.precision, torch.device("cuda")) == torch.bfloat16
        # cpu=True lets a CPU-only torchrun launch form a gloo process group (accelerate leaves it single otherwise).
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if use_bf16 else "no")
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.output_dir = Path(cfg.output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        from ospo_fast.reward.retrievers.cache import default_cache_dir

        self.cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        self.dtype = policy_dtype(cfg.precision, self.accelerator.device)

        start = self._resume_point(resume)
        self.world = world if world is not None else self._load_world()
        self.train_rows = self.world.train()
        self.eval_rows = self._eval_rows()
        with self.accelerator.main_process_first():
            self.rewards = self._build_rewards()
            self.model_path = resolve_model(cfg.model, self.cache_dir)
        self.reward: RetrievalReward = self.rewards[cfg.retriever]
        self.evaluator = CoalitionEvaluator(self.reward, join=cfg.join)
        self.tokenizer = load_tokenizer(self.model_path)
        self.train_prompts = [chat_prompt(self.tokenizer, r, cfg.prompt_style) for r in self.train_rows]
        self.eval_prompts = [chat_prompt(self.tokenizer, r, cfg.prompt_style) for r in self.eval_rows]

        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.toml").write_text(config_to_toml(cfg), encoding="utf-8")
        self.state = start[0]
        if self.is_main:
            # A fresh run starts a fresh record; a resumed one forgets what came after its checkpoint.
            metrics_path = self.output_dir / METRICS_FILE
            if start[1] is None:
                metrics_path.unlink(missing_ok=True)
            else:
                truncate_after(metrics_path, self._kept_steps(self.state))
        self.log = MetricsLog(self.output_dir, tensorboard=cfg.tensorboard) if self.is_main else None
        # Seeded here, not earlier: on a cold cache, converting the policy and embedding the
        # corpus draw from the global RNGs, and the LoRA init must not depend on the cache.
        self._seed_everything()
        self._setup_stage(self.state.stage, start[1])
        self.stop_requested = False
        self.credit_samples: list[CreditSample] = []
        self.clock = self._job_clock()

    # ---------------------------------------------------------------- setup

    def _resume_point(self, resume: bool | str | os.PathLike[str]) -> tuple[ckpt.TrainerState, Path | None]:
        first = ckpt.TrainerState("sft" if self.cfg.sft_steps > 0 else "rl", 0)
        if resume is False:
            if ckpt.latest_checkpoint(self.checkpoint_root) is not None:
                raise ValueError(
                    f"{self.output_dir} already holds checkpoints of a run: add --resume to continue it, "
                    "or give another --output_dir for a fresh run"
                )
            return first, None
        if resume is True:
            found = ckpt.resume_checkpoint(self.checkpoint_root)  # warns about each newer one it skips
            if found is None:
                return first, None
            path, state = found
        else:
            path = Path(resume)
            state = ckpt.verify_checkpoint(path)
        if self.is_main:
            tqdm.write(f"resuming from checkpoint {path} ({state.stage} step {state.step})")
        return state, path

    def _kept_steps(self, state: ckpt.TrainerState) -> dict[str, int]:
        if state.stage == "sft":
            return {"sft": state.step, "train": -1, "eval": -1}
        return {"sft": self.cfg.sft_steps, "train": state.step, "eval": state.step}

    def _seed_everything(self) -> None:
        import random

        seed = self.cfg.seed * 1_000 + self.rank
        random.seed(seed)
        np.random.seed(seed % (1 << 32))
        torch.manual_seed(seed)

    def _load_world(self) -> Any:
        from ospo_fast.data import generate_world, load_world

        if self.cfg.world_dir:
            return load_world(self.cfg.world_dir)
        return generate_world(generated_world_config(self.cfg))

    def _eval_rows(self) -> list[dict[str, Any]]:
        rows = self.world.test()
        if self.cfg.eval_queries:
            rows = rows[: self.cfg.eval_queries]
        if len(rows) < self.world_size:
            raise ValueError(f"{len(rows)} held-out queries cannot be shared by {self.world_size} processes")
        return rows[self.rank :: self.world_size]

    def _build_rewards(self) -> dict[str, RetrievalReward]:
        """The training reward on the training device (a GPU keeps its corpus and v(S) there);
        the shift-test retrievers only evaluate, on the host."""
        from ospo_fast.reward.retrievers.factory import build_retriever

        catalog = self.world.catalog
        texts, ids = catalog["text"].tolist(), catalog["product_id"].tolist()
        device = self.accelerator.device
        on_gpu = device.type == "cuda"
        rewards = {}
        for name in dict.fromkeys([self.cfg.retriever, *self.cfg.eval_retrievers]):
            trains = name == self.cfg.retriever and name != "bm25"
            retriever = build_retriever(name, texts, cache_dir=self.cache_dir, device=str(device) if trains else None)
            rewards[name] = RetrievalReward(
                retriever, ids, k=self.cfg.k, gain=self.cfg.reward_gain, answer_format=self.cfg.answer_format,
                device=device if trains and on_gpu else None,
            )
        return rewards

    @property
    def sft_adapter_dir(self) -> Path:
        return self.output_dir / SFT_ADAPTER_DIR

    @property
    def rl_start_adapter(self) -> Path | None:
        """The SFT adapter folded into the base before RL: a given one, this run's, or none."""
        if self.cfg.sft_adapter:
            return Path(self.cfg.sft_adapter)
        return self.sft_adapter_dir if self.cfg.sft_steps > 0 else None

    def _setup_stage(self, stage: str, checkpoint: Path | None, *, base: torch.nn.Module | None = None) -> None:
        """Policy, optimiser and schedule of ``stage``, restored from ``checkpoint`` when given."""
        from transformers import get_cosine_schedule_with_warmup

        cfg = self.cfg
        if base is None:
            base = load_base_model(self.model_path, self.dtype, gradient_checkpointing=cfg.gradient_checkpointing)
            start = self.rl_start_adapter
            if stage == "rl" and start is not None:
                if not (start / "adapter_config.json").is_file():
                    raise ValueError(f"{start} holds no adapter: the RL stage starts from the SFT adapter")
                base = merge_adapter(load_adapter_into(base, start, trainable=False))
        model = add_lora(
            base, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules, last_layers=cfg.lora_layers,
        )
        if checkpoint is not None:
            ckpt.load_adapter_weights(model, checkpoint)
        model.to(self.accelerator.device)
        sft = stage == "sft"
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=cfg.sft_lr if sft else cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
        )
        total = cfg.sft_steps if sft else cfg.steps * cfg.mu
        warmup = cfg.sft_warmup_steps if sft else cfg.warmup_steps
        scheduler = get_cosine_schedule_with_warmup(optimizer, min(warmup, total), max(total, 1))
        if checkpoint is not None:
            ckpt.load_training_state(checkpoint, optimizer, scheduler, self.rank)
        self.accelerator.free_memory()
        self.model = self.accelerator.prepare(model)
        self.optimizer, self.scheduler = optimizer, scheduler

    @property
    def policy(self) -> torch.nn.Module:
        """The unwrapped peft model (generation, saving, the adapter-disabled reference)."""
        return self.accelerator.unwrap_model(self.model)

    # ---------------------------------------------------------------- distributed helpers

    def _reduce_mean(self, metrics: Mapping[str, float]) -> dict[str, float]:
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean") if self.world_size > 1 else values
        return dict(zip(keys, values.tolist()))

    def _reduce_sample_means(self, values: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Means over every rank's samples (ranks may hold different counts)."""
        keys = sorted(values)
        sums = [float(np.sum(values[k])) for k in keys] + [float(len(values[k])) for k in keys]
        totals = torch.tensor(sums, dtype=torch.float64, device=self.accelerator.device)
        if self.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        totals_list = totals.tolist()
        n = len(keys)
        return {k: totals_list[i] / max(totals_list[n + i], 1.0) for i, k in enumerate(keys)}

    def _any_rank(self, flag: bool) -> bool:
        if self.world_size == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    @contextlib.contextmanager
    def _interrupt_guard(self) -> Iterator[None]:
        """First Ctrl-C: finish the current step, save a checkpoint, stop. Second: stop now."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            self.stop_requested = True
            signal.signal(signal.SIGINT, previous)
            if self.is_main:
                tqdm.write("interrupt: finishing this step, then saving a checkpoint (Ctrl-C again to quit now)")

        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ---------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path:
        """Write the current state atomically under ``output_dir/checkpoints``."""
        final = self.checkpoint_root / self.state.name
        staging = ckpt.staging_path(final)
        if self.is_main:
            if staging.exists():
                import shutil

                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            ckpt.write_main_files(
                staging, model=self.policy, optimizer=self.optimizer, scheduler=self.scheduler,
                state=self.state, config=dataclasses.asdict(self.cfg),
            )
            describe_adapter(staging / "adapter", base_model=self.cfg.model, about=self._adapter_about(self.state))
        self.accelerator.wait_for_everyone()
        ckpt.write_rng_file(staging, self.rank)
        self.accelerator.wait_for_everyone()
        if self.is_main:
            ckpt.publish(staging, final, keep=self.cfg.keep_checkpoints)
        self.accelerator.wait_for_everyone()
        return final

    # ---------------------------------------------------------------- training

    def train(self, *, max_steps: int | None = None) -> dict[str, Any]:
        """Run the remaining stages; ``max_steps`` stops (with a checkpoint) after that many steps.

        Returns the summary: held-out metrics before RL and at the end (main process).
        """
        budget = [math.inf if max_steps is None else max_steps]
        if self.is_main:
            tqdm.write(f"ospo-train: {self.cfg.algorithm} run; results go to {self.output_dir.resolve()}")
        with self._interrupt_guard():
            if self.state.stage == "sft":
                if not self._run_sft(budget):
                    return self._stopped()
                self._finish_sft()
            if not self._run_rl(budget):
                return self._stopped()
        summary = self._summary() | self._provenance()
        if self.is_main:
            plot_run(self.output_dir, hidden=flat_panels(beta=self.cfg.beta, mu=self.cfg.mu), trained_on=self.cfg.retriever)
            (self.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
            print_summary(summary)
            if self.log is not None:
                self.log.close()
            tqdm.write(describe_run_folder(self.output_dir, summary["wall_time_s"]))
        return summary

    def _should_stop(self, budget: list[float]) -> bool:
        budget[0] -= 1
        return self._any_rank(self.stop_requested or budget[0] < 0)

    def _stopped(self) -> dict[str, Any]:
        path = self.save_checkpoint()
        if self.is_main:
            tqdm.write(f"stopped at {self.state.name}; checkpoint {path} (continue with --resume)")
        return {"stopped_at": self.state.name, "checkpoint": str(path)}

    def _progress(self, total: int, desc: str) -> tqdm:
        return tqdm(
            total=total, initial=self.state.step, desc=desc, dynamic_ncols=True,
            disable=not (self.cfg.progress and self.is_main),
        )

    def _job_clock(self) -> JobClock:
        """The units of work left from where the run stands (a resumed run counts only the rest)."""
        cfg = self.cfg
        rl_done = self.state.step if self.state.stage == "rl" else 0
        evaluations = evaluations_left(rl_done, cfg.steps, cfg.eval_every, evaluate_at_start=cfg.eval_at_start and rl_done == 0)
        sft_left = cfg.sft_steps - self.state.step if self.state.stage == "sft" else 0
        return JobClock({"sft": sft_left, "eval": evaluations, "rl": cfg.steps - rl_done})

    def _run_sft(self, budget: list[float]) -> bool:
        cfg = self.cfg
        with self._progress(cfg.sft_steps, "sft") as bar:
            while self.state.step < cfg.sft_steps:
                if self._should_stop(budget):
                    return False
                tick = time.perf_counter()
                rows = batch_indices(len(self.train_rows), cfg.sft_batch_size, self.state.step, self.rank,
                                     self.world_size, cfg.seed + 7)
                self.model.train()
                loss = sft_loss(
                    self.model, self.tokenizer, [self.train_prompts[i] for i in rows],
                    [sft_target(self.train_rows[i]) for i in rows],
                    max_prompt_tokens=cfg.max_prompt_tokens, max_target_tokens=SFT_TARGET_TOKENS,
                )
                self.accelerator.backward(loss)
                grad_norm = self._optimizer_step()
                self.state = ckpt.TrainerState("sft", self.state.step + 1)
                metrics = self._reduce_mean({"loss": loss.item(), "grad_norm": grad_norm,
                                             "lr": self.scheduler.get_last_lr()[0]})
                if self.log is not None:
                    self.log.log("sft", self.state.step, metrics)
                self.clock.finished("sft", time.perf_counter() - tick)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", job_left=self.clock.left())
                if cfg.save_every and self.state.step % cfg.save_every == 0 and self.state.step < cfg.sft_steps:
                    self.save_checkpoint()
        return True

    def _adapter_about(self, state: ckpt.TrainerState) -> str:
        """What a saved adapter of this run at ``state`` is, for its README."""
        cfg = self.cfg
        if state.stage == "sft":
            return (f"The SFT warm start of the run in `{cfg.output_dir}` after {state.step} of {cfg.sft_steps} steps on "
                    "the world's imperfect queries. The RL stage folds it into the base and trains a new adapter on top.")
        start = self.rl_start_adapter
        on_top = f" It applies to the base with the SFT adapter `{start}` folded in." if start is not None else ""
        return f"The {cfg.algorithm} policy of the run in `{cfg.output_dir}` after RL step {state.step} of {cfg.steps}.{on_top}"

    def _finish_sft(self) -> None:
        """Save the SFT adapter, fold it into the base, and start the RL stage on top."""
        if self.is_main:
            import shutil

            staging = ckpt.staging_path(self.sft_adapter_dir)
            shutil.rmtree(staging, ignore_errors=True)
            self.policy.save_pretrained(str(staging))
            describe_adapter(staging, base_model=self.cfg.model, about=self._adapter_about(self.state))
            shutil.rmtree(self.sft_adapter_dir, ignore_errors=True)
            os.replace(staging, self.sft_adapter_dir)
        self.accelerator.wait_for_everyone()
        base = merge_adapter(self.policy)
        self.state = ckpt.TrainerState("rl", 0)
        self._setup_stage("rl", None, base=base)

    def _optimizer_step(self) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.cfg.max_grad_norm > 0:
            grad_norm = float(self.accelerator.clip_grad_norm_(params, self.cfg.max_grad_norm))
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _run_rl(self, budget: list[float]) -> bool:
        cfg = self.cfg
        evaluated = {r["step"] for r in records_of(read_records(self.output_dir / METRICS_FILE), "eval")}
        if cfg.eval_at_start and self.state.step == 0 and 0 not in evaluated:
            self.evaluate()
        with self._progress(cfg.steps, cfg.algorithm) as bar:
            while self.state.step < cfg.steps:
                if self._should_stop(budget):
                    return False
                tick = time.perf_counter()
                metrics = self.rl_step()
                self.state = ckpt.TrainerState("rl", self.state.step + 1)
                if self.log is not None:
                    self.log.log("train", self.state.step, metrics)
                self.clock.finished("rl", time.perf_counter() - tick)
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['reward_mean']:.3f}", loss=f"{metrics['loss']:+.4f}", job_left=self.clock.left()
                )
                last = self.state.step == cfg.steps
                if is_evaluation_step(self.state.step, cfg.steps, cfg.eval_every):
                    self.evaluate()
                    bar.unpause()  # the RL bar's clock and rate leave the evaluation's time out
                if last or (cfg.save_every and self.state.step % cfg.save_every == 0):
                    self.save_checkpoint()
        return True

    def rollout_batch(self, step: int) -> tuple[Rollout, list[dict[str, Any]], list[str]]:
        """Generate this rank's G completions for each of its prompts at ``step``."""
        cfg = self.cfg
        rows = batch_indices(len(self.train_rows), cfg.prompts_per_step, step, self.rank, self.world_size, cfg.seed)
        prompts = [self.train_prompts[i] for i in rows]
        rollout = generate(
            self.policy, self.tokenizer, prompts, n_per_prompt=cfg.G, max_new_tokens=cfg.max_new_tokens,
            max_prompt_tokens=cfg.max_prompt_tokens, do_sample=True, temperature=cfg.temperature,
            top_p=cfg.top_p, batch_size=cfg.generation_batch_size,
        )
        samples = [self.train_rows[i] for i in rows for _ in range(cfg.G)]
        questions = [str(self.train_rows[i].get("question", "")) for i in rows for _ in range(cfg.G)]
        return rollout, samples, questions

    def rl_step(self) -> dict[str, float]:
        """One generation and its μ optimisation passes; returns the step's metrics."""
        cfg = self.cfg
        timings: dict[str, float] = {}
        started = time.perf_counter()
        rollout, samples, questions = self.rollout_batch(self.state.step)
        timings["time/generate"] = time.perf_counter() - started

        tick = time.perf_counter()
        rewards = self.reward(rollout.texts, samples)  # [B]
        advantages = group_advantages(rewards, cfg.G, cfg.advantage_eps, cfg.advantage_scale)  # [B]
        timings["time/reward"] = time.perf_counter() - tick

        tick = time.perf_counter()
        token_mask = rollout.completion_mask.cpu().numpy()
        step = rollout_token_advantages(
            cfg, rollout.texts, rollout.token_offsets, token_mask, advantages, samples, self.evaluator,
            seed=step_seed(cfg.seed, self.state.step, self.rank, self.world_size), out_device=self.accelerator.device,
            credit_scale=credit_scales_of(cfg, rewards),
        )
        timings["time/advantages"] = time.perf_counter() - tick
        token_adv = step.token_advantages  # [B, T] float32 on the loss's device
        self._keep_credit_samples(rollout, questions, step, rewards)

        tick = time.perf_counter()
        update = self.policy_update(rollout, token_adv)
        # The policy's forward (log-probs) apart from the backward and the optimiser step.
        timings["time/logprobs"] = update.pop("time_logprobs")
        timings["time/update"] = time.perf_counter() - tick - timings["time/logprobs"]
        timings["time/step"] = time.perf_counter() - started

        text_stats = {k: float(v.mean()) for k, v in text_statistics(rollout.texts).items()}
        # Fixed keys, so every rank reports the same metrics even when it attributes nothing.
        attribution = {"n_coalitions": float(step.n_coalitions)} | {
            f"time/attr_{k}": step.timings.get(k, 0.0) for k in ATTRIBUTION_TIMINGS
        } if cfg.is_ospo else {}
        local = {
            "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std()),
            "reward_max": float(rewards.max()),
            "zero_reward_rate": float(np.mean(rewards == 0)),
            "advantage_abs_mean": float(np.abs(advantages).mean()),
            "completion_tokens": float(token_mask.sum(axis=1).mean()),
            "lr": self.scheduler.get_last_lr()[0],
        } | step.statistics(token_mask) | text_stats | update | attribution | timings
        return self._reduce_mean(local)

    def _logprobs(self, model: torch.nn.Module, rollout: Rollout, rows: slice) -> tuple[torch.Tensor, slice]:
        prompt_ids, prompt_mask, completion_ids, completion_mask, columns = trim_padding(rollout, rows)
        # Gradient checkpointing drops the KV cache in training, so it cannot share prompts.
        group = 1 if self.cfg.gradient_checkpointing else self.cfg.G
        logprobs = completion_logprobs(
            model, prompt_ids, prompt_mask, completion_ids, completion_mask, self.cfg.temperature, group_size=group
        )
        return logprobs, columns

    @torch.no_grad()
    def _frozen_logprobs(self, rollout: Rollout, chunks: list[slice], *, reference: bool) -> list[torch.Tensor]:
        """Log-probs without grad and without dropout: the policy now (π_old) or the base (π_ref)."""
        policy = self.policy
        was_training = policy.training
        policy.eval()
        context = policy.disable_adapter() if reference else contextlib.nullcontext()
        with context, self.accelerator.autocast():
            out = [self._logprobs(policy, rollout, rows)[0].float() for rows in chunks]
        policy.train(was_training)
        return out

    def policy_update(self, rollout: Rollout, token_adv: torch.Tensor) -> dict[str, float]:
        """μ passes of PPO-clip over the rollout, ``gradient_accumulation_steps`` micro-batches each."""
        cfg = self.cfg
        device = self.accelerator.device
        mask_all = rollout.completion_mask
        chunks = micro_batches(len(rollout) // cfg.G, cfg.G, cfg.gradient_accumulation_steps)
        # Normalisers of the whole generation, divided by the world size because DDP
        # averages gradients over ranks: the result is the global token (or sequence) mean.
        counts = torch.tensor([float(mask_all.sum()), float(len(rollout))], dtype=torch.float64, device=device)
        if self.world_size > 1:
            counts = self.accelerator.reduce(counts, reduction="sum")
        total_tokens, total_sequences = (counts / self.world_size).tolist()
        tick = time.perf_counter()
        old = self._frozen_logprobs(rollout, chunks, reference=False) if cfg.mu > 1 else None
        ref = self._frozen_logprobs(rollout, chunks, reference=True) if cfg.beta > 0 else None
        logprob_s = time.perf_counter() - tick
        sums = {"loss": 0.0, "clip_fraction": 0.0, "kl": 0.0, "ratio": 0.0, "grad_norm": 0.0}
        self.model.train()
        for _ in range(cfg.mu):
            for i, rows in enumerate(chunks):
                sync = i == len(chunks) - 1
                with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
                    tick = time.perf_counter()
                    logprobs, columns = self._logprobs(self.model, rollout, rows)  # [b, t]
                    logprob_s += time.perf_counter() - tick
                    mask = rollout.completion_mask[rows, columns].to(device)
                    loss, stats = ppo_clip_loss(
                        logprobs,
                        old[i] if old is not None else logprobs.detach(),
                        token_adv[rows, columns].to(device),
                        mask,
                        epsilon_low=cfg.epsilon_low,
                        epsilon_high=cfg.epsilon_high,
                        beta=cfg.beta,
                        ref_logprobs=ref[i] if ref is not None else None,
                        aggregation=cfg.loss_aggregation,
                        total_tokens=total_tokens,
                        total_sequences=total_sequences,
                    )
                    self.accelerator.backward(loss)
                sums["loss"] += loss.item() / cfg.mu
                share = (rows.stop - rows.start) / len(rollout) / cfg.mu
                for key in ("clip_fraction", "kl", "ratio"):
                    sums[key] += float(stats[key]) * share
            sums["grad_norm"] += self._optimizer_step() / cfg.mu
        return sums | {"time_logprobs": logprob_s}

    # ---------------------------------------------------------------- evaluation and views

    def _keep_credit_samples(
        self, rollout: Rollout, questions: list[str], step: StepAdvantages, rewards: np.ndarray
    ) -> None:
        """For the next credit view: per prompt, the completions pushed up and down most."""
        rows = pick_credit_rows(step.advantages, self.cfg.G, self.cfg.credit_view_samples)
        token_adv = step.token_advantages[rows].detach().double().cpu().numpy()  # [rows, T]
        kept = []
        for i, b in enumerate(rows):
            n = int(rollout.completion_mask[b].sum())
            kept.append(CreditSample(
                prompt=questions[b], completion=rollout.texts[b], token_offsets=rollout.token_offsets[b, :n],
                advantages=token_adv[i, :n], answer_mask=step.answer_mask[b, :n],
                segment_spans=step.segment_spans[b], phi=step.phi[b],
                reward=float(rewards[b]), group_advantage=float(step.advantages[b]),
            ))
        self.credit_samples = kept

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics of the current policy, logged as an ``eval`` record at the RL step."""
        cfg = self.cfg
        started = time.perf_counter()
        with tqdm(
            total=len(self.eval_prompts), desc=f"eval @ RL step {self.state.step}", unit="prompt", leave=False,
            dynamic_ncols=True, disable=not (cfg.progress and self.is_main),
        ) as bar:
            bar.set_postfix(job_left=self.clock.left())
            values, texts = evaluate_policy(
                self.policy, self.tokenizer, self.eval_prompts, self.eval_rows, self.rewards,
                n_samples=cfg.eval_samples, temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens,
                max_prompt_tokens=cfg.max_prompt_tokens, batch_size=cfg.generation_batch_size, seed=cfg.seed + 1,
                on_prompts_done=bar.update,
            )
        metrics = self._reduce_sample_means(values) | {"time/eval": time.perf_counter() - started}
        self._write_per_query(values, texts)
        self.clock.finished("eval", time.perf_counter() - started)
        if self.is_main:
            if self.log is not None:
                self.log.log("eval", self.state.step, metrics)
            key = f"greedy/{cfg.retriever}/{SUMMARY_METRIC}"
            example = texts["greedy"][0].replace("\n", " ")[:160] if texts["greedy"] else ""
            tqdm.write(f"[eval step {self.state.step}] held-out {SUMMARY_METRIC} (greedy, {cfg.retriever}) = "
                       f"{metrics[key]:.4f} in {format_duration(metrics['time/eval'])} | job: "
                       f"{self.clock.elapsed()} so far, {self.clock.left()} left | example: {example}")
            if self.credit_samples:
                write_credit_view(
                    self.output_dir / CREDIT_VIEW_DIR / f"step_{self.state.step:06d}.html", self.credit_samples,
                    title=f"{cfg.algorithm}: token advantages at RL step {self.state.step}",
                )
        return metrics

    def _write_per_query(self, values: Mapping[str, np.ndarray], texts: Mapping[str, Sequence[str]]) -> None:
        """This evaluation's per-query NDCG@pool, with each query's context and the policy's
        answers, gathered from every rank, for the paired summary and for reading."""
        from accelerate.utils import gather_object

        n_queries = len(self.eval_rows)
        keys = sorted(k for k in values if k.endswith(f"/{SUMMARY_METRIC}"))
        means = {k: per_query_means(values[k], n_queries) for k in keys}  # key -> [Q_rank]
        records = per_query_records(self.eval_rows, texts, self.cfg.answer_format)
        rows = [(record, {k: float(means[k][i]) for k in keys}) for i, record in enumerate(records)]
        rows = gather_object(rows) if self.world_size > 1 else rows
        if self.is_main:
            write_per_query(
                per_query_path(self.output_dir, self.state.step), [record["query_id"] for record, _ in rows],
                {k: [v[k] for _, v in rows] for k in keys}, queries=[record for record, _ in rows],
            )

    def _summary(self) -> dict[str, Any]:
        """Held-out metrics at RL step 0 (after SFT) and at the end, from the records.

        ``paired``: the per-query after − before difference on the same queries, with its
        paired SE and bootstrap 95% CI (when both evaluations kept their per-query values).
        """
        evals = list(records_of(read_records(self.output_dir / METRICS_FILE), "eval"))
        if not evals:
            return {}
        before, after = evals[0], evals[-1]
        keys = sorted(k for k in after if k.endswith(f"/{SUMMARY_METRIC}"))
        first, last = per_query_path(self.output_dir, before["step"]), per_query_path(self.output_dir, after["step"])
        paired_ready = before["step"] != after["step"] and first.is_file() and last.is_file()
        return {
            "algorithm": self.cfg.algorithm,
            "before_step": before["step"],
            "after_step": after["step"],
            "before": {k: before.get(k) for k in keys},
            "after": {k: after.get(k) for k in keys},
            "paired": paired_report(first, last, seed=self.cfg.seed) if paired_ready else {},
            "final_eval": after,
        }

    def _provenance(self) -> dict[str, Any]:
        """This invocation's wall time (setup included; a resumed run counts only its own) and the code it ran."""
        return {"wall_time_s": time.perf_counter() - self.started} | code_version()


def print_summary(summary: Mapping[str, Any]) -> None:
    """A before/after table of held-out NDCG@pool."""
    if not summary.get("before"):
        return
    paired = summary.get("paired", {})
    n_queries = int(next(iter(paired.values()))["n_queries"]) if paired else 0
    tqdm.write(f"\nheld-out {SUMMARY_METRIC}: RL step {summary['before_step']} -> step {summary['after_step']}"
               + (f", paired over the same {n_queries} queries" if paired else ""))
    tqdm.write(f"| {'decoding/retriever':<34} | before | after  | change  | paired SE | 95% CI (bootstrap)  |")
    tqdm.write(f"|{'-' * 36}|--------|--------|---------|-----------|---------------------|")
    for key, before in summary["before"].items():
        after = summary["after"][key]
        if before is None or after is None:
            continue
        stats = paired.get(key)
        spread = (f"{stats['paired_se']:9.4f} | [{stats['ci95_low']:+.4f}, {stats['ci95_high']:+.4f}]"
                  if stats else f"{'-':>9} | {'-':>19}")
        name = key.removesuffix("/" + SUMMARY_METRIC)
        tqdm.write(f"| {name:<34} | {before:.4f} | {after:.4f} | {after - before:+.4f} | {spread} |")


RUN_FOLDER_GUIDE = (
    (SUMMARY_FILE, "the table above as JSON, with paired SE and 95% CIs, wall time and git commit"),
    (METRICS_FILE, "one JSON record per SFT step, RL step and evaluation"),
    ("train_curves.png", "reward, loss, answer lengths and gradient norm per RL step; the SFT loss"),
    ("eval_curves.png", "held-out NDCG@pool at each evaluation, with 95% intervals"),
    (f"{CREDIT_VIEW_DIR}/index.html", "token advantages and segment values φ at each evaluation (a browser page)"),
    (f"{PER_QUERY_DIR}/", "per evaluation: each query's NDCG@pool, its context and the policy's answers"),
    (f"{SFT_ADAPTER_DIR}/", "the SFT LoRA adapter the RL stage started from"),
    ("checkpoints/", "the newest checkpoints (LoRA adapter, optimiser, RNG states): --resume continues"),
    ("config.toml", "the resolved config (ospo-train --config takes the file)"),
    ("tensorboard/", "the records again, for TensorBoard"),
)


def describe_run_folder(directory: Path, wall_time_s: float) -> str:
    """Where a finished run's results are and what each file holds (those that exist)."""
    lines = [f"\nresults in {directory.resolve()} ({format_duration(wall_time_s)} wall):"]
    width = max(len(name) for name, _ in RUN_FOLDER_GUIDE)
    lines += [f"  {name:<{width}}  {what}" for name, what in RUN_FOLDER_GUIDE if (directory / name).exists()]
    return "\n".join(lines)
