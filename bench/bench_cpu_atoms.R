# Benchmark of the CPU engine on choice models whose rows have no hoisted
# form and go through the choice atoms (src/engine_fast.c, fd->ref_choice;
# issue 17): the drug-choice ICLV of bench/bench_cpu_drug.R (N = 1000, four
# ordered-logit indicators of one LV with three covariates, T = 10 tasks over
# 4 alternatives, R Halton draws) with
#   lvx:  the MNL with the LV also interacting with price in the branded
#         alternatives (lambda_p lv price: LV coefficients that differ
#         between rows, explicit MNL rows);
#   nl:   a nested logit, the branded (1, 2) and generic (3, 4) alternatives
#         in two nests;
#   tape: the MNL with a Box-Cox price term b_price (price ^ lam_p - 1) /
#         lam_p (a nonlinear utility: a tape per alternative);
#   logn: the MNL with a lognormal price coefficient, -exp(m_p + s_p xi)
#         price (xi a random term: a tape that reads a draw, run per draw);
#   ord:  an ordered probit of alternative 1's rank in the task (1 best ..
#         4 worst; its branded utility as the index, 3 thresholds);
#   bw:   the MNL's best and worst choices, the worst's utilities scaled by
#         -mu_w (best-worst: row multipliers, whose Hessian pass goes through
#         the atoms).
# Prints, per variant, median elapsed ms per LL + gradient and LL + gradient
# + Hessian, and ns per (individual, draw) pair. Run it with two libraries
# in turn to compare engines (bench/RESULTS.md).
#
# Usage (from the repository root, with iclv installed):
#   Rscript bench/bench_cpu_atoms.R [threads] [draws] [reps] [lib] [data] [fit] [variants] [maxit]
#   fit: "fit" also times a whole iclv() fit of each variant (BFGS, then the
#   Hessian, BHHH and robust covariance matrices); variants: a comma-separated
#   subset of the names below (default all); maxit: the fit's iteration limit
#   (default 200, iclv_control()'s).
args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 1L
R <- if (length(args) >= 2) as.integer(args[2]) else 100L
reps <- if (length(args) >= 3) as.integer(args[3]) else 10L
lib <- if (length(args) >= 4 && nzchar(args[4])) args[4] else NULL
path <- if (length(args) >= 5 && nzchar(args[5])) args[5] else "/work/shared/data/drugchoice.csv"
do_fit <- length(args) >= 6 && args[6] == "fit"
only <- if (length(args) >= 7 && nzchar(args[7])) strsplit(args[7], ",")[[1]] else NULL
maxit <- if (length(args) >= 8) as.integer(args[8]) else 200L
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

# drug_data(), branded(), generic(): bench_cpu_drug.R's model
source(file.path("bench", "drug_defs.R"))

d <- drug_data(path)
d$rank_1 <- ifelse(d$best == 1, 1L, ifelse(d$second_pref == 1, 2L, ifelse(d$third_pref == 1, 3L, 4L)))
lognormal <- function(u) sub("b_price \\* price_([0-9])", "- exp(m_p + s_p * xi) * price_\\1", u)
boxcox <- function(u) sub("b_price \\* price_([0-9])", "b_price * (price_\\1 ^ lam_p - 1) / lam_p", u)
utils4 <- function(f = identity) list(alt1 = f(branded(1)), alt2 = f(branded(2)),
                                      alt3 = f(generic(3)), alt4 = f(generic(4)))
lvprice <- function(u) sub("lambda \\* lv", "lambda * lv + lambda_p * lv * price_1", u)
choices <- list(
  lvx = iclv_choice("mnl", choice = "best", utilities = list(
    alt1 = lvprice(branded(1)), alt2 = sub("price_1", "price_2", lvprice(branded(2))),
    alt3 = generic(3), alt4 = generic(4))),
  nl = iclv_choice("nl", choice = "best", utilities = utils4(),
                   nests = list(branded = c("alt1", "alt2"), generic = c("alt3", "alt4"))),
  tape = iclv_choice("mnl", choice = "best", utilities = utils4(boxcox)),
  logn = iclv_choice("mnl", choice = "best", utilities = utils4(lognormal)),
  ord = iclv_choice("ordered", choice = "rank_1", utilities = list(index = branded(1)), categories = 4L),
  bw = iclv_choice("bestworst", choice = c("best", "worst"), utilities = utils4(), worst_scale = "mu_w"))

time_ms <- function(f, reps) {
  f()
  stats::median(vapply(seq_len(reps), function(i) {
    t0 <- proc.time()[["elapsed"]]; f(); proc.time()[["elapsed"]] - t0
  }, numeric(1))) * 1000
}
vals <- c(b_novum = 0.02, b_ch = 0.6, b_dk = 0.2, b_fast = 0.1, b_double = 0.5, b_risk = -0.05,
          b_price = -0.9, lambda = 1.0, b_bestvalue = -0.3, b_supermarket = -0.5, b_painaway = -0.8,
          b_ind = -0.6, b_rus = -0.5, b_bra = -0.4, gamma_lv_regular_user = 0.3,
          gamma_lv_university_educated = -0.3, gamma_lv_over_50 = 0.8, lambda_branded = 0.7,
          lambda_generic = 0.8, lam_p = 0.5, mu_w = 0.8, m_p = -0.2, s_p = 0.3, lambda_p = -0.1)
cat(sprintf("library: %s, N = %d, R = %d, threads = %d\n", if (is.null(lib)) "default" else lib,
            length(unique(d$ID)), R, n_threads))
for (v in if (is.null(only)) names(choices) else only) {
  model <- iclv_model(
    "lv =~ attitude_quality + attitude_ingredients + attitude_patent + attitude_dominance",
    structural = "lv ~ regular_user + university_educated + over_50",
    indicators = "ordered_logit", choice = choices[[v]], id = "ID", categories = 5,
    random = if (v == "logn") "xi" else NULL)
  comp <- iclv:::.iclv_compile(model, d)
  th <- stats::setNames(comp$partable$start, comp$partable$name)
  hit <- intersect(names(vals), names(th))
  th[hit] <- vals[hit]
  for (ind in c("quality", "ingredients", "patent", "dominance"))
    th[paste0("tau_attitude_", ind, "_", 1:4)] <- c(-2, -1, 1, 2.5)
  thr <- grep("^tau_rank_1_", names(th))
  if (length(thr)) th[thr] <- c(-1, 0, 1)
  th[is.na(th)] <- 0
  th <- iclv:::.params_full(th, comp$partable, "params")
  spec <- iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, length(comp$lvs))
  e <- iclv:::.engine_new(comp$c, spec, "cpu", n_threads = n_threads)
  g <- time_ms(function() iclv:::.engine_eval(e, th, gradient = TRUE), reps)
  h <- time_ms(function() iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE),
               max(3L, reps %/% 3L))
  ll <- iclv:::.engine_eval(e, th, gradient = FALSE)$loglik
  pairs <- comp$c$n_ind * R
  cat(sprintf("%-5s P = %3d rows = %5d LL = %.6f  LL + gradient %8.2f ms (%6.1f ns/pair)  + Hessian %8.2f ms (%6.1f ns/pair)\n",
              v, comp$c$n_par, comp$c$n_rows, ll, g, 1e6 * g / pairs, h, 1e6 * h / pairs))
  if (do_fit) {
    t0 <- proc.time()[["elapsed"]]
    fit <- iclv(model, d, draws = iclv_draws("halton", R), backend = "cpu",
                control = iclv_control(n_threads = n_threads, trace = 0, maxit = maxit))
    secs <- proc.time()[["elapsed"]] - t0
    cat(sprintf("%-5s whole fit (BFGS + Hessian, BHHH, robust SEs): %.2f s, LL = %.6f, iterations = %d, evaluations = %d, %s\n",
                v, secs, fit$loglik, fit$convergence$iterations, fit$convergence$evaluations,
                fit$convergence$message))
  }
}
cat(sprintf("load average now: %s\n", tryCatch(readLines("/proc/loadavg", 1L), error = function(e) "unknown")))
