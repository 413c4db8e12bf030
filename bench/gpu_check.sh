#!/bin/sh
# Everything a lent GPU machine is asked, in one run of a few minutes: the CUDA-only
# tests, the engine's throughput with its pipeline efficiency, the same efficiency
# with torch held to one CPU thread (encoder processes and store threads share the
# cores with torch's own), without file writes, and the pipeline's ceiling against
# simulated devices.
# Needs Python with torch, numpy, Pillow and pytest; no Django. Figures go to
# $OUT (or bench/out) as well as to the screen.
#
#     sh bench/gpu_check.sh
set -u
out=${OUT:-bench/out}
mkdir -p "$out"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
echo "== CUDA tests"
PYTHONPATH=. python3 -m pytest -c /dev/null --noconftest -p no:cacheprovider -q \
    tests/generation/engine/test_cuda_graphs.py 2>&1 | tail -3
echo "== throughput and pipeline efficiency"
python3 bench/generation_throughput.py --device cuda --seconds 2 --encoders 8 12 | tee "$out/gpu_throughput.txt"
echo "== pipeline efficiency, torch on one CPU thread"
python3 bench/generation_throughput.py --device cuda --seconds 2 --sizes S L --batches 512 2048 \
    --modes "fp32 graph,bf16 graph" --encoders 8 --threads 1 | tee "$out/gpu_throughput_1thread.txt"
echo "== pipeline efficiency without file writes (PNG encoding only)"
python3 bench/generation_throughput.py --device cuda --seconds 2 --sizes S --batches 2048 \
    --modes "fp32 graph" --encoders 8 --store none | tee "$out/gpu_throughput_nowrite.txt"
echo "== the pipeline alone against simulated devices"
python3 bench/generation_throughput.py --simulate 5000 10000 20000 --encoders 8 | tee "$out/gpu_simulate.txt"
