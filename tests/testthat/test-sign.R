# The LV sign normalisation map (R/sign.R): a flip with the draws of the
# flipped LVs negated is the same simulated likelihood, bit for bit.

sign_model <- function(meas = "f =~ y1 + y2 + y3\n g =~ y4 + y5 + y3", st = "g ~ x1 + f\n f ~ x2", ...) {
  iclv_model(meas, structural = st,
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_p * p_a + l_f * f",
      b = "asc_b + b_p * p_b + l_g * g",
      c = "0")),
    id = "ID", categories = 3, ...)
}
sign_truth <- function(m) {
  pt <- m$partable
  p <- stats::setNames(rep(0.3, nrow(pt)), pt$name)
  thr <- pt$role == "threshold"
  p[thr] <- rep(c(-0.6, 0.7), length.out = sum(thr))
  p[pt$role == "loading"] <- c(0.9, 1.1, 0.6, 0.8, 1.2, 0.7)[seq_len(sum(pt$role == "loading"))]
  p[c("b_p", "l_f", "l_g")] <- c(-1, 0.6, -0.5)
  p
}

test_that("flipping LVs with their draws negated leaves the simulated likelihood unchanged", {
  m <- sign_model()
  p <- sign_truth(m)
  d <- iclv_simulate(m, p, n = 40, n_tasks = 3, seed = 2)
  comp <- iclv:::.iclv_compile(m, d)
  theta <- iclv:::.params_full(p, comp$partable)
  set.seed(1)
  e <- array(rnorm(40 * 15 * 2), c(40, 15, 2))
  ll <- function(th, draws) iclv_loglik(m, d, th, draws = iclv_draws(draws), gradient = FALSE)$loglik
  for (S in list(0L, 1L, c(0L, 1L))) {
    th <- theta
    first <- c("zeta_y1", "zeta_y4")[S + 1L] # the first loadings of f and g
    th[first] <- -th[first]
    fl <- iclv:::.lv_sign_flip(comp$c, th, comp$partable$free, iclv:::.lv_first_loading(m, comp$partable))
    expect_identical(fl$flip, S)
    expect_null(fl$note)
    eS <- e
    eS[, , S + 1L] <- -eS[, , S + 1L]
    expect_identical(ll(stats::setNames(fl$theta, names(th)), eS), ll(th, e))
    # after the flip every first loading is positive
    expect_true(all(fl$theta[match(c("zeta_y1", "zeta_y4"), names(th))] > 0))
    # thresholds are never flipped; the cross-loading of y3 on f and g and
    # the LV-on-LV effect follow the product rule
    thr <- comp$partable$role == "threshold"
    expect_identical(fl$theta[thr], th[thr])
    s <- c(1, 1)
    s[S + 1L] <- -1
    expect_identical(unname(fl$theta[names(th) == "gamma_g_f"]), th[["gamma_g_f"]] * s[1] * s[2])
    expect_identical(unname(fl$theta[names(th) == "l_g"]), th[["l_g"]] * s[2])
    expect_identical(unname(fl$theta[names(th) == "zeta_f_y3"]), th[["zeta_f_y3"]] * s[1])
  }
})

test_that("an LV whose sign the user set is not flipped; inconsistent shared labels are not flipped", {
  m <- sign_model("f =~ -1*y1 + y2 + y3\n g =~ y4 + y5 + y3")
  p <- sign_truth(m)
  d <- iclv_simulate(m, p, n = 20, n_tasks = 2, seed = 2)
  comp <- iclv:::.iclv_compile(m, d)
  th <- iclv:::.params_full(p, comp$partable)
  th[["zeta_y1"]] <- -1
  fl <- iclv:::.lv_sign_flip(comp$c, th, comp$partable$free, iclv:::.lv_first_loading(m, comp$partable))
  expect_identical(fl$user, 0L)
  expect_identical(fl$flip, integer())
  # a label shared by a loading of f and one of g: flipping f alone cannot be
  m2 <- sign_model("f =~ y1 + a*y2 + y3\n g =~ y4 + a*y5 + y3")
  p2 <- sign_truth(m2)
  d2 <- iclv_simulate(m2, p2, n = 20, n_tasks = 2, seed = 2)
  comp2 <- iclv:::.iclv_compile(m2, d2)
  th2 <- iclv:::.params_full(p2, comp2$partable)
  th2[["zeta_y1"]] <- -0.5
  fl2 <- iclv:::.lv_sign_flip(comp2$c, th2, comp2$partable$free, iclv:::.lv_first_loading(m2, comp2$partable))
  expect_identical(fl2$flip, integer())
  expect_match(fl2$note, "shared")
})

test_that("iclv() reports the same signs from mirror-image starts; a sign the user set is kept", {
  m <- iclv_model("f =~ y1 + y2 + y3", structural = "f ~ x1",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_p * p_a + l_f * f", b = "asc_b + b_p * p_b", c = "0")),
    id = "ID", categories = 3)
  pt <- m$partable
  p <- stats::setNames(rep(0.3, nrow(pt)), pt$name)
  p[pt$role == "threshold"] <- rep(c(-0.6, 0.7), length.out = sum(pt$role == "threshold"))
  p[pt$role == "loading"] <- c(0.9, 1.1, 0.6)
  p[c("b_p", "l_f")] <- c(-1, 0.8)
  d <- iclv_simulate(m, p, n = 300, n_tasks = 4, seed = 3)
  dr <- iclv_draws("halton", 50)
  f1 <- iclv(m, d, draws = dr)
  # from the mirror image of the truth the optimizer reaches the mirror
  # image of the estimate; iclv flips f and re-estimates
  neg <- c(zeta_y1 = -0.9, zeta_y2 = -1.1, zeta_y3 = -0.6, l_f = -0.8, gamma_f_x1 = -0.3)
  f2 <- iclv(m, d, draws = dr, start = neg)
  expect_identical(f1$lv_sign$flipped, character())
  expect_identical(f2$lv_sign$flipped, "f")
  expect_identical(f2$convergence$code, 0L)
  expect_true(all(coef(f2)[c("zeta_y1", "zeta_y2", "zeta_y3", "l_f", "gamma_f_x1")] > 0))
  expect_equal(coef(f2), coef(f1), tolerance = 1e-4)
  expect_equal(f2$loglik, f1$loglik, tolerance = 1e-8)
  expect_equal(sqrt(diag(vcov(f2))), sqrt(diag(vcov(f1))), tolerance = 1e-3)
  expect_equal(f2$partable$est, unname(coef(f2)))
  # the history holds both runs: a start with negative loadings, then the flipped run
  h <- f2$history
  expect_identical(h$iteration, seq_len(nrow(h)) - 1L)
  expect_identical(f2$convergence$iterations, max(h$iteration))
  expect_output(print(summary(f2)), "LV sign: f flipped")
  # the user fixed the sign: the first loading is -1 and stays so, the others follow
  # (with the variance free, as lavaan's marker: not over-restricted)
  mu <- iclv_model("f =~ -1*y1 + y2 + y3\n f ~~ f", structural = "f ~ x1", choice = m$choice, id = "ID",
                   categories = 3)
  fu <- iclv(mu, d, draws = dr)
  expect_identical(fu$lv_sign$user, "f")
  expect_identical(fu$lv_sign$flipped, character())
  expect_identical(unname(coef(fu)["zeta_y1"]), -1)
  expect_true(all(coef(fu)[c("zeta_y2", "zeta_y3", "l_f")] < 0))
})
