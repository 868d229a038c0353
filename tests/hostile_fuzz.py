"""What the hostile-input suites share: how a case is run, how its outcome is judged.

A case is a call with its expected outcome. Native ops run in a child process
(:mod:`hostile_isolation`), so a crash fails the case instead of ending the test run;
their expected results come from the plain twins in :mod:`ospo_fast.ops.reference`,
run here. The rule every case is judged by (issue 13): equal the reference, finite, or
raise a clean error (ValueError, TypeError, MemoryError, OverflowError) whose message
names an argument of the call; never crash, never hang, never return NaN or inf.

Each check returns what went wrong (a string) or None, so one definition serves the
tests (:func:`fuzz` asserts) and a census that only counts (:func:`count_failures`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hostile_isolation import IsolatedCalls, Outcome, resolve

CLEAN_ERRORS = ("ValueError", "TypeError", "MemoryError", "OverflowError", "FloatingPointError")
# Multiplies every suite's default example count in its slow run (pytest -m slow).
SLOW_FACTOR = 10
RTOL, ATOL = 1e-12, 1e-14


class Raises:
    """The expected outcome of a call that must raise a clean, named error."""

    def __repr__(self) -> str:
        return "RAISES"


class AnyFinite:
    """The expected outcome of a call on garbage: any finite result, or a clean, named error."""

    def __repr__(self) -> str:
        return "ANY_FINITE"


RAISES = Raises()
ANY_FINITE = AnyFinite()


@dataclass(frozen=True)
class Case:
    """``target(*args, **kwargs)`` and what it must give: a value (numpy, or a tuple of
    them), RAISES or ANY_FINITE. ``names`` are the words an error message must use one of
    (the call's parameter names by default); ``label`` says what the case probes.
    ``may_raise`` lets a named error stand in for the value. ``fresh_dtypes`` hands the
    child arrays with numpy's own dtype objects; False leaves them as pickle made them
    (the process-boundary case)."""

    label: str
    target: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    expected: Any = RAISES
    names: tuple[str, ...] = ()
    fresh_dtypes: bool = True
    may_raise: bool = False  # past a documented limit (float32 scores, bf16): a named error is fine too

    def argument_names(self) -> tuple[str, ...]:
        return self.names or parameter_names(resolve(self.target))


def parameter_names(function: Any) -> tuple[str, ...]:
    """Parameter names of a Python function, or of a pybind11 binding (from its signature line)."""
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        first_line = (function.__doc__ or "").splitlines()[0] if function.__doc__ else ""
        return tuple(re.findall(r"(\w+):", first_line))


def reference_outcome(call: Callable[[], Any]) -> Any:
    """What a plain twin gives: its value, or RAISES when it raises ValueError (a twin
    raises where the op must, e.g. on values whose sums would overflow)."""
    try:
        return call()
    except ValueError:
        return RAISES


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def compare(got: Any, want: Any) -> str | None:
    """Why ``got`` differs from ``want`` (arrays or tuples of arrays), or None."""
    got_parts, want_parts = _as_tuple(got), _as_tuple(want)
    if len(got_parts) != len(want_parts):
        return f"returned {len(got_parts)} values, the reference {len(want_parts)}"
    for index, (g, w) in enumerate(zip(got_parts, want_parts)):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return f"value {index} has shape {g.shape}, the reference {w.shape}"
        if g.dtype.kind == "f" and not np.isfinite(g).all():
            return f"value {index} holds NaN or inf: {g.reshape(-1)[:6]}"
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            return f"returned {g.reshape(-1)[:6]} where the reference is not finite ({w.reshape(-1)[:6]}): must raise"
        if g.dtype.kind in "fc" or w.dtype.kind in "fc":
            if not np.allclose(g, w, rtol=RTOL, atol=ATOL):
                return f"value {index} differs from the reference: {g.reshape(-1)[:6]} vs {w.reshape(-1)[:6]}"
        elif not np.array_equal(g, w):
            return f"value {index} differs from the reference: {g.reshape(-1)[:6]} vs {w.reshape(-1)[:6]}"
    return None


def judge(outcome: Outcome, case: Case) -> str | None:
    """What is wrong with ``outcome`` for ``case`` (module doc), or None."""
    where = f"{case.label}: {case.target.split(':')[-1]}"
    if outcome.crashed:
        return f"{where} ended the process ({outcome.crashed})"
    if outcome.raised:
        message = f"{outcome.error_type}: {outcome.message[:300]}"
        if outcome.error_type not in CLEAN_ERRORS:
            return f"{where} raised {message}"
        if not any(re.search(rf"\b{re.escape(name)}\b", outcome.message) for name in case.argument_names()):
            return f"{where} raised an error naming no argument ({', '.join(case.argument_names())}): {message}"
        if case.expected is not RAISES and case.expected is not ANY_FINITE and not case.may_raise:
            return f"{where} raised {message}, but the reference returns {case.expected!r:.200}"
        return None
    if case.expected is RAISES:
        garbage = _non_finite(outcome.value)
        return f"{where} {garbage or 'returned ' + repr(outcome.value)[:200]} where it must raise"
    if case.expected is ANY_FINITE:
        problem = _non_finite(outcome.value)
    else:
        problem = compare(outcome.value, case.expected)
    return None if problem is None else f"{where} {problem}"


def _non_finite(value: Any) -> str | None:
    for index, part in enumerate(_as_tuple(value)):
        array = np.asarray(part)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return f"value {index} holds NaN or inf: {array.reshape(-1)[:6]}"
    return None


def judge_in_child(calls: IsolatedCalls, case: Case) -> str | None:
    outcome = calls.run(case.target, *case.args, canonical_dtypes=case.fresh_dtypes, **case.kwargs)
    return judge(outcome, case)


def hostile_settings(examples: int, *, derandomize: bool = False) -> settings:
    """Generation only (no shrinking: a census counts each failure once, and a test still
    reports the failing case), no example database (tests write only to tmp folders).
    ``derandomize`` draws the same cases every run (a census of two versions compares alike)."""
    return settings(
        max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck), derandomize=derandomize,
    )


def fuzz(cases: st.SearchStrategy, check: Callable[[Any], str | None], examples: int) -> None:
    """Draw ``examples`` cases and fail on the first one ``check`` finds wrong."""

    @hostile_settings(examples)
    @given(case=cases)
    def run(case: Any) -> None:
        problem = check(case)
        assert problem is None, problem

    run()


def count_failures(cases: st.SearchStrategy, check: Callable[[Any], str | None], examples: int) -> tuple[int, list[str]]:
    """(cases tried, what went wrong in each failed one): the census of a suite, on the
    same cases every run."""
    tried, failures = [0], []

    @hostile_settings(examples, derandomize=True)
    @given(case=cases)
    def run(case: Any) -> None:
        tried[0] += 1
        problem = check(case)
        if problem is not None:
            failures.append(problem)

    run()
    return tried[0], failures


def budgets(default: int) -> Sequence[Any]:
    """pytest params for a suite's example count: ``default`` in the default run, and
    SLOW_FACTOR times as many in a test marked slow."""
    import pytest

    return [pytest.param(default, id="default"), pytest.param(default * SLOW_FACTOR, id="slow", marks=pytest.mark.slow)]
