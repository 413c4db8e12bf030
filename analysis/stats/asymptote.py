"""Does a series reach parity? A verdict from the free-asymptote fit and two tests.

The saturating form p(x) = 0.5 - A x^(-alpha) reaches parity by construction; every
scale it extrapolates to a parity gap is conditional on the rate levelling off at 0.5.
Whether it does is asked of the free form p(x) = p_inf - A x^(-alpha) (`forms`), by
two quasi-likelihood-ratio tests with the series' dispersion (its mean design effect;
McCullagh & Nelder 1989, Section 9.2.4), each referred to chi-square with 1 df:

- below: p_inf = 0.5 (the saturating form) against a free p_inf;
- near: p_inf = 0.5 - margin (the free form with its asymptote held there) against a
  free p_inf.

The dispersion is the one of this contrast: judgments of one prompt or one annotator
are correlated across the generators of a series, which inflates the spread of every
rate (the design effect) but much less the spread of a curve's shape. With H the
expected information of the free fit (`fits.identified`) and B the two-way
cluster-robust covariance of its score (Cameron, Gelbach & Miller 2011, over
prompts, annotators and their intersections, with their G / (G - 1) factors), the
quasi-likelihood ratio of one restriction on the asymptote's parameter q is
asymptotically c chi-square(1) with

    c = [H^-1 B H^-1]_qq / [H^-1]_qq

(the robust variance of q over its model-based one; e.g. Rotnitzky, A. & Jewell,
N. P. (1990). Hypothesis testing of regression parameters in semiparametric
generalized linear models for cluster correlated data. Biometrika 77, 485-497), taken
at least 1. Dividing by the series' mean design effect instead over-corrects several
fold where prompts vary a lot: the test then almost never rejects (bench/parity_verdict.py).

The verdict, at level `alpha`:

- ``stays_below_parity``: the test "below" rejects and the fitted p_inf < 0.5;
- ``reaches_parity``: the fitted p_inf > 0.5 and "below" rejects (the curve heads past
  parity), or the fitted p_inf > 0.5 - margin and "near" rejects (an asymptote at
  0.5 - margin or lower is ruled out);
- ``undetermined``: otherwise, or where the free form is not fitted or not identified
  (`fits.FIT_FLAGS`).

How many judgments would tell an asymptote of 0.5 - margin from parity: the curve of
the free form with p_inf held at 0.5 - margin, fitted to the data, gives expected wins
n_k p(x_k) on the same generators; the saturating form's quasi-deviance from them is
the noncentrality lambda of the test "below" at the present judgments (the free form
fits them exactly), and it grows in proportion to the judgments. The judgments needed
for power `power` are N lambda* / lambda, where the noncentral chi-square with 1 df and
noncentrality lambda* exceeds the level-`alpha` critical value with probability
`power` (the expected-data method: Self, S. G., Mauritsen, R. H. & Ohara, J. (1992).
Power calculations for likelihood ratio tests in generalized linear models.
Biometrics 48, 31-39). The design (prompts and annotators per judgment, the spread of
judgments over the generators) is held as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .fits import CurveFit, minimise_deviance
from .forms import FORMS
from .series import SeriesCells

VERDICTS = {
    "reaches_parity": "reaches parity",
    "stays_below_parity": "stays below parity",
    "undetermined": "undetermined at this budget",
}


@dataclass(frozen=True)
class Verdict:
    """Whether a series reaches parity (module docstring).

    verdict : a key of `VERDICTS`; reason : why, in words.
    p_inf : the free form's asymptote (NaN where it is not fitted).
    p_below, p_near : p-values of the tests "below" and "near" (NaN where not run).
    margin, alpha, power : the asymptote 0.5 - margin told from parity, the level of the
        tests and the power of the judgments needed.
    judgments : judgments in the series now; judgments_needed : for that power (NaN
        where the free form cannot be fitted, inf where no number of judgments on these
        generators would do).
    """

    verdict: str
    reason: str
    p_inf: float
    p_below: float
    p_near: float
    margin: float
    alpha: float
    power: float
    judgments: int
    judgments_needed: float


class _HeldAsymptote:
    """The free form with p_inf held fixed: internal parameters (a, alpha) only."""

    def __init__(self, p_inf: float):
        self.q = math.log(p_inf / (1 - p_inf))

    def predict(self, theta: np.ndarray, logx: np.ndarray):
        theta = np.atleast_2d(theta)
        full = np.column_stack([theta, np.full(len(theta), self.q)])
        p, jac = FORMS["free"].predict(full, logx)
        return p, jac[:, :, :2]


def asymptote_dispersion(free: CurveFit, cells: SeriesCells, x) -> float:
    """c of the module docstring for the free fit of `cells`' generators at scales x;
    NaN where the fit is flagged or there are fewer than two prompts or annotators."""
    if free.flags or free.form != "free":
        return np.nan
    n_items, n_annotators = len(np.unique(cells.item)), len(np.unique(cells.annotator))
    if min(n_items, n_annotators) < 2:
        return np.nan
    _, totals = cells.per_generator()
    logx = np.log(np.asarray(x, dtype=float)).reshape(-1, 1) - free.log_ref
    p, jac = FORMS["free"].predict(free.theta[None], logx)
    p, jac = p[0], jac[0]
    information = jac.T @ ((totals / (p * (1 - p)))[:, None] * jac)
    g = cells.generator
    score = ((cells.wins - cells.totals * p[g]) / (p[g] * (1 - p[g])))[:, None] * jac[g]

    def meat(level: np.ndarray) -> np.ndarray:
        _, code = np.unique(level, return_inverse=True)
        sums = np.zeros((code.max() + 1, score.shape[1]))
        np.add.at(sums, code, score)
        return sums.T @ sums

    pair = cells.item * (int(cells.annotator.max()) + 1) + cells.annotator
    meat_robust = (n_items / (n_items - 1) * meat(cells.item) + n_annotators / (n_annotators - 1)
                   * meat(cells.annotator) - meat(pair))
    try:
        inverse = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return np.nan
    robust = inverse @ meat_robust @ inverse
    return float(max(1.0, robust[2, 2] / inverse[2, 2]))


def noncentrality_for_power(alpha: float, power: float, df: int = 1) -> float:
    """lambda* with P(chi2_df(lambda*) > chi2_df critical value at alpha) = power."""
    critical = stats.chi2.isf(alpha, df)
    return float(optimize.brentq(lambda lam: stats.ncx2.sf(critical, df, lam) - power, 1e-9, 1e4))


def parity_verdict(
    x,
    wins,
    totals,
    saturating: CurveFit | None,
    free,
    *,
    dispersion: float = 1.0,
    margin: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Verdict:
    """The verdict of a series (module docstring).

    x, wins, totals : (G,) scale values and each generator's wins and judgments.
    saturating, free : the series' fits (`fits.fit_parity_curve`); `free` may be a
        `fits.NotFitted` or None.
    dispersion : the series' design effect (at least 1).
    """
    x = np.asarray(x, dtype=float)
    wins, totals = np.asarray(wins, dtype=float), np.asarray(totals, dtype=float)
    n = int(totals.sum())
    held = _HeldAsymptote(0.5 - margin)
    starts = FORMS["saturating"].starts()
    enough = len(np.unique(x)) >= FORMS["free"].min_points
    needed = _judgments_needed(x, wins, totals, held, starts, dispersion, alpha, power) if enough else np.nan

    def verdict(name: str, reason: str, p_inf=np.nan, p_below=np.nan, p_near=np.nan) -> Verdict:
        return Verdict(name, reason, float(p_inf), float(p_below), float(p_near), margin, alpha, power, n,
                       float(needed))

    if not isinstance(free, CurveFit) or saturating is None:
        why = getattr(free, "message", None) or "the free-asymptote form could not be fitted"
        return verdict("undetermined", f"No asymptote to test: {why}.")
    if "not_identified" in free.flags:
        return verdict("undetermined", "The free-asymptote form is not identified on these generators "
                       "(its asymptote runs off to a boundary): they sit where the curve is still close to a "
                       "straight line in log x.", free.params["p_inf"])
    p_inf = free.params["p_inf"]
    below = max(0.0, 2 * (saturating.objective - free.objective)) / dispersion
    _, near_objective = minimise_deviance(held, x, wins, totals, starts)
    near = max(0.0, 2 * (near_objective - free.objective)) / dispersion
    p_below, p_near = float(stats.chi2.sf(below, 1)), float(stats.chi2.sf(near, 1))
    args = (p_inf, p_below, p_near)
    if p_below < alpha and p_inf < 0.5:
        return verdict("stays_below_parity", f"The asymptote p_inf = {p_inf:.3f} is below 0.5 "
                       f"(quasi-likelihood ratio p = {p_below:.2g}).", *args)
    if p_below < alpha and p_inf > 0.5:
        return verdict("reaches_parity", f"The asymptote p_inf = {p_inf:.3f} is above 0.5 "
                       f"(p = {p_below:.2g}): the curve heads past parity.", *args)
    if p_inf > 0.5 - margin and p_near < alpha:
        return verdict("reaches_parity", f"An asymptote of {0.5 - margin:g} or lower is ruled out "
                       f"(p = {p_near:.2g}), and p_inf = 0.5 is not (p = {p_below:.2g}).", *args)
    return verdict("undetermined", f"Neither parity (p = {p_below:.2g}) nor an asymptote of "
                   f"{0.5 - margin:g} (p = {p_near:.2g}) is ruled out.", *args)


def _judgments_needed(x, wins, totals, held, starts, dispersion, alpha, power) -> float:
    theta, _ = minimise_deviance(held, x, wins, totals, starts)
    logx = np.log(x).reshape(-1, 1)
    p, _ = held.predict(theta, logx - logx.mean(axis=0))
    expected = totals * p[0]
    _, deviance = minimise_deviance(FORMS["saturating"], x, expected, totals, starts)
    lam = 2 * max(deviance, 0.0) / dispersion
    if not lam > 0:
        return math.inf
    return float(math.ceil(totals.sum() * noncentrality_for_power(alpha, power) / lam))
