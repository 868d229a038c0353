"""The credit view: HTML pages that shade each completion token by its advantage A_t.

One page per evaluation step (``credit_view/step_<step>.html``) shows completions of the
last RL step before it, grouped by prompt: for each prompt the completion pushed up most
and the one pushed down most. Green tokens were pushed up, red ones down, on one colour
scale per page (drawn at the top, saturating at the page's 95th percentile of |A_t|); a
value that rounds to 0.0000 is left unshaded.
Answer tokens are underlined, so one can check that credit lands on the answer. Below
each completion, the answer's segments (the players of the Owen game) with their Owen
value φ; in the token line a bar marks where each segment starts. ``index.html`` lists
the pages.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INDEX_FILE = "index.html"
PAGE_PATTERN = re.compile(r"step_(\d+)\.html$")
DIGITS = 4
# |value| below half the last printed digit prints as 0.0000: shade it as zero too.
ZERO_BELOW = 0.5 * 10.0**-DIGITS
EMPTY_TOKEN = "∅"
POSITIVE_RGB = "0, 150, 60"
NEGATIVE_RGB = "210, 40, 40"
MAX_ALPHA = 0.8
SCALE_QUANTILE = 0.95


@dataclass(frozen=True)
class CreditSample:
    """One completion as the loss saw it.

    completion     the completion text
    token_offsets  [T, 2] int64 char span of each token in ``completion``
    advantages     [T] float64 A_t
    answer_mask    [T] bool tokens of the scored answer
    segment_spans  [n, 2] int64 char spans of the answer's segments in ``completion``
                   (empty for GRPO and for rows with Â = 0, which are never attributed)
    phi            [n] float64 Owen value of each segment
    """

    prompt: str
    completion: str
    token_offsets: np.ndarray
    advantages: np.ndarray
    answer_mask: np.ndarray
    segment_spans: np.ndarray
    phi: np.ndarray
    reward: float
    group_advantage: float


def pick_credit_rows(advantages: np.ndarray, group_size: int, n_rows: int) -> list[int]:
    """Rows for a page: per prompt group (in order), the row with the highest Â, then the
    one with the lowest, taking groups in turn until ``n_rows`` are picked.

    Groups whose Â are all 0 (every completion scored the same) carry no credit and are
    passed over, unless no group has any. ``advantages [B]``, B a multiple of ``group_size``.
    """
    values = np.asarray(advantages, dtype=np.float64).reshape(-1)  # [B]
    if group_size < 1 or values.size % group_size:
        raise ValueError(f"group_size: {values.size} rows do not split into groups of {group_size}")
    groups = values.reshape(-1, group_size)  # [P, G]
    informative = [g for g in range(len(groups)) if np.any(groups[g] != 0)] or list(range(len(groups)))
    # Per group: best, then worst, then the rest in row order (ties keep the earlier row).
    orders = {}
    for g in informative:
        extremes = list(dict.fromkeys([int(np.argmax(groups[g])), int(np.argmin(groups[g]))]))
        orders[g] = extremes + [i for i in range(group_size) if i not in extremes]
    picked: list[int] = []
    for turn in range(group_size):
        for g in informative:
            if len(picked) == n_rows:
                return picked
            picked.append(g * group_size + orders[g][turn])
    return picked


def signed(value: float) -> str:
    """``+0.1234`` / ``-0.1234``, and ``0.0000`` for anything that rounds to zero (never ``-0.0000``)."""
    return f"{0.0:.{DIGITS}f}" if abs(value) < ZERO_BELOW else f"{value:+.{DIGITS}f}"


def shade(value: float, scale: float) -> str:
    """CSS background of ``value`` on a colour scale reaching full strength at ``scale``."""
    if abs(value) < ZERO_BELOW or scale <= 0:
        return "transparent"
    strength = min(abs(value) / scale, 1.0)
    return f"rgba({POSITIVE_RGB if value > 0 else NEGATIVE_RGB}, {MAX_ALPHA * strength:.3f})"


def segment_starts(token_offsets: np.ndarray, segment_spans: np.ndarray) -> dict[int, int]:
    """``token index -> segment index`` for the token in which each segment starts."""
    offsets = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)  # [T, 2]
    starts: dict[int, int] = {}
    for s, (begin, _) in enumerate(np.asarray(segment_spans, dtype=np.int64).reshape(-1, 2)):
        holding = np.flatnonzero((offsets[:, 0] <= begin) & (begin < offsets[:, 1]))
        if holding.size:
            starts.setdefault(int(holding[0]), s)
    return starts


def colour_scale(scale: float, label: str) -> str:
    """A legend: the gradient from ≤ −scale (red) through 0 (unshaded) to ≥ +scale (green)."""
    gradient = f"linear-gradient(to right, rgba({NEGATIVE_RGB}, {MAX_ALPHA}), transparent, rgba({POSITIVE_RGB}, {MAX_ALPHA}))"
    return (
        f'<div class="scale"><span class="name">{label}</span><span>≤ {signed(-scale)}</span>'
        f'<span class="bar" style="background:{gradient}"></span><span>≥ {signed(scale)}</span></div>'
    )


def render_tokens(sample: CreditSample, scale: float) -> str:
    """The completion as shaded token spans; a bar before each segment's first token."""
    starts = segment_starts(sample.token_offsets, sample.segment_spans)
    spans = []
    for t, ((begin, end), value, in_answer) in enumerate(
        zip(np.asarray(sample.token_offsets).reshape(-1, 2), sample.advantages, sample.answer_mask)
    ):
        token = sample.completion[int(begin) : int(end)]
        classes = ["answer"] if in_answer else []
        tooltip = f"A_t = {signed(float(value))}"
        if t in starts:
            classes.append("segment-start")
            tooltip += f" · segment {starts[t] + 1} starts here (φ = {signed(float(sample.phi[starts[t]]))})"
        label = html.escape(token).replace("\n", "↵<br>") if token else EMPTY_TOKEN
        spans.append(
            f'<span class="{" ".join(classes)}" style="background:{shade(float(value), scale)}" '
            f'title="{tooltip}">{label}</span>'
        )
    return "".join(spans)


def render_segments(sample: CreditSample, phi_scale: float) -> str:
    """The answer's segments as chips, each with its Owen value φ."""
    if len(sample.phi) == 0:
        why = ("Â = 0 (every completion of this prompt scored alike): not attributed" if sample.group_advantage == 0
               else "no segments: every token carries Â (GRPO, or an empty answer)")
        return f'<div class="segments none">{why}</div>'
    chips = []
    for s, ((begin, end), value) in enumerate(zip(np.asarray(sample.segment_spans).reshape(-1, 2), sample.phi)):
        text = html.escape(sample.completion[int(begin) : int(end)]) or EMPTY_TOKEN
        chips.append(
            f'<span class="chip" style="background:{shade(float(value), phi_scale)}" title="segment {s + 1}">'
            f'{text}<small>φ {signed(float(value))}</small></span>'
        )
    return f'<div class="segments">segments: {"".join(chips)}</div>'


def render_sample(sample: CreditSample, scale: float, phi_scale: float) -> str:
    """One completion: its reward and Â, the shaded tokens, the segments with φ."""
    mean = float(np.mean(sample.advantages)) if len(sample.advantages) else 0.0
    header = f"reward {sample.reward:.3f} · Â {signed(sample.group_advantage)} · mean A<sub>t</sub> {signed(mean)}"
    return (
        f'<div class="sample"><div class="meta">{header}</div>'
        f'<div class="tokens">{render_tokens(sample, scale)}</div>{render_segments(sample, phi_scale)}</div>'
    )


def page_scale(values: Sequence[np.ndarray], quantile: float = SCALE_QUANTILE) -> float:
    """Where the shade saturates: the ``quantile`` of |value| over the page (a few tokens
    that take most of a row's credit would otherwise leave every other token blank)."""
    pooled = np.abs(np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in values] or [np.zeros(0)]))
    return float(np.quantile(pooled, quantile)) if pooled.size else 0.0


LEGEND = f"""<p>Each token is shaded by its advantage A<sub>t</sub>: green was pushed up, red down,
deeper for larger |A<sub>t</sub>|. One scale serves the whole page (below): full shade from the
page's 95th percentile of |A<sub>t</sub>| on; a value that rounds to 0.0000 is left unshaded.
Answer tokens are underlined; tokens outside the answer get A<sub>t</sub> = Â. A bar before a
token marks where a segment of the answer starts; under each completion, its segments (the
players of the Owen game) with their Owen value φ. <b>{EMPTY_TOKEN}</b> marks a token with no
characters of its own, such as the end-of-sequence token: it adds no text, yet the loss trains
it with its A<sub>t</sub>. Hover over a token for its value.</p>"""

STYLE = """body { font-family: sans-serif; max-width: 64em; margin: 2em auto; }
nav a { margin-right: 1em; }
.prompt { border-top: 2px solid #888; margin-top: 1.5em; padding-top: 0.5em; }
.prompt pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.5em; }
.sample { border: 1px solid #ccc; border-radius: 6px; padding: 0.8em; margin: 0.8em 0; }
.meta { color: #555; font-size: 0.9em; margin-bottom: 0.4em; }
.tokens { font-family: monospace; white-space: pre-wrap; line-height: 1.9; }
.answer { text-decoration: underline; }
.segment-start { border-left: 2px solid #333; padding-left: 1px; }
.segments { margin-top: 0.5em; font-size: 0.9em; }
.segments.none { color: #777; }
.chip { display: inline-block; border: 1px solid #aaa; border-radius: 4px; padding: 0.1em 0.4em;
        margin: 0.15em; font-family: monospace; }
.chip small { display: block; font-family: sans-serif; color: #333; }
.scale { display: flex; align-items: center; gap: 0.5em; margin: 0.3em 0; font-size: 0.9em; }
.scale .name { display: inline-block; width: 2em; }
.scale .bar { display: inline-block; width: 16em; height: 1em; border: 1px solid #aaa; }"""


def render_page(samples: Sequence[CreditSample], *, title: str, links: str = "") -> str:
    """A whole page: the legend, the two colour scales, then the samples grouped by prompt."""
    scale = page_scale([s.advantages for s in samples])
    phi_scale = page_scale([s.phi for s in samples])
    by_prompt: dict[str, list[CreditSample]] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt, []).append(sample)
    sections = [
        f'<div class="prompt"><b>prompt {i + 1}</b> (the shopper\'s message)<pre>{html.escape(prompt)}</pre>'
        + "\n".join(render_sample(s, scale, phi_scale) for s in group) + "</div>"
        for i, (prompt, group) in enumerate(by_prompt.items())
    ]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{STYLE}
</style></head>
<body><h1>{html.escape(title)}</h1>
{links}
{LEGEND}
{colour_scale(scale, "A<sub>t</sub>")}
{colour_scale(phi_scale, "φ")}
{"".join(sections)}
</body></html>
"""


def write_atomic_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_credit_view(path: Path, samples: Sequence[CreditSample], *, title: str) -> Path:
    """Write one page atomically, then refresh the folder's index; returns the page's path."""
    links = f'<nav><a href="{INDEX_FILE}">all steps</a></nav>'
    write_atomic_text(path, render_page(samples, title=title, links=links))
    write_credit_index(path.parent)
    return path


def write_credit_index(directory: Path) -> Path:
    """``index.html``: a link to every ``step_<step>.html`` page of ``directory``, by step."""
    pages = sorted(
        (int(match.group(1)), p.name) for p in directory.iterdir() if (match := PAGE_PATTERN.search(p.name))
    )
    items = "\n".join(f'<li><a href="{name}">RL step {step}</a></li>' for step, name in pages)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>credit views</title>
<style>{STYLE}</style></head>
<body><h1>Credit views</h1>
<p>Token advantages of the last RL step before each evaluation.</p>
<ul>
{items}
</ul>
</body></html>
"""
    return write_atomic_text(directory / INDEX_FILE, page)
