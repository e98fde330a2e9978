# The drug-choice ICLV of Apollo's example 24 estimated with the full
# ranking (issue 16): the same model as bench/bench_cpu_drug.R (one LV with
# four five-point ordered-logit indicators and three covariates; 4
# alternatives, the LV in the two branded ones), its choice part an exploded
# logit over the columns best, second_pref, third_pref, worst (the worst rank
# of a full ranking adds nothing: 3 stages per task). Prints convergence,
# the estimates and the choice log-likelihood of each rank stage.
#
# Usage (from the repository root, with iclv installed):
#   Rscript bench/bench_drug_ranked.R [threads] [draws] [lib] [data]
args <- commandArgs(trailingOnly = TRUE)
n_threads <- if (length(args) >= 1) as.integer(args[1]) else 1L
R <- if (length(args) >= 2) as.integer(args[2]) else 100L
lib <- if (length(args) >= 3 && nzchar(args[3])) args[3] else NULL
path <- if (length(args) >= 4) args[4] else "/work/shared/data/drugchoice.csv"
suppressPackageStartupMessages(library(iclv, lib.loc = lib))

# drug_data(), branded(), generic(): bench_cpu_drug.R's model
source(file.path("bench", "drug_defs.R"))

d <- drug_data(path)
model <- iclv_model(
  "lv =~ attitude_quality + attitude_ingredients + attitude_patent + attitude_dominance",
  structural = "lv ~ regular_user + university_educated + over_50",
  indicators = "ordered_logit",
  choice = iclv_choice("ranked", choice = c("best", "second_pref", "third_pref", "worst"), utilities = list(
    alt1 = branded(1), alt2 = branded(2), alt3 = generic(3), alt4 = generic(4))),
  id = "ID", categories = 5)
t0 <- proc.time()[["elapsed"]]
fit <- iclv(model, d, draws = iclv_draws("halton", R, seed = 1), backend = "cpu",
            control = iclv_control(n_threads = n_threads, trace = 0))
el <- proc.time()[["elapsed"]] - t0
cat(sprintf("N = %d, stage rows = %d, draws = %d, threads = %d: %.1f s\n", fit$n_individuals,
            fit$compiled$c$n_rows, R, n_threads, el))
cat("convergence:", fit$convergence$code, fit$convergence$message, "\n")
cat(sprintf("LL = %.4f, gradient norm %.2e\n", fit$loglik, fit$convergence$gradient_norm))
print(summary(fit)$stats$components, row.names = FALSE)
print(round(cbind(est = coef(fit), se = sqrt(diag(vcov(fit)))), 4))
