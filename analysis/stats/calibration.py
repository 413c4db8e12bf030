"""Calibration and bias: does the instrument measure 0.5 where it should?

- Calibration trials show two real images: the rate of choosing the probe should
  cover 0.5. Its interval is the small-sample-corrected CGM one
  (`sandwich.two_way_interval`), not the two-way bootstrap of the preference rates:
  with no prompt or annotator effect, judgment noise is all there is, and the
  bootstrap counts it three times, so its interval would hide a real miscalibration.
- Side bias: the share of "left" choices. The probe's side is drawn at random per
  assignment, so for every judgment P(left) = p/2 + (1 - p)/2 = 1/2 whatever its
  content; an annotator's left choices are Binomial(n, 1/2) without side bias and the
  exact binomial test applies.
- Drift: whether choices change over an annotator's session (fatigue, learning to
  spot generated images), per annotator (first against second half) and pooled
  (a linear-probability slope on the relative position in the session).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from .judgments import CALIBRATION, GENERATED, Judgments
from .proportions import (
    binomial_test_half,
    clopper_pearson_interval,
    two_proportion_test,
    wilson_interval,
    z_value,
)
from .rates import MIN_JUDGMENTS, RateTable, balanced_rates, withheld
from .sandwich import cluster_variance, two_way_interval


def _mask(judgments: Judgments, keep: np.ndarray | None) -> np.ndarray:
    return np.ones(len(judgments), bool) if keep is None else np.asarray(keep, bool)


@dataclass(frozen=True, eq=False)
class Calibration:
    """The calibration rate (a one-row RateTable labelled "calibration").

    table : its `low` and `high` are the interval named by `method`, not the
        bootstrap percentile interval of `rates.balanced_rates`; its `flags` say why
        there is none (`rates.RATE_FLAGS`).
    covers_half : 0.5 lies in that interval; None where there is no interval.
    p_value : exact two-sided binomial test of the raw share against 0.5 (ignores
        clustering, so it is a screen, not a verdict).
    method : "cgm-t" (`sandwich.two_way_interval`), "cgm-t one-way" where the two-way
        variance was not positive and the larger one-way variance was used, or
        "none" where the rate's flags withhold every clustered interval (too few
        judgments, one prompt or annotator, no variation) or the variance is zero.
    boot_low, boot_high : the two-way bootstrap percentile interval, for comparison.
    df : degrees of freedom of the t quantile (NaN for "bootstrap").
    """

    table: RateTable
    covers_half: bool | None
    p_value: float
    method: str
    boot_low: float
    boot_high: float
    df: float


def calibration_rate(
    judgments: Judgments, *, keep: np.ndarray | None = None, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> Calibration:
    """Position-balanced rate of choosing the probe on calibration (real vs real) trials.

    Same estimator as `rates.preference_rates`, interval as in the module docstring;
    should cover 0.5.
    """
    mask = _mask(judgments, keep) & (judgments.kind == CALIBRATION)
    table = balanced_rates(
        success=judgments.chose_generated[mask], probe_left=judgments.generated_left[mask],
        group=np.zeros(int(mask.sum()), dtype=np.int64), item=judgments.item[mask],
        annotator=judgments.annotator[mask], labels=("calibration",),
        n_boot=n_boot, level=level, seed=seed,
    )
    boot_low, boot_high = float(table.low[0]), float(table.high[0])
    interval = two_way_interval(table.rate, table.var_item, table.var_annotator, table.var_cell,
                                table.n_items, table.n_annotators, level)
    if not withheld(table.flags)[0] and interval.se[0] > 0:
        method = "cgm-t one-way" if interval.fallback[0] else "cgm-t"
        low, high = np.clip(interval.low, 0, 1), np.clip(interval.high, 0, 1)
        df = float(interval.df[0])
    else:
        method, df = "none", np.nan
        low = high = np.full(1, np.nan)
    table = replace(table, low=low, high=high)
    covers = bool(low[0] <= 0.5 <= high[0]) if method != "none" else None
    return Calibration(table, covers, float(binomial_test_half(table.wins[0], table.n[0])),
                       method, boot_low, boot_high, df)


@dataclass(frozen=True, eq=False)
class SideBias:
    """Share of left choices, overall and per annotator (arrays over annotator codes).

    n, left, share_left : overall counts and share.
    low, high : normal interval of the overall share with its CGM two-way standard
        error (`sandwich`; the share is near 1/2 and n large, where the normal
        approximation holds, and this avoids a bootstrap over every judgment), clipped
        to [0, 1]; NaN with fewer than `rates.MIN_JUDGMENTS` judgments, one prompt or
        annotator, or a variance that is not positive.
    wilson_low, wilson_high : Wilson interval of the overall share.
    cp_low, cp_high : Clopper-Pearson interval of the overall share.
    annotator_n, annotator_left, annotator_share : per annotator.
    annotator_p : exact two-sided binomial test of share 1/2.
    flagged : p below alpha / (annotators judged) (Bonferroni) and
        |share - 1/2| >= min_effect.
    """

    n: int
    left: int
    share_left: float
    low: float
    high: float
    wilson_low: float
    wilson_high: float
    cp_low: float
    cp_high: float
    annotator_n: np.ndarray
    annotator_left: np.ndarray
    annotator_share: np.ndarray
    annotator_p: np.ndarray
    flagged: np.ndarray


def side_bias(
    judgments: Judgments,
    *,
    keep: np.ndarray | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.1,
    level: float = 0.95,
) -> SideBias:
    """Side bias over all trial kinds, overall and per annotator (module docstring)."""
    mask = _mask(judgments, keep)
    left = judgments.chose_left[mask]
    item, annotator = judgments.item[mask], judgments.annotator[mask]
    n, k = len(left), int(left.sum())
    share_left = k / n if n else np.nan
    variance = cluster_variance((left - share_left) / max(n, 1), item, annotator).two_way[0] if n else np.nan
    # As for the rates (`rates.RATE_FLAGS`): no interval rather than one of zero width
    # or one that ignores a factor with a single level.
    clustered = n >= MIN_JUDGMENTS and min(len(np.unique(item)), len(np.unique(annotator))) >= 2
    if clustered and variance > 0:
        half = z_value(level) * np.sqrt(variance)
        low, high = max(0.0, share_left - half), min(1.0, share_left + half)
    else:
        low = high = np.nan
    wilson_low, wilson_high = wilson_interval(k, n, level)
    cp_low, cp_high = clopper_pearson_interval(k, n, level)

    n_annotators = judgments.n_annotators
    per_n = np.bincount(annotator, minlength=n_annotators)
    per_left = np.bincount(annotator, weights=left, minlength=n_annotators).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = per_left / per_n
    p = binomial_test_half(per_left, per_n)
    judged = max(1, int((per_n > 0).sum()))
    flagged = (p < alpha / judged) & (np.abs(share - 0.5) >= min_effect)
    return SideBias(n, k, share_left, float(low), float(high), float(wilson_low), float(wilson_high),
                    float(cp_low), float(cp_high),
                    per_n, per_left, share, p, flagged)


@dataclass(frozen=True, eq=False)
class Drift:
    """Change of choices over annotators' sessions.

    Per annotator (arrays over annotator codes), first half of the session (by
    `order`) against the second:
    left_early, left_late, left_p : share of left choices and the pooled two-proportion
        z test.
    choice_change, choice_p : change of the mean residual y - rate_g of chose_generated
        on generated trials (rate_g the generator's raw rate, so that a different mix
        of generators in the two halves is no drift) and its z test with Bernoulli
        variances sum rate_g (1 - rate_g) / n_half^2.
    flagged : either p below alpha / (annotators judged) (Bonferroni).

    Pooled, over the relative position x = t / (w - 1) in [0, 1] of the t-th of w
    judgments of a session: the OLS slope of y on x with its CGM two-way standard
    error and normal p-value, for chose_left (`slope_left`) and for the residual of
    chose_generated (`slope_choice`); a slope is the change from session start to end.
    """

    left_early: np.ndarray
    left_late: np.ndarray
    left_p: np.ndarray
    choice_change: np.ndarray
    choice_p: np.ndarray
    flagged: np.ndarray
    slope_left: float
    slope_left_se: float
    slope_left_p: float
    slope_choice: float
    slope_choice_se: float
    slope_choice_p: float


def _slopes(x: np.ndarray, ys: list[np.ndarray], masks: list[np.ndarray], item, annotator) -> list[tuple]:
    # OLS slope of each y (given on its mask's rows) on x, with influence values
    # psi_j = (x_j - xbar) * residual_j / Sxx (zero outside the mask), so that one
    # CGM call gives every standard error.
    betas, psis = [], []
    for y, mask in zip(ys, masks):
        psi = np.zeros(len(x))
        beta = np.nan
        if mask.sum() >= 3:
            dx = x[mask] - x[mask].mean()
            sxx = float(dx @ dx)
            if sxx > 0:
                beta = float(dx @ (y - y.mean())) / sxx
                psi[mask] = dx * (y - y.mean() - beta * dx) / sxx
        betas.append(beta)
        psis.append(psi)
    variance = cluster_variance(np.stack(psis), item, annotator).two_way[:, 0] if len(x) else np.full(len(ys), np.nan)
    out = []
    for beta, v in zip(betas, variance):
        se = float(np.sqrt(max(v, 0.0))) if np.isfinite(beta) else np.nan
        p = float(2 * stats.norm.sf(abs(beta / se))) if se > 0 else np.nan
        out.append((beta, se, p))
    return out


def session_drift(judgments: Judgments, *, keep: np.ndarray | None = None, alpha: float = 0.05) -> Drift:
    """Drift of side and of preference over sessions (see `Drift` for the statistics)."""
    mask = _mask(judgments, keep)
    index = np.flatnonzero(mask)
    annotator = judgments.annotator[index]
    index = index[np.lexsort((judgments.order[index], annotator))]
    annotator = judgments.annotator[index]
    n_annotators = judgments.n_annotators
    workload = np.bincount(annotator, minlength=n_annotators)
    starts = np.cumsum(workload) - workload
    position = np.arange(len(index)) - starts[annotator]
    late = position >= workload[annotator] / 2
    relative = position / np.maximum(workload[annotator] - 1, 1)

    left = judgments.chose_left[index]
    early_n = np.bincount(annotator[~late], minlength=n_annotators)
    late_n = np.bincount(annotator[late], minlength=n_annotators)
    early_left = np.bincount(annotator[~late], weights=left[~late], minlength=n_annotators)
    late_left = np.bincount(annotator[late], weights=left[late], minlength=n_annotators)
    _, left_p = two_proportion_test(early_left, early_n, late_left, late_n)

    generated = judgments.kind[index] == GENERATED
    g = judgments.generator[index][generated]
    y = judgments.chose_generated[index][generated].astype(float)
    a = annotator[generated]
    half = late[generated]
    n_g = np.bincount(g, minlength=judgments.n_generators)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_g = np.bincount(g, weights=y, minlength=judgments.n_generators) / n_g
        residual = y - rate_g[g]
        variance = rate_g[g] * (1 - rate_g[g])
        means, variances = [], []
        for part in (~half, half):
            count = np.bincount(a[part], minlength=n_annotators)
            means.append(np.bincount(a[part], weights=residual[part], minlength=n_annotators) / count)
            variances.append(np.bincount(a[part], weights=variance[part], minlength=n_annotators) / count**2)
        change = means[1] - means[0]
        z = change / np.sqrt(variances[0] + variances[1])
    choice_p = np.where(np.isfinite(z), 2 * stats.norm.sf(np.abs(z)), np.nan)

    judged = max(1, int((workload > 0).sum()))
    flagged = (left_p < alpha / judged) | (choice_p < alpha / judged)
    items = judgments.item[index]
    slope_left, slope_choice = _slopes(
        relative, [left.astype(float), residual], [np.ones(len(index), bool), generated], items, annotator)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Drift(early_left / early_n, late_left / late_n, left_p, change, choice_p, flagged,
                     *slope_left, *slope_choice)
