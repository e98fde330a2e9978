# The GPU benchmarks of issue 18 (targets on an H100/H200, FP64), each after
# a check that the GPU agrees with the CPU on the same draws:
#   drug    drug-choice-shaped ICLV: N = 1000, R = 100, 1 LV, 4 five-point
#           ordered-probit indicators, T = 10 MNL tasks, J = 4: LL + gradient
#           (target <= 0.08 ms end to end)
#   large   N = 1e5, R = 1000, 8 ordered-probit indicators, T = 10 MNL (J = 3):
#           LL + gradient (target <= 30 ms)
#   fixed   per-evaluation fixed cost: LL + gradient of N = 20, R = 32 (<= 20 us)
#   flat    device memory over many LL + gradient evaluations of `drug`
#           (cudaMemGetInfo free and the engine's account before and after)
# (the seed problem's LL + gradient and Hessian: bench_gpu.R).
# Usage: Rscript bench/bench_gpu_issue.R [cases=drug,large,fixed,flat] [lib] [backend=cuda]
#   backend = cpu times the CPU engine instead (for a dry run of the script
#   on a machine without a GPU; use small cases there).
args <- commandArgs(trailingOnly = TRUE)
arg <- function(i, default) if (length(args) >= i && nzchar(args[i])) args[i] else default
cases <- strsplit(arg(1, "drug,large,fixed,flat"), ",")[[1]]
lib <- arg(2, NA)
backend <- arg(3, "cuda")
suppressPackageStartupMessages(library(iclv, lib.loc = if (is.na(lib)) NULL else lib))
if (backend == "cuda" && !isTRUE(iclv_cuda_available())) {
  stop("bench_gpu_issue.R needs a usable CUDA GPU: ", attr(iclv_cuda_available(), "reason"), call. = FALSE)
}

# an ICLV with one LV, n_ind ordered-probit indicators (5 categories) and an
# MNL with J alternatives (one attribute each, the LV in the first utility)
make_problem <- function(N, n_ind, T, J, R, seed = 1) {
  ind <- paste0("q", seq_len(n_ind))
  ut <- c(lapply(seq_len(J - 1), function(j) {
    sprintf("asc_%d + b_x * x_%d%s", j, j, if (j == 1) " + l_att * att" else "")
  }), list("b_x * x_last"))
  names(ut) <- c(paste0("alt", seq_len(J - 1)), "last")
  m <- iclv_model(paste("att =~", paste(ind, collapse = " + ")), structural = "att ~ age",
                  choice = iclv_choice("mnl", choice = "ch", utilities = ut),
                  id = "ID", categories = 5)
  pt <- m$partable
  p <- stats::setNames(rep(0.3, nrow(pt)), pt$name)
  p[pt$role == "loading"] <- 1
  thr <- pt$role == "threshold"
  p[thr] <- stats::qnorm(as.integer(sub(".*_", "", pt$name[thr])) / 5)
  d <- iclv_simulate(m, p, n = N, n_tasks = T, seed = seed)
  comp <- iclv:::.iclv_compile(m, d)
  list(cm = comp$c, theta = iclv:::.params_full(p, comp$partable, "params"),
       spec = iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, 1L), N = N, R = R)
}
engine <- function(pr, be = backend) {
  if (be == "cuda") iclv:::.engine_new(pr$cm, pr$spec, "cuda") else
    iclv:::.engine_new(pr$cm, pr$spec, "cpu", n_threads = 0L)
}
ev <- function(e, pr) iclv:::.engine_eval(e, pr$theta, gradient = TRUE, use_cpu = FALSE)
# median over 5 batches of the mean ms per evaluation (n evaluations in all,
# after `warm`); each evaluation returns after the device has finished
time_ms <- function(f, n, warm = 5L) {
  for (i in seq_len(warm)) f()
  k <- max(1L, n %/% 5L)
  t <- vapply(1:5, function(b) {
    t0 <- Sys.time()
    for (i in seq_len(k)) f()
    as.numeric(Sys.time() - t0, units = "secs") / k
  }, 0)
  1000 * stats::median(t)
}
check <- function(pr, e, label) {
  if (backend != "cuda") return(invisible())
  g <- ev(e, pr)
  c <- ev(engine(pr, "cpu"), pr)
  rel <- c(ll = abs(g$loglik - c$loglik) / abs(c$loglik),
           grad = max(abs(g$gradient - c$gradient)) / max(abs(c$gradient), 1))
  cat(sprintf("%-6s GPU vs CPU: LL %.2g, gradient %.2g (relative)\n", label, rel[["ll"]], rel[["grad"]]))
  if (!all(rel < 1e-10)) stop(label, ": the GPU disagrees with the CPU; not timing", call. = FALSE)
}
out <- list()
if ("drug" %in% cases) {
  pr <- make_problem(1000, 4, 10, 4, 100)
  e <- engine(pr); check(pr, e, "drug")
  out$drug <- c(ms = time_ms(function() ev(e, pr), 200), target_ms = 0.08)
  if ("flat" %in% cases) {
    m0 <- iclv:::.engine_memory(e)$device$current
    f0 <- if (backend == "cuda") iclv_devices()$memory_free[1] else NA
    for (i in 1:10000) ev(e, pr)
    m1 <- iclv:::.engine_memory(e)$device$current
    f1 <- if (backend == "cuda") iclv_devices()$memory_free[1] else NA
    out$flat <- c(account_change_bytes = m1 - m0, free_change_bytes = f1 - f0, evaluations = 10000)
  }
  iclv:::.engine_release(e)
}
if ("large" %in% cases) {
  pr <- make_problem(if (backend == "cuda") 1e5 else 2000, 8, 10, 3, if (backend == "cuda") 1000 else 100)
  e <- engine(pr); check(pr, e, "large")
  mem <- iclv:::.engine_memory(e)
  out$large <- c(ms = time_ms(function() ev(e, pr), 10, 2L), target_ms = 30, N = pr$N, R = pr$R,
                 device_MB = mem$device$current / 2^20, chunks = mem$n_chunks)
  iclv:::.engine_release(e)
}
if ("fixed" %in% cases) {
  pr <- make_problem(20, 1, 1, 2, 32) # a tiny problem: launch, copies and sync dominate
  e <- engine(pr)
  out$fixed <- c(us = 1000 * time_ms(function() ev(e, pr), 2000, 50L), target_us = 20)
  iclv:::.engine_release(e)
}
cat(sprintf("backend: %s\n", backend))
for (k in names(out)) cat(sprintf("%-6s %s\n", k, paste(names(out[[k]]), signif(out[[k]], 4), sep = " = ", collapse = ", ")))
