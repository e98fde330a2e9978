# update() on a fit whose original objects are gone (issue 12, "Lost work"):
# a fit read from disk in a fresh session re-estimates from what it stores,
# with the data supplied.

upd_draws <- function() iclv_draws("halton", 30, seed = 1)

# A fit made where the names of its call (m_orig, d_orig, ctl_orig, fx_orig)
# exist only inside this function.
upd_fit_elsewhere <- function() {
  m_orig <- one_lv_mnl_model()
  d_orig <- iclv_simulate(m_orig, one_lv_mnl_truth, n = 150, n_tasks = 3, seed = 2)
  ctl_orig <- iclv_control(method = "bhhh", vcov = "bhhh")
  fx_orig <- c(asc_b = -0.3)
  iclv(m_orig, d_orig, draws = upd_draws(), backend = "cpu", control = ctl_orig, fixed = fx_orig)
}

test_that("update() works where the original call's objects do not exist", {
  fit <- upd_fit_elsewhere()
  expect_false(exists("m_orig") || exists("d_orig") || exists("ctl_orig") || exists("fx_orig"))
  d <- iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = 150, n_tasks = 3, seed = 2)
  new_draws <- iclv_draws("sobol", 40, seed = 3)
  f2 <- update(fit, data = d, draws = new_draws)
  # the model, control and fixed value come from the fit
  expect_identical(f2$control$method, "bhhh")
  expect_identical(f2$vcov_type, "bhhh")
  expect_identical(f2$n_params, 13L)
  expect_identical(f2$coefficients[["asc_b"]], -0.3)
  expect_identical(f2$draws[c("type", "n")], list(type = "sobol", n = 40L))
  # it is the estimate with the new draws: its LL is the simulated LL at its
  # coefficients with those draws, and it is a maximum there (small gradient)
  ll <- iclv_loglik(one_lv_mnl_model(), d, coef(f2), draws = new_draws)
  expect_equal(f2$loglik, ll$loglik, tolerance = 1e-10)
  expect_identical(f2$convergence$code, 0L)
  expect_lt(max(abs(ll$gradient[names(ll$gradient) != "asc_b"])), 1e-2)
  # the call shows the change
  expect_identical(f2$call$draws, quote(new_draws))
  # without data, and the call's data not to be found: a classed error saying so
  err <- tryCatch(update(fit, draws = new_draws), error = function(e) e)
  expect_s3_class(err, "iclv_error_input")
  expect_match(conditionMessage(err), "data = ")
  expect_match(conditionMessage(err), "d_orig")
  # unknown or unnamed arguments are refused
  expect_error(update(fit, data = d, drawz = new_draws), "drawz", class = "iclv_error_control")
  expect_error(update(fit, d), class = "iclv_error_control")
})

test_that("update() works on a fit read from disk in a fresh R session", {
  fit <- upd_fit_elsewhere()
  rds <- tempfile(fileext = ".rds")
  script <- tempfile(fileext = ".R")
  on.exit(unlink(c(rds, script)))
  saveRDS(fit, rds)
  lib <- dirname(find.package("iclv"))
  writeLines(c(
    sprintf("suppressPackageStartupMessages(library(iclv, lib.loc = %s))", deparse(lib)),
    sprintf("fit <- readRDS(%s)", deparse(rds)),
    "m <- iclv_model('att =~ q1 + q2 + q3', structural = 'att ~ age',",
    "  choice = iclv_choice('mnl', choice = 'ch', utilities = list(",
    "    a = 'asc_a + b_price * price_a + l_att * att', b = 'asc_b + b_price * price_b', c = '0')),",
    "  id = 'ID', categories = 3)",
    sprintf("truth <- %s", paste(deparse(one_lv_mnl_truth), collapse = "")),
    "d <- iclv_simulate(m, truth, n = 150, n_tasks = 3, seed = 2)",
    "r <- tryCatch(update(fit, draws = iclv_draws('halton', 30, seed = 1)), error = function(e) e)",
    "cat('NODATA', class(r)[1], '\\n')",
    "f2 <- update(fit, data = d, draws = iclv_draws('halton', 20, seed = 5))",
    "ll <- iclv_loglik(m, d, coef(f2), draws = iclv_draws('halton', 20, seed = 5))$loglik",
    "cat('FIT', f2$convergence$code, f2$n_params, f2$control$method, sprintf('%.10f %.10f', f2$loglik, ll), '\\n')"
  ), script)
  out <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", shQuote(script)),
                                  stdout = TRUE, stderr = TRUE, env = "R_TESTS="))
  txt <- paste(out, collapse = "\n")
  expect_match(txt, "NODATA iclv_error_input", fixed = TRUE)
  line <- grep("^FIT", out, value = TRUE)
  expect_length(line, 1L)
  f <- strsplit(trimws(line), " +")[[1]]
  expect_identical(f[2:4], c("0", "13", "bhhh"), info = txt)
  expect_equal(as.numeric(f[5]), as.numeric(f[6]), tolerance = 1e-10)
})
