"""Corpus import throughput: a 10,000-item WebDataset corpus of 512×512 JPEGs.

Makes the shards once (demo.scenes, cached under bench/out/), then imports them
through the real service into a fresh database and media folder, printing items/s and
the process's resident memory as the import goes (flat means streamed). Runs on
SQLite by default; set DATABASE_URL to measure PostgreSQL.

    python bench/import_corpus.py [--items 10000] [--size 512]
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="parity-bench-"))
    os.environ["PARITY_VAR_DIR"] = str(var)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from demo.scenes import write_webdataset
    from generation.services import corpus_import
    from workspaces.models import Workspace

    shards = OUT / f"scenes-{args.items}-{args.size}"
    if not (shards / "done").exists():
        shards.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_webdataset(shards, args.items, size=args.size, shard_size=1000, seed=0)
        (shards / "done").touch()
        print(f"made {args.items} scenes in {time.perf_counter() - started:.1f} s -> {shards}")
    size_mb = sum(p.stat().st_size for p in shards.glob("*.tar")) / 1e6

    call_command("migrate", verbosity=0)
    workspace = Workspace.objects.create(name="bench", slug="bench")
    marks = []

    def on_progress(count: int) -> None:
        if count % 1000 == 0:
            marks.append((count, time.perf_counter() - started, rss_mib()))

    print(f"database: {connection.vendor}; shards: {size_mb:.0f} MB; python {sys.version.split()[0]}; "
          f"{os.cpu_count()} cores")
    start_rss = rss_mib()
    started = time.perf_counter()
    _, result = corpus_import(workspace=workspace, name="bench", source=str(shards), on_progress=on_progress)
    elapsed = time.perf_counter() - started
    for count, at, rss in marks:
        print(f"  {count:>6} items  {at:6.1f} s  {count / at:6.0f} items/s  rss {rss:6.0f} MiB")
    print(f"imported {result.created} items in {elapsed:.1f} s: {result.created / elapsed:.0f} items/s")
    print(f"resident memory: {start_rss:.0f} MiB before, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
