"""Hostile configs (issue 13): every numeric field finite and in range, and every retriever
and model path checked against what exists, when the config is built."""

from __future__ import annotations

import math
import re
import typing
from typing import Any

import pytest
from hypothesis import strategies as st

from hostile_fuzz import budgets, fuzz
from ospo_fast.train.config import TrainConfig, load_config

HINTS = typing.get_type_hints(TrainConfig)
FLOAT_FIELDS = sorted(name for name, hint in HINTS.items() if hint is float)
INT_FIELDS = sorted(name for name, hint in HINTS.items() if hint is int)
NON_FINITE = (math.nan, math.inf, -math.inf, 10**400, -(10**400))
# Text a command line or a TOML file may hold for a number past float64 or int64.
NON_FINITE_TEXT = ("nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e999")
# Past int64, and its most negative value (which no count, size or seed may be).
INT64_EXTREMES = (2**63, -(2**63) - 1, 10**30, -(10**30), -(2**63))
KNOWN_RETRIEVERS = ("minilm", "paraphrase-minilm-l3", "bm25")


def names_field(error: ValueError, field: str) -> bool:
    return re.search(rf"\b{re.escape(field)}\b", str(error)) is not None


def config_problem(overrides: Any, field: str, must_raise: bool) -> str | None:
    """Build the default config with ``overrides``: a ValueError naming ``field`` is required
    (``must_raise``) or allowed; anything else is a problem."""
    try:
        cfg = load_config("default", overrides)
    except ValueError as error:
        return None if names_field(error, field) else f"{overrides!r}: the error names no {field!r}: {error}"
    if must_raise:
        return f"{overrides!r} was accepted ({field} = {getattr(cfg, field)!r})"
    value = getattr(cfg, field)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{overrides!r}: {field} = {value!r} was accepted"
    return None


@st.composite
def hostile_numbers(draw: Any) -> tuple[Any, str, bool]:
    """A numeric field set to a non-finite value or an int64 extreme (which must raise naming
    it), or to any finite value (which must build, or raise naming it)."""
    field = draw(st.sampled_from(FLOAT_FIELDS + INT_FIELDS))
    as_text = draw(st.booleans())
    kind = draw(st.sampled_from(["non-finite", "int64 extremes", "any finite"]))
    if kind == "non-finite":
        value = draw(st.sampled_from(NON_FINITE_TEXT)) if as_text else draw(st.sampled_from(NON_FINITE))
    elif kind == "int64 extremes":
        value = draw(st.sampled_from(INT64_EXTREMES))
    else:
        value = draw(st.floats(allow_nan=False, allow_infinity=False) if field in FLOAT_FIELDS else st.integers())
    # A large int is a finite float: for a float field its range decides.
    must_raise = kind == "non-finite" or (kind == "int64 extremes" and field in INT_FIELDS)
    overrides = [f"{field}={value}"] if as_text or isinstance(value, str) else {field: value}
    return overrides, field, must_raise


@pytest.mark.parametrize("examples", budgets(150))
def test_numeric_fields_must_be_finite_and_in_range(examples: int) -> None:
    fuzz(hostile_numbers(), lambda case: config_problem(*case), examples)


path_like = st.tuples(st.sampled_from(["/", "./", "../", "~/", "a/b/", "models\\"]), st.text(max_size=12)).map("".join)
unknown_names = st.text(max_size=16).filter(lambda name: name not in KNOWN_RETRIEVERS)


@st.composite
def hostile_names(draw: Any) -> tuple[Any, str, bool]:
    """A retriever, an evaluation retriever or a model path that exists nowhere."""
    field = draw(st.sampled_from(["retriever", "eval_retrievers", "model"]))
    if field == "retriever":
        return {"retriever": draw(unknown_names)}, field, True
    if field == "eval_retrievers":
        names = (draw(st.sampled_from(KNOWN_RETRIEVERS)), draw(unknown_names))
        return {"eval_retrievers": names if draw(st.booleans()) else names[::-1]}, field, True
    return {"model": draw(path_like)}, field, True


@pytest.mark.parametrize("examples", budgets(60))
def test_retrievers_and_model_paths_must_exist(examples: int) -> None:
    fuzz(hostile_names(), lambda case: config_problem(*case), examples)


def test_a_model_folder_and_a_model_name_are_accepted(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert load_config("default", {"model": str(tmp_path)}).model == str(tmp_path)
    # A model name is looked up when the run starts (it may sit in the local model cache).
    assert load_config("default", {"model": "Qwen/Qwen2.5-7B-Instruct"}).model == "Qwen/Qwen2.5-7B-Instruct"
