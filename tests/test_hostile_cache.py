"""Hostile cache files (issue 13): corpus embeddings and ONNX exports that were truncated,
bit-flipped, reordered, swapped or hold NaN are never used; they are recomputed, with a
warning naming the file, and the result equals a fresh computation."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from hostile_fuzz import budgets, fuzz
from ospo_fast.reward.retrievers import cache as cache_module
from ospo_fast.reward.retrievers.cache import cached_corpus_embeddings
from ospo_fast.reward.retrievers.encoders import l2_normalise
from ospo_fast.reward.retrievers.fast_minilm import verified_export

TEXTS = [f"product {i} {word}" for i, word in enumerate(["lamp", "sofa", "", "desk", "chair oak", "rug", "mug"])]


class SeededEncoder:
    """A model-free encoder: each text maps to a fixed pseudo-random unit vector; counts its calls."""

    name = "seeded-encoder"
    dim = 6

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        return l2_normalise(np.array([np.random.default_rng(s).normal(size=self.dim) for s in seeds]))


def flip_byte(data: bytes, at: int) -> bytes:
    index = at % len(data)
    return data[:index] + bytes([data[index] ^ 0x5A]) + data[index + 1 :]


def rewrite_vectors(npy: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """A valid .npy of the same shape and dtype holding changed vectors (the .json kept)."""
    np.save(npy, change(np.load(npy)), allow_pickle=False)


# Each corruption damages one cache entry (.npy and .json); `at` picks a byte or a row.
CORRUPTIONS: dict[str, Callable[[Path, Path, int], None]] = {
    "flipped byte": lambda npy, meta, at: npy.write_bytes(flip_byte(npy.read_bytes(), at)),
    "flipped data byte": lambda npy, meta, at: npy.write_bytes(
        flip_byte(npy.read_bytes(), len(npy.read_bytes()) - 1 - at % (len(TEXTS) * SeededEncoder.dim * 4))),
    "truncated": lambda npy, meta, at: npy.write_bytes(npy.read_bytes()[: at % len(npy.read_bytes())]),
    "reordered rows": lambda npy, meta, at: rewrite_vectors(npy, lambda v: np.roll(v, 1 + at % (len(v) - 1), axis=0)),
    "another file of the same shape": lambda npy, meta, at: rewrite_vectors(npy, lambda v: -v),
    "NaN row": lambda npy, meta, at: rewrite_vectors(npy, lambda v: np.where(np.arange(len(v))[:, None] == at % len(v),
                                                                            np.float32(np.nan), v)),
    "NaN row with a matching digest": lambda npy, meta, at: _nan_with_digest(npy, meta, at),
    "no digest (an older cache)": lambda npy, meta, at: _edit_meta(meta, lambda m: m.pop("vectors_sha256")),
    "garbled json": lambda npy, meta, at: meta.write_text(meta.read_text()[: at % 20] + "}{"),
    "header claims a huge shape": lambda npy, meta, at: _claim_shape(npy, (10**12 + at, SeededEncoder.dim)),
    "npy missing": lambda npy, meta, at: npy.unlink(),
    "json missing": lambda npy, meta, at: meta.unlink(),
}


def _claim_shape(npy: Path, shape: tuple[int, int]) -> None:
    """Rewrite the .npy header to claim ``shape`` over the same data."""
    data = npy.read_bytes()
    header_end = data.index(b"\n") + 1
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode()
    padded = header + b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    npy.write_bytes(data[:8] + len(padded).to_bytes(2, "little") + padded + data[header_end:])


def _edit_meta(meta: Path, edit: Callable[[dict], object]) -> None:
    payload = json.loads(meta.read_text())
    edit(payload)
    meta.write_text(json.dumps(payload))


def _nan_with_digest(npy: Path, meta: Path, at: int) -> None:
    """NaN vectors whose digest was recorded too (as an old, unchecked save could have)."""
    vectors = np.load(npy)
    vectors[at % len(vectors)] = np.nan
    np.save(npy, vectors, allow_pickle=False)
    _edit_meta(meta, lambda m: m.update(vectors_sha256=cache_module.vectors_sha256(vectors)))


def embedding_cache_problem(root: Path, corruption: str, at: int) -> str | None:
    """Corrupt a fresh entry under ``root``, read it back: what went wrong, or None."""
    shutil.rmtree(root, ignore_errors=True)
    encoder = SeededEncoder()
    expected = cached_corpus_embeddings(encoder, TEXTS, root, show_progress=False)
    (npy,) = (root / "corpus").glob("*.npy")
    CORRUPTIONS[corruption](npy, npy.with_suffix(".json"), at)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cached_corpus_embeddings(encoder, TEXTS, root, show_progress=False)
    if not np.array_equal(got, expected):
        return f"{corruption}: the cache returned other vectors than a fresh encoding"
    if encoder.calls != 2:
        return f"{corruption}: the corrupted entry was used ({encoder.calls} encodings)"
    if not any(npy.name in str(w.message) for w in caught):
        return f"{corruption}: no warning names {npy.name} ({[str(w.message) for w in caught]})"
    again = cached_corpus_embeddings(encoder, TEXTS, root, show_progress=False)
    if encoder.calls != 2 or not np.array_equal(again, expected):
        return f"{corruption}: the recomputed entry was not written back whole"
    return None


@pytest.mark.parametrize("examples", budgets(40))
def test_corrupt_embedding_cache_is_recomputed_with_a_warning(tmp_path: Path, examples: int) -> None:
    cases = st.tuples(st.sampled_from(sorted(CORRUPTIONS)), st.integers(0, 10**6))
    fuzz(cases, lambda case: embedding_cache_problem(tmp_path / "cache", *case), examples)


def test_an_encoder_that_makes_nan_is_refused(tmp_path: Path) -> None:
    class NanEncoder(SeededEncoder):
        def encode(self, texts, **kwargs) -> np.ndarray:
            vectors = super().encode(texts)
            vectors[1] = np.nan
            return vectors

    with pytest.raises(FloatingPointError, match=r"catalog rows \[1\]"):
        cached_corpus_embeddings(NanEncoder(), TEXTS, tmp_path, show_progress=False)
    assert not list((tmp_path / "corpus").glob("*.json"))  # nothing was cached


# ------------------------------------------------------------------ ONNX exports


EXPORT_CORRUPTIONS: dict[str, Callable[[bytes, int], bytes]] = {
    "flipped byte": flip_byte,
    "truncated": lambda data, at: data[: at % len(data)],
    "appended bytes": lambda data, at: data + bytes(1 + at % 7),
    "emptied": lambda data, at: b"",
}


def export_problem(folder: Path, corruption: str, at: int) -> str | None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    good = b"onnx graph bytes " * 64
    stem = "model-0123456789abcdef01234567"
    path = folder / f"{stem}-{hashlib.sha256(good).hexdigest()[:16]}.onnx"
    path.write_bytes(EXPORT_CORRUPTIONS[corruption](good, at))
    if path.read_bytes() == good:  # the corruption changed nothing (an appended nothing)
        return None if verified_export(folder, stem) == good else f"{corruption}: an intact export was rejected"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = verified_export(folder, stem)
    if found is not None:
        return f"{corruption}: a corrupted export was used"
    if path.exists() or not any(path.name in str(w.message) for w in caught):
        return f"{corruption}: the corrupted export was kept, or no warning named it"
    return None


@pytest.mark.parametrize("examples", budgets(20))
def test_corrupt_onnx_export_is_rejected_with_a_warning(tmp_path: Path, examples: int) -> None:
    cases = st.tuples(st.sampled_from(sorted(EXPORT_CORRUPTIONS)), st.integers(0, 10**6))
    fuzz(cases, lambda case: export_problem(tmp_path / "onnx", *case), examples)


def test_a_flipped_onnx_export_is_exported_again(tmp_path: Path) -> None:
    """End to end: the export loads, a byte of it flips, the next load exports it again."""
    from ospo_fast.reward.retrievers import load_encoder

    first = load_encoder("minilm", backend="onnx", cache_dir=tmp_path)
    texts = ["oak desk", "", "red wool rug for the living room"]
    (exported,) = (tmp_path / "onnx").iterdir()
    data = bytearray(exported.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights: onnxruntime would load it silently
    exported.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match=exported.name):
        again = load_encoder("minilm", backend="onnx", cache_dir=tmp_path)
    np.testing.assert_allclose(again.encode(texts), first.encode(texts), atol=1e-6)
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [exported.name]
