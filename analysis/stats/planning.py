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
one-way variance stands in (`Plan.basis` "one-way"). Where the rate has no clustered
interval at all (`rates.RATE_FLAGS`: too few judgments, one prompt or annotator, no
variation), the Wilson half-width of the raw share stands in (basis "wilson"): it
ignores clustering, so it understates what is needed, and such a generator is never
done; it still needs at least `min_judgments`.

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

from .rates import RateTable, withheld
from .sandwich import two_way_interval


@dataclass(frozen=True, eq=False)
class Plan:
    """Per generator (arrays over `labels`).

    half_width : current half-width of the planning interval (module docstring);
        target: the goal. (`rates.half_width` is the reported bootstrap one.)
    judgments_needed, judgments_more : n* (at least `min_judgments`) and n* - n (0
        where done, at least 1 where not).
    prompts_needed : I* at the current judgments per prompt.
    prompts_min : I_min, the prompts needed even with unlimited judgments per prompt.
    done : the half-width is at most the target (and `min_judgments` are in).
    fallback : the two-way variance was not positive; the larger one-way one was used.
    basis : per generator, "two-way", "one-way" (fallback) or "wilson" (module docstring).
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
    basis: tuple = ()


def planning_half_width(rates: RateTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-width the planner works with, where the one-way fallback was used, and
    where it is clustered at all (not the Wilson stand-in; module docstring)."""
    interval = two_way_interval(rates.rate, rates.var_item, rates.var_annotator, rates.var_cell,
                                rates.n_items, rates.n_annotators, rates.level)
    clustered = (rates.n > 0) & (interval.half_width > 0) & ~withheld(rates.flags)
    wilson = np.maximum(rates.raw_rate - rates.wilson_low, rates.wilson_high - rates.raw_rate)
    return np.where(clustered, interval.half_width, wilson), clustered & interval.fallback, clustered


def plan_judgments(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> Plan:
    """Judgments and prompts each generator needs for `target_half_width` (module docstring)."""
    h, fallback, clustered = planning_half_width(rates)
    factor = (h / target_half_width) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        two_way = rates.var_item + rates.var_annotator - rates.var_cell
        share_item = np.where(two_way > 0, np.clip(rates.var_item - rates.var_cell, 0, None) / two_way, np.nan)
    # A generator without judgments has no half-width: it needs the minimum to begin with.
    needed = np.where(rates.n > 0, np.maximum(np.ceil(rates.n * factor), min_judgments), min_judgments)
    done = generators_done_mask(rates, target_half_width, min_judgments=min_judgments)
    basis = tuple("wilson" if not c else "one-way" if f else "two-way" for c, f in zip(clustered, fallback))
    return Plan(
        labels=rates.labels,
        target=target_half_width,
        half_width=h,
        judgments_needed=needed,
        judgments_more=np.where(done, 0, np.maximum(needed - rates.n, 1)),
        prompts_needed=np.ceil(rates.n_items * factor),
        prompts_min=np.ceil(rates.n_items * share_item * factor),
        done=done,
        fallback=fallback,
        basis=basis,
    )


def generators_done_mask(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> np.ndarray:
    """Bool per generator: clustered planning half-width at most the target, with enough judgments."""
    h, _, clustered = planning_half_width(rates)
    return clustered & (h <= target_half_width) & (rates.n >= min_judgments)


def generators_done(rates: RateTable, target_half_width: float, *, min_judgments: int = 100) -> dict:
    """Generator label -> True where its planning interval is already narrow enough.

    A pure function for the assignment engine: a study can stop serving a generator
    that is done. `min_judgments` guards against a narrow interval that is narrow by
    chance early on (the variance of a handful of judgments is unreliable).
    """
    mask = generators_done_mask(rates, target_half_width, min_judgments=min_judgments)
    return dict(zip(rates.labels, mask.tolist()))
