"""Uploads bounded in memory and time: the two worst cases of issue #16, refused.

Builds, streamed to a temporary folder and never held in memory:
- `one-line.jsonl`, a JSONL corpus whose one line is 600 MB (a caption and an image
  field of base64 "A"s, far past any image PARITY_MAX_IMAGE_BYTES allows);
- `many.tar.gz`, a tar.gz of 500,000 empty `.png` members (about 3.5 MB).

Then refuses each, with the default settings:
1. in-process, each case in a process of its own so that its peak resident memory
   (VmHWM) is its own: first the count the API makes of an upload
   (`archive_image_count`), then the import the CLI and the API run (`corpus_import`);
2. over HTTP unless --no-http: POST /api/v1/corpora/ with a personal token to gunicorn
   (platform/gunicorn.conf.py, one worker, started afresh for each case), streaming
   the file; the answer's status and message, the wall time, and the worker's peak
   resident memory before and after.
Prints figures; asserts nothing.

    .venv/bin/python bench/upload_bounds.py [--line-mb 600] [--members 500000]
                                            [--database postgresql|sqlite] [--no-http]
"""

import argparse
import gzip
import http.client
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import children, django_on, gunicorn_running, memory_mb  # noqa: E402

CASES = {"jsonl": "one-line.jsonl", "tar": "many.tar.gz"}


# ------------------------------------------------------------------------------
# The files
# ------------------------------------------------------------------------------
def write_long_line(path: Path, megabytes: int) -> None:
    piece = b"A" * (1 << 20)
    with path.open("wb") as out:
        out.write(b'{"key": "big", "caption": "a photo", "image": "')
        for _ in range(megabytes * 10**6 // len(piece)):
            out.write(piece)
        out.write(b'"}\n')


def write_many_members(path: Path, members: int) -> None:
    """The tar's headers written one by one into a gzip stream: no member list in memory."""
    with gzip.open(path, "wb") as out:
        for number in range(members):
            info = tarfile.TarInfo(f"{number:07d}.png")
            info.mtime = 1_700_000_000
            out.write(info.tobuf(tarfile.GNU_FORMAT))
        out.write(bytes(2 * tarfile.BLOCKSIZE))


# ------------------------------------------------------------------------------
# In-process: one case per process
# ------------------------------------------------------------------------------
def peak_mb() -> float:
    return memory_mb(os.getpid())["VmHWM"]


def child(case: str, path: Path, database: str) -> None:
    with django_on(database, prefix="parity-bench-bounds-"):
        from generation.errors import IngestError
        from generation.ingest.archives import archive_format, archive_image_count
        from generation.models import Corpus
        from generation.services import archive_limits, corpus_import
        from workspaces.models import Workspace

        workspace = Workspace.objects.create(name="bench", slug="bench")
        ready = peak_mb()
        started = time.perf_counter()
        try:
            images = archive_image_count(path, archive_format=archive_format(path), limits=archive_limits())
            counted = f"{images} images"
        except IngestError as exc:
            counted = f"refused: {str(exc).splitlines()[0]}"
        count_s, count_peak = time.perf_counter() - started, peak_mb()
        started = time.perf_counter()
        try:
            corpus_import(workspace=workspace, name="bench", source=str(path))
            outcome = "imported (not refused)"
        except IngestError as exc:
            lines = str(exc).splitlines()
            outcome = "refused: " + (lines[1].strip() if len(lines) > 1 else lines[0])
        import_s, import_peak = time.perf_counter() - started, peak_mb()
        print(f"  {case}: peak RSS {ready:.0f} MB once Django was up")
        print(f"    count ({count_s:.2f} s, peak RSS {count_peak:.0f} MB, +{count_peak - ready:.0f} MB): {counted}")
        print(f"    import ({import_s:.2f} s, peak RSS {import_peak:.0f} MB, +{import_peak - ready:.0f} MB): "
              f"{outcome.replace(str(path.parent) + os.sep, '')}")
        print(f"    corpora written: {Corpus.objects.count()}")


# ------------------------------------------------------------------------------
# Over HTTP
# ------------------------------------------------------------------------------
def post_upload(port: int, token: str, path: Path) -> tuple[int, dict, float]:
    """POST /api/v1/corpora/ as multipart/form-data, the file streamed from disk."""
    boundary = uuid.uuid4().hex
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in {"workspace": "bench", "name": f"bench-{path.stem}"}.items()
    )
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head.encode()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield tail

    length = len(head.encode()) + path.stat().st_size + len(tail)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.perf_counter()
    conn.request("POST", "/api/v1/corpora/", body=body(), headers={
        "Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length),
    })
    response = conn.getresponse()
    data = response.read()
    seconds = time.perf_counter() - started
    conn.close()
    try:
        answer = json.loads(data)
    except ValueError:
        answer = {"body": data[:300].decode(errors="replace")}
    return response.status, answer, seconds


def over_http(files: dict[str, Path], database: str) -> None:
    from tests.services import free_port

    with django_on(database, prefix="parity-bench-bounds-http-", keep_var=True) as var:
        from django.contrib.auth import get_user_model
        from django.db import connections

        from parity.tokens import token_create
        from workspaces.models import Membership, Workspace

        user = get_user_model().objects.create_user(username="bench", password="bench-bounds-password")
        workspace = Workspace.objects.create(name="bench", slug="bench")
        Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
        _, token = token_create(user=user, name="bench")
        connections.close_all()
        env = dict(os.environ, DJANGO_DEBUG="0", WEB_CONCURRENCY="1", GUNICORN_TIMEOUT="900")
        for case, path in files.items():
            port = free_port()
            with gunicorn_running(var=var, port=port, env=env) as (gunicorn, _):
                (worker,) = children(gunicorn.pid)
                before = memory_mb(worker)
                status, answer, seconds = post_upload(port, token, path)
                after = memory_mb(worker)
            error = answer.get("error")
            if isinstance(error, dict):
                shown = f"{error.get('code')} {error.get('message', '')}"
            else:  # 201 with counts, or 202 with the import job the worker would run
                shown = json.dumps({k: answer[k] for k in ("status", "total", "created", "rejected") if k in answer})
            print(f"  {case}: {path.stat().st_size / 1e6:,.1f} MB uploaded -> HTTP {status} after {seconds:.2f} s: "
                  + shown[:300].replace("\n", " | "))
            print(f"    worker peak RSS {before['VmHWM']:.0f} -> {after['VmHWM']:.0f} MB "
                  f"(+{after['VmHWM'] - before['VmHWM']:.0f} MB)")
        print(f"  (gunicorn log: {var / 'gunicorn.log'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line-mb", type=int, default=600, help="length of the JSONL bundle's one line")
    parser.add_argument("--members", type=int, default=500_000, help="empty members of the tar.gz")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn part")
    parser.add_argument("--child", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.database)
        return

    folder = Path(tempfile.mkdtemp(prefix="parity-bench-bounds-files-"))
    try:
        files = {case: folder / name for case, name in CASES.items()}
        started = time.perf_counter()
        write_long_line(files["jsonl"], args.line_mb)
        write_many_members(files["tar"], args.members)
        sizes = {case: path.stat().st_size / 1e6 for case, path in files.items()}
        print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, {args.database}; files built in "
              f"{time.perf_counter() - started:.1f} s: {files['jsonl'].name} {sizes['jsonl']:,.1f} MB (one line), "
              f"{files['tar'].name} {sizes['tar']:,.1f} MB ({args.members:,} members)")
        print("\n== in-process: the API's count of the upload, then the import (one process per case)")
        for case, path in files.items():
            subprocess.run([sys.executable, __file__, "--child", case, "--path", str(path), "--database",
                            args.database], check=False, cwd=ROOT)
        if not args.no_http:
            print("\n== over HTTP: POST /api/v1/corpora/ to gunicorn (1 worker, started afresh per case)")
            over_http(files, args.database)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
