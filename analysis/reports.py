"""A study's report: one structure with everything the CLI, the API and the study page show.

`report_from_input` computes it from plain values (judgments as `Judgments`, what
their codes stand for, the study's settings), without the database, so that a
benchmark or a notebook can build one from simulated columns; `selectors.report_input`
reads those values of a study from the database. Rendering is elsewhere
(`exports`: JSON and CSV; `report_html` with `plots`: HTML).

What a report holds, in the order the HTML shows it:

- the study's configuration and presentation policy, so the result can be reproduced;
- provenance: the software version, each generator's backend and checkpoint or
  uploaded samples (with hashes), the trial-build seed and a hash of the corpus items;
- counts: judgments by kind, annotators, how many of each are simulated
  (`Annotator.source == "simulated"`), how many judgments the exclusions removed;
- per generator, the preference rate with its intervals, with and without the
  exclusion rules (`stats.analyse_study`); exclusions are applied here, at analysis
  time, and never by deleting data;
- one scale: the Bradley-Terry fit (`stats.bradley_terry`) of the kept vs-real and
  head-to-head judgments, with each generator's pooled rate beside its direct one,
  the position effect, the win matrix of real images and generators, and the fit's
  check of one scale (transitivity); without head-to-head judgments it is the
  vs-real-only fit, whose pooled rates nearly equal the direct ones;
- exclusions: what each rule removed, alone and together, and the exclusion-rate
  jump check;
- calibration (real vs real should cover 0.5), side bias and drift over sessions;
- the annotator-quality table, each annotator by pseudonym, marked when simulated and
  with the rules that exclude them;
- scaling fits per series and axis (`scaling`), on the direct rates, and with
  head-to-head judgments also on the pooled rates (`source` "pooled");
- rates over time: per generator and week (or block of judgments), a drift test, and
  rates adjusted for the time blocks (`stats.timeline`), the study's anchor
  generators (`Study.anchor_generators`) first;
- rank correlation of the human rate with each automatic metric of the generators;
- with a target half-width, the plan: judgments and prompts each generator still
  needs, and which generators are done (written to `Study.generators_done` by
  `services.study_report`);
- results per category: per value of each item metadata field named, the rates,
  Bonferroni-adjusted intervals, saturating fits and where parity comes first
  (`categories`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from analysis.categories import CategoryField, category_fields, fields_for
from analysis.scaling import GeneratorInfo, SeriesFit, pooled_series_fits, series_fits
from analysis.stats import (
    CALIBRATION,
    CATCH,
    EXCLUSION_RULES,
    GENERATED,
    HEAD_TO_HEAD,
    Alignment,
    BradleyTerry,
    ExclusionRules,
    Judgments,
    Plan,
    StudyAnalysis,
    analyse_study,
    apply_exclusions,
    bradley_terry,
    generators_done,
    metric_alignment,
    plan_judgments,
    study_trials,
)
from analysis.stats.timeline import Timeline, rate_timeline

# Bump when the content of a report changes for the same data (it is in the fingerprint
# of stored reports, so a stored one built by older code is rebuilt).
REPORT_VERSION = 9


@dataclass(frozen=True)
class ReportOptions:
    """How much resampling a report does; the defaults build a small study's report in a second or two.

    n_boot : two-way (prompt x annotator) bootstrap resamples behind every rate
        interval, and the judgment resamples of metric alignment.
    fit_boot : two-way (prompt x annotator) bootstrap refits per scaling fit. The free-asymptote form costs
        the most: where the generators are far from its asymptote, p_inf is barely
        identified and many refits run to the optimiser's iteration limit (about
        1.5 s per series on two cores, more refits adding little); 1000 gives
        smoother intervals for a final report (`manage.py report --fit-boot`).
    level : interval level; seed: of every bootstrap (same seed, same report).
    gap_targets : parity gaps at which fits report the extrapolated scale.
    bt_boot : two-way (prompt x annotator) bootstrap refits of the Bradley-Terry fit,
        whose percentile intervals (mapped onto the cluster-robust covariance,
        `stats.bradley_terry`) the report shows; 0 takes the CGM sandwich's normal-theory
        intervals instead (coverage alike in simulation, bench/bradley_terry.py).
    category_fields : item metadata fields to break the results down by (`categories`);
        empty takes the study's `report_categories` setting where it has one.
    """

    n_boot: int = 1000
    fit_boot: int = 200
    level: float = 0.95
    seed: int = 0
    gap_targets: tuple[float, ...] = (0.05, 0.01)
    bt_boot: int = 1000
    category_fields: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"n_boot": self.n_boot, "fit_boot": self.fit_boot, "level": self.level, "seed": self.seed,
                "gap_targets": list(self.gap_targets), "bt_boot": self.bt_boot,
                "category_fields": list(self.category_fields), "version": REPORT_VERSION}


@dataclass(frozen=True)
class AnnotatorInfo:
    """What a report may show of an annotator: a pseudonym and where they came from."""

    pseudonym: str
    source: str

    @property
    def simulated(self) -> bool:
        return self.source == "simulated"


@dataclass(frozen=True, eq=False)
class ReportInput:
    """The plain values a report is computed from.

    generators : GeneratorInfo per generator code (in `judgments.generator_labels` order).
    annotators : AnnotatorInfo per annotator code.
    configuration : the study's settings as JSON values (`selectors.study_configuration`).
    provenance : what the report was made from and with, as JSON values
        (`selectors.study_provenance`: software version, generators' backends and
        checkpoints, trial seed, corpus hash); empty where built from plain columns.
    item_values : reads a metadata field: its value per item code (None where an item
        lacks it), for the results per category; the database's reader
        (`selectors.report_input`) reads only the fields asked, when asked
        (`categories.item_values_from` wraps plain dicts). None: no item has metadata.
    """

    judgments: Judgments
    generators: tuple[GeneratorInfo, ...]
    annotators: tuple[AnnotatorInfo, ...]
    configuration: dict
    rules: ExclusionRules
    target_half_width: float | None = None
    provenance: dict = field(default_factory=dict)
    item_values: Callable[[str], Sequence] | None = None


@dataclass(frozen=True, eq=False)
class Report:
    """Everything about one study at one moment (module docstring).

    generators, annotators : in code order of the analysis' tables; `order` lists the
        generator codes in display order (by series, then along the scale axes).
    analysis : `stats.StudyAnalysis` (rates with and without exclusions, quality, ...).
    rule_excluded : rule name -> (annotators,) bool, the annotators each rule alone excludes.
    metrics : metric name -> (generators,) values (NaN where a generator has none).
    plan : `stats.Plan` with a target half-width, else None; done_ids: the generator
        ids whose interval is narrow enough (None without a target).
    bradley_terry : the Bradley-Terry fit of the kept vs-real and head-to-head
        judgments (`stats.bradley_terry`, codes as the generators'), None before any
        is judged; pooled_fits: `fits` refitted to its pooled rates, where the study
        has head-to-head judgments (`scaling.pooled_series_fits`).
    anchors : codes of the study's anchor generators (`Study.anchor_generators`).
    categories : per item metadata field broken down by, its results (`categories`).
    """

    configuration: dict
    options: ReportOptions
    built_at: datetime
    seconds: float
    counts: dict
    generators: tuple[GeneratorInfo, ...]
    order: tuple[int, ...]
    annotators: tuple[AnnotatorInfo, ...]
    analysis: StudyAnalysis
    rule_excluded: dict[str, np.ndarray]
    fits: tuple[SeriesFit, ...]
    timeline: Timeline
    metrics: dict[str, np.ndarray]
    alignment: dict[str, Alignment]
    plan: Plan | None
    done_ids: tuple[int, ...] | None
    warnings: tuple[str, ...] = field(default=())
    provenance: dict = field(default_factory=dict)
    bradley_terry: BradleyTerry | None = None
    pooled_fits: tuple[SeriesFit, ...] = ()
    anchors: tuple[int, ...] = ()
    categories: tuple[CategoryField, ...] = ()

    @property
    def simulated(self) -> np.ndarray:
        """(annotators,) bool: the annotator is simulated."""
        return np.array([a.simulated for a in self.annotators], dtype=bool)


def display_order(generators: tuple[GeneratorInfo, ...]) -> tuple[int, ...]:
    """Generator codes by series (generators without one last), then along the scale axes, then name."""

    def key(code: int):
        g = generators[code]
        scales = (g.params, g.train_images, g.train_flops, g.train_step)
        axes = tuple(math.inf if v is None else float(v) for v in scales)
        return (g.series is None, g.series or "", axes, g.name)

    return tuple(sorted(range(len(generators)), key=key))


def analyse(judgments: Judgments, rules: ExclusionRules, options: ReportOptions) -> StudyAnalysis:
    """`stats.analyse_study` with the report's options (an empty rate table before any
    generated trial is judged)."""
    return analyse_study(judgments, rules=rules, n_boot=options.n_boot, level=options.level, seed=options.seed)


def _counts(judgments: Judgments, annotators: tuple[AnnotatorInfo, ...], analysis: StudyAnalysis) -> dict:
    simulated = np.array([a.simulated for a in annotators], dtype=bool)
    per_annotator = np.bincount(judgments.annotator, minlength=len(annotators))
    exclusions = analysis.exclusions
    return {
        "judgments": len(judgments),
        "generated": int((judgments.kind == GENERATED).sum()),
        "catch": int((judgments.kind == CATCH).sum()),
        "calibration": int((judgments.kind == CALIBRATION).sum()),
        "head_to_head": int((judgments.kind == HEAD_TO_HEAD).sum()),
        "annotators": int((per_annotator > 0).sum()),
        "simulated_annotators": int((simulated & (per_annotator > 0)).sum()),
        "simulated_judgments": int(per_annotator[simulated].sum()),
        "prompts": int(len(np.unique(judgments.item))),
        "excluded_annotators": int(exclusions.excluded.sum()),
        "excluded_judgments": exclusions.n_excluded,
    }


def _rule_masks(judgments: Judgments, analysis: StudyAnalysis, rules: ExclusionRules) -> dict[str, np.ndarray]:
    """Per rule that is on, the annotators it alone excludes (the same stats code, one rule at a time)."""
    off = {name: None for name in EXCLUSION_RULES.values()}
    masks = {}
    for rule, switch in EXCLUSION_RULES.items():
        if getattr(rules, switch) is None:
            continue
        alone = replace(rules, **{**off, switch: getattr(rules, switch)})
        masks[rule] = apply_exclusions(judgments, analysis.quality, alone).excluded
    return masks


def _metric_columns(generators: tuple[GeneratorInfo, ...]) -> dict[str, np.ndarray]:
    names = sorted({name for g in generators for name, value in g.metrics.items() if _is_number(value)})
    return {
        name: np.array([float(g.metrics[name]) if _is_number(g.metrics.get(name)) else np.nan for g in generators])
        for name in names
    }


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# P-value under which the fit check reads as a rejection of one scale.
FIT_ALPHA = 0.05


def fit_check_reading(bt: BradleyTerry) -> str:
    """The Bradley-Terry goodness-of-fit check in plain words."""
    if not bt.df > 0 or not math.isfinite(bt.pearson):
        return ("Too few pairs of players have judgments to test whether one scale fits: every pair judged is "
                "fitted exactly.")
    stat = (f"Pearson X² = {bt.pearson:.1f} on {bt.df} df, p = {bt.p_value:.2g}, "
            f"dispersion X²/df = {bt.dispersion:.2f}")
    if bt.p_value >= FIT_ALPHA:
        return (f"The judgments are consistent with one scale ({stat}): the win shares of every pair of players "
                "follow from the strengths, as far as these judgments can tell.")
    return (f"One scale does not fit every pair ({stat}). Prompt and annotator effects inflate X² even when the "
            "model holds, so a dispersion near the generators' design effects points to clustering; a much "
            "larger one to intransitive pairs (A beats B beats C beats A) or a position effect that differs "
            "between pairs: read the win matrix before trusting the pooled rates.")


def study_bradley_terry(judgments: Judgments, keep: np.ndarray, options: ReportOptions) -> BradleyTerry | None:
    """The Bradley-Terry fit of the kept vs-real and head-to-head judgments; None before any."""
    if not (keep & ((judgments.kind == GENERATED) | (judgments.kind == HEAD_TO_HEAD))).any():
        return None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return bradley_terry(**study_trials(judgments, keep=keep), n_boot=options.bt_boot, level=options.level,
                             seed=options.seed, method="bootstrap" if options.bt_boot else "sandwich")


def report_from_input(
    data: ReportInput,
    options: ReportOptions = ReportOptions(),
    *,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Compute a study's report from plain values (module docstring)."""
    step = progress or (lambda message: None)
    started = time.perf_counter()
    judgments = data.judgments
    step(f"rates, quality and exclusions of {len(judgments):,} judgments")
    analysis = analyse(judgments, data.rules, options)
    rates = analysis.rates
    step("scaling fits")
    fits = series_fits(judgments, rates, data.generators, keep=analysis.exclusions.keep, n_boot=options.fit_boot,
                       level=options.level, seed=options.seed, targets=options.gap_targets)
    step("one scale: Bradley-Terry")
    bt = study_bradley_terry(judgments, analysis.exclusions.keep, options)
    pooled = []
    if bt is not None and (judgments.kind == HEAD_TO_HEAD).any():
        pooled = pooled_series_fits(fits, bt, n_boot=options.fit_boot, level=options.level, seed=options.seed,
                                    targets=options.gap_targets)
    step("rates over time")
    timeline = rate_timeline(judgments, keep=analysis.exclusions.keep)
    names = fields_for(options.category_fields, data.configuration)
    categories = ()
    if names:
        step(f"results per category of {', '.join(names)}")
        categories = category_fields(judgments, analysis.exclusions.keep, data.item_values, names, fits,
                                     n_boot=options.n_boot, fit_boot=options.fit_boot, level=options.level,
                                     seed=options.seed, targets=options.gap_targets)
    step("metric alignment")
    metrics = _metric_columns(data.generators)
    alignment = metric_alignment(rates, metrics, level=options.level, seed=options.seed) if metrics else {}
    plan = done_ids = None
    if data.target_half_width:
        plan = plan_judgments(rates, data.target_half_width)
        done = generators_done(rates, data.target_half_width)
        done_ids = tuple(sorted(int(label) for label, flag in done.items() if flag))
    warnings = []
    if analysis.exclusions.jump.flagged:
        warnings += [f"Exclusion-rate jump: {reason}." for reason in analysis.exclusions.jump.reasons]
    if analysis.calibration.covers_half is False:
        warnings.append("The calibration rate's interval does not cover 0.5.")
    elif analysis.calibration.table.n[0] and analysis.calibration.covers_half is None:
        warnings.append("The calibration rate has no interval: " + ", ".join(analysis.calibration.table.flags[0]) + ".")
    return Report(
        configuration=data.configuration,
        options=options,
        built_at=datetime.now(UTC),
        seconds=time.perf_counter() - started,
        counts=_counts(judgments, data.annotators, analysis),
        generators=data.generators,
        order=display_order(data.generators),
        annotators=data.annotators,
        analysis=analysis,
        rule_excluded=_rule_masks(judgments, analysis, data.rules),
        fits=tuple(fits),
        timeline=timeline,
        metrics=metrics,
        alignment=alignment,
        plan=plan,
        done_ids=done_ids,
        warnings=tuple(warnings),
        provenance=data.provenance,
        bradley_terry=bt,
        pooled_fits=tuple(pooled),
        anchors=_anchor_codes(data),
        categories=categories,
    )


def _anchor_codes(data: ReportInput) -> tuple[int, ...]:
    wanted = {str(pk) for pk in data.configuration.get("anchor_generators") or ()}
    return tuple(code for code, g in enumerate(data.generators) if str(g.id) in wanted)
