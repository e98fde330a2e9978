# Benchmark of a mixed-logit ICLV (issue 14): N individuals x T MNL tasks over
# J = 4 alternatives, one LV (three ordered-probit indicators, one covariate)
# entering alternative 1, and a normally distributed price coefficient
# b_price + b_sd * xi_price (a random term, iclv_model(random = )), R Halton
# draws over the LV and the random term. Data simulated by iclv_simulate().
# The utilities are written as R expressions (a sign and a comparison), which
# compile into the same terms as hand-made columns.
#
# With dist = "lognormal" the price coefficient is -exp(m_p + s_p * xi_price)
# instead (a nonlinear utility: its rest runs on the tape, src/iclv_tape.h,
# through the per-pair reference path); everything else is the same.
#
# Usage (from the repository root, with iclv installed):
#   Rscript bench/bench_mixed.R [threads] [N] [T] [R] [reps] [lib] [dist]
# Prints median elapsed and CPU ms per LL and LL + gradient and ns per
# (individual, draw) pair.
args <- commandArgs(trailingOnly = TRUE)
num <- function(i, def) if (length(args) >= i && nzchar(args[i])) as.integer(args[i]) else def
n_threads <- num(1, 1L); N <- num(2, 1000L); T <- num(3, 10L); R <- num(4, 200L); reps <- num(5, 10L)
lib <- if (length(args) >= 6 && nzchar(args[6])) args[6] else NULL
dist <- if (length(args) >= 7 && nzchar(args[7])) args[7] else "normal"
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

price <- if (dist == "lognormal") function(j) sprintf("exp(m_p + s_p * xi_price) * price_%d", j) else
  function(j) sprintf("b_price * price_%d + b_sd * xi_price * price_%d", j, j)
u <- function(j) sprintf("asc_%d - %s - b_time * time_%d", j, price(j), j)
m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
  choice = iclv_choice("mnl", "ch", list(
    a1 = paste(u(1), "+ l_att * att + b_prem * (brand_1 == 'premium')"), a2 = u(2), a3 = u(3),
    a4 = sprintf("- %s - b_time * time_4", price(4)))),
  id = "ID", categories = 4, random = "xi_price")
p <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 0, tau_q1_3 = 1, zeta_q2 = 0.8, tau_q2_1 = -1, tau_q2_2 = 0,
       tau_q2_3 = 1, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0, tau_q3_3 = 1, gamma_att_age = 0.5,
       asc_1 = 0.2, b_time = 0.5, l_att = 0.7, b_prem = 0.3, asc_2 = -0.2, asc_3 = 0.1,
       if (dist == "lognormal") c(m_p = 0, s_p = 0.5) else c(b_price = 1, b_sd = 0.5))
d <- iclv_simulate(m, p, n = N, n_tasks = T, seed = 1)
comp <- iclv:::.iclv_compile(m, d)
th <- p[comp$partable$name]
spec <- iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, length(comp$lvs))
e <- iclv:::.engine_new(comp$c, spec, "cpu", n_threads = n_threads)
time_ms <- function(f) {
  f()
  t <- vapply(seq_len(reps), function(i) {
    t0 <- proc.time(); f(); d <- proc.time() - t0
    c(d[["elapsed"]], d[["user.self"]] + d[["sys.self"]])
  }, numeric(2))
  1000 * apply(t, 1, stats::median)
}
tm <- rbind(time_ms(function() iclv:::.engine_eval(e, th, gradient = FALSE)),
            time_ms(function() iclv:::.engine_eval(e, th, gradient = TRUE)))
res <- data.frame(what = c("LL", "LL + gradient"), ms = tm[, 1], cpu_ms = tm[, 2])
res$ns_per_pair <- 1e6 * res$ms / (N * R)
cat(sprintf("mixed-logit ICLV (%s price): N = %d, T = %d, J = 4, P = %d, draw dimensions = %d (LV + random term), R = %d, threads = %d, tapes: %d\n",
            dist, N, T, comp$c$n_par, comp$c$n_lv, R, n_threads, if (is.null(comp$c$n_tape)) 0L else comp$c$n_tape))
print(format(res, digits = 4), row.names = FALSE)
cat(sprintf("load average now: %s\n", tryCatch(readLines("/proc/loadavg", 1L), error = function(e) "unknown")))
