"""A study's full report from the database: 1,000,000 judgments on PostgreSQL and on SQLite.

For each database (a throwaway PostgreSQL from tests.services.Postgres; a SQLite file
in a temporary folder, with the project's settings), each in a process of its own
(Django is set up once per process): migrate, then build one study of 20
generators in two series of ten along `params` (with a metric each, for alignment),
5,000 prompts, 5 % catch and 3 % calibration trials, and judgments by 2,500
annotators (each judges distinct prompts; 2 % answer at random in 150 ms and fail
catch trials). Assignments and judgments are generated with numpy and written by
COPY on PostgreSQL and executemany on SQLite, so a million rows take seconds.

Then times, best of --repeat after one warm-up run:

- load: `analysis.selectors.report_input` (the judgments as columns, and their names)
- analysis: `analysis.reports.report_from_input` (rates with --boot two-way
  bootstrap resamples, quality and exclusions, fits with --fit-boot refits, alignment)
- html: `analysis.report_html.report_html`, the self-contained page with its plots
- total: the three together; beside it, JSON and CSV exports

Prints figures and the load average before and after; asserts nothing.

    .venv/bin/python bench/report_from_db.py [--judgments 1000000] [--databases postgresql sqlite]
        [--boot 2000] [--fit-boot 200] [--repeat 2]
"""

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.servers import django_on, each_database  # noqa: E402

SLUG = "bench-report"
GENERATORS = 20
ITEMS = 5_000
ANNOTATORS = 2_500
CATCH_SHARE, CALIBRATION_SHARE = 0.05, 0.03
CLICKER_SHARE = 0.02
T0 = np.datetime64("2025-05-01T09:00:00", "us")


# ------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------
def _write(connection, table: str, columns: tuple[str, ...], rows) -> None:
    """Rows (an iterable of tuples) into `table`: COPY on PostgreSQL, executemany elsewhere."""
    names = ", ".join(columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})", rows)


def _times(values: np.ndarray, vendor: str) -> list[str]:
    """datetime64[us] as the text each database takes for a timestamp (Django's on SQLite: UTC, naive)."""
    text = np.datetime_as_string(values, unit="us").tolist()
    return [t + "+00:00" for t in text] if vendor == "postgresql" else [t.replace("T", " ") for t in text]


def build(judgments: int, seed: int = 0) -> dict[str, float]:
    from django.db import connection, transaction

    from annotate.models import Annotator, Assignment, Judgment, Study, Trial
    from generation.models import Corpus, Generator, Item, Sample, Series
    from workspaces.models import Workspace

    rng = np.random.default_rng(seed)
    timings = {}
    started = time.perf_counter()
    facts = {"image": "originals/x.png", "sha256": "0" * 64, "width": 24, "height": 24, "format": "PNG",
             "mode": "RGB", "byte_size": 10}
    workspace = Workspace.objects.create(name="bench", slug="bench")
    corpus = Corpus.objects.create(workspace=workspace, name="bench")
    items = Item.objects.bulk_create(
        (Item(corpus=corpus, key=f"{i:06d}", caption=f"caption {i}", **facts) for i in range(ITEMS)), batch_size=5000)
    study = Study.objects.create(workspace=workspace, name="bench", slug=SLUG, corpus=corpus, practice_trials=0)
    per_series = GENERATORS // 2
    scales = np.logspace(7, 10, per_series)
    truth = np.concatenate([0.5 - 44.0 * scales**-0.3, 0.5 - 20.0 * scales**-0.25])
    generators = []
    for s in range(2):
        series = Series.objects.create(workspace=workspace, name=f"bench-series-{s}")
        for k, scale in enumerate(scales):
            generators.append(Generator.objects.create(
                workspace=workspace, series=series, name=f"bench-s{s}-g{k}", params=int(scale),
                metrics={"val_loss": float(3.0 - np.log10(scale) / 5)}))
    study.generators.set(generators)
    # Control trials take their own prompts: an annotator sees each reference once.
    n_catch, n_calibration = int(ITEMS * CATCH_SHARE), int(ITEMS * CALIBRATION_SHARE)
    control = {i: Trial.Kind.CATCH for i in range(n_catch)}
    control.update({i: Trial.Kind.CALIBRATION for i in range(n_catch, n_catch + n_calibration)})
    generated_items = [item for i, item in enumerate(items) if i not in control]
    trials = [Trial(study=study, item=items[i], kind=kind) for i, kind in control.items()]
    for generator in generators:
        samples = Sample.objects.bulk_create(
            (Sample(generator=generator, item=item, seed=0, **facts) for item in generated_items), batch_size=5000)
        trials += [Trial(study=study, item=s.item, sample=s, generator=generator) for s in samples]
    Trial.objects.bulk_create(trials, batch_size=5000)
    Annotator.objects.bulk_create((Annotator(source=Annotator.Source.SIMULATED) for _ in range(ANNOTATORS)),
                                  batch_size=5000)
    timings["items, samples, trials, annotators (bulk_create)"] = time.perf_counter() - started

    started = time.perf_counter()
    item_ids = np.array([item.pk for item in items])
    annotator_ids = np.array(Annotator.objects.order_by("pk").values_list("pk", flat=True))
    position = {pk: i for i, pk in enumerate(item_ids)}
    code = {g.pk: c for c, g in enumerate(generators)}
    generated_trial = np.zeros((GENERATORS, ITEMS), dtype=np.int64)
    kind_of_item = np.zeros(ITEMS, dtype=np.int8)  # 0 generated, 1 catch, 2 calibration
    control_trial = np.zeros(ITEMS, dtype=np.int64)
    for t in trials:
        if t.kind == Trial.Kind.GENERATED:
            generated_trial[code[t.generator_id], position[t.item_id]] = t.pk
        else:
            kind_of_item[position[t.item_id]] = 1 if t.kind == Trial.Kind.CATCH else 2
            control_trial[position[t.item_id]] = t.pk
    # Each annotator judges distinct prompts (a prefix of a permutation), in sessions that
    # start at random over 30 days, one judgment every 2-8 s.
    per_annotator = -(-judgments // ANNOTATORS)
    prompt = np.argsort(rng.random((ANNOTATORS, ITEMS)), axis=1)[:, :per_annotator].reshape(-1)[:judgments]
    who = np.repeat(np.arange(ANNOTATORS), per_annotator)[:judgments]
    clicker = rng.random(ANNOTATORS) < CLICKER_SHARE
    generator = rng.integers(0, GENERATORS, judgments)
    kind = kind_of_item[prompt]
    trial = np.where(kind > 0, control_trial[prompt], generated_trial[generator, prompt])
    logit = np.log(truth / (1 - truth))[generator] + rng.normal(0, 1.0, ITEMS)[prompt] \
        + rng.normal(0, 0.5, ANNOTATORS)[who]
    p = np.where(kind == 0, 1 / (1 + np.exp(-logit)), np.where(kind == 1, 0.03, 0.5))
    p = np.where(clicker[who], np.where(kind == 1, 1.0, 0.5), p)
    chose_probe = rng.random(judgments) < p
    reference_right = rng.random(judgments) < 0.5
    rt = np.where(clicker[who], 150, rng.integers(600, 4000, judgments))
    step = np.cumsum(rng.integers(2_000_000, 8_000_000, judgments))
    start = rng.integers(0, 30 * 86_400_000_000, ANNOTATORS)
    first = np.r_[0, np.flatnonzero(np.diff(who)) + 1]
    elapsed = step - np.repeat(step[first], np.diff(np.r_[first, judgments]))
    issued = T0 + (start[who] + elapsed).astype("timedelta64[us]")
    answered = issued + rng.integers(1_000_000, 5_000_000, judgments).astype("timedelta64[us]")
    timings["judgments drawn (numpy)"] = time.perf_counter() - started

    started = time.perf_counter()
    vendor = connection.vendor
    side = np.array(["left", "right"])
    reference = side[reference_right.astype(int)]
    choice = np.where(chose_probe, side[(~reference_right).astype(int)], reference)
    ids = np.arange(1, judgments + 1)
    client_ms = [None if v < 0 else v for v in np.where(rng.random(judgments) < 0.02, -1, rt).tolist()]
    issued_text, answered_text = _times(issued, vendor), _times(answered, vendor)
    expires_text = _times(issued + np.timedelta64(600, "s"), vendor)
    with transaction.atomic():
        if vendor == "postgresql":
            # Rows consistent by construction: skip the foreign-key triggers (superuser only).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
        _write(connection, Assignment._meta.db_table,
               ("id", "token", "trial_id", "annotator_id", "study_id", "item_id", "reference_side", "issued_at",
                "shown_at", "expires_at"),
               zip(ids.tolist(), (f"{i:032x}" for i in ids.tolist()), trial.tolist(),
                   annotator_ids[who].tolist(), [study.pk] * judgments, item_ids[prompt].tolist(),
                   reference.tolist(), issued_text, issued_text, expires_text))
        _write(connection, Judgment._meta.db_table,
               ("id", "assignment_id", "choice", "client_response_ms", "server_response_ms", "created_at"),
               zip(ids.tolist(), ids.tolist(), choice.tolist(), client_ms, (rt + 40).tolist(), answered_text))
        if vendor == "postgresql":
            with connection.cursor() as cursor:
                for model in (Assignment, Judgment):
                    table = model._meta.db_table
                    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {judgments})")
    timings[f"assignments and judgments ({judgments:,} each, {'COPY' if vendor == 'postgresql' else 'executemany'})"] \
        = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    timings["ANALYZE"] = time.perf_counter() - started
    return timings


# ------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------
def measure(args) -> None:
    from analysis.exports import report_csv, report_json_text
    from analysis.report_html import report_html
    from analysis.reports import ReportOptions, report_from_input
    from analysis.selectors import report_input
    from annotate.models import Study

    study = Study.objects.select_related("workspace", "corpus").get(slug=SLUG)
    options = ReportOptions(n_boot=args.boot, fit_boot=args.fit_boot)
    runs = []
    for attempt in range(args.repeat + 1):
        times = {}
        started = time.perf_counter()
        data = report_input(study=study)
        times["load"] = time.perf_counter() - started
        started = time.perf_counter()
        report = report_from_input(data, options)
        times["analysis"] = time.perf_counter() - started
        started = time.perf_counter()
        page = report_html(report)
        times["html"] = time.perf_counter() - started
        times["total"] = times["load"] + times["analysis"] + times["html"]
        started = time.perf_counter()
        report_json_text(report), report_csv(report)
        times["json+csv"] = time.perf_counter() - started
        label = "warm-up" if attempt == 0 else f"run {attempt}"
        print(f"  {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f" ({len(data.judgments):,} judgments, page {len(page) / 1e6:.1f} MB)")
        if attempt:
            runs.append(times)
    best = {k: min(run[k] for run in runs) for k in runs[0]}
    print(f"  best of {args.repeat}: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()))


def child(args) -> None:
    """One database, in this process: set up Django on it, build the study, time the report."""
    started = time.perf_counter()
    with django_on(args.child, prefix="parity-bench-report-"):
        from django.db import connection

        with connection.cursor() as cursor:
            version = (cursor.connection.info.server_version if connection.vendor == "postgresql"
                       else cursor.execute("SELECT sqlite_version()").fetchone()[0])
        print(f"== {connection.vendor} {version}; server, set-up and migrate {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        for name, seconds in build(args.judgments).items():
            print(f"  {name}: {seconds:.1f} s")
        print(f"  build total: {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f}")
        measure(args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", choices=["postgresql", "sqlite"], default=["postgresql", "sqlite"])
    parser.add_argument("--boot", type=int, default=2_000, help="two-way bootstrap resamples (the issue's figure)")
    parser.add_argument("--fit-boot", type=int, default=200, help="refits per scaling fit (the report's default)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--child", choices=["postgresql", "sqlite"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
          f"python {sys.version.split()[0]}, numpy {np.__version__}; load average {os.getloadavg()[0]:.2f}")
    each_database(__file__, args.databases)
    print(f"load average after {os.getloadavg()[0]:.2f} (other work on the 2 cores slows every figure)")


if __name__ == "__main__":
    main()
