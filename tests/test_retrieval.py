"""Retrievers, the corpus-embedding cache and exact top-k search."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from ospo_fast.reward.retrievers import (
    BM25Retriever,
    DenseRetriever,
    Encoder,
    ExactIndex,
    HnswIndex,
    TokenEncoder,
    build_retriever,
    cached_corpus_embeddings,
    catalog_sha256,
    l2_normalise,
    load_encoder,
)
from ospo_fast.reward.retrievers import cache as cache_module
from ospo_fast.reward.retrievers.encoders import encode_length_sorted
from ospo_fast.reward.retrievers.fast_minilm import onnx_from_sentence_transformer

TEXTS = [
    "red cotton t-shirt for men",
    "",
    "sofa",
    "Mid-century modern 3-seat sofa in grey velvet with solid oak legs and two cushions",
    "stainless steel kitchen knife set, 8 pieces",
    "Ünïcödé lamp 🛋️ — café style",
    "a",
    "kids wall décor dinosaur",
    "wireless noise cancelling over-ear headphones black",
]
LONG_TEXT = "padded " * 400  # past every encoder's max length: exercises truncation


@pytest.fixture(scope="module")
def torch_minilm() -> TokenEncoder:
    return load_encoder("minilm")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ospo_cache")


@pytest.fixture(scope="module")
def onnx_minilm(onnx_cache: Path) -> TokenEncoder:
    return load_encoder("minilm", backend="onnx", cache_dir=onnx_cache)


@pytest.fixture(scope="module")
def paraphrase() -> TokenEncoder:
    return load_encoder("paraphrase-minilm-l3")


@pytest.fixture(params=["torch_minilm", "onnx_minilm", "paraphrase"])
def encoder(request: pytest.FixtureRequest) -> TokenEncoder:
    return request.getfixturevalue(request.param)


class HashEncoder:
    """A model-free encoder: each text maps to a fixed pseudo-random unit vector."""

    dim = 8

    def __init__(self, name: str = "hash-encoder") -> None:
        self.name = name
        self.calls = 0

    def encode(self, texts, *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        rows = np.array([np.random.default_rng(s).normal(size=self.dim) for s in seeds]).reshape(len(texts), self.dim)
        return l2_normalise(rows)


# ---------------------------------------------------------------- encoders


def test_encoders_satisfy_protocols(encoder: TokenEncoder) -> None:
    assert isinstance(encoder, Encoder) and isinstance(encoder, TokenEncoder)
    assert encoder.dim == 384 and encoder.name


def test_embeddings_are_unit_float32_rows(encoder: TokenEncoder) -> None:
    emb = encoder.encode(TEXTS + [LONG_TEXT])
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS) + 1, encoder.dim)
    assert np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_empty_string_and_empty_batch(encoder: TokenEncoder) -> None:
    empty = encoder.encode([""])
    assert empty.shape == (1, encoder.dim) and np.isfinite(empty).all()
    np.testing.assert_allclose(np.linalg.norm(empty), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_batched_equals_one_by_one(encoder: TokenEncoder) -> None:
    batched = encoder.encode(TEXTS + [LONG_TEXT], batch_size=4)
    single = np.concatenate([encoder.encode([t]) for t in TEXTS + [LONG_TEXT]])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_result_follows_input_order(encoder: TokenEncoder) -> None:
    perm = np.random.default_rng(3).permutation(len(TEXTS))
    np.testing.assert_allclose(encoder.encode([TEXTS[i] for i in perm]), encoder.encode(TEXTS)[perm], atol=1e-5)


def test_encode_token_ids_matches_encode(encoder: TokenEncoder) -> None:
    batch = encoder.tokenizer(TEXTS, padding=True, truncation=True, max_length=encoder.max_length, return_tensors="np")
    from_ids = encoder.encode_token_ids(batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64))
    assert from_ids.dtype == np.float32 and from_ids.shape == (len(TEXTS), encoder.dim)
    np.testing.assert_allclose(from_ids, encoder.encode(TEXTS), atol=1e-5)


def test_onnx_backend_matches_torch(torch_minilm: TokenEncoder, onnx_minilm: TokenEncoder) -> None:
    assert onnx_minilm.name == torch_minilm.name  # one corpus cache entry serves both
    texts = TEXTS + [LONG_TEXT, "queen size bed frame", "USB-C charger 65W"]
    np.testing.assert_allclose(onnx_minilm.encode(texts, batch_size=5), torch_minilm.encode(texts), atol=1e-5)


def test_onnx_export_is_reused_and_written_whole(onnx_minilm: TokenEncoder, onnx_cache: Path) -> None:
    (exported,) = (onnx_cache / "onnx").iterdir()  # one file, no temporary left beside it
    stamp = exported.stat().st_mtime_ns
    again = load_encoder("minilm", backend="onnx", cache_dir=onnx_cache)
    assert exported.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.encode(TEXTS), onnx_minilm.encode(TEXTS))


def test_onnx_backend_rejects_non_mean_pooling(torch_minilm, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    from ospo_fast.reward.retrievers.encoders import SentenceTransformerEncoder

    cls_model = SentenceTransformer(modules=[torch_minilm.model[0], Pooling(384, pooling_mode="cls")], device="cpu")
    with pytest.raises(ValueError, match="Pooling"):
        onnx_from_sentence_transformer(SentenceTransformerEncoder(cls_model, name="cls-pooled"), cache_dir=tmp_path)


@pytest.mark.parametrize("name", ["minilm_torch", "paraphrase"])
def test_paraphrase_scores_above_unrelated(name: str, torch_minilm, paraphrase) -> None:
    model = torch_minilm if name == "minilm_torch" else paraphrase
    anchor, para, unrelated = model.encode(
        ["a red cotton t-shirt for men", "men's red tee made of cotton", "stainless steel kitchen knife set"]
    )
    assert anchor @ para > anchor @ unrelated + 0.2


def test_retrievers_disagree_but_agree_on_the_obvious(torch_minilm, paraphrase) -> None:
    a, b = torch_minilm.encode(TEXTS), paraphrase.encode(TEXTS)
    assert np.abs(a - b).max() > 0.05  # two different models, not one in disguise
    np.testing.assert_array_equal(np.argmax(a @ a.T, axis=1), np.argmax(b @ b.T, axis=1))


def test_l2_normalise_keeps_zero_rows_finite() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


def test_encode_length_sorted_batches_by_length_and_restores_order() -> None:
    class WordTokenizer:
        pad_token_id = 0

        def __call__(self, texts, truncation: bool, max_length: int):
            return {"input_ids": [[i + 1 for i in range(len(t.split()))][:max_length] or [1] for t in texts]}

    texts = ["a b c", "a", "a b c d e f", "a b", "a b c d", "a", "a b c d e"]
    widths: list[int] = []

    def first_token_and_width(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        widths.append(ids.shape[1])
        return np.stack([mask.sum(axis=1), np.full(len(ids), ids.shape[1])], axis=1).astype(np.float32)

    out = encode_length_sorted(texts, WordTokenizer(), 5, first_token_and_width, dim=2, batch_size=2, show_progress=False)
    lengths = [min(len(t.split()), 5) for t in texts]
    np.testing.assert_array_equal(out[:, 0], lengths)  # row i is text i
    assert widths == [5, 4, 2, 1]  # longest first, each batch padded only to its own longest
    assert widths == sorted(widths, reverse=True)


def test_encoder_rejects_bad_input(torch_minilm, onnx_minilm) -> None:
    for enc in (torch_minilm, onnx_minilm):
        with pytest.raises(TypeError, match=r"texts\[1\]"):
            enc.encode(["ok", 3])
        with pytest.raises(TypeError, match="texts"):
            enc.encode("a single string")
        with pytest.raises(ValueError, match="batch_size"):
            enc.encode(["ok"], batch_size=0)
        with pytest.raises(ValueError, match="input_ids"):
            enc.encode_token_ids(np.array([101, 102]), np.array([1, 1]))
        with pytest.raises(ValueError, match="attention_mask"):
            enc.encode_token_ids(np.array([[101, 102]]), np.array([[1, 1, 1]]))
        with pytest.raises(TypeError, match="input_ids"):
            enc.encode_token_ids(np.array([[101.0, 102.0]]), np.array([[1, 1]]))
        with pytest.raises(ValueError, match=r"attention_mask rows \[1\]"):
            enc.encode_token_ids(np.array([[101, 102], [0, 0]]), np.array([[1, 1], [0, 0]]))


def test_load_encoder_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        load_encoder("minilm", backend="tensorrt")
    with pytest.raises(ValueError, match="device"):
        load_encoder("paraphrase-minilm-l3", device="cuda")
    with pytest.raises(TypeError, match="name"):
        load_encoder(None)


# ---------------------------------------------------------------- BM25


def test_bm25_ranks_the_lexical_match_first() -> None:
    catalog = ["red cotton shirt", "blue wool sweater", "grey leather sofa", "oak dining table", ""]
    bm25 = BM25Retriever(catalog)
    scores = bm25.score(["leather sofa", "wool", "the", "", "zebra"])
    assert scores.dtype == np.float32 and scores.shape == (5, len(catalog))
    assert bm25.n_items == len(catalog) and bm25.name == "bm25"
    assert np.argmax(scores[0]) == 2 and np.argmax(scores[1]) == 1
    assert scores[0, 2] > 0 and np.count_nonzero(scores[0]) == 1
    np.testing.assert_array_equal(scores[2:], 0.0)  # stopword only, empty, unknown word
    assert bm25.score([]).shape == (0, len(catalog))


def test_bm25_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="catalog_texts"):
        BM25Retriever([])
    with pytest.raises(ValueError, match="catalog_texts"):
        BM25Retriever(["", "the"])
    with pytest.raises(TypeError, match=r"catalog_texts\[0\]"):
        BM25Retriever([1, "a"])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        BM25Retriever(["red shirt"]).score([None])


# ---------------------------------------------------------------- cache


def test_catalog_hash_counts_boundaries_and_order() -> None:
    assert catalog_sha256(["ab", "c"]) != catalog_sha256(["a", "bc"])
    assert catalog_sha256(["a", "b"]) != catalog_sha256(["b", "a"])
    assert catalog_sha256(["a", ""]) != catalog_sha256(["a"])
    assert catalog_sha256(["a", "b"]) == catalog_sha256(("a", "b"))


def test_cache_hit_returns_identical_vectors(tmp_path: Path) -> None:
    enc = HashEncoder()
    first = cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    second = cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    assert enc.calls == 1
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32 and second.shape == (len(TEXTS), enc.dim)
    names = sorted(p.suffix for p in (tmp_path / "corpus").iterdir())
    assert names == [".json", ".npy"]


@pytest.mark.parametrize(
    "changed",
    [
        TEXTS[:-1] + [TEXTS[-1] + " "],  # one text edited
        ["".join(TEXTS[:2])] + TEXTS[2:] + [""],  # same characters, shifted boundaries
        TEXTS[::-1],  # reordered rows
    ],
)
def test_changed_catalog_misses_the_cache(tmp_path: Path, changed: list[str]) -> None:
    enc = HashEncoder()
    cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    fresh = cached_corpus_embeddings(enc, changed, tmp_path, show_progress=False)
    assert enc.calls == 2
    np.testing.assert_array_equal(fresh, enc.encode(changed))


def test_other_encoder_misses_the_cache(tmp_path: Path) -> None:
    cached_corpus_embeddings(HashEncoder("model-a"), TEXTS, tmp_path, show_progress=False)
    other = HashEncoder("model-b")
    cached_corpus_embeddings(other, TEXTS, tmp_path, show_progress=False)
    assert other.calls == 1


def test_cache_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        cached_corpus_embeddings(HashEncoder(), TEXTS, tmp_path, show_progress=False)
    assert list((tmp_path / "corpus").iterdir()) == []  # no partial or temporary file left
    monkeypatch.undo()
    enc = HashEncoder()
    cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    assert enc.calls == 1


def test_corrupt_cache_entry_is_recomputed(tmp_path: Path) -> None:
    enc = HashEncoder()
    expected = cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    (npy,) = (tmp_path / "corpus").glob("*.npy")
    npy.write_bytes(npy.read_bytes()[:50])
    again = cached_corpus_embeddings(enc, TEXTS, tmp_path, show_progress=False)
    assert enc.calls == 2
    np.testing.assert_array_equal(again, expected)


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OSPO_CACHE_DIR", str(tmp_path))
    assert cache_module.default_cache_dir() == tmp_path
    monkeypatch.delenv("OSPO_CACHE_DIR")
    assert cache_module.default_cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "ospo_fast"


# ---------------------------------------------------------------- exact search


def reference_top_k(queries: np.ndarray, corpus: np.ndarray, k: int) -> np.ndarray:
    """Full sort per query by (-score, row): the tie rule spelled out."""
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    return np.array([np.lexsort((np.arange(len(corpus)), -row))[:k] for row in scores])


@pytest.mark.parametrize("k", [1, 3, 37, 200, 250])
def test_exact_index_faiss_equals_numpy_with_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    # Small integers: every dot product is exact, so ties are real and abundant.
    corpus = rng.integers(-2, 3, size=(200, 6)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(23, 6)).astype(np.float32)
    s_faiss, i_faiss = ExactIndex(corpus, backend="faiss").search(queries, k)
    s_numpy, i_numpy = ExactIndex(corpus, backend="numpy").search(queries, k)
    np.testing.assert_array_equal(i_faiss, i_numpy)
    np.testing.assert_array_equal(s_faiss, s_numpy)
    kept = min(k, len(corpus))
    np.testing.assert_array_equal(i_numpy[:, :kept], reference_top_k(queries, corpus, kept))
    assert i_numpy.shape == (23, k) and i_numpy.dtype == np.int64 and s_numpy.dtype == np.float32
    np.testing.assert_array_equal(i_numpy[:, kept:], -1)
    assert np.isneginf(s_numpy[:, kept:]).all()


def test_exact_index_on_unit_vectors() -> None:
    rng = np.random.default_rng(7)
    corpus = l2_normalise(rng.normal(size=(1000, 32)))
    corpus[500] = corpus[10]  # a duplicated catalog row ties exactly
    queries = np.concatenate([corpus[[10, 3]], l2_normalise(rng.normal(size=(5, 32)))])
    s_faiss, i_faiss = ExactIndex(corpus, backend="faiss").search(queries, 10)
    s_numpy, i_numpy = ExactIndex(corpus, backend="numpy").search(queries, 10)
    np.testing.assert_array_equal(i_faiss, i_numpy)
    np.testing.assert_allclose(s_faiss, s_numpy, atol=1e-6)
    assert list(i_numpy[0, :2]) == [10, 500]
    assert i_numpy[1, 0] == 3


def test_exact_index_rejects_bad_input() -> None:
    index = ExactIndex(np.eye(4, dtype=np.float32), backend="numpy")
    with pytest.raises(ValueError, match="queries"):
        index.search(np.ones(4, dtype=np.float32), 1)
    with pytest.raises(ValueError, match="queries"):
        index.search(np.ones((2, 3), dtype=np.float32), 1)
    with pytest.raises(ValueError, match="queries"):
        index.search(np.full((1, 4), np.nan, dtype=np.float32), 1)
    for bad_k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must"):
            index.search(np.ones((1, 4), dtype=np.float32), bad_k)
    with pytest.raises(ValueError, match="corpus"):
        ExactIndex(np.ones(4, dtype=np.float32))
    with pytest.raises(ValueError, match="backend"):
        ExactIndex(np.eye(4, dtype=np.float32), backend="gpu")
    assert index.search(np.empty((0, 4), dtype=np.float32), 2)[1].shape == (0, 2)


def test_hnsw_index_recalls_the_exact_top_k() -> None:
    rng = np.random.default_rng(0)
    corpus = l2_normalise(rng.normal(size=(3000, 24)))
    queries = l2_normalise(rng.normal(size=(40, 24)))
    _, approx = HnswIndex(corpus).search(queries, 10)
    _, exact = ExactIndex(corpus).search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95
    assert HnswIndex(corpus[:5]).search(queries, 8)[1][:, 5:].tolist() == [[-1, -1, -1]] * 40


# ---------------------------------------------------------------- retrievers


def test_dense_retriever_scores_are_cosines(tmp_path: Path) -> None:
    enc = HashEncoder()
    retriever = DenseRetriever(enc, TEXTS, cache_dir=tmp_path, show_progress=False)
    assert retriever.corpus.shape == (len(TEXTS), enc.dim) and retriever.n_items == len(TEXTS)
    scores = retriever.score(["sofa", "a"])
    assert scores.dtype == np.float32 and scores.shape == (2, len(TEXTS))
    np.testing.assert_allclose(scores, enc.encode(["sofa", "a"]) @ retriever.corpus.T, atol=1e-6)
    _, top = retriever.search(["sofa", "a"], 1)
    np.testing.assert_array_equal(top[:, 0], [2, 6])


def test_build_retriever(tmp_path: Path, torch_minilm) -> None:
    catalog = ["grey leather sofa", "red cotton shirt", "oak dining table"]
    bm25 = build_retriever("bm25", catalog, cache_dir=tmp_path)
    assert isinstance(bm25, BM25Retriever)
    dense = build_retriever("minilm", catalog, cache_dir=tmp_path)
    assert isinstance(dense, DenseRetriever) and dense.encoder.name == torch_minilm.name
    assert np.argmax(dense.score(["a couch"])[0]) == 0
    np.testing.assert_allclose(dense.corpus, torch_minilm.encode(catalog), atol=1e-6)
    with pytest.raises(TypeError, match=r"catalog_texts\[1\]"):
        build_retriever("bm25", ["ok", b"bytes"], cache_dir=tmp_path)


def test_onnx_encoder_threads_are_settable_and_checked() -> None:
    from ospo_fast.reward.retrievers.onnx_encoder import load_paraphrase_minilm_l3

    encoder = load_paraphrase_minilm_l3()
    before = encoder.encode(["blue velvet sofa", "oak desk"])
    encoder.set_threads(1)
    np.testing.assert_allclose(encoder.encode(["blue velvet sofa", "oak desk"]), before, atol=1e-6)
    with pytest.raises(ValueError, match="intra_op_threads"):
        encoder.set_threads(0)


def test_minilm_folder_override_is_checked_and_named_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ospo_fast.reward.retrievers.models import MINILM_NAME, minilm_name, minilm_path

    monkeypatch.setenv("OSPO_MINILM_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no modules.json"):
        minilm_path()
    (tmp_path / "modules.json").write_text("[]")
    assert minilm_path() == tmp_path
    assert minilm_name() == f"{MINILM_NAME}@{tmp_path.resolve()}"
    monkeypatch.delenv("OSPO_MINILM_DIR")
    assert minilm_name() == MINILM_NAME
