"""What it costs to serve a trial's two images blind: per-assignment encoding and padding.

Each assignment's pair is made from the two cached framings (lossless PNG): decoded,
perturbed, encoded under the policy and padded to one length
(`generation.presentation.present_pair`). This bench times that per trial, for each
format and size, with a grainy "photograph" against a smooth "sample" (the pair where
padding adds most), and prints the bytes on the wire against the unpadded encodings.
Pure Pillow and numpy: no Django, no database. Prints figures; asserts nothing.

    .venv/bin/python bench/present_images.py [--sizes 256 512] [--repeat 20]
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from generation.presentation import FORMATS, PresentationPolicy, present_pair  # noqa: E402


def sources(size: int) -> tuple[bytes, bytes]:
    """A detailed reference (structure plus grain, as a camera JPEG) and a smooth sample (PNG)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, size)
    base = np.stack([np.outer(np.sin(7 * x), np.cos(5 * x)), np.outer(x, x), np.outer(1 - x, x)], -1) * 200 + 28
    grain = rng.normal(0, 25, base.shape)
    photo, smooth = io.BytesIO(), io.BytesIO()
    Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8)).save(photo, "JPEG", quality=95)
    Image.fromarray(base.astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)).save(smooth, "PNG")
    return photo.getvalue(), smooth.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'format':6} {'size':>5} {'ms/trial':>9} {'framing ms':>11} {'unpadded bytes (ref, sample)':>30} "
          f"{'served bytes':>13} {'overhead':>9}")
    for size in args.sizes:
        photo, smooth = sources(size * 3 // 2)
        for fmt in FORMATS:
            policy = PresentationPolicy(size=size, format=fmt)
            started = time.perf_counter()
            frames = {"left": policy.frame_bytes(photo), "right": policy.frame_bytes(smooth)}
            framing = (time.perf_counter() - started) * 1000 / 2
            present_pair(policy, frames, secret=b"warm-up")
            started = time.process_time()
            for n in range(args.repeat):
                pair = present_pair(policy, frames, secret=b"assignment-%d" % n)
            per_trial = (time.process_time() - started) * 1000 / args.repeat
            plain = [len(policy.render(data)) for data in (photo, smooth)]
            served = len(pair["left"])
            overhead = 2 * served / sum(plain) - 1
            print(f"{fmt:6} {size:5d} {per_trial:9.1f} {framing:11.1f} {str(tuple(plain)):>30} {served:13,d} "
                  f"{overhead:9.0%}")
    print("ms/trial: CPU time to make both images of one assignment from their cached framings; framing ms: the "
          "one-off cost of caching one image's framing (wall time).")


if __name__ == "__main__":
    main()
