"""The items a study uses: its corpus' items through the study's filters and seeded sample
(`generation.selection`), recorded on the study (`Study.item_selection`) by each build.

The filters run in the database, so that only the items they keep travel: one
aggregate counts what each filter removed and finds a filter on a field no item has,
or one that compares text with a number; then the kept items' ids and keys (and the
stratum's value) are read and sampled here. They mean exactly what
`generation.selection.apply_filters` does on an import's records (a test holds the two
to the same answers). The same settings and corpus give the same items, so a later
build (generators joining) recomputes them rather than storing a million ids.
"""

from django.db.models import CharField, Count, ExpressionWrapper, F, FloatField, Func, Q
from django.db.models.fields.json import KeyTransform

from annotate.errors import StudyInvalid
from annotate.models import Study
from generation.models import Item
from generation.selection import META, SelectionError, Where, parse_filters, sample_keys

LOOKUPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt", "==": "exact"}


class _MetaValue(Func):
    """One key of an item's metadata, as the database's own type; `template_*` are
    filled with the column, the key (PostgreSQL) or its JSON path (SQLite)."""

    postgresql = sqlite = ""

    def __init__(self, key: str):
        super().__init__(F("meta"))
        self.key = key

    def _sql(self, compiler, template: str, key: str):
        sql, params = compiler.compile(self.source_expressions[0])
        return template.format(meta=sql), [*params, key] * template.count("%s")

    def as_postgresql(self, compiler, connection, **extra):
        return self._sql(compiler, self.postgresql, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        return self._sql(compiler, self.sqlite, f'$."{self.key}"')


class JsonType(_MetaValue):
    """The JSON type of the key: "number", "string", "null", ...; NULL where absent."""

    output_field = CharField()
    postgresql = "jsonb_typeof({meta} -> %s)"
    # SQLite names JSON numbers "integer" or "real" and text "text".
    sqlite = ("(CASE json_type({meta}, %s) WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number' "
              "WHEN 'real' THEN 'number' ELSE json_type({meta}, %s) END)")


class JsonNumber(_MetaValue):
    """The key's value where it is a JSON number, else NULL."""

    output_field = FloatField()
    postgresql = "(CASE WHEN jsonb_typeof({meta} -> %s) = 'number' THEN ({meta} ->> %s)::double precision END)"
    sqlite = "(CASE WHEN json_type({meta}, %s) IN ('integer', 'real') THEN json_extract({meta}, %s) END)"


class JsonText(_MetaValue):
    """The key's value where it is a JSON string, else NULL."""

    output_field = CharField()
    postgresql = "(CASE WHEN jsonb_typeof({meta} -> %s) = 'string' THEN {meta} ->> %s END)"
    sqlite = "(CASE WHEN json_type({meta}, %s) = 'text' THEN json_extract({meta}, %s) END)"


def stratum_key(name: str) -> str:
    """The metadata key `stratify_by` names, with or without its ``meta.`` prefix."""
    return name[len(META):] if name.startswith(META) else name


def _condition(where: Where, alias: str) -> Q:
    """The filter as a condition on the annotated item rows: NULL (a missing field, a value
    of another kind) fails it, `!=` included."""
    if where.op == "!=":
        return ~Q(**{alias: where.value}) & Q(**{f"{alias}__isnull": False})
    return Q(**{f"{alias}__{LOOKUPS[where.op]}": where.value})


def study_items(study: Study) -> tuple[list[int] | None, dict]:
    """The ids of the study's items in id order (None: every item of the corpus), and what
    the selection did, for `Study.item_selection`. Refuses, as `StudyInvalid` naming the
    setting, a filter on a field no item has, one that compares text with a number, and
    filters that leave no item."""
    try:
        wheres = parse_filters(study.item_filters or ())
    except SelectionError as exc:
        raise StudyInvalid(str(exc), field="item_filters") from None
    if not wheres and not study.sample_size:
        return None, {}
    items = Item.objects.filter(corpus_id=study.corpus_id)
    annotations, conditions, counts = {}, [], {"total": Count("id")}
    for i, where in enumerate(wheres):
        alias = f"w{i}"
        if where.field.startswith(META):
            key, kind = where.field[len(META):], f"t{i}"
            annotations[alias] = JsonNumber(key) if isinstance(where.value, float) else JsonText(key)
            annotations[kind] = JsonType(key)
            counts[f"has{i}"] = Count("id", filter=Q(**{f"{kind}__isnull": False}))
            if isinstance(where.value, float):
                counts[f"text{i}"] = Count("id", filter=Q(**{kind: "string"}))
        elif where.field == "aspect":
            annotations[alias] = ExpressionWrapper(F("width") * 1.0 / F("height"), output_field=FloatField())
        else:
            annotations[alias] = F(where.field)
        conditions.append(_condition(where, alias))
        counts[f"passed{i}"] = Count("id", filter=Q(*conditions))
    if study.stratify_by and study.sample_size:
        annotations["stratum"] = KeyTransform(stratum_key(study.stratify_by), "meta")
    items = items.annotate(**annotations)
    found = items.aggregate(**counts)
    record = {"items": found["total"], "filters": []}
    before = found["total"]
    for i, where in enumerate(wheres):
        if found["total"] and f"has{i}" in found and not found[f"has{i}"]:
            raise StudyInvalid(f"filter {where.text!r}: no item has the field {where.field}", field="item_filters")
        if found.get(f"text{i}"):
            raise StudyInvalid(f"filter {where.text!r} compares {where.field} with a number, but "
                               f"{found[f'text{i}']} items have text there", field="item_filters")
        record["filters"].append({"where": where.text, "removed": before - found[f"passed{i}"]})
        before = found[f"passed{i}"]
    if wheres and found["total"] and not before:
        counts_text = ", ".join(f"{f['where']} removed {f['removed']}" for f in record["filters"])
        raise StudyInvalid(f"the filters leave no item of {found['total']} ({counts_text})", field="item_filters")
    record["after_filters"] = before
    kept = items.filter(*conditions).order_by("id")
    columns = ("id", "key", "stratum") if "stratum" in annotations else ("id", "key")
    rows = list(kept.values_list(*columns).iterator(chunk_size=50_000))
    if study.sample_size:
        rows = _sampled(study, rows, record)
    return [row[0] for row in rows], record


def _sampled(study: Study, rows: list[tuple], record: dict) -> list[tuple]:
    strata = None
    if study.stratify_by:
        strata = [_hashable(row[2]) for row in rows]
        if rows and all(value is None for value in strata):
            raise StudyInvalid(f"no item has the metadata field {stratum_key(study.stratify_by)!r} to stratify by",
                               field="stratify_by")
    by_key = {row[1]: row for row in rows}
    try:
        chosen = sample_keys([row[1] for row in rows], study.sample_size, seed=study.sample_seed,
                             strata=strata, allocation=study.allocation)
    except SelectionError as exc:
        raise StudyInvalid(str(exc), field="sample_size") from None
    rows = sorted((by_key[key] for key in chosen), key=lambda row: row[0])
    record.update(sampled=len(rows), seed=study.sample_seed, stratify_by=study.stratify_by,
                  allocation=str(study.allocation))
    if strata is not None:
        per_stratum: dict = {}
        for row in rows:
            value = str(_hashable(row[2]))
            per_stratum[value] = per_stratum.get(value, 0) + 1
        record["per_stratum"] = dict(sorted(per_stratum.items()))
    return rows


def _hashable(value):
    """A metadata value as a stratum: lists and objects by their text."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
