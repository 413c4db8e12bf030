"""Generator backends: chosen by name or dotted path, checked where a generator is written,
and each producing images (the diffusers one from a tiny random pipeline made here)."""

import pytest
from PIL import Image
from rest_framework.test import APIClient

from generation import backends, services
from generation.backends.function import Backend as CallableBackend
from generation.errors import BackendError
from generation.generate import generation_job_run
from generation.models import Corpus, Generator, Item, Membership, Sample

FUNCTIONS = "tests.generation.backend_functions"


# ------------------------------------------------------------------------------
# Names and checks
# ------------------------------------------------------------------------------


def test_short_names_and_dotted_paths_name_backend_classes():
    assert backends.backend_path("builtin") == "generation.backends.builtin.Backend"
    assert backends.backend_path("mylab.backends.Fancy") == "mylab.backends.Fancy"
    assert backends.backend_class("callable") is CallableBackend


@pytest.mark.parametrize(
    ("backend", "config", "inference", "field", "words"),
    [
        ("sdxl", {}, {}, "backend", "unknown backend 'sdxl'"),
        ("generation.backends.nothing.Backend", {}, {}, "backend", "cannot be imported"),
        ("builtin", {}, {}, "backend_config", "need 'checkpoint'"),
        ("builtin", {"checkpoint": ""}, {}, "backend_config", "non-empty string"),
        ("builtin", {"checkpoint": "a.pt", "chekpoint": "b.pt"}, {}, "backend_config", "unknown backend option 'chekpoint'"),
        ("builtin", {"checkpoint": "a.pt"}, {"sampler": "ddim"}, "settings", "'sampler' is not one this backend takes"),
        ("builtin", {"checkpoint": "a.pt", "batch_size": 0}, {}, "backend_config", "batch_size"),
        ("callable", {"function": "no module"}, {}, "backend_config", "package.module:name"),
        ("diffusers", {"path": "/p", "dtype": "int8"}, {}, "backend_config", "dtype must be one of"),
        ("callable", [1], {}, "backend_config", "JSON object"),
    ],
)
def test_a_backend_that_cannot_work_is_refused_naming_its_field(backend, config, inference, field, words):
    with pytest.raises(BackendError, match=words) as refused:
        backends.backend_check(backend=backend, config=config, settings=inference)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("backend", "config", "inference"),
    [
        ("upload", {}, {"steps": 50}),
        ("builtin", {"checkpoint": "ladder/S-step0000100.pt"}, {"steps": 20, "guidance": 4.0}),
        ("callable", {"function": "mylab.sampling:generate", "batch_size": 16}, {"anything": 1}),
        ("callable", {"function": "mylab.sampling.generate"}, {}),
        ("diffusers", {"path": "/models/tiny", "dtype": "float16"}, {"steps": 4}),
        # Another package's class is not imported in the web process: only its path's shape is checked.
        ("mylab.backends.Fancy", {"whatever": True}, {}),
    ],
)
def test_a_backend_that_can_work_passes(backend, config, inference):
    backends.backend_check(backend=backend, config=config, settings=inference)


def test_services_refuse_a_bad_backend_on_create_and_update(workspace):
    with pytest.raises(BackendError, match="need 'function'"):
        services.generator_create(workspace=workspace, name="g", backend="callable")
    generator = services.generator_create(
        workspace=workspace, name="g", backend="callable", backend_config={"function": f"{FUNCTIONS}:solid"}
    )
    with pytest.raises(BackendError) as refused:
        services.generator_update(generator=generator, backend="builtin")
    assert refused.value.field == "backend_config"
    assert Generator.objects.get(pk=generator.pk).backend == "callable"


def test_the_api_refuses_a_bad_backend_naming_the_field(workspace, django_user_model):
    user = django_user_model.objects.create_user("r", password="x")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    api = APIClient()
    api.force_authenticate(user)

    created = api.post("/api/v1/generators/", {"workspace": "lab", "name": "g", "backend": "builtin"}, format="json")
    assert created.status_code == 400
    error = created.json()["error"]
    assert (error["field"], error["code"]) == ("backend_config", "invalid_backend")
    assert error["message"] == "The backend options need 'checkpoint'."

    good = api.post(
        "/api/v1/generators/",
        {"workspace": "lab", "name": "g", "backend": "builtin", "backend_config": {"checkpoint": "S.pt"}},
        format="json",
    )
    assert good.status_code == 201, good.json()
    patched = api.patch(f"/api/v1/generators/{good.json()['id']}/", {"settings": {"sampler": "ddim"}}, format="json")
    assert patched.status_code == 400 and patched.json()["error"]["field"] == "settings"
    renamed = api.patch(f"/api/v1/generators/{good.json()['id']}/", {"backend": "nonsense"}, format="json")
    assert renamed.status_code == 400 and renamed.json()["error"]["field"] == "backend"


# ------------------------------------------------------------------------------
# callable
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{FUNCTIONS}:solid", f"{FUNCTIONS}.solid"])
def test_the_callable_backend_calls_the_function_with_the_settings(path):
    backend = backends.backend_load(backend="callable", config={"function": path})
    images = backend.generate(["a", "bb"], [1, 2], size=5)
    assert [image.size for image in images] == [(5, 5), (5, 5)]
    assert images[1].getpixel((0, 0)) == (2, 14, 0)


def test_the_callable_backend_gives_the_device_to_a_function_that_takes_it():
    function = {"function": f"{FUNCTIONS}:with_device"}
    assert backends.backend_load(backend="callable", config=function).generate(["a"], [1])[0].getpixel((0, 0)) == (0, 0, 0)
    on_gpu = backends.backend_load(backend="callable", config=function, device="cuda:1")
    assert on_gpu.generate(["a"], [1])[0].getpixel((0, 0)) == (0, 0, 255)
    assert on_gpu.device_name == "cuda:1"


def test_the_callable_backend_says_what_it_cannot_import():
    with pytest.raises(BackendError, match="cannot be imported here"):
        backends.backend_load(backend="callable", config={"function": "tests.generation.nowhere:f"})


def test_a_backend_class_by_dotted_path(workspace):
    backend = backends.backend_load(
        backend="generation.backends.function.Backend", config={"function": f"{FUNCTIONS}:solid", "batch_size": 3}
    )
    assert backend.batch_size == 3
    assert isinstance(backend.generate(["x"], [0])[0], Image.Image)


# ------------------------------------------------------------------------------
# diffusers: a tiny randomly initialised pipeline, saved and loaded from a folder
# ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    pytest.importorskip("diffusers")
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(4, 8),
        norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    folder = tmp_path_factory.mktemp("pipeline")
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=10)).save_pretrained(folder)
    return str(folder)


def test_the_diffusers_backend_makes_one_image_per_seed_whatever_the_batch(tiny_pipeline):
    backend = backends.backend_load(backend="diffusers", config={"path": tiny_pipeline}, device="cpu")
    assert backend.device_name == "cpu"
    batch = backend.generate(["a", "b", "c"], [1, 2, 3], steps=2)
    alone = backend.generate(["anything"], [2], steps=2)
    assert [image.size for image in batch] == [(8, 8)] * 3
    assert alone[0].tobytes() == batch[1].tobytes()
    assert batch[0].tobytes() != batch[1].tobytes()


def test_the_diffusers_backend_refuses_a_setting_its_pipeline_lacks(tiny_pipeline):
    backend = backends.backend_load(backend="diffusers", config={"path": tiny_pipeline}, device="cpu")
    with pytest.raises(BackendError, match="takes no 'guidance_scale'") as refused:
        backend.prepare({"steps": 2, "guidance": 3.0})
    assert refused.value.field == "settings"


def test_the_diffusers_backend_says_when_there_is_no_pipeline(tmp_path):
    pytest.importorskip("diffusers")
    with pytest.raises(BackendError, match="no diffusers pipeline could be loaded"):
        backends.backend_load(backend="diffusers", config={"path": str(tmp_path)}, device="cpu")


@pytest.mark.django_db(transaction=True)
def test_a_job_stores_the_diffusers_pipelines_samples(tiny_pipeline, workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="c")
    for key in ("a", "b", "c"):
        Item.objects.create(corpus=corpus, key=key, caption=f"caption {key}", image=f"originals/{key}.png",
                            sha256="0" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=1)
    generator = services.generator_create(
        workspace=workspace, name="ddpm", backend="diffusers", backend_config={"path": tiny_pipeline},
        settings={"steps": 2},
    )
    job = services.generation_job_create(generator=generator, corpus=corpus, seeds_per_item=2, enqueue=False)

    job = generation_job_run(job_id=job.pk, device="cpu", batch_size=4)

    assert (job.status, job.done, job.failed, job.batch_size, job.device) == ("succeeded", 6, 0, 4, "cpu")
    samples = Sample.objects.filter(generator=generator)
    assert samples.count() == 6 and {(s.width, s.height) for s in samples} == {(8, 8)}
    assert len({s.sha256 for s in samples}) == 6
