#!/bin/bash
# Instructions per evaluation of the CPU engine, counted by valgrind's
# callgrind (deterministic: unlike timings, not moved by a shared machine's
# load): the difference of runs with K and 0 evaluations (bench/instr_cpu.R),
# divided by K. One thread.
# Usage (repository root): bash bench/instr_cpu.sh drug|seed grad|hess K LIB [drugchoice.csv]
problem=$1; what=$2; reps=$3; lib=$4; data=${5:-}
count() {
  OMP_NUM_THREADS=1 valgrind --trace-children=yes --tool=callgrind --callgrind-out-file=/dev/null \
    Rscript bench/instr_cpu.R "$problem" "$what" "$1" "$lib" $data 2>&1 |
    grep "Collected" | awk '{print $4}' | sort -n | tail -1
}
a=$(count 0); b=$(count "$reps")
echo "$problem $what $(basename "$lib"): $(( (b - a) / reps / 1000000 )) M instructions per evaluation"
