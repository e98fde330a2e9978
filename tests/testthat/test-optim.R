# The optimizers on a likelihood written in R: a binary probit, checked
# against glm(). Nothing here needs the C engine.

probit_data <- function(n = 600, seed = 11) {
  set.seed(seed)
  x1 <- rnorm(n)
  x2 <- runif(n, -1, 1)
  X <- cbind(`(Intercept)` = 1, x1 = x1, x2 = x2)
  y <- as.integer(drop(X %*% c(0.3, 0.8, -0.6)) + rnorm(n) > 0)
  list(X = X, y = y, d = data.frame(y = y, x1 = x1, x2 = x2))
}

# LL = sum log Phi(q x'b), q = 2y - 1, with analytic scores and Hessian:
# d/db = lambda x, lambda = q phi(q x'b) / Phi(q x'b); d2 = -lambda (lambda + x'b) x x'.
probit_fn <- function(X, y, fail_if = NULL) {
  q <- 2 * y - 1
  function(b, scores = FALSE, hessian = FALSE) {
    if (!is.null(fail_if) && fail_if(b)) iclv:::iclv_abort("numeric", "test: refused point")
    eta <- drop(X %*% b)
    lp <- pnorm(q * eta, log.p = TRUE)
    lam <- q * exp(dnorm(q * eta, log = TRUE) - lp)
    S <- X * lam
    out <- list(loglik = sum(lp), gradient = colSums(S))
    if (scores) out$scores <- S
    if (hessian) out$hessian <- -crossprod(X * (lam * (lam + eta)), X)
    out
  }
}

glm_fit <- function(pd) {
  glm(y ~ x1 + x2, family = binomial("probit"), data = pd$d,
      control = glm.control(epsilon = 1e-14, maxit = 100))
}

test_that("BFGS, Newton and BHHH reach the glm() maximum of a binary probit", {
  pd <- probit_data()
  g <- glm_fit(pd)
  fn <- probit_fn(pd$X, pd$y)
  start <- c(`(Intercept)` = 0, x1 = 0, x2 = 0)
  for (m in c("bfgs", "newton", "bhhh")) {
    res <- iclv:::.iclv_optimize(fn, start, iclv_control(method = m, tol = 1e-10))
    expect_identical(res$code, 0L, info = m)
    expect_lt(abs(res$loglik - as.numeric(logLik(g))), 1e-6, label = paste(m, "LL difference"))
    expect_equal(unname(res$par), unname(coef(g)), tolerance = 1e-5, info = m)
    expect_named(res$par, names(start))
    expect_lt(res$gradient_norm, 1e-3)
    expect_gt(res$iterations, 0L)
    expect_gte(res$evaluations, res$iterations)
    # the history is monotone: every accepted step raises the log-likelihood
    expect_true(all(diff(res$history$loglik) >= -1e-10), info = m)
  }
})

test_that("standard errors at the optimum match glm()", {
  pd <- probit_data(n = 2000, seed = 5)
  g <- glm_fit(pd)
  fn <- probit_fn(pd$X, pd$y)
  res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0), iclv_control(method = "newton", tol = 1e-12))
  at <- fn(res$par, scores = TRUE, hessian = TRUE)
  v <- iclv:::.vcov_compute(at$hessian, at$scores, names = names(res$par))
  # glm() uses the expected information; for the probit link the observed
  # information differs at O(1/sqrt(n)): agreement within a few percent.
  se_glm <- sqrt(diag(vcov(g)))
  expect_equal(unname(sqrt(diag(v$hessian))), unname(se_glm), tolerance = 0.03)
  expect_equal(unname(sqrt(diag(v$bhhh))), unname(se_glm), tolerance = 0.08)
  expect_equal(unname(sqrt(diag(v$robust))), unname(se_glm), tolerance = 0.08)
  # and exactly the textbook formulas
  expect_equal(unname(v$hessian), unname(solve(-at$hessian)), tolerance = 1e-10)
  B <- crossprod(at$scores)
  expect_equal(unname(v$bhhh), unname(solve(B)), tolerance = 1e-10)
  expect_equal(unname(v$robust), unname(solve(-at$hessian) %*% B %*% solve(-at$hessian)),
               tolerance = 1e-10)
  expect_equal(dimnames(v$robust), list(c("a", "b", "c"), c("a", "b", "c")))
})

test_that("a BFGS/BHHH stop is checked with the analytic Hessian, then Newton goes on", {
  pd <- probit_data()
  g <- glm_fit(pd)
  base <- probit_fn(pd$X, pd$y)
  # scores inflated 1e7 times: the BHHH matrix claims a tiny scaled gradient
  # at the start, which the analytic Hessian does not confirm
  fn <- function(b, scores = FALSE, hessian = FALSE) {
    r <- base(b, scores, hessian)
    if (scores) r$scores <- r$scores * 1e7
    r
  }
  for (m in c("bfgs", "bhhh")) {
    res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0), iclv_control(method = m, tol = 1e-10))
    expect_identical(res$code, 0L)
    expect_identical(res$method, "newton")
    expect_identical(res$switched_at, 0L)
    expect_match(res$message, "then Newton from iteration 0")
    expect_lt(abs(res$loglik - as.numeric(logLik(g))), 1e-6)
    # without the Hessian check the false stop stands: nothing moved
    res0 <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0),
                                  iclv_control(method = m, tol = 1e-10, hessian = FALSE, vcov = "bhhh"))
    expect_identical(res0$iterations, 0L)
    expect_gt(as.numeric(logLik(g)) - res0$loglik, 10)
  }
})

test_that("the iteration limit is reported as non-convergence", {
  pd <- probit_data()
  fn <- probit_fn(pd$X, pd$y)
  res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0), iclv_control(method = "bhhh", maxit = 2))
  expect_identical(res$code, 1L)
  expect_identical(res$message, "iteration limit reached")
  expect_identical(res$iterations, 2L)
  expect_gt(res$scaled_gradient, 1e-6)
})

test_that("an interrupt returns the best point so far with a warning", {
  pd <- probit_data()
  fn <- probit_fn(pd$X, pd$y)
  seen <- NULL
  cb <- function(iteration, loglik, params) {
    seen <<- rbind(seen, c(iteration, loglik))
    if (iteration == 2) signalCondition(structure(class = c("interrupt", "condition"), list()))
  }
  ctrl <- iclv_control(method = "bfgs", callback = cb)
  expect_warning(res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0), ctrl),
                 class = "iclv_warning_interrupt")
  expect_identical(res$code, 3L)
  expect_identical(res$message, "interrupted")
  expect_identical(res$iterations, 2L)
  expect_equal(res$loglik, seen[2, 2])
  expect_equal(res$loglik, fn(res$par)$loglik)
  expect_gt(res$loglik, fn(c(0, 0, 0))$loglik)
  g <- glm_fit(pd)
  expect_lt(res$loglik, as.numeric(logLik(g)))
})

test_that("a callback returning FALSE stops the optimizer", {
  pd <- probit_data()
  fn <- probit_fn(pd$X, pd$y)
  res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0),
                               iclv_control(callback = function(i, ll, p) i < 1))
  expect_identical(res$code, 4L)
  expect_identical(res$iterations, 1L)
})

test_that("the line search backs off from refused points and still converges", {
  pd <- probit_data()
  g <- glm_fit(pd)
  # a flaky engine: every third evaluation is refused (iclv_error_numeric)
  for (m in c("bfgs", "newton", "bhhh")) {
    calls <- 0L
    refused <- 0L
    fn <- probit_fn(pd$X, pd$y, fail_if = function(b) {
      calls <<- calls + 1L
      r <- calls %% 3L == 0L
      refused <<- refused + r
      r
    })
    res <- iclv:::.iclv_optimize(fn, c(a = 0, b = 0, c = 0), iclv_control(method = m, tol = 1e-10))
    expect_gt(refused, 0L)
    expect_identical(res$code, 0L, info = m)
    expect_lt(abs(res$loglik - as.numeric(logLik(g))), 1e-6, label = paste(m, "LL difference"))
  }
  # every point but the start is refused: no step can improve, code 2
  start <- c(a = 0, b = 0, c = 0)
  fn <- probit_fn(pd$X, pd$y, fail_if = function(b) any(b != start))
  for (m in c("bfgs", "newton", "bhhh")) {
    res <- iclv:::.iclv_optimize(fn, start, iclv_control(method = m))
    expect_identical(res$code, 2L)
    expect_identical(res$message, "the line search could not improve the log-likelihood")
    expect_identical(res$iterations, 0L)
    expect_equal(unname(res$par), unname(start))
  }
  # a line search whose trial points are refused beyond a = 0.3
  ls <- iclv:::.line_search(function(a) if (a > 0.3) NULL else list(f = (a - 1)^2, df = 2 * (a - 1), res = a),
                            f0 = 1, df0 = -2, wolfe = TRUE)
  expect_lte(ls$alpha, 0.3)
  expect_gt(ls$alpha, 0)
  # a direction along which nothing improves: NULL, not a bogus step
  expect_null(iclv:::.line_search(function(a) list(f = 1 + a, df = 1, res = a), f0 = 1, df0 = -1))
})

test_that("an error at the start is not swallowed", {
  fn <- function(b, scores = FALSE, hessian = FALSE) iclv:::iclv_abort("numeric", "bad start")
  expect_error(iclv:::.iclv_optimize(fn, c(a = 1), iclv_control()), class = "iclv_error_numeric")
  fn2 <- function(b, scores = FALSE, hessian = FALSE) list(loglik = NaN, gradient = 0)
  expect_error(iclv:::.iclv_optimize(fn2, c(a = 1), iclv_control()), class = "iclv_error_numeric")
})

test_that("trace prints one line per iteration and checkpoints are written", {
  pd <- probit_data()
  fn <- probit_fn(pd$X, pd$y)
  path <- tempfile(fileext = ".rds")
  out <- capture.output(res <- iclv:::.iclv_optimize(
    fn, c(a = 0, b = 0, c = 0),
    iclv_control(method = "bhhh", trace = 1, checkpoint = path, checkpoint_every = 1)))
  it_lines <- grep("^iter", out, value = TRUE)
  expect_length(it_lines, res$iterations + 1L)
  expect_match(it_lines[2], "^iter +1 +LL +-[0-9.]+ +change +[0-9.e+-]+ +max\\|g\\| +[0-9.e+-]+ +step")
  cp <- readRDS(path)
  expect_equal(cp$coefficients, res$par)
  expect_identical(cp$iteration, res$iterations)
  unlink(path)
})

test_that("iclv_control validates every argument", {
  expect_s3_class(iclv_control(), "iclv_control")
  expect_identical(iclv_control()$method, "bfgs")
  expect_identical(iclv_control()$vcov, "robust")
  expect_error(iclv_control(method = "nelder"), class = "iclv_error_control")
  expect_error(iclv_control(maxit = -1), "maxit", class = "iclv_error_control")
  expect_error(iclv_control(maxit = 2.5), "maxit", class = "iclv_error_control")
  expect_error(iclv_control(tol = 0), "tol", class = "iclv_error_control")
  expect_error(iclv_control(reltol = NA), "reltol", class = "iclv_error_control")
  expect_error(iclv_control(trace = "yes"), "trace", class = "iclv_error_control")
  expect_error(iclv_control(n_threads = -2), "n_threads", class = "iclv_error_control")
  expect_error(iclv_control(device = 0.5), "device", class = "iclv_error_control")
  expect_error(iclv_control(device_memory = -1), "device_memory", class = "iclv_error_control")
  expect_error(iclv_control(vcov = "sandwich"), "vcov", class = "iclv_error_control")
  expect_error(iclv_control(hessian = NA), "hessian", class = "iclv_error_control")
  expect_error(iclv_control(hessian = FALSE), "vcov", class = "iclv_error_control")
  expect_s3_class(iclv_control(hessian = FALSE, vcov = "bhhh"), "iclv_control")
  expect_error(iclv_control(checkpoint = file.path(tempfile(), "x", "cp.rds")), "checkpoint",
               class = "iclv_error_control")
  expect_error(iclv_control(checkpoint_every = 0), "checkpoint_every", class = "iclv_error_control")
  expect_error(iclv_control(callback = 3), "callback", class = "iclv_error_control")
  expect_error(iclv_control(maxiter = 10), "maxiter", class = "iclv_error_control")
  expect_error(iclv_control(10, 20), class = "iclv_error_control")
})

test_that("the history records the scaled gradient g' A^-1 g of every iteration (issue 19)", {
  pd <- probit_data(n = 400, seed = 3)
  fn <- probit_fn(pd$X, pd$y)
  start <- c(a = 0, b = 0, c = 0)
  # A computed here, independently, at the point of each iteration (the
  # callback hands the points over): Newton's -H and BHHH's S'S
  curv <- list(newton = function(r) -r$hessian, bhhh = function(r) crossprod(r$scores))
  for (m in names(curv)) {
    pts <- list(start)
    ctrl <- iclv_control(method = m, tol = 1e-12, hessian = FALSE, vcov = "bhhh",
                         callback = function(iter, ll, par) { pts[[iter + 1L]] <<- par; TRUE })
    res <- iclv:::.iclv_optimize(fn, start, ctrl)
    h <- res$history
    expect_true("scaled_gradient" %in% names(h), info = m)
    expect_identical(nrow(h), length(pts))
    sg <- vapply(pts, function(p) {
      r <- fn(p, scores = TRUE, hessian = TRUE)
      sum(r$gradient * solve(curv[[m]](r), r$gradient))
    }, 1)
    expect_equal(h$scaled_gradient, sg, tolerance = 1e-8, info = m)
    # the convergence measure: the last row is the returned one, below tol
    expect_identical(h$scaled_gradient[nrow(h)], res$scaled_gradient)
    expect_identical(res$code, 0L)
    expect_lt(res$scaled_gradient, 1e-9)
    # it falls by orders of magnitude where max|gradient| need not say so
    expect_gt(h$scaled_gradient[1], 1e6 * res$scaled_gradient)
  }
  # BFGS: A is its own approximation; the history is there and ends at the measure
  res <- iclv:::.iclv_optimize(fn, start, iclv_control(tol = 1e-10, hessian = FALSE, vcov = "bhhh"))
  expect_true(all(is.finite(res$history$scaled_gradient) & res$history$scaled_gradient >= 0))
  expect_identical(res$history$scaled_gradient[nrow(res$history)], res$scaled_gradient)
})
