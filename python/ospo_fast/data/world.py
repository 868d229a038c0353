"""The controlled product-search world: a synthetic catalog and the queries an RL policy
learns to write for it.

A world is two tables (see docs/interfaces.md):
- `catalog`: one product per row; the row order is the catalog row index used everywhere.
- `queries`: one shopper per row, with the under-specified request the policy reads
  (`question`), the query that finds the product (`gold_query`), and a graded candidate
  pool for the spec §2 reward.

Pool labels follow ESCI: Exact (3) = every target attribute matches; Substitute (2) =
same product type, some target attribute differs; Complement (1) = a related product
type; Irrelevant (0) otherwise. A pool is the target plus, in the reference's
proportions, negatives of the same product type ("same category"), of related types,
and of any other type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ospo_fast.ops import reference
from ospo_fast.data import vocabulary as vocab

CATALOG_COLUMNS: tuple[str, ...] = (
    "product_id", "title", "description", "category", "product_type", "colour", "material",
    "style", "size", "brand", "feature", "text",
)
QUERY_COLUMNS: tuple[str, ...] = (
    "query_id", "split", "question", "prompt", "gold_query", "imperfect_query", "answer",
    "target_item_id", "candidate_pool", "pool_relevance", "target_attributes", "context_spans",
)
EXACT, SUBSTITUTE, COMPLEMENT, IRRELEVANT = 3, 2, 1, 0
MIN_PRODUCTS, MAX_PRODUCTS = 1_000, 1_000_000

PROMPT_TEMPLATE = (
    "You help shoppers find products in an online {domain} catalog.\n"
    "Read the shopper's message and write the search query that will retrieve the product they need. "
    "The message may hint at what they want without naming it, and may contain details that do not matter.\n"
    "Think briefly inside <think>...</think>, then give only the search query inside <answer>...</answer>.\n\n"
    "Shopper: {question}"
)


@dataclass(frozen=True)
class WorldConfig:
    """How to generate a world. Equal configs give byte-identical worlds."""

    n_products: int = 20_000
    """Catalog size, 1,000 to 1,000,000. Product types get equal shares."""
    n_train: int = 2_000
    """Training queries. Every query targets a different product."""
    n_test: int = 200
    """Test queries (targets disjoint from the training targets)."""
    seed: int = 0
    """Seeds the catalog and the queries (independent streams)."""
    n_same_category: int = 50
    """Pool items of the target's product type (the reference's "same category"), the
    target included: the defaults give 1 target + 99 negatives = 100."""
    n_related: int = 30
    """Pool negatives of related product types (complements)."""
    n_random: int = 20
    """Pool negatives of any other product type. A tier short of products passes its
    shortfall to the next tier, so small catalogs still get full pools."""
    min_target_attributes: int = 2
    """Fewest attributes a query targets besides the product type."""
    max_target_attributes: int = 3
    """Most attributes a query targets besides the product type (at most 5)."""
    brand_rate: float = 0.05
    """Chance that a query also targets the brand (brand-loyal shopper)."""
    direct_hint_rate: float = 0.25
    """Chance that a hint names its value outright; the rest describe a need or situation."""
    max_distractors: int = 2
    """Distractor clauses per context are drawn from 1..max_distractors (0 disables them)."""
    imperfect_distractor_rate: float = 0.0
    """Chance that the imperfect query (the SFT target) also copies one or two details of
    the context's distractor clauses (another product type or colour the shopper mentions),
    so the SFT start writes answers with helpful and harmful phrases. 0 keeps the worlds
    of earlier versions byte for byte (the copies draw from a stream of their own)."""

    def __post_init__(self) -> None:
        ints = ("n_products", "n_train", "n_test", "seed", "n_same_category", "n_related", "n_random",
                "min_target_attributes", "max_target_attributes", "max_distractors")
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"WorldConfig.{name} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"WorldConfig.{name} must be >= 0, got {value}")
        if not MIN_PRODUCTS <= self.n_products <= MAX_PRODUCTS:
            raise ValueError(
                f"WorldConfig.n_products must be in [{MIN_PRODUCTS}, {MAX_PRODUCTS}], got {self.n_products}"
            )
        if self.n_train + self.n_test == 0:
            raise ValueError("WorldConfig: n_train + n_test must be >= 1")
        if self.n_train + self.n_test > self.n_products // 2:
            raise ValueError(
                f"WorldConfig: n_train + n_test = {self.n_train + self.n_test} targets need a catalog of at "
                f"least twice as many products, got n_products = {self.n_products}"
            )
        if self.n_same_category < 1:
            raise ValueError("WorldConfig.n_same_category must be >= 1: it counts the target")
        if self.pool_size > self.n_products:
            raise ValueError(f"WorldConfig: pool size {self.pool_size} exceeds n_products = {self.n_products}")
        if not self.min_target_attributes <= self.max_target_attributes <= len(vocab.OPTIONAL_ATTRIBUTES):
            raise ValueError(
                "WorldConfig: need min_target_attributes <= max_target_attributes <= "
                f"{len(vocab.OPTIONAL_ATTRIBUTES)}, got {self.min_target_attributes} and {self.max_target_attributes}"
            )
        for name in ("brand_rate", "direct_hint_rate", "imperfect_distractor_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1], got {value}")

    @property
    def pool_size(self) -> int:
        return self.n_same_category + self.n_related + self.n_random


@dataclass(frozen=True, eq=False)
class World:
    """A catalog and its queries (see the module docstring for the columns)."""

    catalog: pd.DataFrame
    queries: pd.DataFrame

    def rows(self, split: Literal["train", "test"]) -> list[dict[str, Any]]:
        """The queries of one split as plain dicts (lists stay Python lists)."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return self.queries[self.queries["split"] == split].to_dict("records")

    def train(self) -> list[dict[str, Any]]:
        return self.rows("train")

    def test(self) -> list[dict[str, Any]]:
        return self.rows("test")


def build_prompt(question: str, domain: str = "home goods") -> str:
    """The instruction the policy reads; the trainer applies the chat template around it."""
    return PROMPT_TEMPLATE.format(domain=domain, question=question)


# ------------------------------------------------------------------ pools


@dataclass(frozen=True)
class GroupIndex:
    """Catalog rows grouped by an integer group (e.g. product type), for fast pool draws."""

    rows: np.ndarray    # [N] int64 catalog rows, sorted by group
    starts: np.ndarray  # [G + 1] int64 start of each group in `rows`

    @classmethod
    def build(cls, group_of_row: np.ndarray, n_groups: int) -> GroupIndex:
        rows = np.argsort(group_of_row, kind="stable").astype(np.int64)
        counts = np.bincount(group_of_row, minlength=n_groups)
        return cls(rows, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def sample(self, rng: np.random.Generator, groups: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
        """Up to k distinct rows of `groups`, none in `exclude` (fewer when the groups run out)."""
        counts = self.starts[groups + 1] - self.starts[groups]  # [g]
        total = int(counts.sum())
        n_draw = min(total, k + len(exclude))
        if n_draw == 0:
            return np.empty(0, dtype=np.int64)
        # Draw positions in the virtual concatenation of the groups: O(k), never O(N).
        positions = rng.choice(total, n_draw, replace=False)
        ends = np.cumsum(counts)
        g = np.searchsorted(ends, positions, side="right")
        rows = self.rows[self.starts[groups[g]] + positions - (ends[g] - counts[g])]
        return rows[~np.isin(rows, exclude)][:k]


def draw_pool(
    rng: np.random.Generator,
    index: GroupIndex,
    targets: np.ndarray,
    tiers: Sequence[np.ndarray],
    sizes: Sequence[int],
) -> np.ndarray:
    """Targets plus negatives drawn tier by tier, shuffled; int64 [len(targets) + sum(sizes)].

    Tier i (an array of group ids) gives `sizes[i]` negatives; a tier short of rows passes
    its shortfall to the next. Raises ValueError when the last tier runs out.
    """
    chosen = [np.asarray(targets, dtype=np.int64)]
    shortfall = 0
    for groups, size in zip(tiers, sizes, strict=True):
        want = size + shortfall
        got = index.sample(rng, np.asarray(groups, dtype=np.int64), want, chosen[0])
        shortfall = want - len(got)
        chosen.append(got)
    if shortfall:
        raise ValueError(f"catalog too small: {shortfall} pool negatives could not be drawn")
    return rng.permutation(np.concatenate(chosen))


# ------------------------------------------------------------------ catalog


@dataclass(frozen=True)
class _Domains:
    """Global value lists and, per product type, which values it may take."""

    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    features: tuple[str, ...]
    type_materials: np.ndarray  # [T, max] int64 global material ids, padded
    type_sizes: np.ndarray      # [T, max] int64
    type_features: np.ndarray   # [T, max] int64
    n_materials: np.ndarray     # [T] int64 how many are real
    n_sizes: np.ndarray         # [T] int64
    n_features: np.ndarray      # [T] int64
    related: np.ndarray         # [T, T] bool, symmetric, false on the diagonal


def _per_type_table(per_type: Sequence[Sequence[str]]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    values = tuple(dict.fromkeys(v for vs in per_type for v in vs))
    position = {v: i for i, v in enumerate(values)}
    width = max(len(vs) for vs in per_type)
    table = np.zeros((len(per_type), width), dtype=np.int64)
    for t, vs in enumerate(per_type):
        table[t, : len(vs)] = [position[v] for v in vs]
    return values, table, np.array([len(vs) for vs in per_type], dtype=np.int64)


def _domains() -> _Domains:
    vocab.check_vocabulary()
    types = vocab.PRODUCT_TYPES
    materials, type_materials, n_materials = _per_type_table([t.materials for t in types])
    sizes, type_sizes, n_sizes = _per_type_table([t.sizes for t in types])
    features, type_features, n_features = _per_type_table([t.features for t in types])
    index = {t.name: i for i, t in enumerate(types)}
    related = np.zeros((len(types), len(types)), dtype=bool)
    for i, t in enumerate(types):
        for name in t.related:
            related[i, index[name]] = related[index[name], i] = True
    return _Domains(materials, sizes, features, type_materials, type_sizes, type_features,
                    n_materials, n_sizes, n_features, related)


def _popularity(values: tuple[str, ...]) -> np.ndarray:
    """Sampling weights: values shoppers mention more often in WANDS are more common."""
    mentions = vocab.wands_mentions(values)
    weights = np.array([1.0 + mentions[v] for v in values])
    return weights / weights.sum()


def _pick_per_type(
    rng: np.random.Generator, type_code: np.ndarray, table: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """One value per product from its type's row of `table` [T, max]; [N] int64 global ids."""
    local = (rng.random(len(type_code)) * lengths[type_code]).astype(np.int64)
    return table[type_code, local]


TITLE_TEMPLATES: tuple[str, ...] = (
    "{brand} {model} {style} {material} {ptype} with {feature}, {colour}, {size}",
    "{model} {size} {colour} {material} {ptype} with {feature} by {brand}, {style}",
    "{brand} {model} {colour} {style} {ptype} with {feature} in {material}, {size}",
)
DESCRIPTION_TEMPLATES: tuple[str, ...] = (
    "The {model} {ptype_l} brings {style_l} style to any {room}. Made from {material_l} in a {colour_l} "
    "finish, it comes with {feature_l}. {filler}",
    "Crafted in {material_l} with a {colour_l} finish, this {style_l} {ptype_l} from {brand} features "
    "{feature_l}. Size: {size}. {filler}",
)


def _catalog_codes(cfg: WorldConfig, domains: _Domains) -> dict[str, np.ndarray]:
    """Integer codes of every product attribute; equal types get equal shares."""
    rng = np.random.default_rng([cfg.seed, 0])
    n, n_types = cfg.n_products, len(vocab.PRODUCT_TYPES)
    type_code = rng.permutation(np.arange(n, dtype=np.int64) % n_types)  # [N]
    return {
        "product_type": type_code,
        "colour": rng.choice(len(vocab.COLOURS), n, p=_popularity(vocab.COLOURS)),
        "material": _pick_per_type(rng, type_code, domains.type_materials, domains.n_materials),
        "style": rng.choice(len(vocab.STYLES), n, p=_popularity(vocab.STYLES)),
        "size": _pick_per_type(rng, type_code, domains.type_sizes, domains.n_sizes),
        "brand": rng.integers(0, len(vocab.BRANDS), n),
        "feature": _pick_per_type(rng, type_code, domains.type_features, domains.n_features),
        "model": rng.integers(0, len(vocab.MODEL_NAMES), n),
        "title_template": rng.integers(0, len(TITLE_TEMPLATES), n),
        "description_template": rng.integers(0, len(DESCRIPTION_TEMPLATES), n),
        "filler": rng.integers(0, len(vocab.DESCRIPTION_FILLERS), n),
    }


def _value_names(domains: _Domains) -> dict[str, tuple[str, ...]]:
    return {
        "product_type": tuple(t.name for t in vocab.PRODUCT_TYPES),
        "colour": vocab.COLOURS,
        "material": domains.materials,
        "style": vocab.STYLES,
        "size": domains.sizes,
        "brand": vocab.BRANDS,
        "feature": domains.features,
    }


def _catalog_frame(codes: Mapping[str, np.ndarray], names: Mapping[str, tuple[str, ...]]) -> pd.DataFrame:
    n = len(codes["product_type"])
    columns = {a: np.array(names[a], dtype=object)[codes[a]] for a in vocab.ATTRIBUTES}  # [N] str each
    category = np.array([t.category for t in vocab.PRODUCT_TYPES], dtype=object)[codes["product_type"]]
    room = np.array([t.room for t in vocab.PRODUCT_TYPES], dtype=object)[codes["product_type"]]
    model = np.array(vocab.MODEL_NAMES, dtype=object)[codes["model"]]
    filler = np.array(vocab.DESCRIPTION_FILLERS, dtype=object)[codes["filler"]]
    fields = zip(columns["brand"], model, columns["product_type"], columns["colour"], columns["material"],
                 columns["style"], columns["feature"], columns["size"], room, filler,
                 codes["title_template"], codes["description_template"], strict=True)
    titles, descriptions = [], []
    rows = tqdm(fields, total=n, desc="catalog", disable=n < 200_000)
    for brand, mdl, ptype, colour, material, style, feature, size, rm, fill, tt, dt in rows:
        titles.append(TITLE_TEMPLATES[tt].format(brand=brand, model=mdl, ptype=ptype, colour=colour,
                                                 material=material, style=style, feature=feature, size=size))
        descriptions.append(DESCRIPTION_TEMPLATES[dt].format(
            model=mdl, brand=brand, room=rm, size=size, filler=fill, ptype_l=ptype.lower(),
            colour_l=colour.lower(), material_l=material.lower(), style_l=style.lower(), feature_l=feature.lower()))
    width = max(7, len(str(n - 1)))
    frame = pd.DataFrame({
        "product_id": [f"P{i:0{width}d}" for i in range(n)],
        "title": titles,
        "description": descriptions,
        "category": category,
        **columns,
    })
    frame["text"] = frame["title"] + ". " + frame["description"]
    return frame[list(CATALOG_COLUMNS)]


# ------------------------------------------------------------------ queries


def gold_query(values: Mapping[str, str]) -> str:
    """Shop-search wording of a target: brand, size, colour, material, style, type, feature."""
    words = [values[a].lower() for a in ("brand", "size", "colour", "material", "style") if a in values]
    words.append(values["product_type"].lower())
    if "feature" in values:
        words.append(f"with {values['feature'].lower()}")
    return " ".join(words)


def _attribute_domain(attribute: str, ptype: vocab.ProductType) -> tuple[str, ...]:
    return {
        "colour": vocab.COLOURS, "material": ptype.materials, "style": vocab.STYLES,
        "size": ptype.sizes, "feature": ptype.features, "brand": vocab.BRANDS,
    }[attribute]


def imperfect_query(rng: np.random.Generator, values: Mapping[str, str], ptype: vocab.ProductType) -> str:
    """A plausible query that misses one or two target attributes or gets one wrong."""
    optional = [a for a in values if a != "product_type"]
    changed = dict(values)
    roll = rng.random()
    if not optional:
        changed["product_type"] = str(rng.choice(ptype.related))
    elif roll < 0.6:
        n_drop = 2 if roll < 0.25 and len(optional) >= 2 else 1
        for a in rng.choice(optional, n_drop, replace=False):
            del changed[a]
    else:
        wrong = [a for a in optional if len(_attribute_domain(a, ptype)) > 1]
        if not wrong:
            del changed[str(rng.choice(optional))]
        else:
            a = str(rng.choice(wrong))
            changed[a] = str(rng.choice([v for v in _attribute_domain(a, ptype) if v != values[a]]))
    return gold_query(changed)


def _hint(rng: np.random.Generator, attribute: str, value: str, room: str, direct_rate: float) -> str:
    direct = attribute == "brand" or rng.random() < direct_rate
    return str(rng.choice(vocab.hint_templates(attribute, value, direct=direct))).format(room=room, brand=value)


def _distractor(rng: np.random.Generator, ptype: vocab.ProductType, values: Mapping[str, str]) -> tuple[str, list[str]]:
    """A distractor clause and the catalog details it names (another type or colour, lower-cased)."""
    others = [t for t in vocab.PRODUCT_TYPES if t.name != ptype.name and t.name not in ptype.related]
    rooms = sorted({t.room for t in vocab.PRODUCT_TYPES} - {ptype.room})
    colours = [c for c in vocab.COLOURS if c != values.get("colour")]
    template = str(rng.choice(vocab.DISTRACTORS))
    fill = {
        "other_type": str(rng.choice([t.name for t in others])).lower(),
        "other_colour": str(rng.choice(colours)).lower(),
        "other_room": str(rng.choice(rooms)),
    }
    details = [fill[key] for key in ("other_colour", "other_type") if "{" + key + "}" in template]
    return template.format(**fill), details


def build_context(
    rng: np.random.Generator, values: Mapping[str, str], ptype: vocab.ProductType, cfg: WorldConfig
) -> tuple[str, list[dict[str, Any]], list[str]]:
    """The shopper's request, the char spans that carry each target attribute, and the
    catalog details its distractors name.

    One hint per target attribute (the product type included) and 1..max_distractors
    distractors, in random order, each a sentence with an optional lead-in.
    """
    pieces: list[tuple[str, str | None, str | None]] = [
        (_hint(rng, a, v, ptype.room, cfg.direct_hint_rate), a, v) for a, v in values.items()
    ]
    details: list[str] = []
    if cfg.max_distractors:
        n_distractors = int(rng.integers(1, cfg.max_distractors + 1))
        for _ in range(n_distractors):
            clause, named = _distractor(rng, ptype, values)
            pieces.append((clause, None, None))
            details += named
    pieces = [pieces[i] for i in rng.permutation(len(pieces))]
    text, spans = str(rng.choice(vocab.OPENINGS)), []
    for phrase, attribute, value in pieces:
        lead = str(rng.choice(vocab.LEAD_INS))
        if not lead:
            phrase = phrase[0].upper() + phrase[1:]
        sep = " " if text else ""
        start = len(text) + len(sep) + len(lead)
        text = f"{text}{sep}{lead}{phrase}."
        if attribute is not None:
            spans.append({"start": start, "end": start + len(phrase), "attribute": attribute, "value": value})
    closing = str(rng.choice(vocab.CLOSINGS))
    return (f"{text} {closing}" if closing else text), spans, details


def with_copied_details(query: str, details: Sequence[str], rng: np.random.Generator, rate: float) -> str:
    """``query`` with one or two of the distractors' ``details`` appended, with chance ``rate``."""
    if not details or rate <= 0 or rng.random() >= rate:
        return query
    unique = list(dict.fromkeys(details))
    copied = rng.choice(unique, size=int(rng.integers(1, min(2, len(unique)) + 1)), replace=False)
    return " ".join([query, *(str(d) for d in copied)])


def _pool_labels(codes: np.ndarray, pool: np.ndarray, target: int, mask: np.ndarray, related: np.ndarray) -> np.ndarray:
    """ESCI labels of pool rows against the target; codes [N, A] int64, mask [A] bool."""
    same_type = codes[pool, 0] == codes[target, 0]                                    # [P]
    exact = same_type & (codes[pool][:, mask] == codes[target, mask]).all(axis=1)     # [P]
    complement = related[codes[target, 0], codes[pool, 0]]                            # [P]
    return np.where(exact, EXACT, np.where(same_type, SUBSTITUTE, np.where(complement, COMPLEMENT, IRRELEVANT)))


def _query_frame(
    cfg: WorldConfig, codes: Mapping[str, np.ndarray], names: Mapping[str, tuple[str, ...]],
    domains: _Domains, product_ids: np.ndarray,
) -> pd.DataFrame:
    rng = np.random.default_rng([cfg.seed, 1])
    n_queries = cfg.n_train + cfg.n_test
    type_code = codes["product_type"]
    attr_codes = np.stack([codes[a] for a in vocab.ATTRIBUTES], axis=1)  # [N, A]
    index = GroupIndex.build(type_code, len(vocab.PRODUCT_TYPES))
    all_types = np.arange(len(vocab.PRODUCT_TYPES))
    targets = rng.choice(cfg.n_products, n_queries, replace=False)
    records = []
    for i, target in enumerate(tqdm(targets, desc="queries", disable=n_queries < 5_000)):
        t = int(type_code[target])
        ptype = vocab.PRODUCT_TYPES[t]
        k = int(rng.integers(cfg.min_target_attributes, cfg.max_target_attributes + 1))
        chosen = set(rng.choice(vocab.OPTIONAL_ATTRIBUTES, k, replace=False).tolist())
        if rng.random() < cfg.brand_rate:
            chosen.add("brand")
        attributes = [a for a in vocab.ATTRIBUTES if a == "product_type" or a in chosen]
        values = {a: names[a][codes[a][target]] for a in attributes}
        tiers = (np.array([t]), np.flatnonzero(domains.related[t]), all_types[(all_types != t) & ~domains.related[t]])
        pool = draw_pool(rng, index, np.array([target]), tiers, (cfg.n_same_category - 1, cfg.n_related, cfg.n_random))
        mask = np.isin(vocab.ATTRIBUTES, attributes)
        labels = _pool_labels(attr_codes, pool, int(target), mask, domains.related)
        exact_rows = [int(target)] + [int(r) for r in pool[labels == EXACT] if r != target]
        question, spans, details = build_context(rng, values, ptype, cfg)
        imperfect = with_copied_details(imperfect_query(rng, values, ptype), details,
                                        np.random.default_rng([cfg.seed, 2, i]), cfg.imperfect_distractor_rate)
        split = "train" if i < cfg.n_train else "test"
        records.append({
            "query_id": f"{split}-{i if split == 'train' else i - cfg.n_train:06d}",
            "split": split,
            "question": question,
            "prompt": build_prompt(question),
            "gold_query": gold_query(values),
            "imperfect_query": imperfect,
            "answer": [str(product_ids[r]) for r in exact_rows],
            "target_item_id": str(product_ids[target]),
            "candidate_pool": [str(product_ids[r]) for r in pool],
            "pool_relevance": [int(x) for x in labels],
            "target_attributes": json.dumps(values),
            "context_spans": json.dumps(spans),
        })
    return pd.DataFrame.from_records(records, columns=list(QUERY_COLUMNS))


def generate_world(cfg: WorldConfig = WorldConfig()) -> World:
    """Generate the catalog and the train/test queries for `cfg` (deterministic in cfg)."""
    if not isinstance(cfg, WorldConfig):
        raise TypeError(f"cfg must be a WorldConfig, got {type(cfg).__name__}")
    domains = _domains()
    names = _value_names(domains)
    codes = _catalog_codes(cfg, domains)
    catalog = _catalog_frame(codes, names)
    queries = _query_frame(cfg, codes, names, domains, catalog["product_id"].to_numpy())
    return World(catalog, queries)


# ------------------------------------------------------------------ validation and I/O


def check_columns(frame: pd.DataFrame, required: Sequence[str], source: str) -> None:
    """Raise ValueError naming `source` and the first missing column."""
    for column in required:
        if column not in frame.columns:
            raise ValueError(f"{source}: missing column {column!r} (found {list(frame.columns)})")


def validate_world(catalog: pd.DataFrame, queries: pd.DataFrame, source: str) -> None:
    """Raise ValueError when the tables break the World contract (ids unknown, ragged pools)."""
    check_columns(catalog, CATALOG_COLUMNS, f"{source} catalog")
    check_columns(queries, QUERY_COLUMNS, f"{source} queries")
    ids = catalog["product_id"]
    if ids.duplicated().any():
        raise ValueError(f"{source} catalog: duplicate product_id {ids[ids.duplicated()].iloc[0]!r}")
    known = set(ids)
    for row in queries.itertuples(index=False):
        pool = list(row.candidate_pool)
        unknown = [p for p in pool if p not in known]
        if unknown:
            raise ValueError(f"{source}: query {row.query_id!r} has unknown product ids in its pool: {unknown[:5]}")
        if len(row.pool_relevance) != len(pool):
            raise ValueError(f"{source}: query {row.query_id!r}: pool_relevance and candidate_pool differ in length")
        if row.target_item_id not in row.answer or not set(row.answer) <= set(pool):
            raise ValueError(f"{source}: query {row.query_id!r}: target_item_id/answer must lie in candidate_pool")


def _write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_world(world: World, directory: str | os.PathLike[str]) -> Path:
    """Write catalog.parquet and queries.parquet into `directory` (each file atomically)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _write_parquet_atomic(world.catalog, out / "catalog.parquet")
    _write_parquet_atomic(world.queries, out / "queries.parquet")
    return out


def load_world(directory: str | os.PathLike[str]) -> World:
    """Read a world written by `save_world` (or by a loader) and check its contract."""
    root = Path(directory)
    frames = {}
    for name in ("catalog", "queries"):
        path = root / f"{name}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such world file")
        frames[name] = pq.read_table(path).to_pandas()
    queries = frames["queries"]
    check_columns(queries, QUERY_COLUMNS, str(root / "queries.parquet"))
    for column in ("answer", "candidate_pool", "pool_relevance"):
        queries[column] = [np.asarray(v).tolist() for v in queries[column]]
    validate_world(frames["catalog"], queries, str(root))
    return World(frames["catalog"], queries)


# ------------------------------------------------------------------ headroom


def pool_arrays(world: World, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Catalog rows and labels of each query's pool: (items [Q, P] int64, -1 padded; relevance [Q, P] int64)."""
    position = pd.Series(np.arange(len(world.catalog)), index=world.catalog["product_id"])
    width = max(len(r["candidate_pool"]) for r in rows)
    items = np.full((len(rows), width), -1, dtype=np.int64)
    relevance = np.zeros((len(rows), width), dtype=np.int64)
    for q, r in enumerate(rows):
        n = len(r["candidate_pool"])
        items[q, :n] = position.loc[list(r["candidate_pool"])].to_numpy()
        relevance[q, :n] = r["pool_relevance"]
    return items, relevance


def headroom_report(world: World, encoder: Any = None, n_queries: int = 200, *, k: int = 1000) -> dict[str, float]:
    """Spec §2 NDCG@pool (binary gain: Exact = 1) of four query sources on the same queries.

    - gold: `gold_query`; context: the raw `question` used as the query;
    - imperfect: `imperfect_query`; empty: "" (an empty query scores 0 by the spec).
    Queries come from the test split first, then train. `encoder` follows the
    `ospo_fast.reward.retrievers.Encoder` protocol; default all-MiniLM-L6-v2.
    """
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    if encoder is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from ospo_fast.reward.retrievers.factory import load_encoder

        encoder = load_encoder("minilm")
    rows = (world.test() + world.train())[:n_queries]
    items, relevance = pool_arrays(world, rows)
    exact = (relevance == EXACT).astype(np.int64)  # [Q, P] binary gain
    corpus = encoder.encode(world.catalog["text"].tolist(), show_progress=True)  # [N, d]

    def ndcg(texts: list[str]) -> float:
        scored = np.array([bool(t.strip()) for t in texts])  # [Q]
        out = np.zeros(len(texts))
        if scored.any():
            queries = encoder.encode([t for t, s in zip(texts, scored) if s])  # [Q', d]
            scores = queries @ corpus.T                                       # [Q', N]
            out[scored] = reference.pool_ndcg(scores, items[scored], exact[scored], k, gain="linear")
        return float(out.mean())

    return {
        "gold": ndcg([r["gold_query"] for r in rows]),
        "context": ndcg([r["question"] for r in rows]),
        "imperfect": ndcg([r["imperfect_query"] for r in rows]),
        "empty": ndcg(["" for _ in rows]),
        "n_queries": float(len(rows)),
    }
