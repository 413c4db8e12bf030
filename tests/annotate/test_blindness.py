"""Blindness: nothing an annotator's browser receives tells which side is real.

ARCHITECTURE.md, path 3 (Present): image URLs are opaque and of one shape for both
kinds, both images go through the study's presentation policy, and nothing in the
HTML, attributes, alt text, script, URL, headers or cookies differs by kind.

Head-to-head trials are mixed in, with the opponent's sample in the reference's place:
their pages are those of vs-real trials, and nothing tells the opponent's side either.

The test plays 12 annotators through the real pages with Django's test client, the
way a browser does: entry, consent, then trials as full pages and as htmx partials,
fetching both images of every trial with that annotator's session (and the next
trial's images when the page names them for preloading, as its script does, with a
browser cache in between). Over the 240 served trials it describes every page and
image response as a set of *fields* (values a curious annotator could read in the
browser's developer tools) and checks, field by field, that learning "value -> real
side" on half of the annotators does not predict the other half better than chance. Which side is real is read from the
database (`Assignment.reference_side`); only the test knows it.

Content-Length and the body's length are fields: both images of a trial are padded to
one length, so a detailed photograph is no longer told from a smoother sample by its
size (`test_sizes_say_nothing_when_references_are_detailed_and_samples_smooth` builds
the study where that leak is largest, in PNG and JPEG). What is deliberately not a
field: the Date header is the clock, and response timing is out of scope of this test.
The pixels themselves are not a field either: telling the images apart by them is the
annotator's task.
"""

import hashlib
import io
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from PIL import Image, ImageFilter, JpegImagePlugin, PngImagePlugin
from scipy.stats import binomtest

from annotate.models import Assignment, Study
from annotate.services import study_build_trials, study_open
from demo.scenes import draw_scene
from generation import presentation
from generation.models import Corpus, Generator, Item, Sample
from workspaces.models import Workspace

SLOTS = ("left", "right")
SOURCE_SIZE = 64  # every original, reference or sample, is 64x64: only content differs
POLICY = {"size": 48, "aspect": "1:1", "crop": "center", "format": "JPEG", "quality": 90}
ITEMS, K, ANNOTATORS, QUOTA = 60, 3, 12, 20  # 240 trials served; capacity 120 x 3 + controls
MIN_SERVED = 200
# Chance of a false alarm for the whole test, split over the fields (Bonferroni). With
# 240 trials and ~120 fields a field is flagged from about 64 % held-out accuracy on.
FAMILY_ALPHA = 1e-3
# Not a field: the clock (see the module docstring).
UNCOMPARED_HEADERS = {"date"}

TOKEN = re.compile(r'name="token" value="([0-9a-f-]{36})"')
CSRF = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]+"')
PROGRESS = re.compile(r"\b\d+ of \d+ done\b")
PRELOAD_ATTR = re.compile(r' data-preload="[^"]*"')


# ------------------------------------------------------------------------------
# A study whose references and samples are real, different images in storage
# ------------------------------------------------------------------------------
def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _stored(data: bytes, folder: str) -> dict:
    """Store bytes the way an import does (named by content); the row's image facts."""
    sha256 = hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as image:
        facts = {"width": image.width, "height": image.height, "format": image.format, "mode": image.mode}
    name = default_storage.save(f"{folder}/{sha256}.{facts['format'].lower()}", ContentFile(data))
    return {"image": name, "sha256": sha256, "byte_size": len(data), **facts}


def _blurred(reference: Image.Image) -> bytes:
    """Generator A: a soft re-rendering, written as an RGB PNG."""
    return _encode(reference.filter(ImageFilter.GaussianBlur(1.5)), "PNG")


def _noisy(reference: Image.Image, seed: int) -> bytes:
    """Generator B: a noisy copy written as a generator does: RGBA PNG with a text chunk."""
    pixels = np.asarray(reference, dtype=np.float32)
    pixels += np.random.default_rng(seed).normal(0, 18, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGBA")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"steps=30, seed={seed}, sampler=ddim")
    return _encode(image, "PNG", pnginfo=info)


def _detailed(reference: Image.Image, seed: int) -> bytes:
    """A reference with a photograph's fine detail (grain), written as a camera's JPEG."""
    pixels = np.asarray(reference, dtype=np.float32)
    pixels += np.random.default_rng(10_000 + seed).normal(0, 40, pixels.shape)
    return _encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), "JPEG", quality=97)


def _smooth(reference: Image.Image) -> bytes:
    """A generator's smooth output: the scene, softened."""
    return _encode(reference.filter(ImageFilter.GaussianBlur(3)), "PNG")


def build_blind_study(*, policy: dict = POLICY, items: int = ITEMS, quota: int = QUOTA,
                      detail_leak: bool = False, practice: int = 0, head_to_head_share: float = 0.0) -> Study:
    """An open study: drawn scenes as JPEG references (as a corpus holds them), two
    generators whose samples are altered PNGs of the same size, catch and calibration
    trials, head-to-head trials of the two at `head_to_head_share`, no practice, no breaks.

    `detail_leak`: grainy references against smooth samples of both generators, the
    study where the size of an encoded image says most about its kind.
    """
    workspace = Workspace.objects.create(name="Blind", slug="blind")
    corpus = Corpus.objects.create(workspace=workspace, name="scenes")
    study = Study.objects.create(
        workspace=workspace, name="Blindness", slug="blind", corpus=corpus, judgments_per_trial=K,
        quota_per_annotator=quota, catch_rate=0.1, calibration_rate=0.05, assignment_timeout_seconds=3600,
        practice_trials=practice, break_every=0, presentation_policy=policy, consent_text="You agree to take part.",
        instructions="Look closely at both images.", completion_code="BLIND1", head_to_head_share=head_to_head_share,
    )
    blurred = Generator.objects.create(workspace=workspace, name="soft")
    noisy = Generator.objects.create(workspace=workspace, name="grainy")
    study.generators.add(blurred, noisy)
    for index in range(items):
        scene = draw_scene(4000 + index, size=SOURCE_SIZE)
        reference = _detailed(scene.image, index) if detail_leak else _encode(scene.image, "JPEG", quality=95)
        item = Item.objects.create(
            corpus=corpus, key=f"scene-{index}", caption=scene.caption, **_stored(reference, "originals"),
        )
        samples = (_smooth(scene.image), _smooth(scene.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))) if (
            detail_leak) else (_blurred(scene.image), _noisy(scene.image, index))
        for generator, data in zip((blurred, noisy), samples):
            Sample.objects.create(generator=generator, item=item, seed=0, **_stored(data, "samples"))
    study_build_trials(study=study, rng_seed=7)
    return study_open(study=study)


# ------------------------------------------------------------------------------
# What a browser sees of one trial
# ------------------------------------------------------------------------------
class _Choices(HTMLParser):
    """Every choice button of the page: its attributes, its image's and its label's.

    `position` is the order of the image's tag among all start tags of the page.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.choices: list[dict] = []
        self.section: dict = {}
        self.tags = 0
        self._open: dict | None = None
        self._in_label = False

    def handle_starttag(self, tag, attrs):
        self.tags += 1
        attrs = dict(attrs)
        if tag == "section" and attrs.get("id") == "trial":
            self.section = attrs
        if tag == "button" and "choice" in (attrs.get("class") or "").split():
            self._open = {"button": attrs, "spans": [], "img": None, "label": "", "position": None}
            self.choices.append(self._open)
        elif self._open is not None and tag == "span":
            self._open["spans"].append(attrs)
            self._in_label = "label" in (attrs.get("class") or "").split()
        elif self._open is not None and tag == "img":
            self._open["img"] = attrs
            self._open["position"] = self.tags

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_label = False
        elif tag == "button":
            self._open = None

    def handle_data(self, data):
        if self._open is not None and self._in_label:
            self._open["label"] += data


@dataclass
class Served:
    """One served trial: what the browser received, and (for the test only) the truth."""

    side: str  # where the reference was, from the database
    kind: str
    annotator: int
    mode: str  # "full" page or htmx "partial"
    page: dict = field(default_factory=dict)  # field name -> value, for the whole page
    slots: dict = field(default_factory=dict)  # slot -> {field name -> value}
    image_headers: dict = field(default_factory=dict)  # slot -> {header -> value}, compared headers only
    image_cookies: dict = field(default_factory=dict)  # slot -> cookies the image response set
    image_bytes: dict = field(default_factory=dict)
    masked_html: str = ""
    urls: dict = field(default_factory=dict)
    preload: list = field(default_factory=list)  # the next trial's image URLs, as this page names them


def _classes(text: str) -> str:
    """The character classes of a string: what its shape says without its letters."""
    found = {"digit" if c.isdigit() else "lower" if c.islower() else "upper" if c.isupper() else f"{c!r}"
             for c in text}
    return ",".join(sorted(found))


def _headers(response) -> dict:
    return {name.lower(): value for name, value in response.headers.items() if name.lower() not in UNCOMPARED_HEADERS}


def _cookies(response) -> tuple:
    """Cookies a response sets, values reduced to their shape (they are random per session)."""
    out = []
    for name, morsel in sorted(response.cookies.items()):
        attrs = tuple(sorted((k, "DATE" if k == "expires" else str(morsel[k])) for k in morsel.keys() if morsel[k]))
        out.append((name, len(morsel.value), _classes(morsel.value), attrs))
    return tuple(out)


def _decoded(data: bytes) -> dict:
    """What a decoder tells about an image besides its pixels: geometry, mode, codec, metadata."""
    with Image.open(io.BytesIO(data)) as image:
        quantization = getattr(image, "quantization", None) or {}
        return {
            "format": image.format,
            "mode": image.mode,
            "size": image.size,
            "info_keys": tuple(sorted(image.info)),
            "exif_tags": len(image.getexif()),
            "icc": bool(image.info.get("icc_profile")),
            "progressive": bool(image.info.get("progressive") or image.info.get("progression")),
            "subsampling": JpegImagePlugin.get_sampling(image) if image.format == "JPEG" else None,
            # The quantization tables are the encoder's quality setting: one policy, one table.
            "quantization": hashlib.sha256(repr(sorted((k, list(v)) for k, v in quantization.items())).encode())
            .hexdigest()[:16],
        }


def _image_url_pattern(study: Study) -> re.Pattern:
    """Any image URL of the study, whatever its key: the path the app's URLconf gives."""
    before, after = reverse("annotate:image", args=[study.slug, "KEY"]).split("KEY")
    return re.compile(re.escape(before) + r"[^/\"'\s]+" + re.escape(after))


def _key(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _shape(url: str) -> str:
    """The URL with its key's hex digits masked: what is left is the same for every image."""
    key = _key(url)
    return url.replace(key, re.sub(r"[0-9a-f]", "x", key))


def _mask(html: str, *, token: str, caption: str, image_url: re.Pattern) -> str:
    """The page with what is specific to this assignment or item replaced by placeholders."""
    html = image_url.sub("IMAGE-URL", html)  # this trial's images and the next one's (preload)
    html = html.replace(token, "TOKEN").replace(token.replace("-", ""), "TOKEN-HEX")
    html = html.replace(escape(caption), "CAPTION")
    html = CSRF.sub(r'\1CSRF"', html)
    return PROGRESS.sub("N of Q done", html)


class Browser:
    """One annotator's browser: a session (Django's test client) and an image cache.

    Images come from the cache when the page preloaded them, as a browser serves
    them from its cache (the image responses say `Cache-Control: private, max-age`).
    """

    def __init__(self):
        self.client = Client()
        self.cache: dict = {}

    def image(self, url: str):
        if url not in self.cache:
            self.cache[url] = self.client.get(url)
        return self.cache[url]


def observe(browser: Browser, response, *, study: Study, annotator: int, mode: str, seen_urls: set,
            preloaded: list) -> Served:
    """Describe a served trial page and both of its images, fetched as the browser would.

    `preloaded`: the image URLs the previous page named for preloading, in its order.
    """
    html = response.content.decode()
    token = TOKEN.search(html).group(1)
    assignment = Assignment.objects.select_related("trial", "item").get(token=token)
    parser = _Choices()
    parser.feed(html)
    choices = {choice["button"].get("value"): choice for choice in parser.choices}
    assert set(choices) == set(SLOTS), f"expected one left and one right choice button, got {list(choices)}"
    urls = {slot: choices[slot]["img"]["src"] for slot in SLOTS}
    image_url = _image_url_pattern(study)
    masked = _mask(html, token=token, caption=assignment.item.caption, image_url=image_url)
    preload = parser.section.get("data-preload", "").split()
    served = Served(side=assignment.reference_side, kind=assignment.trial.kind, annotator=annotator, mode=mode,
                    masked_html=masked, urls=urls, preload=preload)
    progress = PROGRESS.search(html)
    served.page = {
        "page.status": response.status_code,
        "page.header_names": tuple(sorted(_headers(response))),
        **{f"page.header.{name}": value for name, value in _headers(response).items()},
        "page.cookies": _cookies(response),
        "page.masked_html": masked,
        "page.length_masked": len(masked),
        "page.progress": progress.group(0) if progress else None,
        "page.section_attrs": tuple(sorted((k, image_url.sub("IMAGE-URL", v or "")) for k, v in
                                           parser.section.items())),
        # The next trial's images, named by this page: how many, of what shape.
        "page.preload.shapes": tuple(_shape(u) for u in preload),
        # Where the previous page listed this trial's images: an order by kind would tell.
        "page.preloaded_order": tuple(preloaded.index(urls[s]) if urls[s] in preloaded else None for s in SLOTS),
    }
    for slot in SLOTS:
        choice, url = choices[slot], urls[slot]
        key = _key(url)
        image = browser.image(url)
        served.image_headers[slot] = _headers(image)
        served.image_cookies[slot] = _cookies(image)
        served.image_bytes[slot] = image.content
        fields = {
            # The URL's shape: the path around the key, the key's length and alphabet.
            "url.path": url.replace(key, "KEY"),
            "url.length": len(url),
            "url.key_length": len(key),
            "url.key_classes": _classes(key),
            "url.key_digits": sum(c.isdigit() for c in key),
            # Unique per image, so useless alone; compared between the slots (see
            # `trial_fields`) it tells whether the reference's key sorts first.
            "url.key": key,
            "url.key_as_number": int(key, 16) if re.fullmatch(r"[0-9a-fA-F]+", key) else None,
            # A content-derived URL would repeat for a reference shown in several trials.
            "url.seen_before": url in seen_urls,
            # The markup: every attribute but src, alt and label texts, place in the page.
            "button.attrs": tuple(sorted(choice["button"].items())),
            "spans.attrs": tuple(tuple(sorted(span.items())) for span in choice["spans"]),
            "img.attrs": tuple(sorted((k, v) for k, v in choice["img"].items() if k != "src")),
            "img.alt": choice["img"].get("alt"),
            "label": choice["label"].strip(),
            "position.tag": choice["position"],
            "position.masked_html": masked.find(f'value="{slot}"'),
            # The image response, all but its bytes (and their number, which a
            # browser's developer tools show even when no header names it).
            "image.status": image.status_code,
            "image.length": len(image.content),
            "image.header_names": tuple(sorted(served.image_headers[slot])),
            **{f"image.header.{name}": value for name, value in served.image_headers[slot].items()},
            "image.cookies": served.image_cookies[slot],
        }
        if image.status_code == 200:
            fields.update({f"image.decoded.{k}": v for k, v in _decoded(image.content).items()})
        served.slots[slot] = fields
    seen_urls.update(urls.values())
    # The page's script preloads the next trial's images once this trial's have decoded.
    for url in preload:
        browser.image(url)
    return served


# ------------------------------------------------------------------------------
# Driving annotators through the pages
# ------------------------------------------------------------------------------
def play(study: Study, annotator: int, rng: random.Random, seen_urls: set) -> list[Served]:
    """One annotator in their own browser, answering at random until the study is done.

    Each answer goes either as an htmx request (the next trial comes back as a
    partial) or as a plain form post followed by a full page load.
    """
    browser, base = Browser(), f"/s/{study.slug}"
    client = browser.client
    assert client.get(f"{base}/", {"PROLIFIC_PID": f"blind-{annotator:04d}"}).status_code == 200
    assert client.post(f"{base}/consent/").status_code == 302
    response, mode, served, preloaded = client.get(f"{base}/trial/"), "full", [], []
    while True:
        if response.status_code == 302 and response["Location"] == f"{base}/trial/":
            response, mode = client.get(f"{base}/trial/"), "full"
            continue
        if response.status_code == 302 or "HX-Redirect" in response:
            target = response["Location"] if response.status_code == 302 else response["HX-Redirect"]
            assert target == f"{base}/done/", f"unexpected navigation to {target}"
            return served
        assert response.status_code == 200, response.content.decode()[:500]
        served.append(observe(browser, response, study=study, annotator=annotator, mode=mode,
                              seen_urls=seen_urls, preloaded=preloaded))
        preloaded = served[-1].preload
        token = TOKEN.search(response.content.decode()).group(1)
        htmx = rng.random() < 0.5
        response = client.post(
            f"{base}/trial/", {"token": token, "choice": rng.choice(SLOTS), "client_ms": str(rng.randint(400, 3000))},
            headers={"HX-Request": "true"} if htmx else {},
        )
        mode = "partial"


# ------------------------------------------------------------------------------
# The predictor: does a field tell the real side better than chance?
# ------------------------------------------------------------------------------
def _majority(counts: Counter) -> str:
    return "left" if counts["left"] >= counts["right"] else "right"


def _comparable(a, b):
    """(a == b, a < b) for two values of one field, comparing reprs when types differ."""
    try:
        return a == b, a < b
    except TypeError:
        return a == b, repr(a) < repr(b)


def trial_fields(page: dict, slots: dict) -> dict:
    """All fields of one trial: the page's, each slot's, and how the two slots compare.

    The comparison catches relations no single slot shows, such as a sequential key
    that is always smaller for the reference.
    """
    fields = dict(page)
    for slot in SLOTS:
        fields.update({f"{slot}.{name}": value for name, value in slots[slot].items()})
    for name in slots[SLOTS[0]].keys() & slots[SLOTS[1]].keys():
        fields[f"pair.{name}"] = _comparable(slots["left"][name], slots["right"][name])
    return fields


def held_out_accuracy(values: list, sides: list[str], folds: list[int]) -> int:
    """Correct predictions of the real side from the field's value, two-fold cross-validated.

    For each fold, the best mapping value -> side is learned on the other fold (the
    majority side per value; an unseen value gets the other fold's majority side) and
    scored on this one. Folds are whole annotators, so no annotator's side sequence
    is on both sides of the split.
    """
    correct = 0
    for held_out in (0, 1):
        per_value, overall = defaultdict(Counter), Counter()
        for value, side, fold in zip(values, sides, folds):
            if fold != held_out:
                per_value[value][side] += 1
                overall[side] += 1
        default = _majority(overall)
        for value, side, fold in zip(values, sides, folds):
            if fold == held_out:
                correct += (_majority(per_value[value]) if value in per_value else default) == side
    return correct


def held_out_threshold_accuracy(values: list[float], sides: list[str], folds: list[int]) -> int:
    """Like `held_out_accuracy` for a number (a length, say), whose values rarely repeat:
    the best threshold and direction ("left when above") is learned on one fold and
    scored on the other."""
    correct = 0
    for held_out in (0, 1):
        train = sorted((v, side == "left") for v, side, fold in zip(values, sides, folds) if fold != held_out)
        lefts = sum(is_left for _, is_left in train)
        # A threshold below everything first: every value is above it.
        best, best_t, above_left = max(lefts, len(train) - lefts), -np.inf, lefts >= len(train) - lefts
        left_below = 0
        for i, (value, is_left) in enumerate(train):
            left_below += is_left
            if i + 1 < len(train) and train[i + 1][0] == value:
                continue
            right_below = i + 1 - left_below
            lefts_above, rights_above = lefts - left_below, len(train) - i - 1 - (lefts - left_below)
            for score, direction in ((right_below + lefts_above, True), (left_below + rights_above, False)):
                if score > best:
                    best, best_t, above_left = score, value, direction
        for v, side, fold in zip(values, sides, folds):
            if fold == held_out:
                correct += ((v > best_t) == above_left) == (side == "left")
    return correct


def _numbers(values: list) -> list[float] | None:
    """The values as numbers, when every one is a number or a string of digits (a header)."""
    out = []
    for value in values:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        out.append(float(value))
    return out


def leaking_fields(rows: list[dict], sides: list[str], folds: list[int], *, family_alpha: float = FAMILY_ALPHA):
    """Fields whose held-out accuracy rejects chance (one-sided binomial, Bonferroni).

    Every field is read as a category (`held_out_accuracy`); a numeric one is also read
    as a number (`held_out_threshold_accuracy`), and both readings count towards the
    correction. Returns [(field, correct, n, p-value)] of the fields that leak, by
    their better reading. Under the null a field's prediction is independent of the
    held-out sides; the per-annotator side balancing only makes the test conservative.
    """
    names = sorted(set().union(*rows))
    tests = []
    for name in names:
        raw = [row.get(name) for row in rows]
        values = [repr(value) for value in raw]  # repr: hashable, and None stays distinct
        if len(set(values)) == 1:
            continue  # the same for every slot and trial: nothing to learn from it
        tests.append((name, held_out_accuracy(values, sides, folds)))
        numbers = _numbers(raw)
        if numbers is not None:
            tests.append((name, held_out_threshold_accuracy(numbers, sides, folds)))
    alpha = family_alpha / max(1, len(tests))
    leaks = {}
    for name, correct in tests:
        p = binomtest(correct, len(rows), 0.5, alternative="greater").pvalue
        if p < alpha and (name not in leaks or p < leaks[name][3]):
            leaks[name] = (name, correct, len(rows), p)
    return sorted(leaks.values())


def _describe(leaks) -> str:
    return "; ".join(f"{name}: {correct}/{n} held-out trials right (p={p:.1e})" for name, correct, n, p in leaks)


# ------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------
@pytest.mark.slow
def test_no_field_of_the_served_pages_and_images_predicts_the_real_side(db, settings):
    # 12 annotators from one address, answering as fast as the test client can: the
    # rate limits would refuse them, and they are not what this test is about.
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = None
    # Head-to-head trials are mixed in: on them the "real side" is the opponent's, and
    # their page must be the page of a vs-real trial.
    study = build_blind_study(head_to_head_share=0.35)
    rng, seen_urls, served = random.Random(2024), set(), []
    for annotator in range(ANNOTATORS):
        served += play(study, annotator, rng, seen_urls)
    sides = [s.side for s in served]
    kinds = Counter(s.kind for s in served)
    assert len(served) >= MIN_SERVED and set(sides) == set(SLOTS), (len(served), Counter(sides))
    assert kinds["generated"] + kinds["head_to_head"] >= MIN_SERVED, kinds
    assert kinds["head_to_head"] >= 40 and kinds["catch"] and kinds["calibration"], kinds
    assert {s.mode for s in served} == {"full", "partial"}

    width, height = POLICY["size"], POLICY["size"]
    for s in served:
        where = f"trial {s.urls} ({s.kind}, annotator {s.annotator})"
        # One shape for both URLs; which is which is not in them.
        assert s.urls["left"] != s.urls["right"], where
        assert _shape(s.urls["left"]) == _shape(s.urls["right"]), where
        assert not any(word in url.lower() for url in s.urls.values()
                       for word in ("real", "ref", "sample", "gen", "catch", "calib", "original", "presented")), where
        # Both image responses: same status and the very same headers, and no cookies.
        assert s.slots["left"]["image.status"] == s.slots["right"]["image.status"] == 200, where
        assert s.image_headers["left"] == s.image_headers["right"], (
            f"{where}: the image responses' headers differ: {s.image_headers}")
        assert s.image_cookies == {"left": (), "right": ()}, f"{where}: an image response set a cookie"
        # Both images went through the study's presentation policy.
        for slot in SLOTS:
            decoded = {k.removeprefix("image.decoded."): v for k, v in s.slots[slot].items()
                       if k.startswith("image.decoded.")}
            rendered = (decoded["format"], decoded["mode"], decoded["size"], decoded["exif_tags"], decoded["icc"])
            assert rendered == ("JPEG", "RGB", (width, height), 0, False), (
                f"{where}: the {slot} image is not the policy's rendering: {decoded}")
        decoded = {slot: {k: v for k, v in s.slots[slot].items() if k.startswith("image.decoded.")} for slot in SLOTS}
        assert decoded["left"] == decoded["right"], f"{where}: the two images decode differently: {decoded}"
        # The test compares different images, except where the study means the same one.
        if s.kind != "calibration":
            assert s.image_bytes["left"] != s.image_bytes["right"], where

    # The page, masked of what is specific to the assignment and item, is one and the
    # same page whichever side is real: one full page, one htmx partial. The preload
    # attribute is left out of this comparison (the last trial of a quota has no next
    # trial to preload, and 12 such pages are too few to split by side); it is a field
    # of the predictor below, like the whole masked page.
    pages = {side: {(s.mode, PRELOAD_ATTR.sub("", s.masked_html)) for s in served if s.side == side}
             for side in SLOTS}
    assert pages["left"] == pages["right"], "the masked pages differ with the real side"
    assert len(pages["left"]) == 2, f"expected one full page and one partial, got {len(pages['left'])} variants"
    by_kind = {kind: {(s.mode, PRELOAD_ATTR.sub("", s.masked_html)) for s in served if s.kind == kind}
               for kind in ("generated", "head_to_head")}
    assert by_kind["head_to_head"] == by_kind["generated"], "a head-to-head trial's page differs from a vs-real one's"
    preloads = Counter(s.page["page.preload.shapes"] for s in served)
    assert set(preloads) <= {(), (_shape(served[0].urls["left"]),) * 2}, preloads
    # The page's headers and cookies (names, attributes, the values' shape): every
    # variant common enough to show up with both sides by chance (20 pages: both
    # sides but for a 2**-19 chance) does show up with both. Rarer ones are left to
    # the predictor below, which sees every header value and cookie as a field.
    for name in ("page.header_names", "page.cookies"):
        common = [v for v, n in Counter((s.mode, s.page[name]) for s in served).items() if n >= 20]
        for variant in common:
            with_side = {s.side for s in served if (s.mode, s.page[name]) == variant}
            assert with_side == set(SLOTS), f"{name} {variant} comes only with the real side {with_side}"

    rows = [trial_fields(s.page, s.slots) for s in served]
    folds = [s.annotator % 2 for s in served]
    leaks = leaking_fields(rows, sides, folds)
    assert not leaks, f"fields that predict the real side: {_describe(leaks)}"

    # The same check, on these very trials, flags a field planted to leak: it has the power to fail.
    planted = [{**row, "left.planted": side == "left"} for row, side in zip(rows, sides)]
    assert [name for name, *_ in leaking_fields(planted, sides, folds)] == ["left.planted"]


def test_the_predictor_flags_planted_leaks_and_passes_noise():
    """Self-check of the statistics on synthetic trials: leaks of several forms are named, noise is not."""
    rng = random.Random(11)
    sides, folds, rows = [], [], []
    for n in range(240):
        side = rng.choice(SLOTS)
        other = "right" if side == "left" else "left"
        keys = {slot: f"{rng.getrandbits(128):032x}" for slot in SLOTS}
        # A sequential number that is smaller for the reference: each slot alone looks random.
        sequential = {slot: 2 * n + (slot != side) for slot in SLOTS}
        slots = {
            slot: {
                "url.key_length": len(keys[slot]) + (2 if slot == side else 0),  # "r-" prefix on the real one
                "url.key_classes": _classes(keys[slot]),
                "url.key_digits": sum(c.isdigit() for c in keys[slot]),
                "image.header.x-seq": sequential[slot],
                "img.alt": f"{slot.title()} image",
                # A size that is larger for the reference, never the same twice.
                "image.length": rng.randint(1000, 2000) + (400 if slot == side else 0),
                "image.noise": rng.randint(1000, 2000),
            }
            for slot in SLOTS
        }
        page = {
            "page.masked_html": "<p>same</p>",
            "page.coin": rng.random() < 0.5,  # independent of the side
            "page.progress": f"{n % 20} of 20 done",
            # Right 80 % of the time: a partial leak.
            "page.hint": side if rng.random() < 0.8 else other,
        }
        sides.append(side)
        folds.append((n // 20) % 2)  # whole synthetic annotators per fold
        rows.append(trial_fields(page, slots))
    flagged = {name for name, *_ in leaking_fields(rows, sides, folds)}
    assert flagged == {
        "left.url.key_length", "right.url.key_length", "pair.url.key_length",
        "pair.image.header.x-seq", "page.hint",
        "left.image.length", "right.image.length", "pair.image.length",
    }, flagged
    # A constant field predicts the other fold's majority side: chance, whatever the sides.
    assert held_out_accuracy(["same"] * 4, ["left", "right", "left", "right"], [0, 0, 1, 1]) == 2


def test_the_first_request_for_either_image_renders_both(db, settings):
    """Response time is no tell: the image not yet rendered (usually the sample, since a
    reference is shared by many trials) would otherwise answer later than the other."""
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = None
    study = build_blind_study()
    # Generated trials only: their two images come from two different stored files.
    Study.objects.filter(pk=study.pk).update(catch_rate=0, calibration_rate=0)
    client = Client()
    client.get(f"/s/{study.slug}/")
    client.post(f"/s/{study.slug}/consent/")
    html = client.get(f"/s/{study.slug}/trial/").content.decode()
    assignment = Assignment.objects.get(token=TOKEN.search(html).group(1))
    policy = study.policy
    rendered = {
        slot: policy.cache_name(hashlib.sha256(default_storage.open(name, "rb").read()).hexdigest())
        for slot, name in (("reference", assignment.item.image.name), ("sample", assignment.trial.sample.image.name))
    }
    assert not any(default_storage.exists(name) for name in rendered.values())
    reference_url = re.findall(r'<img src="([^"]+)"', html)[0 if assignment.reference_side == "left" else 1]
    assert client.get(reference_url).status_code == 200
    assert all(default_storage.exists(name) for name in rendered.values())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_sizes_say_nothing_when_references_are_detailed_and_samples_smooth(db, settings, fmt):
    """Grainy references against smooth samples: unpadded, the larger image is the real
    one in nearly every trial. Served, both images of a trial have one length, the
    length says nothing of the side, and no image's bytes or pixels ever reach two
    assignments (so a reference that recurs in other browser sessions is not
    recognised by its bytes)."""
    settings.PARITY_RATE_JOIN = settings.PARITY_RATE_SUBMIT = None
    study = build_blind_study(policy={**POLICY, "size": 64, "format": fmt}, items=70, detail_leak=True)
    rng, seen_urls, served = random.Random(99), set(), []
    for annotator in range(20):
        served += play(study, annotator, rng, seen_urls)
    sides = [s.side for s in served]
    assert len(served) >= 400, len(served)

    bodies = [s.image_bytes[slot] for s in served for slot in SLOTS]
    assert len({hashlib.sha256(body).digest() for body in bodies}) == len(bodies), "an image was served twice"
    decoded = [np.asarray(Image.open(io.BytesIO(body))).tobytes() for body in bodies]
    assert len(set(decoded)) == len(decoded), "two assignments were served the same pixels"
    for s in served:
        lengths = {slot: (len(s.image_bytes[slot]), s.image_headers[slot]["content-length"]) for slot in SLOTS}
        assert lengths["left"] == (lengths["left"][0], str(lengths["left"][0])) and len(set(lengths.values())) == 1, (
            f"the images of a {s.kind} trial differ in length: {lengths}")

    rows = [trial_fields(s.page, s.slots) for s in served]
    folds = [s.annotator % 2 for s in served]
    sizes = [name for name in rows[0] if name.endswith(("image.length", "image.header.content-length"))]
    assert len(sizes) == 6, sizes
    for name in sizes:  # each size field on its own, uncorrected: p > 0.01
        values = [row[name] for row in rows]
        for correct in (held_out_accuracy([repr(v) for v in values], sides, folds),
                        *([held_out_threshold_accuracy(_numbers(values), sides, folds)] if _numbers(values) else [])):
            assert binomtest(correct, len(rows), 0.5, alternative="greater").pvalue > 0.01, (name, correct)
    leaks = leaking_fields(rows, sides, folds)
    assert not leaks, f"fields that predict the real side: {_describe(leaks)}"

    # The leak the padding closes is there in these very trials: the length of each
    # image without its padding tells the real side, and the same check flags it.
    planted = [
        {**row, **{f"{slot}.unpadded_length": len(unpadded(fmt, s.image_bytes[slot])) for slot in SLOTS}}
        for row, s in zip(rows, served)
    ]
    flagged = {name for name, *_ in leaking_fields(planted, sides, folds)}
    assert {"left.unpadded_length", "right.unpadded_length"} <= flagged, flagged


def unpadded(fmt: str, data: bytes) -> bytes:
    """An image without the padding the presentation policy adds: PNG without its pad
    chunk, JPEG without its comment segments, WebP without its pad chunk."""
    if fmt == "PNG":
        end = data.rindex(b"IEND") - 4
        start = data.rindex(presentation.PNG_PAD_CHUNK, 0, end) - 4
        return data[:start] + data[end:]
    if fmt == "JPEG":
        out, i = bytearray(data[:2]), 2
        while data[i + 1] != 0xDA:
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if data[i + 1] != 0xFE:
                out += data[i : i + 2 + length]
            i += 2 + length
        return bytes(out + data[i:])
    body = data[: data.rindex(presentation.WEBP_PAD_CHUNK)]
    return body[:4] + len(body[8:]).to_bytes(4, "little") + body[8:]
