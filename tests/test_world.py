"""The synthetic product-search world: determinism, pool and label invariants, context
spans, save/load, config validation, and the retrieval headroom ordering."""

from __future__ import annotations

import json
import re
import time
import zlib

import numpy as np
import pytest

from ospo_fast.data import World, WorldConfig, generate_world, headroom_report, load_world, save_world
from ospo_fast.data import vocabulary as vocab
from ospo_fast.data.world import CATALOG_COLUMNS, QUERY_COLUMNS, draw_pool, GroupIndex

SMALL = WorldConfig(n_products=5_000, n_train=120, n_test=30, seed=3)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SMALL)


def _files(directory) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in ("catalog.parquet", "queries.parquet")}


def test_same_seed_gives_same_parquet_bytes(world, tmp_path):
    save_world(world, tmp_path / "a")
    save_world(generate_world(SMALL), tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_different_seeds_give_different_worlds(world):
    other = generate_world(WorldConfig(n_products=5_000, n_train=120, n_test=30, seed=4))
    assert not world.catalog["title"].equals(other.catalog["title"])
    assert not world.queries["question"].equals(other.queries["question"])


def test_columns_and_splits(world):
    assert tuple(world.catalog.columns) == CATALOG_COLUMNS
    assert tuple(world.queries.columns) == QUERY_COLUMNS
    assert len(world.train()) == SMALL.n_train and len(world.test()) == SMALL.n_test
    assert world.catalog["product_id"].is_unique and world.queries["query_id"].is_unique
    train_targets = {r["target_item_id"] for r in world.train()}
    assert train_targets.isdisjoint(r["target_item_id"] for r in world.test())
    for column in ("title", "description", "text", "colour", "material", "style", "size", "brand", "feature"):
        assert (world.catalog[column].str.len() > 0).all(), column
    row = world.train()[0]
    assert isinstance(row["candidate_pool"], list) and isinstance(row["pool_relevance"][0], int)


def test_text_is_title_plus_description_and_titles_name_the_attributes(world):
    cat = world.catalog
    assert (cat["text"] == cat["title"] + ". " + cat["description"]).all()
    for row in cat.head(200).itertuples():
        for value in (row.product_type, row.colour, row.material, row.style, row.feature, row.size, row.brand):
            assert value in row.title


def test_pool_size_composition_and_labels(world):
    catalog = world.catalog.set_index("product_id")
    related = {t.name: set(t.related) | {u.name for u in vocab.PRODUCT_TYPES if t.name in u.related}
               for t in vocab.PRODUCT_TYPES}
    for row in world.queries.itertuples():
        pool, labels = row.candidate_pool, np.array(row.pool_relevance)
        assert len(pool) == SMALL.pool_size == 100 and len(set(pool)) == 100
        assert row.target_item_id == row.answer[0] and set(row.answer) <= set(pool)
        # 50 of the target's type (target included), 30 related, 20 others
        assert (labels >= 2).sum() == 50 and (labels == 1).sum() == 30 and (labels == 0).sum() == 20
        target_attributes = json.loads(row.target_attributes)
        assert target_attributes["product_type"] == catalog.at[row.target_item_id, "product_type"]
        for pid, label in zip(pool, labels):
            product = catalog.loc[pid]
            matches = all(product[a] == v for a, v in target_attributes.items())
            if product["product_type"] == target_attributes["product_type"]:
                assert label == (3 if matches else 2)
            elif product["product_type"] in related[target_attributes["product_type"]]:
                assert label == 1
            else:
                assert label == 0
        assert sorted(row.answer) == sorted(p for p, g in zip(pool, labels) if g == 3)


def test_pools_are_shuffled(world):
    target_positions = [row.candidate_pool.index(row.target_item_id) for row in world.queries.itertuples()]
    assert len(set(target_positions)) > 20


def test_target_attribute_counts_follow_config(world):
    for row in world.queries.itertuples():
        optional = set(json.loads(row.target_attributes)) - {"product_type", "brand"}
        assert SMALL.min_target_attributes <= len(optional) <= SMALL.max_target_attributes


def test_context_spans_carry_their_attribute(world):
    rooms = {t.name: t.room for t in vocab.PRODUCT_TYPES}
    for row in world.queries.itertuples():
        spans = json.loads(row.context_spans)
        target_attributes = json.loads(row.target_attributes)
        assert {s["attribute"] for s in spans} == set(target_attributes)
        room = rooms[target_attributes["product_type"]]
        for s in spans:
            assert s["value"] == target_attributes[s["attribute"]]
            text = row.question[s["start"]:s["end"]]
            allowed = vocab.rendered_hints(s["attribute"], s["value"], room)
            assert text in allowed or text[0].lower() + text[1:] in allowed, (text, s)
        ends = sorted((s["start"], s["end"]) for s in spans)
        assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))


def test_rows_rejects_unknown_split(world):
    with pytest.raises(ValueError, match="split"):
        world.rows("validation")


def test_prompt_asks_for_think_and_answer_tags(world):
    row = world.test()[0]
    assert row["question"] in row["prompt"]
    assert "<think>" in row["prompt"] and "<answer>" in row["prompt"]


def test_gold_query_names_every_target_value_and_imperfect_differs(world):
    for row in world.queries.itertuples():
        for value in json.loads(row.target_attributes).values():
            assert value.lower() in row.gold_query
        assert row.imperfect_query != row.gold_query
        assert json.loads(row.target_attributes)["product_type"].lower() in row.imperfect_query or \
            len(json.loads(row.target_attributes)) == 1


def test_save_load_round_trip(world, tmp_path):
    save_world(world, tmp_path)
    loaded = load_world(tmp_path)
    assert loaded.catalog.equals(world.catalog)
    assert loaded.queries.equals(world.queries)
    assert loaded.test() == world.test()
    assert not list(tmp_path.glob(".*tmp"))


def test_load_world_errors(world, tmp_path):
    with pytest.raises(FileNotFoundError, match="catalog.parquet"):
        load_world(tmp_path)
    broken = World(world.catalog.drop(columns=["brand"]), world.queries)
    save_world(broken, tmp_path)
    with pytest.raises(ValueError, match="'brand'"):
        load_world(tmp_path)
    queries = world.queries.copy()
    queries.at[0, "candidate_pool"] = ["NOPE"] + list(queries.at[0, "candidate_pool"])[1:]
    save_world(World(world.catalog, queries), tmp_path)
    with pytest.raises(ValueError, match="unknown product ids.*NOPE"):
        load_world(tmp_path)


def test_smallest_catalog_still_fills_pools():
    world = generate_world(WorldConfig(n_products=1_000, n_train=40, n_test=10, seed=1))
    for row in world.queries.itertuples():
        assert len(row.candidate_pool) == 100 and len(set(row.candidate_pool)) == 100
        assert row.target_item_id in row.candidate_pool


def test_draw_pool_passes_shortfall_to_next_tier():
    group = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])  # rows by group
    index = GroupIndex.build(group, 3)
    pool = draw_pool(np.random.default_rng(0), index, np.array([0]), (np.array([0]), np.array([1])), (3, 1))
    assert sorted(pool) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="too small"):
        draw_pool(np.random.default_rng(0), index, np.array([0]), (np.array([0]),), (3,))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_products": 999}, "n_products"),
        ({"n_products": 1_000_001}, "n_products"),
        ({"n_train": 0, "n_test": 0}, "n_train"),
        ({"n_products": 1_000, "n_train": 450, "n_test": 100}, "twice"),
        ({"n_same_category": 0}, "n_same_category"),
        ({"min_target_attributes": 3, "max_target_attributes": 2}, "min_target_attributes"),
        ({"max_target_attributes": 6}, "max_target_attributes"),
        ({"direct_hint_rate": 1.5}, "direct_hint_rate"),
        ({"n_random": -1}, "n_random"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WorldConfig(**kwargs)


def test_config_rejects_non_int():
    with pytest.raises(TypeError, match="n_products"):
        WorldConfig(n_products=2_000.0)


def test_generate_world_rejects_non_config():
    with pytest.raises(TypeError, match="WorldConfig"):
        generate_world({"n_products": 1_000})


def test_vocabulary_types_are_wands_classes():
    classes = {c for _, c in vocab.wands_queries()}
    assert len(vocab.wands_queries()) == 480
    assert all(t.wands_class in classes for t in vocab.PRODUCT_TYPES)
    vocab.check_vocabulary()


class BagOfWords:
    """A lexical stand-in for a dense encoder: hashed word counts, L2-normalised."""

    name = "bag-of-words"
    dim = 2048

    def encode(self, texts, *, batch_size=64, show_progress=False):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # [n, dim]
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _assert_headroom(report):
    assert report["gold"] > report["context"] + 0.2
    assert report["context"] > report["empty"] == 0.0
    assert report["gold"] > report["imperfect"] > report["context"]


def test_lexical_headroom_ordering():
    """Gold queries retrieve far better than the raw context, which beats an empty query."""
    world = generate_world(WorldConfig(n_products=2_000, n_train=0, n_test=100, seed=0))
    report = headroom_report(world, BagOfWords(), n_queries=100)
    assert report["n_queries"] == 100
    _assert_headroom(report)


@pytest.mark.slow
def test_minilm_headroom_ordering():
    world = generate_world(WorldConfig(n_products=2_000, n_train=0, n_test=100, seed=0))
    _assert_headroom(headroom_report(world, n_queries=100))


@pytest.mark.slow
def test_million_products_generate_within_a_minute():
    start = time.perf_counter()
    world = generate_world(WorldConfig(n_products=1_000_000))
    assert time.perf_counter() - start < 60
    assert len(world.catalog) == 1_000_000 and world.catalog["product_id"].is_unique
