"""benchmarks/perf_table.py: the README's performance table is the saved runs' table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import perf_table  # noqa: E402

RESULTS = sorted((ROOT / "benchmarks" / "results" / "owen_throughput_quick").glob("*.json"))


def test_the_readme_table_is_rebuilt_from_the_committed_runs() -> None:
    assert len(RESULTS) >= perf_table.MIN_RUNS
    assert perf_table.main([*map(str, RESULTS), "--check", str(ROOT / "README.md")]) == 0


def test_the_committed_runs_are_alike_and_name_their_commit() -> None:
    runs = [json.loads(path.read_text()) for path in RESULTS]
    assert len({run["machine"]["git_commit"] for run in runs}) == 1
    assert not any(run["machine"]["git_commit"].endswith("+dirty") for run in runs)
    assert all(run["machine"]["cpu_model"] for run in runs)


def test_a_table_needs_enough_runs_of_one_command() -> None:
    runs = [json.loads(path.read_text()) for path in RESULTS]
    with pytest.raises(ValueError, match="at least"):
        perf_table.table(runs[:2])
    other = json.loads(RESULTS[0].read_text())
    other["config"]["repeats"] = 99
    with pytest.raises(ValueError, match="different options"):
        perf_table.table([*runs[:2], other])
    with pytest.raises(ValueError, match="no <!-- perf-table:start -->"):
        perf_table.with_table("a README without the block", "table")


def test_check_fails_when_the_readme_drifts(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text().replace("| figure | median |", "| figure | best |"))
    assert perf_table.main([*map(str, RESULTS), "--check", str(readme)]) == 1
