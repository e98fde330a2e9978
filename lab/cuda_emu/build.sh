#!/bin/sh
# Builds iclv with the CUDA backend compiled as host C++ against an emulated
# CUDA runtime (include/cuda_runtime.h: 32-lane warps as fibers, shuffles
# and __syncwarp with mask checks, block barriers; the device maths
# functions are the host's libm) and installs it, so that
# tests/testthat/test-cuda.R can exercise the CUDA engine's indexing,
# chunking, warp and block reductions and error paths without a GPU.
# It is NOT a substitute for the GPU run: device exp/log/erfc, timing,
# occupancy, registers and memory reservation are only checked on hardware.
# Usage, from the repository root:
#   EMU_BUILD=/tmp/build_emu_NAME EMU_LIB=/tmp/lib_emu_NAME sh lab/cuda_emu/build.sh
#   then: Rscript -e 'library(iclv, lib.loc="/tmp/lib_emu_NAME"); testthat::test_file("tests/testthat/test-cuda.R")'
# (defaults: /tmp/build_emu and /tmp/lib_emu; EMU_SCHEDULE=reverse or
# random:SEED at run time changes the order lanes run between barriers).
set -e
root=$(pwd)
here="$root/lab/cuda_emu"
build=${EMU_BUILD:-/tmp/build_emu}
lib=${EMU_LIB:-/tmp/lib_emu}
rm -rf "$build" && mkdir -p "$build" && (cd "$root" && git ls-files -co --exclude-standard | tar -cf - -T -) | tar -xf - -C "$build"
# configure as if nvcc were there (the emulator replaces it), then point the
# CUDA rules at g++
cd "$build" && ./cleanup >/dev/null && ./configure >/dev/null
for f in src/cuda/*.cu src/cuda/*.cuh; do
  python3 "$here/transform.py" "$root/$f" "$f"
done
cp "$here/emu_runtime.cpp" src/cuda/emu_runtime.cu
sed -i -e 's|^NVCC = .*|NVCC = g++|' \
  -e "s|^NVCC_FLAGS = .*|NVCC_FLAGS = -std=c++20 -O2 -g -fpic -pthread -x c++ -Wall -Wextra -Wno-unused-parameter -Wno-clobbered -Wno-unknown-pragmas -I$here/include|" \
  -e '/^OBJECTS = /s|$| cuda/emu_runtime.o|' \
  -e 's|-lcudart|-pthread -lstdc++|' src/Makevars
grep -q 'cuda/cuda_engine.o' src/Makevars || { echo "build.sh: configure did not enable the CUDA objects (is nvcc on PATH?)" >&2; exit 1; }
printf 'cuda/emu_runtime.o: cuda/emu_runtime.cu $(CUDA_HEADERS)\n\t$(NVCC) $(NVCC_FLAGS) -I. -c cuda/emu_runtime.cu -o cuda/emu_runtime.o\n' >> src/Makevars
cp "$here/include/cuda_runtime.h" src/cuda/
mkdir -p "$lib"
R CMD INSTALL --no-configure --no-test-load --library="$lib" . 2>&1 | grep -E -i "warning|error|DONE" | grep -v "Werror=format" | head -40
