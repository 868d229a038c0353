"""Segmenters: cut an answer into the players of the Owen game (spec §3).

A segmenter maps a text to ordered, non-overlapping, half-open character spans
``(start, end)``. Every span starts and ends on a word character, so whitespace and
punctuation at the edges never belong to a segment.

* ``"phrase"``: the built-in rule-based segmenter, no model needed. It cuts at
  punctuation and at conjunctions, and starts a new phrase at prepositions ("with",
  "for", "under", ...), so "dark walnut office chair with lumbar support" becomes
  "dark walnut office chair" | "with lumbar support". Phrases longer than
  ``max_words`` are split into near-equal parts.
* ``"sentence"``: one segment per sentence.
* ``"spacy"``: the reference's rules (noun chunks, adjective→noun spans, verb-led
  preference spans); needs spaCy and an English pipeline.
* ``"word"``: one segment per word.

``cover_all_words=True`` makes every word outside all segments a segment of its own,
so no answer word is left without credit (spec §10, "lost credit").

A word is a run of letters, marks, digits, currency and other symbols (emoji),
joined across single ``- ' ’ . / & + _`` characters, so "t-shirt", "3.5", "men's"
and "r&b" stay whole. Letters with combining marks (Devanagari, decomposed accents)
stay whole too, which a plain ``\\w`` regex would break apart.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ospo_fast.types import SegmenterName, check_choice

Span = tuple[int, int]

# Characters that join two word characters into one word.
_JOINERS = frozenset("-'’./&+_")
# Quote marks between words do not cut a phrase ("kids' chair").
_QUOTES = frozenset("'\"‘’“”«»`")
_SENTENCE_ENDS = frozenset(".!?…。！？")
# Words that separate two phrases and belong to neither.
_CONJUNCTIONS = frozenset({"and", "or", "but", "nor", "plus", "yet"})
# Words that open a new phrase and belong to it ("with lumbar support").
_PREPOSITIONS = frozenset(
    {
        "with", "without", "for", "in", "into", "under", "over", "below", "above", "from",
        "to", "by", "near", "between", "within", "on", "at", "like", "featuring",
        "including", "except", "than", "that", "which",
    }
)
# Verbs that open a preference span in the reference's spaCy rules.
_PREFERENCE_VERBS = frozenset({"looking", "need", "want", "prefer", "replace", "update", "wear", "pair"})


class Segmenter(Protocol):
    def __call__(self, text: str) -> list[Span]:  # ordered, non-overlapping char spans
        ...


@functools.lru_cache(maxsize=4096)
def _is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LMN" or category in ("Sc", "So")


def word_spans(text: str) -> list[Span]:
    """The words of ``text`` as half-open char spans, in order."""
    spans: list[Span] = []
    i, n = 0, len(text)
    while i < n:
        if not _is_word_char(text[i]):
            i += 1
            continue
        start = i
        i += 1
        while i < n:
            if _is_word_char(text[i]):
                i += 1
            elif text[i] in _JOINERS and i + 1 < n and _is_word_char(text[i + 1]):
                i += 2
            else:
                break
        spans.append((start, i))
    return spans


def _gap_cuts_phrase(gap: str) -> bool:
    """Whether the text between two words holds punctuation that ends a phrase."""
    return "\n" in gap or any(not c.isspace() and c not in _QUOTES for c in gap)


def _gap_ends_sentence(gap: str) -> bool:
    return "\n" in gap or any(c in _SENTENCE_ENDS for c in gap)


def _split_evenly(words: list[Span], max_words: int) -> list[Span]:
    """Cut a run of words into the fewest near-equal parts of at most ``max_words``."""
    n_parts = -(-len(words) // max_words)
    bounds = [round(i * len(words) / n_parts) for i in range(n_parts + 1)]
    return [(words[lo][0], words[hi - 1][1]) for lo, hi in zip(bounds[:-1], bounds[1:])]


@dataclass(frozen=True)
class PhraseSegmenter:
    """Rule-based phrases: cut at punctuation and conjunctions, open at prepositions."""

    max_words: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.max_words, bool) or not isinstance(self.max_words, int) or self.max_words < 1:
            raise ValueError(f"max_words must be a positive int, got {self.max_words!r}")

    def __call__(self, text: str) -> list[Span]:
        runs: list[list[Span]] = []
        current: list[Span] = []
        previous_end = 0
        for start, end in word_spans(text):
            word = text[start:end].casefold()
            if current and (_gap_cuts_phrase(text[previous_end:start]) or word in _PREPOSITIONS):
                runs.append(current)
                current = []
            previous_end = end
            if word in _CONJUNCTIONS:
                if current:
                    runs.append(current)
                current = []
                continue
            current.append((start, end))
        if current:
            runs.append(current)
        return [span for run in runs for span in _split_evenly(run, self.max_words)]


def sentence_segments(text: str) -> list[Span]:
    """One span per sentence: cut where the gap between two words holds . ! ? … or a newline."""
    spans: list[Span] = []
    for start, end in word_spans(text):
        if spans and not _gap_ends_sentence(text[spans[-1][1] : start]):
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def longest_first_non_overlapping(candidates: Sequence[Span]) -> list[Span]:
    """Keep spans longest first (ties: leftmost), dropping any that overlaps a kept one."""
    kept: list[Span] = []
    for start, end in sorted(set(candidates), key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(end <= k_start or start >= k_end for k_start, k_end in kept):
            kept.append((start, end))
    return sorted(kept)


def drop_repeated_texts(text: str, spans: Sequence[Span]) -> list[Span]:
    """Keep the first span of each text, compared case-insensitively."""
    seen: set[str] = set()
    kept: list[Span] = []
    for start, end in spans:
        key = text[start:end].casefold()
        if key not in seen:
            seen.add(key)
            kept.append((start, end))
    return kept


class SpacySegmenter:
    """The reference's phrase rules on a spaCy parse (spec §3).

    Candidates: noun chunks of 2-5 words; spans from an adjective to a later noun of
    2-5 words with only adjectives, nouns, numbers or compounds between; verb-led
    preference spans of 3-6 words starting at looking/need/want/prefer/replace/update/
    wear/pair. Overlaps go to the longer span; repeated phrase texts are dropped.
    """

    def __init__(self, model: str = "en_core_web_sm") -> None:
        try:
            import spacy
        except ImportError as err:
            raise ImportError(
                "segmenter='spacy' needs spaCy and an English pipeline (e.g. en_core_web_sm); "
                "install them, or use segmenter='phrase', which needs no model"
            ) from err
        try:
            self.nlp = spacy.load(model, disable=["ner", "lemmatizer"])
        except OSError as err:
            raise ImportError(f"spaCy is installed but its English pipeline {model!r} is not: {err}") from err

    def __call__(self, text: str) -> list[Span]:
        doc = self.nlp(text)
        candidates = [
            (chunk.start_char, chunk.end_char) for chunk in doc.noun_chunks if 2 <= len(chunk) <= 5
        ]
        candidates += [_adjective_to_noun(doc, token) for token in doc if token.pos_ == "ADJ"]
        candidates += [_preference_span(doc, token) for token in doc if token.lower_ in _PREFERENCE_VERBS]
        trimmed = [_trim(text, span) for span in candidates if span is not None]
        spans = longest_first_non_overlapping([s for s in trimmed if s[0] < s[1]])
        return drop_repeated_texts(text, spans)


def _adjective_to_noun(doc: Any, adjective: Any) -> Span | None:
    """From an adjective to the first noun within 2-5 words, through modifiers only (spaCy Doc, Token)."""
    for i in range(adjective.i + 1, min(adjective.i + 5, len(doc))):
        if doc[i].pos_ in ("NOUN", "PROPN"):
            return (adjective.idx, doc[i].idx + len(doc[i]))
        if doc[i].pos_ not in ("ADJ", "NUM") and doc[i].dep_ != "compound":
            return None
    return None


def _preference_span(doc: Any, verb: Any) -> Span | None:
    """The verb and up to five following words, stopping at punctuation; kept at 3+ words."""
    last = verb.i
    while last + 1 < len(doc) and last + 1 - verb.i < 6 and not doc[last + 1].is_punct:
        last += 1
    if last - verb.i + 1 < 3:
        return None
    return (verb.idx, doc[last].idx + len(doc[last]))


def _trim(text: str, span: Span) -> Span:
    """Shrink a span to its first and last word characters."""
    words = word_spans(text[span[0] : span[1]])
    if not words:
        return (span[0], span[0])
    return (span[0] + words[0][0], span[0] + words[-1][1])


def add_uncovered_words(text: str, spans: Sequence[Span]) -> list[Span]:
    """``spans`` plus every word that overlaps none of them, as its own segment."""
    ordered = sorted(spans)
    extra = [w for w in word_spans(text) if not any(w[0] < end and start < w[1] for start, end in ordered)]
    return sorted([*ordered, *extra])


@dataclass(frozen=True)
class CoveringSegmenter:
    """Wraps a segmenter so that words outside all of its segments become segments."""

    inner: Segmenter

    def __call__(self, text: str) -> list[Span]:
        return add_uncovered_words(text, self.inner(text))


def get_segmenter(name: SegmenterName, *, cover_all_words: bool = False) -> Segmenter:
    """The segmenter called ``name``; see the module docstring for each."""
    check_choice("segmenter", name, SegmenterName)
    segmenter: Segmenter
    if name == "phrase":
        segmenter = PhraseSegmenter()
    elif name == "sentence":
        segmenter = sentence_segments
    elif name == "spacy":
        segmenter = SpacySegmenter()
    else:
        segmenter = word_spans
    return CoveringSegmenter(segmenter) if cover_all_words else segmenter
