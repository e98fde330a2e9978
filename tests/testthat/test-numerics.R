# The special functions of src/numerics.h, exercised through the engine on
# one-observation models whose log-likelihood has a closed form: with a zero
# loading, l = log P(y) does not depend on the draws, so the simulated
# log-likelihood is exactly the link function at the thresholds.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# One individual, one LV, one observation of one indicator. Parameters:
# 1 = loading (on LV 0), then thresholds (ordered) or intercept (binary) or
# intercept and sd (normal). Draws: `user` (1 x R x 1).
one_obs <- function(type, y, ncat = 3L, user = array(0.7, c(1, 1, 1))) {
  ty <- .ind_codes[[type]]
  ind <- list(type = ty, ncat = if (ty %in% 1:2) ncat else if (ty == 3L) 0L else 2L,
              thr = if (ty %in% 1:2) 1L else -1L, icpt = if (ty >= 3L) 1L else -1L,
              sd = if (ty == 3L) 2L else -1L, load_lv = 0L, load_par = 0L)
  n_par <- if (ty %in% 1:2) ncat else if (ty == 3L) 3L else 2L
  desc <- list(n_ind = 1L, n_lv = 1L, n_par = n_par, lv_order = 0L,
               struct = data.frame(lv = integer(0), par = integer(0), src_type = integer(0),
                                   src = integer(0)),
               indicators = list(ind), obs = data.frame(ind = 0L, indic = 0L, val = y),
               choice_type = 0L)
  iclv:::.engine_new(compile_by_hand(desc), user_draws(user), n_threads = 1L)
}

# Stable R references for log(F(b) - F(a)), a < b.
ref_logdiff_probit <- function(a, b) {
  if (a + b > 0) { t <- a; a <- -b; b <- -t }
  if (b > 0) return(log(stats::pnorm(b) - stats::pnorm(a)))
  lb <- stats::pnorm(b, log.p = TRUE)
  la <- stats::pnorm(a, log.p = TRUE)
  lb + log1p(-exp(la - lb))
}
ref_logdiff_logit <- function(a, b) {
  if (a + b > 0) { t <- a; a <- -b; b <- -t }
  lb <- stats::plogis(b, log.p = TRUE)
  la <- stats::plogis(a, log.p = TRUE)
  lb + log1p(-exp(la - lb))
}

rel_err <- function(x, ref) abs(x - ref) / pmax(abs(ref), 1e-300)

grid_ab <- rbind(
  c(-1, 1), c(-0.3, 0.2), c(0.1, 0.4), c(2, 5), c(-5, -2), c(6, 9), c(-9, -6),
  c(-40, -38), c(-45, -40), c(38, 40), c(40, 45), c(-200, -150), c(150, 200),
  c(-36, -34), c(-35.5, -34.5), c(34.5, 35.5), c(-1000, -990), c(990, 1000),
  c(-30, 0), c(0, 30), c(-60, 60), c(-3, 50), c(-50, 3), c(-12, -11.9)
)

test_that("ordered probit: log(Phi(b) - Phi(a)) and its derivatives are accurate on both tails", {
  e <- one_obs("ordered_probit", y = 2)
  for (i in seq_len(nrow(grid_ab))) {
    a <- grid_ab[i, 1]
    b <- grid_ab[i, 2]
    th <- c(0, a, b)
    out <- iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE)
    ref <- ref_logdiff_probit(a, b)
    info <- sprintf("(a, b) = (%g, %g)", a, b)
    expect_true(is.finite(out$loglik), label = info)
    expect_lt(rel_err(out$loglik, ref), 1e-12, label = info)
    ga <- -exp(stats::dnorm(a, log = TRUE) - ref)
    gb <- exp(stats::dnorm(b, log = TRUE) - ref)
    expect_lt(max(rel_err(out$gradient[2:3], c(ga, gb))), 1e-9, label = info)
    expect_true(all(is.finite(out$hessian)), label = info)
    # second derivatives against differences of the reference derivatives
    h <- 1e-5 * max(1, abs(a), abs(b))
    dga <- function(a, b) -exp(stats::dnorm(a, log = TRUE) - ref_logdiff_probit(a, b))
    dgb <- function(a, b) exp(stats::dnorm(b, log = TRUE) - ref_logdiff_probit(a, b))
    haa <- (dga(a + h, b) - dga(a - h, b)) / (2 * h)
    hbb <- (dgb(a, b + h) - dgb(a, b - h)) / (2 * h)
    hab <- (dga(a, b + h) - dga(a, b - h)) / (2 * h)
    fd <- c(haa, hab, hbb)
    got <- c(out$hessian[2, 2], out$hessian[2, 3], out$hessian[3, 3])
    expect_lt(max(abs(got - fd) / pmax(1e-3, abs(fd))), 1e-4, label = info)
  }
})

test_that("ordered probit: the end categories are one-sided (a = -Inf, b = +Inf)", {
  for (x in c(-1e4, -300, -38, -5, 0, 5, 38, 300)) {
    lo <- iclv:::.engine_eval(one_obs("ordered_probit", y = 1), c(0, x, x + 1), TRUE, FALSE, TRUE)
    hi <- iclv:::.engine_eval(one_obs("ordered_probit", y = 3), c(0, x - 1, x), TRUE, FALSE, TRUE)
    expect_lt(rel_err(lo$loglik, stats::pnorm(x, log.p = TRUE)), 1e-13, label = x)
    expect_lt(rel_err(hi$loglik, stats::pnorm(-x, log.p = TRUE)), 1e-13, label = x)
    mills <- exp(stats::dnorm(x, log = TRUE) - stats::pnorm(x, log.p = TRUE))
    # (the reference itself loses ~ x^2 eps in exp(log phi - log Phi))
    expect_lt(rel_err(lo$gradient[2], mills), 1e-12 + 1e-15 * x^2, label = x)
    expect_identical(lo$gradient[3], 0)
    expect_true(all(is.finite(c(lo$hessian, hi$hessian))), label = x)
    # d lambda / dx = -lambda (x + lambda) lies in (-1, 0)
    expect_true(lo$hessian[2, 2] <= 0 && lo$hessian[2, 2] > -1, label = x)
  }
})

test_that("ordered logit: log(F(b) - F(a)) is accurate on both tails", {
  e <- one_obs("ordered_logit", y = 2)
  for (i in seq_len(nrow(grid_ab))) {
    a <- grid_ab[i, 1]
    b <- grid_ab[i, 2]
    out <- iclv:::.engine_eval(e, c(0, a, b), gradient = TRUE, hessian = TRUE)
    ref <- ref_logdiff_logit(a, b)
    info <- sprintf("(a, b) = (%g, %g)", a, b)
    expect_lt(rel_err(out$loglik, ref), 1e-12, label = info)
    ga <- -exp(stats::dlogis(a, log = TRUE) - ref)
    gb <- exp(stats::dlogis(b, log = TRUE) - ref)
    expect_lt(max(rel_err(out$gradient[2:3], c(ga, gb))), 1e-9, label = info)
    expect_true(all(is.finite(out$hessian)), label = info)
  }
  # moderate values: the direct formula
  out <- iclv:::.engine_eval(e, c(0, -0.4, 1.3), gradient = FALSE)
  expect_equal(out$loglik, log(stats::plogis(1.3) - stats::plogis(-0.4)), tolerance = 1e-14)
})

test_that("binary indicators: log Phi, the inverse Mills ratio and log F stay finite", {
  for (x in c(-1e4, -1000, -100, -40, -37, -36, -35, -34, -20, -5, 0, 3, 10, 40)) {
    # y = 1: log F(icpt + loading * eta) with loading 0
    p <- iclv:::.engine_eval(one_obs("binary_probit", y = 1), c(0, x), TRUE)
    expect_lt(rel_err(p$loglik, stats::pnorm(x, log.p = TRUE)), 1e-13, label = x)
    lam <- exp(stats::dnorm(x, log = TRUE) - stats::pnorm(x, log.p = TRUE))
    expect_lt(rel_err(p$gradient[2], lam), 1e-12 + 1e-15 * x^2, label = x)
    p0 <- iclv:::.engine_eval(one_obs("binary_probit", y = 0), c(0, -x), TRUE)
    expect_lt(rel_err(p0$loglik, stats::pnorm(x, log.p = TRUE)), 1e-13, label = x)
    expect_lt(rel_err(p0$gradient[2], -lam), 1e-12 + 1e-15 * x^2, label = x)
    l <- iclv:::.engine_eval(one_obs("binary_logit", y = 1), c(0, x), TRUE, FALSE, TRUE)
    expect_lt(rel_err(l$loglik, stats::plogis(x, log.p = TRUE)), 1e-13, label = x)
    expect_lt(rel_err(l$gradient[2], stats::plogis(-x)), 1e-13, label = x)
    expect_lt(rel_err(l$hessian[2, 2], -stats::dlogis(x)), 1e-12, label = x)
  }
})

test_that("normal indicators: the log density and its derivatives", {
  e <- one_obs("normal", y = 1.7, user = array(-0.4, c(1, 1, 1)))
  th <- c(0.6, 0.2, 1.3)
  out <- iclv:::.engine_eval(e, th, TRUE, FALSE, TRUE)
  mu <- th[2] + th[1] * -0.4
  expect_equal(out$loglik, stats::dnorm(1.7, mu, th[3], log = TRUE), tolerance = 1e-14)
  z <- (1.7 - mu) / th[3]
  expect_equal(out$gradient, c(-0.4 * z / th[3], z / th[3], (z^2 - 1) / th[3]), tolerance = 1e-13)
  expect_equal(out$hessian[3, 3], (1 - 3 * z^2) / th[3]^2, tolerance = 1e-13)
})

test_that("the average over draws is taken in log space (no underflow)", {
  # l_r ~ -1e4 for every draw: exp(l_r) underflows, the log-sum-exp does not
  user <- array(c(-1, 0.5, 2), c(1, 3, 1))
  e <- one_obs("normal", y = 0, user = user)
  th <- c(3, 5, 0.05)
  out <- iclv:::.engine_eval(e, th, gradient = TRUE)
  l <- stats::dnorm(0, th[2] + th[1] * user[1, , 1], th[3], log = TRUE)
  expect_true(all(exp(l) == 0))
  expect_equal(out$loglik, max(l) + log(mean(exp(l - max(l)))), tolerance = 1e-14)
  expect_true(all(is.finite(out$gradient)))
})

test_that("MNL with huge utilities stays finite and exact", {
  desc <- list(n_ind = 1L, n_lv = 1L, n_par = 2L, lv_order = 0L,
               struct = data.frame(lv = integer(0), par = integer(0), src_type = integer(0),
                                   src = integer(0)),
               indicators = list(), obs = data.frame(ind = integer(0), indic = integer(0),
                                                     val = numeric(0)),
               choice_type = 1L, n_alt = 3L, rows = data.frame(ind = 0L, y = 1L),
               X = matrix(c(800, 805, 790), 1, 3), avail = NULL,
               util = data.frame(alt = 0:2, par = c(0L, 0L, 0L), col = 0:2, lv = -1L))
  desc$util <- rbind(desc$util, data.frame(alt = 2L, par = 1L, col = -1L, lv = 0L))
  e <- iclv:::.engine_new(compile_by_hand(desc), user_draws(array(0.3, c(1, 1, 1))), n_threads = 1L)
  th <- c(1, 2)
  V <- c(800, 805, 790 + 2 * 0.3)
  out <- iclv:::.engine_eval(e, th, TRUE, FALSE, TRUE)
  mx <- max(V)
  P <- exp(V - mx) / sum(exp(V - mx))
  # absolute accuracy is limited by eps * |V| ~ 2e-13
  expect_lt(abs(out$loglik - (V[2] - mx - log(sum(exp(V - mx))))), 1e-12)
  expect_lt(max(abs(out$gradient - c(sum((c(0, 1, 0) - P) * c(800, 805, 790)), -P[3] * 0.3))),
            1e-10)
  expect_true(all(is.finite(out$hessian)))
})
