"""The presentation policy renders a reference and a sample so only content tells them apart."""

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin
from PIL.PngImagePlugin import PngInfo

from generation import presentation
from generation.presentation import BACKGROUND, PresentationPolicy, ensure_presented, to_srgb

REPO = Path(__file__).resolve().parents[2]
METADATA_MARKERS = [
    b"Exif", b"ICC_PROFILE", b"iCCP", b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"XMP", b"ns.adobe.com",
    b"Canon", b"EOS", b"generator-v2", b"parameters",
]


# --- building sources ---------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    exif[0x0132] = "2021:06:01 12:00:00"
    return exif


def generator_pnginfo() -> PngInfo:
    info = PngInfo()
    info.add_text("parameters", "steps: 50, sampler: generator-v2")
    info.add_text("Software", "generator-v2", zip=True)
    info.add_itxt("Comment", "made by generator-v2")
    return info


def lab_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gradient(mode: str, size: tuple[int, int]) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(x[None, :], x[::-1][None, :], np.full((size[1], 1), 90, np.uint8)), -1)
    return Image.fromarray(np.ascontiguousarray(rgb)).convert(mode)


def cmyk_camera_jpeg() -> bytes:
    return encode(
        gradient("CMYK", (640, 480)), "JPEG", quality=97, exif=camera_exif(6),
        icc_profile=lab_profile(), subsampling=0,
    )


def rgba_generator_png() -> bytes:
    image = gradient("RGBA", (512, 512))
    image.putalpha(200)
    return encode(image, "PNG", pnginfo=generator_pnginfo())


def grey16_png() -> bytes:
    values = np.tile(np.linspace(0, 65535, 300, dtype=np.uint16), (200, 1))
    return encode(Image.fromarray(values), "PNG")


def palette_png() -> bytes:
    image = gradient("RGB", (256, 256)).quantize(64)
    return encode(image, "PNG", transparency=0, pnginfo=generator_pnginfo())


def camera_webp() -> bytes:
    return encode(gradient("RGB", (800, 600)), "WEBP", quality=60, exif=camera_exif(1), icc_profile=srgb_profile())


def generator_webp() -> bytes:
    return encode(gradient("RGBA", (1024, 1024)), "WEBP", lossless=True, xmp=b"<x:xmpmeta>generator-v2</x:xmpmeta>")


# --- reading renderings -------------------------------------------------------------


def jpeg_header(data: bytes) -> bytes:
    """Every segment before the scan: APP0, quantization and Huffman tables, frame."""
    i = 2
    while data[i + 1] != 0xDA:
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return data[:i]


def png_chunk_types(data: bytes) -> set[bytes]:
    types, i = set(), 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        types.add(data[i + 4 : i + 8])
        i += 12 + length
    return types


def observable(data: bytes) -> dict:
    """What an annotator's browser (or their dev tools) could learn besides the pixels."""
    with Image.open(io.BytesIO(data)) as image:
        facts = {
            "size": image.size,
            "mode": image.mode,
            "format": image.format,
            "info": dict(image.info),
            "exif": dict(image.getexif()),
        }
        if image.format == "JPEG":
            facts["header"] = jpeg_header(data)
            facts["sampling"] = JpegImagePlugin.get_sampling(image)
        elif image.format == "PNG":
            facts["chunks"] = png_chunk_types(data)
        else:
            facts["riff"] = data[12:16]
    return facts


def assert_no_metadata(data: bytes):
    facts = observable(data)
    assert facts["exif"] == {}
    assert not {"icc_profile", "exif", "xmp", "XML:com.adobe.xmp", "transparency"} & set(facts["info"])
    for marker in METADATA_MARKERS:
        assert marker not in data, marker


# --- blindness ----------------------------------------------------------------------

PAIRS = {
    "cmyk camera jpeg vs rgba png": (cmyk_camera_jpeg, rgba_generator_png),
    "16-bit grey png vs palette png": (grey16_png, palette_png),
    "camera webp vs generator webp": (camera_webp, generator_webp),
}


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
@pytest.mark.parametrize(
    "policy",
    [
        PresentationPolicy(),
        PresentationPolicy(size=300, aspect="4:3", crop="pad", format="WEBP", quality=80),
        PresentationPolicy(size=128, aspect="3:4", format="PNG"),
    ],
    ids=["jpeg", "webp", "png"],
)
def test_reference_and_sample_differ_only_in_content(pair, policy):
    reference, sample = (policy.render(make()) for make in pair)

    assert observable(reference) == observable(sample)
    assert observable(reference)["size"] == policy.dimensions
    assert observable(reference)["mode"] == "RGB"
    assert observable(reference)["format"] == policy.format
    assert_no_metadata(reference)
    assert_no_metadata(sample)


def test_jpeg_codec_parameters_are_fixed():
    facts = observable(PresentationPolicy().render(rgba_generator_png()))
    assert facts["sampling"] == 2  # 4:2:0
    assert b"\xff\xc2" not in facts["header"]  # baseline, not progressive
    assert facts["info"].get("progressive") is None


# --- conversion -----------------------------------------------------------------------


def pixel(data: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").getpixel(xy)


def test_exif_orientation_is_applied():
    stored = Image.new("RGB", (200, 100), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 50, 200, 100))  # top half red, bottom half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the stored top edge ends on the right
    policy = PresentationPolicy(size=64, aspect="1:2", format="PNG")
    assert policy.dimensions == (32, 64)

    rendered = policy.render(encode(stored, "JPEG", quality=95, exif=exif))

    right, left = pixel(rendered, (28, 32)), pixel(rendered, (3, 32))
    assert right[0] > 200 and right[2] < 60
    assert left[2] > 200 and left[0] < 60


def test_16_bit_mid_grey_becomes_8_bit_mid_grey():
    rendered = PresentationPolicy(size=32, format="PNG").render(
        encode(Image.fromarray(np.full((40, 40), 32768, np.uint16)), "PNG")
    )
    assert pixel(rendered, (16, 16)) == (128, 128, 128)


@pytest.mark.parametrize(
    "image",
    [
        Image.frombytes("I;16B", (4, 4), np.full((4, 4), 0xC0FF, ">u2").tobytes()),
        Image.fromarray(np.full((4, 4), 0xC0FF, np.uint16)),
        Image.fromarray(np.full((4, 4), 0xC0FF, np.int32)),
    ],
    ids=lambda image: image.mode,
)
def test_16_bit_modes_keep_the_high_byte(image):
    assert to_srgb(image).getpixel((0, 0)) == (0xC0, 0xC0, 0xC0)


def test_mode_i_clips_instead_of_stretching():
    values = np.array([[-5, 70000], [256, 32768]], np.int32)
    assert list(to_srgb(Image.fromarray(values)).convert("L").get_flattened_data()) == [0, 255, 1, 128]


@pytest.mark.parametrize("icc_profile", [None, lab_profile(), b"not a profile"], ids=["none", "lab", "broken"])
def test_cmyk_cyan_renders_cyan(icc_profile):
    source = Image.new("CMYK", (64, 64), (255, 0, 0, 0))
    params = {"icc_profile": icc_profile} if icc_profile else {}
    red, green, blue = pixel(PresentationPolicy(size=32, format="PNG").render(encode(source, "JPEG", **params)), (16, 16))
    assert red < 60 and green > 200 and blue > 200


def test_a_broken_profile_falls_back_to_plain_conversion():
    source = gradient("RGB", (100, 80))
    policy = PresentationPolicy(size=64)
    assert policy.render(encode(source, "PNG", icc_profile=b"\x00" * 200)) == policy.render(encode(source, "PNG"))


def test_an_embedded_rgb_profile_is_converted_to_srgb(monkeypatch):
    calls = []
    real = presentation.ImageCms.profileToProfile

    def spy(image, source, target, **kwargs):
        calls.append((image.mode, source.profile.xcolor_space, kwargs["outputMode"]))
        return real(image, source, target, **kwargs)

    monkeypatch.setattr(presentation.ImageCms, "profileToProfile", spy)
    rendered = PresentationPolicy(size=32, format="PNG").render(
        encode(Image.new("RGB", (40, 40), (10, 200, 30)), "PNG", icc_profile=srgb_profile())
    )
    assert calls == [("RGB", "RGB ", "RGB")]
    assert all(abs(a - b) <= 2 for a, b in zip(pixel(rendered, (16, 16)), (10, 200, 30)))


def palette_image(index: int) -> Image.Image:
    image = Image.new("P", (50, 50), index)
    image.putpalette([value for i in range(256) for value in (i, 0, 255 - i)])
    return image


@pytest.mark.parametrize(
    "source",
    [
        encode(Image.new("RGBA", (50, 50), (255, 0, 0, 0)), "PNG"),
        encode(Image.new("LA", (50, 50), (255, 0)), "PNG"),
        encode(palette_image(3), "PNG", transparency=3),
        encode(Image.new("RGBA", (50, 50), (255, 0, 0, 0)), "WEBP", lossless=True),
    ],
    ids=["rgba", "la", "palette", "webp"],
)
def test_transparency_is_flattened_on_the_fixed_background(source):
    assert pixel(PresentationPolicy(size=32, format="PNG").render(source), (16, 16)) == BACKGROUND


# --- framing ------------------------------------------------------------------------


def test_center_crop_keeps_the_centre():
    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 255, 0), (100, 0, 200, 100))
    wide.paste((0, 0, 255), (200, 0, 300, 100))
    rendered = PresentationPolicy(size=60, format="PNG").render(encode(wide, "PNG"))
    for xy in [(0, 0), (59, 0), (0, 59), (59, 59), (30, 30)]:
        red, green, blue = pixel(rendered, xy)
        assert green > 240 and red < 15 and blue < 15, xy


def test_pad_letterboxes_with_the_fixed_colour():
    wide = Image.new("RGB", (300, 100), (0, 255, 0))
    rendered = PresentationPolicy(size=60, crop="pad", format="PNG").render(encode(wide, "PNG"))
    assert pixel(rendered, (30, 0)) == BACKGROUND
    assert pixel(rendered, (30, 59)) == BACKGROUND
    assert pixel(rendered, (30, 30)) == (0, 255, 0)
    assert pixel(rendered, (0, 30)) == (0, 255, 0)


@pytest.mark.parametrize(
    "size, aspect, dimensions",
    [(512, "1:1", (512, 512)), (512, "4:3", (512, 384)), (512, "3:4", (384, 512)),
     (512, "16:9", (512, 288)), (100, "16:9", (100, 56)), (333, "9:16", (187, 333))],
)
@pytest.mark.parametrize("crop", ["center", "pad"])
def test_output_has_the_exact_pixel_size(size, aspect, dimensions, crop):
    policy = PresentationPolicy(size=size, aspect=aspect, crop=crop)
    assert policy.dimensions == dimensions
    for source in (cmyk_camera_jpeg(), grey16_png()):
        assert observable(policy.render(source))["size"] == dimensions


# --- determinism and caching ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_same_bytes_give_identical_output(fmt):
    source = rgba_generator_png()
    assert PresentationPolicy(format=fmt).render(source) == PresentationPolicy(format=fmt).render(source)


def test_any_field_or_the_renderer_version_changes_the_fingerprint(monkeypatch):
    base = PresentationPolicy()
    assert base.fingerprint == PresentationPolicy().fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", base.fingerprint)
    variants = [PresentationPolicy(quality=80), PresentationPolicy(size=256), PresentationPolicy(aspect="4:3"),
                PresentationPolicy(crop="pad"), PresentationPolicy(format="WEBP")]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 6
    sha = "ab" * 32
    assert base.cache_name(sha) != PresentationPolicy(quality=80).cache_name(sha)
    assert base.render(camera_webp()) != PresentationPolicy(quality=80).render(camera_webp())

    before = base.fingerprint
    monkeypatch.setattr(presentation, "RENDERER_VERSION", presentation.RENDERER_VERSION + 1)
    assert base.fingerprint != before


def test_cache_name_reveals_nothing_but_hex():
    policy = PresentationPolicy()
    reference = policy.cache_name(hashlib.sha256(cmyk_camera_jpeg()).hexdigest())
    sample = policy.cache_name(hashlib.sha256(rgba_generator_png()).hexdigest())
    for name in (reference, sample):
        match = re.fullmatch(r"presented/([0-9a-f]{2})/([0-9a-f]{64})\.png", name)
        assert match and match[2].startswith(match[1])
    assert reference != sample
    assert policy.cache_name("0" * 64) == policy.cache_name("0" * 64)
    for bad in ["reference-1", "AB" * 32, "ab" * 31]:
        with pytest.raises(ValueError, match="source_sha256"):
            policy.cache_name(bad)


def test_ensure_presented_renders_once_and_drops_a_racing_copy(tmp_path, monkeypatch):
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=tmp_path)
    policy = PresentationPolicy(size=64)
    source = camera_webp()
    sha = hashlib.sha256(source).hexdigest()
    reads = []

    def read():
        reads.append(1)
        return source

    name = ensure_presented(policy, storage, source_sha256=sha, read_source=read)
    assert name == policy.cache_name(sha)
    assert storage.open(name).read() == policy.frame_bytes(source)
    assert ensure_presented(policy, storage, source_sha256=sha, read_source=read) == name
    assert len(reads) == 1

    real_exists, asked = storage.exists, []

    def exists_after_a_race(name):  # another worker saves between our check and our save
        asked.append(name)
        return len(asked) > 1 and real_exists(name)

    monkeypatch.setattr(storage, "exists", exists_after_a_race)
    assert ensure_presented(policy, storage, source_sha256=sha, read_source=read) == name
    assert [p.name for p in (tmp_path / name).parent.iterdir()] == [Path(name).name]


# --- the value object ---------------------------------------------------------------


def test_to_dict_from_dict_round_trip_through_json():
    policy = PresentationPolicy(size=300, aspect="16:9", crop="pad", format="WEBP", quality=75)
    restored = PresentationPolicy.from_dict(json.loads(json.dumps(policy.to_dict())))
    assert restored == policy
    assert restored.fingerprint == policy.fingerprint
    assert PresentationPolicy.from_dict({}) == PresentationPolicy()


@pytest.mark.parametrize(
    "values, field",
    [({"size": 0}, "size"), ({"size": True}, "size"), ({"size": 512.0}, "size"),
     ({"quality": 101}, "quality"), ({"quality": 0}, "quality"), ({"format": "GIF"}, "format"),
     ({"crop": "stretch"}, "crop"), ({"aspect": "4x3"}, "aspect"), ({"aspect": "0:1"}, "aspect"),
     ({"aspect": "999:1", "size": 16}, "aspect")],
)
def test_invalid_values_name_the_field(values, field):
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        PresentationPolicy(**values)
    with pytest.raises(ValueError, match=field):
        PresentationPolicy.from_dict(values)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown presentation policy field.*sharpen"):
        PresentationPolicy.from_dict({"size": 512, "sharpen": 2})


def test_module_does_not_import_django():
    code = "import sys, generation.presentation; assert 'django' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_fingerprint_changes_with_the_pillow_release(monkeypatch):
    import PIL

    policy = PresentationPolicy()
    before = policy.fingerprint
    monkeypatch.setattr(PIL, "__version__", "0.0.0-other-build")
    assert policy.fingerprint != before


# --- per assignment: perturbed, encoded, padded to one length -------------------------


def detailed() -> bytes:
    """A photograph's worth of detail: noise compresses worst."""
    return encode(Image.fromarray(np.random.default_rng(5).integers(0, 256, (300, 300, 3), dtype=np.uint8)), "PNG")


def smooth() -> bytes:
    """A generator's smooth output: a gradient compresses best."""
    return encode(gradient("RGB", (300, 300)), "PNG")


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def frames_of(policy: PresentationPolicy, left: bytes, right: bytes) -> dict:
    return {"left": policy.frame_bytes(left), "right": policy.frame_bytes(right)}


FORMAT_POLICIES = [
    PresentationPolicy(size=96, format="JPEG"),
    PresentationPolicy(size=96, format="PNG"),
    PresentationPolicy(size=96, aspect="4:3", format="WEBP", quality=80),
    PresentationPolicy(size=96, format="BMP"),
]


@pytest.mark.parametrize("policy", FORMAT_POLICIES, ids=lambda p: p.format)
def test_a_pair_is_served_as_one_length_whatever_the_detail(policy):
    frames = frames_of(policy, detailed(), smooth())
    plain = {slot: len(policy.encode(Image.open(io.BytesIO(data)))) for slot, data in frames.items()}
    if policy.format != "BMP":
        assert plain["left"] > 2 * plain["right"], plain  # the leak the padding hides
    for n in range(5):
        pair = presentation.present_pair(policy, frames, secret=b"assignment-%d" % n)
        assert len(pair["left"]) == len(pair["right"]), {slot: len(data) for slot, data in pair.items()}
        for data in pair.values():
            assert observable(data)["size"] == policy.dimensions
            assert observable(data)["format"] == policy.format
            assert_no_metadata(data)


@pytest.mark.parametrize("policy", FORMAT_POLICIES, ids=lambda p: p.format)
def test_the_bytes_and_pixels_differ_per_assignment_and_by_one_level_at_most(policy):
    frames = frames_of(policy, detailed(), detailed())  # a calibration trial: one image twice
    pairs = [presentation.present_pair(policy, frames, secret=b"assignment-%d" % n) for n in range(6)]
    served = [data for pair in pairs for data in pair.values()]
    assert len({hashlib.sha256(data).digest() for data in served}) == len(served)
    assert len({pixels(data).tobytes() for data in served}) == len(served)
    # The same assignment gets the same bytes again, in any process.
    assert presentation.present_pair(policy, frames, secret=b"assignment-0") == pairs[0]
    if policy.format in ("PNG", "BMP"):  # lossless: the perturbation itself, exactly
        original = pixels(frames["left"])
        for data in served:
            change = np.abs(pixels(data) - original)
            assert change.max() == 1 and 0.2 < (change.max(axis=2) > 0).mean() < 0.8


@pytest.mark.parametrize("policy", FORMAT_POLICIES[:3], ids=lambda p: p.format)
@pytest.mark.parametrize("extra", [16, 17, 65536, 65537 + 1, 65537 + 3, 3 * 65537 + 2])
def test_padding_decodes_to_the_same_pixels(policy, extra):
    data = presentation._paddable(policy.format, policy.render(detailed()))
    extra += extra % 2 if policy.format == "WEBP" else 0
    padded = presentation.pad(policy.format, data, len(data) + extra, rng=np.random.default_rng(1))
    assert len(padded) == len(data) + extra
    assert np.array_equal(pixels(padded), pixels(data))
    assert np.array_equal(pixels(data), pixels(policy.render(detailed())))  # WebP's extended layout too
    assert_no_metadata(padded)


def test_padding_needs_room():
    policy = PresentationPolicy(size=32, format="PNG")
    data = policy.render(smooth())
    with pytest.raises(ValueError, match="at least 16 bytes"):
        presentation.pad("PNG", data, len(data) + 8, rng=np.random.default_rng(0))
