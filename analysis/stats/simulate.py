"""Simulated studies with a known truth, for tests, benchmarks and the demo.

Each judgment chooses the probe image (the generated one on generated trials) with

    logit P = eta + lambda_a(t) * s,   s = +1 if the probe is on the left, else -1

    eta = mu_g + u_item + v_annotator       generated trial
    eta = 0                                 the generator's samples are the references
                                            themselves, a calibration trial, or a
                                            random clicker (any trial)
    eta = logit(1 - catch_accuracy)         catch trial (the probe is the corrupted image)

with u ~ N(0, item_sd^2), v ~ N(0, annotator_sd^2) and a left bias
lambda_a(t) = lambda_a + drift_a * t / (w_a - 1), lambda_a ~ N(0, side_bias_sd^2)
plus any fixed `left_bias`, where t is the judgment's position in the annotator's
session of w_a judgments. Each annotator sees each prompt at most once (as the
assignment engine guarantees) as long as their workload allows it.

The truth of a generator is its *marginal* rate under position-balanced
presentation, the quantity the preference rate estimates:

    p_g = E[ 1/2 expit(mu_g + u + v + lambda) + 1/2 expit(mu_g + u + v - lambda) ]
        = E[ expit(mu_g + s Z) ],  s^2 = item_sd^2 + annotator_sd^2 + side_bias_sd^2

(lambda is symmetric about 0), computed by Gauss-Hermite quadrature
(`marginal.marginal_rate`). `simulate_study` takes these marginal rates and solves
for mu_g. It is not expit(mu_g), which lies further from 0.5. The fixed `left_bias`,
`drift` and `clickers` settings are outside this truth: they serve quality checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, logit

from .judgments import CALIBRATION, CATCH, GENERATED, Judgments
from .marginal import intercept_for_rate


@dataclass(frozen=True, eq=False)
class SimulatedStudy:
    """A simulated study and the truth behind it.

    judgments : the simulated `Judgments` (generator labels 0 .. G-1).
    truth : (G,) marginal preference rate of each generator (module docstring).
    intercepts : (G,) logit-scale mu_g solved from the truth (0 for identical samples).
    item_effect, annotator_effect, left_bias : the drawn random effects.
    clicker : (A,) bool, the annotator answers at random and fast.
    """

    judgments: Judgments
    truth: np.ndarray
    intercepts: np.ndarray
    item_effect: np.ndarray
    annotator_effect: np.ndarray
    left_bias: np.ndarray
    clicker: np.ndarray


def _session_items(rng: np.random.Generator, workloads: np.ndarray, n_items: int) -> np.ndarray:
    # Item of the t-th judgment of each annotator: a random permutation of the items
    # per annotator, so no prompt repeats within a session of at most n_items.
    n_annotators = len(workloads)
    longest = int(workloads.max())
    rounds = -(-longest // n_items)
    keys = rng.random((n_annotators, rounds, n_items), dtype=np.float32)
    table = np.argsort(keys, axis=2).reshape(n_annotators, rounds * n_items)[:, :longest]
    annotator = np.repeat(np.arange(n_annotators), workloads)
    position = np.arange(len(annotator)) - np.repeat(np.cumsum(workloads) - workloads, workloads)
    return table[annotator, position]


def simulate_study(
    rates: Sequence[float],
    *,
    identical: Sequence[bool] | None = None,
    n_items: int = 200,
    n_annotators: int = 30,
    n_judgments: int = 2000,
    item_sd: float = 1.0,
    annotator_sd: float = 0.5,
    side_bias_sd: float = 0.0,
    left_bias: Mapping[int, float] | None = None,
    drift: Mapping[int, float] | None = None,
    clickers: Sequence[int] = (),
    catch_share: float = 0.0,
    calibration_share: float = 0.0,
    catch_accuracy: float = 0.95,
    rt_median_ms: float = 1800.0,
    clicker_rt_ms: float = 300.0,
    seed: int = 0,
) -> SimulatedStudy:
    """Simulate one study; deterministic given `seed`.

    Parameters
    ----------
    rates : marginal preference rate of each generator (the truth).
    identical : per generator, its samples are the references themselves (truth 0.5,
        the choice depends on side bias only).
    n_items, n_annotators, n_judgments : sizes; workloads are as equal as possible
        and generators and trial kinds are drawn at random per judgment.
    item_sd, annotator_sd, side_bias_sd : random-effect SDs on the logit scale.
    left_bias : fixed extra logit shift toward the left image, per annotator code.
    drift : change of an annotator's left bias from the first to the last judgment.
    clickers : annotator codes that choose at random, fast, on every trial.
    catch_share, calibration_share : shares of control trials.
    catch_accuracy : probability a careful annotator picks the uncorrupted reference.

    Returns
    -------
    SimulatedStudy (see its docstring; the truth is defined in the module docstring).
    """
    if n_judgments < n_annotators:
        raise ValueError("every annotator needs at least one judgment")
    rng = np.random.default_rng(seed)
    rates = np.asarray(rates, dtype=np.float64)
    n_generators = len(rates)
    identical = np.zeros(n_generators, bool) if identical is None else np.asarray(identical, bool)
    total_sd = float(np.sqrt(item_sd**2 + annotator_sd**2 + side_bias_sd**2))
    intercepts = np.array([0.0 if same else intercept_for_rate(r, total_sd) for r, same in zip(rates, identical)])
    truth = np.where(identical, 0.5, rates)

    workloads = np.full(n_annotators, n_judgments // n_annotators)
    workloads[: n_judgments % n_annotators] += 1
    annotator = np.repeat(np.arange(n_annotators), workloads)
    position = np.arange(n_judgments) - np.repeat(np.cumsum(workloads) - workloads, workloads)
    item = _session_items(rng, workloads, n_items)

    u = rng.normal(0.0, item_sd, n_items)
    v = rng.normal(0.0, annotator_sd, n_annotators)
    lam = rng.normal(0.0, side_bias_sd, n_annotators)
    for code, shift in (left_bias or {}).items():
        lam[code] += shift
    slope = np.zeros(n_annotators)
    for code, change in (drift or {}).items():
        slope[code] = change
    clicker = np.zeros(n_annotators, bool)
    clicker[list(clickers)] = True

    kind = rng.choice(3, size=n_judgments, p=[1 - catch_share - calibration_share, catch_share, calibration_share])
    generator = np.where(kind == GENERATED, rng.integers(0, n_generators, n_judgments), -1)
    probe_left = rng.random(n_judgments) < 0.5
    side = np.where(probe_left, 1.0, -1.0)

    g = np.maximum(generator, 0)
    eta = np.where(identical[g], 0.0, intercepts[g] + u[item] + v[annotator])
    eta = np.where(kind == CATCH, logit(1 - catch_accuracy), eta)
    eta = np.where((kind == CALIBRATION) | clicker[annotator], 0.0, eta)
    progress = position / np.maximum(workloads[annotator] - 1, 1)
    bias = lam[annotator] + slope[annotator] * progress
    chose_probe = rng.random(n_judgments) < expit(eta + bias * side)

    median = rt_median_ms * np.exp(rng.normal(0.0, 0.3, n_annotators))
    median[clicker] = clicker_rt_ms
    rt_ms = median[annotator] * np.exp(rng.normal(0.0, 0.4, n_judgments))
    # Annotators arrive a minute apart; within a session, time runs with the answers.
    elapsed = np.cumsum(rt_ms) / 1000
    first = np.cumsum(workloads) - workloads
    session_start = np.repeat(elapsed[first] - rt_ms[first] / 1000, workloads)
    time_s = annotator * 60.0 + elapsed - session_start

    judgments = Judgments(
        generator=generator,
        item=item,
        annotator=annotator,
        chose_generated=chose_probe,
        generated_left=probe_left,
        chose_left=chose_probe == probe_left,
        kind=kind,
        correct=(kind == CATCH) & ~chose_probe,
        rt_ms=rt_ms,
        order=position,
        time_s=time_s,
        generator_labels=tuple(range(n_generators)),
        item_labels=tuple(range(n_items)),
        annotator_labels=tuple(range(n_annotators)),
    )
    return SimulatedStudy(judgments, truth, intercepts, u, v, lam, clicker)
