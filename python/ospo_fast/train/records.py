"""Run records: one JSON line per event in ``metrics.jsonl``, mirrored to TensorBoard,
and the code a run ran (:func:`code_version`, for its summary).

Each record has ``kind`` (``sft``, ``train`` or ``eval``), ``step`` and flat float
metrics. TensorBoard is optional: it is used when ``torch.utils.tensorboard`` imports.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN and inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file, in order (an absent file has none)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def records_of(records: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (r for r in records if r.get("kind") == kind)


def truncate_after(path: Path, kind_steps: Mapping[str, int]) -> None:
    """Drop records logged after a checkpoint (``kind -> last kept step``), for a clean resume."""
    kept = [r for r in read_records(path) if r.get("step", 0) <= kind_steps.get(r.get("kind", ""), math.inf)]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in kept:
            handle.write(json.dumps(record) + "\n")
    tmp.replace(path)


class MetricsLog:
    """Appends records to ``directory/metrics.jsonl`` and, when available, TensorBoard."""

    def __init__(self, directory: Path, *, tensorboard: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / METRICS_FILE
        self.writer = _tensorboard_writer(directory / "tensorboard") if tensorboard else None

    def log(self, kind: str, step: int, metrics: Mapping[str, float]) -> None:
        record = {"kind": kind, "step": int(step)} | {k: _clean(float(v)) for k, v in metrics.items()}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(f"{kind}/{name}", float(value), int(step))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(directory))


def _git(package_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=package_dir, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("ospo_fast")
    except importlib.metadata.PackageNotFoundError:
        return None


def code_version(package_dir: Path | None = None, working_dir: Path | None = None) -> dict[str, Any]:
    """The package version, and the git commit of the code a run ran.

    ``git_commit_of`` says where the commit comes from: ``"package"`` when the package is
    ``python/ospo_fast`` of a git checkout (an editable install); else ``"working
    directory"`` when the run starts inside an ospo_fast checkout (a plain ``pip install .``
    from it, as ``scripts/install.sh`` does); else None. A copy installed inside some other
    repository never reports that repository's commit. ``git_dirty``: tracked files differ
    from the commit.
    """
    package = (package_dir or Path(__file__).resolve().parents[1]).resolve()
    facts: dict[str, Any] = {
        "ospo_fast_version": _installed_version(), "git_commit": None, "git_dirty": None, "git_commit_of": None,
    }
    for source, folder in (("package", package), ("working directory", (working_dir or Path.cwd()).resolve())):
        top = _git(folder, "rev-parse", "--show-toplevel")
        if top is None:
            continue
        checkout_package = Path(top) / "python" / "ospo_fast"
        if source == "package" and checkout_package.resolve() != package:
            continue
        if source == "working directory" and not (checkout_package / "__init__.py").is_file():
            continue
        changed = _git(folder, "status", "--porcelain", "--untracked-files=no")
        return facts | {
            "git_commit": _git(folder, "rev-parse", "HEAD"), "git_dirty": None if changed is None else bool(changed),
            "git_commit_of": source,
        }
    return facts
