"""Binomial proportions that ignore clustering: the Wilson and Clopper-Pearson intervals
and exact tests.

They are reported beside the clustered intervals for comparison (and are correct for
a single annotator's own choices, where the judgments are that annotator's trials).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def z_value(level: float) -> float:
    """Two-sided standard normal quantile: ``Phi^-1((1 + level) / 2)`` (1.959964 for 0.95)."""
    return float(stats.norm.ppf((1 + level) / 2))


def wilson_interval(successes, trials, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion, elementwise.

    With p = k / n and z the two-sided normal quantile:

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
    inference. JASA 22, 209-212. Equals statsmodels' ``proportion_confint(...,
    method="wilson")`` inside [0, 1]; the bounds are clamped to [0, 1], with the lower
    exactly 0 at k = 0 and the upper exactly 1 at k = n. NaN where n = 0.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    z = z_value(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # centre - half is exactly 0 at k = 0 only in exact arithmetic: rounding leaves a
    # bound like -3e-18 that a CSV prints as such.
    return _clamp(centre - half, centre + half, k, n)


def clopper_pearson_interval(successes, trials, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson ("exact") interval of a binomial proportion, elementwise.

    With alpha = 1 - level, the bounds are Beta quantiles:

        low  = B^-1(alpha / 2; k, n - k + 1)      (0 at k = 0)
        high = B^-1(1 - alpha / 2; k + 1, n - k)  (1 at k = n)

    Clopper, C. J. and Pearson, E. S. (1934). The use of confidence or fiducial limits
    illustrated in the case of the binomial. Biometrika 26, 404-413. Equals statsmodels'
    ``proportion_confint(..., method="beta")`` and scipy's ``binomtest(k, n)
    .proportion_ci(method="exact")``. NaN where n = 0.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    alpha = 1 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        # scipy answers NaN for a Beta shape of 0 (k = 0 or k = n); _clamp sets those ends.
        low = stats.beta.ppf(alpha / 2, k, n - k + 1)
        high = stats.beta.isf(alpha / 2, k + 1, n - k)
    return _clamp(low, high, k, n)


def _clamp(low, high, k, n) -> tuple[np.ndarray, np.ndarray]:
    defined = n > 0
    low = np.where(defined, np.where(k == 0, 0.0, np.clip(low, 0.0, 1.0)), np.nan)
    high = np.where(defined, np.where(k == n, 1.0, np.clip(high, 0.0, 1.0)), np.nan)
    # [()] gives numpy scalars for scalar counts, as the arithmetic did before the clamp.
    return low[()], high[()]


def binomial_test_half(successes, trials) -> np.ndarray:
    """Two-sided exact binomial test of p = 0.5, elementwise.

    For the symmetric null the two-sided p-value (sum of the probabilities of all
    outcomes no more likely than the observed one) is
    ``min(1, 2 * P(X <= min(k, n - k)))`` with X ~ Binomial(n, 1/2); it equals
    ``scipy.stats.binomtest(k, n, 0.5).pvalue``. NaN where n = 0.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    tail = stats.binom.cdf(np.minimum(k, n - k), n, 0.5)
    return np.where(n > 0, np.minimum(1.0, 2 * tail), np.nan)


def two_proportion_test(k1, n1, k2, n2) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z test of p1 = p2, elementwise: ``(z, two-sided p)``.

    ``z = (p2 - p1) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with p the pooled share
    (e.g. Agresti, A. (2013). Categorical Data Analysis, 3rd ed., Section 3.1).
    NaN where either n is zero or the pooled share is 0 or 1.
    """
    k1, n1, k2, n2 = (np.asarray(a, dtype=np.float64) for a in (k1, n1, k2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (k2 / n2 - k1 / n1) / se
    z = np.where(np.isfinite(z), z, np.nan)
    return z, 2 * stats.norm.sf(np.abs(z))
