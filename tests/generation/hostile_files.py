"""Files built to cost an import memory or time: an archive of many members, a compressed
tar that expands far past its size, tar headers tarfile reads whole, a JSONL line far
longer than any image. Each is written to disk as it is built, never held whole."""

import base64
import io
import json
import tarfile
import zipfile
from pathlib import Path

from tests.generation import builders as b

# What a member holds in a "many members" archive: nothing, like the reported one.
EMPTY = b""


class Zeros(io.RawIOBase):
    """`size` zero bytes, read in whatever pieces the reader asks for."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def many_members_tar(path: Path, count: int, *, index: bytes | None = None) -> Path:
    """`count` empty .png members (after captions.jsonl or manifest.jsonl when `index` is given,
    named by `path`'s stem); compressed as the name says (.tar.gz)."""
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as archive:
        if index is not None:
            info = tarfile.TarInfo(_index_name(path))
            info.size = len(index)
            archive.addfile(info, io.BytesIO(index))
        for number in range(count):
            archive.addfile(tarfile.TarInfo(f"m{number:07d}.png"), io.BytesIO(EMPTY))
    return path


def many_members_zip(path: Path, count: int, *, index: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(_index_name(path), index)
        for number in range(count):
            archive.writestr(f"m{number:07d}.png", EMPTY)
    return path


def _index_name(path: Path) -> str:
    return "manifest.jsonl" if "bundle" in path.name else "captions.jsonl"


def expanding_tar(path: Path, expanded: int, *, index: bytes | None = None) -> Path:
    """A tar.gz whose one large member is `expanded` zero bytes: a thousandth of that on disk."""
    with tarfile.open(path, "w:gz") as archive:
        if index is not None:
            info = tarfile.TarInfo(_index_name(path))
            info.size = len(index)
            archive.addfile(info, io.BytesIO(index))
        info = tarfile.TarInfo("zeros.png")
        info.size = expanded
        archive.addfile(info, Zeros(expanded))
        archive.addfile(tarfile.TarInfo("after.png"), io.BytesIO(EMPTY))
    return path


def long_pax_header_tar(path: Path, name_length: int) -> Path:
    """One member whose name is so long that it travels in a pax header of that size."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(tarfile.TarInfo("n" * name_length + ".png"), io.BytesIO(EMPTY))
    return path


def pax_sparse_tar(path: Path) -> Path:
    """A member in GNU's pax sparse format 1.0, whose map tarfile reads from the data, unbounded."""
    data = b"1\n0\n4\n".ljust(tarfile.BLOCKSIZE, b"\0") + b"abcd"
    info = tarfile.TarInfo("sparse.png")
    info.size = len(data)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse.png",
                        "GNU.sparse.realsize": "4"}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
    return path


def nested_long_names_tar(path: Path, depth: int) -> Path:
    """`depth` GNU long-name headers in a row before one member: tarfile reads each inside the last."""
    with path.open("wb") as out:
        for _ in range(depth):
            header = tarfile.TarInfo("././@LongLink")
            header.type = tarfile.GNUTYPE_LONGNAME
            header.size = 6
            out.write(header.tobuf(tarfile.GNU_FORMAT) + b"x.png\0".ljust(tarfile.BLOCKSIZE, b"\0"))
        out.write(tarfile.TarInfo("x.png").tobuf(tarfile.GNU_FORMAT) + bytes(2 * tarfile.BLOCKSIZE))
    return path


def jsonl_with_a_long_line(path: Path, length: int, *, fields: dict) -> Path:
    """A JSONL bundle: a good line, then `fields` with an `image` of `length` base64 characters,
    then a good line; written in pieces."""
    good = [{**fields, "key": f"good-{i}", "image": base64.b64encode(b.png(300 + i)).decode()} for i in range(2)]
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(good[0]) + "\n")
        head = json.dumps({**fields, "key": "long", "image": ""})[:-2]  # up to the image's opening quote
        out.write(head)
        piece = "A" * (1024 * 1024)
        for start in range(0, length, len(piece)):
            out.write(piece[: length - start])
        out.write('"}\n')
        out.write(json.dumps(good[1]) + "\n")
    return path
