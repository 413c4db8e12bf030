"""A simulated study whose prompts fall in categories with their own true rates."""

import numpy as np

from analysis.stats import Judgments, simulate_study
from analysis.stats.categories import category_codes

# Per category, the true rates of generators 0 and 1.
TRUTH = {"landscape": (0.48, 0.35), "people": (0.20, 0.12)}
ITEMS = 300


def two_category_study(*, truth: dict = TRUTH, small: int = 0, seed: int = 0, n_judgments: int = 6000,
                       ) -> tuple[Judgments, np.ndarray, tuple[str, ...]]:
    """Judgments of the generators of `truth` on ITEMS prompts of each category (and `small`
    prompts of a third, "rare", judged once each by generator 0), by one pool of
    annotators; per item code its category's code, and the categories."""
    columns = {name: [] for name in ("generator", "item", "annotator", "generated_left", "chose_generated")}
    for index, (_, rates) in enumerate(truth.items()):
        study = simulate_study(rates, n_items=ITEMS, n_annotators=60, n_judgments=n_judgments, seed=seed + index)
        j = study.judgments
        columns["generator"].append(j.generator)
        columns["item"].append(j.item + index * ITEMS)
        columns["annotator"].append(j.annotator)
        columns["generated_left"].append(j.generated_left)
        columns["chose_generated"].append(j.chose_generated)
    if small:
        rng = np.random.default_rng(seed)
        columns["generator"].append(np.zeros(small, np.int64))
        columns["item"].append(2 * ITEMS + np.arange(small))
        columns["annotator"].append(rng.integers(0, 60, small))
        columns["generated_left"].append(np.arange(small) % 2 == 0)
        columns["chose_generated"].append(rng.random(small) < 0.5)
    judgments = Judgments.build(**{name: np.concatenate(parts) for name, parts in columns.items()},
                                generators=list(range(len(next(iter(truth.values()))))))
    names = [*truth, "rare"]
    per_item = [names[int(label) // ITEMS] for label in judgments.item_labels]
    codes, values = category_codes(per_item)
    return judgments, codes, values
