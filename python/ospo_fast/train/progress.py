"""The whole job's time left: SFT steps, evaluations and RL steps, each at its measured pace.

Each stage's progress bar shows that stage's own ETA; this clock adds the rest of the
job, so a run on a small CPU says how long it will take in all, evaluations included.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

UnitKind = Literal["sft", "eval", "rl"]


def is_evaluation_step(step: int, steps: int, eval_every: int) -> bool:
    """Whether the trainer evaluates after RL step ``step`` (1-based) of ``steps``: every
    ``eval_every`` steps, and always after the last one."""
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    return step % eval_every == 0 or step == steps


def evaluations_left(step: int, steps: int, eval_every: int, *, evaluate_at_start: bool) -> int:
    """Evaluations still to run when ``step`` RL steps are done; ``evaluate_at_start``: the
    step-0 evaluation has not run yet."""
    later = sum(is_evaluation_step(s, steps, eval_every) for s in range(step + 1, steps + 1))
    return later + int(evaluate_at_start)


def seconds_left(
    remaining: Mapping[str, int], spent: Mapping[str, float], done: Mapping[str, int]
) -> tuple[float, bool]:
    """Time left if each kind of unit keeps its mean pace so far, and whether that covers
    every unit left: kinds with none measured yet add nothing (their pace is unknown), so
    the time is then a lower bound."""
    total, complete = 0.0, True
    for kind, count in remaining.items():
        if count <= 0:
            continue
        if done.get(kind, 0) < 1:
            complete = False
            continue
        total += count * spent[kind] / done[kind]
    return total, complete


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``7m05s`` or ``42s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass
class JobClock:
    """Units left per kind, and the time the finished ones took."""

    remaining: dict[str, int]
    spent: dict[str, float] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def finished(self, kind: UnitKind, seconds: float) -> None:
        """One unit of ``kind`` took ``seconds``."""
        self.remaining[kind] = max(self.remaining.get(kind, 0) - 1, 0)
        self.spent[kind] = self.spent.get(kind, 0.0) + seconds
        self.done[kind] = self.done.get(kind, 0) + 1

    def left(self) -> str:
        """The job's time left, formatted: ``≥3m10s`` while some kind of work left has not
        run yet (say, RL steps during SFT), ``?`` when nothing left has a pace."""
        seconds, complete = seconds_left(self.remaining, self.spent, self.done)
        if complete:
            return format_duration(seconds)
        return f"≥{format_duration(seconds)}" if seconds > 0 else "?"

    def elapsed(self) -> str:
        return format_duration(time.perf_counter() - self.started)
