"""Simulated studies of vs-real and head-to-head judgments under Bradley-Terry, with
the truth a fit estimates (`bradley_terry`): for tests and bench/bradley_terry.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .bradley_terry import newton
from .marginal import marginal_rate


@dataclass(frozen=True, eq=False)
class SimulatedBradleyTerry:
    """A simulated study of vs-real and head-to-head judgments and the truth behind it.

    arrays : the keyword arguments of `bradley_terry` (left, right, chose_left, item,
        annotator, labels).
    theta, gamma : the conditional strengths and position effect of the simulation.
    truth_theta, truth_gamma : what the fit estimates: equal to theta and gamma without
        random effects, else the population-averaged (pseudo-true) values for this
        design (`simulate_bradley_terry`); truth_rate = expit(truth_theta).
    marginal_rate : E[expit(theta_g + sd Z)], the vs-real rate of the population.
    """

    arrays: dict
    theta: np.ndarray
    gamma: float
    truth_theta: np.ndarray
    truth_gamma: float
    truth_rate: np.ndarray
    marginal_rate: np.ndarray


def simulate_bradley_terry(
    theta,
    *,
    n_judgments: int = 4000,
    vs_real_share: float = 1.0,
    gamma: float = 0.0,
    n_items: int = 200,
    n_annotators: int = 30,
    item_sd: float = 0.0,
    annotator_sd: float = 0.0,
    seed: int = 0,
) -> SimulatedBradleyTerry:
    """Simulate vs-real and head-to-head judgments under Bradley-Terry; deterministic given `seed`.

    A share `vs_real_share` of the judgments pits a uniformly drawn generator against
    the real image, the rest two distinct generators; sides, prompts are uniform, and
    annotators have equal workloads. Each player p (real = 0, theta_0 = 0) has a
    strength per prompt and per annotator, theta_p + u_ip + v_ap with
    u ~ N(0, item_sd^2 / 2) and v ~ N(0, annotator_sd^2 / 2), and

        P(left chosen) = expit(theta_l - theta_r + gamma + u_il - u_ir + v_al - v_ar)

    so every comparison, vs-real or head-to-head, carries noise of variance
    s^2 = item_sd^2 + annotator_sd^2, and judgments sharing a prompt or an annotator
    and a player are correlated. Averaged over the effects, P = E[expit(delta + s Z)]
    (`marginal.marginal_rate`), which is not exactly logistic in delta: the fit then
    estimates the pseudo-true parameters, the maximisers of the expected
    log-likelihood for this design's pair counts, computed by fitting the expected
    counts (`truth_theta`).
    """
    rng = np.random.default_rng(seed)
    theta = np.asarray(theta, dtype=float)
    G = len(theta)
    strength = np.r_[0.0, theta]
    vs_real = rng.random(n_judgments) < vs_real_share
    first = rng.integers(1, G + 1, n_judgments)
    other = rng.integers(1, G, n_judgments)
    other = np.where(vs_real, 0, other + (other >= first))  # distinct from `first`
    swap = rng.random(n_judgments) < 0.5
    lp, rp = np.where(swap, other, first), np.where(swap, first, other)
    item = rng.integers(0, n_items, n_judgments)
    annotator = np.repeat(np.arange(n_annotators), -(-n_judgments // n_annotators))[:n_judgments]
    u = rng.normal(0.0, item_sd / np.sqrt(2), (n_items, G + 1))
    v = rng.normal(0.0, annotator_sd / np.sqrt(2), (n_annotators, G + 1))
    eta = strength[lp] - strength[rp] + gamma + u[item, lp] - u[item, rp] + v[annotator, lp] - v[annotator, rp]
    chose_left = rng.random(n_judgments) < expit(eta)
    sd = float(np.hypot(item_sd, annotator_sd))
    truth_theta, truth_gamma = theta.copy(), float(gamma)
    if sd > 0:
        P = G + 1
        counts = np.bincount(lp * P + rp, minlength=P * P).astype(float)
        cells = np.flatnonzero(counts)
        cl, cr = cells // P, cells % P
        X = np.zeros((len(cells), G + 1))
        rows = np.arange(len(cells))
        X[rows[cl > 0], cl[cl > 0] - 1] = 1.0
        X[rows[cr > 0], cr[cr > 0] - 1] = -1.0
        X[:, -1] = 1.0
        expected = counts[cells] * marginal_rate(strength[cl] - strength[cr] + gamma, sd)
        beta = newton(expected[None], counts[cells][None], X)[0][0]
        truth_theta, truth_gamma = beta[:-1], float(beta[-1])
    arrays = {"left": lp - 1, "right": rp - 1, "chose_left": chose_left, "item": item, "annotator": annotator,
              "labels": tuple(range(G))}
    return SimulatedBradleyTerry(arrays, theta, float(gamma), truth_theta, truth_gamma, expit(truth_theta),
                                 marginal_rate(theta, sd))
