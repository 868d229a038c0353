"""Shared test setup: offline models only, a native core that must be built, and a
session-wide temporary cache, so the tests never read or fill the user's own."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# onnxruntime otherwise writes a device id under ~/.cache/Microsoft.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

import ospo_fast  # noqa: E402

# The package's default cache ($OSPO_CACHE_DIR) and matplotlib's font cache, pointed into
# one temporary folder per session. Set when pytest starts, before any test module
# imports matplotlib, and inherited by the subprocesses tests start. ONNX exports and
# corpus embeddings are shared across the session's tests, as they would be across runs;
# tests that pass a cache_dir of their own still use theirs.
TEMPORARY_CACHES = {"OSPO_CACHE_DIR": "ospo_fast", "MPLCONFIGDIR": "matplotlib"}
_session_root: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_root
    _session_root = Path(tempfile.mkdtemp(prefix="ospo_test_cache."))
    for variable, folder in TEMPORARY_CACHES.items():
        os.environ[variable] = str(_session_root / folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_root is not None:
        shutil.rmtree(_session_root, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Testing the reference against itself would pass vacuously: demand the real core.
    if not ospo_fast.native_available():
        raise pytest.UsageError("ospo_fast._core is not built: install the package with `pip install .` first")
