"""Cross-check: a mixed-effects logistic model, marginalised before it is read as a rate.

    logit P(chose generated) = mu_g + beta * s + u_item + v_annotator,
    s = +1/2 if the generated image is on the left, -1/2 if on the right,
    u ~ N(0, sigma_item^2), v ~ N(0, sigma_annotator^2), crossed.

The intercept mu_g is a *conditional* quantity (a typical prompt judged by a typical
annotator); expit(mu_g) lies further from 0.5 than the rate a study measures. The
model's rate is the position-balanced marginal

    rate_g = 1/2 sum_{s = +-1/2} E[ expit(mu_g + beta s + sigma Z) ],
    sigma^2 = sigma_item^2 + sigma_annotator^2

(`marginal.marginal_rate`). Fitted by statsmodels' variational Bayes
``BinomialBayesMixedGLM.fit_vb`` (Blei, D. M., Kucukelbir, A. & McAuliffe, J. D.
(2017). Variational inference: a review for statisticians. JASA 112, 859-877); the
standard deviations are exp of the posterior means of their logs, a point summary.
A check of the main estimate, not a replacement: it trusts the logistic-normal form,
which the bootstrap does not need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from .judgments import GENERATED, Judgments, compact
from .marginal import marginal_rate


@dataclass(frozen=True, eq=False)
class MixedModelRates:
    """intercept : (G,) mu_g; side : beta; item_sd, annotator_sd : sigmas;
    conditional_rate : expit(mu_g); rate : the marginalised rate (module docstring)."""

    labels: tuple
    intercept: np.ndarray
    side: float
    item_sd: float
    annotator_sd: float
    conditional_rate: np.ndarray
    rate: np.ndarray


def mixed_model_rates(judgments: Judgments, *, keep: np.ndarray | None = None) -> MixedModelRates:
    """Fit the crossed random-effects logistic model and marginalise its rates."""
    # Imported here: statsmodels brings pandas, seconds of import time.
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    mask = judgments.kind == GENERATED
    if keep is not None:
        mask &= np.asarray(keep, bool)
    n_generators = judgments.n_generators
    generator = judgments.generator[mask]
    side = np.where(judgments.generated_left[mask], 0.5, -0.5)
    item, n_items = compact(judgments.item[mask])
    annotator, n_annotators = compact(judgments.annotator[mask])
    n = len(generator)
    exog = np.column_stack([np.eye(n_generators)[generator], side])
    rows = np.arange(n)
    random = sp.hstack([
        sp.csr_matrix((np.ones(n), (rows, item)), shape=(n, n_items)),
        sp.csr_matrix((np.ones(n), (rows, annotator)), shape=(n, n_annotators)),
    ]).tocsr()
    ident = np.r_[np.zeros(n_items, int), np.ones(n_annotators, int)]
    model = BinomialBayesMixedGLM(judgments.chose_generated[mask].astype(float), exog, random, ident)
    result = model.fit_vb()
    intercept, beta = result.fe_mean[:n_generators], float(result.fe_mean[n_generators])
    item_sd, annotator_sd = np.exp(result.vcp_mean)
    sigma = np.hypot(item_sd, annotator_sd)
    rate = 0.5 * (marginal_rate(intercept + beta / 2, sigma) + marginal_rate(intercept - beta / 2, sigma))
    return MixedModelRates(judgments.generator_labels, intercept, beta, float(item_sd), float(annotator_sd),
                           expit(intercept), rate)
