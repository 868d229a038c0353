"""ESCI and H&M loaders on tiny fixture files written in the public releases' schemas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ospo_fast.data import load_esci, load_hm, load_world, save_world
from ospo_fast.data.world import CATALOG_COLUMNS, QUERY_COLUMNS

# ------------------------------------------------------------------ ESCI fixtures


def _esci_products() -> pd.DataFrame:
    rows = []
    for locale, n in (("us", 150), ("es", 20)):
        for i in range(n):
            rows.append({
                "product_id": f"B{locale.upper()}{i:04d}",
                "product_title": f"Product {i} {locale}",
                "product_description": "<p>Soft <b>cotton</b> throw</p>" if i % 2 else None,
                "product_bullet_point": f"bullet {i}",
                "product_brand": f"Brand{i % 7}",
                "product_color": "Blue" if i % 3 else None,
                "product_locale": locale,
            })
    return pd.DataFrame(rows)


def _esci_examples() -> pd.DataFrame:
    rows = []

    def judge(query_id, query, product, label, *, locale="us", small=1, split="train"):
        rows.append({
            "example_id": len(rows), "query": query, "query_id": query_id, "product_id": product,
            "product_locale": locale, "esci_label": label, "small_version": small, "large_version": 1,
            "split": split,
        })

    judge(1, "blue cotton throw", "BUS0001", "E")
    judge(1, "blue cotton throw", "BUS0002", "S")
    judge(1, "blue cotton throw", "BUS0003", "C")
    judge(1, "blue cotton throw", "BUS0004", "I")
    judge(1, "blue cotton throw", "BUS0005", "E")
    judge(2, "red lamp", "BUS0010", "E", split="test")
    judge(2, "red lamp", "BUS0011", "I", split="test")
    judge(3, "no exact here", "BUS0020", "S")           # dropped: no Exact product
    judge(4, "large only", "BUS0030", "E", small=0)     # dropped: not in the small version
    judge(5, "manta azul", "BES0001", "E", locale="es")  # dropped: other locale
    return pd.DataFrame(rows)


@pytest.fixture
def esci_files(tmp_path) -> tuple[Path, Path]:
    examples = tmp_path / "shopping_queries_dataset_examples.parquet"
    products = tmp_path / "shopping_queries_dataset_products.parquet"
    _esci_examples().to_parquet(examples, index=False)
    _esci_products().to_parquet(products, index=False)
    return examples, products


def test_esci_builds_world_schema_and_filters(esci_files):
    world = load_esci(*esci_files)
    assert tuple(world.catalog.columns) == CATALOG_COLUMNS and tuple(world.queries.columns) == QUERY_COLUMNS
    assert len(world.catalog) == 150 and world.catalog["product_id"].str.startswith("BUS").all()
    assert world.queries["query_id"].tolist() == ["1", "2"]
    assert [r["query_id"] for r in world.train()] == ["1"] and [r["query_id"] for r in world.test()] == ["2"]


def test_esci_pool_labels_and_targets(esci_files):
    row = load_esci(*esci_files).train()[0]
    pool, labels = row["candidate_pool"], row["pool_relevance"]
    assert len(pool) == 100 and len(set(pool)) == 100
    by_id = dict(zip(pool, labels))
    assert {p: by_id[p] for p in ("BUS0001", "BUS0002", "BUS0003", "BUS0004", "BUS0005")} == {
        "BUS0001": 3, "BUS0002": 2, "BUS0003": 1, "BUS0004": 0, "BUS0005": 3}
    assert sorted(row["answer"]) == ["BUS0001", "BUS0005"] and row["target_item_id"] in row["answer"]
    assert sum(labels) == 3 + 2 + 1 + 3  # every unjudged negative is 0
    assert row["question"] == row["gold_query"] == "blue cotton throw"
    assert row["question"] in row["prompt"]


def test_esci_catalog_text_cleans_html_and_falls_back_to_bullets(esci_files):
    catalog = load_esci(*esci_files).catalog.set_index("product_id")
    assert catalog.at["BUS0001", "description"] == "Soft cotton throw"
    assert catalog.at["BUS0002", "description"] == "bullet 2"
    assert catalog.at["BUS0002", "text"] == "Product 2 us. bullet 2"
    assert catalog.at["BUS0003", "colour"] == ""


def test_esci_is_deterministic_and_small_pools(esci_files):
    a, b = load_esci(*esci_files, seed=5), load_esci(*esci_files, seed=5)
    assert a.queries.equals(b.queries)
    small = load_esci(*esci_files, pool_size=3)
    row = small.train()[0]
    assert sorted(row["pool_relevance"]) == [2, 3, 3]  # over-judged: the most relevant are kept


def test_esci_small_version_off_keeps_large_only_queries(esci_files):
    assert "4" in load_esci(*esci_files, small_version=False).queries["query_id"].tolist()


def test_esci_round_trips_through_load_world(esci_files, tmp_path):
    world = load_esci(*esci_files)
    save_world(world, tmp_path / "w")
    assert load_world(tmp_path / "w").queries.equals(world.queries)


@pytest.mark.parametrize("column", ["esci_label", "small_version", "product_locale"])
def test_esci_missing_example_column(esci_files, column):
    examples, products = esci_files
    _esci_examples().drop(columns=[column]).to_parquet(examples, index=False)
    with pytest.raises(ValueError, match=rf"shopping_queries_dataset_examples.parquet: missing column '{column}'"):
        load_esci(examples, products)


def test_esci_missing_product_column(esci_files):
    examples, products = esci_files
    _esci_products().drop(columns=["product_title"]).to_parquet(products, index=False)
    with pytest.raises(ValueError, match=r"products.parquet: missing column 'product_title'"):
        load_esci(examples, products)


def test_esci_unknown_product_id(esci_files):
    examples, products = esci_files
    frame = _esci_examples()
    frame.loc[0, "product_id"] = "BUS9999"
    frame.to_parquet(examples, index=False)
    with pytest.raises(ValueError, match="missing, e.g. .*BUS9999"):
        load_esci(examples, products)


def test_esci_bad_label_and_empty_locale(esci_files):
    examples, products = esci_files
    with pytest.raises(ValueError, match="product_locale='jp'"):
        load_esci(examples, products, locale="jp")
    frame = _esci_examples()
    frame.loc[0, "esci_label"] = "X"
    frame.to_parquet(examples, index=False)
    with pytest.raises(ValueError, match="esci_label.*'X'"):
        load_esci(examples, products)


def test_esci_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        load_esci(tmp_path / "nope.parquet", tmp_path / "products.parquet")


# ------------------------------------------------------------------ H&M fixtures

GROUPS = {"Garment Upper body": ("T-shirt", "Sweater", "Blouse"), "Garment Lower body": ("Trousers", "Skirt"),
          "Shoes": ("Sneakers", "Boots"), "Accessories": ("Hat/beanie", "Bag")}
COLOURS = ("Black", "White", "Light Blue", "Dark Red")


def _hm_articles() -> pd.DataFrame:
    rows = []
    for group, types in GROUPS.items():
        for ptype in types:
            for i in range(60):
                rows.append({
                    "article_id": f"0{100000000 + len(rows)}",
                    "prod_name": f"{ptype.split('/')[0]} {i}",
                    "product_type_name": ptype,
                    "product_group_name": group,
                    "graphical_appearance_name": "Solid" if i % 2 else "Stripe",
                    "colour_group_name": COLOURS[i % len(COLOURS)],
                    "perceived_colour_value_name": "Dark",
                    "department_name": "Jersey",
                    "index_name": "Ladieswear",
                    "section_name": "Womens Casual",
                    "garment_group_name": "Jersey Fancy",
                    "detail_desc": f"A {ptype.lower()} made of soft jersey.",
                })
    return pd.DataFrame(rows)


def _hm_transactions() -> pd.DataFrame:
    articles = _hm_articles()["article_id"].tolist()
    rows = []

    def buy(day, customer, article):
        rows.append({"t_dat": f"2020-09-{day:02d}", "customer_id": customer, "article_id": article,
                     "price": "0.0339", "sales_channel_id": "2"})

    for c in range(20):
        customer = f"c{c:03d}"
        for day in range(1, 4 + c % 3):
            buy(day, customer, articles[(c * 7 + day * 13) % len(articles)])
        buy(9, customer, articles[(c * 11) % len(articles)])
        buy(9, customer, articles[(c * 11 + 41) % len(articles)])  # a two-article final basket
    buy(5, "one_day_only", articles[3])  # no history before the last day: dropped
    return pd.DataFrame(rows)


@pytest.fixture
def hm_files(tmp_path) -> tuple[Path, Path]:
    articles, transactions = tmp_path / "articles.csv", tmp_path / "transactions_train.csv"
    _hm_articles().to_csv(articles, index=False)
    _hm_transactions().to_csv(transactions, index=False)
    return articles, transactions


def test_hm_world_schema_and_split(hm_files):
    world = load_hm(*hm_files, test_fraction=0.25)
    assert tuple(world.catalog.columns) == CATALOG_COLUMNS and tuple(world.queries.columns) == QUERY_COLUMNS
    assert len(world.catalog) == 540 and world.catalog["product_id"].str.len().eq(10).all()
    assert len(world.queries) == 20 and "one_day_only" not in set(world.queries["query_id"])
    assert len(world.test()) == 5 and len(world.train()) == 15


def test_hm_targets_are_the_last_basket_and_history_is_earlier(hm_files):
    world = load_hm(*hm_files)
    tx = _hm_transactions()
    names = world.catalog.set_index("product_id")["title"]
    for row in world.queries.itertuples():
        bought = tx[tx["customer_id"] == row.query_id]
        last = bought["t_dat"] == bought["t_dat"].max()
        assert row.answer == list(dict.fromkeys(bought.loc[last, "article_id"]))
        assert row.target_item_id == row.answer[0]
        for article in bought.loc[~last, "article_id"]:
            assert f"{names[article]} (" in row.question


def test_hm_pool_composition_and_labels(hm_files):
    world = load_hm(*hm_files)
    catalog = world.catalog.set_index("product_id")
    group_of_type = {t: g for g, ts in GROUPS.items() for t in ts}
    for row in world.queries.itertuples():
        labels = np.array(row.pool_relevance)
        assert len(row.candidate_pool) == 100 and len(set(row.candidate_pool)) == 100
        assert (labels >= 2).sum() == 50 and (labels == 1).sum() == 30 and (labels == 0).sum() == 20
        target_type = catalog.at[row.target_item_id, "product_type"]
        for pid, label in zip(row.candidate_pool, labels):
            ptype = catalog.at[pid, "product_type"]
            expected = 3 if pid in row.answer else 2 if ptype == target_type else \
                1 if group_of_type[ptype] == group_of_type[target_type] else 0
            assert label == expected


def test_hm_context_spans_match_the_target(hm_files):
    world = load_hm(*hm_files)
    catalog = world.catalog.set_index("product_id")
    n_spans = 0
    for row in world.queries.itertuples():
        for span in json.loads(row.context_spans):
            assert row.question[span["start"]:span["end"]] == span["value"]
            assert catalog.at[row.target_item_id, span["attribute"]] == span["value"]
            n_spans += 1
    assert n_spans > 0


def test_hm_restores_dropped_leading_zeros(hm_files):
    articles, transactions = hm_files
    original = load_hm(articles, transactions)
    tx = _hm_transactions()
    tx["article_id"] = tx["article_id"].str.lstrip("0")
    tx.to_csv(transactions, index=False)
    assert load_hm(articles, transactions).queries.equals(original.queries)


def test_hm_max_history_and_customers(hm_files):
    world = load_hm(*hm_files, max_history=1, max_customers=4)
    assert len(world.queries) == 4
    assert all(row["question"].count(" (") == 1 for row in world.train() + world.test())


@pytest.mark.parametrize("column", ["colour_group_name", "detail_desc", "article_id"])
def test_hm_missing_article_column(hm_files, column):
    articles, transactions = hm_files
    _hm_articles().drop(columns=[column]).to_csv(articles, index=False)
    with pytest.raises(ValueError, match=rf"articles.csv: missing column '{column}'"):
        load_hm(articles, transactions)


def test_hm_missing_transaction_column(hm_files):
    articles, transactions = hm_files
    _hm_transactions().rename(columns={"t_dat": "date"}).to_csv(transactions, index=False)
    with pytest.raises(ValueError, match=r"transactions_train.csv: missing column 't_dat'"):
        load_hm(articles, transactions)


def test_hm_unknown_article_and_bad_date(hm_files):
    articles, transactions = hm_files
    tx = _hm_transactions()
    tx.loc[0, "article_id"] = "0999999999"
    tx.to_csv(transactions, index=False)
    with pytest.raises(ValueError, match="transactions_train.csv: 1 article_id .*0999999999"):
        load_hm(articles, transactions)
    tx = _hm_transactions()
    tx.loc[0, "t_dat"] = "20/09/2020"
    tx.to_csv(transactions, index=False)
    with pytest.raises(ValueError, match="'t_dat'"):
        load_hm(articles, transactions)


def test_hm_rejects_bad_arguments(hm_files):
    with pytest.raises(ValueError, match="min_history"):
        load_hm(*hm_files, min_history=3, max_history=2)
    with pytest.raises(ValueError, match="test_fraction"):
        load_hm(*hm_files, test_fraction=1.5)
