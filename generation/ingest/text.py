"""Text that every database can store: no NUL character and no lone surrogate.

PostgreSQL refuses U+0000 in text and in jsonb, and no database stores a lone
surrogate (a code point between U+D800 and U+DFFF without its pair), which a JSON
escape such as `\\ud800` or a file name that is not UTF-8 both produce in Python.
The readers check every string of a record with `checked_text` and `checked_meta`,
so that such a record becomes a rejection naming its field, not a database error.
"""

import re

from generation.errors import Rejection

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_fault(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character (U+0000), which cannot be stored as text"
    return (
        f"holds a lone surrogate (U+{ord(found.group()):04X}), which is no character; "
        "is a JSON escape missing its pair?"
    )


def checked_text(value: str, *, field: str, origin: str) -> str:
    if fault := text_fault(value):
        raise Rejection(origin, f"field {field!r} {fault}")
    return value


def checked_meta(meta: dict, *, origin: str) -> dict:
    """`meta` if every string in it, keys included, can be stored; the first that cannot is named
    by its path (`exif.Model`, `tags[2]`)."""
    # A walk with a stack, not recursion: nesting as deep as the JSON parser allows must not fail here.
    pending: list[tuple[str, object]] = [("", meta)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            checked_text(value, field=path, origin=origin)
        elif isinstance(value, dict):
            children = []
            for key, inner in value.items():
                inner_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (fault := text_fault(key)):
                    raise Rejection(origin, f"the name of field {inner_path!r} {fault}")
                children.append((inner_path, inner))
            pending.extend(reversed(children))  # popped in the order they are written
        elif isinstance(value, list):
            pending.extend(reversed([(f"{path}[{index}]", inner) for index, inner in enumerate(value)]))
    return meta
