"""From conditional (logit-scale) effects to the marginal rate a study measures.

In a logistic model with random prompt and annotator effects,
logit P(chose generated) = mu + u_item + v_annotator, the intercept mu describes a
typical prompt judged by a typical annotator. The preference rate of the study is the
population average of the probability,

    p = E[ expit(mu + s Z) ],  Z ~ N(0, 1),  s^2 = var(u) + var(v)

which is closer to 0.5 than expit(mu) whenever s > 0 (the attenuation of marginal
effects; Zeger, S. L., Liang, K.-Y. & Albert, P. S. (1988). Models for longitudinal
data: a generalized estimating equation approach. Biometrics 44, 1049-1060). The
integral is computed by Gauss-Hermite quadrature (Abramowitz & Stegun 25.4.46).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize
from scipy.special import expit

_NODES, _WEIGHTS = hermegauss(80)
_WEIGHTS = _WEIGHTS / np.sqrt(2 * np.pi)  # weights of E[f(Z)] for Z ~ N(0, 1)


def marginal_rate(intercept, sd) -> np.ndarray:
    """``E[expit(intercept + sd * Z)]`` for Z standard normal, elementwise.

    80-node Gauss-Hermite quadrature (probabilists' form): exact to ~1e-12 for the
    standard deviations met on the logit scale (below 5).
    """
    intercept = np.asarray(intercept, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    values = expit(intercept[..., None] + sd[..., None] * _NODES)
    return values @ _WEIGHTS


def intercept_for_rate(rate: float, sd: float) -> float:
    """The intercept mu with ``marginal_rate(mu, sd) == rate`` (Brent's method)."""
    if not 0 < rate < 1:
        raise ValueError("rate must lie strictly between 0 and 1")
    return float(optimize.brentq(lambda mu: marginal_rate(mu, sd) - rate, -60.0, 60.0, xtol=1e-14))
