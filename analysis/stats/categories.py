"""Preference rates per value of an item metadata field (a *category*: "people",
"landscape", ...), so that a report can say where parity is reached first.

A field's values are read per item (`category_value`: a text, number or boolean
names a category; a missing, empty or nested value names none), coded
(`category_codes`), and every kept vs-real judgment of an item with a value goes to
the group (value, generator). The rates of all groups come from one call of
`rates.balanced_rates`, so they share the two-way (prompt x annotator) bootstrap
weights of one resampling, carry the same flags as the main table (a small stratum
is `too_few_judgments` or `single_cluster` and shows no clustered interval) and the
replicates give adjusted intervals at no extra cost. Resampling all prompts, not
only the value's, makes each rate a domain estimate whose number of prompts varies
between resamples, as it would between studies of the same corpus.

Multiplicity: a field with V values and G generators shows up to V x G intervals;
at the 95 % level about one in twenty misses its true rate by chance alone, so the
lowest or highest category is the likeliest to look special. `CategoryRates` holds,
beside each interval, the Bonferroni-adjusted one, at level 1 - (1 - level) / m for
the m intervals shown (those of rates without a withholding flag): read together,
all m cover at the nominal level. Its tails are percentiles of the same bootstrap,
so they rest on few resamples (`tail_resamples`) where m is large.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bootstrap import percentile_interval
from .judgments import GENERATED, Judgments
from .rates import RateTable, balanced_rates, withheld

# No value: the item lacks the field, or its value names no category.
NO_VALUE = -1


def category_value(value) -> str | None:
    """The category a metadata value names, as text; None where it names none.

    Texts are stripped (an empty one names none), booleans are ``true``/``false``,
    whole numbers lose their ``.0`` (1 and 1.0 are one category), other numbers keep
    every digit; lists, objects, null, NaN and infinities name none: a list of tags
    would put one item in several categories, and the rates assume one.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def category_codes(values: Sequence) -> tuple[np.ndarray, tuple[str, ...]]:
    """Per item, the code of its category (`NO_VALUE` for none), and the categories sorted as text."""
    texts = [category_value(v) for v in values]
    labels = tuple(sorted({t for t in texts if t is not None}))
    index = {label: code for code, label in enumerate(labels)}
    codes = np.array([NO_VALUE if t is None else index[t] for t in texts], dtype=np.int64)
    return codes, labels


@dataclass(frozen=True, eq=False)
class CategoryRates:
    """Rates per (value, generator) of one field; groups run value-major, group = v * G + g.

    values : the field's categories (V); generators: generator labels (G).
    table : the `RateTable` over the V x G groups (labels are (value, generator) pairs).
    n_items, n_judgments : (V,) prompts and kept vs-real judgments with each value.
    family : m, the intervals shown (rates without a withholding flag).
    adjusted_level : the Bonferroni level 1 - (1 - level) / m (the level where m < 2).
    adjusted_low, adjusted_high : (V * G,) percentile intervals at that level (NaN where
        the rate shows no interval).
    best : (V,) per value, the code of the generator with the highest rate among those
        with an interval; -1 where none has one.
    """

    values: tuple[str, ...]
    generators: tuple
    table: RateTable
    n_items: np.ndarray
    n_judgments: np.ndarray
    family: int
    adjusted_level: float
    adjusted_low: np.ndarray
    adjusted_high: np.ndarray
    best: np.ndarray

    def group(self, value: int, generator: int) -> int:
        return value * len(self.generators) + generator

    def grid(self, name: str) -> np.ndarray:
        """(V, G): a per-group column of the table (``rate``, ``low``, ``n``, ...) or ``adjusted_low``/``_high``."""
        column = getattr(self, name) if name.startswith("adjusted_") else getattr(self.table, name)
        return np.asarray(column).reshape(len(self.values), len(self.generators))

    @property
    def gap(self) -> np.ndarray:
        """(V,) parity gap 0.5 - rate of each value's best generator (NaN where it has none)."""
        rate = self.grid("rate")
        return np.array([0.5 - rate[v, b] if b >= 0 else np.nan for v, b in enumerate(self.best)])

    def ranking(self) -> list[int]:
        """Value codes from the smallest parity gap of the best generator (where parity comes first),
        values without a best generator last, ties by value."""
        gap = self.gap
        return sorted(range(len(self.values)),
                      key=lambda v: (not np.isfinite(gap[v]), gap[v] if np.isfinite(gap[v]) else 0.0, v))

    def tail_resamples(self) -> float:
        """Resamples beyond each adjusted bound: below about 5 the bound is a near-extreme resample."""
        return self.table.n_boot * (1 - self.adjusted_level) / 2


def category_rates(
    judgments: Judgments,
    item_category: np.ndarray,
    values: tuple[str, ...],
    *,
    keep: np.ndarray | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> CategoryRates:
    """Rates of every generator per value (module docstring).

    item_category : per item code of `judgments`, its value's code into `values`, or `NO_VALUE`.
    keep : the judgments to use (exclusions are applied by the caller's mask).
    """
    item_category = np.asarray(item_category, dtype=np.int64)
    if len(item_category) != judgments.n_items:
        raise ValueError(f"item_category has {len(item_category)} entries; the judgments have "
                         f"{judgments.n_items} items")
    n_values, n_generators = len(values), len(judgments.generator_labels)
    category = item_category[judgments.item] if len(judgments) else np.zeros(0, np.int64)
    mask = (judgments.kind == GENERATED) & (category >= 0)
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)
    table = balanced_rates(
        success=judgments.chose_generated[mask], probe_left=judgments.generated_left[mask],
        group=category[mask] * n_generators + judgments.generator[mask],
        item=judgments.item[mask], annotator=judgments.annotator[mask],
        labels=tuple((v, g) for v in values for g in judgments.generator_labels),
        n_boot=n_boot, level=level, seed=seed, sample=judgments.sample[mask],
    )
    items = np.zeros(n_values, dtype=np.int64)
    if mask.any():
        pairs = np.unique(np.stack([category[mask], judgments.item[mask]]), axis=1)
        items = np.bincount(pairs[0], minlength=n_values)
    shown = ~withheld(table.flags) & (table.n > 0)
    family = int(shown.sum())
    adjusted_level = 1 - (1 - level) / family if family > 1 else level
    if n_boot and len(table.labels):
        adjusted_low, adjusted_high = percentile_interval(table.replicates, adjusted_level)
    else:
        adjusted_low = adjusted_high = np.full(len(table.labels), np.nan)
    adjusted_low, adjusted_high = (np.where(shown, a, np.nan) for a in (adjusted_low, adjusted_high))
    rate = np.where(shown, table.rate, -np.inf).reshape(n_values, n_generators)
    best = np.where(np.isfinite(rate).any(axis=1), rate.argmax(axis=1), -1) if n_generators else \
        np.full(n_values, -1)
    return CategoryRates(
        values=tuple(values), generators=tuple(judgments.generator_labels), table=table,
        n_items=items, n_judgments=table.n.reshape(n_values, n_generators).sum(axis=1) if n_generators
        else np.zeros(n_values, np.int64),
        family=family, adjusted_level=adjusted_level, adjusted_low=adjusted_low, adjusted_high=adjusted_high,
        best=best.astype(np.int64),
    )
