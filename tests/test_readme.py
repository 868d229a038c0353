"""The README's code works as written: every ``python`` block runs in a fresh interpreter,
and every ``ospo-train`` command of its ``bash`` blocks parses against the real configs."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ospo_fast.train.cli import build_parser, overrides_from
from ospo_fast.train.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced blocks tagged ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def trainer_commands(block: str) -> list[list[str]]:
    """The arguments of each ``ospo-train`` (or ``-m ospo_fast.train``) call in a shell block."""
    commands = []
    for line in block.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            words = shlex.split(part)
            if "ospo-train" in words:
                commands.append(words[words.index("ospo-train") + 1 :])
            elif "ospo_fast.train" in words and words[words.index("ospo_fast.train") - 1] == "-m":
                commands.append(words[words.index("ospo_fast.train") + 1 :])
    return commands


TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = code_blocks(TEXT, "python")
COMMANDS = [command for block in code_blocks(TEXT, "bash") for command in trainer_commands(block)]


def test_the_readme_shows_code_and_commands():
    assert PYTHON_BLOCKS and COMMANDS
    assert ["--config", "default"] in COMMANDS


@functools.cache
def run_block(block: str) -> subprocess.CompletedProcess:
    """``block`` in a fresh interpreter, from an empty temporary folder (once per session)."""
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run([sys.executable, "-c", block], cwd=folder, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"python-block-{i}" for i in range(len(PYTHON_BLOCKS))])
def test_python_block_runs_in_a_fresh_interpreter(block: str):
    result = run_block(block)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the example prints what it shows"


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(c) or "no-arguments" for c in COMMANDS])
def test_trainer_command_parses_against_the_configs(args: list[str]):
    parsed = build_parser().parse_args(args)
    load_config(parsed.config, overrides_from(parsed))


def test_the_core_example_prints_what_its_comments_say():
    result = run_block(next(block for block in PYTHON_BLOCKS if "step_token_advantages" in block))
    first, *segments = result.stdout.splitlines()
    assert first == "fused (2, 13)"
    assert segments[0].startswith("[('red', 0.333), ('wool', 0.333)")
