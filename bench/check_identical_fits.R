# Are the fits of two builds bit-identical? (issue 13: a refactor must not move
# an estimate by one bit). Fits the shipped example (`commute`, the model of
# inst/scripts/getting-started.R) and a reduced seed problem with each
# optimizer, fixed parameters and starting values included, and either saves
# them or compares them with saved ones by identical().
#
# Usage (repository root):
#   OMP_NUM_THREADS=1 Rscript bench/check_identical_fits.R save    FILE.rds [lib]
#   OMP_NUM_THREADS=1 Rscript bench/check_identical_fits.R compare FILE.rds [lib]

args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
file <- args[2]
lib <- if (length(args) >= 3) args[3] else NULL
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
data(commute, package = "iclv", lib.loc = lib)

# the model of the shipped example, read from the script itself
ex <- parse("inst/scripts/getting-started.R")
is_model <- vapply(ex, function(e) is.call(e) && identical(e[[1]], as.name("<-")) &&
                     identical(e[[2]], as.name("model")), NA)
commute_model <- eval(ex[[which(is_model)]][[3]])
sp <- iclv_seed_problem(n = 100, n_tasks = 6, seed = 1)

cases <- list(
  commute_bfgs_R100 = function() iclv(commute_model, commute, draws = iclv_draws("halton", 100),
                                      backend = "cpu", control = iclv_control(n_threads = 1)),
  commute_newton_R20 = function() iclv(commute_model, commute, draws = iclv_draws("halton", 20),
                                       backend = "cpu", control = iclv_control(method = "newton", n_threads = 1)),
  commute_bhhh_R20 = function() iclv(commute_model, commute, draws = iclv_draws("halton", 20),
                                     backend = "cpu", control = iclv_control(method = "bhhh", n_threads = 1)),
  seed_bfgs_R20 = function() iclv(sp$model, sp$data, draws = iclv_draws("halton", 20, seed = 1),
                                  backend = "cpu", control = iclv_control(n_threads = 1)),
  seed_bhhh_fixed_start_R10 = function() iclv(sp$model, sp$data, draws = iclv_draws("halton", 10, seed = 1),
                                              backend = "cpu",
                                              control = iclv_control(method = "bhhh", n_threads = 1, maxit = 40),
                                              fixed = c(tau_ind01_2 = -0.3, zeta_ind05 = 1),
                                              start = c(lambda = 0.5, asc = 0.1))
)
`%||%` <- function(a, b) if (is.null(a)) b else a
strip <- function(f) {
  h <- f$history
  h$seconds <- NULL
  list(coefficients = f$coefficients, loglik = f$loglik, vcov = f$vcov, gradient = f$gradient,
       convergence = f$convergence, history = h[c("iteration", "loglik", "change", "gradient_norm", "step")],
       partable = f$partable, loglik_components = f$loglik_components)
}
res <- lapply(names(cases), function(nm) {
  t0 <- proc.time()[["elapsed"]]
  f <- suppressWarnings(cases[[nm]]())
  cat(sprintf("%-28s LL %.10f  iterations %d  evaluations %d  code %d  (%.1f s)\n", nm, f$loglik,
              f$convergence$iterations, f$convergence$evaluations, f$convergence$code,
              proc.time()[["elapsed"]] - t0))
  strip(f)
})
names(res) <- names(cases)
if (mode == "save") {
  saveRDS(res, file)
} else {
  ref <- readRDS(file)
  for (nm in names(res)) {
    parts <- names(res[[nm]])
    same <- vapply(parts, function(p) identical(res[[nm]][[p]], ref[[nm]][[p]]), NA)
    cat(sprintf("%-28s identical: %s%s\n", nm, all(same),
                if (all(same)) "" else paste0(" (differs: ", paste(parts[!same], collapse = ", "), ")")))
    if (!all(same)) {
      a <- res[[nm]]$coefficients
      b <- ref[[nm]]$coefficients[names(a)]
      sa <- sqrt(diag(res[[nm]]$vcov$robust %||% res[[nm]]$vcov[[1]]))
      cat(sprintf("%-28s   LL %+.2e, max |coef change| %.2e (%.2e of its s.e.), iterations %d vs %d\n", "",
                  res[[nm]]$loglik - ref[[nm]]$loglik, max(abs(a - b)), max(abs(a - b) / sa[names(a)], na.rm = TRUE),
                  res[[nm]]$convergence$iterations, ref[[nm]]$convergence$iterations))
    }
  }
}
