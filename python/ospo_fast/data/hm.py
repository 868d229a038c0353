"""H&M personalized fashion recommendations (articles.csv, transactions_train.csv) as a `World`.

Each customer becomes one query: the articles bought on their last purchase day are the
targets, the purchases before it are the history the policy reads. Pool labels: a target
3; same product_type_name 2; same product_group_name (a related type) 1; otherwise 0.
Negatives are drawn 49/30/20 from the same type, related types and the rest, as in the
synthetic world.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ospo_fast.data.world import (
    CATALOG_COLUMNS,
    COMPLEMENT,
    EXACT,
    IRRELEVANT,
    QUERY_COLUMNS,
    SUBSTITUTE,
    GroupIndex,
    World,
    build_prompt,
    draw_pool,
    validate_world,
)

ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id", "prod_name", "product_type_name", "product_group_name", "graphical_appearance_name",
    "colour_group_name", "perceived_colour_value_name", "department_name", "index_name", "section_name",
    "garment_group_name", "detail_desc",
)
TRANSACTION_COLUMNS: tuple[str, ...] = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")


def read_csv_columns(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read `columns` of a CSV as strings; ValueError naming the file and the first missing column."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    present = set(pd.read_csv(path, nrows=0).columns)
    for column in columns:
        if column not in present:
            raise ValueError(f"{path}: missing column {column!r}")
    return pd.read_csv(path, usecols=list(columns), dtype=str, keep_default_na=False)


def _article_ids(ids: pd.Series) -> pd.Series:
    """H&M ids are 10 digits with a leading zero that spreadsheets like to drop; restore it."""
    ids = ids.str.strip()
    return ids.where(~ids.str.isdigit(), ids.str.zfill(10))


def _catalog(articles: pd.DataFrame, source: Path) -> pd.DataFrame:
    duplicated = articles["article_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"{source}: duplicate article_id {articles['article_id'][duplicated].iloc[0]!r}")
    a = articles.reset_index(drop=True)
    empty = pd.Series("", index=a.index)
    text = (a["prod_name"] + ". " + a["colour_group_name"] + " " + a["product_type_name"] + ", "
            + a["graphical_appearance_name"] + ". " + a["section_name"] + ", " + a["garment_group_name"] + ". "
            + a["detail_desc"])
    catalog = pd.DataFrame({
        "product_id": a["article_id"],
        "title": a["prod_name"],
        "description": a["detail_desc"],
        "category": a["product_group_name"],
        "product_type": a["product_type_name"],
        "colour": a["colour_group_name"],
        "material": empty,
        "style": a["graphical_appearance_name"],
        "size": empty,
        "brand": a["index_name"],
        "feature": empty,
        "text": text.str.strip(),
    })
    return catalog[list(CATALOG_COLUMNS)]


def _related_types(type_code: np.ndarray, group_code: np.ndarray, n_types: int) -> np.ndarray:
    """[T, T] bool: types that share a product group, the diagonal excluded."""
    member = np.zeros((n_types, group_code.max() + 1), dtype=bool)
    member[type_code, group_code] = True
    related = (member.astype(np.int64) @ member.T.astype(np.int64)) > 0
    np.fill_diagonal(related, False)
    return related


def _context(history: Sequence[int], catalog: pd.DataFrame, target: int) -> tuple[str, list[dict[str, object]]]:
    """The customer's recent purchases as a request, with spans where they share the target's type or colour."""
    text = "Here is what I bought recently, oldest first: "
    spans: list[dict[str, object]] = []
    for i, row in enumerate(history):
        name, colour, ptype = (catalog.at[row, c] for c in ("title", "colour", "product_type"))
        text += ("; " if i else "") + f"{name} ("
        for attribute, value in (("colour", colour), ("product_type", ptype)):
            if value and value == catalog.at[target, attribute]:
                end = len(text) + len(value)
                spans.append({"start": len(text), "end": end, "attribute": attribute, "value": value})
            text += value + (" " if attribute == "colour" else "")
        text += ")"
    return text + ". What should I buy next?", spans


def _split_customers(
    tx: pd.DataFrame, rng: np.random.Generator, min_history: int, max_customers: int | None
) -> np.ndarray:
    """Customers with at least `min_history` purchases before their last day, shuffled."""
    before_last = tx[tx["t_dat"] < tx.groupby("customer_id")["t_dat"].transform("max")]
    counts = before_last.groupby("customer_id")["article_id"].nunique()
    eligible = np.sort(counts.index[counts >= min_history].to_numpy())
    eligible = eligible[rng.permutation(len(eligible))]
    return eligible if max_customers is None else eligible[:max_customers]


def load_hm(
    articles_path: str | os.PathLike[str],
    transactions_path: str | os.PathLike[str],
    *,
    max_history: int = 10,
    min_history: int = 1,
    test_fraction: float = 0.1,
    max_customers: int | None = None,
    n_same_category: int = 50,
    n_related: int = 30,
    n_random: int = 20,
    seed: int = 0,
) -> World:
    """H&M as a World: every article is a catalog row; every eligible customer a query.

    The history is the last `max_history` distinct articles bought before the customer's
    last purchase day; the basket of that day (at most `n_same_category` articles) is the
    answer. Customers are shuffled with `seed`; the first `test_fraction` go to test.
    Raises ValueError on missing columns, unparsable dates and transactions whose
    article_id is not in articles.csv.
    """
    if max_history < 1 or min_history < 1 or min_history > max_history:
        raise ValueError(f"need 1 <= min_history <= max_history, got {min_history} and {max_history}")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    if n_same_category < 1 or n_related < 0 or n_random < 0:
        raise ValueError("need n_same_category >= 1 and n_related, n_random >= 0")
    articles_file, transactions_file = Path(articles_path), Path(transactions_path)
    articles = read_csv_columns(articles_file, ARTICLE_COLUMNS)
    articles["article_id"] = _article_ids(articles["article_id"])
    catalog = _catalog(articles, articles_file)
    tx = read_csv_columns(transactions_file, TRANSACTION_COLUMNS)
    tx["article_id"] = _article_ids(tx["article_id"])
    try:
        tx["t_dat"] = pd.to_datetime(tx["t_dat"], format="%Y-%m-%d")
    except ValueError as err:
        raise ValueError(f"{transactions_file}: column 't_dat' must hold YYYY-MM-DD dates ({err})") from None
    row_of = pd.Series(np.arange(len(catalog)), index=catalog["product_id"])
    unknown = sorted(set(tx["article_id"]) - set(row_of.index))
    if unknown:
        raise ValueError(
            f"{transactions_file}: {len(unknown)} article_id values are not in {articles_file.name}, "
            f"e.g. {unknown[:5]}"
        )
    tx["row"] = row_of.loc[tx["article_id"]].to_numpy()
    tx = tx.sort_values(["customer_id", "t_dat"], kind="stable")

    rng = np.random.default_rng(seed)
    customers = _split_customers(tx, rng, min_history, max_customers)
    if len(customers) == 0:
        raise ValueError(f"{transactions_file}: no customer has {min_history} purchase(s) before their last day")
    n_test = int(round(test_fraction * len(customers)))
    type_code, _ = pd.factorize(catalog["product_type"], sort=True)
    group_code, _ = pd.factorize(catalog["category"], sort=True)
    n_types = int(type_code.max()) + 1
    related = _related_types(type_code, group_code, n_types)
    index = GroupIndex.build(type_code, n_types)
    all_types = np.arange(n_types)
    ids = catalog["product_id"].to_numpy()
    by_customer = dict(tuple(tx[tx["customer_id"].isin(customers)].groupby("customer_id", sort=False)))

    records = []
    for i, customer in enumerate(tqdm(customers, desc="h&m customers", disable=len(customers) < 5_000)):
        bought = by_customer[customer]
        last_day = bought["t_dat"] == bought["t_dat"].max()
        basket = list(dict.fromkeys(bought.loc[last_day, "row"].tolist()))[:n_same_category]
        earlier = bought.loc[~last_day, "row"].tolist()
        history = list(dict.fromkeys(reversed(earlier)))[:max_history][::-1]  # newest distinct, oldest first
        target = basket[0]
        t = int(type_code[target])
        tiers = (np.array([t]), np.flatnonzero(related[t]), all_types[(all_types != t) & ~related[t]])
        sizes = (max(n_same_category - len(basket), 0), n_related, n_random)
        pool = draw_pool(rng, index, np.array(basket), tiers, sizes)
        labels = np.where(np.isin(pool, basket), EXACT, np.where(type_code[pool] == t, SUBSTITUTE,
                          np.where(related[t, type_code[pool]], COMPLEMENT, IRRELEVANT)))
        question, spans = _context(history, catalog, target)
        target_row = catalog.loc[target]
        values = {"product_type": target_row["product_type"], "colour": target_row["colour"],
                  "style": target_row["style"], "category": target_row["category"], "title": target_row["title"]}
        gold = f"{values['colour']} {values['product_type']} {values['title']}".lower()
        imperfect = (f"{values['colour']} {values['product_type']}" if rng.random() < 0.5
                     else f"{values['product_type']} {values['title']}").lower()
        records.append({
            "query_id": str(customer),
            "split": "test" if i < n_test else "train",
            "question": question,
            "prompt": build_prompt(question, domain="fashion"),
            "gold_query": gold,
            "imperfect_query": imperfect,
            "answer": [str(ids[r]) for r in basket],
            "target_item_id": str(ids[target]),
            "candidate_pool": [str(ids[r]) for r in pool],
            "pool_relevance": [int(x) for x in labels],
            "target_attributes": json.dumps(values),
            "context_spans": json.dumps(spans),
        })
    queries = pd.DataFrame.from_records(records, columns=list(QUERY_COLUMNS))
    validate_world(catalog, queries, str(transactions_file))
    return World(catalog, queries)
