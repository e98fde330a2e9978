#!/bin/sh
# Builds warp_demo.cu against the warp-level CUDA emulator and runs it: the
# broken kernels must fail there (wrong result or an emulator error naming
# the lane and mask), the good ones must pass. Then graph_demo.cu: stream
# capture and graph replay as CUDA does them, and the emulator's checks of
# stale graphs. Exit status 0 when every check holds.
# Usage, from the repository root: sh lab/cuda_emu/demo/run_demo.sh
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
out=${EMU_DEMO_DIR:-/tmp/emu_demo_$(id -u)}
mkdir -p "$out"
python3 "$here/transform.py" "$here/demo/warp_demo.cu" "$out/warp_demo.cpp"
g++ -std=c++20 -O1 -g -Wall -Wextra -I"$here/include" "$out/warp_demo.cpp" "$here/emu_runtime.cpp" -o "$out/warp_demo"
"$out/warp_demo"
# the stream capture and graphs (graph_demo.cu: every check must hold)
python3 "$here/transform.py" "$here/demo/graph_demo.cu" "$out/graph_demo.cpp"
g++ -std=c++20 -O1 -g -Wall -Wextra -I"$here/include" "$out/graph_demo.cpp" "$here/emu_runtime.cpp" -o "$out/graph_demo"
"$out/graph_demo"
