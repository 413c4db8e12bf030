"""Who the simulated annotators are, and how each of them chooses.

A population has good annotators and a few deliberately bad ones, drawn
deterministically from a seed:

- ``good``: judges by what it sees. With perceived qualities ``f_left`` and
  ``f_right`` (each image's measured `demo.scene_check.caption_recognition`
  plus Gaussian perception noise), it chooses left with probability
  ``logistic(sharpness * (f_left - f_right) + side_bias)``, a Bradley–Terry choice with a small personal side bias; on a small
  share of trials (its lapse rate) it answers at random. Response times are
  lognormal around 1.2–1.9 s, longer when the two images are hard to tell apart.
- ``random``: a fast clicker. Left or right with equal chance, response times
  mostly under 400 ms; fails catch trials half the time.
- ``left``: a strong left bias. Presses left without looking on 80 % of trials
  and judges like a good annotator on the rest (about 90 % left overall).

Pure Python: the choice takes two numbers, never an image or the database.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

GOOD, RANDOM, LEFT = "good", "random", "left"
PROFILES = (GOOD, RANDOM, LEFT)
BAD_PROFILES = (RANDOM, LEFT)
# Log-odds per unit of quality difference: a difference of 0.1 decides about 65:35,
# one of 0.5 about 95:5.
SHARPNESS = 6.0
LEFT_HABIT = 0.8  # share of trials a left-biased annotator answers left without looking


@dataclass(frozen=True)
class Persona:
    """One simulated annotator's profile and personal parameters."""

    number: int
    profile: str  # one of PROFILES
    seed: int  # of the annotator's own random stream
    sharpness: float = SHARPNESS
    side_bias: float = 0.0  # log-odds in favour of the left image
    lapse: float = 0.0  # share of answers given at random
    perception_sd: float = 0.04  # noise on each quality as perceived
    rt_median_ms: float = 1500.0
    rt_sigma: float = 0.35  # of the log response time


@dataclass(frozen=True)
class Decision:
    choice: str  # "left" or "right"
    client_ms: int
    p_left: float  # the probability the choice was drawn with


def population(*, count: int, bad: int, seed: int) -> list[Persona]:
    """`count` personas, `bad` of them bad (``random`` and ``left`` in turn), placed at random.

    The same arguments give the same personas.
    """
    if count < 0 or not 0 <= bad <= count:
        raise ValueError(f"need 0 <= bad <= count, not bad={bad}, count={count}")
    rng = random.Random(seed)
    bad_numbers = sorted(rng.sample(range(count), bad))
    profiles = {n: BAD_PROFILES[i % len(BAD_PROFILES)] for i, n in enumerate(bad_numbers)}
    personas = []
    for n in range(count):
        profile = profiles.get(n, GOOD)
        own_seed = rng.randrange(2**63)
        if profile == RANDOM:
            personas.append(Persona(n, profile, own_seed, rt_median_ms=rng.uniform(230, 320), rt_sigma=0.3))
            continue
        personas.append(Persona(
            n, profile, own_seed,
            sharpness=SHARPNESS * math.exp(rng.gauss(0.0, 0.2)),
            side_bias=rng.gauss(0.0, 0.15),
            lapse=rng.uniform(0.01, 0.05),
            rt_median_ms=rng.uniform(1200, 1900) if profile == GOOD else rng.uniform(600, 900),
        ))
    return personas


def decide(persona: Persona, rng: random.Random, left: float, right: float) -> Decision:
    """Choose between images of measured quality `left` and `right` (0 to 1)."""
    if persona.profile == RANDOM:
        p_left = 0.5
    elif persona.profile == LEFT and rng.random() < LEFT_HABIT:
        p_left = 1.0
    elif rng.random() < persona.lapse:
        p_left = 0.5
    else:
        seen = (left + rng.gauss(0.0, persona.perception_sd)) - (right + rng.gauss(0.0, persona.perception_sd))
        p_left = 1.0 / (1.0 + math.exp(-(persona.sharpness * seen + persona.side_bias)))
    choice = "left" if rng.random() < p_left else "right"
    # A close call takes longer: up to half as long again when the odds are even.
    hesitation = 1.0 + 0.5 * (1.0 - abs(2.0 * p_left - 1.0)) if persona.profile == GOOD else 1.0
    client_ms = persona.rt_median_ms * hesitation * math.exp(rng.gauss(0.0, persona.rt_sigma))
    return Decision(choice=choice, client_ms=max(1, round(client_ms)), p_left=p_left)
