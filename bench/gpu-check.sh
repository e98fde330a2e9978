#!/bin/bash
# One GPU check for a device session (issue 18): builds iclv with CUDA, runs
# the CUDA tests, compute-sanitizer memcheck and racecheck on a small case,
# the benchmarks (bench_gpu_issue.R: drug-choice ICLV, N = 1e5 R = 1000,
# fixed cost, memory over 10,000 evaluations; the fixed cost again with
# ICLV_CUDA_GRAPHS=0, the calls queued one by one instead of one CUDA graph;
# bench_gpu.R: the seed problem's LL + gradient and Hessian), ptxas's
# registers and frames, and prints a compact summary. Budget: under 8
# minutes on an H100/H200.
# Usage, in the repository root of a device run (R from the bundle,
# ../shared/device/README.md):
#   bash .rbundle/use-r.sh >/dev/null && export PATH=/opt/rbin:$PATH
#   bash bench/gpu-check.sh 2>&1 | tee $OUT/gpu-check.txt
# Logs go to ${OUT:-/tmp/gpu-check}. Without a GPU (or nvcc, or R) it says
# so and exits 2 before building anything.
set -u
LOG=${OUT:-/tmp/gpu-check}
mkdir -p "$LOG"
LIB="$LOG/lib"
mkdir -p "$LIB"
t_start=$(date +%s)
summary=()
note() { summary+=("$1"); echo "== $1"; }
deadline=$((t_start + ${GPU_CHECK_SECONDS:-470})) # the whole check: under 8 minutes
step() { # step NAME TIMEOUT COMMAND...: runs with a time limit (and within the
         # check's deadline), logs, records pass/fail
  local name=$1 lim=$2; shift 2
  local t0=$(date +%s)
  local left=$((deadline - t0))
  if [ "$left" -lt 15 ]; then note "$(printf '%-12s skipped: the check is out of time' "$name")"; return 1; fi
  [ "$lim" -gt "$left" ] && lim=$left
  timeout "$lim" "$@" > "$LOG/$name.log" 2>&1
  local rc=$? t1=$(date +%s)
  note "$(printf '%-12s %s (%ds)' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED rc=$rc, see $LOG/$name.log")" $((t1 - t0)))"
  return $rc
}

# ---- preconditions: fail fast and say why ----
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check.sh: no NVIDIA GPU is visible here (nvidia-smi missing or finds none); run it on a device machine" >&2
  exit 2
fi
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "gpu-check.sh: nvcc not found (PATH or /usr/local/cuda/bin)" >&2
  exit 2
fi
export PATH=$PATH:/usr/local/cuda/bin
if ! command -v Rscript >/dev/null 2>&1; then
  echo "gpu-check.sh: Rscript not found: unpack the R bundle first (../shared/device/README.md)" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/device: /'

# ---- build (CUDA on) and the compiler's resource report ----
step install 300 R CMD INSTALL --no-test-load --library="$LIB" . || { printf '%s\n' "${summary[@]}"; exit 1; }
# registers and local-memory frame per kernel of the installed library (cheap)
if command -v cuobjdump >/dev/null 2>&1; then
  cuobjdump --dump-resource-usage "$LIB/iclv/libs/iclv.so" > "$LOG/resources_raw.txt" 2>&1
  awk '/arch = / {a=$3} /Function/ {f=$2} /REG:/ {print "  " a " " f " " $0}' "$LOG/resources_raw.txt" |
    sed -E 's/Function //; s/_Z[0-9]+//; s/(ILi[01]E)?[0-9A-Za-z_]*:/\1:/' | cut -c1-150 > "$LOG/resources.txt"
fi
note "resources (cuobjdump): see $LOG/resources.txt"; cat "$LOG/resources.txt" 2>/dev/null

# ---- benchmarks ----
step bench_issue 240 Rscript bench/bench_gpu_issue.R drug,large,fixed,flat "$LIB" cuda
# the per-evaluation fixed cost without graphs (the engine reads the variable at creation)
step bench_nograph 60 env ICLV_CUDA_GRAPHS=0 Rscript bench/bench_gpu_issue.R fixed "$LIB" cuda
step bench_seed 150 Rscript bench/bench_gpu.R 100 50 none "$LIB"

# ---- the CUDA tests (and the memory plan against the account) ----
step tests 180 Rscript -e "library(testthat); library(iclv, lib.loc='$LIB'); res <- as.data.frame(test_dir('tests/testthat', package = 'iclv', load_package = 'none', filter = 'cuda|memory', reporter = 'summary', stop_on_failure = TRUE))"

# ---- compute-sanitizer on a small case ----
cat > "$LOG/small.R" <<'RS'
library(iclv, lib.loc = Sys.getenv("ICLV_LIB"))
for (f in list.files("tests/testthat", "^helper", full.names = TRUE)) source(f)
tm <- tiny_model(c("ordered_probit", "normal", "binary_probit"), "mnl", n_ind = 7L, n_draws = 70L, seed = 5)
e <- iclv:::.engine_new(tm$compiled, tm$draws, "cuda")
r <- iclv:::.engine_eval(e, tm$theta, gradient = TRUE, scores = TRUE, hessian = TRUE, use_cpu = FALSE)
stopifnot(is.finite(r$loglik), all(is.finite(r$hessian)))
# the graph path: LL + gradient captured, then replayed at another theta; LL only
g1 <- iclv:::.engine_eval(e, tm$theta, gradient = TRUE, use_cpu = FALSE)
g2 <- iclv:::.engine_eval(e, tm$theta * 1.01, gradient = TRUE, use_cpu = FALSE)
g3 <- iclv:::.engine_eval(e, tm$theta, gradient = FALSE, use_cpu = FALSE)
stopifnot(identical(g1$loglik, r$loglik), identical(g1$gradient, r$gradient), g2$loglik != g1$loglik,
          identical(g3$loglik, r$loglik),
          identical(iclv:::.engine_memory(e)$cuda_graphs, c(built = 2, launched = 3)))
invisible(iclv:::.draws_generate_cuda(tm$draws))
RS
export ICLV_LIB="$LIB"
if command -v compute-sanitizer >/dev/null 2>&1; then
  step memcheck 120 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 Rscript "$LOG/small.R"
  step racecheck 120 compute-sanitizer --tool racecheck --racecheck-report all --target-processes all --error-exitcode 9 Rscript "$LOG/small.R"
else
  note "sanitizer    not run: compute-sanitizer not found"
fi

echo
echo "==== summary ($(( $(date +%s) - t_start )) s) ===="
printf '%s\n' "${summary[@]}"
grep -E "^(drug|large|fixed|flat|backend)" "$LOG/bench_issue.log" 2>/dev/null
grep -E "^fixed" "$LOG/bench_nograph.log" 2>/dev/null | sed 's/^fixed /fixed without graphs (ICLV_CUDA_GRAPHS=0): /'
grep -E "^(device|seed problem|GPU vs CPU| *request| *LL|device memory)" "$LOG/bench_seed.log" 2>/dev/null
grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG"/memcheck.log "$LOG"/racecheck.log 2>/dev/null
tail -4 "$LOG/tests.log" 2>/dev/null
