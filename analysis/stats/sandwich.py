"""Two-way cluster-robust (sandwich) variance of linear estimators.

For an estimator linearised as theta_hat - theta = sum_j psi_j (psi_j its influence
value), the one-way cluster-robust variance over clusters c is

    V_c = sum_c ( sum_{j in c} psi_j )^2

and the two-way variance for crossed factors (items, annotators) is

    V = V_item + V_annotator - V_item&annotator

where the last term clusters on the intersection cells. Cameron, A. C., Gelbach,
J. B. & Miller, D. L. (2011). Robust inference with multiway clustering. Journal of
Business & Economic Statistics 29(2), 238-249, eq. (2.11), without their
small-sample factors G/(G-1).

For the mean of y (OLS of y on a constant), psi_j = (y_j - ybar) / n and V equals
``statsmodels.stats.sandwich_covariance.cov_cluster_2groups(results, item,
annotator, use_correction=False)[0]``. V can be negative in small samples; callers
clip it at zero, or use `two_way_interval`, which falls back to a one-way variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ClusterVariance:
    """Per-group variance components, each shaped (n_groups,), or (m, n_groups) for m
    estimators at once.

    ``two_way = item + annotator - cell``; ``cell`` is the heteroskedasticity-robust
    (HC0) variance when every (item, annotator) pair holds at most one judgment.
    """

    two_way: np.ndarray
    item: np.ndarray
    annotator: np.ndarray
    cell: np.ndarray


def _sum_of_squares(psi: np.ndarray, cluster: np.ndarray, n_clusters: int, cluster_group: np.ndarray,
                    n_groups: int) -> np.ndarray:
    # psi summed within each cluster (a (group, level) pair), squared, added per group.
    sums = np.stack([np.bincount(cluster, weights=row, minlength=n_clusters) for row in psi])
    return np.stack([np.bincount(cluster_group, weights=row**2, minlength=n_groups) for row in sums])


def one_way_variance(psi: np.ndarray, group: np.ndarray, level: np.ndarray, n_groups: int) -> np.ndarray:
    """One-way cluster-robust variance per group, V_c = sum_c (sum_{j in c} psi_j)^2,
    clustering on `level` (non-negative codes); psi (m, n) gives (m, n_groups)."""
    psi = np.atleast_2d(np.asarray(psi, dtype=np.float64))
    if psi.shape[1] == 0:
        return np.zeros((len(psi), n_groups))
    return _one_way(psi, np.asarray(group, np.int64), np.asarray(level, np.int64), n_groups)


def _one_way(psi: np.ndarray, group: np.ndarray, level: np.ndarray, n_groups: int) -> np.ndarray:
    span = int(level.max()) + 1
    clusters = np.arange(n_groups * span)
    return _sum_of_squares(psi, group * span + level, n_groups * span, clusters // span, n_groups)


def _distinct(item: np.ndarray, annotator: np.ndarray) -> bool:
    # Whether no (item, annotator) pair repeats: a bitmap where it fits, else a sort.
    span = int(annotator.max()) + 1
    size = (int(item.max()) + 1) * span
    key = item * span + annotator
    if size <= 64 * 2**20:
        seen = np.zeros(size, dtype=bool)
        seen[key] = True
        return int(np.count_nonzero(seen)) == len(key)
    ordered = np.sort(key)
    return bool((ordered[1:] != ordered[:-1]).all())


def _cells(psi: np.ndarray, group: np.ndarray, item: np.ndarray, annotator: np.ndarray, n_groups: int) -> np.ndarray:
    if _distinct(item, annotator):
        # One judgment per cell, as the assignment engine guarantees: HC0.
        return np.stack([np.bincount(group, weights=row**2, minlength=n_groups) for row in psi])
    key = (group * (int(item.max()) + 1) + item) * (int(annotator.max()) + 1) + annotator
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    cell = np.empty(len(key), dtype=np.int64)
    cell[order] = np.cumsum(starts) - 1
    return _sum_of_squares(psi, cell, int(starts.sum()), group[order][starts], n_groups)


def cluster_variance(
    psi: np.ndarray,
    item: np.ndarray,
    annotator: np.ndarray,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> ClusterVariance:
    """Cameron-Gelbach-Miller two-way cluster-robust variance, per group.

    Parameters
    ----------
    psi : (n,) influence values of each judgment on its group's estimator, or (m, n)
        for m estimators over the same judgments.
    item, annotator : (n,) cluster codes (non-negative integers).
    group : (n,) codes of independent estimators (e.g. generators); all zero if None.

    Returns
    -------
    ClusterVariance with the two-way variance and its one-way parts, shaped like psi
    without its last axis, with n_groups in its place (module docstring).
    """
    psi = np.asarray(psi, dtype=np.float64)
    single = psi.ndim == 1
    psi = np.atleast_2d(psi)
    n = psi.shape[1]
    group = np.zeros(n, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    annotator = np.asarray(annotator, dtype=np.int64)
    if n == 0:
        parts = [np.zeros((len(psi), n_groups))] * 4
    else:
        v_item = _one_way(psi, group, item, n_groups)
        v_annotator = _one_way(psi, group, annotator, n_groups)
        v_cell = _cells(psi, group, item, annotator, n_groups)
        parts = [v_item + v_annotator - v_cell, v_item, v_annotator, v_cell]
    return ClusterVariance(*(part[0] if single else part for part in parts))


@dataclass(frozen=True)
class TwoWayInterval:
    """Normal-theory interval from the two-way variance, per group (arrays).

    variance : c_I V_item + c_A V_annotator - V_cell with c = G / (G - 1) for G the
        distinct prompts or annotators (CGM's small-sample factors); where it is not
        positive, the larger of the corrected one-way variances.
    se, low, high : sqrt(variance) and estimate -/+ q se, q the Student t quantile
        with min(prompts, annotators) - 1 degrees of freedom (`df`).
    fallback : True where the two-way variance was not positive and the one-way
        one was used. Every part is NaN with fewer than two prompts or annotators.
    """

    variance: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray
    df: np.ndarray
    fallback: np.ndarray

    @property
    def half_width(self) -> np.ndarray:
        return (self.high - self.low) / 2


def two_way_interval(
    estimate, var_item, var_annotator, var_cell, n_items, n_annotators, level: float = 0.95
) -> TwoWayInterval:
    """Interval of an estimator from its CGM variance parts (`cluster_variance`).

    The pigeonhole bootstrap counts the judgment-level variance three times (once in
    each one-way part and once in the product of the weights, Owen 2007), the CGM
    combination once, which is what makes it the right width where judgment noise
    dominates (real against real). With few annotators CGM runs a little narrow, as
    one-way cluster-robust variances do; the G / (G - 1) factors and the t quantile
    on the smaller factor's clusters (Cameron, Gelbach & Miller 2011, Section 2.3;
    Cameron & Miller 2015, Section VI) bring it back.
    """
    estimate, var_item, var_annotator, var_cell = (
        np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (estimate, var_item, var_annotator, var_cell))
    n_items, n_annotators = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (n_items, n_annotators))
    with np.errstate(invalid="ignore", divide="ignore"):
        c_item = np.where(n_items > 1, n_items / (n_items - 1), np.nan)
        c_annotator = np.where(n_annotators > 1, n_annotators / (n_annotators - 1), np.nan)
        one_way = np.maximum(c_item * var_item, c_annotator * var_annotator)
        two_way = c_item * var_item + c_annotator * var_annotator - var_cell
        fallback = ~(two_way > 0) & (one_way > 0)
        variance = np.where(fallback, one_way, np.clip(two_way, 0, None))
        df = np.minimum(n_items, n_annotators) - 1
        q = np.where(df >= 1, stats.t.ppf((1 + level) / 2, np.maximum(df, 1)), np.nan)
        se = np.sqrt(variance)
    return TwoWayInterval(variance, se, estimate - q * se, estimate + q * se, df, fallback)
