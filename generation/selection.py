"""Which items of a corpus are used: filters on the reference's image facts and the item's
metadata, and seeded samples, stratified or not. Pure Python: the import and the study
build hand it rows of facts and metadata.

A filter is written ``FIELD OP VALUE``: FIELD one of `FACTS` (``aspect`` is width /
height) or ``meta.<key>`` (a field img2dataset or LAION writes, such as
``meta.pwatermark`` or ``meta.aesthetic``); OP one of ``>= <= > < == !=`` (``=`` is
``==``); VALUE a number, or text for ``==`` and ``!=``. An item without the field, or
with a value of another kind there (null, a list, text where a number is compared:
that last one an error, as it is most likely a mistake), fails the filter. Filters apply in order, and each one's count is the items it removed
of those the filters before it kept.

A sample of n items is the n with the smallest priority, a hash of the seed and the
item's key: the same seed and corpus give the same items whatever the order they come
in, and a larger n only adds items. Stratified by a metadata field, each value (items
without it form a stratum of their own, ``None``) gets its share: ``proportional`` to
its size (largest remainders), or ``equal`` (as many per value as the smallest allows,
then the rest to the others in turn); within a value, the smallest priorities.
"""

import hashlib
import operator
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

FACTS = ("width", "height", "aspect", "byte_size", "format", "mode")
META = "meta."
ALLOCATIONS = ("proportional", "equal")
_OPS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
        ">": operator.gt, "<": operator.lt}
_ORDERING = (">=", "<=", ">", "<")
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(>=|<=|!=|==|=|>|<)\s*(.*?)\s*$")
MISSING = object()


@dataclass(frozen=True)
class Where:
    """One filter (module docstring); `text` is how it was written."""

    field: str
    op: str
    value: float | str
    text: str

    def value_of(self, facts: dict, meta: dict):
        if self.field.startswith(META):
            value = (meta or {}).get(self.field[len(META):], MISSING)
        else:
            value = facts.get(self.field, MISSING)
        return value

    def holds(self, facts: dict, meta: dict) -> bool:
        """Whether the item passes: a number filter needs a number there, a text filter text
        (anything else, null or missing fails); text where a number is compared is an error."""
        value = self.value_of(facts, meta)
        if isinstance(self.value, float):
            if isinstance(value, str):
                raise SelectionError(f"filter {self.text!r} compares {self.field} with a number, but an item has "
                                     f"the text {value!r} there")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
        elif not isinstance(value, str):
            return False
        return _OPS[self.op](value, self.value)


class SelectionError(ValueError):
    """A filter or a sample that cannot be applied: the message names what is wrong."""


def parse_where(text: str) -> Where:
    match = _WHERE.match(text or "")
    if match is None:
        raise SelectionError(f"filter {text!r}: write FIELD OP VALUE, such as width>=512 or meta.aesthetic>=5")
    name, op, raw = match.groups()
    if name not in FACTS and not (name.startswith(META) and len(name) > len(META)):
        raise SelectionError(f"filter {text!r}: {name!r} is no field: one of {', '.join(FACTS)}, or meta.<key>")
    if raw == "":
        raise SelectionError(f"filter {text!r}: no value to compare with")
    try:
        value: float | str = float(raw)
    except ValueError:
        value = raw.strip("'\"")
        if op in _ORDERING:
            raise SelectionError(f"filter {text!r}: {op} needs a number, not {raw!r}") from None
    return Where(field=name, op="==" if op == "=" else op, value=value, text=text.strip())


def parse_filters(texts: Iterable[str]) -> list[Where]:
    return [parse_where(text) for text in texts]


@dataclass
class Filtered:
    """The rows the filters kept (their indices) and, per filter in order, how many it removed."""

    kept: list[int] = field(default_factory=list)
    removed: list[tuple[str, int]] = field(default_factory=list)
    total: int = 0


def facts_of(width: int, height: int, **more) -> dict:
    """An item's facts as filters read them, with ``aspect`` = width / height."""
    return {"width": width, "height": height, "aspect": width / height if height else None, **more}


class FilterRun:
    """Filters applied to rows of (facts, meta) one at a time, as an import streams them:
    `passes` counts what each filter removed and which fields were seen, `result` checks
    that every filter's field exists and that something is left."""

    def __init__(self, wheres: list[Where]):
        self.wheres = wheres
        self.removed = [0] * len(wheres)
        self.seen = [False] * len(wheres)
        self.total = 0
        self.kept: list[int] = []

    def passes(self, facts: dict, meta: dict) -> bool:
        index, self.total = self.total, self.total + 1
        for i, where in enumerate(self.wheres):
            self.seen[i] = self.seen[i] or where.value_of(facts, meta) is not MISSING
        for i, where in enumerate(self.wheres):
            if not where.holds(facts, meta):
                self.removed[i] += 1
                return False
        self.kept.append(index)
        return True

    def result(self) -> Filtered:
        """What the filters did; a filter on a field no row has, or filters that leave no
        row, is a `SelectionError` (a typo must not silently empty or keep everything)."""
        result = Filtered(kept=self.kept, removed=[(w.text, n) for w, n in zip(self.wheres, self.removed)],
                          total=self.total)
        for where, found in zip(self.wheres, self.seen):
            if not found and result.total:
                raise SelectionError(f"filter {where.text!r}: no item has the field {where.field}")
        if self.wheres and result.total and not result.kept:
            counts = ", ".join(f"{text} removed {n}" for text, n in result.removed)
            raise SelectionError(f"the filters leave no item of {result.total} ({counts})")
        return result


def priority(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()


def sample_keys(keys: list[str], n: int, *, seed: int, strata: list | None = None,
                allocation: str = "proportional") -> list[str]:
    """The sampled keys (module docstring), in priority order within each stratum."""
    if n < 1:
        raise SelectionError(f"a sample needs at least 1 item, not {n}")
    if allocation not in ALLOCATIONS:
        raise SelectionError(f"allocation must be one of {', '.join(ALLOCATIONS)}, not {allocation!r}")
    groups: dict = defaultdict(list)
    for index, key in enumerate(keys):
        groups[strata[index] if strata is not None else None].append(key)
    for members in groups.values():
        members.sort(key=lambda key: priority(seed, key))
    take = allocate({value: len(members) for value, members in groups.items()}, n, allocation)
    return [key for value, members in groups.items() for key in members[:take[value]]]


def allocate(sizes: dict, n: int, allocation: str) -> dict:
    """Items per stratum: `n` in all (or every item, if fewer), none above its stratum's size."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    if allocation == "proportional":
        exact = {value: n * size / total for value, size in sizes.items()}
        take = {value: int(share) for value, share in exact.items()}
        # Largest remainders, ties by stratum name, so the split is the same every time.
        order = sorted(sizes, key=lambda value: (-(exact[value] - take[value]), str(value)))
        for value in order[:n - sum(take.values())]:
            take[value] += 1
        return take
    take = dict.fromkeys(sizes, 0)
    left = n
    while left:
        open_ = sorted((value for value in sizes if take[value] < sizes[value]), key=str)
        share, extra = divmod(left, len(open_))
        for i, value in enumerate(open_):
            add = min(share + (i < extra), sizes[value] - take[value])
            take[value] += add
            left -= add
    return take
