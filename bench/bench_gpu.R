# GPU benchmark of the CUDA backend on the seed problem (N = 326 individuals,
# 38 five-point ordered-probit indicators, 18 binary-probit tasks, 5 LVs,
# 202 parameters), beside the CPU backend in the same run.
#
# Usage (repository root, iclv installed with CUDA compiled in; see
# bench/README.md for the device machine):
#   Rscript bench/bench_gpu.R [draws=100] [reps=50] [fits=both|gpu|none] [lib] [fma_rate] [n=326]
#     draws     R, draws per individual (Halton)
#     reps      timed evaluations per backend and request (after warm-up; the
#               Hessian request is timed min(reps, 10) times on the GPU and
#               3 times on the CPU)
#     fits      which full iclv() fits to time: "both", "gpu" or "none"
#     lib       library holding iclv (default: the usual library path)
#     fma_rate  FP64 FMA issue rate of the device per second, for the
#               achieved fraction; default 16.2e12 on an H100 SXM (measured,
#               ../shared/design/performance.md), else NA (not reported)
#     n         individuals of the seed problem (326; smaller for a dry run
#               through lab/cuda_emu)
#
# Prints, for the device: median milliseconds per LL, per LL + gradient and
# per LL + gradient + Hessian on each backend, the agreement of the two
# backends at the same parameters (the Hessian's too),
# the cost count per pair from performance.md's table and the achieved
# fraction of the FP64 issue rate, device memory (the engine's account and
# what cudaMemGetInfo saw), and the time of a full fit on each backend.
# It refuses to run without a usable GPU. It prints measurements only; copy
# them into bench/RESULTS.md with the date, device, commit and command.

args <- commandArgs(trailingOnly = TRUE)
arg <- function(i, default) if (length(args) >= i && nzchar(args[i])) args[i] else default
R <- as.integer(arg(1, "100"))
reps <- as.integer(arg(2, "50"))
fits <- arg(3, "both")
lib <- arg(4, NA)
fma_arg <- suppressWarnings(as.numeric(arg(5, NA)))
n_ind <- as.integer(arg(6, "326"))
if (!fits %in% c("both", "gpu", "none")) stop("fits must be \"both\", \"gpu\" or \"none\"", call. = FALSE)
suppressPackageStartupMessages(library(iclv, lib.loc = if (is.na(lib)) NULL else lib))

av <- iclv_cuda_available()
if (!isTRUE(av)) {
  stop("bench_gpu.R needs a usable CUDA GPU and a CUDA build of iclv: ",
       if (!iclv_cuda_compiled()) "this build of iclv has no CUDA support" else attr(av, "reason"),
       call. = FALSE)
}
devs <- iclv_devices()
dev <- devs[1, ]
fma_rate <- if (!is.na(fma_arg)) fma_arg else
  if (grepl("H100", dev$name) && !grepl("PCIe", dev$name)) 16.2e12 else NA_real_

# ---- the problem ------------------------------------------------------------
sp <- iclv_seed_problem(n = n_ind)
comp <- iclv:::.iclv_compile(sp$model, sp$data)
cm <- comp$c
theta <- iclv:::.params_full(sp$params, comp$partable, "params")
K <- length(comp$lvs)
draws <- iclv_draws("halton", R)
spec <- iclv:::.draws_spec(draws, cm$n_ind, K)
N <- cm$n_ind
P <- cm$n_par
pairs <- N * R
# per individual: ordered-probit indicator observations and binary-probit tasks
n_op <- sum(cm$ind_type[cm$obs_ind + 1L] == 1L) / N
n_bp <- if (cm$choice_type == 2L) cm$n_rows / N else 0

free_before <- iclv_devices()$memory_free[1]
gpu <- iclv:::.engine_new(cm, spec, "cuda")
free_created <- iclv_devices()$memory_free[1]
cpu <- iclv:::.engine_new(cm, spec, "cpu", n_threads = 0L)

ev <- function(e, gradient, scores = FALSE, hessian = FALSE) {
  iclv:::.engine_eval(e, theta, gradient = gradient, scores = scores, hessian = hessian, use_cpu = FALSE)
}

# ---- check before timing: the GPU must agree with the CPU -------------------
g <- ev(gpu, TRUE, TRUE)
free_evaluated <- iclv_devices()$memory_free[1]
c <- ev(cpu, TRUE, TRUE)
# relative differences |x - y| / scale; where the scale is 0 (a parameter
# with no information in a small problem) the two must be equal
rel_to <- function(x, y, scale) max(ifelse(scale > 0, abs(x - y) / scale, ifelse(x == y, 0, Inf)))
rel_ll <- abs(g$loglik - c$loglik) / abs(c$loglik)
rel_grad <- rel_to(g$gradient, c$gradient, pmax(abs(c$gradient), colSums(abs(c$scores))))
rel_scores <- rel_to(g$scores, c$scores,
                     pmax(abs(c$scores), rep(apply(abs(c$scores), 2, max), each = N)))
# the Hessian, relative to sqrt(|H_ii H_jj|) (exact zeros must match exactly)
gh <- ev(gpu, TRUE, hessian = TRUE)$hessian
ch <- ev(cpu, TRUE, hessian = TRUE)$hessian
rel_hess <- rel_to(gh, ch, sqrt(abs(outer(diag(ch), diag(ch)))))
if (!(rel_ll < 1e-12 && rel_grad < 1e-12 && rel_scores < 1e-12 && rel_hess < 1e-10)) {
  stop(sprintf("the GPU disagrees with the CPU: LL %.3g, gradient %.3g, scores %.3g, Hessian %.3g (relative); not timing",
               rel_ll, rel_grad, rel_scores, rel_hess), call. = FALSE)
}

# ---- timing --------------------------------------------------------------------
# Median wall time of single evaluations after `warm` untimed ones. Each
# .Call returns only after the device has finished (the engine synchronises).
time_ms <- function(f, n, warm = 5L) {
  for (i in seq_len(warm)) f()
  t <- numeric(n)
  for (i in seq_len(n)) {
    t0 <- Sys.time()
    f()
    t[i] <- as.numeric(Sys.time() - t0, units = "secs")
  }
  1000 * stats::median(t)
}
cpu_reps <- max(3L, min(reps, 10L))
hess_reps <- max(3L, min(reps, 10L))
tm <- data.frame(
  request = c("LL", "LL + gradient", "LL + gradient + Hessian"),
  gpu_ms = c(time_ms(function() ev(gpu, FALSE), reps), time_ms(function() ev(gpu, TRUE), reps),
             time_ms(function() ev(gpu, TRUE, hessian = TRUE), hess_reps, 2L)),
  cpu_ms = c(time_ms(function() ev(cpu, FALSE), cpu_reps, 1L),
             time_ms(function() ev(cpu, TRUE), cpu_reps, 1L),
             time_ms(function() ev(cpu, TRUE, hessian = TRUE), 3L, 1L))
)
tm$speedup <- tm$cpu_ms / tm$gpu_ms
tm$gpu_ns_per_pair <- 1e6 * tm$gpu_ms / pairs

# ---- cost model (performance.md's table, FMA equivalents per pair) -----------
source(file.path("bench", "cost_model.R"))  # iclv_pair_cost(): from the model's dimensions
cost <- iclv_pair_cost(cm)
cost_ll <- cost[["ll"]]
cost_grad <- cost[["grad"]]
# this engine evaluates each pair once for LL + gradient (one fused pass)
cost_exec <- cost_grad
eta <- function(cost, ms) if (is.na(fma_rate)) NA_real_ else pairs * cost / (ms / 1000) / fma_rate

mem <- iclv:::.engine_memory(gpu)
acct <- mem$device
lmem <- acct$buffers[["local_memory_reserved_estimate"]]

cat(sprintf("device: %s (compute capability %s, %d SMs, %.1f GB)\n", dev$name, dev$compute_capability,
            dev$multiprocessors, dev$memory_total / 2^30))
cat(sprintf("seed problem: N = %d, R = %d (Halton), P = %d, K = %d, %d pairs; %.1f ordered-probit indicators and %.1f binary-probit tasks per individual\n",
            N, R, P, K, pairs, n_op, n_bp))
cat(sprintf("GPU vs CPU at the true parameters (relative): LL %.2g, gradient %.2g, scores %.2g, Hessian %.2g\n",
            rel_ll, rel_grad, rel_scores, rel_hess))
cat(sprintf("CPU threads: %s (OMP_NUM_THREADS = %s); timed evaluations: GPU %d, CPU %d (medians; with the Hessian GPU %d, CPU 3)\n",
            "OpenMP default", Sys.getenv("OMP_NUM_THREADS", "unset"), reps, cpu_reps, hess_reps))
print(format(tm, digits = 4), row.names = FALSE)
cat(sprintf("cost per pair (performance.md table): LL %.0f, LL + gradient %.0f FMA-eq; executed by this engine for LL + gradient: %.0f\n",
            cost_ll, cost_grad, cost_exec))
if (is.na(fma_rate)) {
  cat("achieved fraction of the FP64 issue rate: not reported (no measured FMA rate for this device; pass fma_rate)\n")
} else {
  cat(sprintf("achieved fraction of the FP64 issue rate (%.3g FMA/s), end to end: LL %.3f; LL + gradient %.3f (useful work), %.3f (executed work)\n",
              fma_rate, eta(cost_ll, tm$gpu_ms[1]), eta(cost_grad, tm$gpu_ms[2]), eta(cost_exec, tm$gpu_ms[2])))
}
cat(sprintf("device memory: account %.1f MB (of which local scratch estimate %.1f MB), per_chunk %d, n_chunks %d\n",
            acct$current / 2^20, lmem / 2^20, mem$per_chunk, mem$n_chunks))
cat(sprintf("cudaMemGetInfo free: %.1f MB before the engine, %.1f MB after creating it, %.1f MB after the first evaluation (drops %.1f MB and %.1f MB)\n",
            free_before / 2^20, free_created / 2^20, free_evaluated / 2^20,
            (free_before - free_created) / 2^20, (free_created - free_evaluated) / 2^20))
iclv:::.engine_release(gpu)
iclv:::.engine_release(cpu)

# ---- full fits -------------------------------------------------------------------
if (fits != "none") {
  fit_one <- function(backend) {
    t0 <- Sys.time()
    f <- iclv(sp$model, sp$data, draws = draws, backend = backend)
    list(fit = f, seconds = as.numeric(Sys.time() - t0, units = "secs"))
  }
  rows <- list()
  fg <- fit_one("cuda")
  rows$cuda <- fg
  if (fits == "both") rows$cpu <- fit_one("cpu")
  ft <- do.call(rbind, lapply(names(rows), function(b) {
    f <- rows[[b]]$fit
    data.frame(backend = b, total_s = rows[[b]]$seconds, optimizer_s = f$timing$optimizer,
               post_estimation_s = f$timing$post_estimation, iterations = f$convergence$iterations,
               evaluations = f$timing$evaluations, ms_per_evaluation = 1000 * f$timing$per_evaluation,
               loglik = f$loglik, code = f$convergence$code)
  }))
  cat("\nfull fit, iclv(seed problem, halton R), default control (Hessian at the optimum on the fit's backend):\n")
  print(format(ft, digits = 6), row.names = FALSE)
  if (fits == "both") {
    d <- abs(coef(rows$cuda$fit) - coef(rows$cpu$fit)) / pmax(1, abs(coef(rows$cpu$fit)))
    cat(sprintf("largest relative difference of the estimates (cuda vs cpu): %.3g\n", max(d)))
  }
}
