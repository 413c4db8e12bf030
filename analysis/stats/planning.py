"""How many more judgments and prompts a target interval half-width needs.

With the design held fixed (judgments per prompt and per annotator as now), the
variance of a rate falls as 1/n and the half-width h of its interval as 1/sqrt(n):
reaching the target h* takes

    n* = n (h / h*)^2  judgments   and   I* = I (h / h*)^2  prompts,

with h the half-width of the small-sample-corrected CGM interval
(`sandwich.two_way_interval`); this is n* = deff t^2 p (1 - p) / h*^2 with the
observed design effect (Kish 1965). The bootstrap interval of the reported rates is
not used: it counts judgment-level variance three times (Owen 2007), so for a
generator close to the references it would ask for about three times the judgments
needed and never call it done. Where the two-way variance is not positive the larger
one-way variance stands in (`Plan.fallback`); where even that is undefined (fewer
than two prompts or annotators), the bootstrap half-width.

Adding judgments to the *same* prompts only shrinks the annotator and judgment parts
of the variance: with the CGM parts V_item, V_annotator, V_cell of the rate
(`sandwich`), the prompt-level share

    s_item = max(V_item - V_cell, 0) / (V_item + V_annotator - V_cell)

stays however many judgments are added, so at least I_min = I s_item (h / h*)^2
prompts are needed whatever the number of judgments per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rates import RateTable
from .sandwich import two_way_interval


@dataclass(frozen=True, eq=False)
class Plan:
    """Per generator (arrays over `labels`).

    half_width : current half-width of the planning interval (module docstring);
        target: the goal. (`rates.half_width` is the reported bootstrap one.)
    judgments_needed, judgments_more : n* and n* - n (0 where done).
    prompts_needed : I* at the current judgments per prompt.
    prompts_min : I_min, the prompts needed even with unlimited judgments per prompt.
    done : the half-width is at most the target (and `min_judgments` are in).
    fallback : the two-way variance was not positive; the larger one-way one was used.
    """

    labels: tuple
    target: float
    half_width: np.ndarray
    judgments_needed: np.ndarray
    judgments_more: np.ndarray
    prompts_needed: np.ndarray
    prompts_min: np.ndarray
    done: np.ndarray
    fallback: np.ndarray


def planning_half_width(rates: RateTable) -> tuple[np.ndarray, np.ndarray]:
    """Half-width the planner works with, and where the one-way fallback was used."""
    interval = two_way_interval(rates.rate, rates.var_item, rates.var_annotator, rates.var_cell,
                                rates.n_items, rates.n_annotators, rates.level)
    defined = (rates.n > 0) & np.isfinite(interval.half_width)
    return np.where(defined, interval.half_width, rates.half_width), defined & interval.fallback


def plan_judgments(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> Plan:
    """Judgments and prompts each generator needs for `target_half_width` (module docstring)."""
    h, fallback = planning_half_width(rates)
    factor = (h / target_half_width) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        two_way = rates.var_item + rates.var_annotator - rates.var_cell
        share_item = np.where(two_way > 0, np.clip(rates.var_item - rates.var_cell, 0, None) / two_way, np.nan)
    needed = np.ceil(rates.n * factor)
    done = generators_done_mask(rates, target_half_width, min_judgments=min_judgments)
    return Plan(
        labels=rates.labels,
        target=target_half_width,
        half_width=h,
        judgments_needed=needed,
        judgments_more=np.where(done, 0, np.maximum(needed - rates.n, 0)),
        prompts_needed=np.ceil(rates.n_items * factor),
        prompts_min=np.ceil(rates.n_items * share_item * factor),
        done=done,
        fallback=fallback,
    )


def generators_done_mask(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> np.ndarray:
    """Bool per generator: planning half-width at most the target, with enough judgments."""
    h, _ = planning_half_width(rates)
    return np.isfinite(h) & (h <= target_half_width) & (rates.n >= min_judgments)


def generators_done(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> dict:
    """Generator label -> True where its planning interval is already narrow enough.

    A pure function for the assignment engine: a study can stop serving a generator
    that is done. `min_judgments` guards against a narrow interval that is narrow by
    chance early on (the variance of a handful of judgments is unreliable).
    """
    mask = generators_done_mask(rates, target_half_width, min_judgments=min_judgments)
    return dict(zip(rates.labels, mask.tolist()))
