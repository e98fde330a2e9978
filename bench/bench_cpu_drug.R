# Benchmark of the CPU engine on a drug-choice ICLV shaped like Apollo's
# example 24 (issue 17): N = 1000 individuals, T = 10 MNL tasks over 4
# alternatives, 4 five-point ordered-logit indicators of one LV that depends
# on three covariates, R Halton draws (default 100).
#
# The data are the shared drugchoice.csv, read at run time (never copied
# into the package). Dummy columns for brand, country and characteristics are
# made here; the base levels (Artemis, USA, standard) have no dummy. The LV
# enters the two branded alternatives with one coefficient, as in Apollo.
#
# Usage (from the repository root, with iclv installed):
#   Rscript bench/bench_cpu_drug.R [threads] [draws] [reps] [lib] [fit] [data]
#   fit: "fit" also times a whole iclv() fit (BFGS, then the Hessian, BHHH
#   and robust covariance matrices).
# Prints median elapsed and CPU ms per LL, LL + gradient and LL + gradient +
# Hessian, and ns per (individual, draw) pair.

args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 1L
R <- if (length(args) >= 2) as.integer(args[2]) else 100L
reps <- if (length(args) >= 3) as.integer(args[3]) else 20L
lib <- if (length(args) >= 4 && nzchar(args[4])) args[4] else NULL
do_fit <- length(args) >= 5 && args[5] == "fit"
path <- if (length(args) >= 6) args[6] else "/work/shared/data/drugchoice.csv"
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

drug_data <- function(path) {
  d <- utils::read.csv(path)
  dummy <- function(x, level) as.numeric(x == level)
  for (i in 1:4) {
    b <- d[[paste0("brand_", i)]]; cn <- d[[paste0("country_", i)]]; ch <- d[[paste0("char_", i)]]
    for (lv in c("Novum", "BestValue", "Supermarket", "PainAway"))
      d[[sprintf("br_%s_%d", lv, i)]] <- dummy(b, lv)
    for (lv in c("Switzerland", "Denmark", "India", "Russia", "Brazil"))
      d[[sprintf("co_%s_%d", lv, i)]] <- dummy(cn, lv)
    for (lv in c("fast acting", "double strength"))
      d[[sprintf("ch_%s_%d", sub(" .*", "", lv), i)]] <- dummy(ch, lv)
  }
  d
}

branded <- function(i) sprintf(paste(
  "b_novum * br_Novum_%d + b_ch * co_Switzerland_%d + b_dk * co_Denmark_%d +",
  "b_fast * ch_fast_%d + b_double * ch_double_%d + b_risk * side_effects_%d +",
  "b_price * price_%d + lambda * lv"), i, i, i, i, i, i, i)
generic <- function(i) sprintf(paste(
  "b_bestvalue * br_BestValue_%d + b_supermarket * br_Supermarket_%d + b_painaway * br_PainAway_%d +",
  "b_ind * co_India_%d + b_rus * co_Russia_%d + b_bra * co_Brazil_%d +",
  "b_fast * ch_fast_%d + b_risk * side_effects_%d + b_price * price_%d"), i, i, i, i, i, i, i, i, i)

drug_model <- function() {
  iclv_model(
    "lv =~ attitude_quality + attitude_ingredients + attitude_patent + attitude_dominance",
    structural = "lv ~ regular_user + university_educated + over_50",
    indicators = "ordered_logit",
    choice = iclv_choice("mnl", choice = "best", utilities = list(
      alt1 = branded(1), alt2 = branded(2), alt3 = generic(3), alt4 = generic(4))),
    id = "ID", categories = 5)
}

d <- drug_data(path)
model <- drug_model()
comp <- iclv:::.iclv_compile(model, d)
cm <- comp$c
# plausible parameters (Apollo example 24's estimates, rounded)
theta <- setNames(comp$partable$start, comp$partable$name)
set_if <- function(th, v) { th[intersect(names(v), names(th))] <- v[intersect(names(v), names(th))]; th }
theta <- set_if(theta, c(b_novum = 0.02, b_ch = 0.6, b_dk = 0.2, b_fast = 0.1, b_double = 0.5,
                         b_risk = -0.05, b_price = -0.9, lambda = 1.0, b_bestvalue = -0.3,
                         b_supermarket = -0.5, b_painaway = -0.8, b_ind = -0.6, b_rus = -0.5,
                         b_bra = -0.4, gamma_lv_regular_user = 0.3,
                         gamma_lv_university_educated = -0.3, gamma_lv_over_50 = 0.8))
for (ind in c("quality", "ingredients", "patent", "dominance")) {
  theta[paste0("zeta_attitude_", ind)] <- 1
  theta[paste0("tau_attitude_", ind, "_", 1:4)] <- c(-2, -1, 1, 2.5)
}
theta[is.na(theta)] <- 0
theta <- iclv:::.params_full(theta, comp$partable, "params")

spec <- iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, length(comp$lvs))
engine <- iclv:::.engine_new(cm, spec, "cpu", n_threads = n_threads)

# Each sample times a batch of calls that lasts at least 50 ms, so that
# proc.time()'s 1 ms resolution does not round an 8 ms evaluation by 6%.
time_ms <- function(f, reps) {
  t0 <- proc.time()[["elapsed"]]; f(); once <- proc.time()[["elapsed"]] - t0
  inner <- max(1L, as.integer(ceiling(0.05 / max(once, 1e-4))))
  t <- vapply(seq_len(reps), function(i) {
    t0 <- proc.time(); for (k in seq_len(inner)) f(); d <- proc.time() - t0
    c(d[["elapsed"]], d[["user.self"]] + d[["sys.self"]]) / inner
  }, numeric(2))
  1000 * apply(t, 1, stats::median)
}
pairs <- cm$n_ind * R
tm <- rbind(
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = FALSE), reps),
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = TRUE), reps),
  time_ms(function() iclv:::.engine_eval(engine, theta, gradient = TRUE, hessian = TRUE),
          max(3L, reps %/% 4L)))
res <- data.frame(what = c("LL", "LL + gradient", "LL + gradient + Hessian"),
                  ms = tm[, 1], cpu_ms = tm[, 2])
res$ns_per_pair <- 1e6 * res$ms / pairs
ll <- iclv:::.engine_eval(engine, theta, gradient = FALSE)$loglik
cat(sprintf("drug ICLV: N = %d, P = %d, K = %d, obs = %d, rows = %d, J = %d, R = %d, threads = %d\n",
            cm$n_ind, cm$n_par, cm$n_lv, cm$n_obs, cm$n_rows, cm$n_alt, R, n_threads))
cat(sprintf("library: %s, LL = %.8f\n", if (is.null(lib)) "default" else lib, ll))
print(format(res, digits = 4), row.names = FALSE)
cat(sprintf("Hessian / (LL + gradient) = %.2f\n", res$ms[3] / res$ms[2]))

if (do_fit) {
  t0 <- proc.time()[["elapsed"]]
  fit <- iclv(model, d, draws = iclv_draws("halton", R), backend = "cpu",
              control = iclv_control(n_threads = n_threads))
  secs <- proc.time()[["elapsed"]] - t0
  cat(sprintf("whole fit (BFGS + Hessian, BHHH, robust SEs): %.2f s, LL = %.6f, iterations = %d, evaluations = %d\n",
              secs, fit$loglik, fit$convergence$iterations, fit$convergence$evaluations))
}
cat(sprintf("load average now: %s\n", tryCatch(readLines("/proc/loadavg", 1L), error = function(e) "unknown")))
