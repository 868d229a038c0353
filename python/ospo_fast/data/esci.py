"""Amazon ESCI shopping queries (public release) as a `World`.

Reads `shopping_queries_dataset_examples.parquet` (one judged query-product pair per row)
and `shopping_queries_dataset_products.parquet`. A query's targets are its Exact products;
its pool is its judged products (labels E/S/C/I = 3/2/1/0) topped up with random catalog
products (label 0) to `pool_size`. The original query is the question and the gold query:
the policy learns to rewrite it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ospo_fast.data.world import (
    CATALOG_COLUMNS,
    QUERY_COLUMNS,
    World,
    build_prompt,
    validate_world,
)

EXAMPLE_COLUMNS: tuple[str, ...] = (
    "example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
    "small_version", "large_version", "split",
)
PRODUCT_COLUMNS: tuple[str, ...] = (
    "product_id", "product_title", "product_description", "product_bullet_point",
    "product_brand", "product_color", "product_locale",
)
ESCI_GAIN: dict[str, int] = {"E": 3, "S": 2, "C": 1, "I": 0}
SPLITS = ("train", "test")
_TAG = re.compile(r"<[^>]+>")


def read_parquet_columns(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read `columns` of a parquet file; ValueError naming the file and the first missing column."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    present = set(pq.read_schema(path).names)
    for column in columns:
        if column not in present:
            raise ValueError(f"{path}: missing column {column!r}")
    return pq.read_table(path, columns=list(columns)).to_pandas()


def _clean(text: pd.Series) -> pd.Series:
    return text.fillna("").astype(str).str.replace(_TAG, " ", regex=True).str.split().str.join(" ")


def _catalog(products: pd.DataFrame, source: Path) -> pd.DataFrame:
    duplicated = products["product_id"].duplicated()
    if duplicated.any():
        raise ValueError(f"{source}: duplicate product_id {products['product_id'][duplicated].iloc[0]!r} in one locale")
    description = _clean(products["product_description"])
    bullets = _clean(products["product_bullet_point"])
    description = description.where(description != "", bullets)
    title = _clean(products["product_title"])
    empty = pd.Series("", index=products.index)
    catalog = pd.DataFrame({
        "product_id": products["product_id"].astype(str),
        "title": title,
        "description": description,
        "category": empty,
        "product_type": empty,
        "colour": _clean(products["product_color"]),
        "material": empty,
        "style": empty,
        "size": empty,
        "brand": _clean(products["product_brand"]),
        "feature": empty,
        "text": (title + ". " + description).where(description != "", title),
    })
    return catalog[list(CATALOG_COLUMNS)].reset_index(drop=True)


def _query_record(
    rng: np.random.Generator, judged: pd.DataFrame, product_ids: np.ndarray, pool_size: int
) -> dict[str, object] | None:
    """One queries row from a query's judged products, or None when it has no Exact product."""
    gains = judged["esci_label"].map(ESCI_GAIN).to_numpy()
    order = np.argsort(-gains, kind="stable")[:pool_size]  # keep the most relevant when over-judged
    judged_ids = judged["product_id"].to_numpy()[order]
    gains = gains[order]
    if not (gains == 3).any():
        return None
    need = pool_size - len(judged_ids)
    n_draw = min(len(product_ids), need + len(judged_ids))
    drawn = product_ids[rng.choice(len(product_ids), n_draw, replace=False)]
    negatives = drawn[~np.isin(drawn, judged_ids)][:need]
    pool = np.concatenate([judged_ids, negatives])
    relevance = np.concatenate([gains, np.zeros(len(negatives), dtype=gains.dtype)])
    shuffle = rng.permutation(len(pool))
    pool, relevance = pool[shuffle], relevance[shuffle]
    query = str(judged["query"].iloc[0])
    answer = [str(p) for p, g in zip(pool, relevance) if g == 3]
    return {
        "query_id": str(judged["query_id"].iloc[0]),
        "split": str(judged["split"].iloc[0]),
        "question": query,
        "prompt": build_prompt(query, domain="general shopping"),
        "gold_query": query,
        "imperfect_query": query,
        "answer": answer,
        "target_item_id": answer[0],
        "candidate_pool": [str(p) for p in pool],
        "pool_relevance": [int(g) for g in relevance],
        "target_attributes": json.dumps({}),
        "context_spans": json.dumps([]),
    }


def load_esci(
    examples_path: str | os.PathLike[str],
    products_path: str | os.PathLike[str],
    *,
    locale: str = "us",
    small_version: bool = True,
    pool_size: int = 100,
    seed: int = 0,
) -> World:
    """ESCI as a World: the products of `locale` form the catalog; each judged query with
    at least one Exact product becomes a query row (split from the release's `split`).

    `small_version=True` keeps the reduced (small_version == 1) task, as in the paper.
    Raises ValueError on missing columns, unknown labels or splits, and judged product ids
    that the products file lacks.
    """
    if pool_size < 2:
        raise ValueError(f"pool_size must be >= 2, got {pool_size}")
    examples_file, products_file = Path(examples_path), Path(products_path)
    examples = read_parquet_columns(examples_file, EXAMPLE_COLUMNS)
    products = read_parquet_columns(products_file, PRODUCT_COLUMNS)
    examples = examples[examples["product_locale"] == locale]
    if small_version:
        examples = examples[examples["small_version"].astype(int) == 1]
    if examples.empty:
        raise ValueError(f"{examples_file}: no examples with product_locale={locale!r} (small_version={small_version})")
    bad_labels = set(examples["esci_label"]) - set(ESCI_GAIN)
    if bad_labels:
        raise ValueError(
            f"{examples_file}: column 'esci_label' has unknown values {sorted(bad_labels)}; expected E/S/C/I"
        )
    bad_splits = set(examples["split"]) - set(SPLITS)
    if bad_splits:
        raise ValueError(
            f"{examples_file}: column 'split' has unknown values {sorted(bad_splits)}; expected train/test"
        )
    catalog = _catalog(products[products["product_locale"] == locale], products_file)
    examples = examples.assign(product_id=examples["product_id"].astype(str))
    unknown = sorted(set(examples["product_id"]) - set(catalog["product_id"]))
    if unknown:
        raise ValueError(
            f"{products_file}: {len(unknown)} judged product ids of {examples_file.name} are missing, "
            f"e.g. {unknown[:5]}"
        )

    rng = np.random.default_rng(seed)
    product_ids = catalog["product_id"].to_numpy()
    examples = examples.sort_values(["query_id", "example_id"], kind="stable")
    records = []
    for _, judged in tqdm(examples.groupby("query_id", sort=True), desc="esci queries", disable=len(examples) < 50_000):
        record = _query_record(rng, judged, product_ids, pool_size)
        if record is not None:
            records.append(record)
    if not records:
        raise ValueError(f"{examples_file}: no query has an Exact (E) product")
    queries = pd.DataFrame.from_records(records, columns=list(QUERY_COLUMNS))
    validate_world(catalog, queries, str(examples_file))
    return World(catalog, queries)
