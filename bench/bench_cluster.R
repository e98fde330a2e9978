# The cluster engine (R/cluster.R) on this machine: one process with one
# thread against a local PSOCK cluster of W workers with one thread each.
#
#   large  the one-LV MNL model of the tests (3 ordered-probit indicators,
#          MNL with 3 alternatives, P = 14) on N individuals x 4 tasks with
#          R Halton draws: N * R >= 1e6 (individual, draw) pairs by default;
#          median elapsed seconds per LL and per LL + gradient, and the
#          speed-up (one process / cluster); also the CPU seconds per
#          evaluation of the one process and of the busiest worker, whose
#          ratio is the speed-up the work allows when cores are free.
#   ceiling the engines of the shards timed inside the workers, one at a
#          time and all at once: the speed-up the machine allows without
#          any transport (see below).
#   tiny   the same model on 20 individuals x 5 draws: the cost of a round
#          trip through the cluster (the parameters out, LL and scores
#          back) against one process's evaluation of the same problem.
# Before timing, the cluster's LL and gradient are checked to be identical
# to one process's.
#
# Usage (repository root, iclv installed):
#   OMP_NUM_THREADS=1 Rscript bench/bench_cluster.R [workers=2] [N=5000] [R=200] [reps=7] [lib] [socket]
# socket: "no-delay" (default) makes the cluster's sockets with TCP_NODELAY on
# both ends (options(socketOptions = "no-delay") on the master, and on the
# workers through rscript_args); "default" uses R's default sockets, whose
# answers over 4 KB wait ~40 ms for the master's delayed ACK (Nagle).
# Run when the machine is otherwise idle: the workers compete with every
# other process for the cores (the load average is printed before and after).

args <- commandArgs(trailingOnly = TRUE)
W <- if (length(args) >= 1) as.integer(args[1]) else 2L
N <- if (length(args) >= 2) as.integer(args[2]) else 5000L
R <- if (length(args) >= 3) as.integer(args[3]) else 200L
reps <- if (length(args) >= 4) as.integer(args[4]) else 7L
lib <- if (length(args) >= 5 && nzchar(args[5])) args[5] else NULL
socket <- if (length(args) >= 6) args[6] else "no-delay"
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
library(parallel)

source(file.path("tests", "testthat", "helper-models.R")) # one_lv_mnl_model()
loadavg <- function() tryCatch(readLines("/proc/loadavg", 1L), error = function(e) "unknown")
cat(sprintf("load average before: %s\n", loadavg()))

# median over reps of the elapsed seconds per call, each rep timing k calls
# (k > 1 for calls shorter than the clock's millisecond)
median_s <- function(f, reps, k = 1L) {
  f() # warm-up
  stats::median(vapply(seq_len(reps), function(i) {
    t0 <- proc.time()[["elapsed"]]
    for (j in seq_len(k)) f()
    (proc.time()[["elapsed"]] - t0) / k
  }, 1))
}

setup <- function(n, draws, cl = NULL) {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = n, n_tasks = 4, seed = 1)
  comp <- iclv:::.iclv_compile(m, d)
  spec <- iclv:::.draws_spec(iclv_draws("halton", draws), comp$n_ind, 1L)
  list(comp = comp, spec = spec, theta = iclv:::.params_full(one_lv_mnl_truth, comp$partable))
}

cl <- if (socket == "no-delay") {
  options(socketOptions = "no-delay")
  makePSOCKcluster(W, rscript_args = c("-e", shQuote("options(socketOptions = 'no-delay')")))
} else {
  makePSOCKcluster(W)
}
cat(sprintf("cluster sockets: %s\n", socket))
on.exit(stopCluster(cl), add = TRUE)

# CPU seconds (user + system) of this process and of each worker
cpu_self <- function() sum(proc.time()[c("user.self", "sys.self")])
cpu_workers <- function() unlist(clusterCall(cl, function() sum(proc.time()[c("user.self", "sys.self")])))

# columns: median elapsed s one process, cluster; CPU s per evaluation of
# the one process and of the busiest worker (load-independent work)
time_pair <- function(pb, reps, k = 1L) {
  one <- iclv:::.engine_new(pb$comp$c, pb$spec, "cpu", n_threads = 1)
  many <- iclv:::.engine_new(pb$comp$c, pb$spec, "cpu", n_threads = 1, cluster = cl)
  a <- iclv:::.engine_eval(one, pb$theta)
  b <- iclv:::.engine_eval(many, pb$theta)
  stopifnot(identical(a$loglik, b$loglik), identical(a$gradient, b$gradient))
  row <- function(g) {
    c0 <- cpu_self()
    t1 <- median_s(function() iclv:::.engine_eval(one, pb$theta, gradient = g), reps, k)
    c1 <- cpu_self()
    w0 <- cpu_workers()
    t2 <- median_s(function() iclv:::.engine_eval(many, pb$theta, gradient = g), reps, k)
    w1 <- cpu_workers()
    n_calls <- reps * k + 1
    c(t1, t2, (c1 - c0) / n_calls, max(w1 - w0) / n_calls)
  }
  out <- rbind(row(FALSE), row(TRUE))
  iclv:::.engine_release(many)
  iclv:::.engine_release(one)
  out
}

big <- setup(N, R)
tb <- time_pair(big, reps)
cat(sprintf("\nlarge: N = %d individuals x %d draws = %.3g pairs, P = %d, %d workers x 1 thread vs 1 process x 1 thread\n",
            N, R, as.double(N) * R, big$comp$c$n_par, W))
res <- data.frame(what = c("LL", "LL + gradient"), one_process_s = tb[, 1], cluster_s = tb[, 2],
                  speed_up = tb[, 1] / tb[, 2], one_process_cpu_s = tb[, 3],
                  busiest_worker_cpu_s = tb[, 4], cpu_ratio = tb[, 3] / tb[, 4])
print(format(res, digits = 4), row.names = FALSE)

# The machine's own ceiling, without iclv's transport: each worker builds
# the engine of its shard and times k LL evaluations inside itself, first
# one worker at a time (solo), then all at once (clusterApply sends to every
# worker before it waits). The one-process time over the slowest concurrent
# worker is the speed-up this machine allows for this work; concurrent over
# solo is how much two processes slow each other down (shared cores, caches
# or memory bandwidth of the VM's host), which no transport can remove.
shard_time <- function(s, cc, spec, theta, k) {
  e <- iclv:::.engine_new(cc, spec, "cpu", n_threads = 1)
  on.exit(iclv:::.engine_release(e))
  iclv:::.engine_eval(e, theta, gradient = FALSE)
  t0 <- proc.time()[["elapsed"]]
  for (i in seq_len(k)) iclv:::.engine_eval(e, theta, gradient = FALSE)
  (proc.time()[["elapsed"]] - t0) / k
}
sh <- iclv:::.cluster_shards(big$comp$c, W)
slices <- lapply(seq_len(W), function(s) list(
  cc = iclv:::.compiled_slice(big$comp$c, sh$first[s], sh$last[s]),
  spec = iclv:::.draws_spec_slice(big$spec, sh$first[s], sh$last[s])))
k <- max(3L, reps)
solo <- vapply(seq_len(W), function(s) {
  clusterCall(cl[s], shard_time, s, slices[[s]]$cc, slices[[s]]$spec, big$theta, k)[[1]]
}, 1)
together <- unlist(clusterApply(cl, seq_len(W), function(s, sl, theta, k, f) f(s, sl[[s]]$cc, sl[[s]]$spec, theta, k),
                                slices, big$theta, k, shard_time))
one_ll <- tb[1, 1]
cat(sprintf("\nceiling (engines only, no transport), LL: one process %.3f s; workers solo %s s; together %s s\n",
            one_ll, paste(sprintf("%.3f", solo), collapse = " / "), paste(sprintf("%.3f", together), collapse = " / ")))
cat(sprintf("speed-up this machine allows: %.2f (one process / slowest concurrent worker); slow-down of running together: %.2f\n",
            one_ll / max(together), max(together / solo)))

tiny <- setup(20L, 5L)
tt <- time_pair(tiny, 15L, k = 40L)
cat(sprintf("\ntiny: N = 20 x 5 draws, P = %d: per-evaluation overhead of the cluster (round trip)\n",
            tiny$comp$c$n_par))
res2 <- data.frame(what = c("LL", "LL + gradient"), one_process_ms = 1000 * tt[, 1],
                   cluster_ms = 1000 * tt[, 2], overhead_ms = 1000 * (tt[, 2] - tt[, 1]),
                   busiest_worker_cpu_ms = 1000 * tt[, 4])
res2[-1] <- lapply(res2[-1], function(x) sprintf("%.3f", x))
print(res2, row.names = FALSE)
cat(sprintf("\nload average after: %s\n", loadavg()))
