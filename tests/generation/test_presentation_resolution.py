"""Resolution parity: `resolution` "match" shows both images of a pair at the lower of
their effective resolutions, so a 64 px reference is not set against a 256 px sample."""

import hashlib
import io
import json

import numpy as np
import PIL
import pytest
from PIL import Image

from generation import presentation
from generation.presentation import RENDERER_VERSION, PresentationPolicy, ensure_presented
from tests.generation.test_presentation import assert_no_metadata, encode, observable, pixels


def noise(side: int, seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """Detail at every frequency up to the image's own Nyquist limit, like a photograph's grain."""
    width, height = size or (side, side)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def high_frequency_share(data: bytes, cutoff: float) -> float:
    """Share of the image's (mean-free) spectral energy above `cutoff` cycles per pixel."""
    grey = pixels(data).astype(np.float64).mean(axis=2)
    spectrum = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[0]), np.fft.fftfreq(grey.shape[1]), indexing="ij")
    high = np.maximum(np.abs(fx), np.abs(fy)) > cutoff
    return float(spectrum[high].sum() / spectrum.sum())


def pair_of(policy: PresentationPolicy, reference: bytes, sample: bytes, secret: bytes = b"assignment") -> dict:
    frames = {"left": policy.frame_bytes(reference), "right": policy.frame_bytes(sample)}
    return presentation.present_pair(policy, frames, secret=secret)


# --- the value object ---------------------------------------------------------------


def test_a_policy_stored_before_the_field_reads_as_native():
    old = {"size": 48, "aspect": "1:1", "crop": "center", "format": "JPEG", "quality": 90}
    policy = PresentationPolicy.from_dict(old)
    assert policy.resolution == "native"
    assert policy == PresentationPolicy.from_dict({**old, "resolution": "native"})
    assert policy.to_dict() == {**old, "resolution": "native"}  # the study records it from now on


def test_the_native_fingerprint_is_the_one_from_before_the_field():
    """Framings stored for existing studies keep their names: nothing is rendered again."""
    for policy in (PresentationPolicy(), PresentationPolicy(size=300, aspect="4:3", crop="pad", format="WEBP")):
        before = {key: value for key, value in policy.to_dict().items() if key != "resolution"}
        payload = json.dumps({**before, "renderer": RENDERER_VERSION, "pillow": PIL.__version__}, sort_keys=True)
        assert policy.fingerprint == hashlib.sha256(payload.encode()).hexdigest()[:16]
        matched = PresentationPolicy.from_dict({**policy.to_dict(), "resolution": "match"})
        assert matched.fingerprint != policy.fingerprint
        assert matched.cache_name("0" * 64) != policy.cache_name("0" * 64)


def test_match_round_trips_through_json():
    policy = PresentationPolicy(size=300, aspect="16:9", crop="pad", format="PNG", resolution="match")
    assert PresentationPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


@pytest.mark.parametrize("bad", ["matched", "", "NATIVE", None, 1])
def test_a_bad_resolution_names_the_field(bad):
    with pytest.raises(ValueError, match=r"^resolution must be one of native, match, not "):
        PresentationPolicy(resolution=bad)
    with pytest.raises(ValueError, match=r"^resolution\b"):
        PresentationPolicy.from_dict({"size": 256, "resolution": bad})


@pytest.mark.parametrize(
    "policy, source, expected",
    [
        (PresentationPolicy(size=256, resolution="match"), (64, 64), (64, 64)),
        (PresentationPolicy(size=256, resolution="match"), (1024, 1024), (256, 256)),
        (PresentationPolicy(size=256, resolution="match"), (256, 256), (256, 256)),
        (PresentationPolicy(size=256, resolution="native"), (64, 64), (256, 256)),
        # The shown region of a centre crop: 64 wide, 48 of the 64 rows.
        (PresentationPolicy(size=256, aspect="4:3", resolution="match"), (64, 64), (64, 48)),
        # A wide source in a square: the crop keeps its 50 rows.
        (PresentationPolicy(size=200, resolution="match"), (400, 50), (50, 50)),
        # Padded, the whole source shows: 64 rows set the scale, the box adds the bars.
        (PresentationPolicy(size=256, aspect="4:3", crop="pad", resolution="match"), (64, 64), (85, 64)),
        (PresentationPolicy(size=200, crop="pad", resolution="match"), (400, 50), (200, 200)),
        (PresentationPolicy(size=200, crop="pad", resolution="match"), (100, 50), (100, 100)),
    ],
)
def test_the_effective_size_is_the_display_box_in_source_pixels(policy, source, expected):
    assert policy.effective_size(source) == expected
    framed = policy.frame(png(noise(0, 1, source)))
    assert framed.size == expected


# --- pairs --------------------------------------------------------------------------


def test_match_gives_the_sharper_sample_the_references_detail():
    """A 64 px reference against a 256 px sample, shown at 128 px: under "native" the
    sample has detail up to the display's limit that the reference cannot have; under
    "match" neither has much above the reference's own limit (64 px: 0.25 cycles per
    displayed pixel)."""
    reference, sample = png(noise(64, 1)), png(noise(256, 2))
    shares = {}
    for resolution in ("native", "match"):
        policy = PresentationPolicy(size=128, format="PNG", resolution=resolution)
        pair = pair_of(policy, reference, sample)
        shares[resolution] = {slot: high_frequency_share(data, 0.25) for slot, data in pair.items()}
    native, match = shares["native"], shares["match"]
    assert native["right"] > 5 * native["left"], shares  # the giveaway
    assert match["right"] <= 1.25 * match["left"] + 0.005, shares
    assert match["right"] < native["right"] / 5, shares
    assert match["left"] == pytest.approx(native["left"], abs=0.01)  # the reference shows as before


def test_the_sharper_image_is_shown_as_if_it_had_the_lower_resolution():
    """Presenting the 256 px sample beside a 64 px reference gives (up to the one-level
    perturbation) what presenting its 64 px LANCZOS reduction would."""
    policy = PresentationPolicy(size=256, format="PNG", resolution="match")
    reference, sample = png(noise(64, 1)), noise(256, 2)
    reduced = png(sample.resize((64, 64), Image.Resampling.LANCZOS))
    for secret in (b"one", b"two"):
        against_full = pair_of(policy, reference, png(sample), secret)["right"]
        against_reduced = pair_of(policy, reference, reduced, secret)["right"]
        difference = np.abs(pixels(against_full) - pixels(against_reduced))
        assert difference.max() <= 2 and difference.mean() < 1


@pytest.mark.parametrize("slots", [("left", "right"), ("right", "left")])
def test_whichever_side_holds_the_lower_resolution_both_are_framed_alike(slots):
    policy = PresentationPolicy(size=128, format="PNG", resolution="match")
    low, high = slots
    frames = {low: policy.frame_bytes(png(noise(64, 1))), high: policy.frame_bytes(png(noise(256, 2)))}
    pair = presentation.present_pair(policy, frames, secret=b"assignment")
    shares = {slot: high_frequency_share(data, 0.25) for slot, data in pair.items()}
    assert shares[high] <= 1.25 * shares[low] + 0.005, shares


def test_match_changes_nothing_when_both_images_have_the_display_resolution():
    native = PresentationPolicy(size=96, format="JPEG")
    match = PresentationPolicy(size=96, format="JPEG", resolution="match")
    reference, sample = png(noise(300, 1)), png(noise(128, 2))
    assert match.frame_bytes(reference) == native.frame_bytes(reference)
    assert pair_of(match, reference, sample) == pair_of(native, reference, sample)


FORMAT_POLICIES = [
    PresentationPolicy(size=96, format="JPEG", resolution="match"),
    PresentationPolicy(size=96, format="PNG", resolution="match"),
    PresentationPolicy(size=96, aspect="4:3", format="WEBP", quality=80, resolution="match"),
    PresentationPolicy(size=96, format="BMP", resolution="match"),
    PresentationPolicy(size=96, aspect="3:4", crop="pad", format="PNG", resolution="match"),
]


@pytest.mark.parametrize("policy", FORMAT_POLICIES, ids=lambda p: f"{p.format}-{p.crop}")
def test_both_slots_keep_one_format_size_and_length(policy):
    reference, sample = png(noise(40, 1, (48, 40))), png(noise(400, 2))
    for n in range(3):
        pair = pair_of(policy, reference, sample, b"assignment-%d" % n)
        assert len(pair["left"]) == len(pair["right"])
        facts = [observable(data) for data in pair.values()]
        for fact in facts:
            assert fact["size"] == policy.dimensions and fact["format"] == policy.format
        # The padding's random bytes aside (a JPEG's comments, in `info` and the header).
        same = [{key: value for key, value in fact.items() if key not in ("header", "info")} for fact in facts]
        assert same[0] == same[1]
        assert set(facts[0]["info"]) == set(facts[1]["info"])
        for data in pair.values():
            assert_no_metadata(data)


def test_render_alone_shows_the_display_size():
    policy = PresentationPolicy(size=128, format="PNG", resolution="match")
    assert observable(policy.render(png(noise(32, 1))))["size"] == (128, 128)


def test_ensure_presented_stores_the_framing_at_its_effective_size(tmp_path):
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=tmp_path)
    policy = PresentationPolicy(size=128, resolution="match")
    source = png(noise(64, 3))
    sha = hashlib.sha256(source).hexdigest()
    name = ensure_presented(policy, storage, source_sha256=sha, read_source=lambda: source)
    assert name == policy.cache_name(sha)
    with Image.open(storage.open(name)) as stored:
        assert stored.size == (64, 64)
    assert storage.open(name).read() == policy.frame_bytes(source)
