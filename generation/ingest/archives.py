"""Tar and zip archives read safely: members are read one at a time, never extracted.

A member that could escape or mislead an extraction (absolute path, `..`, link,
device) or that passes a byte cap is refused by name. The readers of
`generation.ingest.sources` use `Archive` for uploaded corpus archives and sample
bundles, and `open_tar_stream` with `tar_members` for WebDataset shards; uploads count
an archive's images with `archive_image_count` before deciding where to import it.

An archive as a whole is bounded before the work grows (`ArchiveLimits`): its members
are counted as they are read (a zip's from its central directory, before zipfile
parses it), a compressed tar may expand only so far, and tar headers that tarfile
would read whole into memory (long names, pax and sparse headers) are capped or refused.
"""

import bz2
import gzip
import lzma
import os
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from generation.errors import IngestError, Rejection
from generation.ingest.lines import LINE_ROOM, capped_lines

IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp"}
# An index or manifest lists every record, so it may be far larger than one image.
MAX_INDEX_BYTES = 256 * 1024 * 1024
# A long name, or the pax records of one member (path, times, owner), takes a few
# hundred bytes; tarfile reads such a header whole, and nests the next inside it.
MAX_TAR_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """What refuses an archive whole: more than `members` members, or a compressed tar that
    expands past `expanded` bytes (or past its own size, where that is larger)."""

    members: int
    expanded: int

    def expanded_cap(self, path: Path) -> int:
        # An uncompressed tar never expands past its own size, however large the file.
        return max(self.expanded, path.stat().st_size)


def check_tar_member(member: tarfile.TarInfo, origin: str, max_bytes: int) -> None:
    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise Rejection(origin, "absolute path in archive refused")
    if ".." in PurePosixPath(name).parts:
        raise Rejection(origin, "path with '..' in archive refused")
    if member.issym():
        raise Rejection(origin, f"symbolic link refused (to {member.linkname!r})")
    if member.islnk():
        raise Rejection(origin, f"hard link refused (to {member.linkname!r})")
    if member.isdev():
        raise Rejection(origin, "device file or FIFO refused")
    if not member.isfile():
        raise Rejection(origin, "not a regular file")
    if member.size > max_bytes:
        raise Rejection(origin, f"member is {member.size:,} bytes, over the limit of {max_bytes:,} bytes")


def check_zip_member(info: zipfile.ZipInfo, origin: str, max_bytes: int) -> None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or PureWindowsPath(info.filename).drive:
        raise Rejection(origin, "absolute path in archive refused")
    if ".." in PurePosixPath(name).parts:
        raise Rejection(origin, "path with '..' in archive refused")
    mode = info.external_attr >> 16  # the Unix mode, where the archiver recorded one
    if stat.S_ISLNK(mode):
        raise Rejection(origin, "symbolic link refused")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # no type recorded, or a regular file
        raise Rejection(origin, "not a regular file")
    if info.file_size > max_bytes:
        raise Rejection(origin, f"member is {info.file_size:,} bytes, over the limit of {max_bytes:,} bytes")


class _HeaderRefused(Exception):
    """A tar header that `_GuardedTarInfo` will not let tarfile read."""


class _GuardedTarInfo(tarfile.TarInfo):
    """tarfile's TarInfo with caps on the headers it would read whole into memory.

    `_proc_member` is tarfile's documented hook for subclasses; `_proc_gnusparse_10` is
    its private reader of a pax sparse map, overridden to refuse one (a test builds one).
    """

    def _proc_member(self, tarfile_):
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _HeaderRefused(f"sparse member {self.name!r} refused")
        extended = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                    tarfile.SOLARIS_XHDTYPE)
        if self.type in extended and self.size > MAX_TAR_HEADER_BYTES:
            raise _HeaderRefused(
                f"a long-name or pax header of {self.size:,} bytes refused (at most {MAX_TAR_HEADER_BYTES:,})"
            )
        if self.type == tarfile.XGLTYPE:
            # A global pax header adds to what every later member carries: they add up.
            seen = getattr(tarfile_, "parity_global_header_bytes", 0) + self.size
            if seen > MAX_TAR_HEADER_BYTES:
                raise _HeaderRefused(f"global pax headers of more than {MAX_TAR_HEADER_BYTES:,} bytes refused")
            tarfile_.parity_global_header_bytes = seen
        return super()._proc_member(tarfile_)

    def _proc_gnusparse_10(self, next, pax_headers, tarfile_):
        raise _HeaderRefused(f"sparse member {next.name!r} refused")


@contextmanager
def _header_refusals(path: Path | str) -> Iterator[None]:
    try:
        yield
    except _HeaderRefused as refused:
        raise IngestError(f"{path}: {refused}") from None
    except RecursionError:
        # Each long-name or pax header makes tarfile read the next one inside it.
        raise IngestError(f"{path}: tar headers nested too deeply") from None


@contextmanager
def open_tar_stream(path: Path | str) -> Iterator[tarfile.TarFile]:
    """A tar, compressed or not, read front to back once; iterate it with `tar_members`."""
    with _header_refusals(path):
        archive = tarfile.open(path, mode="r|*", tarinfo=_GuardedTarInfo)
    with archive:
        yield archive


def tar_members(archive: tarfile.TarFile, *, path: Path | str, limits: ArchiveLimits) -> Iterator[tarfile.TarInfo]:
    """The members of `archive`, one header at a time, refused whole past `limits`.

    A member is checked before tarfile moves past its data, so a compressed tar is
    never expanded beyond the cap, whatever sizes its headers claim.
    """
    expanded = limits.expanded_cap(Path(path))
    members = iter(archive)
    count = 0
    while True:
        with _header_refusals(path):
            member = next(members, None)
        if member is None:
            return
        count += 1
        if count > limits.members:
            raise IngestError(_too_many_members(path, limits))
        if member.offset_data + member.size > expanded:
            raise IngestError(_expands_too_far(path, expanded))
        yield member


def _too_many_members(path: Path | str, limits: ArchiveLimits) -> str:
    return (
        f"{path}: more than {limits.members:,} members in the archive, the limit of "
        "PARITY_MAX_ARCHIVE_MEMBERS; nothing was read further"
    )


def _expands_too_far(path: Path | str, cap: int) -> str:
    return f"{path}: the archive expands past {cap:,} bytes (PARITY_MAX_UPLOAD_BYTES); nothing was read further"


# How a compressed tar starts, and what reads it: the compressions tarfile itself reads.
_COMPRESSIONS = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
_COPY_CHUNK = 1024 * 1024


def _expansion(path: Path, cap: int):
    """A temporary file holding the tar inside a compressed one, or None for a plain tar.

    Reading members in an index's order seeks back and forth, and a compressed stream
    seeks back by decompressing again from its start: expanded once, it is read like a
    plain tar. The copy stops at `cap` bytes.
    """
    with path.open("rb") as handle:
        magic = handle.read(6)
    opener = next((opener for prefix, opener in _COMPRESSIONS if magic.startswith(prefix)), None)
    if opener is None:
        return None
    expansion = tempfile.TemporaryFile(prefix="parity-tar-")
    try:
        with opener(path, "rb") as stream:
            while chunk := stream.read(_COPY_CHUNK):
                if expansion.tell() + len(chunk) > cap:
                    raise IngestError(_expands_too_far(path, cap))
                expansion.write(chunk)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        expansion.close()
        raise IngestError(f"{path}: not a readable tar archive: {exc}") from None
    except BaseException:
        expansion.close()
        raise
    expansion.seek(0)
    return expansion


# The zip records that say where the central directory is and what it holds.
_ZIP_END = struct.Struct("<4s4H2LH")
_ZIP64_END_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP_ENTRY = struct.Struct("<4s4B4HL2L5H2L")


def zip_member_count(path: Path, *, stop_after: int) -> int:
    """The entries of a zip's central directory, counted header by header up to `stop_after` + 1.

    zipfile reads the whole central directory into objects when it opens an archive,
    and a small zip may list millions of entries. The walk follows zipfile's own reading
    (the last end record, zip64 where present, entries up to the directory's size); a
    malformed archive counts as far as it goes, and zipfile then refuses it.
    """
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _ZIP_END.size))
        last = handle.read()
        if len(last) == _ZIP_END.size and last[:4] == b"PK\x05\x06" and last[-2:] == b"\0\0":
            end, record = size - _ZIP_END.size, last  # no comment: the record ends the file
        else:
            tail_start = max(0, size - _ZIP_END.size - 0xFFFF - 1)
            handle.seek(tail_start)
            tail = handle.read()
            at = tail.rfind(b"PK\x05\x06")
            if at < 0 or at + _ZIP_END.size > len(tail):
                return 0
            end, record = tail_start + at, tail[at:at + _ZIP_END.size]
        directory_size = _ZIP_END.unpack(record)[5]
        if end >= _ZIP64_END_LOCATOR.size + _ZIP64_END.size:
            handle.seek(end - _ZIP64_END_LOCATOR.size - _ZIP64_END.size)
            record64 = handle.read(_ZIP64_END.size)
            if handle.read(4) == b"PK\x06\x07" and record64[:4] == b"PK\x06\x06":
                directory_size = _ZIP64_END.unpack(record64)[8]
                end -= _ZIP64_END_LOCATOR.size + _ZIP64_END.size
        if directory_size > end:
            return 0
        handle.seek(end - directory_size)
        count = walked = 0
        while walked < directory_size and count <= stop_after:
            header = handle.read(_ZIP_ENTRY.size)
            if len(header) < _ZIP_ENTRY.size or header[:4] != b"PK\x01\x02":
                break
            name_length, extra_length, comment_length = _ZIP_ENTRY.unpack(header)[12:15]
            handle.seek(name_length + extra_length + comment_length, os.SEEK_CUR)
            walked += _ZIP_ENTRY.size + name_length + extra_length + comment_length
            count += 1
    return count


class Archive:
    """The regular files of a tar or zip archive, read one at a time and never extracted.

    A member that could escape or mislead an extraction (absolute path, `..`, link,
    device) or that passes the byte cap is no file of the archive: it becomes one of
    the `refused` rejections. The index files named in `index_names` get a larger cap.
    An archive past `limits` is refused whole (`IngestError`) while its members are listed.
    """

    def __init__(self, path: Path, *, max_bytes: int, limits: ArchiveLimits, index_names: tuple[str, ...] = ()):
        self.path = path
        self.files: dict[str, tarfile.TarInfo | zipfile.ZipInfo] = {}
        self.caps: dict[str, int] = {}
        self.refused: list[Rejection] = []
        self.is_zip = is_zip_name(str(path))
        self._zip = self._tar = self._expansion = None
        try:
            members = self._zip_members(limits) if self.is_zip else self._tar_members(limits)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            self.close()
            kind = "zip" if self.is_zip else "tar"
            raise IngestError(f"{path}: not a readable {kind} archive: {exc}") from None
        except BaseException:
            self.close()
            raise
        check = check_zip_member if self.is_zip else check_tar_member
        for raw_name, member in members:
            name = str(PurePosixPath(raw_name.replace("\\", "/") if self.is_zip else raw_name))
            cap = max(max_bytes, MAX_INDEX_BYTES) if name in index_names else max_bytes
            try:
                check(member, f"{path}:{raw_name}", cap)
            except Rejection as rejection:
                self.refused.append(rejection)
                continue
            self.files[name] = member
            self.caps[name] = cap

    def _zip_members(self, limits: ArchiveLimits) -> list[tuple[str, zipfile.ZipInfo]]:
        if zip_member_count(self.path, stop_after=limits.members) > limits.members:
            raise IngestError(_too_many_members(self.path, limits))
        self._zip = zipfile.ZipFile(self.path)
        return [(info.filename, info) for info in self._zip.infolist() if not info.is_dir()]

    def _tar_members(self, limits: ArchiveLimits) -> list[tuple[str, tarfile.TarInfo]]:
        self._expansion = _expansion(self.path, limits.expanded_cap(self.path))
        with _header_refusals(self.path):
            if self._expansion is None:
                self._tar = tarfile.open(self.path, mode="r:", tarinfo=_GuardedTarInfo)
            else:
                self._tar = tarfile.open(fileobj=self._expansion, mode="r:", tarinfo=_GuardedTarInfo)
        return [(m.name, m) for m in tar_members(self._tar, path=self.path, limits=limits) if not m.isdir()]

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for opened in (self._zip, self._tar, self._expansion):
            if opened is not None:
                opened.close()

    def resolve(self, name: str, origin: str) -> str:
        """The member a manifest or index line names, relative to the top of the archive."""
        normal = os.path.normpath(name)
        if normal.startswith("..") or os.path.isabs(normal):
            raise Rejection(origin, f"file {name!r} points outside the bundle")
        member = str(PurePosixPath(normal))
        if member not in self.files:
            raise Rejection(origin, f"file {name!r} is not in the bundle")
        return member

    def read(self, name: str, origin: str) -> bytes:
        member, cap = self.files[name], self.caps[name]
        if not self.is_zip:
            return self._tar.extractfile(member).read()
        try:
            # A zip's recorded size may lie: read at most one byte past the cap.
            with self._zip.open(member) as handle:
                data = handle.read(cap + 1)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
            raise Rejection(origin, f"corrupt archive member {name!r}: {exc}") from None
        if len(data) > cap:
            raise Rejection(origin, f"member {name!r} is over the limit of {cap:,} bytes")
        return data


def archive_format(path: Path) -> str | None:
    """"zip", "tar" (compressed or not) or "jsonl" (a JSONL bundle, images inline) by the
    file's content, None for anything else."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        with open_tar_stream(path):
            return "tar"
    except IngestError:
        return "tar"  # its first header is refused: the import says why
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError):
        pass
    with path.open("rb") as handle:
        start = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if start.startswith(b"{") else None


def archive_image_count(path: Path, *, archive_format: str, limits: ArchiveLimits) -> int:
    """How many images a "tar" or "zip" (image files by extension) or a "jsonl" bundle (its
    non-blank lines) holds: a record count known before any import, refused past `limits`."""
    if archive_format == "jsonl":
        with path.open("rb") as handle:
            lines = capped_lines(handle, name=str(path), max_bytes=LINE_ROOM)
            return sum(1 for _, line in lines if line is None or line.strip())
    try:
        if archive_format == "zip":
            if zip_member_count(path, stop_after=limits.members) > limits.members:
                raise IngestError(_too_many_members(path, limits))
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        else:
            with open_tar_stream(path) as archive:
                names = [member.name for member in tar_members(archive, path=path, limits=limits) if member.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise IngestError(f"{path}: not a readable archive: {exc}") from None
    return sum(1 for name in names if name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS)


def is_tar_name(name: str) -> bool:
    return name.endswith((".tar", ".tar.gz", ".tgz"))


def is_zip_name(name: str) -> bool:
    return name.endswith(".zip")
