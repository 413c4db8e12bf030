"""Padding is invisible to the browser: a padded image decodes in Chromium to the very
pixels of the same image unpadded, in every format a policy can choose."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from generation import presentation
from generation.presentation import FORMATS, PresentationPolicy
from tests.annotate.test_blindness import unpadded

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}

DECODE = """async (urls) => {
  const out = [];
  for (const url of urls) {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    out.push([canvas.width, canvas.height, Array.from(data)]);
  }
  return out;
}"""


def _url(fmt: str, data: bytes) -> str:
    return f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode()}"


@pytest.mark.services
def test_chromium_decodes_padded_images_as_unpadded(browser):
    rng = np.random.default_rng(3)
    source = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(source, "PNG")
    page = browser.new_page()
    page.goto("about:blank")
    for fmt in FORMATS:
        policy = PresentationPolicy(size=40, format=fmt)
        frames = {"left": policy.frame_bytes(source.getvalue()), "right": policy.frame_bytes(source.getvalue())}
        served = presentation.present_pair(policy, frames, secret=b"e2e")["left"]
        plain = served if fmt == "BMP" else unpadded(fmt, served)  # BMP needs no padding
        assert len(plain) < len(served) or fmt == "BMP"
        decoded = page.evaluate(DECODE, [_url(fmt, served), _url(fmt, plain)])
        (width, height, padded_pixels), (_, _, plain_pixels) = decoded
        assert (width, height) == policy.dimensions, fmt
        assert padded_pixels == plain_pixels, f"{fmt}: padding changed the decoded pixels"
        # And the browser sees what Pillow sees (lossless formats: exactly).
        if fmt in ("PNG", "BMP"):
            expected = np.asarray(Image.open(io.BytesIO(served)).convert("RGBA")).reshape(-1).tolist()
            assert padded_pixels == expected, fmt
