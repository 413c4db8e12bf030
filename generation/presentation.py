"""The presentation policy: one way of rendering every image an annotator sees.

A judgment is only blind if the two images of a trial differ in content alone. A
reference arrives as whatever the corpus holds (a CMYK JPEG from a camera, rotated
by an EXIF tag, with an ICC profile and maker notes); a sample arrives as whatever a
generator wrote (an RGBA PNG with text chunks naming the software). Shown as they
are, size, aspect, colour rendition, codec artefacts or metadata would give the real
image away. So both kinds pass through the same `PresentationPolicy`: same orientation
handling, same 8-bit sRGB conversion, same background, same crop and pixel size, same
codec and parameters, no metadata, and a cache name that depends only on content
(ARCHITECTURE.md, path 3: Present).

The module is pure Pillow and numpy, without Django, so the worker, benchmarks and
tests use it without settings. `ensure_presented` takes a storage object as an
argument instead of importing one.
"""

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np
import PIL
from PIL import Image, ImageCms, ImageOps

# Bump whenever the rendered bytes for an unchanged policy would change (conversion
# rules, background, filters, codec parameters): it feeds `fingerprint`, so every
# cached rendering under the old rules stops being found.
RENDERER_VERSION = 1

# Mid grey: transparent areas and letterbox bars get the same colour for every image,
# and it sits as far from black and white as it can, drawing no attention.
BACKGROUND = (128, 128, 128)

FORMATS = {"JPEG": "jpg", "WEBP": "webp", "PNG": "png"}
CROPS = ("center", "pad")
MIN_SIZE, MAX_SIZE = 16, 4096

# Fixed codec parameters: only `quality` is a policy choice. Encoder defaults are
# spelled out so a Pillow upgrade cannot change them silently.
JPEG_SUBSAMPLING = "4:2:0"
WEBP_METHOD = 4
PNG_COMPRESS_LEVEL = 6

_ASPECT = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$")
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I"}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_ICC_MODES = {"RGB": "RGB", "CMYK": "CMYK", "GRAY": "L"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True)
class PresentationPolicy:
    """How a study shows its images; every image of the study is rendered with it.

    `size` is the longer side of the output in pixels; `aspect` is "width:height" and
    fixes the shorter side: a landscape aspect gives width = size and
    height = round(size * h / w), a portrait one the transpose ("4:3" at 512 is
    512×384, "3:4" is 384×512). `crop` "center" cuts the source to the aspect around
    its centre; "pad" fits the whole source and fills the bars with `BACKGROUND`.
    `quality` applies to JPEG and WEBP; PNG is lossless and ignores it.
    """

    size: int = 512
    aspect: str = "1:1"
    crop: str = "center"
    format: str = "JPEG"
    quality: int = 90

    def __post_init__(self):
        if not _is_int(self.size) or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}, not {self.size!r}")
        if not isinstance(self.aspect, str) or not _ASPECT.match(self.aspect):
            raise ValueError(f'aspect must be "width:height" with integers 1 to 999, such as "4:3", not {self.aspect!r}')
        if min(self.dimensions) < 1:
            raise ValueError(f"aspect {self.aspect} is too narrow for size {self.size}")
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}, not {self.crop!r}")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if not _is_int(self.quality) or not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be an integer from 1 to 100, not {self.quality!r}")

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of every rendered image."""
        w, h = (int(part) for part in self.aspect.split(":"))
        if w >= h:
            return self.size, round(self.size * h / w)
        return round(self.size * w / h), self.size

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PresentationPolicy":
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown presentation policy field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    @property
    def fingerprint(self) -> str:
        """16 hex digits that change with any field, `RENDERER_VERSION` or the Pillow release.

        Pillow is in it because another codec build may encode differently: images
        cached before an upgrade must not sit beside images rendered after it.
        """
        payload = json.dumps(
            {**self.to_dict(), "renderer": RENDERER_VERSION, "pillow": PIL.__version__}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def cache_name(self, source_sha256: str) -> str:
        """Storage name of the rendering of the image whose bytes hash to `source_sha256`.

        References and samples share one namespace, and the name is a hash of the
        policy and the content only: nothing in it, or in its URL, tells the kinds apart.
        """
        if not re.fullmatch(r"[0-9a-f]{64}", source_sha256 or ""):
            raise ValueError(f"source_sha256 must be 64 lowercase hex digits, not {source_sha256!r}")
        key = hashlib.sha256(f"{self.fingerprint}:{source_sha256}".encode()).hexdigest()
        return f"presented/{key[:2]}/{key}.{self.extension}"

    def render(self, data: bytes) -> bytes:
        """Render encoded image bytes under this policy; the same bytes give the same output."""
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = to_srgb(image)
        width, height = self.dimensions
        if self.crop == "center":
            framed = ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)
        else:
            framed = ImageOps.pad(rgb, (width, height), method=Image.Resampling.LANCZOS, color=BACKGROUND)
        return self._encode(framed)

    def _encode(self, image: Image.Image) -> bytes:
        # A fresh image carries no `info`, so no encoder can pick up a profile, EXIF,
        # DPI or text from the source through a fallback to `image.info`.
        clean = Image.frombytes("RGB", image.size, image.tobytes())
        out = io.BytesIO()
        if self.format == "JPEG":
            clean.save(
                out, "JPEG", quality=self.quality, subsampling=JPEG_SUBSAMPLING,
                optimize=False, progressive=False,
            )
        elif self.format == "WEBP":
            clean.save(out, "WEBP", quality=self.quality, method=WEBP_METHOD, lossless=False, exact=False)
        else:
            clean.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
        return out.getvalue()


def to_srgb(image: Image.Image) -> Image.Image:
    """An upright 8-bit sRGB "RGB" image with any transparency flattened on `BACKGROUND`.

    Colour management happens before flattening, so the background is the same
    colour whatever profile the source carried. 16-bit greyscale ("I;16*") keeps its
    high byte (value >> 8); mode "I" is how Pillow has long held 16-bit greyscale,
    so it is read the same way after clipping to 0..65535 — never stretched by its
    own maximum, which would make a mid-grey image white.
    """
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT:
        values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8
        image = Image.fromarray(values.astype(np.uint8))
    colour, alpha = _split_alpha(image)
    rgb = _icc_to_srgb(colour, icc) if icc else None
    if rgb is None:
        rgb = colour.convert("RGB")
    if alpha is None:
        return rgb
    flat = Image.new("RGB", rgb.size, BACKGROUND)
    flat.paste(rgb, mask=alpha)
    return flat


def ensure_presented(
    policy: PresentationPolicy, storage, *, source_sha256: str, read_source: Callable[[], bytes]
) -> str:
    """Render into `storage` (a Django storage or anything with exists/save/delete) once.

    Returns the cache name. `read_source` is only called on a cache miss. If another
    worker saved the same name first, the storage renames this copy; it is deleted,
    since both renderings are byte-identical.
    """
    name = policy.cache_name(source_sha256)
    if not storage.exists(name):
        saved = storage.save(name, io.BytesIO(policy.render(read_source())))
        if saved != name:
            storage.delete(saved)
    return name


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if image.mode in ("LA", "La"):
        return image.getchannel("L"), image.getchannel("A")
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    if image.mode not in _ICC_MODES.values():
        # Palette, bilevel, YCbCr, RGBX: into the mode an embedded profile describes.
        image = image.convert("L" if image.mode == "1" else "RGB")
    return image, None


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert through the embedded profile, or None when the profile cannot be used."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = _ICC_MODES.get(profile.profile.xcolor_space.strip())
        if mode != image.mode:
            return None
        return ImageCms.profileToProfile(
            image, profile, _SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
