"""Train the demo ladder (S, M, L) on the procedural scene corpus on the CPU.

Prints, per size, parameters, steps, training images, estimated training FLOPs,
wall seconds and held-out validation loss, and writes a contact sheet: the
first row holds the held-out references, then one row per size, each column
one held-out prompt with the same seed for every size. The target is a whole
ladder in three minutes on two CPU cores, with the larger members visibly
better. Runs without Django: torch, Pillow and numpy only.

    .venv/bin/python bench/train_ladder_cpu.py [--sizes S M L] [--jobs 2] [--threads 1]

Two processes of one torch thread each, not one process of two threads: these
networks are too small for intra-op parallelism to pay, and on a shared machine
OpenMP threads that wait on each other lose several times their speed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
from PIL import Image, ImageDraw, ImageFont

from demo.scenes import iter_scenes
from generation.engine import (
    LADDER,
    DiT,
    TrainConfig,
    count_params,
    load_checkpoint,
    train,
)

# The same data for every size (steps x batch), so that the sheet shows the
# params axis alone; steps chosen so that the ladder trains in about three
# minutes on two shared cores.
SCHEDULE = {
    "S": TrainConfig(steps=1000, batch_size=32, lr=3e-3, warmup_steps=50, ema_decay=0.995),
    "M": TrainConfig(steps=1000, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.995),
    "L": TrainConfig(steps=1000, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.995),
}
CELL = 96  # pixels per contact-sheet cell (the 32 px images, upscaled 3x)
LABEL = 120  # width of the row labels


def train_one(
    size: str,
    steps: int | None,
    train_items: int,
    val_items: int,
    columns: int,
    sample_steps: int,
    guidance: float,
    threads: int,
) -> dict:
    """Train one size in this process; return its figures and its contact-sheet row."""
    torch.set_num_threads(threads)
    train_scenes = list(iter_scenes(train_items, size=32, seed=1))
    val_scenes = list(iter_scenes(val_items, size=32, seed=2))  # a disjoint corpus seed
    settings = SCHEDULE[size]
    if steps:
        settings = TrainConfig(**{**vars(settings), "steps": steps, "checkpoint_steps": ()})
    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        info = train(
            LADDER[size],
            [s.caption for s in train_scenes],
            [s.image for s in train_scenes],
            settings=settings,
            out_dir=Path(tmp),
            size=size,
            val_captions=[s.caption for s in val_scenes],
            val_images=[s.image for s in val_scenes],
        )[-1]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        model = load_checkpoint(info.path)
    shown = val_scenes[:columns]
    images = model.generate([s.caption for s in shown], list(range(len(shown))), steps=sample_steps, guidance=guidance)
    return {"info": info, "seconds": seconds, "cpu": cpu, "images": images, "shown": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SCHEDULE))
    parser.add_argument("--jobs", type=int, default=2, help="sizes trained at once, one process each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--train-items", type=int, default=8000)
    parser.add_argument("--val-items", type=int, default=200)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="override every size's steps")
    parser.add_argument("--sample-steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "ladder_contact_sheet.png")
    args = parser.parse_args()

    print(
        f"{args.jobs} processes x {args.threads} torch threads, {os.cpu_count()} cores, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    started = time.perf_counter()
    # Largest first, so that the longest job starts at once and the others pack beside it.
    order = sorted(args.sizes, key=lambda size: -count_params(DiT(LADDER[size], vocab_size=32)))
    options = (
        args.steps,
        args.train_items,
        args.val_items,
        args.columns,
        args.sample_steps,
        args.guidance,
        args.threads,
    )
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {size: pool.submit(train_one, size, *options) for size in order}
        results = {size: futures[size].result() for size in args.sizes}
    wall = time.perf_counter() - started

    print(
        f"{'size':>4} {'params':>10} {'steps':>6} {'images':>8} {'train TFLOP':>11} {'seconds':>8} {'cpu s':>7} {'val loss':>9}"
    )
    for size in args.sizes:
        r = results[size]
        info = r["info"]
        print(
            f"{size:>4} {info.params:>10,} {info.step:>6} {info.train_images:>8} "
            f"{info.train_flops / 1e12:>11.2f} {r['seconds']:>8.1f} {r['cpu']:>7.1f} {info.val_loss:>9.4f}"
        )
    print(
        f"whole ladder: {wall:.1f} s wall (training, validation, sampling, process start-up); "
        f"load average after {os.getloadavg()[0]:.2f}"
    )
    shown = results[args.sizes[0]]["shown"]
    rows = [("reference", [scene.image for scene in shown])]
    rows += [(f"{size}  {results[size]['info'].params / 1e6:.2f}M", results[size]["images"]) for size in args.sizes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(rows, [scene.caption for scene in shown]).save(args.out)
    print(f"contact sheet: {args.out}")


def contact_sheet(rows: list[tuple[str, list[Image.Image]]], prompts: list[str]) -> Image.Image:
    """Rows of upscaled images with labels, then the numbered prompts underneath."""
    font = ImageFont.load_default()
    columns = len(prompts)
    lines = [f"{i + 1}. {line}" for i, p in enumerate(prompts) for line in textwrap.wrap(p, 110)[:1]]
    height = len(rows) * (CELL + 4) + 20 + 14 * len(lines)
    sheet = Image.new("RGB", (LABEL + columns * (CELL + 4), height), "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(columns):
        draw.text((LABEL + c * (CELL + 4) + CELL // 2, 2), str(c + 1), fill="black", font=font)
    for r, (label, images) in enumerate(rows):
        y = 16 + r * (CELL + 4)
        draw.text((4, y + CELL // 2 - 6), label, fill="black", font=font)
        for c, image in enumerate(images):
            sheet.paste(image.resize((CELL, CELL), Image.Resampling.NEAREST), (LABEL + c * (CELL + 4), y))
    y = 20 + len(rows) * (CELL + 4)
    for line in lines:
        draw.text((4, y), line, fill="black", font=font)
        y += 14
    return sheet


if __name__ == "__main__":
    main()
