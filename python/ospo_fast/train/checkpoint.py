"""Checkpoints, written atomically: a staging directory renamed into place.

A checkpoint directory ``checkpoints/<stage>-<step:06d>`` holds

    adapter/            the trainable LoRA adapter (peft format)
    optimizer.pt        AdamW state
    scheduler.pt        LR schedule state
    rng-<rank>.pt       python, numpy and torch (CPU and CUDA) RNG states of each rank
    trainer_state.json  stage, step, and the config it was written under

Nothing is visible under its final name until every file is written, so a crash or a
Ctrl-C mid-save never leaves a half checkpoint for ``--resume`` to pick up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STAGE_ORDER = {"sft": 0, "rl": 1}
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class TrainerState:
    """Where a run stands: the stage and the number of its steps already done."""

    stage: str
    step: int

    def sort_key(self) -> tuple[int, int]:
        return STAGE_ORDER[self.stage], self.step

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.step:06d}"


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def staging_path(final: Path) -> Path:
    """Deterministic, so every rank of a distributed run writes into the same one."""
    return final.parent / f".{final.name}.staging"


def write_main_files(
    staging: Path, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any, state: TrainerState, config: dict
) -> None:
    """Files written once (by the main process): adapter, optimiser, schedule, state."""
    model.save_pretrained(str(staging / "adapter"))
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(scheduler.state_dict(), staging / "scheduler.pt")
    payload = {"stage": state.stage, "step": state.step, "config": config}
    (staging / STATE_FILE).write_text(json.dumps(payload, indent=2), encoding="utf-8")


def write_rng_file(staging: Path, rank: int) -> None:
    torch.save(capture_rng_state(), staging / f"rng-{rank}.pt")


def publish(staging: Path, final: Path, *, keep: int) -> Path:
    """Rename the staging directory into place, then prune all but the newest ``keep``."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    for old in list_checkpoints(final.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(directory: Path) -> TrainerState:
    path = directory / STATE_FILE
    if not path.is_file():
        raise ValueError(f"{directory} is not a checkpoint: {STATE_FILE} is missing")
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("stage") not in STAGE_ORDER:
        raise ValueError(f"{path}: stage must be one of {sorted(STAGE_ORDER)}, got {payload.get('stage')!r}")
    return TrainerState(payload["stage"], int(payload["step"]))


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (staging directories are skipped)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: read_state(p).sort_key())


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_adapter_weights(model: Any, directory: Path) -> None:
    """Copy the saved adapter's weights into ``model``'s (same LoRA config) adapter."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = directory / "adapter" / "adapter_model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{directory}: adapter/adapter_model.safetensors is missing")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"{weights}: weights do not match the configured LoRA (e.g. {unexpected[0]})")


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, scheduler: Any, rank: int) -> None:
    """Optimiser, schedule and this rank's RNG state from a checkpoint."""
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=False))
    rng_file = directory / f"rng-{rank}.pt"
    if not rng_file.is_file():
        raise ValueError(f"{directory}: {rng_file.name} is missing (was it written with fewer processes?)")
    restore_rng_state(torch.load(rng_file, weights_only=False))
