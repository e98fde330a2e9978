# Cost of the identification check before estimating (R/identify.R, issue
# 15): the check against one LL + gradient evaluation and against a whole
# fit, on the seed problem (N = 326, 18 tasks, 202 free parameters, 5 LVs)
# and on the small one-LV MNL model of the tests (N = 300, 14 parameters).
# Times are process CPU seconds (the machine is shared), medians of
# `reps` runs; the fit is timed with the check on and off.
#
# Usage (repository root):
#   OMP_NUM_THREADS=1 Rscript bench/bench_identify.R [lib] [reps=3] [R_seed=100]

args <- commandArgs(trailingOnly = TRUE)
lib <- if (length(args) >= 1 && nzchar(args[1])) args[1] else NULL
reps <- if (length(args) >= 2) as.integer(args[2]) else 3L
R_seed <- if (length(args) >= 3) as.integer(args[3]) else 100L
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
ns <- asNamespace("iclv")

cpu <- function(expr) {
  t0 <- proc.time()
  force(expr)
  t <- proc.time() - t0
  t[["user.self"]] + t[["sys.self"]]
}
med <- function(f) stats::median(vapply(seq_len(reps), function(i) cpu(f()), numeric(1)))

one <- function(label, model, data, draws, fit = TRUE) {
  prob <- ns$.iclv_problem(model, data, draws)
  engine <- ns$.engine_new(prob$comp$c, prob$spec, "cpu", n_threads = 1L)
  on.exit(ns$.engine_release(engine))
  t_grad <- med(function() ns$.engine_eval(engine, prob$theta0, gradient = TRUE))
  t_check <- med(function() ns$.identification_precheck(prob, engine))
  cat(sprintf("%-10s N = %d, free = %d, R = %d: LL + gradient %.3f s, check %.3f s (%.1f evaluations)\n",
              label, prob$comp$n_ind, length(prob$free), prob$spec$n_draws, t_grad, t_check, t_check / t_grad))
  if (fit) {
    ctl <- function(on) iclv_control(n_threads = 1, check_identification = on)
    t_on <- med(function() suppressWarnings(iclv(model, data, draws = draws, backend = "cpu", control = ctl(TRUE))))
    t_off <- med(function() suppressWarnings(iclv(model, data, draws = draws, backend = "cpu", control = ctl(FALSE))))
    cat(sprintf("%-10s whole fit: %.2f s with the check, %.2f s without (%+.1f%%)\n", label, t_on, t_off,
                100 * (t_on - t_off) / t_off))
  }
}

m1 <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
  choice = iclv_choice("mnl", choice = "ch", utilities = list(
    a = "asc_a + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
  id = "ID", categories = 3)
p1 <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
        zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5, asc_a = 0.2, b_price = -1,
        l_att = 0.7, asc_b = -0.3)
d1 <- iclv_simulate(m1, p1, n = 300, n_tasks = 4, seed = 1)
one("small", m1, d1, iclv_draws("halton", 100, seed = 1))
sp <- iclv_seed_problem()
one("seed", sp$model, sp$data, iclv_draws("halton", R_seed, seed = 1), fit = FALSE)
