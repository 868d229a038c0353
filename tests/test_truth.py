"""Phrase ground truth (ospo_fast.data.truth) and the world setting that makes SFT answers carry harmful phrases."""

from __future__ import annotations

import hashlib
import json

import pytest

from ospo_fast.data import WorldConfig, generate_world
from ospo_fast.data.truth import mentions, phrase_class, target_of, value_lexicon

PRODUCT = {"product_type": "Coffee Table", "colour": "Black", "material": "Oak", "style": "Industrial",
           "size": "Small", "brand": "Stowe & Sable", "feature": "Lift Top"}


def digest(frame) -> str:  # noqa: ANN001
    return hashlib.sha256(json.dumps(frame.to_dict("records"), sort_keys=True, default=str).encode()).hexdigest()


def test_the_lexicon_reads_multiword_names_longest_first():
    assert ("product_type", "Coffee Table") in value_lexicon()["coffee table"]
    assert mentions("a stowe & sable coffee table, lift top") == [
        ("brand", "Stowe & Sable"), ("product_type", "Coffee Table"), ("feature", "Lift Top")]
    assert mentions("table for my flat") == []  # a head noun alone names no product type


@pytest.mark.parametrize(("phrase", "expected"), [
    ("black coffee table", "gold"),
    ("oak", "neutral"),  # the product is oak, but the shopper did not ask for a material
    ("grey", "wrong"),
    ("black sofa", "wrong"),  # one contradiction makes the phrase harmful
    ("for my new home", "neutral"),
])
def test_phrase_classes(phrase, expected):
    assert phrase_class(phrase, PRODUCT, ["product_type", "colour", "feature"]) == expected


def test_default_worlds_are_unchanged_by_the_distractor_setting():
    # Pinned digests: a change to how default worlds are generated must be deliberate.
    world = generate_world(WorldConfig(n_products=1000, n_train=30, n_test=10, seed=5))
    assert digest(world.queries) == "5aecc7ada946cceaa40ac3b931ffcaf7eaba9e2f2671724c8247c68f8cfc1b13"
    assert digest(world.catalog) == "246ea876dee0c775fe11e0e870c833732dba9453e9bdad24a8352027f032ea88"


def test_imperfect_queries_copy_distractor_details_and_those_are_wrong():
    base = WorldConfig(n_products=1000, n_train=200, n_test=0, seed=2)
    plain = generate_world(base)
    copied = generate_world(WorldConfig(**{**base.__dict__, "imperfect_distractor_rate": 1.0}))
    assert copied.catalog.equals(plain.catalog)
    assert (copied.queries["question"] == plain.queries["question"]).all()
    catalog = copied.catalog.set_index("product_id")
    changed, wrong = 0, 0
    for before, after in zip(plain.train(), copied.train()):
        if before["imperfect_query"] == after["imperfect_query"]:
            continue
        changed += 1
        assert after["imperfect_query"].startswith(before["imperfect_query"] + " ")
        extra = after["imperfect_query"][len(before["imperfect_query"]) + 1:]
        product, targeted = target_of(after, catalog.loc[after["target_item_id"]])
        wrong += phrase_class(extra, product, targeted) == "wrong"
    assert changed > 100  # most contexts have a distractor that names a type or colour
    assert wrong / changed > 0.8  # and what it names contradicts the target
