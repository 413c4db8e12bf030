"""Lines of a JSONL file read with a cap, so that no line is ever held whole past it.

Iterating a file (`for line in handle`) holds each line whole, however long it is,
and a JSONL bundle is one upload that may be a single line. `capped_lines` reads at
most the cap of a line, and the rest of a longer one in chunks that it drops, so
memory stays near the cap whatever the file holds; the long line is refused by number.
"""

import math
from collections.abc import Iterator
from typing import BinaryIO

from generation.errors import IngestError

# Room on a line beside an inline image: key, caption, seed, a data: URI's header, meta.
LINE_ROOM = 1024 * 1024
_SKIP_CHUNK = 64 * 1024
_BOM = b"\xef\xbb\xbf"


def inline_line_cap(max_image_bytes: int) -> int:
    """The longest line, in bytes, of a JSONL bundle with its images inline: the base64 of an
    image of `max_image_bytes`, and LINE_ROOM for the other fields."""
    return 4 * math.ceil(max_image_bytes / 3) + LINE_ROOM


def capped_lines(handle: BinaryIO, *, name: str, max_bytes: int) -> Iterator[tuple[int, str | None]]:
    """Each line of `handle` decoded from UTF-8, numbered from 1; None for a line over `max_bytes`.

    A byte order mark at the start is dropped. A line that is not UTF-8 refuses the file,
    naming the line and the byte.
    """
    number = 0
    while line := handle.readline(max_bytes + 1):
        number += 1
        if number == 1:
            line = line.removeprefix(_BOM)
        if len(line) > max_bytes and not line.endswith(b"\n"):
            del line  # not kept while the rest is read
            while (rest := handle.readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"{name}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the line)"
            ) from None

