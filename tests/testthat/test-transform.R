# The optimizer's parameterisation against finite differences.
#
# Layout of the natural parameters (P = 10):
#   1 load_a      free, identity
#   2-4 tau_a1..3 free thresholds: first + log increments
#   5 sd_b        free sd: log
#   6-7 tau_c1..2 thresholds with tau_c1 fixed: tau_c2 stays as is
#   8 sd_d        fixed sd
#   9 beta        free, identity
#   10 tau_e1     a single free threshold (binary-like ordered indicator)

tr_setup <- function() {
  names <- c("load_a", "tau_a1", "tau_a2", "tau_a3", "sd_b", "tau_c1", "tau_c2", "sd_d", "beta", "tau_e1")
  theta <- c(0.7, -1.2, 0.1, 1.5, 0.8, -0.5, 0.9, 1.3, -0.4, 0.2)
  free <- c(TRUE, TRUE, TRUE, TRUE, TRUE, FALSE, TRUE, FALSE, TRUE, TRUE)
  thresholds <- list(2:4, 6:7, 10L)
  positive <- c(5L, 8L)
  list(names = names, theta = theta, free = free, thresholds = thresholds, positive = positive,
       tr = iclv:::.transform_new(names, theta, free, thresholds, positive))
}

# a smooth test function of the natural parameters with analytic derivatives:
# f = a'theta + theta' B theta / 2 + sum(sin(theta))
fn_nat <- function(P, seed = 3) {
  set.seed(seed)
  a <- rnorm(P)
  M <- matrix(rnorm(P * P), P)
  B <- -(crossprod(M) / P)
  list(f = function(th) sum(a * th) + drop(th %*% B %*% th) / 2 + sum(sin(th)),
       g = function(th) a + drop(B %*% th) + cos(th),
       h = function(th) B - diag(sin(th)))
}

num_grad <- function(f, x, h = 1e-6) {
  vapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, h)
    (f(x + e) - f(x - e)) / (2 * h)
  }, numeric(1))
}
num_jac <- function(f, x, h = 1e-6) {
  do.call(cbind, lapply(seq_along(x), function(i) {
    e <- replace(numeric(length(x)), i, h)
    (f(x + e) - f(x - e)) / (2 * h)
  }))
}

test_that("the map classifies parameters as documented", {
  s <- tr_setup()
  tr <- s$tr
  expect_identical(tr$n_free, 8L)
  expect_identical(tr$free_names, s$names[s$free])
  expect_identical(tr$kind, c("id", "thr1", "thr_inc", "thr_inc", "log", "id", "id", "thr1"))
  expect_identical(tr$nonlinear, tr$kind %in% c("log", "thr_inc"))
})

test_that("natural -> internal -> natural is the identity and keeps fixed values", {
  s <- tr_setup()
  u <- iclv:::.to_internal(s$theta, s$tr)
  expect_equal(unname(u[2:4]), c(-1.2, log(1.3), log(1.4)))
  expect_equal(unname(u[5]), log(0.8))
  back <- iclv:::.to_natural(u, s$tr)
  expect_equal(unname(back), s$theta, tolerance = 1e-14)
  expect_named(back, s$names)
  # any internal vector gives increasing thresholds and positive sds
  set.seed(1)
  for (i in 1:20) {
    th <- iclv:::.to_natural(rnorm(8, sd = 2), s$tr)
    expect_true(all(diff(th[2:4]) > 0))
    expect_gt(th[5], 0)
    expect_identical(unname(th[c(6, 8)]), s$theta[c(6, 8)])
  }
})

test_that("the Jacobian matches finite differences", {
  s <- tr_setup()
  set.seed(2)
  for (i in 1:3) {
    u <- iclv:::.to_internal(s$theta, s$tr) + rnorm(8, sd = 0.3)
    J <- iclv:::.transform_jacobian(u, s$tr)
    Jn <- num_jac(function(v) iclv:::.to_natural(v, s$tr)[s$free], u)
    expect_equal(unname(J), unname(Jn), tolerance = 1e-8)
  }
})

test_that("gradient, scores and Hessian follow the chain rule (finite differences)", {
  s <- tr_setup()
  fz <- fn_nat(10)
  f_int <- function(u) fz$f(iclv:::.to_natural(u, s$tr))
  u <- iclv:::.to_internal(s$theta, s$tr) + c(0.1, -0.2, 0.3, -0.1, 0.2, 0.05, -0.3, 0.1)
  th <- iclv:::.to_natural(u, s$tr)
  gn <- fz$g(th)[s$free]
  Hn <- fz$h(th)[s$free, s$free]
  # scores: split the gradient over 4 "individuals" with different weights
  w <- c(0.1, 0.2, 0.3, 0.4)
  Sn <- outer(w, gn)
  d <- iclv:::.transform_derivs(u, s$tr, gn, Sn, Hn)
  expect_equal(unname(d$gradient), num_grad(f_int, u), tolerance = 1e-7)
  g_int <- function(v) {
    t2 <- iclv:::.to_natural(v, s$tr)
    iclv:::.transform_derivs(v, s$tr, fz$g(t2)[s$free])$gradient
  }
  Hnum <- num_jac(g_int, u)
  expect_equal(unname(d$hessian), unname((Hnum + t(Hnum)) / 2), tolerance = 1e-6)
  # and the Hessian by second differences of f itself, for one nonlinear pair
  h <- 1e-4
  e3 <- replace(numeric(8), 3, h)
  e5 <- replace(numeric(8), 5, h)
  d35 <- (f_int(u + e3 + e5) - f_int(u + e3 - e5) - f_int(u - e3 + e5) + f_int(u - e3 - e5)) / (4 * h^2)
  d33 <- (f_int(u + e3) - 2 * f_int(u) + f_int(u - e3)) / h^2
  expect_equal(d$hessian[3, 5], d35, tolerance = 1e-5)
  expect_equal(d$hessian[3, 3], d33, tolerance = 1e-5)
  expect_equal(unname(colSums(d$scores)), unname(d$gradient), tolerance = 1e-12)
  expect_equal(colnames(d$scores), s$tr$free_names)
  expect_equal(dimnames(d$hessian), list(s$tr$free_names, s$tr$free_names))
})

test_that("constraint violations are reported by name", {
  s <- tr_setup()
  th <- s$theta
  expect_null(iclv:::.check_constraints(th, s$names, s$thresholds, s$positive))
  th[3] <- -2
  expect_match(iclv:::.check_constraints(th, s$names, s$thresholds, s$positive), "'tau_a2'")
  th <- s$theta
  th[5] <- 0
  expect_match(iclv:::.check_constraints(th, s$names, s$thresholds, s$positive), "'sd_b' must be > 0")
})

test_that("the sparse chain rule equals the dense Jacobian products bit for bit (issue 13)", {
  # groups of 4, 3 and 4 free thresholds (two of equal size are stacked),
  # one group with a fixed threshold (identity), two log sds, identities
  names <- c("l1", "t1_1", "t1_2", "t1_3", "t1_4", "s1", "t2_1", "t2_2", "t2_3", "b", "t3_1", "t3_2",
             "t3_3", "t3_4", "t4_1", "t4_2", "s2")
  theta <- c(0.5, -1.5, -0.2, 0.4, 1.9, 0.8, -0.7, 0.3, 1.1, 0.2, -2, -1, 0, 1, -0.3, 0.6, 1.4)
  free <- rep(TRUE, 17)
  free[15] <- FALSE
  tr <- iclv:::.transform_new(names, theta, free, list(2:5, 7:9, 11:14, 15:16), c(6L, 17L))
  set.seed(8)
  n <- tr$n_free
  u <- iclv:::.to_internal(theta, tr) + rnorm(n, sd = 0.2)
  g <- rnorm(n)
  S <- matrix(rnorm(5 * n), 5)
  H <- crossprod(matrix(rnorm(n * n), n))
  J <- iclv:::.transform_jacobian(u, tr) # the dense reference: the products the optimizer used before
  d <- iclv:::.transform_derivs(u, tr, g, S, H)
  expect_identical(unname(d$gradient), unname(drop(crossprod(J, g))))
  expect_identical(unname(d$scores), unname(S %*% J))
  h <- crossprod(J, H %*% J) + diag(ifelse(tr$nonlinear, unname(drop(crossprod(J, g))), 0), n)
  expect_identical(unname(d$hessian), unname((h + t(h)) / 2))
  # and it is the Jacobian of .to_natural (finite differences)
  expect_equal(unname(J), unname(num_jac(function(v) iclv:::.to_natural(v, tr)[free], u)), tolerance = 1e-7)
})
