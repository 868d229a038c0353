"""Checkpoints: written whole into a staging folder, sealed with checksums, published by rename.

A checkpoint folder ``checkpoints/<stage>-<step:06d>`` holds

    adapter/            the trainable LoRA adapter (peft format)
    optimizer.pt        AdamW state
    scheduler.pt        LR schedule state
    rng-<rank>.pt       python, numpy and torch (CPU and CUDA) RNG states of each rank
    trainer_state.json  stage, step, and the config it was written under
    checksums.json      the sha256 of every other file, written last

Three promises, whatever the moment a run is killed or a disk flips a bit:

* Nothing is visible under a checkpoint's name until every file is written: files go to
  a hidden staging folder that :func:`publish` seals and renames into place.
* Publishing never leaves fewer loadable checkpoints than before. Saving a step that
  already has a checkpoint (Ctrl-C right after a periodic save) first renames the old
  one aside to ``<name>.previous``, which stays loadable, then renames the new one in,
  then removes the aside; ``between_renames`` lets a test stop a publish in that gap.
  Only then are older checkpoints pruned, and the one just published is never among them.
* A checkpoint is used only after :func:`verify_checkpoint`: every file must match its
  checksum, the state must parse and name the folder, the adapter weights must be
  finite. :func:`resume_checkpoint` takes the newest checkpoint that passes, warns
  about each newer one that does not, naming the file and what is wrong with it, and
  refuses to start over when checkpoints exist but none passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

STAGE_ORDER = {"sft": 0, "rl": 1}
STATE_FILE = "trainer_state.json"
CHECKSUM_FILE = "checksums.json"
ADAPTER_WEIGHTS = "adapter/adapter_model.safetensors"
# Files every checkpoint has (rng-<rank>.pt: at least rank 0's).
REQUIRED_FILES = (STATE_FILE, ADAPTER_WEIGHTS, "optimizer.pt", "scheduler.pt", "rng-0.pt")
ASIDE_SUFFIX = ".previous"
_FOLDER_NAME = re.compile(r"(sft|rl)-(\d{6,})(" + re.escape(ASIDE_SUFFIX) + ")?")
_HASH_CHUNK = 1 << 20
# What reading a damaged JSON file may raise (RecursionError: nesting deeper than the parser goes).
_UNREADABLE = (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


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


# ------------------------------------------------------------------ checksums


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """``checksums.json``: the sha256 of every file under ``folder``, by relative path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE)
    sums = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    (folder / CHECKSUM_FILE).write_text(json.dumps({"sha256": sums}, indent=1), encoding="utf-8")


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUM_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint was never sealed, so its files cannot be trusted")
    try:
        sums = json.loads(path.read_text(encoding="utf-8"))["sha256"]
    except _UNREADABLE as error:
        raise CheckpointError(f"{path} is unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise CheckpointError(f"{path} must map file names to sha256 digests")
    return sums


def _read_state(folder: Path) -> TrainerState:
    path = folder / STATE_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        stage, step = payload["stage"], payload["step"]
    except _UNREADABLE as error:
        raise CheckpointError(f"{path} is unreadable ({type(error).__name__}: {error})") from None
    if stage not in STAGE_ORDER or isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: stage must be one of {sorted(STAGE_ORDER)} and step an int >= 0, "
                              f"got {stage!r} and {step!r}")
    return TrainerState(stage, step)


def _require_finite_adapter(folder: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = folder / ADAPTER_WEIGHTS
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{path} does not load ({error})") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {key} holds NaN or inf (the run diverged before this save)")


def verify_checkpoint(folder: Path) -> TrainerState:
    """The state of a checkpoint that may be loaded, or CheckpointError naming the file at fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a checkpoint folder")
    sums = _read_checksums(folder)
    for name in REQUIRED_FILES:
        if name not in sums:
            raise CheckpointError(f"{folder / CHECKSUM_FILE} does not list {name}, which every checkpoint has")
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing (listed in {CHECKSUM_FILE})")
        actual = file_sha256(path)
        if actual != expected:
            raise CheckpointError(f"{path} does not match its checksum (sha256 {actual[:12]}…, expected "
                                  f"{expected[:12]}…): the file changed after it was saved")
    state = _read_state(folder)
    if state.name != folder.name.removesuffix(ASIDE_SUFFIX):
        raise CheckpointError(f"{folder / STATE_FILE} says {state.name}, but the folder is {folder.name}")
    _require_finite_adapter(folder)
    return state


# ------------------------------------------------------------------ finding checkpoints


def _folder_key(path: Path) -> tuple[int, int, int]:
    """(stage, step, 1 for a published name, 0 for its aside): the aside sorts first."""
    match = _FOLDER_NAME.fullmatch(path.name)
    assert match is not None
    return STAGE_ORDER[match.group(1)], int(match.group(2)), int(match.group(3) is None)


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under ``root``, oldest first, by name alone (nothing is read, so a
    corrupt one cannot hide the others); asides included, staging folders not."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _FOLDER_NAME.fullmatch(p.name)]
    return sorted(found, key=_folder_key)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint folder, verified or not."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def resume_checkpoint(root: Path) -> tuple[Path, TrainerState] | None:
    """The newest checkpoint under ``root`` that passes :func:`verify_checkpoint`, with its state.

    Each newer one that fails is skipped with a RuntimeWarning naming the file at fault.
    None when ``root`` holds no checkpoint (a staging folder left by a run stopped while
    saving its first checkpoint is reported); CheckpointError when it holds some but none
    passes, so a run never starts over silently.
    """
    found = list_checkpoints(root)
    failures = []
    for folder in reversed(found):
        try:
            return folder, verify_checkpoint(folder)
        except CheckpointError as error:
            failures.append(str(error))
            warnings.warn(f"skipping checkpoint {folder.name}: {error}", RuntimeWarning, stacklevel=2)
    if found:
        raise CheckpointError(f"none of the {len(found)} checkpoints under {root} can be loaded: "
                              + "; ".join(failures))
    unpublished = sorted(root.glob(".*.staging")) if root.is_dir() else []
    if unpublished:
        warnings.warn(f"{root} holds no published checkpoint, only {unpublished[0].name}, which a run stopped while "
                      "writing; starting from step 0", RuntimeWarning, stacklevel=2)
    return None


# ------------------------------------------------------------------ publishing


def publish(
    staging: Path, final: Path, *, keep: int, between_renames: Callable[[], None] = lambda: None
) -> Path:
    """Seal ``staging`` with its checksums, rename it to ``final``, then prune to ``keep``.

    An existing ``final`` is renamed aside first and removed only once the new one is in
    place; ``between_renames`` runs in that gap (a test stops the publish there).
    """
    write_checksums(staging)
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    if final.exists():
        if aside.exists():  # left by a publish stopped after its second rename: final is whole
            shutil.rmtree(aside)
        os.replace(final, aside)
    between_renames()
    os.replace(staging, final)
    shutil.rmtree(aside, ignore_errors=True)
    prune(final, keep=keep)
    return final


def prune(newest: Path, *, keep: int) -> None:
    """Keep ``newest`` and the ``keep - 1`` checkpoints before it. Checkpoints after it are
    removed: a run resumed from an older checkpoint supersedes them, and ``--resume``
    must continue this run, not the abandoned one."""
    found = list_checkpoints(newest.parent)
    position = found.index(newest)
    for old in found[: max(position - (keep - 1), 0)] + found[position + 1 :]:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ loading


def load_adapter_weights(model: Any, directory: Path) -> None:
    """Copy the saved adapter's weights into ``model``'s (same LoRA config) adapter."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing")
    result = set_peft_model_state_dict(model, load_file(str(weights)))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise CheckpointError(f"{weights}: weights do not match the configured LoRA (e.g. {unexpected[0]})")


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, scheduler: Any, rank: int) -> None:
    """Optimiser, schedule and this rank's RNG state from a checkpoint."""
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=False))
    rng_file = directory / f"rng-{rank}.pt"
    if not rng_file.is_file():
        raise CheckpointError(f"{rng_file} is missing (was the checkpoint written with fewer processes?)")
    restore_rng_state(torch.load(rng_file, weights_only=False))
