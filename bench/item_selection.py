"""Filters and a stratified, seeded sample of a 1,000,000-item corpus at study build.

Loads --items placeholder items on a throwaway PostgreSQL (sizes and LAION-like
metadata: pwatermark, aesthetic, category), then times `annotate.services.items.
study_items` (the selection a study build runs) for three filters and a sample of
--sample items stratified by category, twice (the second run warm). Prints figures;
asserts nothing.

    .venv/bin/python bench/item_selection.py [--items 1000000] [--sample 10000]
"""

import argparse
import io
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import describe_machine, django_on  # noqa: E402

FILTERS = ["width>=512", "meta.pwatermark<0.5", "meta.aesthetic>=5"]


def load(items: int) -> "object":
    import json

    from django.db import connection

    from annotate.models import Study
    from generation.models import Corpus, Item
    from workspaces.models import Workspace

    workspace = Workspace.objects.create(name="bench", slug="bench")
    corpus = Corpus.objects.create(workspace=workspace, name="laion-like")
    rng = random.Random(0)
    table = Item._meta.db_table
    columns = ["corpus_id", "key", "caption", "meta", "image", "sha256", "width", "height", "format", "mode",
               "byte_size"]
    buffer = io.StringIO()
    for i in range(items):
        side = rng.choice((256, 384, 512, 768, 1024))
        meta = {"pwatermark": round(rng.random(), 3), "aesthetic": round(rng.uniform(3, 7.5), 2),
                "category": rng.choice(("people", "animals", "scenes", "objects", "text"))}
        buffer.write("\t".join(map(str, (corpus.pk, f"{i:08d}", f"caption {i}", json.dumps(meta), "x.png", "0" * 64,
                                         side, side, "JPEG", "RGB", 1000))) + "\n")
    buffer.seek(0)
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return Study.objects.create(workspace=workspace, corpus=corpus, name="bench", slug="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    args = parser.parse_args()
    started = time.perf_counter()
    with django_on("postgresql", prefix="parity-bench-selection-"):
        from django.db import connection

        from annotate.services.items import study_items

        print(describe_machine(connection, time.perf_counter() - started))
        started = time.perf_counter()
        study = load(args.items)
        print(f"  {args.items:,} items loaded by COPY: {time.perf_counter() - started:.1f} s")
        for label, changes in (
            ("filters only", {"item_filters": FILTERS}),
            ("sample only", {"item_filters": [], "sample_size": args.sample, "stratify_by": ""}),
            ("filters + stratified sample", {"item_filters": FILTERS, "sample_size": args.sample,
                                             "stratify_by": "category", "allocation": "equal"}),
        ):
            for attempt in ("cold", "warm"):
                for name, value in changes.items():
                    setattr(study, name, value)
                started = time.perf_counter()
                ids, record = study_items(study)
                print(f"  {label} ({attempt}): {time.perf_counter() - started:.2f} s -> {len(ids):,} items; "
                      f"{ {k: v for k, v in record.items() if k != 'seed'} }")


if __name__ == "__main__":
    main()
