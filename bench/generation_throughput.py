"""Generation throughput of the built-in engine, per ladder size, and pipeline efficiency.

For each ladder size: images/s at batch 1 and at the best of a few batch sizes,
in float32 and (on CUDA) bf16 autocast; then the pipeline efficiency, the
end-to-end throughput of `generate_pipelined` (sampling, PNG encoding and file
writes on a thread pool) divided by the pure sampling throughput at the same
batch size and precision. The target is an efficiency of at least 0.8: the
device should not wait on encoding.

The models are randomly initialised (throughput does not depend on training),
with every layer given random weights so that the images are noisy, the worst
case for PNG encoding. Needs only torch, Pillow and numpy: no Django.

    python bench/generation_throughput.py [--device cuda] [--sizes S M L]
        [--steps 30] [--seconds 3] [--batches 8 32 128 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from generation.engine import (
    LADDER,
    DiT,
    LoadedModel,
    Tokenizer,
    Work,
    generate_pipelined,
    pick_device,
)
from generation.scenes import iter_scenes

CAPTIONS = [scene.caption for scene in iter_scenes(256, size=32, seed=0)]


def build(size: str, device: torch.device) -> LoadedModel:
    """A randomly initialised ladder member with the scene corpus' vocabulary."""
    config = LADDER[size]
    tokenizer = Tokenizer.build(CAPTIONS, config.max_text_len)
    torch.manual_seed(0)
    network = DiT(config, len(tokenizer))
    with torch.no_grad():
        for param in network.parameters():
            if param.dim() > 1 and not param.any():  # the zero-initialised output layers
                param.normal_(std=0.02)
    return LoadedModel(network, tokenizer, device=device, size=size)


def prompts_for(count: int, start: int = 0) -> tuple[list[str], list[int]]:
    seeds = list(range(start, start + count))
    return [CAPTIONS[s % len(CAPTIONS)] for s in seeds], seeds


def sampling_rate(model: LoadedModel, batch: int, *, bf16: bool, steps: int, guidance: float, seconds: float) -> float:
    """Images/s of ``model.generate`` on batches of ``batch``, after one warm-up batch."""
    prompts, seeds = prompts_for(batch)
    model.generate(prompts, seeds, steps=steps, guidance=guidance, bf16=bf16, batch_size=batch)
    done, started = 0, time.perf_counter()
    while True:
        model.generate(prompts, seeds, steps=steps, guidance=guidance, bf16=bf16, batch_size=batch)
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def pipeline_rates(
    model: LoadedModel, batch: int, *, bf16: bool, steps: int, guidance: float, count: int, workers: int
) -> tuple[float, float, float]:
    """(pure sampling, end-to-end, sampling inside the pipeline) images/s for ``count`` images.

    The pure rate samples the same work without storing it, once before and
    once after the pipelined run, and is their mean: on a shared machine a rate
    measured minutes earlier would not be comparable.
    """
    prompts, seeds = prompts_for(count, start=10_000)
    work = [Work(key=i, prompt=p, seed=s) for i, (p, s) in enumerate(zip(prompts, seeds))]

    def generate(prompts: list[str], seeds: list[int]):
        return model.generate(prompts, seeds, steps=steps, guidance=guidance, bf16=bf16, batch_size=batch)

    def pure() -> float:
        started = time.perf_counter()
        for start in range(0, count, batch):
            generate(prompts[start : start + batch], seeds[start : start + batch])
        return count / (time.perf_counter() - started)

    generate(*prompts_for(batch))  # warm-up
    before = pure()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def store(item: Work, image) -> None:
            partial = folder / f"{item.key}.png.partial"
            image.save(partial, format="PNG")
            partial.replace(folder / f"{item.key}.png")

        stats = generate_pipelined(work, generate, store, batch_size=batch, workers=workers)
        if stats.failed or len(list(folder.glob("*.png"))) != count:
            raise RuntimeError(f"pipeline lost images: {stats}")
    after = pure()
    return (before + after) / 2, stats.images_per_second, stats.sampling_images_per_second


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    return f"CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores (torch {torch.__version__})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    parser.add_argument("--sizes", nargs="+", default=["S", "M", "L"])
    parser.add_argument("--steps", type=int, default=30, help="sampler steps per image")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes tried for the best")
    parser.add_argument("--workers", type=int, default=4, help="storage threads of the pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batches or ([8, 32, 128, 512] if device.type == "cuda" else [4, 16, 64])
    precisions = [False, True] if device.type == "cuda" else [False]
    print(f"device: {device_name(device)}")
    print(f"sampler: {args.steps} Euler steps, guidance {args.guidance} (two network passes per step)")
    print()
    header = f"{'size':>4} {'params':>10} {'precision':>9} {'batch 1 img/s':>14} {'best batch':>10} {'best img/s':>11}"
    print(header)
    print("-" * len(header))
    best: dict[tuple[str, bool], tuple[int, float]] = {}
    models = {}
    for size in args.sizes:
        model = models[size] = build(size, device)
        for bf16 in precisions:
            kw = {"bf16": bf16, "steps": args.steps, "guidance": args.guidance, "seconds": args.seconds}
            single = sampling_rate(model, 1, **kw)
            rates = {b: sampling_rate(model, b, **kw) for b in batches}
            top = max(rates, key=rates.get)
            best[size, bf16] = (top, rates[top])
            tried = ", ".join(f"{b}:{r:.0f}" for b, r in rates.items())
            print(
                f"{size:>4} {model.params:>10,} {'bf16' if bf16 else 'fp32':>9} {single:>14.1f} {top:>10} "
                f"{rates[top]:>11.1f}   ({tried})",
                flush=True,
            )

    print()
    header = f"{'size':>4} {'precision':>9} {'batch':>6} {'images':>7} {'sampling img/s':>15} {'end-to-end img/s':>17} {'efficiency':>10} {'sampling in pipeline':>20}"
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        bf16 = precisions[-1]
        batch, rate = best[size, bf16]
        count = max(4 * batch, int(rate * args.seconds) // batch * batch)
        pure, end_to_end, inside = pipeline_rates(
            models[size], batch, bf16=bf16, steps=args.steps, guidance=args.guidance, count=count, workers=args.workers
        )
        print(
            f"{size:>4} {'bf16' if bf16 else 'fp32':>9} {batch:>6} {count:>7} {pure:>15.1f} {end_to_end:>17.1f} "
            f"{end_to_end / pure:>10.2f} {inside:>20.1f}",
            flush=True,
        )
    print()
    print("efficiency = end-to-end images/s (sampling + PNG encoding + file writes, pipelined)")
    print("             / pure sampling images/s of the same work (mean of a run before and one after)")


if __name__ == "__main__":
    main()
