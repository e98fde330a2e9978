#!/bin/sh
# Builds iclv with the CUDA backend compiled as host C++ against an emulated
# CUDA runtime (threads run one after another on the CPU; the device maths
# functions are the host's libm), installs it into /tmp/lib_emu, so that
# tests/testthat/test-cuda.R can exercise the CUDA engine's indexing,
# chunking, reductions and error paths on a machine without a GPU.
# It is NOT a substitute for the GPU run: device exp/log/erfc, timing,
# occupancy and memory reservation are only checked on real hardware.
# Usage, from the repository root: sh lab/cuda_emu/build.sh
#   then: Rscript -e 'library(iclv, lib.loc="/tmp/lib_emu"); testthat::test_file("tests/testthat/test-cuda.R")'
set -e
root=$(pwd)
here="$root/lab/cuda_emu"
rm -rf /tmp/build_emu && mkdir -p /tmp/build_emu && (cd "$root" && git ls-files -co --exclude-standard | tar -cf - -T -) | tar -xf - -C /tmp/build_emu
cd /tmp/build_emu && ./cleanup >/dev/null && ./configure >/dev/null
python3 "$here/transform.py" "$root/src/cuda/cuda_engine.cu" src/cuda/cuda_engine.cu
cp "$here/emu_runtime.cpp" src/cuda/emu_runtime.cu
sed -i -e 's|^NVCC = .*|NVCC = g++|' \
  -e "s|^NVCC_FLAGS = .*|NVCC_FLAGS = -std=c++20 -O2 -g -fpic -pthread -x c++ -Wall -Wextra -Wno-unused-parameter -I$here/include|" \
  -e '/^OBJECTS = /s|cuda/cuda_engine.o|cuda/cuda_engine.o cuda/emu_runtime.o|' \
  -e 's|-lcudart|-pthread -lstdc++|' src/Makevars
printf 'cuda/emu_runtime.o: cuda/emu_runtime.cu $(CUDA_HEADERS)\n\t$(NVCC) $(NVCC_FLAGS) -I. -c cuda/emu_runtime.cu -o cuda/emu_runtime.o\n' >> src/Makevars
cp "$here/include/cuda_runtime.h" src/cuda/
mkdir -p /tmp/lib_emu
R CMD INSTALL --no-configure --no-test-load --library=/tmp/lib_emu . 2>&1 | grep -E -i "warning|error|DONE" | grep -v "Werror=format" | head -40
