"""A report as one self-contained HTML page, and its body as the study page's panel.

One file: inline CSS, inline SVG plots (`plots`), no script and no reference to
anything outside it, so it can be mailed, archived or opened offline. Numbers are
formatted here; the templates (`analysis/report.html`,
`analysis/partials/report_body.html`) only lay them out.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import TYPE_CHECKING

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from analysis import plots
from analysis.category_exports import categories_context
from analysis.exports import CONDITIONS, annotator_rows, json_safe, timeline_order
from analysis.formatting import flag_list, interval, num, pct, sig
from analysis.stats.asymptote import VERDICTS
from analysis.stats.bradley_terry import BT_FLAGS
from analysis.stats.fits import FIT_FLAGS
from analysis.stats.rates import RATE_FLAGS
from annotate import study_settings

if TYPE_CHECKING:  # the analysis itself loads with the first report (see exports)
    from analysis.reports import Report

# In place of the rate of a generator of the study that no judgment names yet.
NOT_JUDGED = "no judgments yet"
# What each exclusion rule checks, in words, by the rule's name (`stats.EXCLUSION_RULES`);
# the study setting that switches it is declared with the settings (`study_settings.RULE_SETTINGS`).
RULE_MEANINGS = {
    "catch_accuracy": "catch-trial accuracy below",
    "too_fast": "share of answers under fast_response_ms above",
    "side_bias": "significant side bias (Bonferroni)",
    "agreement": "agreement with the majority below",
}


def _generator_rows(report: Report) -> list[dict]:
    rates, rates_all = report.analysis.rates, report.analysis.rates_all
    plan = report.plan
    rows = []
    for c in report.order:
        g = report.generators[c]
        rows.append({
            "name": g.name, "id": g.id, "series": g.series or "—",
            "axes": [f"{label} {sig(getattr(g, axis))}" for axis, label in
                     (("params", "N"), ("train_images", "D"), ("train_flops", "C"), ("train_step", "step"))
                     if getattr(g, axis) is not None],
            "rate": num(rates.rate[c]) if rates_all.n[c] else NOT_JUDGED,
            "interval": interval(rates.low[c], rates.high[c]),
            "n": int(rates.n[c]), "prompts": int(rates.n_items[c]), "annotators": int(rates.n_annotators[c]),
            "deff": num(rates.design_effect[c], 2),
            "wilson": interval(rates.wilson_low[c], rates.wilson_high[c]),
            "clopper_pearson": interval(rates.cp_low[c], rates.cp_high[c]),
            "rate_all": num(rates_all.rate[c]), "interval_all": interval(rates_all.low[c], rates_all.high[c]),
            "n_all": int(rates_all.n[c]),
            "samples": int(rates.n_samples[c]),
            "seed_share": pct(rates.seed_share[c]), "prompt_share": pct(rates.prompt_share[c]),
            "flags": flag_list(rates.flags[c], RATE_FLAGS),
            "flags_all": flag_list(rates_all.flags[c], RATE_FLAGS),
            "plan": None if plan is None else {
                "half_width": num(plan.half_width[c]), "basis": plan.basis[c],
                "more": num(plan.judgments_more[c], 0),
                "needed": num(plan.judgments_needed[c], 0), "prompts": num(plan.prompts_needed[c], 0),
                "prompts_min": num(plan.prompts_min[c], 0), "done": bool(plan.done[c]),
            },
        })
    return rows


def _fit_context(report: Report, fit, targets) -> dict:
    rates = report.analysis.rates
    rate, low, high = rates.rate, rates.low, rates.high
    if fit.source == "pooled":
        bt = report.bradley_terry
        rate, low, high = bt.rate, bt.rate_low, bt.rate_high
    codes = fit.codes
    forms = []
    for name, curve in fit.fits.items():
        forms.append({
            "name": name,
            "params": [(k, sig(v, 4), interval(*curve.intervals[k], fmt=lambda v: sig(v, 4)))
                       for k, v in curve.params.items()],
            "gaps": [(f"{t:g}", "never" if v[0] == math.inf else sig(v[0]),
                      "never, in every refit" if v[1] == math.inf else interval(v[1], v[2], fmt=sig))
                     for t, v in curve.x_at_gap.items()],
            "condition": CONDITIONS[name].split(":")[0],
            "qaic": num(curve.qaic(fit.dispersion), 2), "converged": pct(curve.boot_converged),
            "flags": flag_list(curve.flags, FIT_FLAGS),
        })
    svg = plots.scaling_plot(
        fit, [report.generators[c].name for c in codes], rate[codes], low[codes], high[codes], targets=targets,
    )
    comparison = fit.comparison
    return {
        "series": fit.series, "axis": fit.axis, "points": len(codes), "forms": forms, "errors": fit.errors,
        "source": fit.source,
        "notes": fit.notes, "not_fitted": {name: why.message for name, why in fit.not_fitted.items()},
        "dispersion": num(fit.dispersion, 2), "dispersion_basis": fit.dispersion_basis, "svg": mark_safe(svg),
        "verdict": _verdict_context(fit.verdict),
        "comparison": None if comparison is None else {
            "lr": num(comparison["lr"], 2), "df": comparison["df"], "p": sig(comparison["p_value"], 2),
            "delta_qaic": num(comparison["delta_qaic"], 2),
        },
    }


def _verdict_context(verdict) -> dict | None:
    if verdict is None:
        return None
    needed = verdict.judgments_needed
    return {
        "key": verdict.verdict, "label": VERDICTS[verdict.verdict], "reason": verdict.reason,
        "judgments": verdict.judgments, "margin_asymptote": f"{0.5 - verdict.margin:g}",
        "power": f"{verdict.power:.0%}",
        "needed": None if math.isnan(needed) else ("more than any budget" if needed == math.inf
                                                   else f"{int(needed):,}"),
    }


def _timeline_context(report: Report) -> dict | None:
    timeline = report.timeline
    if timeline.n.shape[1] < 2:
        return None
    order = [c for c in timeline_order(report) if timeline.n[c].sum()]
    rows = [{"name": report.generators[c].name, "anchor": c in report.anchors,
             "n": int(timeline.n[c].sum()), "raw": num(timeline.raw[c]),
             "adjusted": num(timeline.adjusted[c]), "slope": num(timeline.slope[c]),
             "p": sig(timeline.slope_p[c], 2), "blocks": int((timeline.n[c] > 0).sum())} for c in order]
    svg = plots.timeline_plot([report.generators[c].name for c in order], timeline.mean_time[order],
                              timeline.share[order], timeline.low[order], timeline.high[order])
    return {"unit": timeline.unit, "blocks": timeline.n.shape[1], "rows": rows, "svg": mark_safe(svg),
            "anchors": [report.generators[c].name for c in report.anchors]}


def _bradley_terry_context(report: Report) -> dict | None:
    """The one-scale section: direct and pooled rates, the win matrix, the fit check."""
    from analysis.reports import fit_check_reading
    bt = report.bradley_terry
    if bt is None:
        return None
    rates = report.analysis.rates
    rows = [{"name": report.generators[c].name, "direct": num(rates.rate[c]),
             "direct_interval": interval(rates.low[c], rates.high[c]), "pooled": num(bt.rate[c]),
             "pooled_interval": interval(bt.rate_low[c], bt.rate_high[c]), "n_vs_real": int(bt.n_vs_real[c]),
             "n_head_to_head": int(bt.n[c] - bt.n_vs_real[c]), "flags": flag_list(bt.flags[c], BT_FLAGS)}
            for c in report.order]
    players = [0] + [c + 1 for c in report.order]
    names = ["real images"] + [report.generators[c].name for c in report.order]
    matrix = [{"name": names[i], "cells": [
        {"wins": int(bt.wins[p, q]), "totals": int(bt.totals[p, q]),
         "share": pct(bt.wins[p, q] / bt.totals[p, q]) if bt.totals[p, q] else "", "self": p == q}
        for q in players]} for i, p in enumerate(players)]
    head_to_head = int((bt.n - bt.n_vs_real).sum() // 2)
    return {
        "rows": rows, "names": names, "matrix": matrix, "head_to_head": head_to_head,
        "gamma": num(bt.gamma), "gamma_interval": interval(bt.gamma_low, bt.gamma_high),
        "reading": fit_check_reading(bt), "pearson": num(bt.pearson, 1), "df": bt.df,
        "intervals": (f"two-way (prompt × annotator) cluster bootstrap, {bt.n_boot} resamples refitted, mapped onto "
                      "the cluster-robust (CGM) covariance" if bt.method == "bootstrap" else
                      "two-way (prompt × annotator) cluster-robust (CGM) with a t quantile"),
        "p": sig(bt.p_value, 2), "dispersion": num(bt.dispersion, 2), "fit_flags": list(bt.fit_flags),
    }


def _exclusion_rows(report: Report) -> list[dict]:
    by_rule = report.analysis.exclusions.by_rule
    least = report.configuration.get("min_catch_trials", 1)
    rows = []
    for rule, meaning in RULE_MEANINGS.items():
        setting = study_settings.RULE_SETTINGS[rule]
        value = report.configuration.get(setting)
        counts = by_rule.get(rule)
        if rule == "catch_accuracy" and least > 1:
            meaning = f"{meaning} (annotators with at least {least} catch trials)"
        rows.append({"rule": rule, "meaning": meaning, "setting": setting,
                     "value": "off" if value in (None, False) else ("on" if value is True else value),
                     "annotators": counts["annotators"] if counts else "—",
                     "judgments": counts["judgments"] if counts else "—",
                     "only": counts["judgments_only"] if counts else "—"})
    return rows


CALIBRATION_METHODS = {
    "cgm-t": "two-way cluster-robust (CGM) with a t quantile",
    "cgm-t one-way": "one-way cluster-robust with a t quantile (the two-way variance was not positive)",
    "none": "none",
}


def _calibration_context(report: Report) -> dict:
    a = report.analysis
    c, c_all, s, s_all = a.calibration.table, a.calibration_all.table, a.side_bias, a.side_bias_all
    rows = [
        ("calibration, exclusions applied", c.rate[0], c.low[0], c.high[0]),
        ("calibration, all judgments", c_all.rate[0], c_all.low[0], c_all.high[0]),
        ("left choices, exclusions applied", s.share_left, s.low, s.high),
        ("left choices, all judgments", s_all.share_left, s_all.low, s_all.high),
    ]
    rows = [(label, *(json_safe(v) for v in values)) for label, *values in rows]
    svg = plots.calibration_plot(rows, a.side_bias_all.annotator_n, a.side_bias_all.annotator_share,
                                 a.side_bias_all.flagged, a.exclusions.excluded, report.simulated)
    table = [
        {"what": "Calibration rate (real vs real)",
         "with": num(c.rate[0]), "with_interval": interval(c.low[0], c.high[0]), "with_n": int(c.n[0]),
         "all": num(c_all.rate[0]), "all_interval": interval(c_all.low[0], c_all.high[0]), "all_n": int(c_all.n[0])},
        {"what": "Share of left choices (all trials)",
         "with": num(s.share_left), "with_interval": interval(s.low, s.high), "with_n": s.n,
         "all": num(s_all.share_left), "all_interval": interval(s_all.low, s_all.high), "all_n": s_all.n},
    ]
    drift = a.drift
    return {
        "svg": mark_safe(svg), "table": table,
        "covers": a.calibration.covers_half, "p_value": sig(a.calibration.p_value, 2),
        "flags": flag_list(c.flags[0], RATE_FLAGS) if c.flags else [],
        "method": CALIBRATION_METHODS.get(a.calibration.method, a.calibration.method),
        "side_flagged": int(s_all.flagged.sum()),
        "drift": {"left": num(drift.slope_left), "left_p": sig(drift.slope_left_p, 2),
                  "choice": num(drift.slope_choice), "choice_p": sig(drift.slope_choice_p, 2),
                  "flagged": int(drift.flagged.sum())},
    }


def _annotator_context(report: Report) -> list[dict]:
    rows = []
    for row in annotator_rows(report):
        rows.append({
            "pseudonym": row["pseudonym"], "source": row["source"], "simulated": row["simulated"],
            "excluded": row["excluded"], "excluded_by": ", ".join(row["excluded_by"]) or "—",
            "n": row["n"], "catch": f"{row['catch_correct']}/{row['catch_n']}" if row["catch_n"] else "—",
            "catch_accuracy": pct(row["catch_accuracy"]), "rt": num(row["rt_median_ms"], 0),
            "fast": pct(row["fast_share"]), "left": pct(row["share_left"]), "side_p": sig(row["side_p"], 2),
            "agreement": pct(row["agreement_share"]), "agreement_n": row["agreement_n"],
            "flags": ", ".join(f for f, on in (("side bias", row["side_bias_flagged"]),
                                               ("drift", row["drift_flagged"])) if on) or "—",
        })
    # Excluded first, then by judgments: the rows a reader checks first.
    rows.sort(key=lambda r: (not r["excluded"], -r["n"]))
    return rows


def _alignment_context(report: Report) -> dict | None:
    if not report.metrics:
        return None
    rates = report.analysis.rates
    rows = [
        {"metric": a.metric, "n": a.n, "spearman": num(a.spearman, 2),
         "spearman_interval": interval(a.spearman_low, a.spearman_high, 2),
         "spearman_judgment": interval(a.spearman_judgment_low, a.spearman_judgment_high, 2),
         "kendall": num(a.kendall, 2), "kendall_interval": interval(a.kendall_low, a.kendall_high, 2),
         "kendall_judgment": interval(a.kendall_judgment_low, a.kendall_judgment_high, 2),
         "p": sig(a.spearman_p, 2)}
        for a in report.alignment.values()
    ]
    svg = plots.alignment_plot(report.metrics, [g.name for g in report.generators], rates.rate, rates.low,
                               rates.high, {name: a.spearman for name, a in report.alignment.items()})
    return {"rows": rows, "svg": mark_safe(svg)}


def html_context(report: Report, *, standalone: bool) -> dict:
    """Everything the report templates show, formatted."""
    rates, rates_all = report.analysis.rates, report.analysis.rates_all
    order = list(report.order)
    names = [report.generators[c].name + ("" if rates_all.n[c] else f" ({NOT_JUDGED})") for c in order]
    forest = plots.forest_plot(names, rates.rate[order], rates.low[order], rates.high[order],
                               rates_all.rate[order], rates_all.low[order], rates_all.high[order]) if order else ""
    configuration = dict(report.configuration)
    policy = configuration.pop("presentation_policy", {})
    exclusions = report.analysis.exclusions
    return {
        "standalone": standalone,
        # Heading level of the sections: a page of its own, or inside the study page's "Analysis".
        "h": 2 if standalone else 4,
        "study": report.configuration,
        "counts": report.counts,
        "level": pct(report.options.level),
        "options": report.options.as_dict(),
        "warnings": report.warnings,
        "generators": _generator_rows(report),
        # Several seeds of a prompt for some generator: the variance has a seeds' part to show.
        "seeds": bool((rates.n_samples > rates.n_items).any()),
        "flagged": flag_list(sorted({f for flags in (*rates.flags, *rates_all.flags) for f in flags}), RATE_FLAGS),
        "has_plan": report.plan is not None,
        "target": report.configuration.get("target_half_width"),
        "done_names": [g.name for g in report.generators if g.id in set(report.done_ids or ())],
        "forest": mark_safe(forest),
        "fits": [_fit_context(report, fit, report.options.gap_targets) for fit in report.fits],
        "pooled_fits": [_fit_context(report, fit, report.options.gap_targets) for fit in report.pooled_fits],
        "bradley_terry": _bradley_terry_context(report),
        "blank_samples": [(report.generators[c].name, report.generators[c].blank_samples) for c in report.order
                          if report.generators[c].blank_samples],
        "timeline": _timeline_context(report),
        "calibration": _calibration_context(report),
        "exclusions": {
            "rows": _exclusion_rows(report), "n_excluded": exclusions.n_excluded,
            "n_judgments": exclusions.n_judgments, "share": pct(exclusions.share_excluded),
            "annotators": int(exclusions.excluded.sum()), "jump": exclusions.jump,
            "windows": list(zip(range(1, len(exclusions.jump.window_annotators) + 1),
                                exclusions.jump.window_annotators.tolist(), exclusions.jump.window_excluded.tolist(),
                                [sig(p, 2) for p in exclusions.jump.window_p])),
        },
        "agreement": report.analysis.quality.agreement,
        "agreement_kappa": num(report.analysis.quality.agreement.fleiss_kappa),
        "agreement_alpha": num(report.analysis.quality.agreement.krippendorff_alpha),
        "annotators": _annotator_context(report),
        "alignment": _alignment_context(report),
        "categories": categories_context(report),
        "configuration": json.dumps(json_safe(configuration), indent=2, ensure_ascii=False, sort_keys=True),
        "policy": json.dumps(json_safe(policy), indent=2, ensure_ascii=False, sort_keys=True),
        "rules": json.dumps(json_safe(asdict(exclusions.rules)), indent=2, sort_keys=True),
        "built_at": report.built_at,
        "seconds": num(report.seconds, 2),
        "provenance": _provenance_context(report),
    }


def _provenance_context(report: Report) -> dict | None:
    """The report's provenance (`selectors.study_provenance`) as the templates show it."""
    provenance = report.provenance
    if not provenance:
        return None
    software = provenance.get("software") or {}
    return {**provenance, "software": software.get("version"), "corpus": provenance.get("corpus") or {}}


def report_html(report: Report) -> str:
    """The report as one self-contained HTML page (module docstring)."""
    return render_to_string("analysis/report.html", html_context(report, standalone=True))


def report_pages(report: Report) -> tuple[str, str]:
    """The page of `report_html` and the study page's panel, with the plots drawn once."""
    context = html_context(report, standalone=True)
    page = render_to_string("analysis/report.html", context)
    panel = render_to_string("analysis/partials/report_body.html", {**context, "standalone": False, "h": 4})
    return page, panel
