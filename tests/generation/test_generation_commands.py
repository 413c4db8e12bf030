"""The `generate` and `train_ladder` commands, end to end on tiny inputs.

`generate` runs a `callable` backend; `train_ladder` trains the engine's XS size for a
few steps on a six-item corpus and its generators then make samples through the
`builtin` backend. Jobs write from a thread of their own, so these tests commit.
"""

import io
import math
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation import services
from generation.models import GenerationJob, Generator, Sample, Series
from tests.generation import builders

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("callables")]


@pytest.fixture
def corpus(workspace, tmp_path):
    folder = builders.jsonl_folder(tmp_path / "corpus", builders.pairs(6))
    corpus, _ = services.corpus_import(workspace=workspace, name="things", source=str(folder))
    return corpus


def command(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_generate_makes_the_samples_and_reports_the_run(workspace, corpus):
    services.generator_create(workspace=workspace, name="fn", backend="callable",
                              backend_config={"function": "solid"})
    out, _ = command("generate", "--generator", "fn", "--seeds", "2", "--batch-size", "3")

    job = GenerationJob.objects.get()
    assert (job.status, job.done, job.batch_size) == ("succeeded", 12, 3)
    assert Sample.objects.filter(job=job).count() == 12
    assert f"Job {job.pk}: 12 samples of 'fn' for corpus 'things'" in out
    assert "Device chosen by the function, batch size 3, " in out and " images/s." in out
    assert "12 made, 0 already there, 0 failed" in out

    again, _ = command("generate", "--generator", "fn", "--items", "k000", "k001", "--seeds", "2")
    assert "0 made, 4 already there, 0 failed" in again
    assert Sample.objects.count() == 12

    with pytest.raises(CommandError, match=f"job {job.pk} has ended"):
        command("generate", "--job", str(job.pk))


def test_generate_lists_the_failures(workspace, corpus):
    services.generator_create(workspace=workspace, name="picky", backend="callable",
                              backend_config={"function": "broken_on"}, settings={"word": "number 3"})
    out, err = command("generate", "--generator", "picky")
    assert "5 made, 0 already there, 1 failed" in out
    assert "k003 (seed " in err and "ValueError: cannot draw 'number 3' prompts" in err


def test_generate_resumes_a_queued_job(workspace, corpus):
    generator = services.generator_create(workspace=workspace, name="fn", backend="callable",
                                          backend_config={"function": "solid"})
    job = services.generation_job_create(generator=generator, corpus=corpus, item_keys=["k002"], enqueue=False)
    out, _ = command("generate", "--job", str(job.pk))
    assert "1 made" in out and Sample.objects.get().job_id == job.pk


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generator", "nobody"], "no generator named 'nobody'"),
        (["--generator", "fn", "--items", "k999"], "no item with key 'k999'"),
        (["--generator", "fn", "--corpus", "other"], "no corpus named 'other'"),
        (["--job", "999"], "no generation job 999"),
        ([], "give --generator"),
    ],
)
def test_generate_says_what_is_wrong(workspace, corpus, args, message):
    services.generator_create(workspace=workspace, name="fn", backend="callable",
                              backend_config={"function": "solid"})
    with pytest.raises(CommandError, match=message):
        command("generate", *args)


def test_train_ladder_creates_a_series_whose_generators_generate(workspace, corpus, settings, tmp_path):
    pytest.importorskip("torch")
    settings.PARITY_CHECKPOINT_DIR = tmp_path / "checkpoints"
    out, _ = command(
        "train_ladder", "--corpus", "things", "--sizes", "XS", "--steps", "4", "--checkpoints", "2,4",
        "--batch-size", "4", "--val-fraction", "0.34", "--device", "cpu", "--sample-steps", "2",
    )

    series = Series.objects.get(name="things-ladder")
    generators = list(Generator.objects.filter(series=series).order_by("train_step"))
    assert [g.name for g in generators] == ["things-ladder-XS-step2", "things-ladder-XS-step4"]
    assert "4 items to train on, 2 held out" in out and "Series 'things-ladder': 2 generators." in out
    for generator, step in zip(generators, (2, 4)):
        assert (generator.backend, generator.train_step, generator.train_images) == ("builtin", step, step * 4)
        assert generator.params > 0 and generator.train_flops > 0
        assert math.isfinite(generator.metrics["val_loss"])
        assert generator.settings == {"steps": 2, "guidance": 3.0}
        checkpoint = generator.backend_config["checkpoint"]
        assert not Path(checkpoint).is_absolute()
        assert (settings.PARITY_CHECKPOINT_DIR / checkpoint).is_file()
    assert generators[0].params == generators[1].params
    assert generators[0].train_flops < generators[1].train_flops

    out, _ = command("generate", "--generator", "things-ladder-XS-step4", "--items", "k000", "k001",
                     "--device", "cpu")
    samples = list(Sample.objects.filter(generator=generators[1]))
    assert len(samples) == 2 and {(s.width, s.height) for s in samples} == {(32, 32)}
    assert "Device cpu, batch size 64, " in out

    with pytest.raises(CommandError, match="already has a series named 'things-ladder'"):
        command("train_ladder", "--corpus", "things", "--sizes", "XS", "--steps", "2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "XXL"], "--sizes takes"),
        (["--steps", "4", "--checkpoints", "9"], "bad training options"),
        (["--corpus", "none"], "no corpus named 'none'"),
    ],
)
def test_train_ladder_says_what_is_wrong(corpus, args, message):
    pytest.importorskip("torch")
    base = ["--corpus", "things"] if "--corpus" not in args else []
    with pytest.raises(CommandError, match=message):
        command("train_ladder", *base, *args)
