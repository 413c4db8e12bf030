"""Scaling fits: the preference rate (or a loss) as a function of scale.

Parity curves (forms in `forms`) are fitted by binomial likelihood on the judgment
counts of each generator of a series, not by least squares on rates: a rate from 40
judgments weighs less than one from 4,000, and rates near 0 or 1 are not symmetric.
The objective is half the binomial deviance,

    f(theta) = sum_k  w_k log(w_k / (n_k p_k)) + (n_k - w_k) log((n_k - w_k) / (n_k (1 - p_k)))

(minimised where the log-likelihood sum_k w_k log p_k + (n_k - w_k) log(1 - p_k) is
maximised; McCullagh, P. & Nelder, J. A. (1989). Generalized Linear Models, 2nd ed.,
Section 4.4). Loss curves minimise the Huber loss of log residuals,

    f(theta) = sum_k  w_k Huber_delta(log Lhat_k - log L_k),   delta = 1e-3

(Hoffmann, J. et al. (2022). Training compute-optimal large language models,
Appendix D.2; replicated by Besiroglu, T. et al. (2024). Chinchilla scaling: a
replication attempt). Both run L-BFGS from a grid of starting points and keep the
best (`optimize.lbfgs`, all starts in one batch).

Uncertainty: judgments of one prompt are correlated across generators, so parity
curves are bootstrapped over whole prompts: each resample draws the prompts with
replacement, recounts every generator's wins and judgments, and refits (from the
full-data optimum). Loss curves are bootstrapped over data points. Intervals are
percentile intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .bootstrap import cluster_weights, percentile_interval
from .forms import FORMS, Form
from .judgments import GENERATED, Judgments, compact
from .optimize import lbfgs


class _Binomial:
    """Half binomial deviance of rows of counts (module docstring) with its gradient."""

    def __init__(self, form: Form, logx: np.ndarray, wins: np.ndarray, totals: np.ndarray, data_rows: np.ndarray):
        self.form, self.logx, self.data_rows = form, logx, data_rows
        self.wins, self.totals = np.atleast_2d(wins).astype(float), np.atleast_2d(totals).astype(float)
        losses = self.totals - self.wins
        with np.errstate(invalid="ignore", divide="ignore"):
            saturated = np.where(self.wins > 0, self.wins * np.log(self.wins / self.totals), 0.0) + \
                np.where(losses > 0, losses * np.log(losses / self.totals), 0.0)
        self.saturated = saturated.sum(axis=1)

    def __call__(self, theta: np.ndarray, rows: np.ndarray):
        data = self.data_rows[rows]
        w, n = self.wins[data], self.totals[data]
        p, jac = self.form.predict(theta, self.logx)
        inside = (p > 0) & (p < 1)
        safe = np.where(inside, p, 0.5)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loglik = np.where(w > 0, w * np.log(safe), 0.0) + np.where(n - w > 0, (n - w) * np.log1p(-safe), 0.0)
            value = self.saturated[data] - loglik.sum(axis=1)
            dp = -w / safe + (n - w) / (1 - safe)
        value = np.where(inside.all(axis=1), value, np.inf)
        return value, np.einsum("bn,bnk->bk", dp, jac)


class _HuberLog:
    """Weighted Huber loss of log residuals (module docstring) with its gradient."""

    def __init__(self, form: Form, logx: np.ndarray, values: np.ndarray, weights: np.ndarray, data_rows: np.ndarray,
                 delta: float):
        self.form, self.logx, self.data_rows, self.delta = form, logx, data_rows, delta
        self.log_values = np.log(np.asarray(values, dtype=float))
        self.weights = np.atleast_2d(weights).astype(float)

    def __call__(self, theta: np.ndarray, rows: np.ndarray):
        weights = self.weights[self.data_rows[rows]]
        pred, jac = self.form.predict(theta, self.logx)
        positive = pred > 0
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            r = np.log(np.where(positive, pred, 1.0)) - self.log_values[None]
            small = np.abs(r) <= self.delta
            loss = np.where(small, 0.5 * r**2, self.delta * (np.abs(r) - 0.5 * self.delta))
            value = np.where(positive.all(axis=1), (weights * loss).sum(axis=1), np.inf)
            psi = weights * np.clip(r, -self.delta, self.delta) / np.where(positive, pred, 1.0)
        return value, np.einsum("bn,bnk->bk", psi, jac)


def _best_of(objective, starts: np.ndarray) -> tuple[np.ndarray, float]:
    values, _ = objective(starts, np.arange(len(starts)))
    starts = starts[np.isfinite(values)]
    if len(starts) == 0:
        raise ValueError("no starting point gives a valid prediction at every data point")
    result = lbfgs(objective, starts)
    f = np.where(np.isfinite(result.f), result.f, np.inf)
    best = int(np.argmin(f))
    return result.x[best], float(f[best])


@dataclass(frozen=True, eq=False)
class CurveFit:
    """A fitted curve with bootstrap intervals.

    form : name of the form (`forms.FORMS`).
    params : reported parameters (natural units of x); intervals: name -> (low, high).
    objective : minimised value (half deviance for parity curves, Huber sum for loss).
    n_params, n_points : fitted parameters and data points (generators).
    aic : 2 n_params + 2 objective (parity curves; differences between forms of the
        same data are Akaike differences, the saturated log-likelihood cancelling).
    x_at_gap : target gap -> (x, low, high): the scale where 0.5 - p(x) falls to the
        target (inf where the fitted curve never gets there). Single-axis forms only.
    replicates : name -> (n_boot,) bootstrap replicates of each parameter and of
        ``x_at_gap_<target>``.
    boot_converged : share of bootstrap refits that met the convergence test.
    theta, log_ref : internal parameters and centring of log x (for `predict`).
    """

    form: str
    params: dict
    intervals: dict
    objective: float
    n_params: int
    n_points: int
    aic: float
    x_at_gap: dict
    replicates: dict
    boot_converged: float
    theta: np.ndarray
    log_ref: np.ndarray
    level: float

    def predict(self, x) -> np.ndarray:
        """The fitted curve at scale values x ((n,) or (n, axes))."""
        logx = np.log(np.asarray(x, dtype=float)).reshape(-1, FORMS[self.form].axes) - self.log_ref
        return FORMS[self.form].predict(np.atleast_2d(self.theta), logx)[0][0]


def x_at_gap(form: str, params: dict[str, np.ndarray], target: float) -> np.ndarray:
    """Scale x where the parity gap 0.5 - p(x) equals `target`.

    saturating: A x^(-alpha) = target, so x = (A / target)^(1 / alpha).
    free: 0.5 - p_inf + A x^(-alpha) = target, so x = (A / (target - 0.5 + p_inf))^(1 / alpha),
    infinite where target <= 0.5 - p_inf (the asymptote stays farther from parity).
    Infinite where alpha <= 0. Computed on logs, so extreme values overflow to inf.
    """
    log_a = np.log(np.asarray(params["A"], dtype=float))
    alpha = np.asarray(params["alpha"], dtype=float)
    room = np.full_like(alpha, target) if form == "saturating" else target - 0.5 + np.asarray(params["p_inf"])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        log_x = (log_a - np.log(np.where(room > 0, room, 1.0))) / alpha
        x = np.exp(log_x)
    return np.where((room > 0) & (alpha > 0), x, np.inf)


def _summarise(form: Form, theta: np.ndarray, objective: float, boot_theta: np.ndarray | None, boot_ok,
               log_ref: np.ndarray, n_points: int, targets, level: float, binomial: bool) -> CurveFit:
    params = {name: float(v[0]) for name, v in form.natural_params(theta, log_ref).items()}
    replicates = form.natural_params(boot_theta, log_ref) if boot_theta is not None else {}
    gaps = {}
    if form.axes == 1 and form.name != "loss":
        for target in targets:
            point = float(x_at_gap(form.name, {k: np.array([v]) for k, v in params.items()}, target)[0])
            if boot_theta is not None:
                draws = x_at_gap(form.name, replicates, target)
                replicates[f"x_at_gap_{target:g}"] = draws
                low, high = percentile_interval(draws, level)
            else:
                low = high = np.nan
            gaps[target] = (point, float(low), float(high))
    intervals = {}
    for name in form.natural:
        if boot_theta is not None:
            low, high = percentile_interval(replicates[name], level)
            intervals[name] = (float(low), float(high))
        else:
            intervals[name] = (np.nan, np.nan)
    k = len(form.internal)
    return CurveFit(
        form=form.name, params=params, intervals=intervals, objective=objective, n_params=k, n_points=n_points,
        aic=2 * k + 2 * objective if binomial else np.nan, x_at_gap=gaps, replicates=replicates,
        boot_converged=float(np.mean(boot_ok)) if boot_theta is not None else np.nan,
        theta=np.asarray(theta).reshape(-1), log_ref=log_ref, level=level,
    )


def fit_parity_curve(
    x,
    wins,
    totals,
    *,
    form: str = "saturating",
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    targets=(0.05, 0.01),
    starts: np.ndarray | None = None,
) -> CurveFit:
    """Fit a parity curve to the generators of a series by binomial likelihood.

    Parameters
    ----------
    x : (G,) scale values along one axis, or (G, 2) for ``joint_gap`` (N, D).
    wins, totals : (G, I) counts per generator and prompt (from `series_counts`), for
        the prompt bootstrap; or (G,) totals, then only with ``n_boot=0``.
    form : "saturating", "free" or "joint_gap" (`forms`).
    n_boot : prompt-bootstrap resamples, each refitted.
    targets : parity gaps for `CurveFit.x_at_gap`.
    starts : internal starting points (rows), default `Form.starts`.

    Returns
    -------
    CurveFit; formulas and references in the module docstring.
    """
    shape = FORMS[form]
    logx = np.log(np.asarray(x, dtype=float)).reshape(-1, shape.axes)
    log_ref = logx.mean(axis=0)
    logx = logx - log_ref
    wins, totals = np.asarray(wins, dtype=float), np.asarray(totals, dtype=float)
    per_prompt = wins.ndim == 2
    if not per_prompt and n_boot:
        raise ValueError("the prompt bootstrap needs counts per prompt, (G, I) arrays")
    total_wins = wins.sum(axis=1) if per_prompt else wins
    total_n = totals.sum(axis=1) if per_prompt else totals
    grid = shape.starts() if starts is None else np.atleast_2d(starts)
    objective = _Binomial(shape, logx, total_wins, total_n, np.zeros(len(grid), np.int64))
    theta, value = _best_of(objective, grid)

    boot_theta = boot_ok = None
    if n_boot:
        weights = cluster_weights(np.random.default_rng(seed), wins.shape[1], n_boot).astype(np.float64)
        # (B x I) @ (I x G): OpenBLAS is several times faster this way round.
        boot = _Binomial(shape, logx, weights.T @ wins.T, weights.T @ totals.T, np.arange(n_boot))
        result = lbfgs(boot, np.repeat(theta[None], n_boot, axis=0))
        boot_theta, boot_ok = result.x, result.converged
    return _summarise(shape, theta[None], value, boot_theta, boot_ok, log_ref, len(logx), targets, level, True)


def fit_loss_curve(
    N,
    D,
    loss,
    *,
    delta: float = 1e-3,
    starts: np.ndarray | None = None,
    n_boot: int = 0,
    level: float = 0.95,
    seed: int = 0,
) -> CurveFit:
    """Fit L(N, D) = E + A / N^alpha + B / D^beta by Huber loss on log values.

    The method of Hoffmann et al. (2022) as replicated by Besiroglu et al. (2024):
    Huber (delta = 1e-3) on log L, L-BFGS from a grid of starting points (default the
    replication's 4,500-point grid, `Form.starts`; pass a coarser grid, as rows of
    (log E, log A, alpha, log B, beta), for speed), best fit kept. The bootstrap
    resamples data points.
    """
    shape = FORMS["loss"]
    logx = np.log(np.stack([np.asarray(N, float), np.asarray(D, float)], axis=1))
    log_ref = logx.mean(axis=0)
    logx = logx - log_ref
    grid = shape.starts() if starts is None else np.atleast_2d(np.asarray(starts, dtype=float)).copy()
    grid[:, 1] -= grid[:, 2] * log_ref[0]
    grid[:, 3] -= grid[:, 4] * log_ref[1]
    n = len(logx)
    objective = _HuberLog(shape, logx, loss, np.ones((1, n)), np.zeros(len(grid), np.int64), delta)
    theta, value = _best_of(objective, grid)
    boot_theta = boot_ok = None
    if n_boot:
        weights = cluster_weights(np.random.default_rng(seed), n, n_boot).T.astype(np.float64)
        boot = _HuberLog(shape, logx, loss, weights, np.arange(n_boot), delta)
        result = lbfgs(boot, np.repeat(theta[None], n_boot, axis=0))
        boot_theta, boot_ok = result.x, result.converged
    return _summarise(shape, theta[None], value, boot_theta, boot_ok, log_ref, n, (), level, False)


def compare_forms(restricted: CurveFit, full: CurveFit, *, dispersion: float = 1.0) -> dict:
    """Likelihood-ratio and Akaike comparison of nested parity curves on the same data.

    lr = 2 (f_restricted - f_full) / dispersion, referred to chi-square with
    df = k_full - k_restricted (Wilks, S. S. (1938). Ann. Math. Statist. 9, 60-62);
    e.g. saturating (p_inf = 0.5) inside free. Judgments of one prompt are
    correlated, so the binomial likelihood overstates the evidence: passing the
    series' design effect as `dispersion` gives the quasi-likelihood ratio
    (McCullagh & Nelder 1989, Section 9.2.4). delta_aic = aic_restricted - aic_full
    (positive favours the full form).
    """
    df = full.n_params - restricted.n_params
    lr = max(0.0, 2 * (restricted.objective - full.objective)) / dispersion
    return {"lr": lr, "df": df, "p_value": float(stats.chi2.sf(lr, df)), "delta_aic": restricted.aic - full.aic}


def series_counts(judgments: Judgments, generators, *, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Wins and judgments of each generator (codes, in the order given) per prompt.

    Returns ``(wins, totals)``, each (G, I) over the I prompts judged for any of the
    generators; the input of `fit_parity_curve` and its prompt bootstrap.
    """
    generators = np.asarray(generators, dtype=np.int64)
    mask = (judgments.kind == GENERATED) & np.isin(judgments.generator, generators)
    if keep is not None:
        mask &= np.asarray(keep, bool)
    position = np.full(max(judgments.n_generators, 1), -1)
    position[generators] = np.arange(len(generators))
    row = position[judgments.generator[mask]]
    item, n_items = compact(judgments.item[mask])
    flat = row * n_items + item
    size = len(generators) * n_items
    wins = np.bincount(flat, weights=judgments.chose_generated[mask], minlength=size).reshape(len(generators), n_items)
    totals = np.bincount(flat, minlength=size).reshape(len(generators), n_items).astype(float)
    return wins, totals
