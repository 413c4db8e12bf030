"""Alignment of human preference rates with automatic metrics across generators.

Rank correlations, because a metric need only order generators as people do, not be
linear in the rate. A metric where lower is better (FID, validation loss) aligns
with a negative correlation.

Two sources of uncertainty, two intervals:
- ``judgment``: the rates are re-estimated on each two-way bootstrap resample of the
  judgments (`RateTable.replicates`); the metric values are fixed. How sure the
  human ranking of *these* generators is.
- ``low``/``high``: in addition, the generators themselves are resampled with
  replacement (a pairs bootstrap; Efron & Tibshirani (1993), Section 7.3), for how
  the correlation would hold over other generators like these. With few generators
  this interval is wide, as it should be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .bootstrap import percentile_interval
from .rates import RateTable


def spearman_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair: Pearson's correlation of average ranks.

    rho = cov(rank x, rank y) / (sd(rank x) sd(rank y)), ties given their average
    rank (Kendall, M. G. (1970). Rank Correlation Methods, 4th ed., Ch. 3); equals
    ``scipy.stats.spearmanr``. X, Y: (B, n); NaN where a row is constant.
    """
    rx = stats.rankdata(np.atleast_2d(X), axis=1)
    ry = stats.rankdata(np.atleast_2d(Y), axis=1)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))


def kendall_rows(X: np.ndarray, Y: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Kendall's tau-b of each row pair.

    tau_b = sum_{i<j} sgn(x_i - x_j) sgn(y_i - y_j) / sqrt((n0 - n1)(n0 - n2)), with
    n0 = n(n-1)/2 pairs and n1, n2 the pairs tied in x and in y (Kendall, M. G. (1945).
    The treatment of ties in ranking problems. Biometrika 33, 239-251); equals
    ``scipy.stats.kendalltau`` (variant "b"). X, Y: (B, n).
    """
    X, Y = np.atleast_2d(X), np.atleast_2d(Y)
    Y = np.broadcast_to(Y, X.shape)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], chunk):
        x, y = X[start:start + chunk], Y[start:start + chunk]
        sx = np.sign(x[:, :, None] - x[:, None, :])
        sy = np.sign(y[:, :, None] - y[:, None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + chunk] = (sx * sy).sum(axis=(1, 2)) / np.sqrt(
                np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
    return out


@dataclass(frozen=True)
class Alignment:
    """Rank correlation of the preference rate with one metric.

    n : generators with a value of the metric.
    spearman, kendall : point estimates; *_p their scipy p-values (no clustering).
    *_low, *_high : percentile interval resampling generators and judgments.
    *_judgment_low, *_judgment_high : resampling judgments only (module docstring).
    """

    metric: str
    n: int
    spearman: float
    spearman_p: float
    spearman_low: float
    spearman_high: float
    spearman_judgment_low: float
    spearman_judgment_high: float
    kendall: float
    kendall_p: float
    kendall_low: float
    kendall_high: float
    kendall_judgment_low: float
    kendall_judgment_high: float


def metric_alignment(
    rates: RateTable,
    metrics: Mapping[str, Sequence[float]],
    *,
    n_boot: int | None = None,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Alignment]:
    """Spearman and Kendall correlation of `rates.rate` with each metric.

    Parameters
    ----------
    rates : per-generator rates with their bootstrap replicates.
    metrics : metric name -> one value per generator of `rates` (NaN where missing).
    n_boot : resamples (at most the number of replicates in `rates`; default all).

    Returns
    -------
    metric name -> Alignment (NaN throughout where fewer than 3 generators have values,
    or where the metric or the rates are the same for all of them: no rank correlation
    is defined there, and no interval is shown for it).
    """
    replicates = rates.replicates.astype(np.float64)
    n_boot = len(replicates) if n_boot is None else min(n_boot, len(replicates))
    replicates = replicates[:n_boot]
    rng = np.random.default_rng(seed)
    results = {}
    for name, values in metrics.items():
        values = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(values) & np.isfinite(rates.rate)
        n = int(ok.sum())
        if n < 3:
            results[name] = Alignment(name, n, *([np.nan] * 12))
            continue
        x, y = rates.rate[ok], values[ok]
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            results[name] = Alignment(name, n, *([np.nan] * 12))
            continue
        rep = replicates[:, ok]
        pick = rng.integers(0, n, size=(n_boot, n))
        both_x = np.take_along_axis(rep, pick, axis=1)
        both_y = y[pick]
        fields = []
        for rows, point in ((spearman_rows, stats.spearmanr(x, y)), (kendall_rows, stats.kendalltau(x, y))):
            judgment = percentile_interval(rows(rep, y[None]), level)
            combined = percentile_interval(rows(both_x, both_y), level)
            fields += [float(point.statistic), float(point.pvalue), float(combined[0]), float(combined[1]),
                       float(judgment[0]), float(judgment[1])]
        results[name] = Alignment(name, n, *fields)
    return results
