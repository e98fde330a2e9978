# The identification check before estimation (R/identify.R): a rank test of
# the information at two random parameter points refuses a model whose
# log-likelihood is flat in some direction, naming the parameters involved.

id_data <- function(n = 150, seed = 1) {
  iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = n, n_tasks = 4, seed = seed)
}
id_draws <- function() iclv_draws("halton", 30, seed = 1)
id_model <- function(a, b, c = "0") {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(a = a, b = b, c = c)),
    id = "ID", categories = 3)
}
id_error <- function(expr) {
  e <- tryCatch(expr, iclv_error_identification = function(e) e)
  expect_s3_class(e, "iclv_error_identification")
  e
}

test_that("a constant on every alternative is refused before estimating, naming the constants", {
  m <- id_model("asc_a + b_price * price_a + l_att * att", "asc_b + b_price * price_b", "asc_c")
  e <- id_error(iclv(m, id_data(), draws = id_draws(), backend = "cpu"))
  expect_setequal(e$parameters, c("asc_a", "asc_b", "asc_c"))
  expect_match(conditionMessage(e), "not identified")
  expect_match(conditionMessage(e), "'asc_a'")
  expect_match(conditionMessage(e), "information \\(BHHH\\)")
  expect_match(conditionMessage(e), "check_identification = FALSE")
})

test_that("two constants on one alternative and a covariate constant across alternatives are named", {
  m <- id_model("asc_a + asc_dup + b_price * price_a + l_att * att", "asc_b + b_price * price_b")
  e <- id_error(iclv(m, id_data(), draws = id_draws(), backend = "cpu"))
  expect_setequal(e$parameters, c("asc_a", "asc_dup"))
  # age enters every utility (and the structural equation, where it is
  # identified): only the utility coefficients are tied
  m2 <- id_model("asc_a + b_price * price_a + l_att * att + b_age_a * age",
                 "asc_b + b_price * price_b + b_age_b * age", "b_age_c * age")
  e2 <- id_error(iclv(m2, id_data(), draws = id_draws(), backend = "cpu"))
  expect_setequal(e2$parameters, c("b_age_a", "b_age_b", "b_age_c"))
})

test_that("a parameter the log-likelihood does not depend on is named as having no information", {
  # a column of zeros: b_z's score is exactly 0 for everyone
  d <- id_data()
  d$z <- 0
  m <- id_model("asc_a + b_price * price_a + l_att * att + b_z * z", "asc_b + b_price * price_b")
  e <- id_error(iclv(m, d, draws = id_draws(), backend = "cpu"))
  expect_identical(e$parameters, "b_z")
  expect_match(conditionMessage(e), "no information at all")
})

test_that("with fewer individuals than twice the free parameters the Hessian is tested", {
  m <- id_model("asc_a + asc_dup + b_price * price_a + l_att * att", "asc_b + b_price * price_b")
  e <- id_error(iclv(m, id_data(n = 12), draws = id_draws(), backend = "cpu"))
  expect_match(conditionMessage(e), "negative Hessian")
  expect_setequal(e$parameters, c("asc_a", "asc_dup"))
})

test_that("identified models pass, and the check can be turned off", {
  d <- id_data()
  fit <- expect_no_error(iclv(one_lv_mnl_model(), d, draws = id_draws(), backend = "cpu"))
  expect_true(fit$identification$ok)
  # few individuals (Hessian path) but identified: not refused
  expect_no_error(suppressWarnings(iclv(one_lv_mnl_model(), id_data(n = 12), draws = id_draws(),
                                        backend = "cpu", control = iclv_control(maxit = 5))))
  # off: the unidentified model is estimated and the check at the estimate warns
  m <- id_model("asc_a + asc_dup + b_price * price_a + l_att * att", "asc_b + b_price * price_b")
  expect_warning(suppressWarnings(iclv(m, d, draws = id_draws(), backend = "cpu",
                                       control = iclv_control(maxit = 100, check_identification = FALSE)),
                                  classes = c("iclv_warning_vcov", "iclv_warning_convergence")),
                 class = "iclv_warning_identification")
  expect_error(iclv_control(check_identification = NA), class = "iclv_error_control")
  expect_error(iclv_control(check_identification = "yes"), class = "iclv_error_control")
})

test_that("the check does not touch the user's random number stream or generator", {
  d <- id_data()
  m <- one_lv_mnl_model()
  old_kind <- RNGkind()
  on.exit(do.call(RNGkind, as.list(old_kind)), add = TRUE)
  for (kind in c("Mersenne-Twister", "L'Ecuyer-CMRG")) {
    RNGkind(kind)
    set.seed(42)
    suppressWarnings(iclv(m, d, draws = id_draws(), backend = "cpu", control = iclv_control(maxit = 2)))
    after_on <- .Random.seed
    expect_identical(RNGkind()[1], kind)
    set.seed(42)
    suppressWarnings(iclv(m, d, draws = id_draws(), backend = "cpu",
                          control = iclv_control(maxit = 2, check_identification = FALSE)))
    expect_identical(after_on, .Random.seed, info = kind)
  }
  # and the fit is the same with and without it (the check does not move the start)
  f1 <- suppressWarnings(iclv(m, d, draws = id_draws(), backend = "cpu", control = iclv_control(maxit = 3)))
  f2 <- suppressWarnings(iclv(m, d, draws = id_draws(), backend = "cpu",
                              control = iclv_control(maxit = 3, check_identification = FALSE)))
  expect_identical(coef(f1), coef(f2))
})

test_that("the rank test itself: null directions of a scaled matrix", {
  set.seed(3)
  X <- matrix(rnorm(60 * 4), 60, 4)
  A <- crossprod(X)
  expect_null(iclv:::.ident_null(A, letters[1:4]))
  # a tied direction (columns 2 and 3 enter only as their sum), in any units
  X2 <- cbind(X[, 1], X[, 2] * 1e6, X[, 2] * 1e6, X[, 4] * 1e-5)
  r <- iclv:::.ident_null(crossprod(X2), letters[1:4])
  expect_identical(r$n_null, 1L)
  expect_setequal(r$direction, c("b", "c"))
  # a parameter with no information
  X3 <- cbind(X[, 1:3], 0)
  r3 <- iclv:::.ident_null(crossprod(X3), letters[1:4])
  expect_identical(r3$none, "d")
  # weakly but truly identified (condition 1e6) is not refused
  X4 <- cbind(X[, 1], X[, 2], X[, 2] + 1e-3 * X[, 3], X[, 4])
  expect_null(iclv:::.ident_null(crossprod(X4), letters[1:4]))
})
