"""Several seeds per prompt: the variance across seeds is reported as its own factor."""

import numpy as np
import pytest
from scipy.special import expit

from analysis.stats import Judgments, preference_rates


def seeded_study(seed_sd: float, *, seeds: int = 3, prompts: int = 150, per_sample: int = 8, seed: int = 0):
    """One generator; each prompt judged on `seeds` samples, each sample by `per_sample`
    annotators; logit P = prompt effect (SD 0.7) + sample effect (SD seed_sd)."""
    rng = np.random.default_rng(seed)
    prompt_effect = rng.normal(0, 0.7, prompts)
    sample_effect = rng.normal(0, seed_sd, (prompts, seeds))
    item = np.repeat(np.arange(prompts), seeds * per_sample)
    sample = np.repeat(np.arange(prompts * seeds), per_sample)
    eta = -0.4 + prompt_effect[item] + sample_effect.reshape(-1)[sample]
    n = len(item)
    # Each annotator sees a prompt once: annotators cycle through the judgments of a prompt.
    annotator = (np.arange(n) % (seeds * per_sample)) + 40 * (item % 3)
    return Judgments.build(generator=np.zeros(n, int), item=item, annotator=annotator,
                           generated_left=rng.random(n) < 0.5, chose_generated=rng.random(n) < expit(eta),
                           sample=sample)


def test_seed_variance_is_its_own_factor_and_grows_with_the_seeds_spread():
    shares = {}
    for seed_sd in (0.0, 1.5):
        found = [preference_rates(seeded_study(seed_sd, seed=s), n_boot=0) for s in range(6)]
        assert all(rates.n_samples[0] == 450 and rates.n_items[0] == 150 for rates in found)
        shares[seed_sd] = np.median([rates.seed_share[0] for rates in found])
        assert all(0 <= rates.seed_share[0] <= 1 and 0 <= rates.prompt_share[0] <= 1 for rates in found)
    assert shares[0.0] < 0.1 and shares[1.5] > 0.3, shares


def test_one_sample_per_prompt_leaves_the_seeds_share_undefined():
    judgments = seeded_study(1.0, seeds=1)
    rates = preference_rates(judgments, n_boot=0)
    assert rates.n_samples[0] == rates.n_items[0] == 150
    assert np.isnan(rates.seed_share[0]) and np.isnan(rates.prompt_share[0])
    # Without sample codes at all: nothing about samples is claimed.
    plain = preference_rates(Judgments.build(generator=judgments.generator, item=judgments.item,
                                             annotator=judgments.annotator, generated_left=judgments.generated_left,
                                             chose_generated=judgments.chose_generated), n_boot=0)
    assert plain.n_samples[0] == 0 and np.isnan(plain.var_sample[0])


def test_a_sample_code_that_is_not_an_integer_is_refused():
    with pytest.raises(ValueError, match="column sample: row 1"):
        Judgments.build(generator=[0, 0], item=[0, 1], annotator=[0, 0], generated_left=[True, False],
                        chose_generated=[True, True], sample=[1.0, np.nan])
