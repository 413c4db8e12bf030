"""Results per category: a report's rates and scaling fits per value of item metadata fields.

For each field a report names (`ReportOptions.category_fields`, else the study's
`report_categories` setting where its configuration has one), every item's value
of that field in `Item.meta` is its category (`stats.categories.category_value`;
items without one are counted and left out, never pooled into a "(none)" category
that could clash with a real value). Per value:

- each generator's rate against the real images, with its interval, the
  Bonferroni-adjusted interval and the flags of `stats.rates` (a small stratum is
  `too_few_judgments` or `single_cluster`), on the kept judgments (exclusions applied);
- per series and axis fitted for the whole study (`scaling.series_fits`), the
  saturating form fitted to the value's judgments alone, with its extrapolated
  scale at each target gap; skipped, with the reason, where fewer than
  `MIN_POINTS` of the series' generators have judgments of that value. Only the
  saturating form: the free form's asymptote is barely identified on a whole
  study's judgments, a stratum has a fraction of them, and it costs five times more;
- the best generator (highest rate with an interval) and its parity gap; values are
  ranked by that gap, smallest first: where parity comes first.

A field with more than `MAX_VALUES` values (a caption, a URL) is not a category:
its section says so instead of holding thousands of rates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.scaling import JOINT_AXIS, MIN_POINTS, GeneratorInfo, SeriesFit
from analysis.stats import CurveFit, Judgments, fit_parity_curve
from analysis.stats.categories import NO_VALUE, CategoryRates, category_codes, category_rates
from analysis.stats.judgments import GENERATED
from analysis.stats.series import series_cells

# More values than this: a field names items, not categories.
MAX_VALUES = 30
# Where the configuration names the default fields (a study setting, optional).
CONFIGURATION_KEY = "report_categories"
# Where every adjusted bound rests on fewer resamples beyond it than this, the note says so.
FEW_TAIL_RESAMPLES = 5


def item_values_from(metas: Sequence[dict]) -> Callable[[str], list]:
    """A reader of `ReportInput.item_values` over plain dicts, one per item code (tests, benchmarks)."""
    return lambda name: [meta.get(name) if isinstance(meta, dict) else None for meta in metas]


def fields_for(options_fields: Sequence[str], configuration: dict) -> tuple[str, ...]:
    """The fields a report breaks down by: the options' where given, else the study's setting."""
    chosen = options_fields or configuration.get(CONFIGURATION_KEY) or ()
    if isinstance(chosen, str):
        chosen = (chosen,)
    return tuple(dict.fromkeys(str(name) for name in chosen if str(name).strip()))


@dataclass(frozen=True, eq=False)
class CategoryFit:
    """The saturating fit of one series along one axis on one value's judgments.

    codes, x : the generators fitted (those with judgments of the value) and their scale.
    fit : the `CurveFit`, or None with `reason` (not fitted or failed) in words.
    """

    series: str
    series_id: int
    axis: str
    value: int
    codes: np.ndarray
    x: np.ndarray
    fit: CurveFit | None
    reason: str = ""


@dataclass(frozen=True, eq=False)
class CategoryField:
    """One field's results (module docstring); `rates` None with `message` where no judged item has a value."""

    field: str
    items: int
    items_without_value: int
    rates: CategoryRates | None
    fits: tuple[CategoryFit, ...] = ()
    message: str = ""
    targets: tuple[float, ...] = field(default=())

    @property
    def values(self) -> tuple[str, ...]:
        return self.rates.values if self.rates is not None else ()


def _saturating(x, cells, *, n_boot: int, level: float, seed: int, targets) -> tuple[CurveFit | None, str]:
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            fit = fit_parity_curve(x, cells=cells, form="saturating", n_boot=n_boot, level=level, seed=seed,
                                   targets=targets)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return None, f"the fit failed: {exc}"
    if isinstance(fit, CurveFit):
        return fit, ""
    return None, fit.message


def _fits(judgments, keep, category, rates: CategoryRates, fits: Sequence[SeriesFit], settings) -> list[CategoryFit]:
    out = []
    n = rates.grid("n")
    for whole in fits:
        if whole.source != "direct" or whole.axis == JOINT_AXIS:
            continue
        for v in range(len(rates.values)):
            judged = n[v, whole.codes] > 0
            codes, x = whole.codes[judged], np.asarray(whole.x)[judged]
            if len(np.unique(x)) < MIN_POINTS:
                out.append(CategoryFit(whole.series, whole.series_id, whole.axis, v, codes, x, None,
                                       f"{len(np.unique(x))} of the series' scale values have judgments of this "
                                       f"value; a fit needs {MIN_POINTS}"))
                continue
            cells = series_cells(judgments, codes, keep=keep & (category == v))
            fit, reason = _saturating(x, cells, **settings)
            out.append(CategoryFit(whole.series, whole.series_id, whole.axis, v, codes, x, fit, reason))
    return out


def category_fields(
    judgments: Judgments,
    keep: np.ndarray,
    item_values: Callable[[str], Sequence] | None,
    names: Sequence[str],
    fits: Sequence[SeriesFit],
    *,
    n_boot: int,
    fit_boot: int,
    level: float,
    seed: int,
    targets: tuple[float, ...],
) -> tuple[CategoryField, ...]:
    """Every named field's results (module docstring); `keep` is the exclusions' mask."""
    out = []
    generated = keep & (judgments.kind == GENERATED)
    judged_items = np.zeros(judgments.n_items, dtype=bool)
    judged_items[judgments.item[generated]] = True
    for name in names:
        values = list(item_values(name)) if item_values is not None else [None] * judgments.n_items
        codes, labels = category_codes(values)
        items, missing = int(judged_items.sum()), int((judged_items & (codes == NO_VALUE)).sum())
        if len(labels) > MAX_VALUES:
            out.append(CategoryField(name, items, missing, None, message=(
                f"The field {name!r} has {len(labels)} distinct values, more than {MAX_VALUES}: it names items "
                "rather than categories, so the report does not break the rates down by it.")))
            continue
        if not (judged_items & (codes != NO_VALUE)).any():
            out.append(CategoryField(name, items, missing, None, message=(
                f"No judged item has a value of the field {name!r} in its metadata (text, number or true/false): "
                "there is nothing to break down.")))
            continue
        rates = category_rates(judgments, codes, labels, keep=keep, n_boot=n_boot, level=level, seed=seed)
        category = codes[judgments.item] if len(judgments) else np.zeros(0, np.int64)
        settings = {"n_boot": fit_boot, "level": level, "seed": seed, "targets": targets}
        out.append(CategoryField(name, items, missing, rates,
                                 tuple(_fits(judgments, keep, category, rates, fits, settings)), targets=targets))
    return tuple(out)


def multiplicity_note(section: CategoryField, level: float) -> str:
    """What the many intervals of a field mean together, in words."""
    rates = section.rates
    if rates is None:
        return section.message
    m, values, generators = rates.family, len(rates.values), len(rates.generators)
    if m < 2:
        return (f"{m} interval{'s' if m != 1 else ''} over {values} values and {generators} generators: "
                "no adjustment for multiplicity is needed.")
    miss = (1 - level) * m
    note = (f"{m} intervals over {values} values and {generators} generators: at the {level:.0%} level about "
            f"{miss:.1f} of them ({1 - level:.0%}) would miss their true rate by chance alone, so the category "
            f"that stands out most is the likeliest to be chance. Read together, the Bonferroni-adjusted intervals "
            f"(level 1 − {1 - level:g}/{m} = {rates.adjusted_level:.4g}) all cover at the {level:.0%} level.")
    if rates.tail_resamples() < FEW_TAIL_RESAMPLES:
        note += (f" With {rates.table.n_boot} resamples each adjusted bound lies beyond only "
                 f"{rates.tail_resamples():.1f} of them: rebuild with more resamples (--boot) before citing one.")
    return note


def _generator_rows(rates: CategoryRates, v: int, generators: tuple[GeneratorInfo, ...], order) -> list[dict]:
    table = rates.table
    rows = []
    for c in order:
        g = rates.group(v, c)
        rows.append({
            "id": generators[c].id, "name": generators[c].name, "series": generators[c].series,
            "rate": table.rate[g], "low": table.low[g], "high": table.high[g],
            "adjusted_low": rates.adjusted_low[g], "adjusted_high": rates.adjusted_high[g],
            "n": table.n[g], "wins": table.wins[g], "n_items": table.n_items[g],
            "n_annotators": table.n_annotators[g], "gap": 0.5 - table.rate[g] if table.n[g] else None,
            "flags": list(table.flags[g]),
        })
    return rows


def _fit_json(fit: CategoryFit, generators: tuple[GeneratorInfo, ...], condition: str) -> dict:
    body = {"series": fit.series, "series_id": fit.series_id, "axis": fit.axis,
            "generators": [generators[c].id for c in fit.codes], "x": fit.x, "fitted": fit.fit is not None,
            "reason": fit.reason or None}
    if fit.fit is not None:
        body.update(
            form="saturating", params=fit.fit.params,
            intervals={k: list(v) for k, v in fit.fit.intervals.items()}, flags=list(fit.fit.flags),
            x_at_gap={f"{t:g}": {"x": p, "low": lo, "high": hi, "reached": bool(np.isfinite(p)),
                                 "conditional_on": condition}
                      for t, (p, lo, hi) in fit.fit.x_at_gap.items()})
    return body


def best_entry(rates: CategoryRates, v: int, generators: tuple[GeneratorInfo, ...]) -> dict | None:
    b = int(rates.best[v])
    if b < 0:
        return None
    g = rates.group(v, b)
    return {"id": generators[b].id, "name": generators[b].name, "rate": rates.table.rate[g],
            "low": rates.table.low[g], "high": rates.table.high[g], "gap": 0.5 - rates.table.rate[g]}


def field_json(section: CategoryField, generators: tuple[GeneratorInfo, ...], order, level: float,
               condition: str) -> dict:
    """One field's section of the JSON report (raw values: the caller makes them JSON-safe)."""
    rates = section.rates
    body = {"values": list(section.values), "items": section.items,
            "items_without_value": section.items_without_value, "message": section.message or None,
            "note": multiplicity_note(section, level), "level": level,
            "bonferroni_level": rates.adjusted_level if rates is not None else None,
            "intervals": rates.family if rates is not None else 0, "by_value": {}, "where_first": []}
    if rates is None:
        return body
    for v, value in enumerate(rates.values):
        body["by_value"][value] = {
            "n_items": rates.n_items[v], "n_judgments": rates.n_judgments[v],
            "generators": _generator_rows(rates, v, generators, order),
            "fits": [_fit_json(fit, generators, condition) for fit in section.fits if fit.value == v],
            "best": best_entry(rates, v, generators),
        }
    for rank, v in enumerate(rates.ranking(), start=1):
        first = {f"{fit.series}/{fit.axis}": fit.fit.x_at_gap.get(section.targets[0], (np.nan,))[0]
                 for fit in section.fits if fit.value == v and fit.fit is not None and section.targets}
        body["where_first"].append({"rank": rank, "value": rates.values[v], "best": best_entry(rates, v, generators),
                                    "x_at_gap": first,
                                    "gap_target": section.targets[0] if section.targets else None})
    return body
