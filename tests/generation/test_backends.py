"""Generator backends: chosen by a name the operator allows, checked where a generator is
written and again where a job loads it, and each producing images (the diffusers one
from a tiny random pipeline made here)."""

from pathlib import Path

import pytest
from PIL import Image
from rest_framework.test import APIClient

from generation import backends, services
from generation.backends.function import Backend as CallableBackend
from generation.errors import BackendError
from generation.models import Corpus, Generator, Item, Sample
from tests.generation import backend_functions
from workspaces.models import Membership

# ------------------------------------------------------------------------------
# Names and checks
# ------------------------------------------------------------------------------


def test_backends_are_the_operators_names_for_classes(settings):
    settings.PARITY_GENERATION_BACKENDS = {
        "builtin": "builtin", "callable": "callable", "fancy": "mylab.backends.Fancy",
    }
    assert backends.backend_path("builtin") == "generation.backends.builtin.Backend"
    assert backends.backend_path("fancy") == "mylab.backends.Fancy"
    assert backends.backend_class("callable") is CallableBackend


def test_by_default_generators_may_use_builtin_and_diffusers_and_no_callable():
    assert backends.backends_allowed() == {"builtin": "builtin", "diffusers": "diffusers"}
    for name in ("callable", "generation.backends.function.Backend", "os.system"):
        with pytest.raises(BackendError, match="is not one this site allows: use 'upload', 'builtin', 'diffusers'"):
            backends.backend_check(backend=name, config={"function": "solid"}, settings={})


@pytest.mark.parametrize(
    ("backend", "config", "inference", "field", "words"),
    [
        ("sdxl", {}, {}, "backend", "backend 'sdxl' is not one this site allows"),
        ("nothing", {}, {}, "backend", "cannot be imported"),
        ("builtin", {}, {}, "backend_config", "need 'checkpoint'"),
        ("builtin", {"checkpoint": ""}, {}, "backend_config.checkpoint", "non-empty string"),
        ("builtin", {"checkpoint": "a.pt", "chekpoint": "b.pt"}, {}, "backend_config", "unknown backend option 'chekpoint'"),
        ("builtin", {"checkpoint": "a.pt"}, {"sampler": "ddim"}, "settings", "'sampler' is not one this backend takes"),
        ("builtin", {"checkpoint": "a.pt", "batch_size": 0}, {}, "backend_config", "batch_size"),
        ("callable", {"function": "no module"}, {}, "backend_config.function", "is not one this site allows"),
        ("callable", {"function": "pty:spawn"}, {}, "backend_config.function", "use one of 'solid', "),
        ("callable", {"function": f"{backend_functions.__name__}:solid"}, {}, "backend_config.function", "not one"),
        ("callable", {"function": ["solid"]}, {}, "backend_config.function", "not one this site allows"),
        ("diffusers", {"path": "p", "dtype": "int8"}, {}, "backend_config", "dtype must be one of"),
        ("callable", [1], {}, "backend_config", "JSON object"),
    ],
)
def test_a_backend_that_cannot_work_is_refused_naming_its_field(
    settings, callables, backend, config, inference, field, words
):
    settings.PARITY_GENERATION_BACKENDS = {
        **settings.PARITY_GENERATION_BACKENDS, "nothing": "generation.backends.nothing.Backend",
    }
    with pytest.raises(BackendError, match=words) as refused:
        backends.backend_check(backend=backend, config=config, settings=inference)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("backend", "config", "inference"),
    [
        ("upload", {}, {"steps": 50}),
        ("builtin", {"checkpoint": "ladder/S-step0000100.pt"}, {"steps": 20, "guidance": 4.0}),
        ("callable", {"function": "solid", "batch_size": 16}, {"anything": 1}),
        ("diffusers", {"path": "tiny", "dtype": "float16"}, {"steps": 4}),
        # Another package's class is not imported in the web process: the operator's name is enough.
        ("fancy", {"whatever": True}, {}),
    ],
)
def test_a_backend_that_can_work_passes(settings, callables, backend, config, inference):
    settings.PARITY_GENERATION_BACKENDS = {**settings.PARITY_GENERATION_BACKENDS, "fancy": "mylab.backends.Fancy"}
    backends.backend_check(backend=backend, config=config, settings=inference)


def test_services_refuse_a_bad_backend_on_create_and_update(workspace, callables):
    with pytest.raises(BackendError, match="need 'function'"):
        services.generator_create(workspace=workspace, name="g", backend="callable")
    generator = services.generator_create(
        workspace=workspace, name="g", backend="callable", backend_config={"function": "solid"}
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
# A member cannot make the worker run code of their choosing
# ------------------------------------------------------------------------------


@pytest.fixture
def member_api(workspace, django_user_model):
    user = django_user_model.objects.create_user("m", password="x")
    Membership.objects.create(workspace=workspace, user=user, role="member")
    api = APIClient()
    api.force_authenticate(user)
    return api


SPAWN = {"workspace": "lab", "name": "g", "backend": "callable", "backend_config": {"function": "pty:spawn"}}


def test_a_member_cannot_name_a_callable_where_the_operator_allows_none(member_api):
    response = member_api.post("/api/v1/generators/", SPAWN, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["field"], error["code"]) == ("backend", "invalid_backend")
    assert "Backend 'callable' is not one this site allows" in error["message"]
    assert not Generator.objects.exists()


@pytest.mark.parametrize("function", ["pty:spawn", "pty.spawn", "os:system", "subprocess:run", "builtins:exec"])
def test_a_member_cannot_name_a_function_the_operator_did_not_list(member_api, callables, function):
    response = member_api.post(
        "/api/v1/generators/", {**SPAWN, "backend_config": {"function": function}}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["field"], error["code"]) == ("backend_config.function", "invalid_backend")
    assert f"Function {function!r} is not one this site allows: use one of 'solid'" in error["message"]
    assert not Generator.objects.exists()


def test_a_member_cannot_switch_a_generator_to_an_unlisted_function(member_api, workspace, callables):
    generator = services.generator_create(
        workspace=workspace, name="g", backend="callable", backend_config={"function": "solid"}
    )
    response = member_api.patch(
        f"/api/v1/generators/{generator.pk}/", {"backend_config": {"function": "pty:spawn"}}, format="json"
    )
    assert (response.status_code, response.json()["error"]["field"]) == (400, "backend_config.function")
    assert Generator.objects.get(pk=generator.pk).backend_config == {"function": "solid"}


def test_a_member_picks_a_listed_function_by_its_name(member_api, callables):
    response = member_api.post(
        "/api/v1/generators/", {**SPAWN, "backend_config": {"function": "solid"}}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert Generator.objects.get().backend_config == {"function": "solid"}


# ------------------------------------------------------------------------------
# Checkpoints and pipeline folders: inside their folders only
# ------------------------------------------------------------------------------


@pytest.fixture
def roots(settings, tmp_path):
    """Checkpoint and pipeline folders, each with a link inside that leads out and one that stays in."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pt").write_bytes(b"x")
    found = {}
    for backend, option, setting in [
        ("builtin", "checkpoint", "PARITY_CHECKPOINT_DIR"), ("diffusers", "path", "PARITY_DIFFUSERS_DIR")
    ]:
        root = tmp_path / setting
        (root / "models").mkdir(parents=True)
        (root / "models" / "ok.pt").write_bytes(b"x")
        (root / "out").symlink_to(outside)
        (root / "out.pt").symlink_to(outside / "secret.pt")
        (root / "in").symlink_to(root / "models")
        setattr(settings, setting, root)
        found[backend] = (option, root)
    return {"outside": outside, **found}


@pytest.mark.parametrize("backend", ["builtin", "diffusers"])
@pytest.mark.parametrize(
    "name",
    ["../outside/secret.pt", "models/../../outside/secret.pt", "models/../ok.pt", "{outside}/secret.pt", "/etc/passwd",
     "out/secret.pt", "out.pt", "out", "{root}/out/secret.pt", "with\x00nul"],
)
def test_a_path_that_leads_out_of_its_folder_is_refused(roots, backend, name):
    option, root = roots[backend]
    name = name.format(outside=roots["outside"], root=root)
    with pytest.raises(BackendError, match="PARITY_(CHECKPOINT|DIFFUSERS)_DIR") as refused:
        backends.backend_check(backend=backend, config={option: name}, settings={})
    assert refused.value.field == f"backend_config.{option}"


@pytest.mark.parametrize("backend", ["builtin", "diffusers"])
@pytest.mark.parametrize("name", ["models/ok.pt", "in/ok.pt", "{root}/models/ok.pt", "not/there/yet.pt", "./models"])
def test_a_path_inside_its_folder_passes(roots, backend, name):
    option, root = roots[backend]
    backends.backend_check(backend=backend, config={option: name.format(root=root)}, settings={})


def test_the_api_names_the_option_whose_path_leads_out(member_api, roots):
    for backend, option in [("builtin", "checkpoint"), ("diffusers", "path")]:
        response = member_api.post(
            "/api/v1/generators/",
            {"workspace": "lab", "name": backend, "backend": backend,
             "backend_config": {option: "../outside/secret.pt"}},
            format="json",
        )
        assert response.status_code == 400
        assert response.json()["error"]["field"] == f"backend_config.{option}"
        assert "must not contain '..'" in response.json()["error"]["message"]
    assert not Generator.objects.exists()


def test_the_builtin_backend_loads_only_inside_the_checkpoint_folder(roots):
    with pytest.raises(BackendError, match="lies outside") as refused:
        backends.backend_load(backend="builtin", config={"checkpoint": "out.pt"}, device="cpu")
    assert refused.value.field == "backend_config.checkpoint"


# ------------------------------------------------------------------------------
# The admin refuses what the API refuses
# ------------------------------------------------------------------------------


@pytest.fixture
def admin_page(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(admin)
    return client


def admin_add(client, workspace, **fields):
    data = {
        "workspace": workspace.pk, "name": "g", "description": "", "settings": "{}", "metrics": "{}",
        "backend": "callable", "backend_config": '{"function": "pty:spawn"}', **fields,
    }
    return client.post("/admin/generation/generator/add/", data)


def test_the_admin_offers_only_the_allowed_backends(admin_page, workspace, callables):
    form = admin_page.get("/admin/generation/generator/add/").context["adminform"].form
    assert [value for value, _ in form.fields["backend"].choices] == ["upload", "builtin", "diffusers", "callable"]


def test_the_admin_refuses_an_unlisted_function_and_a_backend_not_allowed(admin_page, workspace, settings, callables):
    refused = admin_add(admin_page, workspace)
    assert refused.status_code == 200  # the form again, with its errors
    errors = refused.context["adminform"].form.errors
    assert "function 'pty:spawn' is not one this site allows" in errors["backend_config"][0]

    settings.PARITY_GENERATION_BACKENDS = {"builtin": "builtin"}
    refused = admin_add(admin_page, workspace, backend_config='{"function": "solid"}')
    assert "backend" in refused.context["adminform"].form.errors

    refused = admin_add(admin_page, workspace, backend="builtin", backend_config='{"checkpoint": "/etc/passwd"}')
    assert "lies outside" in refused.context["adminform"].form.errors["backend_config"][0]
    assert not Generator.objects.exists()

    settings.PARITY_GENERATION_BACKENDS = {"callable": "callable"}
    added = admin_add(admin_page, workspace, backend_config='{"function": "solid"}')
    assert added.status_code == 302
    assert Generator.objects.get().backend_config == {"function": "solid"}


# ------------------------------------------------------------------------------
# callable
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["{module}:solid", "{module}.solid"])
def test_the_callable_backend_calls_the_function_with_the_settings(callables, path):
    callables["drawn"] = path.format(module=backend_functions.__name__)
    backend = backends.backend_load(backend="callable", config={"function": "drawn"})
    images = backend.generate(["a", "bb"], [1, 2], size=5)
    assert [image.size for image in images] == [(5, 5), (5, 5)]
    assert images[1].getpixel((0, 0)) == (2, 14, 0)


def test_the_callable_backend_gives_the_device_to_a_function_that_takes_it(callables):
    function = {"function": "with_device"}
    assert backends.backend_load(backend="callable", config=function).generate(["a"], [1])[0].getpixel((0, 0)) == (0, 0, 0)
    on_gpu = backends.backend_load(backend="callable", config=function, device="cuda:1")
    assert on_gpu.generate(["a"], [1])[0].getpixel((0, 0)) == (0, 0, 255)
    assert on_gpu.device_name == "cuda:1"


def test_the_callable_backend_says_what_it_cannot_import(callables):
    callables["nowhere"] = "tests.generation.nowhere:f"
    with pytest.raises(BackendError, match="function 'nowhere' cannot be imported here"):
        backends.backend_load(backend="callable", config={"function": "nowhere"})


def test_the_callable_backend_loads_only_a_listed_function(callables):
    with pytest.raises(BackendError, match="'pty:spawn' is not one this site allows") as refused:
        backends.backend_load(backend="callable", config={"function": "pty:spawn"})
    assert refused.value.field == "backend_config.function"


def test_a_backend_class_the_operator_names(settings, callables):
    settings.PARITY_GENERATION_BACKENDS = {"mine": "generation.backends.function.Backend"}
    backend = backends.backend_load(backend="mine", config={"function": "solid", "batch_size": 3})
    assert backend.batch_size == 3
    assert isinstance(backend.generate(["x"], [0])[0], Image.Image)
    # The class's own rules hold under any name: it calls only the listed functions.
    with pytest.raises(BackendError, match="not one this site allows"):
        backends.backend_load(backend="mine", config={"function": "os:system"})


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


@pytest.fixture
def pipelines(settings, tiny_pipeline):
    """The tiny pipeline's folder, inside the pipelines folder the settings name."""
    settings.PARITY_DIFFUSERS_DIR = Path(tiny_pipeline).parent
    return tiny_pipeline


def test_the_diffusers_backend_makes_one_image_per_seed_whatever_the_batch(pipelines):
    backend = backends.backend_load(backend="diffusers", config={"path": pipelines}, device="cpu")
    assert backend.device_name == "cpu"
    batch = backend.generate(["a", "b", "c"], [1, 2, 3], steps=2)
    alone = backend.generate(["anything"], [2], steps=2)
    assert [image.size for image in batch] == [(8, 8)] * 3
    assert alone[0].tobytes() == batch[1].tobytes()
    assert batch[0].tobytes() != batch[1].tobytes()


def test_the_diffusers_backend_refuses_a_setting_its_pipeline_lacks(pipelines):
    backend = backends.backend_load(backend="diffusers", config={"path": Path(pipelines).name}, device="cpu")
    with pytest.raises(BackendError, match="takes no 'guidance_scale'") as refused:
        backend.prepare({"steps": 2, "guidance": 3.0})
    assert refused.value.field == "settings"


def test_the_diffusers_backend_says_when_there_is_no_pipeline(settings, tmp_path):
    pytest.importorskip("diffusers")
    settings.PARITY_DIFFUSERS_DIR = tmp_path
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no diffusers pipeline could be loaded"):
        backends.backend_load(backend="diffusers", config={"path": "empty"}, device="cpu")
    with pytest.raises(BackendError, match="no diffusers pipeline folder 'absent' on this worker"):
        backends.backend_load(backend="diffusers", config={"path": "absent"}, device="cpu")


@pytest.mark.django_db(transaction=True)
def test_a_job_stores_the_diffusers_pipelines_samples(pipelines, workspace):
    corpus = Corpus.objects.create(workspace=workspace, name="c")
    for key in ("a", "b", "c"):
        Item.objects.create(corpus=corpus, key=key, caption=f"caption {key}", image=f"originals/{key}.png",
                            sha256="0" * 64, width=8, height=8, format="PNG", mode="RGB", byte_size=1)
    generator = services.generator_create(
        workspace=workspace, name="ddpm", backend="diffusers", backend_config={"path": pipelines},
        settings={"steps": 2},
    )
    job = services.generation_job_create(generator=generator, corpus=corpus, seeds_per_item=2, enqueue=False)

    job = services.generation_job_run(job_id=job.pk, device="cpu", batch_size=4)

    assert (job.status, job.done, job.failed, job.batch_size, job.device) == ("succeeded", 6, 0, 4, "cpu")
    samples = Sample.objects.filter(generator=generator)
    assert samples.count() == 6 and {(s.width, s.height) for s in samples} == {(8, 8)}
    assert len({s.sha256 for s in samples}) == 6
