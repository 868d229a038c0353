"""Ground truth for the phrases of an answer, from the generated world's vocabulary.

A phrase is ``gold`` when it names a value the query targets, ``wrong`` when it names a
value the target product does not have (another colour, material, style, size, brand,
feature or product type), and ``neutral`` otherwise (shop talk, or a value the target
has but the shopper did not ask for). Values are found by longest match of their
lower-cased names on word boundaries, so "dark walnut" is one material and "table"
alone names no product type.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ospo_fast.data import vocabulary as vocab

PhraseClass = Literal["gold", "wrong", "neutral"]
PHRASE_CLASSES: tuple[PhraseClass, ...] = ("gold", "wrong", "neutral")


@functools.cache
def value_lexicon() -> dict[str, tuple[tuple[str, str], ...]]:
    """Lower-cased value name -> every ``(attribute, value)`` it names, over the whole vocabulary."""
    names: dict[str, list[tuple[str, str]]] = {}

    def add(attribute: str, value: str) -> None:
        names.setdefault(value.lower(), []).append((attribute, value))

    for ptype in vocab.PRODUCT_TYPES:
        add("product_type", ptype.name)
        for material in ptype.materials:
            add("material", material)
        for size in ptype.sizes:
            add("size", size)
        for feature in ptype.features:
            add("feature", feature)
    for attribute, values in (("colour", vocab.COLOURS), ("style", vocab.STYLES), ("brand", vocab.BRANDS)):
        for value in values:
            add(attribute, value)
    return {name: tuple(dict.fromkeys(pairs)) for name, pairs in names.items()}


@functools.cache
def _matcher() -> re.Pattern[str]:
    # Longest names first, so a regex alternation prefers "dark walnut" over "walnut".
    names = sorted(value_lexicon(), key=len, reverse=True)
    return re.compile(r"(?<![\w&'-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w&'-])")


def mentions(phrase: str) -> list[tuple[str, str]]:
    """The ``(attribute, value)`` pairs a phrase names, in order (an ambiguous name gives each reading)."""
    lexicon = value_lexicon()
    return [pair for match in _matcher().finditer(phrase.lower()) for pair in lexicon[match.group(1)]]


def phrase_class(phrase: str, product: Mapping[str, str], targeted: Sequence[str]) -> PhraseClass:
    """The class of ``phrase`` for a target ``product`` (its catalog attributes) and its targeted attributes.

    A name that could be read several ways (a size word shared by two product types) counts
    as wrong only when no reading agrees with the product.
    """
    by_attribute: dict[str, list[str]] = {}
    for attribute, value in mentions(phrase):
        by_attribute.setdefault(attribute, []).append(value)
    agrees = {a for a, values in by_attribute.items() if product.get(a) in values}
    if any(a not in agrees and a in product for a in by_attribute):
        return "wrong"
    return "gold" if agrees & set(targeted) else "neutral"


def target_of(row: Mapping[str, Any], catalog_row: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``(product attributes, targeted attribute names)`` of a world query row and its target's catalog row."""
    product = {a: str(catalog_row[a]) for a in vocab.ATTRIBUTES}
    return product, list(json.loads(row["target_attributes"]))



def answer_value_classes(answer: str, row: Mapping[str, Any], catalog_row: Mapping[str, Any]) -> list[PhraseClass]:
    """The class of each catalog value ``answer`` names, in order, for the target of world query ``row``.

    Each name counts on its own, so "brown wall art" gives a wrong colour and a gold product
    type; a phrase segmenter would often return the whole answer as one phrase.
    """
    product, targeted = target_of(row, catalog_row)
    return [phrase_class(match.group(1), product, targeted) for match in _matcher().finditer(answer.lower())]
