"""A generation job's own ceiling: samples/s with a backend that takes no time.

`bench/generation_throughput.py` measures the engine and its pipeline without Django.
A real job also stores each PNG through Django's storage and records a sample row
through the job's one writer thread; this bench runs `generation_job_run` (what the
Celery task and `manage.py generate` run) over --items items × --seeds seeds with a
`callable` backend whose images are ready at once (32 px noise, the worst case for
PNG encoding), so every second it takes is the job's: encoding on its store threads
(a CPU backend's choice), file writes, rows. On PostgreSQL (a throwaway server from
tests.services) and SQLite (a file), each in a process of its own, with DEBUG off.

Prints samples/s per database, best of --repeat jobs; asserts nothing.

    .venv/bin/python bench/generation_job.py [--items 2000] [--seeds 4] [--batch-size 256]
        [--databases postgresql sqlite] [--repeat 3]
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import django_on, each_database  # noqa: E402

NOISE = np.random.default_rng(0).integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8)


def instant(prompts, seeds, **settings):
    """The `callable` backend's function: noise images, distinct per seed, made in microseconds."""
    images = []
    for i, seed in enumerate(seeds):
        pixels = NOISE[i % len(NOISE)].copy()
        pixels[0, :8, 0] = np.frombuffer(int(seed).to_bytes(8, "big"), dtype=np.uint8)
        images.append(Image.fromarray(pixels))
    return images


def measure(args) -> None:
    from generation.models import Corpus, Item
    from generation.services import generation_job_create, generation_job_run, generator_create
    from workspaces.models import Workspace

    workspace = Workspace.objects.create(slug="bench", name="bench")
    corpus = Corpus.objects.create(workspace=workspace, name="bench")
    # No job reads a reference image: the rows are enough.
    Item.objects.bulk_create(
        Item(corpus=corpus, key=f"{i:07d}", caption=f"a small red circle {i}", image="originals/none.png",
             sha256="0" * 64, width=32, height=32, format="PNG", mode="RGB", byte_size=1)
        for i in range(args.items)
    )
    rates = []
    for attempt in range(args.repeat):
        generator = generator_create(workspace=workspace, name=f"instant-{attempt}", backend="callable",
                                     backend_config={"function": "instant"})
        job = generation_job_create(generator=generator, corpus=corpus, seeds_per_item=args.seeds, enqueue=False)
        started = time.perf_counter()
        job = generation_job_run(job_id=job.pk, batch_size=args.batch_size)
        seconds = time.perf_counter() - started
        if job.status != "succeeded" or job.done != args.items * args.seeds:
            raise RuntimeError(f"the job lost samples: {job.status}, {job.done} done, {job.errors[:3]}")
        rates.append(job.done / seconds)
        print(f"  job {attempt + 1}: {job.done:,} samples in {seconds:.2f} s = {rates[-1]:,.0f} samples/s")
    print(f"  best {max(rates):,.0f} samples/s; load average {os.getloadavg()[0]:.2f}")


def child(args) -> None:
    """One database, in this process: set up Django on it, then time the jobs."""
    # The operator's allow-list, as a deployment that runs this function would set it.
    os.environ["PARITY_GENERATION_BACKENDS"] = "callable"
    os.environ["PARITY_CALLABLES"] = "instant=bench.generation_job:instant"
    with django_on(args.child, prefix="parity-bench-job-", debug=False):
        from django.db import connection

        print(f"== {connection.vendor}: {args.items:,} items × {args.seeds} seeds, batch {args.batch_size}")
        measure(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--seeds", type=int, default=4, help="samples per item")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--databases", nargs="+", choices=["postgresql", "sqlite"], default=["postgresql", "sqlite"])
    parser.add_argument("--repeat", type=int, default=3, help="jobs per database")
    parser.add_argument("--child", choices=["postgresql", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, python {sys.version.split()[0]}; "
          f"load average {os.getloadavg()[0]:.2f}")
    each_database(__file__, args.databases)


if __name__ == "__main__":
    main()
