"""Validation of untrusted image bytes before anything is stored.

Every image, reference or sample, goes through `inspect_image`: a size cap before
decoding, a pixel cap read from the header before decoding (decompression bombs),
then a full decode, which is the only way to find a truncated or corrupt file.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from generation.engine.pipeline import near_constant
from generation.errors import Rejection

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}

# Modes that the presentation policy turns into 8-bit sRGB. CMYK and 16-bit
# greyscale are accepted and converted at presentation, never silently dropped.
MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I;16", "I;16B", "I;16L", "I"}
CONVERTED_MODES = {"CMYK", "YCbCr", "I;16", "I;16B", "I;16L", "I"}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    width: int
    height: int
    format: str
    mode: str
    byte_size: int
    # Blank or near-constant (`engine.pipeline.near_constant`): a safety-filtered output.
    blank: bool = False

    @property
    def extension(self) -> str:
        return FORMATS[self.format]

    @property
    def converted(self) -> bool:
        return self.mode in CONVERTED_MODES


def inspect_image(data: bytes, *, origin: str, limits: ImageLimits) -> ImageFacts:
    """Return the facts of a valid still image, or raise `Rejection` naming `origin`."""
    if len(data) == 0:
        raise Rejection(origin, "file is empty")
    if len(data) > limits.max_bytes:
        raise Rejection(
            origin, f"file is {len(data):,} bytes, over the limit of {limits.max_bytes:,} bytes"
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; both are refusals here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return _check_open_image(image, data, origin=origin, limits=limits)
    except Rejection:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise Rejection(origin, f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise Rejection(origin, "not an image (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Rejection(origin, f"truncated or corrupt image: {exc}") from None


def _check_open_image(image: Image.Image, data: bytes, *, origin: str, limits: ImageLimits) -> ImageFacts:
    if image.format not in FORMATS:
        raise Rejection(origin, f"unsupported format {image.format}: use JPEG, PNG or WebP")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise Rejection(
            origin,
            f"image is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{limits.max_pixels:,} (decompression bomb?)",
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise Rejection(origin, f"animated image ({frames} frames): only still images can be compared")
    if image.mode not in MODES:
        raise Rejection(origin, f"unsupported pixel mode {image.mode}")
    mode = image.mode
    image.load()  # the full decode: raises on truncated or corrupt data
    return ImageFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        format=image.format,
        mode=mode,
        byte_size=len(data),
        blank=near_constant(image),
    )
