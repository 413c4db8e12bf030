"""Preference rate per generator, position-balanced, with clustered intervals.

The rate is the mean of the rates with the probe image on the left and on the right,

    rate = (wins_left / n_left + wins_right / n_right) / 2

so that an annotator population's preference for one side cancels even when the
sides were not shown exactly equally often. Its default 95 % interval is the
percentile interval of the two-way cluster bootstrap (`bootstrap.two_way_sums`:
prompts and annotators resampled, one set of weights shared by all generators, so
that replicates of different generators can be compared or correlated). Reported
beside it:

- the Wilson and Clopper-Pearson intervals of the raw share wins / n, which ignore
  clustering;
- the Cameron-Gelbach-Miller two-way standard error (`sandwich.cluster_variance`)
  of the balanced rate, with influence values psi_j = (y_j - rate_side) / (2 n_side),
  and of the raw share, with psi_j = (y_j - ybar) / n;
- with the sample of each judgment (several seeds per prompt), the one-way variance
  clustered on samples, V_sample. Samples nest in prompts: with psi_j = w_j e_j, the
  products of two judgments of one sample have expectation w_j w_k (s2_prompt +
  s2_seed), of one prompt but two samples w_j w_k s2_prompt. So with the weight sums
  P_s = sum over samples of (sum w)^2 - sum w^2 and P_d = sum over prompts of
  (sum w)^2 - sum w^2 - P_s, the moment estimates are s2_prompt = (V_item - V_sample)
  / P_d and P_s s2_seed = V_sample - V_cell - P_s s2_prompt, the seeds' part of the
  rate's variance; the prompts' part is V_item - V_cell less it (`seed_share`,
  `prompt_share`: of the two-way variance, clipped at 0);
- the design effect, deff = Var_CGM(rate) / Var_srs(rate) with
  Var_srs = (r_L (1 - r_L) / n_L + r_R (1 - r_R) / n_R) / 4 (Kish, L. (1965).
  Survey Sampling, Section 8.2), and the effective sample size n / deff.

The bootstrap is conservative where judgment-level noise dominates: its variance is
in expectation V_item + V_annotator + V_cell against the CGM V_item + V_annotator -
V_cell (Owen 2007), up to three times too large for a generator whose samples are
the references themselves. The design effect therefore uses the CGM variance; the
bootstrap interval stays the default because it needs no normal approximation and
stays valid (if wide) where the CGM variance is noisy or negative.

Degenerate rates carry named flags (`RATE_FLAGS`, `rate_flags`) and no clustered
interval: with fewer than `MIN_JUDGMENTS` judgments, one prompt or one annotator
(the spread between prompts or annotators cannot be estimated from one of them, and
the CGM variance is exactly zero there), or no variation (every resample gives the
same rate, as when every judgment chose the same image). An interval of zero width
says "known exactly", which no finite sample does: none is shown instead, and the
Wilson and Clopper-Pearson intervals of the raw share (valid for any n >= 1, but
blind to clustering) remain beside it. The CGM normal interval is clipped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .bootstrap import percentile_interval, two_way_sums
from .judgments import GENERATED, Judgments, compact
from .proportions import clopper_pearson_interval, wilson_interval, z_value
from .sandwich import cluster_variance, one_way_variance

# Fewer judgments than this: the clustered intervals are not shown (module docstring).
MIN_JUDGMENTS = 20

# Flag -> what it means, for the report. A rate with any flag but `one_side_only` has
# no clustered interval (bootstrap or CGM), no design effect and no effective n.
RATE_FLAGS = {
    "no_judgments": "no judgments yet",
    "too_few_judgments": f"fewer than {MIN_JUDGMENTS} judgments: too few for a clustered interval",
    "single_cluster": "one prompt or one annotator: the spread between prompts or annotators cannot be estimated",
    "no_variation": "every resample gives the same rate (e.g. every judgment chose the same image): "
                    "no interval of zero width is shown",
    "one_side_only": "the generated image was always on the same side: the rate is not position-balanced",
}
WITHHOLDING = frozenset(RATE_FLAGS) - {"one_side_only"}


def rate_flags(n, n_left, n_right, wins, n_items, n_annotators, spread=None) -> tuple[tuple[str, ...], ...]:
    """The flags of each group's rate (`RATE_FLAGS`), as a tuple of names per group.

    spread : (G,) bool, optional: the resamples of the rate are not all equal (the
        bootstrap interval has positive width); without it, only all-wins or all-losses
        count as no variation.
    """
    n, wins = np.asarray(n), np.asarray(wins)
    varied = (wins > 0) & (wins < n)
    if spread is not None:
        varied &= np.asarray(spread, bool)
    checks = {
        "no_judgments": n == 0,
        "too_few_judgments": (n > 0) & (n < MIN_JUDGMENTS),
        "single_cluster": (n > 0) & ((np.asarray(n_items) < 2) | (np.asarray(n_annotators) < 2)),
        "no_variation": (n > 0) & ~varied,
        "one_side_only": (n > 0) & ((np.asarray(n_left) == 0) | (np.asarray(n_right) == 0)),
    }
    return tuple(tuple(name for name, on in checks.items() if on[g]) for g in range(len(n)))


def withheld(flags: tuple[tuple[str, ...], ...]) -> np.ndarray:
    """(G,) bool: the group's flags leave its rate without a clustered interval."""
    return np.array([bool(WITHHOLDING.intersection(f)) for f in flags], dtype=bool)


@dataclass(frozen=True, eq=False)
class RateTable:
    """Per-group (generator) results; every array is shaped (G,) unless noted.

    labels : group labels (generator labels).
    n, wins : judgments and judgments where the probe was chosen.
    n_left, wins_left, n_right, wins_right : the same per side of the probe.
    n_items, n_annotators : distinct prompts and annotators behind each rate.
    rate : position-balanced rate; rate_left, rate_right: per side; raw_rate: wins / n.
    low, high : two-way cluster bootstrap percentile interval of `rate`.
    boot_se : bootstrap standard deviation of `rate`.
    wilson_low, wilson_high : Wilson interval of `raw_rate` (ignores clustering).
    cp_low, cp_high : Clopper-Pearson interval of `raw_rate` (ignores clustering).
    cgm_se, cgm_low, cgm_high : CGM two-way standard error of `rate` and the normal
        interval rate +/- z * cgm_se.
    cgm_se_raw : CGM two-way standard error of `raw_rate`.
    var_item, var_annotator, var_cell : one-way CGM variance parts of `rate`.
    design_effect, effective_n : see the module docstring.
    n_samples : distinct samples (seeds) behind each rate (0 where unknown).
    var_sample : one-way variance of `rate` clustered on samples (NaN where unknown).
    seed_share, prompt_share : of the two-way variance, the seeds' part and the
        prompts' own (module docstring); NaN with one sample per prompt, where the two
        cannot be told apart.
    replicates : (n_boot, G) bootstrap replicates of `rate`.
    flags : per group, the names of `RATE_FLAGS` that apply; where one but
        `one_side_only` does, the clustered intervals (low, high, boot_se, cgm_*),
        design_effect and effective_n are NaN.
    """

    labels: tuple
    level: float
    n_boot: int
    n: np.ndarray
    wins: np.ndarray
    n_left: np.ndarray
    wins_left: np.ndarray
    n_right: np.ndarray
    wins_right: np.ndarray
    n_items: np.ndarray
    n_annotators: np.ndarray
    rate: np.ndarray
    rate_left: np.ndarray
    rate_right: np.ndarray
    raw_rate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    boot_se: np.ndarray
    wilson_low: np.ndarray
    wilson_high: np.ndarray
    cp_low: np.ndarray
    cp_high: np.ndarray
    cgm_se: np.ndarray
    cgm_low: np.ndarray
    cgm_high: np.ndarray
    cgm_se_raw: np.ndarray
    var_item: np.ndarray
    var_annotator: np.ndarray
    var_cell: np.ndarray
    design_effect: np.ndarray
    effective_n: np.ndarray
    n_samples: np.ndarray
    var_sample: np.ndarray
    seed_share: np.ndarray
    prompt_share: np.ndarray
    replicates: np.ndarray
    flags: tuple = ()

    @property
    def half_width(self) -> np.ndarray:
        """Larger distance from the rate to an end of the bootstrap interval."""
        return np.maximum(self.rate - self.low, self.high - self.rate)

    def rows(self) -> list[dict]:
        """One plain dict per group (for CSV and JSON), without the replicates."""
        skip = ("labels", "level", "n_boot", "replicates", "flags")
        names = [f.name for f in fields(self) if f.name not in skip]
        rows = []
        for index, label in enumerate(self.labels):
            row = {"label": label, "level": self.level, "n_boot": self.n_boot}
            row.update({name: getattr(self, name)[index].item() for name in names})
            row["half_width"] = self.half_width[index].item()
            row["flags"] = list(self.flags[index]) if self.flags else []
            rows.append(row)
        return rows


def _distinct_per_group(group: np.ndarray, level: np.ndarray, n_groups: int) -> np.ndarray:
    if len(group) == 0:
        return np.zeros(n_groups, dtype=np.int64)
    span = int(level.max()) + 1
    present = np.bincount(group * span + level, minlength=n_groups * span) > 0
    return present.reshape(n_groups, span).sum(axis=1)


def balanced_rates(
    *,
    success: np.ndarray,
    probe_left: np.ndarray,
    group: np.ndarray,
    item: np.ndarray,
    annotator: np.ndarray,
    labels: tuple,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
    scheme: str = "multinomial",
    sample: np.ndarray | None = None,
) -> RateTable:
    """Position-balanced rates of `success` per group with clustered intervals.

    The engine behind `preference_rates` and the calibration rate: `success` is
    "chose the probe", `probe_left` its side, `group` codes into `labels`. Formulas
    in the module docstring; the bootstrap in `bootstrap.two_way_sums`.
    """
    y = np.asarray(success, dtype=bool)
    left = np.asarray(probe_left, dtype=bool)
    group = np.asarray(group, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    annotator = np.asarray(annotator, dtype=np.int64)
    n_groups = len(labels)
    side_group = group * 2 + (~left)  # 2g: probe on the left, 2g + 1: on the right

    n_side = np.bincount(side_group, minlength=2 * n_groups).reshape(n_groups, 2).astype(np.float64)
    w_side = np.bincount(side_group, weights=y, minlength=2 * n_groups).reshape(n_groups, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_side = w_side / n_side
        sides_present = (n_side > 0).sum(axis=1)
        rate = np.where(n_side > 0, r_side, 0.0).sum(axis=1) / sides_present
        # Influence of each judgment on the balanced rate: the side's weight 1/k over
        # the k sides present, times the side mean's influence (y - r_side) / n_side.
        psi = (y - r_side.reshape(-1)[side_group]) / (n_side.reshape(-1)[side_group] * sides_present[group])
        n = n_side.sum(axis=1)
        wins = w_side.sum(axis=1)
        raw_rate = wins / n
        psi_raw = (y - raw_rate[group]) / n[group]
        srs = np.where(n_side > 0, r_side * (1 - r_side) / n_side, 0.0).sum(axis=1) / sides_present**2

    parts = cluster_variance(np.stack([psi, psi_raw]), item, annotator, group, n_groups)
    # A group without judgments has no standard error (not a zero one).
    cgm_se, cgm_se_raw = np.where(n > 0, np.sqrt(np.clip(parts.two_way, 0, None)), np.nan)
    z = z_value(level)

    sums = two_way_sums(
        np.stack([y, ~y]).astype(np.float64), side_group, item, annotator,
        n_groups=2 * n_groups, n_boot=n_boot, seed=seed, scheme=scheme,
    )
    boot_wins = sums[:, :, 0].reshape(n_boot, n_groups, 2)
    boot_n = boot_wins + sums[:, :, 1].reshape(n_boot, n_groups, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_side = boot_wins / boot_n
        # A side present in the data but empty in a resample leaves that resample
        # undefined for the group (NaN, ignored by the percentile interval).
        boot_side = np.where(n_side[None] > 0, boot_side, 0.0)
        replicates = boot_side.sum(axis=2) / sides_present[None]
    low, high = percentile_interval(replicates, level) if n_boot else (np.full(n_groups, np.nan),) * 2
    boot_se = np.full(n_groups, np.nan)
    defined = (np.isfinite(replicates).sum(axis=0) > 1) if n_boot else np.zeros(n_groups, bool)
    boot_se[defined] = np.nanstd(replicates[:, defined], axis=0, ddof=1)
    wilson_low, wilson_high = wilson_interval(wins, n, level)
    n_items = _distinct_per_group(group, item, n_groups)
    n_annotators = _distinct_per_group(group, annotator, n_groups)
    cp_low, cp_high = clopper_pearson_interval(wins, n, level)
    flags = rate_flags(n, n_side[:, 0], n_side[:, 1], wins, n_items, n_annotators,
                       spread=high > low if n_boot else None)
    gone = withheld(flags)
    low, high, boot_se = (np.where(gone, np.nan, a) for a in (low, high, boot_se))
    cgm_se = np.where(gone, np.nan, cgm_se)
    cgm_se_raw = np.where(gone, np.nan, cgm_se_raw)
    # A standard error at rounding level is zero: every judgment's influence cancelled.
    positive = cgm_se > 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        design_effect = np.where(positive, cgm_se**2 / srs, np.nan)
        effective_n = n / design_effect
    weight = 1 / (n_side.reshape(-1)[side_group] * sides_present[group]) if len(group) else np.zeros(0)
    n_samples, var_sample, seed_share, prompt_share = _seed_parts(
        psi, weight, group, item, sample, n_groups, parts, positive)

    return RateTable(
        labels=tuple(labels), level=level, n_boot=n_boot,
        n=n.astype(np.int64), wins=wins.astype(np.int64),
        n_left=n_side[:, 0].astype(np.int64), wins_left=w_side[:, 0].astype(np.int64),
        n_right=n_side[:, 1].astype(np.int64), wins_right=w_side[:, 1].astype(np.int64),
        n_items=n_items, n_annotators=n_annotators,
        rate=rate, rate_left=r_side[:, 0], rate_right=r_side[:, 1], raw_rate=raw_rate,
        low=low, high=high, boot_se=boot_se,
        wilson_low=wilson_low, wilson_high=wilson_high, cp_low=cp_low, cp_high=cp_high,
        cgm_se=cgm_se,
        cgm_low=np.where(positive, np.clip(rate - z * cgm_se, 0, 1), np.nan),
        cgm_high=np.where(positive, np.clip(rate + z * cgm_se, 0, 1), np.nan),
        cgm_se_raw=cgm_se_raw,
        var_item=parts.item[0], var_annotator=parts.annotator[0], var_cell=parts.cell[0],
        design_effect=design_effect, effective_n=effective_n,
        n_samples=n_samples, var_sample=var_sample, seed_share=seed_share, prompt_share=prompt_share,
        replicates=replicates.astype(np.float32), flags=flags,
    )


def _seed_parts(psi, weight, group, item, sample, n_groups, parts, positive):
    """n_samples, V_sample, seed_share and prompt_share per group (module docstring)."""
    nan = np.full(n_groups, np.nan)
    if sample is None or len(group) == 0 or (np.asarray(sample) < 0).any():
        return np.zeros(n_groups, np.int64), nan, nan, nan
    sample, _ = compact(sample)
    n_samples = _distinct_per_group(group, sample, n_groups)
    var_sample = one_way_variance(psi, group, sample, n_groups)[0]
    squares = np.bincount(group, weights=weight**2, minlength=n_groups)
    pairs_sample = one_way_variance(weight, group, sample, n_groups)[0] - squares
    pairs_prompt = one_way_variance(weight, group, item, n_groups)[0] - squares - pairs_sample
    two_way = parts.two_way[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        s2_prompt = (parts.item[0] - var_sample) / pairs_prompt
        seed_part = var_sample - parts.cell[0] - pairs_sample * s2_prompt
        prompt_part = parts.item[0] - parts.cell[0] - seed_part
        seed = np.clip(seed_part, 0, None) / two_way
        prompt = np.clip(prompt_part, 0, None) / two_way
    # One sample per prompt: seed and prompt are the same clusters, not two parts.
    several = n_samples > _distinct_per_group(group, item, n_groups)
    return (n_samples, var_sample, np.where(positive & several, seed, np.nan),
            np.where(positive & several, prompt, np.nan))


def preference_rates(
    judgments: Judgments,
    *,
    keep: np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    scheme: str = "multinomial",
) -> RateTable:
    """Preference rate of every generator with its intervals (module docstring).

    Parameters
    ----------
    judgments : all judgments of a study; only generated trials are used.
    keep : optional bool mask of judgments to use (exclusions are applied here, at
        analysis time, never by deleting data).
    n_boot, level, seed, scheme : two-way bootstrap settings (`bootstrap`).

    Returns
    -------
    RateTable over ``judgments.generator_labels``.
    """
    mask = judgments.kind == GENERATED
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)
    return balanced_rates(
        success=judgments.chose_generated[mask],
        probe_left=judgments.generated_left[mask],
        group=judgments.generator[mask],
        item=judgments.item[mask],
        annotator=judgments.annotator[mask],
        labels=judgments.generator_labels,
        n_boot=n_boot, level=level, seed=seed, scheme=scheme, sample=judgments.sample[mask],
    )
