# Benchmark of the CPU engine on the seed problem (N = 326 individuals, 18
# binary-probit tasks, 5 LVs, 38 five-point ordered-probit indicators, 202
# parameters), R = 100 draws per individual and LV.
#
# Usage (from the repository root, with iclv installed):
#   OMP_NUM_THREADS=2 Rscript bench/bench_cpu_engine.R [threads] [draws] [reps] [lib]
# Prints one table: median elapsed milliseconds per LL, LL + gradient,
# LL + gradient + scores, LL + gradient + Hessian; the median process CPU
# time (all threads); ns per (individual, draw) pair, elapsed and CPU.
# Goal (performance.md): LL + gradient <= 250 ms on 2 cores.

args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 2L
R <- if (length(args) >= 2) as.integer(args[2]) else 100L
reps <- if (length(args) >= 3) as.integer(args[3]) else 10L
lib <- if (length(args) >= 4) args[4] else NULL
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

sp <- iclv_seed_problem()
comp <- iclv:::.iclv_compile(sp$model, sp$data)
theta <- iclv:::.params_full(sp$params, comp$partable, "params")
K <- length(comp$lvs)
spec <- iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, K)
cm <- comp$c
engine <- iclv:::.engine_new(cm, spec, "cpu", n_threads = n_threads)

# median elapsed and median process CPU time (user + system, all threads) in
# ms; on a shared machine the CPU time is the steadier of the two
# ms; on a shared machine the CPU time is the steadier of the two. Each
# sample times a batch of calls that lasts at least 50 ms (proc.time() has a
# 1 ms resolution).
time_ms <- function(expr_fun, reps) {
  t0 <- proc.time()[["elapsed"]]; expr_fun(); once <- proc.time()[["elapsed"]] - t0 # warm-up
  inner <- max(1L, as.integer(ceiling(0.05 / max(once, 1e-4))))
  t <- vapply(seq_len(reps), function(i) {
    t0 <- proc.time()
    for (k in seq_len(inner)) expr_fun()
    d <- proc.time() - t0
    c(d[["elapsed"]], d[["user.self"]] + d[["sys.self"]]) / inner
  }, numeric(2))
  1000 * apply(t, 1, stats::median)
}

pairs <- cm$n_ind * R
tm <- rbind(
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = FALSE), reps),
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = TRUE), reps),
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = TRUE, scores = TRUE), reps),
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = TRUE, hessian = TRUE),
          max(2L, reps %/% 5L))
)
res <- data.frame(
  what = c("LL", "LL + gradient", "LL + gradient + scores", "LL + gradient + Hessian"),
  ms = tm[, 1], cpu_ms = tm[, 2]
)
res$ns_per_pair <- 1e6 * res$ms / pairs
res$cpu_ns_per_pair <- 1e6 * res$cpu_ms / pairs
mem <- iclv:::.engine_memory(engine)$host
ll <- iclv:::.engine_eval(engine, theta, gradient = FALSE)$loglik

cat(sprintf("seed problem: N = %d, P = %d, K = %d, indicators = %d (obs %d), rows = %d, R = %d\n",
            cm$n_ind, cm$n_par, cm$n_lv, cm$n_indic, cm$n_obs, cm$n_rows, R))
cat(sprintf("threads = %d (OMP_NUM_THREADS = %s), pairs = %d, LL = %.6f, host workspace = %.1f MB\n",
            n_threads, Sys.getenv("OMP_NUM_THREADS", "unset"), pairs, ll, mem$current / 2^20))
print(format(res, digits = 4), row.names = FALSE)
cat(sprintf("goal LL + gradient <= 250 ms on 2 cores: %s (elapsed %.0f ms; CPU %.0f ms over %d threads)\n",
            if (res$ms[2] <= 250) "met" else "NOT met", res$ms[2], res$cpu_ms[2], n_threads))
cat(sprintf("load average now: %s\n", paste(tryCatch(readLines("/proc/loadavg", 1L),
                                                      error = function(e) "unknown"))))
