"""Segmenters: spans are ordered, disjoint, trimmed, and cover what they promise."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ospo_fast.attribution.segment import PhraseSegmenter, get_segmenter, sentence_segments, word_spans

NAMES = ["phrase", "sentence", "word"]
AWKWARD = [
    "",
    "   ",
    "...!!?;,",
    "chair",
    "  chair,  ",
    "été café — crème brûlée",
    "e\u0301te\u0301 cafe\u0301",  # decomposed accents stay inside their words
    "हिन्दी कुर्सी और मेज़",
    "👍 great 🪑 chair",
    "3.5-inch men's t-shirt, r&b vinyl; 2/3 off",
    "red\nblue\n\ngreen",
    "a" * 300,
]


def is_word_edge(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN" or unicodedata.category(char) in ("Sc", "So")


def texts_of(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


def assert_well_formed(text: str, spans: list[tuple[int, int]]) -> None:
    for (a, b), (c, _) in zip(spans, spans[1:]):
        assert b <= c, f"overlap or disorder in {spans}"
    for a, b in spans:
        assert 0 <= a < b <= len(text)
        piece = text[a:b]
        assert piece == piece.strip(), f"untrimmed span {piece!r}"
        assert is_word_edge(piece[0]), f"span starts on punctuation: {piece!r}"
        assert is_word_edge(piece[-1]), f"span ends on punctuation: {piece!r}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cover", [False, True])
@pytest.mark.parametrize("text", AWKWARD)
def test_awkward_inputs_give_well_formed_spans(name: str, cover: bool, text: str) -> None:
    spans = get_segmenter(name, cover_all_words=cover)(text)
    assert_well_formed(text, spans)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", ["", "   ", "...!!?;,", "— , ;"])
def test_no_words_no_segments(name: str, text: str) -> None:
    assert get_segmenter(name, cover_all_words=True)(text) == []


@pytest.mark.parametrize("name", NAMES)
def test_one_word_is_one_segment(name: str) -> None:
    assert get_segmenter(name)("  chair. ") == [(2, 7)]


def test_words_keep_joined_and_unicode_pieces_whole() -> None:
    text = "3.5-inch men's t-shirt, r&b; e\u0301te\u0301 हिन्दी 👍"
    words = ["3.5-inch", "men's", "t-shirt", "r&b", "e\u0301te\u0301", "हिन्दी", "👍"]
    assert texts_of(text, word_spans(text)) == words


def test_phrase_segmenter_keeps_attribute_phrases_and_opens_at_prepositions() -> None:
    text = "dark walnut office chair with lumbar support for home office, under $200"
    spans = get_segmenter("phrase")(text)
    assert texts_of(text, spans) == ["dark walnut office chair", "with lumbar support", "for home office", "under $200"]


def test_phrase_segmenter_drops_conjunctions_unless_covering() -> None:
    text = "red and blue rug; washable"
    assert texts_of(text, get_segmenter("phrase")(text)) == ["red", "blue rug", "washable"]
    assert texts_of(text, get_segmenter("phrase", cover_all_words=True)(text)) == ["red", "and", "blue rug", "washable"]


def test_phrase_length_is_capped_and_split_evenly() -> None:
    text = "one two three four five six seven eight nine"
    spans = PhraseSegmenter(max_words=4)(text)
    assert [len(t.split()) for t in texts_of(text, spans)] == [3, 3, 3]
    assert " ".join(texts_of(text, spans)) == text


def test_sentence_segmenter_cuts_at_sentence_ends_not_decimals() -> None:
    text = "Kids' bunk bed, 3.5 ft wide. Twin size!  Oak?\nwhite paint"
    assert texts_of(text, sentence_segments(text)) == ["Kids' bunk bed, 3.5 ft wide", "Twin size", "Oak", "white paint"]


def test_word_segmenter_is_every_word() -> None:
    text = "a  lamp, (blue)"
    assert texts_of(text, get_segmenter("word")(text)) == ["a", "lamp", "blue"]


def test_unknown_segmenter_and_bad_cap_raise() -> None:
    with pytest.raises(ValueError, match="segmenter must be"):
        get_segmenter("clauses")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_words"):
        PhraseSegmenter(max_words=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab é,;.!  -'\n", "and ", "with ", "👍", "\u0301"]), max_size=30).map("".join))
@pytest.mark.parametrize("name", NAMES)
def test_cover_all_words_leaves_no_word_uncovered(name: str, text: str) -> None:
    spans = get_segmenter(name, cover_all_words=True)(text)
    assert_well_formed(text, spans)
    for start, end in word_spans(text):
        assert any(start < b and a < end for a, b in spans), f"word {text[start:end]!r} has no segment in {spans}"


def test_spacy_segmenter_without_spacy_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)  # `import spacy` now raises ImportError
    with pytest.raises(ImportError, match="needs spaCy.*segmenter='phrase'"):
        get_segmenter("spacy")


def test_spacy_segmenter_follows_reference_rules() -> None:
    pytest.importorskip("spacy")
    segmenter = get_segmenter("spacy", cover_all_words=True)
    text = "looking for a comfortable dark walnut office chair with lumbar support"
    spans = segmenter(text)
    assert_well_formed(text, spans)
    assert any(text[a:b].startswith("looking for") for a, b in spans)
    for start, end in word_spans(text):
        assert any(start < b and a < end for a, b in spans)
