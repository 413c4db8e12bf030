"""The judgments of a study as plain, equal-length numpy columns.

Every estimator of this package reads one `Judgments` container, so the Django side
(or a notebook, a benchmark, the simulator) only has to produce columns once.

The *probe* image of a trial is the image whose choice is counted: the generated
sample on a generated trial, the corrupted image on a catch trial, and one of the two
identical-role references, chosen by the server and recorded like a sample's side, on
a calibration trial, and the trial's generator's sample on a head-to-head trial (two
generators' samples of one prompt; the other one is the opponent's, in the place of
the reference). `chose_generated` and `generated_left` always refer to the probe, so
that side bias and drift can be computed on all kinds of trials alike.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

KINDS = ("generated", "catch", "calibration", "head_to_head")
GENERATED, CATCH, CALIBRATION, HEAD_TO_HEAD = 0, 1, 2, 3
# Columns checked value by value: what a cast would silently turn into a choice or a code.
FLAGS = ("chose_generated", "generated_left", "chose_left", "correct")
INTEGERS = ("generator", "item", "annotator", "kind", "order", "sample", "opponent")


def _refuse(name: str, array: np.ndarray, bad: np.ndarray, wanted: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = array[row].item() if isinstance(array[row], np.generic) else array[row]
        raise ValueError(f"column {name}: row {row} holds {value!r}, not {wanted}")


def _flag_column(name: str, values) -> np.ndarray:
    """`values` as a bool column, refusing anything but booleans, 0 and 1.

    A plain ``astype(bool)`` reads NaN, 0.5 and None as choices (NaN as True), so
    that a gap in the data would count as a win.
    """
    array = np.asarray(values).reshape(-1)
    if array.dtype == bool:
        return array
    if array.dtype.kind in "US" and not isinstance(values, np.ndarray):
        # numpy turns a list mixing booleans and text into text throughout: True would
        # read as "True" and the first bad row be lost.
        array = np.asarray(values, dtype=object).reshape(-1)
    if array.dtype.kind in "iuf":
        bad = (array != 0) & (array != 1)
    elif array.dtype == object:
        bad = np.array([not (isinstance(v, (bool, np.bool_))
                             or (isinstance(v, numbers.Real) and v in (0, 1))) for v in array], dtype=bool)
    else:
        bad = np.ones(len(array), dtype=bool)
    _refuse(name, array, bad, "a boolean (True/False or 0/1)")
    return array.astype(bool)


def _integer_column(name: str, values) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind == "f":
        # Casting NaN or 2.5 to int64 gives a code (a huge negative one for NaN) silently.
        _refuse(name, array, ~np.isfinite(array) | (array != np.round(array)), "an integer code")
    return array


def _time_column(name: str, values, *, allow_negative: bool) -> np.ndarray:
    """A float column where NaN means unknown and infinities (or negatives) are refused."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.isinf(array)
    if not allow_negative:
        bad |= array < 0
    _refuse(name, array, bad, "a finite time" if allow_negative else "a finite, non-negative time (NaN if unknown)")
    return array


def _label_column(values) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    # Control rows may hold anything (None): labels are factorised as objects.
    return array if array.dtype.kind in "iu" else array.astype(object)


def factorize(values: Sequence | np.ndarray) -> tuple[np.ndarray, tuple]:
    """Integer codes and the sorted distinct labels they index.

    Returns ``(codes, labels)`` with ``labels[codes[j]] == values[j]``; codes are
    int64 in ``0 .. len(labels) - 1``.
    """
    array = np.asarray(values)
    if array.dtype == object:
        # Ids stay numbers (sorted as numbers); anything else is compared as text.
        integral = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in array.flat)
        array = array.astype(np.int64) if integral and array.size else array.astype(str)
    labels, codes = np.unique(array, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), tuple(labels.tolist())


def compact(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber codes to ``0 .. k - 1`` over the levels actually present: ``(codes, k)``.

    Order is kept. Non-negative codes of moderate range are renumbered by a lookup
    table (no sort).
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    if len(codes) == 0:
        return codes, 0
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high > 8 * len(codes) + 1_000_000:
        levels, inverse = np.unique(codes, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), len(levels)
    present = np.bincount(codes, minlength=high + 1) > 0
    lookup = np.cumsum(present) - 1
    return lookup[codes], int(present.sum())


def session_order(annotator: np.ndarray) -> np.ndarray:
    """Position of each judgment within its annotator's session, in input order (0-based)."""
    annotator = np.asarray(annotator)
    sort = np.argsort(annotator, kind="stable")
    sorted_codes = annotator[sort]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(sorted_codes)]))
    order = np.empty(len(annotator), dtype=np.int64)
    order[sort] = np.arange(len(annotator)) - run_start
    return order


@dataclass(frozen=True, eq=False)
class Judgments:
    """Equal-length columns, one row per judgment.

    Attributes
    ----------
    generator : int64, codes into `generator_labels`; -1 on control trials. On a
        head-to-head trial, the generator of the probe.
    item : int64, codes into `item_labels` (the prompt and its reference).
    annotator : int64, codes into `annotator_labels`.
    chose_generated : bool, the annotator chose the probe image (module docstring).
    generated_left : bool, the probe image was shown on the left.
    chose_left : bool, the annotator chose the left image; always equals
        ``chose_generated == generated_left``.
    kind : int8, codes into `KINDS` (generated, catch, calibration).
    correct : bool, on catch trials: chose the uncorrupted reference.
    rt_ms : float64, client response time in milliseconds (NaN where unknown).
    order : int64, position of the judgment within its annotator's session.
    time_s : float64, submission time in seconds on any clock (NaN where unknown).
    sample : int64, the probe image judged (a code of any unit: the database passes the
        trial, one per sample), so that seeds of one prompt can be told apart; -1 where
        unknown.
    opponent : int64, on head-to-head trials the other generator (codes into
        `generator_labels`, never the row's generator); -1 on every other row.

    Bad values are refused with a ValueError naming the column and the first bad row:
    a flag that is not a boolean, 0 or 1 (NaN, None, 0.5), a code that is not an
    integer, an infinite time, a negative response time.
    """

    generator: np.ndarray
    item: np.ndarray
    annotator: np.ndarray
    chose_generated: np.ndarray
    generated_left: np.ndarray
    chose_left: np.ndarray
    kind: np.ndarray
    correct: np.ndarray
    rt_ms: np.ndarray
    order: np.ndarray
    time_s: np.ndarray | None = None
    sample: np.ndarray | None = None
    opponent: np.ndarray | None = None
    generator_labels: tuple = field(default=())
    item_labels: tuple = field(default=())
    annotator_labels: tuple = field(default=())

    def __post_init__(self) -> None:
        n = len(np.asarray(self.item))
        if self.time_s is None:
            object.__setattr__(self, "time_s", np.full(n, np.nan))
        if self.sample is None:
            object.__setattr__(self, "sample", np.full(n, -1, dtype=np.int64))
        if self.opponent is None:
            object.__setattr__(self, "opponent", np.full(n, -1, dtype=np.int64))
        dtypes = {
            "generator": np.int64, "item": np.int64, "annotator": np.int64,
            "chose_generated": bool, "generated_left": bool, "chose_left": bool,
            "kind": np.int8, "correct": bool, "rt_ms": np.float64, "order": np.int64,
            "time_s": np.float64, "sample": np.int64, "opponent": np.int64,
        }
        for name, dtype in dtypes.items():
            column = getattr(self, name)
            if name in FLAGS:
                column = _flag_column(name, column)
            elif name in INTEGERS:
                column = _integer_column(name, column)
            else:
                column = _time_column(name, column, allow_negative=name == "time_s")
            column = column.astype(dtype, copy=False)
            if len(column) != n:
                raise ValueError(f"column {name} has {len(column)} rows, item has {n}")
            object.__setattr__(self, name, column)
        if np.any(self.chose_left != (self.chose_generated == self.generated_left)):
            raise ValueError("chose_left must equal (chose_generated == generated_left)")
        if np.any((self.kind < 0) | (self.kind >= len(KINDS))):
            raise ValueError(f"kind codes must index {KINDS}")
        self._check_opponent()
        for name, labels in (("generator", "generator_labels"), ("item", "item_labels"),
                             ("annotator", "annotator_labels")):
            if not getattr(self, labels):
                codes = getattr(self, name)
                top = int(codes.max()) + 1 if len(codes) else 0
                if name == "generator" and len(codes):
                    top = max(top, int(self.opponent.max()) + 1)
                object.__setattr__(self, labels, tuple(range(top)))

    def _check_opponent(self) -> None:
        head_to_head = self.kind == HEAD_TO_HEAD
        top = len(self.generator_labels) if self.generator_labels else np.iinfo(np.int64).max
        checks = (
            ("opponent", self.opponent, head_to_head & ((self.opponent < 0) | (self.opponent >= top)),
             "a generator code on a head-to-head trial"),
            ("opponent", self.opponent, head_to_head & (self.opponent == self.generator),
             "a generator other than the row's own"),
            ("generator", self.generator, head_to_head & (self.generator < 0),
             "a generator code on a head-to-head trial"),
            ("opponent", self.opponent, ~head_to_head & (self.opponent != -1), "-1 (the trial is not head-to-head)"),
        )
        for name, column, bad, wanted in checks:
            _refuse(name, column, bad, wanted)

    @classmethod
    def build(
        cls,
        *,
        generator: Sequence,
        item: Sequence,
        annotator: Sequence,
        generated_left: Sequence,
        chose_generated: Sequence | None = None,
        chose_left: Sequence | None = None,
        kind: Sequence | str = "generated",
        correct: Sequence | None = None,
        rt_ms: Sequence | None = None,
        order: Sequence | None = None,
        time_s: Sequence | None = None,
        sample: Sequence | None = None,
        opponent: Sequence | None = None,
        generators: Sequence | None = None,
    ) -> Judgments:
        """Judgments from columns of any labels (ids, names), factorised to codes.

        Give `chose_generated` or `chose_left` (or both, which must agree). `kind`
        holds names from `KINDS` or codes, or one name for all rows. On control trials
        the generator label is ignored. `opponent` holds, on head-to-head rows, the
        other generator's label (labels coded with the generator's; a generator that is
        only ever an opponent still gets a code); it is ignored on other rows. Missing
        `correct` is ``not chose_generated``
        on catch trials; missing `order` counts each annotator's judgments in input
        order. `generators` lists labels that get a code even where no judgment names
        them (a generator not judged yet then has a row with n = 0 in every table).
        """
        item_codes, item_labels = factorize(item)
        annotator_codes, annotator_labels = factorize(annotator)
        n = len(item_codes)
        kinds = np.asarray(kind)
        if kinds.ndim == 0:
            kinds = np.full(n, kinds.item())
        if kinds.dtype.kind in "UOS":
            names, inverse = np.unique(kinds.astype(str), return_inverse=True)
            unknown = set(names.tolist()) - set(KINDS)
            if unknown:
                raise ValueError(f"unknown kinds {sorted(unknown)}; expected {KINDS}")
            kinds = np.array([KINDS.index(name) for name in names], dtype=np.int8)[inverse.reshape(-1)]
        is_generated = (kinds == GENERATED) | (kinds == HEAD_TO_HEAD)
        is_pair = kinds == HEAD_TO_HEAD
        generator_codes = np.full(n, -1, dtype=np.int64)
        opponent_codes = np.full(n, -1, dtype=np.int64)
        generator_values = _label_column(generator)
        named = generator_values[is_generated]
        opponents = np.empty(0, dtype=object)
        if opponent is not None:
            opponents = _label_column(opponent)
            if len(opponents) != n:
                raise ValueError(f"column opponent has {len(opponents)} rows, item has {n}")
            opponents = opponents[is_pair]
            missing = np.zeros(len(opponents), bool) if opponents.dtype != object else \
                np.array([v is None for v in opponents.tolist()], dtype=bool)
            if missing.any():
                row = int(np.flatnonzero(is_pair)[np.flatnonzero(missing)[0]])
                raise ValueError(f"column opponent: row {row} holds None, not a generator (a head-to-head trial)")
        elif is_pair.any():
            row = int(np.flatnonzero(is_pair)[0])
            raise ValueError(f"column opponent: row {row} is a head-to-head trial; give opponent")
        listed = np.asarray(list(generators)) if generators is not None else np.empty(0)
        parts = [p for p in (named, opponents, listed) if len(p)]
        generator_labels: tuple = ()
        if parts:
            mixed = any(p.dtype == object for p in parts) or len({p.dtype.kind for p in parts}) > 1
            codes, generator_labels = factorize(np.concatenate([p.astype(object) if mixed else p for p in parts]))
            generator_codes[is_generated] = codes[:len(named)]
            opponent_codes[is_pair] = codes[len(named):len(named) + len(opponents)]
        generated_left = _flag_column("generated_left", generated_left)
        if chose_generated is None and chose_left is None:
            raise ValueError("give chose_generated or chose_left")
        if chose_left is not None:
            chose_left = _flag_column("chose_left", chose_left)
        if chose_generated is None:
            chose_generated = chose_left == generated_left
        chose_generated = _flag_column("chose_generated", chose_generated)
        if chose_left is None:
            chose_left = chose_generated == generated_left
        if correct is None:
            correct = (kinds == CATCH) & ~chose_generated
        return cls(
            generator=generator_codes,
            item=item_codes,
            annotator=annotator_codes,
            chose_generated=chose_generated,
            generated_left=generated_left,
            chose_left=chose_left,
            kind=kinds,
            correct=correct,
            rt_ms=np.full(n, np.nan) if rt_ms is None else rt_ms,
            order=session_order(annotator_codes) if order is None else order,
            time_s=time_s,
            sample=sample,
            opponent=opponent_codes,
            generator_labels=generator_labels,
            item_labels=item_labels,
            annotator_labels=annotator_labels,
        )

    def __len__(self) -> int:
        return len(self.item)

    @property
    def n_generators(self) -> int:
        return len(self.generator_labels)

    @property
    def n_items(self) -> int:
        return len(self.item_labels)

    @property
    def n_annotators(self) -> int:
        return len(self.annotator_labels)
