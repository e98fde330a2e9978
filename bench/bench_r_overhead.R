# Per-evaluation R overhead: the time an evaluation spends in R between the
# optimizer and the engine's .Call (issue 13). Two measures:
#
#  1. micro: on a small problem, K calls of the objective the optimizer
#     calls (free unconstrained parameters in, LL and derivatives in those
#     parameters out) against K bare .engine_eval() calls at the same point;
#     overhead = (objective - bare) / K. Rounds alternate; the minimum of the
#     rounds of process CPU time is reported (the machine is shared: elapsed
#     times there measure the other sessions).
#  2. profile: Rprof (CPU-time samples, 1 ms) of a whole small fit: the share
#     of the optimizer's samples that are not inside .Call (R's own work:
#     wrappers, transform, line search, BFGS algebra).
#
# Works with the code before issue 13 (the objective is rebuilt here from the
# lines of iclv() at b1f00ce) and after it (.iclv_problem()).
#
# Usage (repository root):
#   OMP_NUM_THREADS=1 Rscript bench/bench_r_overhead.R [lib] [K=400] [rounds=5] [full]
# With `full`, also the default seed problem (N = 326, 18 tasks, R = 100,
# 202 free parameters), one BFGS fit with the default controls: its process
# CPU time and fit$timing's split.

args <- commandArgs(trailingOnly = TRUE)
lib <- if (length(args) >= 1 && nzchar(args[1])) args[1] else NULL
K <- if (length(args) >= 2) as.integer(args[2]) else 400L
rounds <- if (length(args) >= 3) as.integer(args[3]) else 5L
full <- length(args) >= 4 && identical(args[4], "full")
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
ns <- asNamespace("iclv")
new_code <- exists(".iclv_problem", envir = ns, inherits = FALSE)

objective <- function(model, data, draws) {
  if (new_code) {
    prob <- ns$.iclv_problem(model, data, draws)
    engine <- ns$.engine_new(prob$comp$c, prob$spec, "cpu", n_threads = 1L)
    fn <- ns$.problem_objective(prob, engine)
    return(list(fn = fn, engine = engine, theta = prob$theta0, u = ns$.to_internal(prob$theta0, prob$tr)))
  }
  # b1f00ce: iclv()'s evaluate() and fn(), line for line
  comp <- ns$.iclv_compile(model, data)
  pt <- comp$partable
  theta0 <- stats::setNames(as.double(pt$start), pt$name)
  spec <- ns$.draws_spec(draws, comp$n_ind, length(comp$lvs), comp$lvs)
  engine <- ns$.engine_new(comp$c, spec, "cpu", n_threads = 1L)
  free <- which(pt$free)
  timer <- new.env(parent = emptyenv())
  timer$seconds <- 0
  timer$n <- 0L
  evaluate <- function(theta, gradient = TRUE, scores = FALSE, hessian = FALSE) {
    t0 <- proc.time()[["elapsed"]]
    ev <- ns$.engine_eval(engine, theta, gradient = gradient, scores = scores, hessian = hessian)
    timer$seconds <- timer$seconds + (proc.time()[["elapsed"]] - t0)
    timer$n <- timer$n + 1L
    ev
  }
  tr <- ns$.transform_new(pt$name, theta0, pt$free, comp$thresholds, comp$positive)
  fn <- function(u, scores = FALSE, hessian = FALSE) {
    theta <- ns$.to_natural(u, tr)
    ev <- evaluate(theta, gradient = TRUE, scores = scores, hessian = hessian)
    d <- ns$.transform_derivs(u, tr, ev$gradient[free],
                              if (scores) ev$scores[, free, drop = FALSE],
                              if (hessian) ev$hessian[free, free, drop = FALSE])
    list(loglik = ev$loglik, gradient = d$gradient, scores = d$scores, hessian = d$hessian)
  }
  list(fn = fn, engine = engine, theta = theta0, u = ns$.to_internal(theta0, tr))
}

micro <- function(label, model, data, draws) {
  ob <- objective(model, data, draws)
  on.exit(ns$.engine_release(ob$engine))
  theta <- ob$theta
  bare <- function() for (k in seq_len(K)) ns$.engine_eval(ob$engine, theta, gradient = TRUE)
  wrap <- function() for (k in seq_len(K)) ob$fn(ob$u)
  bare_s <- function() for (k in seq_len(K)) ns$.engine_eval(ob$engine, theta, gradient = TRUE, scores = TRUE)
  wrap_s <- function() for (k in seq_len(K)) ob$fn(ob$u, scores = TRUE)
  tm <- function(f) { gc(FALSE); st <- system.time(f()); st[["user.self"]] + st[["sys.self"]] } # CPU time
  r <- replicate(rounds, c(tm(bare), tm(wrap), tm(bare_s), tm(wrap_s)))
  b <- apply(r, 1, min) / K * 1e6
  cat(sprintf("%-34s P_free = %3d  bare %8.1f us  objective %8.1f us  overhead %7.1f us (%4.1f%%) | with scores: bare %8.1f  objective %8.1f  overhead %7.1f us\n",
              label, length(ob$u), b[1], b[2], b[2] - b[1], 100 * (b[2] - b[1]) / b[2],
              b[3], b[4], b[4] - b[3]))
}

cat(sprintf("iclv %s, %s code, K = %d evaluations per round, min of %d rounds, OMP_NUM_THREADS = %s\n",
            utils::packageVersion("iclv", lib.loc = lib), if (new_code) "problem-object" else "old",
            K, rounds, Sys.getenv("OMP_NUM_THREADS", "unset")))
sp <- iclv_seed_problem(n = 30, n_tasks = 2, seed = 1)
micro("seed problem N=30 T=2 R=5", sp$model, sp$data, iclv_draws("halton", 5, seed = 1))
m2 <- iclv_model("att =~ q1 + q2 + q3",
  structural = "att ~ age",
  choice = iclv_choice("probit", choice = "buy",
    utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
  id = "ID", categories = 3)
p2 <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2, tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5,
        tau_q2_2 = 0.8, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5, asc = 0.2, b_price = -1,
        l_att = 0.7)
d2 <- iclv_simulate(m2, p2, n = 150, n_tasks = 4, seed = 1)
micro("?iclv example N=150 T=4 R=5", m2, d2, iclv_draws("halton", 5, seed = 1))

# ---- a whole small fit ---------------------------------------------------------
# The process CPU time of iclv() (min of 5), and its split as iclv() reports
# it (fit$timing, elapsed): the optimizer's time and the engine's part of it.
# Both builds follow the same trajectory (same evaluations), so a difference
# in CPU time is R's.
sp2 <- iclv_seed_problem(n = 60, n_tasks = 4, seed = 1)
one_fit <- function() {
  gc(FALSE)
  t <- system.time(f <- suppressWarnings(
    iclv(sp2$model, sp2$data, draws = iclv_draws("halton", 10, seed = 1), backend = "cpu",
         control = iclv_control(n_threads = 1, hessian = FALSE, vcov = "bhhh"))))
  list(cpu = t[["user.self"]] + t[["sys.self"]], fit = f)
}
fits <- lapply(seq_len(5), function(i) one_fit())
cpu <- vapply(fits, `[[`, 1, "cpu")
fit <- fits[[which.min(cpu)]]$fit
ev <- fit$timing$evaluations
cat(sprintf(paste0("whole fit, seed problem N=60 T=4 R=10 (P_free %d), BFGS, no Hessian: %d iterations, %d evaluations; ",
                   "iclv() CPU %.3f s (min of 5; median %.3f); elapsed split of that fit: optimizer %.3f s, engine %.3f s, ",
                   "R %.0f%%\n"),
            fit$n_params, fit$convergence$iterations, ev, min(cpu), stats::median(cpu), fit$timing$optimizer,
            fit$timing$per_evaluation * ev, 100 * (1 - fit$timing$per_evaluation * ev / fit$timing$optimizer)))

if (full) {
  sp3 <- iclv_seed_problem()
  gc(FALSE)
  t <- system.time(f <- iclv(sp3$model, sp3$data, draws = iclv_draws("halton", 100, seed = 1), backend = "cpu",
                             control = iclv_control(n_threads = 1)))
  ev <- f$timing$evaluations
  cat(sprintf(paste0("full seed problem N=326 T=18 R=100 (P_free %d), BFGS + Hessian check: %d iterations, %d evaluations, ",
                     "LL %.10f; iclv() CPU %.2f s (elapsed %.2f); optimizer %.2f s elapsed, engine %.2f s, R %.0f%%\n"),
              f$n_params, f$convergence$iterations, ev, f$loglik, t[["user.self"]] + t[["sys.self"]], t[["elapsed"]],
              f$timing$optimizer, f$timing$per_evaluation * ev,
              100 * (1 - f$timing$per_evaluation * ev / f$timing$optimizer)))
}
