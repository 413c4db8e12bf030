"""Generation throughput of the built-in engine, per ladder size, and pipeline efficiency.

For each ladder size: images/s at batch 1 and at the best of a few batch sizes,
in float32 and (on CUDA) bf16 autocast, each with the sampling loop run eagerly
and (on CUDA) as one captured CUDA graph; then the pipeline efficiency, the
end-to-end throughput of `generate_pipelined` (sampling, PNG encoding on
threads or in encoder processes, file writes on threads) divided by the pure
sampling throughput of the same work, with the size's fastest mode and batch.
The target is an efficiency of at least 0.8: the device should not wait on
encoding.

The models are randomly initialised (throughput does not depend on training),
with every layer given random weights so that the images are noisy, the worst
case for PNG encoding. Needs only torch, Pillow and numpy: no Django.

    python bench/generation_throughput.py [--device cuda] [--sizes S M L]
        [--steps 30] [--seconds 3] [--batches 32 128 512 2048] [--encoders 0 8]
    python bench/generation_throughput.py --simulate 5000 10000 [--encoders 0 8]

``--simulate`` replaces the model by a device of a given rate that waits with the
GIL released, as a CUDA synchronisation does: the efficiency it gets is the
ceiling that encoding, file writes and the GIL set on the machine, apart from any
device, so a low figure on a GPU can be told apart from a pipeline that cannot keep
up.
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

if __name__ == "__main__":  # not in the encoder processes, which import this file again (spawn)
    import numpy as np
    import torch

    from demo.scenes import iter_scenes
    from generation.engine import (
        LADDER,
        DiT,
        LoadedModel,
        Tokenizer,
        Work,
        generate_pipelined,
        pick_device,
    )

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


def sampling_rate(
    model: LoadedModel, batch: int, *, bf16: bool, graph: bool, steps: int, guidance: float, seconds: float
) -> float:
    """Images/s of ``model.generate_array`` on batches of ``batch``, after one warm-up batch (and capture)."""
    prompts, seeds = prompts_for(batch)
    kw = {"steps": steps, "guidance": guidance, "bf16": bf16, "batch_size": batch, "cuda_graph": graph}
    model.generate_array(prompts, seeds, **kw)
    done, started = 0, time.perf_counter()
    while True:
        model.generate_array(prompts, seeds, **kw)
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def model_sampler(model: LoadedModel, batch: int, *, bf16: bool, graph: bool, steps: int, guidance: float):
    """``generate(prompts, seeds)`` of the built-in backend: one uint8 array per batch."""

    def generate(prompts: list[str], seeds: list[int]):
        return model.generate_array(
            prompts, seeds, steps=steps, guidance=guidance, bf16=bf16, batch_size=batch, cuda_graph=graph
        )

    return generate


def simulated_sampler(rate: float, batch: int):
    """A device that makes ``rate`` images/s: it waits with the GIL released, as a GPU sync does.

    Its images are uniform noise (32 px RGB), the worst case for PNG encoding, as
    the randomly initialised models draw. What the pipeline keeps of ``rate`` is
    the ceiling that encoding, file writes and the GIL set on this machine, whatever
    the real device.
    """
    noise = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)

    def generate(prompts: list[str], seeds: list[int]):
        time.sleep(len(prompts) / rate)
        return noise[: len(prompts)].copy()

    return generate


def pipeline_rates(
    generate,
    batch: int,
    *,
    count: int,
    workers: int,
    encoders: int,
    write: bool = True,
) -> tuple[float, float, float]:
    """(pure sampling, end-to-end, sampling inside the pipeline) images/s for ``count`` images.

    The pure rate samples the same work without storing it, once before and
    once after the pipelined run, and is their mean: on a shared machine a rate
    measured minutes earlier would not be comparable.
    """
    prompts, seeds = prompts_for(count, start=10_000)
    work = [Work(key=i, prompt=p, seed=s) for i, (p, s) in enumerate(zip(prompts, seeds))]

    def pure() -> float:
        started = time.perf_counter()
        for start in range(0, count, batch):
            generate(prompts[start : start + batch], seeds[start : start + batch])
        return count / (time.perf_counter() - started)

    generate(*prompts_for(batch))  # warm-up
    before = pure()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def store(item: Work, encoded) -> None:
            if not write:
                return
            partial = folder / f"{item.key}.png.partial"
            partial.write_bytes(encoded.data)
            partial.replace(folder / f"{item.key}.png")

        stats = generate_pipelined(work, generate, store, batch_size=batch, workers=workers, encoders=encoders)
        if stats.failed or stats.images != count or (write and len(list(folder.glob("*.png"))) != count):
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
    parser.add_argument(
        "--encoders", type=int, nargs="+", default=None, help="encoder processes of the pipeline, one row each"
    )
    parser.add_argument(
        "--store", choices=["files", "none"], default="files", help="none: encode only, to see what writes cost"
    )
    parser.add_argument("--modes", default=None, help="comma-separated modes to measure, e.g. 'fp32 graph'")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--simulate", type=float, nargs="+", default=None, metavar="RATE",
        help="no model: a simulated device of RATE images/s, to measure the pipeline's own ceiling on this machine",
    )
    args = parser.parse_args()
    if args.simulate:
        simulate(args)
        return

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    batches = args.batches or ([32, 128, 512, 2048] if cuda else [4, 16, 64])
    encoders = args.encoders or ([0, min(8, (os.cpu_count() or 1) - 2)] if cuda else [0])
    # (label, bf16, CUDA graph)
    modes = [("fp32", False, False), ("bf16", True, False), ("fp32 graph", False, True), ("bf16 graph", True, True)]
    modes = modes if cuda else modes[:1]
    if args.modes:
        modes = [mode for mode in modes if mode[0] in args.modes.split(",")]
    print(f"device: {device_name(device)}")
    print(f"sampler: {args.steps} Euler steps, guidance {args.guidance} (two network passes per step)")
    print()
    header = f"{'size':>4} {'params':>10} {'mode':>10} {'batch 1 img/s':>14} {'best batch':>10} {'best img/s':>11}"
    print(header)
    print("-" * len(header))
    best: dict[str, tuple[float, int, tuple]] = {}  # size -> (images/s, batch, mode)
    models = {}
    for size in args.sizes:
        model = models[size] = build(size, device)
        for mode in modes:
            label, bf16, graph = mode
            kw = {"bf16": bf16, "graph": graph, "steps": args.steps, "guidance": args.guidance}
            try:
                single = sampling_rate(model, 1, seconds=args.seconds, **kw)
                rates = {b: sampling_rate(model, b, seconds=args.seconds, **kw) for b in batches}
            except Exception as error:  # noqa: BLE001 - one mode failing must not lose the others' figures
                print(f"{size:>4} {model.params:>10,} {label:>10} failed: {type(error).__name__}: {error}", flush=True)
                continue
            top = max(rates, key=rates.get)
            if rates[top] > best.get(size, (0.0,))[0]:
                best[size] = (rates[top], top, mode)
            tried = ", ".join(f"{b}:{r:.0f}" for b, r in rates.items())
            print(
                f"{size:>4} {model.params:>10,} {label:>10} {single:>14.1f} {top:>10} {rates[top]:>11.1f}   ({tried})",
                flush=True,
            )

    rows = []
    for size in args.sizes:
        if size not in best:
            continue
        rate, batch, (label, bf16, graph) = best[size]
        sampler = model_sampler(models[size], batch, bf16=bf16, graph=graph, steps=args.steps, guidance=args.guidance)
        rows.append((size, label, batch, rate, sampler))
    efficiency_table(rows, encoders, args)


def simulate(args: argparse.Namespace) -> None:
    """The efficiency table for simulated devices of the given rates: the pipeline's own ceiling."""
    batch = (args.batches or [2048])[-1]
    encoders = args.encoders or [0, max(1, min(8, (os.cpu_count() or 1) - 2))]
    print(f"simulated device: waits batch / rate seconds with the GIL released; batch {batch}, 32 px noise images")
    print(f"machine: {os.cpu_count()} cores")
    rows = [("sim", f"{rate:g}/s", batch, rate, simulated_sampler(rate, batch)) for rate in args.simulate]
    efficiency_table(rows, encoders, args)


def efficiency_table(rows: list[tuple], encoders: list[int], args: argparse.Namespace) -> None:
    """One line per (row, encoder count): row = (size, mode label, batch, sampling rate, generate)."""
    print()
    header = (
        f"{'size':>4} {'mode':>10} {'batch':>6} {'encoders':>8} {'images':>7} {'sampling img/s':>15} "
        f"{'end-to-end img/s':>17} {'efficiency':>10} {'sampling in pipeline':>20}"
    )
    print(header)
    print("-" * len(header))
    for size, label, batch, rate, sampler in rows:
        # at least 5 s of work, so that starting the encoder processes is a small part of it, as in a real job
        count = max(4 * batch, int(rate * max(args.seconds, 5.0)) // batch * batch)
        for processes in encoders:
            pure, end_to_end, inside = pipeline_rates(
                sampler, batch, count=count, workers=args.workers, encoders=processes, write=args.store == "files"
            )
            print(
                f"{size:>4} {label:>10} {batch:>6} {processes:>8} {count:>7} {pure:>15.1f} {end_to_end:>17.1f} "
                f"{end_to_end / pure:>10.2f} {inside:>20.1f}",
                flush=True,
            )
    print()
    print("efficiency = end-to-end images/s (sampling + PNG encoding + file writes, pipelined)")
    print("             / pure sampling images/s of the same work (mean of a run before and one after)")
    print(f"encoders 0: PNG encoding on the {args.workers} store threads; n > 0: in n spawned processes")
    print(f"store: {args.store} ({'each PNG written to a file and renamed' if args.store == 'files' else 'discarded'})")


if __name__ == "__main__":
    main()
