"""What a request may carry: text a database can store, of a sane length, nested a sane depth.

PostgreSQL refuses a NUL character in text and in jsonb, no database stores a lone
surrogate (which a JSON escape such as `\\ud800` makes), and Python's JSON decoder
recurses once per level of nesting: each of them, let through to a query or to the
decoder, is a server error. So the text of a request is checked where it enters, once:

- the path, query parameters and the form fields of pages: `parity.middleware`;
- the body of an API request: the parsers here, named in settings.REST_FRAMEWORK
  (and by the upload views, which choose their own);
- JSON sent as the text of a form field: `JSONField`, which decodes it itself.

A refusal names the parameter or field at fault, by its path in the body
(`settings.sampler`, `generators.0`), and the API answers it with code `parse_error`.
"""

import re

from rest_framework import exceptions, parsers, serializers
from rest_framework.utils import json

from generation.ingest.text import text_fault

# Past any caption, name, description or setting this site takes; a longer value is a
# mistake or an attack, and would only cost memory and the database's time.
MAX_TEXT_CHARS = 100_000
# Settings, metrics and presentation policies are a few levels deep; the limit stays far
# below the decoder's recursion, and below anything a later walk over the value meets.
MAX_JSON_DEPTH = 32

# A JSON string (escapes included) or one of the characters that open, close or separate.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def value_fault(value: str) -> str | None:
    """Why a request may not carry `value`, or None."""
    if len(value) > MAX_TEXT_CHARS:
        return f"is longer than {MAX_TEXT_CHARS:,} characters"
    return text_fault(value)


def sentence(subject: str, fault: str) -> str:
    """A subject and its fault ("holds a NUL character …") as one sentence, with its full stop."""
    text = f"{subject} {fault}"
    return text if text.endswith((".", "?", "!")) else f"{text}."


class Refused(exceptions.ParseError):
    """A request's text that cannot be taken; `field` is the dotted path of the value at fault."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def _named(path: list[str], what: str = "field") -> str:
    return f"{what} {'.'.join(path)!r}" if path else "the body"


def _value_of(path: list[str]) -> str:
    return f"The value of field {'.'.join(path)!r}" if path else "The body"


def json_check(value, *, path: tuple[str, ...] = ()) -> None:
    """Refuse `value` (decoded JSON) if a string or key in it is unfit, or it is nested too deep.

    `path` is where the value sits in the body, the prefix of every field named.
    """
    # A walk with a stack, not recursion: the value may be as deep as the decoder allowed.
    # Each entry: the path to a value, and the chain of keys that leads to it (see _nesting_check).
    pending: list[tuple[list[str], list[str], object]] = [(list(path), list(path), value)]
    while pending:
        where, keys, value = pending.pop()
        if isinstance(value, (dict, list)) and len(where) - len(path) >= MAX_JSON_DEPTH:
            raise Refused(f"{_value_of(keys)} is nested deeper than {MAX_JSON_DEPTH} levels.",
                          field=".".join(keys) or None)
        if isinstance(value, str):
            if fault := value_fault(value):
                raise Refused(sentence(_value_of(where), fault), field=".".join(where) or None)
        elif isinstance(value, dict):
            children = []
            for key, inner in value.items():
                if fault := value_fault(key):
                    raise Refused(sentence(f"A key of {_named(where, 'object')}", fault),
                                  field=".".join(where) or None)
                chain = [*keys, key] if len(keys) == len(where) else keys
                children.append(([*where, key], chain, inner))
            pending.extend(reversed(children))  # popped in the order they are written
        elif isinstance(value, list):
            pending.extend(reversed([([*where, str(index)], keys, inner) for index, inner in enumerate(value)]))


def _nesting_check(text: str, path: tuple[str, ...] = ()) -> None:
    """Refuse JSON text nested deeper than MAX_JSON_DEPTH before the decoder recurses into it.

    The field named is the chain of keys down to the first array or to the limit: the
    indexes of arrays of arrays say nothing a client needs.
    """
    # One entry per open container: [is_object, key or index, a key comes next].
    open_: list[list] = []
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first in "[{":
            if len(open_) >= MAX_JSON_DEPTH:
                keys = list(path)
                for is_object, key, _ in open_:
                    if not is_object or key is None:
                        break
                    keys.append(key)
                raise Refused(f"{_value_of(keys)} is nested deeper than {MAX_JSON_DEPTH} levels.",
                              field=".".join(keys) or None)
            open_.append([True, None, True] if first == "{" else [False, 0, False])
        elif first in "]}":
            if open_:
                open_.pop()
        elif first == ",":
            if open_ and open_[-1][0]:
                open_[-1][2] = True
            elif open_:
                open_[-1][1] += 1
        elif open_ and open_[-1][0] and open_[-1][2]:
            try:
                open_[-1][1] = json.loads(token)
            except ValueError:
                open_[-1][1] = token[1:-1]
            open_[-1][2] = False


def json_decode(text: str, *, strict: bool = True, path: tuple[str, ...] = ()):
    """The value of JSON `text`, checked; `Refused` for unfit text, ValueError for text that is not JSON."""
    _nesting_check(text, path)
    value = json.loads(text, parse_constant=json.strict_constant if strict else None)
    json_check(value, path=path)
    return value


# ------------------------------------------------------------------------------
# The parsers of the researcher API
# ------------------------------------------------------------------------------
class JSONParser(parsers.JSONParser):
    """DRF's, with the body checked: `parse_error` naming the field, never a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return json_decode(stream.read().decode(encoding), strict=self.strict)
        except Refused:
            raise
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


def _form_check(data, files=None) -> None:
    for name, values in data.lists():
        if fault := value_fault(name):
            raise Refused(sentence("A field's name", fault))
        for value in values:
            if isinstance(value, str) and (fault := value_fault(value)):
                raise Refused(sentence(f"The value of field {name!r}", fault), field=name)
    for name, upload in (files or {}).items():
        if fault := value_fault(name) or value_fault(upload.name or ""):
            raise Refused(sentence(f"The name of the file sent as {name!r}", fault), field=name)


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _form_check(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _form_check(parsed.data, parsed.files)
        return parsed


class JSONField(serializers.JSONField):
    """DRF's, but JSON text from a form field is decoded with the same checks as a JSON body,
    and a value from anywhere else is walked by them."""

    def to_internal_value(self, data):
        if self.binary or getattr(data, "is_json_string", False):
            if isinstance(data, bytes):
                data = data.decode()
            try:
                return json_decode(data, path=(self.field_name,))
            except Refused as exc:
                raise serializers.ValidationError(_nested(exc, self.field_name), code="parse_error") from None
            except ValueError:
                self.fail("invalid")
        try:
            json_check(data, path=(self.field_name,))
        except Refused as exc:
            raise serializers.ValidationError(_nested(exc, self.field_name), code="parse_error") from None
        return super().to_internal_value(data)


def _nested(exc: Refused, field_name: str):
    """The message, keyed by the path below the field, so that the error names the whole path."""
    below = (exc.field or field_name).split(".")[1:]
    detail = [str(exc.detail)]
    for key in reversed(below):
        detail = {key: detail}
    return detail
