#!/bin/bash
# Times two (or more) installs of iclv alternately on the CPU benchmarks, so
# that a shared, noisy machine's slow phases hit all of them alike (issue 17).
# Each round runs every library once per benchmark, in turn; the median of
# each run is one sample, and the summary gives the best and the median of
# the rounds' samples per library.
# Usage (repository root): bash bench/ab_cpu.sh ROUNDS THREADS LIB1 LIB2 ...
#   prints one line per (benchmark, evaluation, library):
#   bench what threads lib best_ms median_ms
rounds=$1; th=$2; shift 2
out=$(mktemp)
for ((k = 1; k <= rounds; k++)); do
  for lib in "$@"; do
    OMP_NUM_THREADS=$th Rscript bench/bench_cpu_drug.R "$th" 100 20 "$lib" 2>/dev/null |
      awk -v l="$lib" -v t="$th" '/^ +LL( \+ gradient)?( \+ Hessian)? +[0-9]/ { w = $0; sub(/^ +/, "", w); n = split(w, f, / +/); ms = f[n - 2]; name = w; sub(/ +[0-9.]+ +[0-9.]+ +[0-9.]+$/, "", name); gsub(/ /, "_", name); print "drug", name, t, l, ms }' >> "$out"
    OMP_NUM_THREADS=$th Rscript bench/bench_cpu_engine.R "$th" 100 10 "$lib" 2>/dev/null |
      awk -v l="$lib" -v t="$th" '/^ +LL( \+ gradient)?( \+ Hessian)? +[0-9]/ { w = $0; sub(/^ +/, "", w); n = split(w, f, / +/); ms = f[n - 3]; name = w; sub(/ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$/, "", name); gsub(/ /, "_", name); print "seed", name, t, l, ms }' >> "$out"
  done
done
Rscript -e 'x <- read.table(commandArgs(TRUE)[1], col.names = c("bench", "what", "threads", "lib", "ms"));
  a <- aggregate(ms ~ bench + what + threads + lib, x, function(v) c(best = min(v), median = median(v), n = length(v)));
  a <- cbind(a[1:4], as.data.frame(a$ms)); a <- a[order(a$bench, a$what, a$lib), ]; print(a, row.names = FALSE)' "$out"
rm -f "$out"
