# Compares two builds of the CPU engine (e.g. the fast kernels against an
# install of 16c8b95) on many models: every indicator type x choice type,
# LV-on-LV or not, LV utility terms with and without attributes,
# availability, missing indicators, the drug-choice ICLV (also with nests, a
# Box-Cox price on a tape, and best-worst with a scale), the seed problem
# and a model with fixed parameters. LL, log L_n, gradient, scores and
# Hessian; the largest difference relative to the largest magnitude.
#
# Usage (from the repository root; two runs, one per library):
#   Rscript bench/compare_engines.R save    <lib_old> /tmp/old.rds
#   Rscript bench/compare_engines.R compare <lib_new> /tmp/old.rds
# The first run saves the outputs of <lib_old>, the second compares
# <lib_new>'s outputs with them and prints one line per model and the worst.

args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
lib <- args[2]
file <- args[3]
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
for (f in list.files("tests/testthat", "^helper", full.names = TRUE)) source(f)

variant <- function(tm, no_lvlv, rowinv) {
  d <- tm$desc
  if (no_lvlv) {
    d$struct$src_type[] <- 0L
    d$struct$src <- c(1L, 0L, 1L, 0L, 0L)
  }
  if (rowinv && !is.null(d$util)) d$util$col[d$util$lv >= 0] <- -1L
  tm$desc <- d
  tm$compiled <- compile_by_hand(d)
  tm
}

models <- list()
grid <- expand.grid(ind = names(.ind_codes), choice = names(.choice_codes),
                    lvlv = c(FALSE, TRUE), rowinv = c(FALSE, TRUE), stringsAsFactors = FALSE)
for (i in seq_len(nrow(grid))) {
  tm <- variant(tiny_model(grid$ind[i], grid$choice[i], n_ind = 12L, n_draws = 11L, seed = 500 + i),
                !grid$lvlv[i], grid$rowinv[i])
  set.seed(i)
  models[[paste(grid[i, ], collapse = "_")]] <-
    list(c = tm$compiled, d = tm$draws, th = list(jitter_theta(tm), jitter_theta(tm, 0.6)))
}
# iclv_model() models with Halton draws
add_model <- function(name, m, data, params, R = 50) {
  comp <- iclv:::.iclv_compile(m, data)
  spec <- iclv:::.draws_spec(iclv_draws("halton", R), comp$n_ind, length(comp$lvs))
  th <- iclv:::.params_full(params, comp$partable, "params")
  models[[name]] <<- list(c = comp$c, d = spec, th = list(th, th * 0.9))
}
fx <- c(asc_b = -0.3)
m1 <- one_lv_mnl_model(fixed = fx)
add_model("one_lv_mnl_fixed", m1, iclv_simulate(m1, one_lv_mnl_truth, n = 80, n_tasks = 5, seed = 2),
          one_lv_mnl_truth)
sp <- iclv_seed_problem(n = 60)
add_model("seed_problem_n60", sp$model, sp$data, sp$params, R = 30)
if (file.exists("/work/shared/data/drugchoice.csv")) {
  src <- readLines("bench/bench_cpu_drug.R")
  eval(parse(text = src[grep("^drug_data <- ", src):(grep("^d <- drug_data", src) - 1)]))
  d <- drug_data("/work/shared/data/drugchoice.csv")
  d <- d[d$ID %in% unique(d$ID)[1:200], ]
  dm <- drug_model()
  comp <- iclv:::.iclv_compile(dm, d)
  p <- stats::setNames(comp$partable$start, comp$partable$name)
  p[is.na(p)] <- 0
  p[grepl("^tau_", names(p))] <- rep(c(-2, -1, 1, 2.5), 4)
  p[c("b_price", "lambda", "b_risk")] <- c(-0.9, 1, -0.05)
  add_model("drug_n200", dm, d, p, R = 100)
  # the choice rows through the atoms (engine_fast.c, ref_choice and
  # row_mult): nests, a Box-Cox price on a tape, best-worst with a scale
  alts <- function(f = identity) list(alt1 = f(branded(1)), alt2 = f(branded(2)),
                                      alt3 = f(generic(3)), alt4 = f(generic(4)))
  boxcox <- function(u) sub("b_price \\* price_([0-9])", "b_price * (price_\\1 ^ lam_p - 1) / lam_p", u)
  variants <- list(
    drug_n200_nl = iclv_choice("nl", choice = "best", utilities = alts(),
                               nests = list(branded = c("alt1", "alt2"), generic = c("alt3", "alt4"))),
    drug_n200_tape = iclv_choice("mnl", choice = "best", utilities = alts(boxcox)),
    drug_n200_bw = iclv_choice("bestworst", choice = c("best", "worst"), utilities = alts(),
                               worst_scale = "mu_w"))
  for (nm in names(variants)) {
    mv <- iclv_model("lv =~ attitude_quality + attitude_ingredients + attitude_patent + attitude_dominance",
                     structural = "lv ~ regular_user + university_educated + over_50",
                     indicators = "ordered_logit", choice = variants[[nm]], id = "ID", categories = 5)
    cv <- iclv:::.iclv_compile(mv, d)
    pv <- stats::setNames(cv$partable$start, cv$partable$name)
    pv[is.na(pv)] <- 0
    pv[grepl("^tau_", names(pv))] <- rep(c(-2, -1, 1, 2.5), 4)
    pv[c("b_price", "lambda", "b_risk")] <- c(-0.9, 1, -0.05)
    extra <- c(lambda_branded = 0.7, lambda_generic = 0.8, lam_p = 0.5, mu_w = 0.8)
    pv[intersect(names(extra), names(pv))] <- extra[intersect(names(extra), names(pv))]
    add_model(nm, mv, d, pv, R = 100)
  }
}

out <- lapply(models, function(x) {
  e <- iclv:::.engine_new(x$c, x$d, n_threads = 1L)
  lapply(x$th, function(th) {
    o <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
    o2 <- iclv:::.engine_eval(e, th, gradient = TRUE)
    o$gradient_only <- o2$gradient
    o
  })
})

if (mode == "save") {
  saveRDS(out, file)
  cat(sprintf("saved %d models from %s\n", length(out), lib))
} else {
  old <- readRDS(file)
  rel <- function(a, b) max(abs(a - b)) / max(abs(b), 1e-300)
  worst <- 0
  for (nm in names(out)) {
    e <- sapply(c("loglik", "loglik_i", "gradient", "scores", "hessian", "gradient_only"), function(k)
      max(vapply(seq_along(out[[nm]]), function(j) rel(out[[nm]][[j]][[k]], old[[nm]][[j]][[k]]), 0)))
    worst <- max(worst, e)
    cat(sprintf("%-40s %s\n", nm, paste(sprintf("%s %.1e", names(e), e), collapse = "  ")))
  }
  cat(sprintf("models: %d; worst relative difference over LL, log L_n, gradient, scores, Hessian: %.2e\n",
              length(out), worst))
}
