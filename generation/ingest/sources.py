"""Readers of corpus and sample files: each yields records or rejections, one at a time.

Formats:
- a folder with `captions.jsonl` or `captions.csv` (key, caption, file; other fields
  become the item's meta);
- WebDataset tar shards as img2dataset writes them (`KEY.jpg|png|webp`, `KEY.txt`
  caption, optional `KEY.json`), one shard, a folder of shards or a glob;
- a tar or zip archive with `captions.jsonl` or `captions.csv` at its top, laid out
  like the folder (what the API receives as an upload);
- a sample bundle: a folder, tar or zip with `manifest.jsonl` (key, file, seed);
- a JSONL bundle: one `.jsonl` file whose lines carry their image inline, base64 in
  the field `image` (plain or as a `data:image/png;base64,...` URI) — key, caption,
  image for a corpus (other fields become meta), key, seed, image for samples. What
  a notebook writes without building an archive.

A bad record becomes a `Rejection` naming its file and line or archive member, so one
import can report every problem at once. Archive members are read, never extracted,
and links, devices and paths outside the archive are refused outright
(`generation.ingest.archives`). A JSONL line is read with a cap (`generation.ingest.lines`),
and every string a record carries is checked for what a database cannot store
(`generation.ingest.text`).
"""

import base64
import binascii
import csv
import glob
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from generation.errors import IngestError, Rejection
from generation.ingest.archives import (
    IMAGE_EXTENSIONS,
    Archive,
    ArchiveLimits,
    check_tar_member,
    is_tar_name,
    is_zip_name,
    open_tar_stream,
    tar_members,
)
from generation.ingest.lines import LINE_ROOM, capped_lines, inline_line_cap
from generation.ingest.text import checked_meta, checked_text

CORPUS_INDEXES = ("captions.jsonl", "captions.csv")
INDEX_FIELDS = ("key", "caption", "file")
MANIFEST = "manifest.jsonl"
INLINE_IMAGE = "image"


@dataclass
class Record:
    key: str
    data: bytes
    origin: str
    caption: str | None = None
    seed: int | None = None
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------
# Corpora
# ------------------------------------------------------------------------------


def corpus_records(source: str, *, max_bytes: int, limits: ArchiveLimits) -> Iterator[Record | Rejection]:
    """Records of a corpus folder or of WebDataset shards (a path, a folder of shards or a glob).

    `max_bytes` caps one image; `limits` refuses an archive whole.
    """
    path = Path(source)
    if path.is_dir():
        indexes = [path / name for name in CORPUS_INDEXES if (path / name).is_file()]
        if len(indexes) > 1:
            raise IngestError(f"{source}: has both captions.jsonl and captions.csv; keep one")
        if indexes:
            index = indexes[0]
            if index.suffix == ".jsonl":
                return _folder_jsonl(path, index, max_bytes=max_bytes)
            return _folder_csv(path, index, max_bytes=max_bytes)
        shards = sorted(str(p) for p in path.glob("*.tar"))
        if not shards:
            raise IngestError(
                f"{source}: no captions.jsonl, captions.csv or .tar shards in this folder"
            )
        return _webdataset(shards, max_bytes=max_bytes, limits=limits)
    if path.is_file() and is_jsonl_name(source):
        return _jsonl_corpus(path, max_bytes=max_bytes)
    if path.is_file() and (is_zip_name(source) or (is_tar_name(source) and _has_corpus_index(path, limits))):
        return _archive_corpus(path, max_bytes=max_bytes, limits=limits)
    shards = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
    if not shards:
        raise IngestError(f"{source}: no file matches this pattern")
    for shard in shards:
        if not Path(shard).is_file():
            raise IngestError(f"{shard}: no such file or folder")
        if not is_tar_name(shard):
            raise IngestError(f"{shard}: not a folder or a WebDataset .tar shard")
    return _webdataset(shards, max_bytes=max_bytes, limits=limits)


def _folder_jsonl(root: Path, index: Path, *, max_bytes: int) -> Iterator[Record | Rejection]:
    with index.open("rb") as handle:
        yield from _index_records(_jsonl_rows(handle, index, max_bytes=LINE_ROOM), _folder_reader(root, max_bytes))


def _folder_csv(root: Path, index: Path, *, max_bytes: int) -> Iterator[Record | Rejection]:
    with index.open(encoding="utf-8-sig", newline="") as handle:
        yield from _index_records(_csv_rows(handle, index), _folder_reader(root, max_bytes))


def _folder_reader(root: Path, max_bytes: int):
    return lambda name, origin: _read_capped(_inside(root, name, origin), origin, max_bytes)


def _archive_corpus(path: Path, *, max_bytes: int, limits: ArchiveLimits) -> Iterator[Record | Rejection]:
    """An archive laid out like a corpus folder: captions.jsonl or captions.csv at its top."""
    with Archive(path, max_bytes=max_bytes, limits=limits, index_names=CORPUS_INDEXES) as archive:
        yield from archive.refused
        indexes = [name for name in CORPUS_INDEXES if name in archive.files]
        if len(indexes) > 1:
            raise IngestError(f"{path}: has both captions.jsonl and captions.csv; keep one")
        if not indexes:
            raise IngestError(f"{path}: no captions.jsonl or captions.csv at the top of the archive")
        index = f"{path}:{indexes[0]}"
        try:
            data = archive.read(indexes[0], index)
        except Rejection as rejection:
            raise IngestError(str(rejection)) from None
        if indexes[0].endswith(".jsonl"):
            rows = _jsonl_rows(io.BytesIO(data), index, max_bytes=LINE_ROOM)
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise IngestError(f"{index}: not valid UTF-8") from None
            rows = _csv_rows(io.StringIO(text, newline=""), index)
        yield from _index_records(rows, lambda name, origin: archive.read(archive.resolve(name, origin), origin))


def _jsonl_corpus(path: Path, *, max_bytes: int) -> Iterator[Record | Rejection]:
    """A corpus in one JSONL file: key, caption and the image inline, line by line."""
    with path.open("rb") as handle:
        for origin, row in _jsonl_rows(handle, path, max_bytes=inline_line_cap(max_bytes)):
            if isinstance(row, Rejection):
                yield row
                continue
            try:
                key, caption = (_text_field(row, field, origin) for field in ("key", "caption"))
                meta = _meta(row, ("key", "caption", INLINE_IMAGE), origin)
                data = _inline_image(row, origin, max_bytes)
            except Rejection as rejection:
                yield rejection
                continue
            yield Record(key=key, caption=caption, data=data, meta=meta, origin=origin)


def _jsonl_rows(handle, index, *, max_bytes: int) -> Iterator[tuple[str, dict | Rejection]]:
    """The JSON object of each non-blank line of a binary `handle`; a line over `max_bytes` is
    refused as it is read, never held whole."""
    for number, line in capped_lines(handle, name=str(index), max_bytes=max_bytes):
        origin = f"{index}:{number}"
        if line is None:
            yield origin, Rejection(origin, _line_too_long(max_bytes))
            continue
        if not line.strip():
            continue
        try:
            yield origin, _json_object(line, origin)
        except Rejection as rejection:
            yield origin, rejection


def _line_too_long(max_bytes: int) -> str:
    if max_bytes == LINE_ROOM:
        return f"line is over {max_bytes:,} bytes, more than the fields of one record need"
    return (
        f"line is over {max_bytes:,} bytes: more than an image of PARITY_MAX_IMAGE_BYTES in base64 "
        f"and {LINE_ROOM:,} bytes of other fields"
    )


def _csv_rows(handle, index) -> Iterator[tuple[str, dict | Rejection]]:
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        raise IngestError(f"{index}: the file is empty (expected a header: key,caption,file)") from None
    missing = [c for c in INDEX_FIELDS if c not in header]
    if missing:
        raise IngestError(f"{index}:1: header lacks column(s) {', '.join(missing)}")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            origin = f"{index}:{reader.line_num}"
            yield origin, Rejection(origin, f"malformed CSV: {exc}")
            continue
        origin = f"{index}:{reader.line_num}"
        if not values:
            continue
        if len(values) != len(header):
            yield origin, Rejection(origin, f"expected {len(header)} columns ({','.join(header)}), found {len(values)}")
            continue
        yield origin, dict(zip(header, values))


def _index_records(rows, read) -> Iterator[Record | Rejection]:
    """The record of each index row (key, caption, file; other fields become meta).

    `read(name, origin)` returns the bytes of the file the row names, or raises `Rejection`.
    """
    for origin, row in rows:
        if isinstance(row, Rejection):
            yield row
            continue
        try:
            key, caption, name = (_text_field(row, field, origin) for field in INDEX_FIELDS)
            meta = _meta(row, INDEX_FIELDS, origin)
            data = read(name, origin)
        except Rejection as rejection:
            yield rejection
            continue
        yield Record(key=key, caption=caption, data=data, meta=meta, origin=f"{origin} ({name})")


def _webdataset(shards: list[str], *, max_bytes: int, limits: ArchiveLimits) -> Iterator[Record | Rejection]:
    for shard in shards:
        try:
            with open_tar_stream(shard) as archive:
                group_key, group = None, {}
                for member in tar_members(archive, path=shard, limits=limits):
                    origin = f"{shard}:{member.name}"
                    if member.isdir():
                        continue
                    try:
                        check_tar_member(member, origin, max_bytes)
                    except Rejection as rejection:
                        yield rejection
                        continue
                    key, extension = _split_key(member.name)
                    if key != group_key:
                        if group:
                            yield _webdataset_record(shard, group_key, group)
                        group_key, group = key, {}
                    if extension in group:
                        yield Rejection(origin, f"second member with extension .{extension} for key {key!r}")
                        continue
                    group[extension] = (archive.extractfile(member).read(), origin)
                if group:
                    yield _webdataset_record(shard, group_key, group)
        except (tarfile.TarError, EOFError, OSError) as exc:
            yield Rejection(shard, f"not a readable tar archive: {exc}")


def _webdataset_record(shard: str, key: str, group: dict) -> Record | Rejection:
    try:
        return _checked_webdataset_record(shard, key, group)
    except Rejection as rejection:
        return rejection


def _checked_webdataset_record(shard: str, key: str, group: dict) -> Record | Rejection:
    origin = f"{shard}:{key}"
    checked_text(key, field="key", origin=origin)
    images = [ext for ext in group if ext.lower() in IMAGE_EXTENSIONS]
    if not images:
        return Rejection(origin, f"no image for key {key!r} (expected {key}.jpg, .png or .webp)")
    if len(images) > 1:
        return Rejection(origin, f"more than one image for key {key!r}: {', '.join(sorted(images))}")
    data, image_origin = group[images[0]]
    meta = {}
    if "json" in group:
        raw, json_origin = group["json"]
        try:
            meta = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # not UTF-8, not JSON, or an integer past Python's limit on digits
            return Rejection(json_origin, f"malformed JSON: {exc}")
        except RecursionError:
            return Rejection(json_origin, "malformed JSON: nested too deeply")
        if not isinstance(meta, dict):
            return Rejection(json_origin, "expected a JSON object")
        checked_meta(meta, origin=json_origin)
    if "txt" in group:
        raw, txt_origin = group["txt"]
        try:
            caption = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection(txt_origin, "caption is not valid UTF-8")
        checked_text(caption, field="caption", origin=txt_origin)
    elif isinstance(meta.get("caption"), str):
        caption = meta["caption"]
    else:
        return Rejection(origin, f"no caption for key {key!r} (expected {key}.txt)")
    return Record(key=key, caption=caption, data=data, origin=image_origin, meta=meta)


# ------------------------------------------------------------------------------
# Sample bundles
# ------------------------------------------------------------------------------


def bundle_records(source: str, *, max_bytes: int, limits: ArchiveLimits) -> Iterator[Record | Rejection]:
    """Records of a sample bundle: a folder, tar or zip holding `manifest.jsonl` (key, file, seed),
    or a JSONL bundle. `max_bytes` caps one image; `limits` refuses an archive whole."""
    path = Path(source)
    if path.is_dir():
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise IngestError(f"{source}: no {MANIFEST} in this folder")
        return _folder_bundle(path, manifest, max_bytes=max_bytes)
    if path.is_file() and (is_tar_name(source) or is_zip_name(source)):
        return _archive_bundle(path, max_bytes=max_bytes, limits=limits)
    if path.is_file() and is_jsonl_name(source):
        return _jsonl_bundle(path, max_bytes=max_bytes)
    if not path.exists():
        raise IngestError(f"{source}: no such file or folder")
    raise IngestError(f"{source}: not a folder, a .tar or .zip bundle, or a .jsonl bundle")


def _folder_bundle(root: Path, manifest: Path, *, max_bytes: int) -> Iterator[Record | Rejection]:
    with manifest.open("rb") as handle:
        for origin, row in _jsonl_rows(handle, manifest, max_bytes=LINE_ROOM):
            try:
                key, name, seed = _manifest_entry(row, origin)
                data = _read_capped(_inside(root, name, origin), origin, max_bytes)
            except Rejection as rejection:
                yield rejection
                continue
            yield Record(key=key, seed=seed, data=data, origin=f"{origin} ({name})")


def _archive_bundle(path: Path, *, max_bytes: int, limits: ArchiveLimits) -> Iterator[Record | Rejection]:
    with Archive(path, max_bytes=max_bytes, limits=limits, index_names=(MANIFEST,)) as archive:
        yield from archive.refused
        if MANIFEST not in archive.files:
            raise IngestError(f"{path}: no {MANIFEST} at the top of the archive")
        try:
            manifest = io.BytesIO(archive.read(MANIFEST, f"{path}:{MANIFEST}"))
        except Rejection as rejection:
            raise IngestError(str(rejection)) from None
        for origin, row in _jsonl_rows(manifest, f"{path}:{MANIFEST}", max_bytes=LINE_ROOM):
            try:
                key, name, seed = _manifest_entry(row, origin)
                data = archive.read(archive.resolve(name, origin), origin)
            except Rejection as rejection:
                yield rejection
                continue
            yield Record(key=key, seed=seed, data=data, origin=f"{origin} ({name})")


def _jsonl_bundle(path: Path, *, max_bytes: int) -> Iterator[Record | Rejection]:
    """Samples in one JSONL file: key, seed and the image inline, line by line."""
    with path.open("rb") as handle:
        for origin, row in _jsonl_rows(handle, path, max_bytes=inline_line_cap(max_bytes)):
            try:
                if isinstance(row, Rejection):
                    raise row
                key, seed = _item_key(row, origin), _seed(row, origin)
                data = _inline_image(row, origin, max_bytes)
            except Rejection as rejection:
                yield rejection
                continue
            yield Record(key=key, seed=seed, data=data, origin=origin)


def _manifest_entry(row: dict | Rejection, origin: str) -> tuple[str, str, int]:
    if isinstance(row, Rejection):
        raise row
    return _item_key(row, origin), _text_field(row, "file", origin), _seed(row, origin)


def _item_key(row: dict, origin: str) -> str:
    if "key" not in row and "item_key" in row:
        row["key"] = row.pop("item_key")
    return _text_field(row, "key", origin)


def _seed(row: dict, origin: str) -> int:
    if "seed" not in row:
        raise Rejection(origin, "missing field 'seed'")
    seed = row["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise Rejection(origin, f"field 'seed' must be an integer, got {seed!r}")
    if not -(2**63) <= seed < 2**63:
        raise Rejection(origin, "field 'seed' does not fit in 64 bits")
    return seed


# ------------------------------------------------------------------------------
# Shared checks
# ------------------------------------------------------------------------------


def _json_object(line: str, origin: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise Rejection(origin, f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:  # an integer past Python's limit on digits
        raise Rejection(origin, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise Rejection(origin, "malformed JSON: nested too deeply") from None
    if not isinstance(row, dict):
        raise Rejection(origin, f"expected a JSON object, got {type(row).__name__}")
    return row


def _text_field(row: dict, name: str, origin: str) -> str:
    if name not in row or row[name] is None:
        raise Rejection(origin, f"missing field {name!r}")
    value = row[name]
    if isinstance(value, int) and not isinstance(value, bool) and name == "key":
        value = str(value)
    if not isinstance(value, str):
        raise Rejection(origin, f"field {name!r} must be a string, got {type(value).__name__}")
    return checked_text(value, field=name, origin=origin)


def _meta(row: dict, fields: tuple[str, ...], origin: str) -> dict:
    """The row's other fields, which become the record's meta."""
    return checked_meta({k: v for k, v in row.items() if k not in fields}, origin=origin)


def _inline_image(row: dict, origin: str, max_bytes: int) -> bytes:
    """The image a JSONL line carries in its `image` field: base64, plain or as a data: URI."""
    value = _text_field(row, INLINE_IMAGE, origin)
    if value.startswith("data:"):
        header, comma, value = value.partition(",")
        if not comma or not header.endswith(";base64"):
            raise Rejection(origin, "field 'image': a data: URI must be base64 (data:image/png;base64,...)")
    # Checked before decoding, so that an oversized line costs no memory beyond itself.
    size = len(value) * 3 // 4 - value.endswith("=") - value.endswith("==")
    if size > max_bytes:
        raise Rejection(origin, f"field 'image' holds about {size:,} bytes, over the limit of {max_bytes:,} bytes")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejection(origin, f"field 'image' is not valid base64 ({exc})") from None


def is_jsonl_name(name: str) -> bool:
    return name.endswith(".jsonl")


def _inside(root: Path, name: str, origin: str) -> Path:
    if os.path.isabs(name):
        raise Rejection(origin, f"file {name!r} is an absolute path; give it relative to {root}")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise Rejection(origin, f"file {name!r} points outside {root}")
    if not path.is_file():
        raise Rejection(origin, f"file {name!r} not found in {root}")
    return path


def _read_capped(path: Path, origin: str, max_bytes: int) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise Rejection(origin, f"{path.name} is {size:,} bytes, over the limit of {max_bytes:,} bytes")
    return path.read_bytes()


def _has_corpus_index(path: Path, limits: ArchiveLimits) -> bool:
    """Whether a tar holds captions.jsonl or .csv at its top (else it is a WebDataset shard)."""
    try:
        with open_tar_stream(path) as archive:
            members = tar_members(archive, path=path, limits=limits)
            return any(str(PurePosixPath(member.name)) in CORPUS_INDEXES for member in members)
    except (tarfile.TarError, EOFError, OSError):
        return False  # the WebDataset reader reports it


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset's rule: the key is the path up to the first dot of the file name."""
    path = PurePosixPath(name)
    base, _, extension = path.name.partition(".")
    key = str(path.parent / base) if str(path.parent) != "." else base
    return key, extension
