#!/usr/bin/env bash
# The GPU checks, in one command, for a machine with a GPU (a Vulkan driver for the default
# wgpu route; `GPU=cuda` for burn's CUDA backend where it can be built, see README, GPU):
#   1. builds the GPU feature (release),
#   2. runs the device tests: host and GPU aggregates of the embedded model and of torchvision
#      GoogLeNet agree (tests/gpu.rs, influences from the GPU's taps on the host and on the GPU),
#   3. runs the pass bench on the GPU (torchvision GoogLeNet, 224², batches of 8) and prints it.
# Needs the GoogLeNet fixture (python3 crates/summit-model/tests/fixtures/make_googlenet.py,
# CPU PyTorch) or makes it. Usage: scripts/gpu_check.sh [device index]   (GPU=vulkan|cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
gpu="${GPU:-vulkan}"
index="${1:-0}"
export SUMMIT_GPU="$gpu:$index"
step() { printf '\n== %s\n' "$*"; }
if [ ! -f crates/summit-model/tests/fixtures/googlenet/googlenet.pth ]; then
  step "GoogLeNet fixture"
  python3 crates/summit-model/tests/fixtures/make_googlenet.py
fi
step "build (--features $gpu)"
time cargo build --release --features "$gpu" --tests --benches
step "device tests on $SUMMIT_GPU"
time cargo test --release --features "$gpu" --test gpu -- --ignored --nocapture
step "pass bench on $SUMMIT_GPU"
SUMMIT_PASS_DEVICE="$SUMMIT_GPU" SUMMIT_PASS_BATCHES=4 \
  cargo bench -p summit-core --features "$gpu" --bench pass
echo
echo "GPU checks passed on $SUMMIT_GPU"
