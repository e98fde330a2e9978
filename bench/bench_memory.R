# Memory: iclv_memory_plan() against what is measured, on the CPU.
#
# Two cases:
#   seed   the seed problem (N = 326, 18 tasks, 5 LVs, 38 indicators,
#          P = 202), R = 100 Halton draws;
#   large  a small model (1 LV, 3 ordered-probit indicators, MNL with 3
#          alternatives, P = 14) on N = 20,000 individuals x 4 tasks, R = 200.
# For each: the plan (host bytes by buffer), then an engine is created and
# evaluated (3 x LL + gradient, 1 x scores, 1 x Hessian) and we measure
#   - the engine's own account (.engine_memory(): buffers, peak),
#   - the process: resident set growth over the case, and its high-water mark
#     (VmHWM, reset per case through /proc/self/clear_refs where allowed),
#   - for the seed problem also a short fit (maxit = 3): fit$memory.
# The plan covers the package's buffers (compiled data, engine workspaces,
# outputs of one evaluation); the process also holds R, the data, and the
# temporaries of compiling the data, which no plan of the engine can see.
#
# Usage (repository root, iclv installed):
#   OMP_NUM_THREADS=2 Rscript bench/bench_memory.R [threads] [lib]

args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 2L
lib <- if (length(args) >= 2 && nzchar(args[2])) args[2] else NULL
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

mib <- function(b) sprintf("%.2f", b / 2^20)
proc_mem <- function() {
  invisible(gc(full = TRUE))
  iclv:::.process_peak_bytes()
}
reset_hwm <- function() {
  isTRUE(tryCatch({
    writeLines("5", "/proc/self/clear_refs")
    TRUE
  }, error = function(e) FALSE, warning = function(w) FALSE))
}

# the small one-LV MNL model of the tests (one definition)
source(file.path("tests", "testthat", "helper-models.R"))
mnl_model <- function() one_lv_mnl_model()
mnl_truth <- one_lv_mnl_truth

run_case <- function(label, model, data, draws, fit = FALSE) {
  cat(sprintf("\n== %s: N = %d individuals, %d rows, R = %d draws\n", label, length(unique(data$ID)),
              nrow(data), draws$n))
  base <- proc_mem()
  hwm_ok <- reset_hwm()
  t0 <- proc.time()[["elapsed"]]
  plan <- iclv_memory_plan(model, data, draws, backend = "cpu", n_threads = n_threads)
  t_plan <- proc.time()[["elapsed"]] - t0
  comp <- iclv:::.iclv_compile(model, data)
  spec <- iclv:::.draws_spec(draws, comp$n_ind, length(comp$lvs))
  after_compile <- proc_mem()
  e <- iclv:::.engine_new(comp$c, spec, n_threads = n_threads)
  th <- comp$partable$start
  t1 <- proc.time()[["elapsed"]]
  for (i in 1:3) ev <- iclv:::.engine_eval(e, th, gradient = TRUE)
  t_grad <- (proc.time()[["elapsed"]] - t1) / 3
  ev <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE)
  t2 <- proc.time()[["elapsed"]]
  ev <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
  t_hess <- proc.time()[["elapsed"]] - t2
  acct <- iclv:::.engine_memory(e)$host
  after <- proc_mem()
  b <- plan$buffers
  eng_names <- names(acct$buffers)
  planned_engine <- sum(b$bytes[b$buffer %in% eng_names])
  cat(sprintf("plan: %s (%.2f s); LL+gradient %.3f s, with Hessian %.3f s\n", plan$verdict, t_plan,
              t_grad, t_hess))
  buf <- data.frame(buffer = eng_names, planned = b$bytes[match(eng_names, b$buffer)],
                    measured = unname(acct$buffers))
  buf$ratio <- sprintf("%.3f", buf$planned / buf$measured)
  buf$planned <- format(buf$planned, big.mark = ",")
  buf$measured <- format(buf$measured, big.mark = ",")
  print(buf, row.names = FALSE, right = TRUE)
  out <- data.frame(
    case = label,
    planned_engine = mib(planned_engine),
    engine_peak = mib(acct$peak),
    planned_host = mib(plan$total_host),
    rss_compile = mib(after_compile[["current"]] - base[["current"]]),
    rss_engine_evals = mib(after[["current"]] - after_compile[["current"]]),
    hwm_over_start = if (hwm_ok) mib(after[["peak"]] - base[["current"]]) else NA,
    process_hwm = mib(after[["peak"]]),
    stringsAsFactors = FALSE)
  iclv:::.engine_release(e)
  out$fit_host_peak <- NA
  if (fit) {
    f <- suppressWarnings(iclv(model, data, draws = draws, backend = "cpu",
                               control = iclv_control(maxit = 3, n_threads = n_threads)))
    m <- f$memory
    cat(sprintf("fit (maxit = 3): fit$memory$host_peak = %s MiB, process_peak = %s MiB, %d buffers\n",
                mib(m$host_peak), mib(m$process_peak), length(m$buffers)))
    out$fit_host_peak <- mib(m$host_peak)
  }
  out
}

# Each case runs in its own R process, so that one case's heap does not
# hide (or inflate) the next one's resident-set growth.
case <- if (length(args) >= 3) args[3] else NULL
if (!is.null(case)) {
  res <- if (case == "seed") {
    sp <- iclv_seed_problem()
    run_case("seed", sp$model, sp$data, iclv_draws("halton", 100), fit = TRUE)
  } else {
    big <- iclv_simulate(mnl_model(), mnl_truth, n = 20000, n_tasks = 4, seed = 1)
    run_case("large", mnl_model(), big, iclv_draws("halton", 200))
  }
  saveRDS(res, args[4])
  quit(status = 0)
}

cat(sprintf("iclv memory benchmark: %d CPU thread(s), each case in a fresh R process\n", n_threads))
me <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
res <- lapply(c("seed", "large"), function(cs) {
  f <- tempfile(fileext = ".rds")
  rc <- system2(file.path(R.home("bin"), "Rscript"),
                c(shQuote(me), n_threads, shQuote(if (is.null(lib)) "" else lib), cs, shQuote(f)))
  if (rc != 0 || !file.exists(f)) stop("case ", cs, " failed")
  readRDS(f)
})
cat("\n== summary (MiB)\n")
print(do.call(rbind, res), row.names = FALSE)
cat("planned_engine: the plan's CPU-engine buffers; engine_peak: the engine's own account;\n",
    "planned_host: all the plan counts (compiled data, engine, one evaluation's outputs);\n",
    "rss_compile: resident-set growth from compiling the data (R temporaries; not planned);\n",
    "rss_engine_evals: growth from creating the engine and 5 evaluations (after gc);\n",
    "hwm_over_start: high-water mark over the case minus the resident set before it;\n",
    "process_hwm: VmHWM of the case's process; fit_host_peak: fit$memory$host_peak (maxit = 3).\n",
    sep = "")
