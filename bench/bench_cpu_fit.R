# Benchmark of a whole estimation on the CPU: the seed problem (N = 326
# individuals, 18 binary-probit tasks, 5 LVs, 38 five-point ordered-probit
# indicators, 202 free parameters), R = 100 Halton draws, with each of the
# optimizers, from the default starting values.
#
# Usage (from the repository root, with iclv installed):
#   OMP_NUM_THREADS=2 Rscript bench/bench_cpu_fit.R [methods] [threads] [draws] [lib]
#   methods: comma-separated, default "bfgs" (e.g. "bfgs,bhhh,newton")
# Prints one row per method: seconds in all, iterations, evaluations,
# seconds per evaluation, final LL, convergence, the memory high-water marks,
# and how many of the 202 estimates lie more than 3 robust SEs from the truth
# (with R = 100 draws a few may, from simulation bias).
# The users' baseline (problem.md): 16-17 hours projected, ~5 minutes per
# iteration; the goal on 2 CPU cores is minutes.

args <- commandArgs(trailingOnly = TRUE)
methods <- if (length(args) >= 1) strsplit(args[1], ",", fixed = TRUE)[[1]] else "bfgs"
n_threads <- if (length(args) >= 2) as.integer(args[2]) else 0L
R <- if (length(args) >= 3) as.integer(args[3]) else 100L
lib <- if (length(args) >= 4) args[4] else NULL
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

sp <- iclv_seed_problem()
rows <- lapply(methods, function(m) {
  t0 <- proc.time()[["elapsed"]]
  fit <- iclv(sp$model, sp$data, draws = iclv_draws("halton", R, seed = 1), backend = "cpu",
              control = iclv_control(method = m, n_threads = n_threads, trace = 1))
  secs <- proc.time()[["elapsed"]] - t0
  z <- (coef(fit) - sp$params[names(coef(fit))]) / sqrt(diag(vcov(fit)))
  data.frame(method = m, seconds = secs, iterations = fit$convergence$iterations,
             evaluations = fit$convergence$evaluations,
             s_per_eval = fit$timing$per_evaluation, loglik = fit$loglik,
             code = fit$convergence$code, host_peak_mb = fit$memory$host_peak / 2^20,
             process_peak_mb = fit$memory$process_peak / 2^20,
             beyond_3se = sum(abs(z) > 3, na.rm = TRUE), stringsAsFactors = FALSE)
})
res <- do.call(rbind, rows)
cat(sprintf("\nseed problem: N = %d, free parameters = %d, R = %d, threads = %s (OMP_NUM_THREADS = %s)\n",
            length(unique(sp$data$ID)), length(sp$params), R,
            if (n_threads > 0) n_threads else "default", Sys.getenv("OMP_NUM_THREADS", "unset")))
print(format(res, digits = 6), row.names = FALSE)
