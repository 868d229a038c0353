"""Hostile checkpoints (issue 13): corrupted, truncated, reordered and NaN files, and a
run killed while it publishes. Resume takes the newest checkpoint that verifies and
says which; publishing never leaves zero loadable checkpoints; errors name the file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from hostile_fuzz import budgets, fuzz
from ospo_fast.train import checkpoint as ckpt
from ospo_fast.train.checkpoint import ADAPTER_WEIGHTS, STATE_FILE, CheckpointError, TrainerState


class KilledHere(Exception):
    """Raised inside a publish: the disk is left exactly as a kill at that moment leaves it."""


def save_checkpoint(root: Path, state: TrainerState, *, keep: int, marker: float = 0.0,
                    between_renames: Callable[[], None] = lambda: None) -> Path:
    """What Trainer.save_checkpoint writes, with a two-tensor adapter; ``marker`` tells versions apart."""
    final = root / state.name
    staging = ckpt.staging_path(final)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "adapter").mkdir(parents=True)
    save_file({"lora_A": torch.full((2, 3), marker), "lora_B": torch.arange(6.0).reshape(3, 2)},
              str(staging / ADAPTER_WEIGHTS))
    torch.save({"state": {}, "param_groups": [{"lr": 0.1}]}, staging / "optimizer.pt")
    torch.save({"last_epoch": state.step}, staging / "scheduler.pt")
    (staging / STATE_FILE).write_text(json.dumps({"stage": state.stage, "step": state.step, "config": {}}))
    ckpt.write_rng_file(staging, 0)
    return ckpt.publish(staging, final, keep=keep, between_renames=between_renames)


def marker_of(folder: Path) -> float:
    return float(load_file(str(folder / ADAPTER_WEIGHTS))["lora_A"][0, 0])


def resume_quietly(root: Path) -> tuple[tuple[Path, TrainerState] | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = ckpt.resume_checkpoint(root)
    return found, [str(w.message) for w in caught]


# ------------------------------------------------------------------ corrupted files


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def _nan_adapter(folder: Path, at: int, reseal: bool) -> None:
    """NaN weights, as a diverged run saves them (resealed: the checksums agree) or as an edit leaves them."""
    tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    tensors["lora_B"].view(-1)[at % 6] = float("nan")
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))
    if reseal:
        (folder / ckpt.CHECKSUM_FILE).unlink()
        ckpt.write_checksums(folder)


def _swap(first: Path, second: Path) -> None:
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)


# name -> (corrupt(folder, at), the file the warning must name)
CORRUPTIONS: dict[str, tuple[Callable[[Path, int], None], str]] = {
    "flipped adapter byte": (lambda f, at: _flip(f / ADAPTER_WEIGHTS, at), ADAPTER_WEIGHTS),
    "flipped optimizer byte": (lambda f, at: _flip(f / "optimizer.pt", at), "optimizer.pt"),
    "truncated adapter": (lambda f, at: (f / ADAPTER_WEIGHTS).write_bytes((f / ADAPTER_WEIGHTS).read_bytes()[: at % 64]),
                          ADAPTER_WEIGHTS),
    "truncated rng state": (lambda f, at: (f / "rng-0.pt").write_bytes(b""), "rng-0.pt"),
    "deleted scheduler": (lambda f, at: (f / "scheduler.pt").unlink(), "scheduler.pt"),
    "optimizer and scheduler swapped": (lambda f, at: _swap(f / "optimizer.pt", f / "scheduler.pt"), "optimizer.pt"),
    "corrupt trainer_state.json": (lambda f, at: (f / STATE_FILE).write_text("{not json"), STATE_FILE),
    "trainer_state.json of another step": (lambda f, at: _rewrite_state(f, step=99), STATE_FILE),
    "NaN adapter weights, checksums agree": (lambda f, at: _nan_adapter(f, at, reseal=True), ADAPTER_WEIGHTS),
    "NaN adapter weights, edited": (lambda f, at: _nan_adapter(f, at, reseal=False), ADAPTER_WEIGHTS),
    "checksums.json deleted": (lambda f, at: (f / ckpt.CHECKSUM_FILE).unlink(), ckpt.CHECKSUM_FILE),
    "checksums.json garbled": (lambda f, at: (f / ckpt.CHECKSUM_FILE).write_text("[1, 2"), ckpt.CHECKSUM_FILE),
}


def _rewrite_state(folder: Path, step: int) -> None:
    """A state naming another step, resealed, so only the name check can catch it."""
    (folder / STATE_FILE).write_text(json.dumps({"stage": "rl", "step": step, "config": {}}))
    (folder / ckpt.CHECKSUM_FILE).unlink()
    ckpt.write_checksums(folder)


def corrupted_resume_problem(root: Path, n_checkpoints: int, damaged: frozenset[int], corruption: str,
                             at: int) -> str | None:
    """Corrupt the checkpoints ``damaged`` (indices, oldest first); resume must take the
    newest intact one and warn about each newer damaged one, naming the file."""
    shutil.rmtree(root, ignore_errors=True)
    folders = [save_checkpoint(root, TrainerState("rl", step), keep=n_checkpoints, marker=step)
               for step in range(1, n_checkpoints + 1)]
    corrupt, named_file = CORRUPTIONS[corruption]
    for index in damaged:
        corrupt(folders[index], at)
    intact = [i for i in range(n_checkpoints) if i not in damaged]
    try:
        found, messages = resume_quietly(root)
    except CheckpointError as error:
        if intact:
            return f"{corruption}: resume raised ({error}) with checkpoint {folders[intact[-1]].name} intact"
        if not all(str(folders[i] / named_file) in str(error) for i in damaged):
            return f"{corruption}: the error does not name {named_file} of each checkpoint: {error}"
        return None
    if not intact:
        return f"{corruption}: every checkpoint is damaged, yet resume took {found}"
    want = folders[intact[-1]]
    if found is None or found[0] != want or found[1] != TrainerState("rl", intact[-1] + 1):
        return f"{corruption}: resume took {found}, not the newest intact {want.name}"
    skipped = [i for i in damaged if i > intact[-1]]
    if len(messages) != len(skipped) or not all(str(folders[i] / named_file) in " ".join(messages) for i in skipped):
        return f"{corruption}: warnings {messages} do not name {named_file} of each skipped checkpoint {skipped}"
    return None


@st.composite
def corrupted_runs(draw) -> tuple:
    n = draw(st.integers(1, 3))
    damaged = frozenset(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)))
    return n, damaged, draw(st.sampled_from(sorted(CORRUPTIONS))), draw(st.integers(0, 10**6))


@pytest.mark.parametrize("examples", budgets(30))
def test_resume_takes_the_newest_checkpoint_that_verifies(tmp_path: Path, examples: int) -> None:
    fuzz(corrupted_runs(), lambda case: corrupted_resume_problem(tmp_path / "checkpoints", *case), examples)


# ------------------------------------------------------------------ killed while publishing


def publish_gap_problem(root: Path, existing: int, keep: int, resave: bool, killed: bool) -> str | None:
    """``existing`` checkpoints, then one more save (of the newest step again when ``resave``,
    as Ctrl-C after a periodic save does), killed between its two renames when ``killed``.
    Afterwards a checkpoint must load: the new one, or the one it replaces."""
    shutil.rmtree(root, ignore_errors=True)
    for step in range(1, existing + 1):
        save_checkpoint(root, TrainerState("rl", step), keep=keep, marker=step)
    step = existing if resave else existing + 1

    def kill() -> None:
        if killed:
            raise KilledHere

    try:
        save_checkpoint(root, TrainerState("rl", step), keep=keep, marker=100.0 + step, between_renames=kill)
    except KilledHere:
        pass
    found, _ = resume_quietly(root)
    # Killed, the new checkpoint was never published: the one it replaces, or the newest
    # before it, must load (none only when nothing was ever published).
    expected_marker = 100.0 + step if not killed else float(existing) if existing else None
    got_marker = None if found is None else marker_of(found[0])
    if got_marker != expected_marker:
        return (f"{'killed while ' if killed else ''}publishing rl-{step:06d} over {existing} checkpoints "
                f"(keep={keep}): resume found {found and found[0].name} (marker {got_marker}), expected marker "
                f"{expected_marker}; left {sorted(os.listdir(root))}")
    if not killed:
        published = [p.name for p in ckpt.list_checkpoints(root)]
        expected = [f"rl-{s:06d}" for s in range(max(1, step - keep + 1), step + 1)]
        if published != expected:
            return f"after publishing with keep={keep}: {published}, expected {expected}"
    # The next save after the kill publishes cleanly, whatever was left over.
    save_checkpoint(root, TrainerState("rl", step), keep=keep, marker=200.0)
    again, _ = resume_quietly(root)
    if again is None or marker_of(again[0]) != 200.0 or again[0].name != f"rl-{step:06d}":
        return f"saving again after the kill left {os.listdir(root)}"
    return None


@st.composite
def publish_gaps(draw) -> tuple:
    existing = draw(st.integers(0, 3))
    resave = existing > 0 and draw(st.booleans())
    return existing, draw(st.integers(1, 3)), resave, draw(st.booleans())


@pytest.mark.parametrize("examples", budgets(30))
def test_publishing_never_leaves_zero_loadable_checkpoints(tmp_path: Path, examples: int) -> None:
    fuzz(publish_gaps(), lambda case: publish_gap_problem(tmp_path / "checkpoints", *case), examples)


KILLED_PUBLISH = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_hostile_checkpoints import save_checkpoint
from ospo_fast.train.checkpoint import TrainerState
root = Path({root!r})
save_checkpoint(root, TrainerState("rl", 1), keep=1, marker=1.0)
save_checkpoint(root, TrainerState("rl", 1), keep=1, marker=2.0,
                between_renames=lambda: os.kill(os.getpid(), signal.SIGKILL))
"""


def test_kill_9_between_the_renames_keeps_a_loadable_checkpoint(tmp_path: Path) -> None:
    """The issue's case, with a real SIGKILL: keep_checkpoints = 1, Ctrl-C re-saving the step just saved."""
    root = tmp_path / "checkpoints"
    script = KILLED_PUBLISH.format(tests=str(Path(__file__).parent), root=str(root))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    found, _ = resume_quietly(root)
    assert found is not None and found[1] == TrainerState("rl", 1) and marker_of(found[0]) == 1.0


def test_no_checkpoint_but_a_staging_folder_says_so(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (root / ".rl-000001.staging").mkdir(parents=True)
    with pytest.warns(RuntimeWarning, match=r"\.rl-000001\.staging.*starting from step 0"):
        assert ckpt.resume_checkpoint(root) is None


def test_an_explicit_checkpoint_path_is_verified(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path, TrainerState("rl", 3), keep=1)
    _flip(folder / "optimizer.pt", 10)
    with pytest.raises(CheckpointError, match=r"rl-000003/optimizer\.pt does not match its checksum"):
        ckpt.verify_checkpoint(folder)


# ------------------------------------------------------------------ the trainer


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from ospo_fast.data import WorldConfig, generate_world
    from ospo_fast.train.tiny import save_tiny_policy

    world = generate_world(WorldConfig(n_products=1_000, n_train=24, n_test=4, seed=3))
    corpus = [r["prompt"] for r in world.train()] + world.catalog["text"].tolist()[:300]
    return world, str(save_tiny_policy(tmp_path_factory.mktemp("tiny_policy"), corpus))


def test_trainer_killed_while_resaving_resumes_from_what_it_replaced(tiny_run, tmp_path, monkeypatch, capsys):
    """keep_checkpoints = 1, a periodic save of step 1, then the stop's save of step 1 again,
    killed between its renames: --resume continues from the replaced step 1 and says so;
    once the only checkpoint is corrupt, --resume refuses instead of starting over."""
    from ospo_fast.train.config import load_config
    from ospo_fast.train.trainer import Trainer

    world, model = tiny_run
    cfg = load_config("default", {
        "model": model, "output_dir": str(tmp_path / "run"), "retriever": "bm25", "eval_retrievers": (),
        "prompts_per_step": 2, "G": 2, "max_new_tokens": 8, "lora_r": 2, "lora_layers": 0, "warmup_steps": 0,
        "sft_steps": 0, "steps": 2, "eval_at_start": False, "eval_queries": 2, "eval_samples": 0, "eval_every": 100,
        "save_every": 1, "keep_checkpoints": 1, "progress": False, "tensorboard": False,
        "gradient_accumulation_steps": 1, "world_products": 1_000, "world_train": 24, "world_test": 4,
        "world_seed": 3, "M": 8,
    })
    publish, publishes = ckpt.publish, []

    def kill() -> None:
        raise KilledHere

    def publish_killed_on_the_second(staging, final, *, keep):
        publishes.append(final.name)
        return publish(staging, final, keep=keep, between_renames=kill if len(publishes) == 2 else lambda: None)

    monkeypatch.setattr(ckpt, "publish", publish_killed_on_the_second)
    with pytest.raises(KilledHere):
        Trainer(cfg, world=world).train(max_steps=1)
    monkeypatch.setattr(ckpt, "publish", publish)
    root = tmp_path / "run" / "checkpoints"
    assert publishes == ["rl-000001", "rl-000001"]
    assert sorted(p.name for p in root.iterdir()) == [".rl-000001.staging", "rl-000001.previous"]

    capsys.readouterr()
    resumed = Trainer(cfg, world=world, resume=True)
    assert resumed.state == TrainerState("rl", 1)
    assert f"resuming from checkpoint {root / 'rl-000001.previous'} (rl step 1)" in capsys.readouterr().out
    resumed.train()
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["rl-000002"]

    _flip(root / "rl-000002" / ADAPTER_WEIGHTS, 200)
    with pytest.raises(CheckpointError, match=r"rl-000002/adapter/adapter_model\.safetensors does not match"), \
            pytest.warns(RuntimeWarning, match="skipping checkpoint rl-000002"):
        Trainer(cfg, world=world, resume=True)
