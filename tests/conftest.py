"""Shared test setup: offline models only, and a native core that must be built."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

import ospo_fast  # noqa: E402


def pytest_sessionstart(session: pytest.Session) -> None:
    # Testing the reference against itself would pass vacuously: demand the real core.
    if not ospo_fast.native_available():
        raise pytest.UsageError("ospo_fast._core is not built: install the package with `pip install .` first")
