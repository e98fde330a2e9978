# Delay from Ctrl-C (SIGINT) to the return of an interrupted Hessian
# evaluation on the seed problem (N = 326, 18 tasks, 5 LVs, 38 indicators,
# 202 parameters), issue 12. The engine polls for an interrupt between
# batches of individuals (one OpenMP region each; B = 4 x threads
# individuals per Hessian block), so the delay is at most one batch.
#
# Usage (from the repository root, with iclv installed; Unix only):
#   Rscript bench/bench_interrupt.R [threads] [draws] [reps] [lib]
# Each repetition starts a fresh Rscript child that builds the engine and
# starts LL + gradient + Hessian; this process sends SIGINT (kill -INT)
# `wait` = 1 s after the child says it has started, and the child records
# when the .Call returned. Prints one line per repetition and the median and
# largest delay (wall clock, same machine). Goal: under 1 s.

args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 1L
R <- if (length(args) >= 2) as.integer(args[2]) else 500L
reps <- if (length(args) >= 3) as.integer(args[3]) else 5L
lib <- if (length(args) >= 4) args[4] else dirname(find.package("iclv"))
wait <- 1

dir <- tempfile("iclv_bench_interrupt")
dir.create(dir)
child <- file.path(dir, "child.R")
writeLines(c(
  sprintf("suppressPackageStartupMessages(library(iclv, lib.loc = %s))", deparse(lib)),
  "sp <- iclv_seed_problem()",
  "comp <- iclv:::.iclv_compile(sp$model, sp$data)",
  "theta <- iclv:::.params_full(sp$params, comp$partable, 'params')",
  sprintf("spec <- iclv:::.draws_spec(iclv_draws('halton', %dL), comp$n_ind, length(comp$lvs))", R),
  sprintf("e <- iclv:::.engine_new(comp$c, spec, 'cpu', n_threads = %dL)", n_threads),
  "t0 <- as.numeric(Sys.time())",
  "writeLines(c(Sys.getpid(), 'START'), 'pid.txt')",
  "r <- tryCatch(iclv:::.engine_eval(e, theta, hessian = TRUE),",
  "  iclv_error_interrupted = function(c) 'interrupted', interrupt = function(c) 'plain_interrupt')",
  "t1 <- as.numeric(Sys.time())",
  "cat(if (is.character(r)) r else 'completed', format(t0, digits = 16), format(t1, digits = 16), '\\n')"
), child)

one <- function(i) {
  out <- file.path(dir, sprintf("out%d.txt", i))
  unlink(file.path(dir, "pid.txt"))
  old <- setwd(dir)
  on.exit(setwd(old))
  system2("Rscript", c("--vanilla", shQuote(child)), stdout = out, stderr = FALSE, wait = FALSE,
          env = sprintf("OMP_NUM_THREADS=%d", n_threads))
  repeat {
    if (file.exists("pid.txt") && length(readLines("pid.txt", warn = FALSE)) == 2L) break
    Sys.sleep(0.05)
  }
  pid <- readLines("pid.txt")[1]
  Sys.sleep(wait)
  t_sig <- as.numeric(Sys.time())
  system2("kill", c("-INT", pid))
  repeat {
    res <- if (file.exists(out)) readLines(out, warn = FALSE) else character()
    if (length(res) && grepl("(interrupted|plain_interrupt|completed)", res[length(res)])) break
    Sys.sleep(0.02)
  }
  f <- strsplit(trimws(res[length(res)]), " +")[[1]]
  data.frame(rep = i, outcome = f[1], started_to_signal_s = t_sig - as.numeric(f[2]),
             signal_to_return_s = as.numeric(f[3]) - t_sig)
}

res <- do.call(rbind, lapply(seq_len(reps), one))
cat(sprintf("seed problem, R = %d draws, %d thread(s), SIGINT %g s after the Hessian started\n",
            R, n_threads, wait))
print(res, digits = 3, row.names = FALSE)
cat(sprintf("delay from SIGINT to return: median %.3f s, max %.3f s\n",
            stats::median(res$signal_to_return_s), max(res$signal_to_return_s)))
unlink(dir, recursive = TRUE)
