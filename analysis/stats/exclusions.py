"""Exclusion rules: study settings applied at analysis time, never by deleting data.

A rule excludes an annotator, and with them all their judgments; the result is a
mask over judgments that every estimator accepts as `keep`. Each rule reports how
many annotators and judgments it removed, alone and together with the others.

An exclusion-rate jump is flagged when
- the share of judgments excluded exceeds `max_share` (default 30 %), or
- annotators are split by arrival (first submission time; annotator code order where
  times are unknown) into `n_windows` consecutive windows, and in some window the
  share of annotators excluded exceeds that of all earlier windows together by at
  least `jump` (default 15 points) with a one-sided two-proportion z test p below
  `jump_alpha` (default 0.01).
Annotators, not judgments, are the units of the window test: an annotator's
judgments are excluded together. A jump usually means a wave of bots or careless
workers on a crowd platform, or a broken catch trial, and deserves a look before the
rates are trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .judgments import Judgments
from .proportions import two_proportion_test
from .quality import AnnotatorQuality

# The rules by their one name, the same in `Exclusions.by_rule`, a report (`by_rule`, an
# annotator's `excluded_by`, the page), the study settings that switch them
# (`annotate.study_settings`) and the README; each with the `ExclusionRules` field whose
# None switches it off.
CATCH_ACCURACY, TOO_FAST, SIDE_BIAS, AGREEMENT = "catch_accuracy", "too_fast", "side_bias", "agreement"
EXCLUSION_RULES = {
    CATCH_ACCURACY: "min_catch_accuracy",
    TOO_FAST: "max_fast_share",
    SIDE_BIAS: "side_bias_alpha",
    AGREEMENT: "min_agreement",
}


@dataclass(frozen=True)
class ExclusionRules:
    """Study settings; None switches a rule off.

    min_catch_accuracy : exclude below this catch accuracy, among annotators with at
        least `min_catch_trials` catch trials.
    max_fast_share : exclude above this share of answers faster than `fast_ms`
        (the quality statistics must be computed with the same `fast_ms`).
    side_bias_alpha : exclude a significant side bias: exact binomial p below
        side_bias_alpha / annotators (Bonferroni) and |share left - 1/2| >= side_bias_effect.
    min_agreement : exclude below this share agreeing with the leave-one-out majority,
        among annotators with at least `min_agreement_n` comparisons.
    """

    min_catch_accuracy: float | None = 0.8
    min_catch_trials: int = 1
    max_fast_share: float | None = 0.2
    fast_ms: float = 400.0
    side_bias_alpha: float | None = None
    side_bias_effect: float = 0.2
    min_agreement: float | None = None
    min_agreement_n: int = 10
    max_share: float = 0.3
    n_windows: int = 5
    jump: float = 0.15
    jump_alpha: float = 0.01


@dataclass(frozen=True, eq=False)
class ExclusionJump:
    """Windows of annotators by arrival and whether the exclusion rate jumped.

    window_annotators, window_excluded : annotators and excluded annotators per window.
    window_p : one-sided test of each window against all earlier ones (NaN for the first).
    flagged : a jump was found; reasons: one sentence per finding.
    """

    window_annotators: np.ndarray
    window_excluded: np.ndarray
    window_p: np.ndarray
    flagged: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class Exclusions:
    """The outcome of applying `ExclusionRules`.

    keep : (n_judgments,) bool mask of the judgments kept.
    excluded : (n_annotators,) bool, the annotator is excluded by some rule.
    by_rule : per rule name (`EXCLUSION_RULES`), {"annotators", "judgments", "judgments_only"}: annotators
        failing the rule, their judgments, and the judgments no other rule removes.
    n_judgments, n_excluded : judgments in all and removed.
    jump : the exclusion-rate jump check.
    """

    rules: ExclusionRules
    keep: np.ndarray
    excluded: np.ndarray
    by_rule: dict
    n_judgments: int
    n_excluded: int
    jump: ExclusionJump

    @property
    def share_excluded(self) -> float:
        return self.n_excluded / self.n_judgments if self.n_judgments else 0.0


def _failures(quality: AnnotatorQuality, rules: ExclusionRules) -> dict[str, np.ndarray]:
    if rules.max_fast_share is not None and quality.fast_ms != rules.fast_ms:
        raise ValueError(f"quality counts answers under {quality.fast_ms} ms, the rules {rules.fast_ms} ms")
    failing = {}
    with np.errstate(invalid="ignore"):
        if rules.min_catch_accuracy is not None:
            failing[CATCH_ACCURACY] = (quality.catch_n >= rules.min_catch_trials) & (
                quality.catch_accuracy < rules.min_catch_accuracy)
        if rules.max_fast_share is not None:
            failing[TOO_FAST] = quality.fast_share > rules.max_fast_share
        if rules.side_bias_alpha is not None:
            judged = max(1, int((quality.n > 0).sum()))
            failing[SIDE_BIAS] = (quality.side_p < rules.side_bias_alpha / judged) & (
                np.abs(quality.share_left - 0.5) >= rules.side_bias_effect)
        if rules.min_agreement is not None:
            failing[AGREEMENT] = (quality.agreement_n >= rules.min_agreement_n) & (
                quality.agreement_share < rules.min_agreement)
    return failing


def exclusion_jump(judgments: Judgments, excluded: np.ndarray, rules: ExclusionRules) -> ExclusionJump:
    """Flag an exclusion-rate jump (module docstring)."""
    a = judgments.annotator
    n_annotators = judgments.n_annotators
    counts = np.bincount(a, minlength=n_annotators)
    present = np.flatnonzero(counts > 0)
    first = np.full(n_annotators, np.inf)
    np.minimum.at(first, a, np.where(np.isnan(judgments.time_s), np.inf, judgments.time_s))
    arrival = present[np.lexsort((present, first[present]))]
    reasons = []
    share = (counts * excluded).sum() / max(1, counts.sum())
    if share > rules.max_share:
        reasons.append(f"{share:.0%} of judgments excluded, above {rules.max_share:.0%}")
    windows = np.array_split(arrival, rules.n_windows) if len(arrival) >= 2 * rules.n_windows else [arrival]
    sizes = np.array([len(w) for w in windows])
    bad = np.array([int(excluded[w].sum()) for w in windows])
    p_values = np.full(len(windows), np.nan)
    for index in range(1, len(windows)):
        before_n, before_bad = sizes[:index].sum(), bad[:index].sum()
        z, _ = two_proportion_test(before_bad, before_n, bad[index], sizes[index])
        p_values[index] = stats.norm.sf(z) if np.isfinite(z) else np.nan
        rise = bad[index] / sizes[index] - before_bad / before_n
        if rise >= rules.jump and p_values[index] < rules.jump_alpha:
            reasons.append(
                f"window {index + 1} of {len(windows)}: {bad[index] / sizes[index]:.0%} of annotators excluded"
                f" against {before_bad / before_n:.0%} before (p = {p_values[index]:.2g})")
    return ExclusionJump(sizes, bad, p_values, bool(reasons), tuple(reasons))


def apply_exclusions(judgments: Judgments, quality: AnnotatorQuality, rules: ExclusionRules) -> Exclusions:
    """Apply the rules to annotators and return the judgment mask and its accounting."""
    failing = _failures(quality, rules)
    excluded = np.zeros(judgments.n_annotators, bool)
    for flags in failing.values():
        excluded |= flags
    per_annotator = np.bincount(judgments.annotator, minlength=judgments.n_annotators)
    by_rule = {}
    for name, flags in failing.items():
        others = np.zeros_like(excluded)
        for other, other_flags in failing.items():
            if other != name:
                others |= other_flags
        by_rule[name] = {
            "annotators": int(flags.sum()),
            "judgments": int(per_annotator[flags].sum()),
            "judgments_only": int(per_annotator[flags & ~others].sum()),
        }
    keep = ~excluded[judgments.annotator]
    return Exclusions(rules, keep, excluded, by_rule, len(judgments), int((~keep).sum()),
                      exclusion_jump(judgments, excluded, rules))
