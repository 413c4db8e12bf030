"""Tar and zip archives read safely: members are read one at a time, never extracted.

A member that could escape or mislead an extraction (absolute path, `..`, link,
device) or that passes a byte cap is refused by name. The readers of
`generation.ingest.sources` use `Archive` for uploaded corpus archives and sample
bundles, and `check_tar_member` for WebDataset shards; uploads count an archive's
images with `archive_image_count` before deciding where to import it.
"""

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from generation.errors import IngestError, Rejection

IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "webp"}
# An index or manifest lists every record, so it may be far larger than one image.
MAX_INDEX_BYTES = 256 * 1024 * 1024


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


class Archive:
    """The regular files of a tar or zip archive, read one at a time and never extracted.

    A member that could escape or mislead an extraction (absolute path, `..`, link,
    device) or that passes the byte cap is no file of the archive: it becomes one of
    the `refused` rejections. The index files named in `index_names` get a larger cap.
    """

    def __init__(self, path: Path, *, max_bytes: int, index_names: tuple[str, ...] = ()):
        self.path = path
        self.files: dict[str, tarfile.TarInfo | zipfile.ZipInfo] = {}
        self.caps: dict[str, int] = {}
        self.refused: list[Rejection] = []
        self.is_zip = is_zip_name(str(path))
        try:
            if self.is_zip:
                self._zip = zipfile.ZipFile(path)
                members = [(info.filename, info) for info in self._zip.infolist() if not info.is_dir()]
                check = check_zip_member
            else:
                self._tar = tarfile.open(path, mode="r:*")
                members = [(m.name, m) for m in self._tar.getmembers() if not m.isdir()]
                check = check_tar_member
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            kind = "zip" if self.is_zip else "tar"
            raise IngestError(f"{path}: not a readable {kind} archive: {exc}") from None
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

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        (self._zip if self.is_zip else self._tar).close()

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
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError):
        return None
    with path.open("rb") as handle:
        start = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if start.startswith(b"{") else None


def archive_image_count(path: Path, *, archive_format: str) -> int:
    """How many images a "tar" or "zip" (image files by extension) or a "jsonl" bundle (its
    non-blank lines) holds: a record count known before any import."""
    if archive_format == "jsonl":
        with path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())
    try:
        if archive_format == "zip":
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        else:
            with tarfile.open(path, mode="r|*") as archive:
                names = [member.name for member in archive if member.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise IngestError(f"{path}: not a readable archive: {exc}") from None
    return sum(1 for name in names if name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS)


def is_tar_name(name: str) -> bool:
    return name.endswith((".tar", ".tar.gz", ".tgz"))


def is_zip_name(name: str) -> bool:
    return name.endswith(".zip")
