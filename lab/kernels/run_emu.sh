#!/bin/sh
# Checks a lab kernel file through the warp-level CUDA emulator
# (lab/cuda_emu): correctness only; its timings mean nothing.
# Usage, from the repository root: sh lab/kernels/run_emu.sh FILE.cu [args]
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
f=$1; shift
out=${EMU_LAB_DIR:-/tmp/emu_lab_$(id -u)}
mkdir -p "$out"
python3 "$here/cuda_emu/transform.py" "$here/kernels/$f" "$out/k.cpp"
g++ -std=c++20 -O1 -Wall -Wno-clobbered -I"$here/cuda_emu/include" -include cstdint "$out/k.cpp" "$here/cuda_emu/emu_runtime.cpp" -o "$out/k"
"$out/k" "$@"
