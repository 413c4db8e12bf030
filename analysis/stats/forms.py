"""Scaling-law forms: a prediction and its Jacobian, over a batch of parameter vectors.

Every form is a sum of power-law terms c_i * x_i^(-e_i), written on centred logs
l = log x - log x_ref so that fits are well conditioned:

    c * x^(-e) = exp(a - e * l),   a = log c - e * log x_ref

The fitted (internal) parameters are these `a` and exponents; `natural` turns them
into the coefficients of the formula in the original units of x.

- ``saturating``: p(x) = 0.5 - A x^(-alpha), approaching parity.
- ``free``: p(x) = p_inf - A x^(-alpha), a free asymptote, fitted as its logit
  q = log(p_inf / (1 - p_inf)) so that it stays a rate: unbounded, a far-off
  asymptote runs away (p_inf of 26 with a vanishing exponent) instead of staying
  undetermined inside (0, 1).
- ``joint_gap``: p(N, D) = 0.5 - A N^(-alpha) - B D^(-beta), i.e. the parity gap
  gap(N, D) = A / N^alpha + B / D^beta.
- ``loss``: L(N, D) = E + A N^(-alpha) + B D^(-beta) (Hoffmann, J. et al. (2022).
  Training compute-optimal large language models, eq. 2), with E = exp(e).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np


@dataclass(frozen=True)
class Form:
    """A curve form (module docstring).

    name : one of FORMS.
    internal : names of the fitted parameters (``a`` terms are log-coefficients on
        centred logs, ``e`` is log E, ``q`` the logit of the asymptote p_inf).
    natural : names of the reported parameters.
    axes : number of scale axes (columns of x).
    min_points : distinct scale values (rows of x) below which `fits.fit_parity_curve`
        does not fit the form: its parameters are not identified there.
    label : the form's name in a sentence.
    """

    name: str
    internal: tuple[str, ...]
    natural: tuple[str, ...]
    axes: int
    min_points: int = 0
    label: str = ""

    def predict(self, theta: np.ndarray, logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (B, n) and Jacobian (B, n, k) at parameters theta (B, k).

        logx : (n, axes) centred logs of the scale values.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            return self._predict(np.atleast_2d(theta), logx)

    def _predict(self, theta: np.ndarray, logx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = logx.shape[0]
        jac = np.zeros((theta.shape[0], n, theta.shape[1]))
        if self.name in ("saturating", "free", "joint_gap"):
            if self.name == "free":
                p_inf = 1.0 / (1.0 + np.exp(-theta[:, 2:3]))
                base = np.repeat(p_inf, n, axis=1)
                jac[:, :, 2] = p_inf * (1.0 - p_inf)
            else:
                base = np.full((theta.shape[0], n), 0.5)
            pred = base
            for axis, col in enumerate(range(0, 2 * self.axes, 2)):
                term = np.exp(theta[:, col, None] - theta[:, col + 1, None] * logx[None, :, axis])
                pred = pred - term
                jac[:, :, col] = -term
                jac[:, :, col + 1] = term * logx[None, :, axis]
            return pred, jac
        # loss: exp(e) + exp(a - alpha lN) + exp(b - beta lD)
        floor = np.exp(theta[:, 0, None]) * np.ones((1, n))
        pred = floor.copy()
        jac[:, :, 0] = floor
        for axis, col in enumerate((1, 3)):
            term = np.exp(theta[:, col, None] - theta[:, col + 1, None] * logx[None, :, axis])
            pred = pred + term
            jac[:, :, col] = term
            jac[:, :, col + 1] = -term * logx[None, :, axis]
        return pred, jac

    def natural_params(self, theta: np.ndarray, log_ref: np.ndarray) -> dict[str, np.ndarray]:
        """Reported parameters (dict of arrays over the batch) from internal ones."""
        theta = np.atleast_2d(theta)
        if self.name == "loss":
            return {
                "E": np.exp(theta[:, 0]),
                "A": np.exp(theta[:, 1] + theta[:, 2] * log_ref[0]), "alpha": theta[:, 2],
                "B": np.exp(theta[:, 3] + theta[:, 4] * log_ref[1]), "beta": theta[:, 4],
            }
        out = {"A": np.exp(theta[:, 0] + theta[:, 1] * log_ref[0]), "alpha": theta[:, 1]}
        if self.name == "free":
            out["p_inf"] = 1.0 / (1.0 + np.exp(-theta[:, 2]))
        if self.name == "joint_gap":
            out["B"] = np.exp(theta[:, 2] + theta[:, 3] * log_ref[1])
            out["beta"] = theta[:, 3]
        return out

    def starts(self) -> np.ndarray:
        """Default grid of internal starting points (rows).

        Parity forms: a gap at the reference scale of 0.01 to 0.4 and exponents 0.1
        to 2. Loss: the grid of Besiroglu, T. et al. (2024). Chinchilla scaling: a
        replication attempt, Section 2 (e in {-1, -0.5, ..., 1}, log A and log B in
        {0, 5, ..., 25}, alpha and beta in {0, 0.5, ..., 2}); its log-coefficients
        refer to x itself and are shifted to centred logs by `fits.fit_loss_curve`.
        """
        gaps = np.log([0.01, 0.03, 0.1, 0.2, 0.4])
        exponents = [0.1, 0.3, 0.6, 1.0, 2.0]
        if self.name == "saturating":
            grid = product(gaps, exponents)
        elif self.name == "free":
            grid = product(gaps, exponents, np.log(np.array([0.3, 0.4, 0.45, 0.5, 0.55]) / np.array([0.7, 0.6, 0.55, 0.5, 0.45])))
        elif self.name == "joint_gap":
            grid = product(gaps[1:4], [0.2, 0.5, 1.0], gaps[1:4], [0.2, 0.5, 1.0])
        else:
            grid = product(np.arange(-1, 1.01, 0.5), np.arange(0, 26, 5), np.arange(0, 2.01, 0.5),
                           np.arange(0, 26, 5), np.arange(0, 2.01, 0.5))
        return np.array(list(grid), dtype=np.float64)


# Minimum distinct scale values. Two points pin a power law exactly. With three,
# the free form also passes through every point, and its asymptote trades off against
# the exponent along a ridge: refits wander along it and the percentile interval of
# p_inf misses the truth far more often than its level says, so it needs a fourth
# point. The joint form has four parameters and needs a fifth.
FORMS = {
    "saturating": Form("saturating", ("a", "alpha"), ("A", "alpha"), 1, 2, "saturating"),
    "free": Form("free", ("a", "alpha", "q"), ("A", "alpha", "p_inf"), 1, 4, "free-asymptote"),
    "joint_gap": Form("joint_gap", ("a", "alpha", "b", "beta"), ("A", "alpha", "B", "beta"), 2, 5, "joint"),
    "loss": Form("loss", ("e", "a", "alpha", "b", "beta"), ("E", "A", "alpha", "B", "beta"), 2),
}
