"""The demo picks up after an interruption: a stage left incomplete is said so and
built again with the options given, an interrupted generation job is resumed, and a
demo with judgments is never rebuilt with other options. On a database that is not
migrated, it migrates first.

Tiny sizes and steps: tests/demo/test_demo.py is the full run.
"""

import io
import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Judgment
from generation.models import GenerationJob, Generator, Item, Sample, Series

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def tiny(steps: int = 2) -> list[str]:
    return ["--items", "24", "--held-out", "4", "--sizes", "XS,S", "--steps", str(steps), "--batch-size", "4",
            "--sample-steps", "1", "--annotators", "2", "--bad", "0", "--quota", "4"]


@pytest.fixture
def demo_var(transactional_db, settings, tmp_path):
    # simulate_annotators serves the pages from a thread: it must see committed data.
    settings.VAR_DIR = tmp_path / "var"
    settings.PARITY_CHECKPOINT_DIR = tmp_path / "var" / "checkpoints"
    return settings.VAR_DIR


def demo(*args) -> str:
    out = io.StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def ladder() -> set[str]:
    return set(Generator.objects.filter(series__name="scenes-ladder").values_list("name", flat=True))


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Item, Series, Generator, Sample, GenerationJob, Judgment))


def test_a_demo_stopped_while_training_or_generating_is_picked_up(demo_var, monkeypatch):
    pytest.importorskip("torch")
    import generation.engine
    from generation.backends.builtin import Backend

    # Stopped during "Training S", after XS was trained and its generators created.
    train = generation.engine.train

    def stopped_at_s(config, *, size, **kwargs):
        if size == "S":
            raise KeyboardInterrupt
        return train(config, size=size, **kwargs)

    monkeypatch.setattr(generation.engine, "train", stopped_at_s)
    with pytest.raises(KeyboardInterrupt):
        demo(*tiny())
    assert ladder() == {"scenes-ladder-XS-step1", "scenes-ladder-XS-step2"}

    # Run again with more steps: the incomplete ladder is said so and trained again with
    # them. Then stopped while the second generator makes its samples.
    monkeypatch.setattr(generation.engine, "train", train)
    generate = Backend.generate
    calls = []

    def stopped_at_second_call(self, prompts, seeds, **settings):
        calls.append(len(prompts))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(self, prompts, seeds, **settings)

    monkeypatch.setattr(Backend, "generate", stopped_at_second_call)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"resume it with --resume \d+"):
        call_command("demo", *tiny(steps=4), stdout=out)
    assert "Demo: the ladder is incomplete (it lacks scenes-ladder-S-step2, scenes-ladder-S-step4, " in out.getvalue()
    assert ladder() == {f"scenes-ladder-{size}-step{step}" for size in ("XS", "S") for step in (2, 4)}
    interrupted = GenerationJob.objects.get(status="interrupted")

    # Run again without options: those of the last run; the interrupted job is resumed.
    monkeypatch.setattr(Backend, "generate", generate)
    out = demo()
    assert f"Demo: resuming generation job {interrupted.pk} of {interrupted.generator.name}" in out
    assert "Demo ready" in out
    assert ladder() == {f"scenes-ladder-{size}-step{step}" for size in ("XS", "S") for step in (2, 4)}
    assert set(GenerationJob.objects.values_list("status", flat=True)) == {"succeeded"}
    assert GenerationJob.objects.count() == 4
    assert all(generator.samples.count() == 4 for generator in Generator.objects.all())
    assert Judgment.objects.exists() and (demo_var / "demo" / "report.html").exists()

    # Judgments are never deleted: other options do not rebuild the demo, and none keep it.
    before = counts()
    with pytest.raises(CommandError, match="was built with --steps 4 \\(now 6\\), and its study has judgments"):
        demo("--steps", "6")
    assert counts() == before
    assert "Demo ready" in demo() and counts() == before


def test_a_demo_on_an_empty_database_migrates_it_first(app_env, run_python, tmp_path):
    result = run_python(str(REPO / "manage.py"), "demo", "--items", "5", "--held-out", "10", cwd=REPO)

    assert "The database is not migrated: migrating it first." in result.stdout, result.stderr
    assert "--held-out must be below --items" in result.stderr
    assert "Traceback" not in result.stderr and result.returncode == 1
    database = Path(app_env["PARITY_VAR_DIR"]) / "parity.sqlite3"
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"generation_generationjob", "annotate_study"} <= tables
