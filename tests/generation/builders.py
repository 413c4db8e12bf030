"""Builders of test corpora and sample bundles: image bytes, folders with an index,
WebDataset tar shards (including hostile members) and sample bundles as folder or tar.

Everything is written with Pillow and the standard library, so a test states its input
in a few lines and nothing depends on files checked into the repository.
"""

import csv
import functools
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

# ------------------------------------------------------------------------------
# Image bytes
# ------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def colour(index: int) -> tuple[int, int, int]:
    """A distinct solid colour per index, so each image has its own bytes and hash."""
    return (index * 37 % 256, index * 91 % 256, (index * 53 + 11) % 256)


def striped(index: int, size: tuple[int, int]) -> Image.Image:
    """A distinct colour per index with a stripe of its opposite across it: a picture, not
    the one-colour image a safety filter returns (which imports flag as blank)."""
    image = Image.new("RGB", size, colour(index))
    opposite = tuple(255 - c for c in colour(index))
    ImageDraw.Draw(image).rectangle((0, 0, max(0, size[0] // 3 - 1), size[1]), fill=opposite)
    return image


def blank(size: tuple[int, int] = (16, 12), fill=(0, 0, 0)) -> bytes:
    """What a safety filter returns: one colour."""
    return encode(Image.new("RGB", size, fill), "PNG")


def jpeg(index: int = 0, size: tuple[int, int] = (16, 12)) -> bytes:
    return encode(striped(index, size), "JPEG", quality=90)


def png(index: int = 0, size: tuple[int, int] = (16, 12), mode: str = "RGB") -> bytes:
    return encode(striped(index, size) if mode == "RGB" else Image.new(mode, size, 0), "PNG")


def webp(index: int = 0, size: tuple[int, int] = (16, 12)) -> bytes:
    return encode(striped(index, size), "WEBP", lossless=True)


def noisy_jpeg(size: tuple[int, int] = (256, 256)) -> bytes:
    """A JPEG that does not compress well: tens of kilobytes."""
    return encode(Image.effect_noise(size, 80).convert("RGB"), "JPEG", quality=95)


def cmyk_jpeg(index: int = 0) -> bytes:
    return encode(Image.new("CMYK", (16, 12), (*colour(index), 17)), "JPEG")


def grey16_png() -> bytes:
    image = Image.new("I;16", (16, 12))
    image.putpixel((3, 4), 40_000)  # a value only 16 bits can hold
    return encode(image, "PNG")


def truncated_jpeg() -> bytes:
    data = noisy_jpeg((64, 64))
    return data[: len(data) // 2]


def png_corrupt_idat() -> bytes:
    """A PNG whose compressed pixel data is damaged: opens, then fails to decode."""
    data = bytearray(encode(Image.effect_noise((32, 32), 80).convert("RGB"), "PNG"))
    start = data.find(b"IDAT") + 4
    for offset in range(10, 30):
        data[start + offset] ^= 0xFF
    return bytes(data)


def png_corrupt_header() -> bytes:
    """A PNG whose IHDR chunk fails its checksum: refused when opened."""
    data = bytearray(png(3))
    data[data.find(b"IHDR") + 4 + 13] ^= 0xFF  # first byte of the chunk's CRC, after 13 data bytes
    return bytes(data)


@functools.cache
def large_png(width: int, height: int) -> bytes:
    """A few kilobytes that decode to width × height pixels (bilevel, so cheap to build)."""
    return encode(Image.new("1", (width, height)), "PNG")


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 12), colour(i)) for i in range(2)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


NOT_AN_IMAGE = b"these bytes are text, not an image\n"


# ------------------------------------------------------------------------------
# Corpus folders (captions.jsonl / captions.csv next to the image files)
# ------------------------------------------------------------------------------


@dataclass
class Pair:
    """One text-image pair of a test corpus."""

    key: str
    caption: str
    data: bytes
    meta: dict = field(default_factory=dict)
    extension: str = "jpg"

    @property
    def file(self) -> str:
        return f"{self.key}.{self.extension}"


def pairs(count: int, *, start: int = 0) -> list[Pair]:
    """`count` good pairs with distinct keys and images: k000, k001, ..."""
    return [Pair(f"k{i:03d}", f"a photo of thing number {i}", jpeg(i)) for i in range(start, start + count)]


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_jsonl(path: Path, rows: list) -> Path:
    """One line per row: dicts are JSON-encoded, strings are written as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def jsonl_folder(root: Path, items: list[Pair], *, extra_rows: list | None = None) -> Path:
    """A corpus folder: the images plus captions.jsonl (key, caption, file, then meta fields)."""
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, {pair.file: pair.data for pair in items})
    rows = [{"key": p.key, "caption": p.caption, "file": p.file, **p.meta} for p in items]
    write_jsonl(root / "captions.jsonl", rows + (extra_rows or []))
    return root


def csv_folder(root: Path, items: list[Pair], *, extra_columns: list[str] = ()) -> Path:
    """A corpus folder with captions.csv; `extra_columns` are read from each pair's meta."""
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, {pair.file: pair.data for pair in items})
    header = ["key", "caption", "file", *extra_columns]
    write_csv(root / "captions.csv", header,
              [[p.key, p.caption, p.file, *(p.meta[c] for c in extra_columns)] for p in items])
    return root


# ------------------------------------------------------------------------------
# Tar archives with arbitrary members
# ------------------------------------------------------------------------------


@dataclass
class Member:
    """A tar member: a regular file unless `type` says otherwise."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""

    def info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = 0o644
        info.mtime = 1_700_000_000
        if self.type == tarfile.REGTYPE:
            info.size = len(self.data)
        info.linkname = self.linkname
        if self.type == tarfile.CHRTYPE:
            info.devmajor, info.devminor = 1, 3  # /dev/null
        return info


def regular(name: str, data: bytes) -> Member:
    return Member(name, data)


def symlink(name: str, target: str = "/etc/passwd") -> Member:
    return Member(name, type=tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Member:
    return Member(name, type=tarfile.LNKTYPE, linkname=target)


def char_device(name: str) -> Member:
    return Member(name, type=tarfile.CHRTYPE)


def fifo(name: str) -> Member:
    return Member(name, type=tarfile.FIFOTYPE)


def write_tar(path: Path, members: list[Member]) -> Path:
    """Write members exactly as given: names are not cleaned, links are not resolved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for member in members:
            info = member.info()
            archive.addfile(info, io.BytesIO(member.data) if info.isreg() else None)
    return path


def pair_members(pair: Pair, *, caption_in_json: bool = False) -> list[Member]:
    """WebDataset members of one pair: KEY.jpg, KEY.json (if meta), KEY.txt (the caption)."""
    members = [regular(pair.file, pair.data)]
    meta = dict(pair.meta)
    if caption_in_json:
        meta["caption"] = pair.caption
    if meta:
        members.append(regular(f"{pair.key}.json", json.dumps(meta).encode()))
    if not caption_in_json:
        members.append(regular(f"{pair.key}.txt", pair.caption.encode()))
    return members


def shard(path: Path, items: list[Pair], *, extra: list[Member] = (), caption_in_json: bool = False) -> Path:
    """A WebDataset shard as img2dataset writes it, plus `extra` members at the end."""
    members = [m for pair in items for m in pair_members(pair, caption_in_json=caption_in_json)]
    return write_tar(path, members + list(extra))


# ------------------------------------------------------------------------------
# Sample bundles (manifest.jsonl with key, file, seed)
# ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One sample of a bundle: `file` in the manifest, `data` stored under that name."""

    key: str
    seed: int
    data: bytes
    file: str = ""

    def __post_init__(self):
        self.file = self.file or f"samples/{self.key}-{self.seed}.png"

    def row(self) -> dict:
        return {"key": self.key, "file": self.file, "seed": self.seed}


def bundle_folder(root: Path, entries: list[Entry], *, extra_rows: list | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_files(root, {e.file: e.data for e in entries})
    write_jsonl(root / "manifest.jsonl", [e.row() for e in entries] + (extra_rows or []))
    return root


def bundle_tar(path: Path, entries: list[Entry], *, extra_rows: list | None = None,
               extra: list[Member] = ()) -> Path:
    rows = [e.row() for e in entries] + (extra_rows or [])
    manifest = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()
    members = [regular("manifest.jsonl", manifest)] + [regular(e.file, e.data) for e in entries]
    return write_tar(path, members + list(extra))


# ------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------


def stored_files(media_root: Path) -> list[str]:
    """Every file under MEDIA_ROOT, relative and sorted: the check that nothing was left."""
    found = []
    for folder, _, names in os.walk(media_root):
        found += [Path(folder, name).relative_to(media_root).as_posix() for name in names]
    return sorted(found)
