"""A report as JSON and CSV; the HTML page is in `report_html`.

JSON (`report_json`) holds everything, with plain values only: NaN and infinities
become null (an infinite scale at a target gap, a fit that never closes it, also
says ``"reached": false``). Annotators appear only by pseudonym.

CSV (`report_csv`) is the per-generator table, one row per generator and exclusion
setting (long format: twice as many rows as generators); the results per category
have their own (`category_exports`). Columns, in this order
(stable names):

=============== ================================================================
study           the study's slug
generator_id    the generator's id
generator       its name
series          its series' name (empty without one)
params          parameter count N (empty where unknown)
train_images    training images seen D
train_flops     training compute C
train_step      training step of the checkpoint
exclusions      ``applied`` (the study's exclusion rules) or ``none`` (all judgments)
n, wins         judgments, and those where the generated image was chosen
rate            position-balanced preference rate
low, high       two-way (prompt x annotator) cluster bootstrap interval of `rate`
half_width      larger distance from `rate` to an end of that interval
rate_left       rate with the generated image on the left; rate_right: on the right
raw_rate        wins / n
wilson_low      Wilson interval of `raw_rate` (ignores clustering); wilson_high
cgm_se          Cameron-Gelbach-Miller two-way standard error of `rate`
cgm_low         rate -/+ z cgm_se; cgm_high
boot_se         bootstrap standard deviation of `rate`
design_effect   CGM variance over simple-random-sampling variance
effective_n     n / design_effect
n_items         distinct prompts behind the rate; n_annotators: distinct annotators
level           interval level; n_boot: bootstrap resamples
cp_low          Clopper-Pearson interval of `raw_rate` (ignores clustering); cp_high
flags           the rate's flags (`stats.rates.RATE_FLAGS`), separated by ``;``;
                with any but ``one_side_only`` the clustered interval columns are
                empty
verdicts        per scale axis along which the generator's series is fitted,
                ``axis=verdict`` (``reaches_parity``, ``stays_below_parity``,
                ``undetermined``; `stats.asymptote`), separated by ``;``;
                fits use the exclusions, so only ``applied`` rows have them
fit_flags       per axis and form with flags, ``axis/form=flag+flag``
                (`stats.fits.FIT_FLAGS`), separated by ``;``; ``applied`` rows
n_samples       distinct samples (seeds) behind the rate
seed_share      share of the two-way variance that is the seeds' (several seeds per
                prompt only); prompt_share: the prompts' own
time_adjusted   the raw share adjusted for the time blocks (`stats.timeline`)
drift_slope     change of the share from the study's first judgment to its last;
                drift_p: its two-sided p-value (cluster-robust)
pooled_rate     the pooled rate expit(theta) of the Bradley-Terry fit of the kept
                vs-real and head-to-head judgments (`stats.bradley_terry`);
                ``applied`` rows only
pooled_low      its CGM two-way interval (t quantile); pooled_high
n_head_to_head  the generator's kept head-to-head judgments (either side)
bt_flags        the Bradley-Terry flags (`stats.bradley_terry.BT_FLAGS`), separated
                by ``;``
anchor          ``true`` for an anchor generator of the study
blank_samples   the generator's blank or near-constant samples of the corpus (safety-
                filtered outputs), left out of trials unless the study includes them
=============== ================================================================

Columns are only ever added at the end, so a column keeps its position.

Empty cells are unknown or undefined values. A name that a spreadsheet would run as
a formula gets a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

# analysis.reports brings scipy (tens of MB, a second of import): a web worker loads it
# with its first report, not with the URL conf (the API's schema reads this module).
if TYPE_CHECKING:
    from analysis.reports import Report

CSV_COLUMNS = (
    "study", "generator_id", "generator", "series", "params", "train_images", "train_flops", "train_step",
    "exclusions", "n", "wins", "rate", "low", "high", "half_width", "rate_left", "rate_right", "raw_rate",
    "wilson_low", "wilson_high", "cgm_se", "cgm_low", "cgm_high", "boot_se", "design_effect", "effective_n",
    "n_items", "n_annotators", "level", "n_boot", "cp_low", "cp_high", "flags", "verdicts", "fit_flags",
    "n_samples", "seed_share", "prompt_share", "time_adjusted", "drift_slope", "drift_p",
    "pooled_rate", "pooled_low", "pooled_high", "n_head_to_head", "bt_flags", "anchor", "blank_samples",
)
# What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_START = frozenset("=+-@\t\r")


def json_safe(value):
    """Plain JSON values: numpy scalars and arrays unwrapped, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------
def _generator_meta(g) -> dict:
    return {"id": g.id, "name": g.name, "series": g.series, "series_id": g.series_id, "params": g.params,
            "train_images": g.train_images, "train_flops": g.train_flops, "train_step": g.train_step,
            "settings": g.settings, "metrics": g.metrics, "blank_samples": g.blank_samples}


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "label"}


def _calibration(calibration) -> dict:
    return {**_strip(calibration.table.rows()[0]), "covers_half": calibration.covers_half,
            "p_value": calibration.p_value, "method": calibration.method,
            "boot_low": calibration.boot_low, "boot_high": calibration.boot_high, "df": calibration.df}


def _side(side) -> dict:
    return {"n": side.n, "left": side.left, "share_left": side.share_left, "low": side.low, "high": side.high,
            "wilson_low": side.wilson_low, "wilson_high": side.wilson_high,
            "cp_low": side.cp_low, "cp_high": side.cp_high,
            "flagged_annotators": int(side.flagged.sum())}


# What an extrapolated scale assumes, per form.
CONDITIONS = {
    "saturating": "reaching parity: the saturating form's asymptote is 0.5 by construction",
    "free": "the free form's fitted asymptote",
    "joint_gap": "reaching parity: the joint form's asymptote is 0.5 by construction",
}


def _gap_entry(value: tuple, condition: str) -> dict:
    point, low, high = value
    return {"x": point, "low": low, "high": high, "reached": math.isfinite(point), "conditional_on": condition}


def _verdict_json(verdict) -> dict | None:
    return None if verdict is None else asdict(verdict)


def _fit_json(report: Report, fit) -> dict:
    """One series' fits along one axis; `source` "direct" (vs-real counts) or "pooled"
    (Bradley-Terry pooled rates, `scaling.pooled_series_fits`)."""
    forms = {}
    for name, curve in fit.fits.items():
        forms[name] = {
            "params": curve.params,
            "intervals": {k: list(v) for k, v in curve.intervals.items()},
            "objective": curve.objective, "qaic": curve.qaic(fit.dispersion), "n_params": curve.n_params,
            "n_points": curve.n_points,
            "boot_converged": curve.boot_converged, "level": curve.level, "resampled": curve.resampled,
            "flags": list(curve.flags),
            "x_at_gap": {f"{target:g}": _gap_entry(value, CONDITIONS[name])
                         for target, value in curve.x_at_gap.items()},
        }
    return {
        "series": fit.series, "series_id": fit.series_id, "axis": fit.axis,
        "generators": [report.generators[c].id for c in fit.codes],
        "generator_names": [report.generators[c].name for c in fit.codes],
        "x": fit.x, "dispersion": fit.dispersion, "dispersion_basis": fit.dispersion_basis,
        "comparison": fit.comparison, "verdict": _verdict_json(fit.verdict), "errors": fit.errors,
        "notes": list(fit.notes), "forms": forms,
        "not_fitted": {name: {"reason": why.reason, "message": why.message, "n_distinct": why.n_distinct,
                              "needed": why.needed} for name, why in fit.not_fitted.items()},
        "criterion": "qaic", "source": fit.source,
    }


def timeline_order(report: Report) -> list[int]:
    """Generator codes in display order, the study's anchor generators first."""
    anchors = set(report.anchors)
    return [c for c in report.order if c in anchors] + [c for c in report.order if c not in anchors]


def _timeline_json(report: Report) -> dict:
    timeline = report.timeline
    generators = []
    for c in timeline_order(report):
        g = report.generators[c]
        blocks = [
            {"start": timeline.starts[b], "mean_time": timeline.mean_time[c, b], "n": timeline.n[c, b],
             "wins": timeline.wins[c, b], "share": timeline.share[c, b], "low": timeline.low[c, b],
             "high": timeline.high[c, b]}
            for b in range(timeline.n.shape[1])
        ]
        generators.append({
            "id": g.id, "name": g.name, "anchor": c in report.anchors,
            "raw": timeline.raw[c], "adjusted": timeline.adjusted[c],
            "drift_slope": timeline.slope[c], "drift_se": timeline.slope_se[c], "drift_p": timeline.slope_p[c],
            "blocks": blocks,
        })
    return {"unit": timeline.unit, "block_effect": timeline.block_effect,
            "anchors": [report.generators[c].id for c in report.anchors], "generators": generators}


def _bradley_terry_json(report: Report) -> dict | None:
    """The one-scale section: players in display order (the real images first)."""
    from analysis.reports import fit_check_reading
    bt = report.bradley_terry
    if bt is None:
        return None
    rates = report.analysis.rates
    players = [0] + [c + 1 for c in report.order]
    generators = [
        {"id": report.generators[c].id, "name": report.generators[c].name,
         "direct_rate": rates.rate[c], "direct_low": rates.low[c], "direct_high": rates.high[c],
         "pooled_rate": bt.rate[c], "pooled_low": bt.rate_low[c], "pooled_high": bt.rate_high[c],
         "theta": bt.theta[c], "theta_low": bt.theta_low[c], "theta_high": bt.theta_high[c], "se": bt.se[c],
         "n": bt.n[c], "n_vs_real": bt.n_vs_real[c], "n_head_to_head": bt.n[c] - bt.n_vs_real[c],
         "flags": list(bt.flags[c])}
        for c in report.order
    ]
    head_to_head = int((bt.n - bt.n_vs_real).sum() // 2)
    return {
        "source": "vs-real and head-to-head" if head_to_head else "vs-real only",
        "judgments": int(bt.totals[np.triu_indices(len(bt.players), 1)].sum()), "head_to_head": head_to_head,
        "method": bt.method, "level": bt.level, "n_boot": bt.n_boot, "fit_flags": list(bt.fit_flags),
        "players": [{"id": None, "name": "real"}] + [{"id": g["id"], "name": g["name"]} for g in generators],
        "generators": generators,
        "position_effect": {"gamma": bt.gamma, "low": bt.gamma_low, "high": bt.gamma_high, "se": bt.gamma_se},
        "wins": bt.wins[np.ix_(players, players)], "totals": bt.totals[np.ix_(players, players)],
        "fit": {"pearson": bt.pearson, "deviance": bt.deviance, "df": bt.df, "p_value": bt.p_value,
                "dispersion": bt.dispersion, "reading": fit_check_reading(bt)},
    }


def annotator_rows(report: Report) -> list[dict]:
    analysis = report.analysis
    rows = []
    for index, row in enumerate(analysis.quality.rows()):
        info = report.annotators[index]
        rows.append({
            "pseudonym": info.pseudonym, "source": info.source, "simulated": info.simulated,
            "excluded": bool(analysis.exclusions.excluded[index]),
            "excluded_by": [rule for rule, mask in report.rule_excluded.items() if mask[index]],
            "side_bias_flagged": bool(analysis.side_bias_all.flagged[index]),
            "drift_flagged": bool(analysis.drift.flagged[index]),
            **_strip(row),
        })
    return rows


def _plan_rows(report: Report) -> list[dict]:
    plan, rates = report.plan, report.analysis.rates
    return [
        {"id": report.generators[c].id, "name": report.generators[c].name,
         "judgments": int(rates.n[c]), "prompts": int(rates.n_items[c]),
         "half_width": plan.half_width[c], "judgments_needed": plan.judgments_needed[c],
         "judgments_more": plan.judgments_more[c], "prompts_needed": plan.prompts_needed[c],
         "prompts_min": plan.prompts_min[c], "done": bool(plan.done[c]),
         "one_way_fallback": bool(plan.fallback[c]), "basis": plan.basis[c],
         "flags": list(rates.flags[c])}
        for c in report.order
    ]


def report_json(report: Report) -> dict:
    """Everything in the report as plain JSON values (module docstring)."""
    # Loaded by now: a report exists (see the imports above).
    from analysis.categories import field_json
    from analysis.reports import REPORT_VERSION
    analysis = report.analysis
    rows, rows_all = analysis.rates.rows(), analysis.rates_all.rows()
    exclusions = analysis.exclusions
    jump = exclusions.jump
    done = set(report.done_ids or ())
    generators = []
    for c in report.order:
        g = report.generators[c]
        generators.append({
            **_generator_meta(g), "rate": _strip(rows[c]), "rate_all": _strip(rows_all[c]),
            "done": (g.id in done) if report.done_ids is not None else None,
        })
    quality = analysis.quality
    drift = analysis.drift
    body = {
        "version": REPORT_VERSION,
        "built_at": report.built_at.isoformat(),
        "seconds": report.seconds,
        "options": report.options.as_dict(),
        "study": report.configuration,
        "provenance": report.provenance,
        "counts": report.counts,
        "warnings": list(report.warnings),
        "generators": generators,
        "exclusions": {
            "rules": asdict(exclusions.rules), "by_rule": exclusions.by_rule,
            "n_judgments": exclusions.n_judgments, "n_excluded": exclusions.n_excluded,
            "share_excluded": exclusions.share_excluded, "excluded_annotators": int(exclusions.excluded.sum()),
            "jump": {"flagged": jump.flagged, "reasons": list(jump.reasons),
                     "window_annotators": jump.window_annotators, "window_excluded": jump.window_excluded,
                     "window_p": jump.window_p},
        },
        "calibration": _calibration(analysis.calibration),
        "calibration_all": _calibration(analysis.calibration_all),
        "side_bias": _side(analysis.side_bias),
        "side_bias_all": _side(analysis.side_bias_all),
        "drift": {"slope_left": drift.slope_left, "slope_left_se": drift.slope_left_se,
                  "slope_left_p": drift.slope_left_p, "slope_choice": drift.slope_choice,
                  "slope_choice_se": drift.slope_choice_se, "slope_choice_p": drift.slope_choice_p,
                  "flagged_annotators": int(drift.flagged.sum())},
        "agreement": asdict(quality.agreement),
        "response_time_quantiles_ms": {f"{q:g}": v for q, v in quality.rt_quantiles.items()},
        "fast_ms": quality.fast_ms,
        "annotators": annotator_rows(report),
        "fits": [_fit_json(report, fit) for fit in (*report.fits, *report.pooled_fits)],
        "bradley_terry": _bradley_terry_json(report),
        "timeline": _timeline_json(report),
        "alignment": [asdict(a) for a in report.alignment.values()],
        "categories": {section.field: field_json(section, report.generators, report.order, report.options.level,
                                                 CONDITIONS["saturating"]) for section in report.categories},
        "plan": None if report.plan is None else {
            "target_half_width": report.plan.target, "done": list(report.done_ids or ()),
            "generators": _plan_rows(report),
        },
    }
    return json_safe(body)


def report_json_text(report: Report) -> str:
    return json.dumps(report_json(report), ensure_ascii=False, allow_nan=False)


# ------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------
def _cell(value) -> str:
    value = json_safe(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return "'" + text if text[:1] in FORMULA_START and not _is_number_text(text) else text


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _series_cells(report: Report) -> dict[int, tuple[str, str]]:
    """Generator code -> the ``verdicts`` and ``fit_flags`` cells of its series' fits."""
    verdicts: dict[int, list[str]] = {}
    flags: dict[int, list[str]] = {}
    for fit in report.fits:
        for c in fit.codes.tolist():
            if fit.verdict is not None:
                verdicts.setdefault(c, []).append(f"{fit.axis}={fit.verdict.verdict}")
            for name, curve in fit.fits.items():
                if curve.flags:
                    flags.setdefault(c, []).append(f"{fit.axis}/{name}={'+'.join(curve.flags)}")
            for name, why in fit.not_fitted.items():
                flags.setdefault(c, []).append(f"{fit.axis}/{name}={why.reason}")
    return {c: (";".join(verdicts.get(c, [])), ";".join(flags.get(c, [])))
            for c in set(verdicts) | set(flags)}


def report_csv(report: Report) -> str:
    """The per-generator table with and without exclusions (columns in the module docstring)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    slug = report.configuration.get("slug", "")
    tables = (("applied", report.analysis.rates.rows()), ("none", report.analysis.rates_all.rows()))
    series = _series_cells(report)
    for c in report.order:
        g = report.generators[c]
        verdicts, fit_flags = series.get(c, ("", ""))
        for setting, rows in tables:
            row = _strip(rows[c])
            values = {"study": slug, "generator_id": g.id, "generator": g.name, "series": g.series,
                      "params": g.params, "train_images": g.train_images, "train_flops": g.train_flops,
                      "train_step": g.train_step, "exclusions": setting, **row, "flags": ";".join(row["flags"]),
                      "verdicts": verdicts if setting == "applied" else "",
                      "fit_flags": fit_flags if setting == "applied" else ""}
            if setting == "applied":
                timeline = report.timeline
                values.update(time_adjusted=timeline.adjusted[c], drift_slope=timeline.slope[c],
                              drift_p=timeline.slope_p[c])
                bt = report.bradley_terry
                if bt is not None:
                    values.update(pooled_rate=bt.rate[c], pooled_low=bt.rate_low[c], pooled_high=bt.rate_high[c],
                                  n_head_to_head=int(bt.n[c] - bt.n_vs_real[c]), bt_flags=";".join(bt.flags[c]))
            values["anchor"] = c in report.anchors
            values["blank_samples"] = g.blank_samples
            writer.writerow([_cell(values.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()
