"""The demo of `make run`: built through the real import paths, once."""

from django.core.management import call_command

from annotate.models import Study
from generation.models import Corpus, Generator, Item, Sample


def test_demo_builds_a_corpus_generators_and_an_open_study_once(db, settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path / "var"
    call_command("demo", "--items", "12", "--size", "64")
    corpus = Corpus.objects.get(name="scenes")
    assert corpus.items.count() == 12
    generators = Generator.objects.filter(series__name="demo-degradation")
    assert generators.count() == 3
    assert all(g.samples.count() == 12 for g in generators)
    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.OPEN
    # Every item but those set aside for practice, once per generator.
    practice = study.trials.filter(kind="practice").count()
    assert practice == study.practice_trials == 3
    assert study.trials.filter(kind="generated").count() == 3 * (12 - practice)
    # Samples redraw their item's own scene: same size, different bytes from the reference.
    sample = Sample.objects.select_related("item").first()
    assert (sample.width, sample.height) == (sample.item.width, sample.item.height)
    assert sample.sha256 != sample.item.sha256
    assert "/s/demo/" in capsys.readouterr().out

    call_command("demo", "--items", "12", "--size", "64")
    assert Item.objects.count() == 12 and Sample.objects.count() == 36 and Study.objects.count() == 1
