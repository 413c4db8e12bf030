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

Two things more make the bytes on the wire say nothing but the pixels. The framed
image is cached losslessly and encoded per assignment (`present_pair`) after an
imperceptible perturbation drawn from the assignment's secret, so the same reference
never reaches two browsers as the same bytes. And both images of a trial are padded
to one length, with bytes every decoder skips, so `Content-Length` cannot tell the
detailed photograph from the smoother sample.

The module is pure Pillow and numpy, without Django, so the worker, benchmarks and
tests use it without settings. `ensure_presented` takes a storage object as an
argument instead of importing one.
"""

import hashlib
import io
import json
import re
import struct
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np
import PIL
from PIL import Image, ImageCms, ImageOps

# Bump whenever the rendered bytes for an unchanged policy would change (conversion
# rules, background, filters, codec parameters): it feeds `fingerprint`, so every
# cached rendering under the old rules stops being found.
RENDERER_VERSION = 2

# Mid grey: transparent areas and letterbox bars get the same colour for every image,
# and it sits as far from black and white as it can, drawing no attention.
BACKGROUND = (128, 128, 128)

FORMATS = {"JPEG": "jpg", "WEBP": "webp", "PNG": "png", "BMP": "bmp"}
CROPS = ("center", "pad")
# "native": each image is framed from all the pixels it has. "match": both images of a
# pair are shown at the lower of their effective resolutions (`effective_size`).
RESOLUTIONS = ("native", "match")
MIN_SIZE, MAX_SIZE = 16, 4096

# Fixed codec parameters: only `quality` is a policy choice. Encoder defaults are
# spelled out so a Pillow upgrade cannot change them silently.
JPEG_SUBSAMPLING = "4:2:0"
WEBP_METHOD = 4
# zlib's fastest level: every assignment encodes its pair afresh, and both images go
# out padded to the larger one's length, so a tighter level would shrink only the
# larger image, by a few per cent, for several times the CPU (bench/present_images.py).
PNG_COMPRESS_LEVEL = 1
# The cached framing is an intermediate, decoded again for every assignment: fast
# lossless compression beats small files there too.
FRAME_COMPRESS_LEVEL = 1
# Side of the square blocks that `perturb` shifts by one level; 8 is a JPEG block,
# so a shifted block moves that block's DC coefficient and survives quantisation.
PERTURB_BLOCK = 8
# Padding bytes: at least this many (the largest container overhead below), then
# rounded up to a step of about 1/16 of the larger image, then a random part of one step.
MIN_PADDING = 16
PAD_STEPS = 16
PNG_PAD_CHUNK = b"paDd"  # ancillary, private, safe to copy: decoders skip it
WEBP_PAD_CHUNK = b"PADD"
JPEG_COM_MAX = 65533

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
    `quality` applies to JPEG and WEBP; PNG and BMP are lossless and ignore it. BMP
    is stored uncompressed, so every image of a policy has the same size whatever its
    content: the one format whose size says nothing even to someone who strips the
    padding (at the cost of width × height × 3 bytes an image).

    `resolution` "native" frames each image from all its pixels, so a 256 px reference
    is upscaled to `size` while a 1024 px sample is reduced to it: the sample shows
    detail the reference cannot have. "match" shows both images of a pair at the lower
    of their effective resolutions (`effective_size`): the framing keeps each image at
    its effective size, no larger than the display, and `present_pair` reduces the
    sharper one to the other's size (LANCZOS) before both are scaled to the display
    size the same way.
    """

    size: int = 512
    aspect: str = "1:1"
    crop: str = "center"
    format: str = "JPEG"
    quality: int = 90
    resolution: str = "native"

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
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}, not {self.resolution!r}")

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
        `resolution` "native" is left out, as it was before the field existed, so the
        framings stored for a policy without the field are still found.
        """
        values = self.to_dict()
        if values["resolution"] == "native":
            del values["resolution"]
        payload = json.dumps({**values, "renderer": RENDERER_VERSION, "pillow": PIL.__version__}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def cache_name(self, source_sha256: str) -> str:
        """Storage name of the framing of the image whose bytes hash to `source_sha256`.

        References and samples share one namespace, and the name is a hash of the
        policy and the content only: nothing in it, or in its URL, tells the kinds apart.
        The framing is a lossless PNG whatever the policy's format (see `frame_bytes`).
        """
        if not re.fullmatch(r"[0-9a-f]{64}", source_sha256 or ""):
            raise ValueError(f"source_sha256 must be 64 lowercase hex digits, not {source_sha256!r}")
        key = hashlib.sha256(f"{self.fingerprint}:{source_sha256}".encode()).hexdigest()
        return f"presented/{key[:2]}/{key}.png"

    def effective_size(self, source_size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) at which a source of `source_size` is framed: its effective resolution.

        The display box (`dimensions`) measured in the source's own pixels: the shown
        region for crop "center" (the source cropped to the aspect), the source and its
        bars for "pad". A source whose shown region has at least the display's pixels
        gives `dimensions`; a smaller one gives a box of the same aspect, scaled by
        source pixels per display pixel (a 64×64 source at a 1:1 policy of 256 gives
        64×64; at 4:3, 64×48). Always `dimensions` when `resolution` is "native".
        """
        width, height = self.dimensions
        if self.resolution == "native":
            return width, height
        ratios = (width / source_size[0], height / source_size[1])
        magnification = max(ratios) if self.crop == "center" else min(ratios)
        if magnification <= 1:
            return width, height
        return max(1, round(width / magnification)), max(1, round(height / magnification))

    def frame(self, data: bytes) -> Image.Image:
        """Encoded image bytes, upright, in sRGB, cropped and resized: the policy but its codec.

        At `effective_size`: the display size, or smaller under `resolution` "match"
        (`present_pair` brings it to the display size, and `render` for one image alone).
        """
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = to_srgb(image)
        width, height = self.effective_size(rgb.size)
        if self.crop == "center":
            return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)
        return ImageOps.pad(rgb, (width, height), method=Image.Resampling.LANCZOS, color=BACKGROUND)

    def frame_bytes(self, data: bytes) -> bytes:
        """The framing as a lossless PNG: what `ensure_presented` caches, so that the one
        lossy step is the per-assignment encoding and no image is compressed twice."""
        out = io.BytesIO()
        _clean(self.frame(data)).save(out, "PNG", compress_level=FRAME_COMPRESS_LEVEL)
        return out.getvalue()

    def render(self, data: bytes) -> bytes:
        """Render encoded image bytes under this policy, unperturbed and unpadded; the
        same bytes give the same output. Under `resolution` "match" the image is shown
        at its own effective resolution, as if paired with itself."""
        return self.encode(_displayed(self, [self.frame(data)])[0])

    def encode(self, image: Image.Image) -> bytes:
        """One framed image in the policy's codec and parameters, with no metadata."""
        clean = _clean(image)
        out = io.BytesIO()
        if self.format == "JPEG":
            clean.save(
                out, "JPEG", quality=self.quality, subsampling=JPEG_SUBSAMPLING,
                optimize=False, progressive=False,
            )
        elif self.format == "WEBP":
            clean.save(out, "WEBP", quality=self.quality, method=WEBP_METHOD, lossless=False, exact=False)
        elif self.format == "BMP":
            clean.save(out, "BMP")
        else:
            clean.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
        return out.getvalue()


def _clean(image: Image.Image) -> Image.Image:
    # A fresh image carries no `info`, so no encoder can pick up a profile, EXIF,
    # DPI or text from the source through a fallback to `image.info`.
    return Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())


# ------------------------------------------------------------------------------
# Per assignment: perturbed, encoded, padded to one length
# ------------------------------------------------------------------------------
def present_pair(policy: PresentationPolicy, frames: dict[str, bytes], *, secret: bytes) -> dict[str, bytes]:
    """The bytes each slot of one assignment is served as, from the slots' cached framings.

    Each image is perturbed (`perturb`) with a seed drawn from `secret` and its slot,
    encoded under the policy, and padded (`pad`) to a length that both share: the
    larger plus `MIN_PADDING`, rounded up to a step of about 1/`PAD_STEPS` of it, plus
    a random part of a step. The length is a function of the pair and the secret, never
    of which slot holds which image. The same frames and secret give the same bytes,
    so any process can answer either slot of an assignment alike. Under `resolution`
    "match", the images are first brought to one effective resolution and then to the
    display size (`_displayed`).
    """
    images = {}
    for slot, data in frames.items():
        with Image.open(io.BytesIO(data)) as image:
            images[slot] = image.convert("RGB")
    images = dict(zip(images, _displayed(policy, list(images.values()))))
    encoded = {}
    for slot, image in images.items():
        perturbed = perturb(np.asarray(image), _rng(secret, f"perturb:{slot}"))
        encoded[slot] = _paddable(policy.format, policy.encode(Image.fromarray(perturbed)))
    if policy.format == "BMP":
        return encoded  # uncompressed: the same length for every image of the policy
    longest = max(len(data) for data in encoded.values())
    rng = _rng(secret, "length")
    step = max(64, 1 << max(0, (longest // PAD_STEPS).bit_length() - 1))
    length = -(-(longest + MIN_PADDING) // step) * step + int(rng.integers(0, step))
    length += length % 2  # a RIFF (WebP) file has an even length; harmless elsewhere
    return {slot: pad(policy.format, data, length, rng=_rng(secret, f"pad:{slot}")) for slot, data in encoded.items()}


def _displayed(policy: PresentationPolicy, images: list[Image.Image]) -> list[Image.Image]:
    """The framings of one pair at the display size, at one effective resolution.

    Framings under "native" are at the display size already and pass unchanged. Under
    "match" a framing is at its image's effective size (`effective_size`): every image
    larger than the pair's smallest (by pixel count) is reduced to that size, then all
    are scaled to the display size with the same filter, so each shows the detail of
    the lower-resolution image, and the two images of a pair only differ in content.
    """
    dimensions = policy.dimensions
    if policy.resolution == "native" or all(image.size == dimensions for image in images):
        return images
    smallest = min((image.size for image in images), key=lambda size: (size[0] * size[1], size))
    out = []
    for image in images:
        if image.size != smallest:
            image = image.resize(smallest, Image.Resampling.LANCZOS)
        out.append(image.resize(dimensions, Image.Resampling.LANCZOS))
    return out


def perturb(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift about half of the `PERTURB_BLOCK`-pixel blocks by one level, up or down.

    One level in 255 is below what an eye tells apart, yet it changes the encoded
    bytes (a JPEG block's DC coefficient, a PNG's filtered rows), so an image's bytes
    and even its decoded pixels differ per assignment. A value that the shift would
    push out of 0..255 moves the other way.
    """
    height, width = pixels.shape[:2]
    rows, cols = -(-height // PERTURB_BLOCK), -(-width // PERTURB_BLOCK)
    blocks = rng.choice(np.array([0, 1, 1, 2], dtype=np.intp), size=(rows, cols))  # 0: down, 1: none, 2: up
    table = blocks.repeat(PERTURB_BLOCK, axis=0).repeat(PERTURB_BLOCK, axis=1)[:height, :width, None] * 256
    return _SHIFTED[table + pixels]


def _shift_table() -> np.ndarray:
    """Value -> value shifted down, kept, shifted up (reflected at the ends), flattened."""
    values = np.arange(256)
    down, up = np.where(values == 0, 1, values - 1), np.where(values == 255, 254, values + 1)
    return np.concatenate([down, values, up]).astype(np.uint8)


_SHIFTED = _shift_table()


def pad(fmt: str, data: bytes, length: int, *, rng: np.random.Generator) -> bytes:
    """`data` grown to exactly `length` bytes with random bytes that decoders skip.

    PNG: one private ancillary chunk before IEND. JPEG: comment (COM) segments after
    the JFIF header. WebP: an unknown chunk after the image data, in the extended
    (VP8X) layout that `_paddable` gives every WebP. Each decodes to the very pixels
    of the unpadded file.
    """
    extra = length - len(data)
    if extra < MIN_PADDING:
        raise ValueError(f"cannot pad {len(data)} bytes to {length}: at least {MIN_PADDING} bytes of padding")

    def noise(n: int) -> bytes:
        # Random, so that no compression on the way could shrink it; above 127, so
        # that it never spells a marker or a metadata name ("Exif", "XMP") by chance.
        return rng.integers(128, 256, size=n, dtype=np.uint8).tobytes()

    if fmt == "PNG":
        end = data.rindex(b"IEND") - 4
        body = PNG_PAD_CHUNK + noise(extra - 12)
        chunk = struct.pack(">I", extra - 12) + body + struct.pack(">I", zlib.crc32(body))
        return data[:end] + chunk + data[end:]
    if fmt == "JPEG":
        at = 2
        if data[2:4] == b"\xff\xe0":  # JFIF's APP0 must come first
            at = 4 + struct.unpack(">H", data[4:6])[0]
        sizes = []
        while extra > 0:
            size = min(extra, JPEG_COM_MAX + 4)
            if 0 < extra - size < 4:
                size -= 4  # leave room for one more segment's marker and length
            sizes.append(size)
            extra -= size
        segments = b"".join(b"\xff\xfe" + struct.pack(">H", n - 2) + noise(n - 4) for n in sizes)
        return data[:at] + segments + data[at:]
    if fmt == "WEBP":
        if extra % 2:
            raise ValueError("a WebP file grows by an even number of bytes")
        chunk = WEBP_PAD_CHUNK + struct.pack("<I", extra - 8) + noise(extra - 8)
        grown = data + chunk
        return grown[:4] + struct.pack("<I", len(grown) - 8) + grown[8:]
    raise ValueError(f"format {fmt} takes no padding")


def _paddable(fmt: str, data: bytes) -> bytes:
    """WebP in its simple layout (one VP8 chunk) cannot carry another chunk: rewrite it
    in the extended layout, a VP8X header with no feature flags before the same chunk."""
    if fmt != "WEBP" or data[12:16] != b"VP8 ":
        return data
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    header = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (width - 1).to_bytes(3, "little") + (
        height - 1).to_bytes(3, "little")
    body = b"WEBP" + header + data[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _rng(secret: bytes, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(secret + b"\0" + purpose.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


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

    Returns the cache name of the framing (`frame_bytes`), which `present_pair` encodes
    per assignment. `read_source` is only called on a cache miss. If another
    worker saved the same name first, the storage renames this copy; it is deleted,
    since both renderings are byte-identical.
    """
    name = policy.cache_name(source_sha256)
    if not storage.exists(name):
        saved = storage.save(name, io.BytesIO(policy.frame_bytes(read_source())))
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
