"""The credit view: an HTML page shading each completion token by its advantage A_t.

Green tokens were pushed up, red ones down; the deeper the shade, the larger |A_t|.
Answer tokens are underlined, so one can check that credit lands on the answer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CreditSample:
    """One completion as the loss saw it.

    tokens       [T] token strings (their characters in the completion)
    advantages   [T] float64 A_t
    answer_mask  [T] bool tokens of the scored answer
    """

    prompt: str
    tokens: list[str]
    advantages: np.ndarray
    answer_mask: np.ndarray
    reward: float
    group_advantage: float


def split_tokens(text: str, offsets: np.ndarray) -> list[str]:
    """The characters of each token of ``text``; ``offsets [T, 2]`` half-open spans."""
    return [text[int(a) : int(b)] for a, b in np.asarray(offsets).reshape(-1, 2)]


def _shade(value: float, scale: float) -> str:
    strength = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    colour = "0, 160, 60" if value >= 0 else "210, 40, 40"
    return f"rgba({colour}, {0.08 + 0.72 * strength:.3f})"


def render_sample(sample: CreditSample) -> str:
    """One completion as a block of shaded spans (tooltip: A_t)."""
    scale = float(np.max(np.abs(sample.advantages), initial=0.0))
    spans = []
    for token, value, in_answer in zip(sample.tokens, sample.advantages, sample.answer_mask):
        style = f"background:{_shade(float(value), scale)};" + ("text-decoration:underline;" if in_answer else "")
        label = html.escape(token).replace("\n", "↵<br>") or "∅"
        spans.append(f'<span style="{style}" title="A_t = {float(value):+.4f}">{label}</span>')
    header = (
        f"reward {sample.reward:.3f} · Â {sample.group_advantage:+.3f} · "
        f"mean A_t {float(np.mean(sample.advantages)) if len(sample.advantages) else 0.0:+.3f}"
    )
    prompt = html.escape(sample.prompt[-300:])
    return (
        f'<div class="sample"><div class="meta">{header}</div>'
        f'<details><summary>prompt (end)</summary><pre>{prompt}</pre></details>'
        f'<div class="tokens">{"".join(spans)}</div></div>'
    )


def write_credit_view(path: Path, samples: Sequence[CreditSample], *, title: str) -> Path:
    """Write the page atomically and return its path."""
    body = "\n".join(render_sample(s) for s in samples)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }}
.sample {{ border: 1px solid #ccc; border-radius: 6px; padding: 0.8em; margin: 1em 0; }}
.meta {{ color: #555; font-size: 0.9em; margin-bottom: 0.4em; }}
.tokens {{ font-family: monospace; white-space: pre-wrap; line-height: 1.8; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Each token is shaded by its advantage A<sub>t</sub>: green up, red down; answer tokens are underlined.</p>
{body}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
