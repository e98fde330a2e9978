# Standard errors and the identification check do not depend on the units of
# the data: they are decided on the Hessian (and the outer product of the
# scores) scaled to unit diagonal. Rescaling an attribute rescales its
# coefficient's standard error exactly and leaves the others unchanged, with
# no warning; a parameter gets NA only when the scaled matrix is singular
# in its direction.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

units_data <- function() {
  iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = 200, n_tasks = 4, seed = 11)
}
units_fit <- function(d, start) {
  iclv(one_lv_mnl_model(), d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu", start = start,
       control = iclv_control(method = "newton", tol = 1e-12))
}

test_that("rescaling an attribute rescales its SE exactly (every type), others unchanged, no warning", {
  d <- units_data()
  f1 <- units_fit(d, one_lv_mnl_truth)
  expect_identical(f1$convergence$code, 0L)
  expect_true(f1$identification$ok)
  se1 <- lapply(c(hessian = "hessian", bhhh = "bhhh", robust = "robust"), function(ty) sqrt(diag(vcov(f1, type = ty))))
  for (s in c(100, 1e-4, 1e6, 1e-7)) {
    ds <- d
    ds$price_a <- d$price_a * s
    ds$price_b <- d$price_b * s
    st <- one_lv_mnl_truth
    st[["b_price"]] <- st[["b_price"]] / s
    warns <- character()
    f2 <- withCallingHandlers(units_fit(ds, st), warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
    expect_identical(warns, character(), label = paste("warnings at scale", s))
    expect_identical(f2$convergence$code, 0L)
    expect_equal(f2$loglik, f1$loglik, tolerance = 1e-10)
    expect_equal(f2$coefficients[["b_price"]] * s, f1$coefficients[["b_price"]], tolerance = 1e-8)
    expect_true(f2$identification$ok)
    for (ty in names(se1)) {
      se2 <- sqrt(diag(vcov(f2, type = ty)))
      expect_false(anyNA(se2), label = paste(s, ty))
      ratio <- se2 / se1[[ty]]
      expect_lt(abs(ratio[["b_price"]] * s - 1), 1e-6, label = paste(s, ty, "b_price"))
      others <- setdiff(names(ratio), "b_price")
      expect_lt(max(abs(ratio[others] - 1)), 1e-6, label = paste(s, ty, "others"))
    }
    expect_equal(f2$identification$eigenvalues, f1$identification$eigenvalues, tolerance = 1e-6)
    expect_equal(f2$identification$condition, f1$identification$condition, tolerance = 1e-6)
  }
  # the condition number of the scaled Hessian, for summary()
  expect_gt(f1$identification$condition, 1)
  expect_lt(f1$identification$condition, 1e3)
})

test_that("the covariance decisions are invariant to any diagonal scaling (unit check)", {
  set.seed(4)
  k <- 6
  X <- matrix(stats::rnorm(200 * k), 200, k)
  X[, 2] <- X[, 1] + 0.3 * X[, 2]
  A <- crossprod(X)             # well conditioned after scaling
  dsc <- 10^c(-8, 0, 5, -3, 8, 1)
  As <- A * (dsc %o% dsc)       # the same matrix in other units
  i1 <- iclv:::.safe_inverse(A, "A", letters[1:k])
  i2 <- expect_no_warning(iclv:::.safe_inverse(As, "A", letters[1:k]))
  expect_length(i2$weak, 0L)
  expect_equal(i2$inv * (dsc %o% dsc), i1$inv, tolerance = 1e-10)
  expect_equal(i1$inv, solve(A), tolerance = 1e-10)
  id1 <- iclv:::.identification(-A, letters[1:k])
  id2 <- expect_no_warning(iclv:::.identification(-As, letters[1:k]))
  expect_true(id2$ok)
  expect_equal(id2$eigenvalues, id1$eigenvalues, tolerance = 1e-10)
  C <- stats::cov2cor(A)
  expect_equal(id2$condition, kappa(C, exact = TRUE), tolerance = 1e-8)
  # scores in other units: all three covariance types scale exactly
  S <- X[1:40, ] * rep(1 + 0 * (1:40), k)
  v1 <- iclv:::.vcov_compute(-A, S, letters[1:k])
  v2 <- expect_no_warning(iclv:::.vcov_compute(-As, S * rep(dsc, each = 40), letters[1:k]))
  for (ty in c("hessian", "bhhh", "robust")) {
    expect_false(anyNA(v2[[ty]]))
    expect_equal(unname(v2[[ty]] * (dsc %o% dsc)), unname(v1[[ty]]), tolerance = 1e-9, label = ty)
  }
})

test_that("a truly unidentified or uninformative parameter is NA, with a warning naming it", {
  set.seed(5)
  k <- 4
  X <- matrix(stats::rnorm(100 * k), 100, k)
  X[, 3] <- 2 * X[, 2]                      # parameters b and c are confounded
  A <- crossprod(X) * (c(1e6, 1, 1e-4, 1) %o% c(1e6, 1, 1e-4, 1))
  nm <- c("a", "b", "c", "d")
  vcov_warnings <- function(expr) {
    msgs <- character()
    v <- withCallingHandlers(expr, iclv_warning_vcov = function(w) {
      msgs <<- c(msgs, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
    list(v = v, msgs = msgs)
  }
  r <- vcov_warnings(iclv:::.vcov_compute(-A, X, nm))
  expect_length(r$msgs, 2L) # the Hessian and BHHH
  expect_match(r$msgs, "'b', 'c'")
  v <- r$v
  expect_true(all(is.na(diag(v$hessian)[c("b", "c")])))
  expect_false(anyNA(diag(v$hessian)[c("a", "d")]))
  expect_warning(id <- iclv:::.identification(-A, nm), "'[bc]', '[bc]'", class = "iclv_warning_identification")
  expect_false(id$ok)
  expect_setequal(id$weak, c("b", "c"))
  expect_identical(id$condition, Inf)

  # no information at all on "d": zero row and column, zero scores
  X <- matrix(stats::rnorm(100 * k), 100, k)
  X[, 4] <- 0
  A <- crossprod(X)
  r <- vcov_warnings(iclv:::.vcov_compute(-A, X, nm))
  expect_length(r$msgs, 2L)
  expect_match(r$msgs, "not positive for 'd'")
  v <- r$v
  for (ty in c("hessian", "bhhh", "robust")) {
    expect_true(all(is.na(v[[ty]]["d", ])), label = ty)
    expect_false(anyNA(v[[ty]][1:3, 1:3]), label = ty)
  }
  expect_equal(unname(v$hessian[1:3, 1:3]), unname(solve(A[1:3, 1:3])), tolerance = 1e-10)
  expect_warning(id <- iclv:::.identification(-A, nm), "no positive curvature in 'd'",
                 class = "iclv_warning_identification")
  expect_identical(id$weak, "d")

  # negative curvature in one coordinate (not a maximum): NA and named
  A <- crossprod(matrix(stats::rnorm(100 * k), 100, k))
  A[2, ] <- A[, 2] <- 0
  A[2, 2] <- -5
  r <- vcov_warnings(iclv:::.vcov_compute(-A, X, nm))
  expect_true(any(grepl("negative Hessian.*not positive for 'b'", r$msgs)))
  expect_true(is.na(r$v$hessian["b", "b"]))
  expect_warning(id <- iclv:::.identification(-A, nm), "not a maximum", class = "iclv_warning_identification")
  expect_true("b" %in% id$weak)
})

test_that("an unidentified model fitted on rescaled data still names only the confounded pair", {
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + asc_dup + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
    id = "ID", categories = 3)
  d <- units_data()
  d$price_a <- d$price_a * 1e-4
  d$price_b <- d$price_b * 1e-4
  st <- c(one_lv_mnl_truth, asc_dup = 0)
  st[["b_price"]] <- -1e4
  # the check before estimating refuses it, naming the pair (not b_price,
  # whose units are far from the others')
  e <- tryCatch(iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu", start = st),
                iclv_error_identification = function(e) e)
  expect_s3_class(e, "iclv_error_identification")
  expect_setequal(e$parameters, c("asc_a", "asc_dup"))
  msgs <- character()
  fit <- withCallingHandlers(
    iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu", start = st,
         control = iclv_control(method = "newton", maxit = 50, check_identification = FALSE)),
    iclv_warning = function(w) {
      msgs <<- c(msgs, paste(class(w)[1], conditionMessage(w)))
      invokeRestart("muffleWarning")
    })
  expect_false(fit$identification$ok)
  expect_setequal(fit$identification$weak, c("asc_a", "asc_dup"))
  expect_gt(fit$identification$condition, 1e8)
  se <- suppressWarnings(sqrt(diag(vcov(fit, type = "hessian"))))
  expect_true(all(is.na(se[c("asc_a", "asc_dup")])))
  expect_false(anyNA(se[setdiff(names(se), c("asc_a", "asc_dup"))]))
  id_msg <- grep("^iclv_warning_identification", msgs, value = TRUE)
  expect_length(id_msg, 1L)
  expect_false(grepl("b_price", id_msg))
})
