"""Run records: one JSON line per event in ``metrics.jsonl``, mirrored to TensorBoard.

Each record has ``kind`` (``sft``, ``train`` or ``eval``), ``step`` and flat float
metrics. TensorBoard is optional: it is used when ``torch.utils.tensorboard`` imports.
"""

from __future__ import annotations

import json
import math
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
