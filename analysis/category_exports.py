"""Results per category (`categories`) as their own CSV, and as the HTML report's section.

The per-generator CSV (`exports.report_csv`) keeps its rows and columns: a consumer
that reads one row per generator and exclusion setting is never handed category rows.
The categories have their own CSV (`report_categories_csv`; `manage.py report
--format csv-categories`), one row per field, value and generator, exclusions
applied. Columns, in this order (stable names, only ever added at the end):

================ ==============================================================
study            the study's slug
field            the item metadata field
value            its value (the category)
rank             the value's place by the parity gap of its best generator
                 (1: parity comes first); empty where no rate has an interval
generator_id     the generator's id; generator: its name; series: its series
n, wins          kept vs-real judgments of items with the value, and those won
rate             position-balanced preference rate
low, high        two-way (prompt x annotator) cluster bootstrap interval
adjusted_low     the Bonferroni-adjusted interval (level `bonferroni_level`);
                 adjusted_high
bonferroni_level 1 - (1 - level) / m for the field's m intervals
n_items          distinct prompts behind the rate; n_annotators: annotators
level            interval level; n_boot: bootstrap resamples
flags            the rate's flags (`stats.rates.RATE_FLAGS`), separated by ``;``
best             ``true`` for the value's generator with the highest rate
                 among those with an interval
gap              0.5 - rate
x_at_gap         for the saturating fit of the generator's series on this value's
                 judgments, ``axis/gap=x`` per axis and target gap (``inf``
                 where the fit never closes it), separated by ``;``
================ ==============================================================

Empty cells are unknown or undefined values; a text a spreadsheet would run as a
formula gets a leading ``'`` (`exports`).
"""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING

from django.utils.safestring import mark_safe

from analysis import plots
from analysis.exports import _cell
from analysis.formatting import flag_list, interval, num, sig
from analysis.stats.rates import RATE_FLAGS

if TYPE_CHECKING:  # the analysis itself loads with the first report (see exports)
    from analysis.reports import Report

CATEGORY_CSV_COLUMNS = (
    "study", "field", "value", "rank", "generator_id", "generator", "series", "n", "wins", "rate", "low", "high",
    "adjusted_low", "adjusted_high", "bonferroni_level", "n_items", "n_annotators", "level", "n_boot", "flags",
    "best", "gap", "x_at_gap",
)


def _x_at_gap_cells(section) -> dict[tuple[int, int], str]:
    """(value, generator code) -> the ``x_at_gap`` cell of its series' fits on that value."""
    parts: dict[tuple[int, int], list[str]] = {}
    for fit in section.fits:
        if fit.fit is None:
            continue
        text = ";".join(f"{fit.axis}/{target:g}={point!r}" for target, (point, _, _) in fit.fit.x_at_gap.items())
        for c in fit.codes.tolist():
            parts.setdefault((fit.value, c), []).append(text)
    return {key: ";".join(texts) for key, texts in parts.items()}


def report_categories_csv(report: Report) -> str:
    """The results per category, one row per field, value and generator (columns in the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CATEGORY_CSV_COLUMNS)
    slug = report.configuration.get("slug", "")
    for section in report.categories:
        rates = section.rates
        if rates is None:
            continue
        table = rates.table
        ranks = {v: rank for rank, v in enumerate(rates.ranking(), start=1) if rates.best[v] >= 0}
        fits = _x_at_gap_cells(section)
        for v, value in enumerate(rates.values):
            for c in report.order:
                g, info = rates.group(v, c), report.generators[c]
                values = {
                    "study": slug, "field": section.field, "value": value, "rank": ranks.get(v),
                    "generator_id": info.id, "generator": info.name, "series": info.series,
                    "n": table.n[g], "wins": table.wins[g], "rate": table.rate[g] if table.n[g] else None,
                    "low": table.low[g], "high": table.high[g], "adjusted_low": rates.adjusted_low[g],
                    "adjusted_high": rates.adjusted_high[g], "bonferroni_level": rates.adjusted_level,
                    "n_items": table.n_items[g], "n_annotators": table.n_annotators[g], "level": table.level,
                    "n_boot": table.n_boot, "flags": ";".join(table.flags[g]), "best": int(rates.best[v]) == c,
                    "gap": 0.5 - table.rate[g] if table.n[g] else None, "x_at_gap": fits.get((v, c), ""),
                }
                writer.writerow([_cell(values.get(column)) for column in CATEGORY_CSV_COLUMNS])
    return out.getvalue()


def _gap_text(point: float) -> str:
    return "never" if point == math.inf else sig(point)


def _field_context(report: Report, section) -> dict:
    from analysis.categories import multiplicity_note

    rates, level = section.rates, report.options.level
    context = {"field": section.field, "message": section.message, "items": section.items,
               "missing": section.items_without_value, "note": multiplicity_note(section, level)}
    if rates is None:
        return context
    table, order = rates.table, list(report.order)
    names = [report.generators[c].name for c in order]
    values = []
    for v, value in enumerate(rates.values):
        rows = []
        for c in order:
            g = rates.group(v, c)
            rows.append({"name": report.generators[c].name, "best": int(rates.best[v]) == c,
                         "rate": num(table.rate[g]) if table.n[g] else "—",
                         "interval": interval(table.low[g], table.high[g]),
                         "adjusted": interval(rates.adjusted_low[g], rates.adjusted_high[g]),
                         "n": int(table.n[g]), "prompts": int(table.n_items[g]),
                         "annotators": int(table.n_annotators[g]), "flags": flag_list(table.flags[g], RATE_FLAGS)})
        fits = [{"series": fit.series, "axis": fit.axis, "points": len(fit.codes), "reason": fit.reason,
                 "gaps": [] if fit.fit is None else [(f"{t:g}", _gap_text(p), interval(lo, hi, fmt=sig))
                                                     for t, (p, lo, hi) in fit.fit.x_at_gap.items()]}
                for fit in section.fits if fit.value == v]
        values.append({"value": value, "items": int(rates.n_items[v]), "judgments": int(rates.n_judgments[v]),
                       "rows": rows, "fits": fits})
    first = []
    for rank, v in enumerate(rates.ranking(), start=1):
        b = int(rates.best[v])
        g = rates.group(v, b) if b >= 0 else None
        gaps = [(f"{fit.series} along {fit.axis}", _gap_text(fit.fit.x_at_gap[section.targets[0]][0]))
                for fit in section.fits
                if fit.value == v and fit.fit is not None and section.targets and section.targets[0] in fit.fit.x_at_gap]
        first.append({"rank": rank if b >= 0 else "—", "value": rates.values[v],
                      "best": report.generators[b].name if b >= 0 else None,
                      "rate": num(table.rate[g]) if g is not None else "—",
                      "interval": interval(table.low[g], table.high[g]) if g is not None else "—",
                      "gap": num(0.5 - table.rate[g]) if g is not None else "—", "x_at_gap": gaps})
    svg = plots.category_forest_plot(
        list(rates.values), names, rates.grid("rate")[:, order], rates.grid("low")[:, order],
        rates.grid("high")[:, order], rates.grid("adjusted_low")[:, order], rates.grid("adjusted_high")[:, order],
        n=rates.grid("n")[:, order], title=section.field)
    flagged = sorted({f for flags in table.flags for f in flags})
    context.update(values=values, first=first, svg=mark_safe(svg), flagged=flag_list(flagged, RATE_FLAGS),
                   bonferroni=f"{rates.adjusted_level:.4g}", family=rates.family,
                   target=f"{section.targets[0]:g}" if section.targets else None)
    return context


def categories_context(report: Report) -> list[dict]:
    """The HTML section per field broken down by (empty where the report breaks down by none)."""
    return [_field_context(report, section) for section in report.categories]
