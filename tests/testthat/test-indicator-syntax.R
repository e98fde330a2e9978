# lavaan's `~ 1` and `~~` on indicators (R/indicator.R): the intercept and
# scale of an ordered indicator, P(y = c) = F((tau_c - alpha - s) / sigma)
# - F((tau_{c-1} - alpha - s) / sigma), and the modifiers on a normal or
# binary indicator's intercept and standard deviation; against the pure-R
# reference, finite differences, the default model, recovery and the
# identification check.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# One LV, four ordered indicators: q1 the normalised one (intercept 0, scale
# 1), q2 and q3 with intercept and scale, q4 with an intercept only; a
# normal indicator; an MNL choice.
ind_model <- function(type = "ordered_probit", extra = "q2 ~ 1\n q2 ~~ q2\n q3 ~ 1\n q3 ~~ q3\n q4 ~ 1",
                      choice = TRUE) {
  iclv_model(paste("att =~ q1 + q2 + q3 + q4 + x5\n q4 | t1 + t2", extra, sep = "\n"),
             structural = "att ~ age",
             indicators = list(q1 = type, q2 = type, q3 = type, q4 = type, x5 = "normal"),
             choice = if (choice) iclv_choice("mnl", "ch", list(
               a = "asc_a + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
             id = "ID", categories = list(q1 = 3, q2 = 3, q3 = 3))
}
ind_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
               alpha_q2 = 0.3, sigma_q2 = 1.4, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, alpha_q3 = -0.4,
               sigma_q3 = 0.7, zeta_q4 = 0.9, tau_q4_1 = -0.6, tau_q4_2 = 0.7, alpha_q4 = 0.2, zeta_x5 = 0.6,
               alpha_x5 = 1, sigma_x5 = 0.5, gamma_att_age = 0.5, asc_a = 0.2, b_price = -1, l_att = 0.7,
               asc_b = -0.3)

test_that("the syntax frees intercepts and scales of ordered indicators, with lavaan's modifiers", {
  m <- ind_model()
  pt <- m$partable
  expect_identical(pt$name, names(ind_truth))
  r <- pt[pt$name %in% c("alpha_q2", "sigma_q2", "alpha_q4", "alpha_x5", "sigma_x5"), ]
  expect_identical(r$op, c("~1", "~~", "~1", "~1", "~~"))
  expect_identical(r$role, c("intercept", "sd", "intercept", "intercept", "sd"))
  expect_identical(r$lhs, c("q2", "q2", "q4", "x5", "x5"))
  expect_identical(r$rhs, c("", "q2", "", "", "x5"))
  expect_identical(r$start, c(0, 1, 0, NA, NA)) # ordered: the defaults; normal: from the data
  expect_identical(m$ord_icpt, c("q2", "q3", "q4"))
  expect_identical(m$ord_scale, c("q2", "q3"))
  # written in `structural` too, in another order
  m2 <- iclv_model("att =~ q1 + q2 + q3 + q4 + x5\n q4 | t1 + t2", structural = "att ~ age\n q3 ~~ q3\n q4 ~ 1
                    q2 ~~ q2\n q3 ~ 1\n q2 ~ 1", indicators = m$ind_type, choice = m$choice, id = "ID",
                   categories = list(q1 = 3, q2 = 3, q3 = 3))
  expect_identical(m2$partable, pt)
  # the defaults written out: no parameter
  m0 <- ind_model(extra = "q2 ~ 0*1\n q2 ~~ 1*q2\n q3 ~ NA*1")
  expect_false(any(c("alpha_q2", "sigma_q2") %in% m0$partable$name))
  expect_true("alpha_q3" %in% m0$partable$name)
  # values: `~~` means a variance (the parameter is its square root)
  m1 <- ind_model(extra = "q2 ~ 0.5*1\n q2 ~~ 4*q2\n q3 ~ start(-0.2)*1\n q3 ~~ start(2.25)*q3
                           x5 ~ 0*1\n x5 ~~ 0.09*x5")
  fx <- m1$partable[!m1$partable$free, c("name", "start")]
  expect_identical(fx$name, c("alpha_q2", "sigma_q2", "alpha_x5", "sigma_x5"))
  expect_equal(fx$start, c(0.5, 2, 0, 0.3))
  expect_equal(m1$partable$start[match(c("alpha_q3", "sigma_q3"), m1$partable$name)], c(-0.2, 1.5))
  # labels: equal intercepts, equal scales (shared with shared thresholds)
  m3 <- iclv_model("att =~ q1 + q2 + q3\n q1 | a1*t1 + a2*t2\n q2 | a1*t1 + a2*t2\n q3 | a1*t1 + a2*t2
                    q2 ~ c*1\n q3 ~ c*1\n q2 ~~ s*q2\n q3 ~~ s*q3", id = "ID", indicators = "ordered_logit")
  expect_identical(m3$partable$name, c("zeta_q1", "a1", "a2", "zeta_q2", "c", "s", "zeta_q3"))
  expect_identical(m3$partable$label, c("", "a1", "a2", "", "c", "s", ""))
  # scales are positive: the optimizer works on their logs
  d <- iclv_simulate(ind_model(), ind_truth, n = 10, n_tasks = 2, seed = 1)
  cmp <- iclv:::.iclv_compile(ind_model(), d)
  expect_true(all(match(c("sigma_q2", "sigma_q3", "sigma_x5"), cmp$partable$name) %in% cmp$positive))
  expect_identical(cmp$c$ind_icpt, c(-1L, match(c("alpha_q2", "alpha_q3", "alpha_q4", "alpha_x5"), cmp$partable$name) - 1L))
  expect_identical(cmp$c$ind_sd, c(-1L, match(c("sigma_q2", "sigma_q3"), cmp$partable$name) - 1L, -1L,
                                   match("sigma_x5", cmp$partable$name) - 1L))
  expect_error(iclv_loglik(ind_model(), d, replace(ind_truth, "sigma_q2", -1), draws = iclv_draws("halton", 5)),
               class = "iclv_error_input", regexp = "sigma_q2")
})

test_that("the log-likelihood equals the pure-R reference, probit and logit", {
  for (type in c("ordered_probit", "ordered_logit")) {
    m <- ind_model(type)
    d <- iclv_simulate(m, ind_truth, n = 20, n_tasks = 2, seed = 2)
    cmp <- iclv:::.iclv_compile(m, d)
    set.seed(5)
    user <- array(rnorm(20 * 7), c(20, 7, 1), dimnames = list(NULL, NULL, "att"))
    for (k in 1:3) {
      p <- ind_truth + if (k == 1) 0 else stats::runif(length(ind_truth), -0.2, 0.2)
      ll <- iclv_loglik(m, d, p, draws = user)$loglik
      ref <- ref_loglik(cmp$c, p[cmp$partable$name], unname(user))$loglik
      expect_lt(abs(ll - ref), 1e-10, label = type)
    }
    # the reference itself is not blind to the new parameters
    p2 <- replace(ind_truth, c("alpha_q2", "sigma_q3"), c(1, 2))
    expect_gt(abs(ref_loglik(cmp$c, p2[cmp$partable$name], unname(user))$loglik -
                    ref_loglik(cmp$c, ind_truth[cmp$partable$name], unname(user))$loglik), 0.1)
  }
})

test_that("gradient and Hessian match finite differences, on both CPU paths, which agree", {
  for (type in c("ordered_probit", "ordered_logit")) {
    m <- ind_model(type)
    d <- iclv_simulate(m, ind_truth, n = 15, n_tasks = 2, seed = 3)
    cmp <- iclv:::.iclv_compile(m, d)
    spec <- iclv:::.draws_spec(iclv_draws("mlhs", 8, seed = 4), cmp$n_ind, 1L)
    set.seed(9)
    th <- ind_truth[cmp$partable$name] + stats::runif(length(ind_truth), -0.15, 0.15)
    evs <- list()
    for (refpath in c("0", "1")) {
      ev <- expect_engine_fd(cmp$c, spec, th, refpath, what = paste0(", ", type)) # (helper-compiled.R)
      k <- match(c("alpha_q2", "sigma_q2", "alpha_q3", "sigma_q3", "alpha_q4"), names(th))
      expect_true(all(abs(diag(ev$hessian)[k]) > 1e-3))
      evs[[refpath]] <- ev
    }
    # the fast kernels (their scalar reference-link branch for these
    # observations, engine_fast.c) and the per-pair reference agree
    for (el in c("loglik", "loglik_i", "gradient", "scores", "hessian"))
      expect_equal(evs[["0"]][[el]], evs[["1"]][[el]], tolerance = 1e-12, label = paste(el, type))
    e <- iclv:::.engine_new(cmp$c, spec, n_threads = 1L)
    iclv:::.engine_eval(e, th, gradient = TRUE)
    expect_gt(iclv:::.engine_paths(e)[["individuals"]], 0) # the fast path took them
  }
})

test_that("intercept 0 and scale 1, fixed, give the default model's log-likelihood bit for bit", {
  for (type in c("ordered_probit", "ordered_logit")) {
    m <- ind_model(type)
    m0 <- ind_model(type, extra = "")
    d <- iclv_simulate(m, ind_truth, n = 20, n_tasks = 2, seed = 6)
    set.seed(7)
    user <- array(rnorm(20 * 6), c(20, 6, 1), dimnames = list(NULL, NULL, "att"))
    p1 <- replace(ind_truth, c("alpha_q2", "sigma_q2", "alpha_q3", "sigma_q3", "alpha_q4"), c(0, 1, 0, 1, 0))
    old <- Sys.getenv("ICLV_CPU_REFERENCE", unset = NA)
    Sys.setenv(ICLV_CPU_REFERENCE = "1") # the same path for both: the atom of iclv_core.h
    l1 <- iclv_loglik(m, d, p1, draws = user, hessian = TRUE)
    l0 <- iclv_loglik(m0, d, p1[m0$partable$name], draws = user, hessian = TRUE)
    if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old)
    expect_identical(l1$loglik, l0$loglik)
    expect_identical(l1$gradient[names(l0$gradient)], l0$gradient)
    expect_identical(l1$hessian[names(l0$gradient), names(l0$gradient)], l0$hessian)
    # and the default model's fast path, to rounding
    lf <- iclv_loglik(m0, d, p1[m0$partable$name], draws = user)
    expect_equal(lf$loglik, l0$loglik, tolerance = 1e-13)
    # fixed by `fixed =`: the same
    lx <- iclv_loglik(iclv_model(m$measurement, structural = "att ~ age\n q2 ~ 1\n q2 ~~ q2", indicators = m$ind_type,
                                 choice = m$choice, id = "ID", categories = list(q1 = 3, q2 = 3, q3 = 3, q4 = 3),
                                 fixed = c(alpha_q2 = 0, sigma_q2 = 1)),
                      d, p1[setdiff(names(p1), c("alpha_q3", "sigma_q3", "alpha_q4"))], draws = user)
    expect_equal(lx$loglik, l0$loglik, tolerance = 1e-13)
  }
})

# Biogeme's Optima H05 measurement shape: ordered-logit Likert items sharing
# their thresholds (labels), intercepts, loadings and scales, the first item
# normalised (intercept 0, scale 1).
h05_model <- function() {
  iclv_model("envir =~ e1 + e2 + e3 + e4
    e1 | t1*t1 + t2*t2 + t3*t3
    e2 | t1*t1 + t2*t2 + t3*t3
    e3 | t1*t1 + t2*t2 + t3*t3
    e4 | t1*t1 + t2*t2 + t3*t3
    e2 ~ 1; e3 ~ 1; e4 ~ 1
    e2 ~~ e2; e3 ~~ e3; e4 ~~ e4", structural = "envir ~ age", indicators = "ordered_logit", id = "ID")
}
h05_truth <- c(zeta_e1 = 1.5, t1 = -1.2, t2 = 0, t3 = 1.3, zeta_e2 = -1, alpha_e2 = 0.4, sigma_e2 = 1.5,
               zeta_e3 = 1.2, alpha_e3 = -0.3, sigma_e3 = 0.7, zeta_e4 = 0.8, alpha_e4 = 0.2, sigma_e4 = 1.2,
               gamma_envir_age = 0.5)

test_that("intercepts and scales are recovered from simulated data (H05's measurement shape)", {
  m <- h05_model()
  expect_identical(m$partable$name, names(h05_truth))
  d <- iclv_simulate(m, h05_truth, n = 1500, seed = 21)
  fit <- iclv(m, d, draws = iclv_draws("scrambled_halton", 60, seed = 2), backend = "cpu",
              control = iclv_control(trace = 0))
  expect_identical(fit$convergence$code, 0L)
  se <- sqrt(diag(vcov(fit)))
  z <- (coef(fit) - h05_truth[names(coef(fit))]) / se
  expect_true(all(abs(z) < 3), label = paste(names(z)[abs(z) >= 3], collapse = ", "))
  # the free parameters move: the scales are not stuck at their start
  expect_gt(abs(coef(fit)[["sigma_e3"]] - 1), 3 * se[["sigma_e3"]])
  # simulation uses the intercept: e2's mean category is shifted relative to
  # a model without it
  d0 <- iclv_simulate(m, replace(h05_truth, "alpha_e2", 2), n = 1500, seed = 21)
  expect_gt(mean(d0$e2), mean(d$e2) + 0.3)
  # predict(type = "lv") through the engine equals the reference posterior means
  comp <- fit$compiled
  E <- iclv:::.draws_generate(iclv:::.draws_spec(fit$draws_design, comp$n_ind, 1L))
  cm <- iclv:::.compiled_slice(comp$c, 1L, 30L)
  ref <- ref_predict(cm, coef(fit)[comp$partable$name], E[1:30, , , drop = FALSE])
  lv <- predict(fit, type = "lv")
  expect_lt(max(abs(lv$mean_envir[1:30] - ref$lv_mean[, 1])), 1e-10)
})

test_that("an intercept with every threshold free, or a scale with every loading and threshold free, is refused", {
  m <- ind_model(extra = "q2 ~ 1")
  d <- iclv_simulate(m, ind_truth[m$partable$name], n = 60, n_tasks = 2, seed = 4)
  err <- expect_error(iclv(m, d, draws = iclv_draws("halton", 10), backend = "cpu",
                           control = iclv_control(trace = 0)), class = "iclv_error_identification")
  expect_true(all(c("alpha_q2", "tau_q2_1", "tau_q2_2") %in% err$parameters))
  expect_match(conditionMessage(err), "alpha_q2")
  # two intercepts free with (their own) free thresholds: both named
  m2 <- ind_model(extra = "q2 ~ 1\n q3 ~ 1")
  err <- expect_error(iclv(m2, iclv_simulate(m2, ind_truth[m2$partable$name], n = 60, n_tasks = 2, seed = 4),
                           draws = iclv_draws("halton", 10), backend = "cpu", control = iclv_control(trace = 0)),
                      class = "iclv_error_identification")
  expect_true(all(c("alpha_q2", "alpha_q3") %in% err$parameters))
  # a scale with the indicator's own loading and thresholds free: (tau, zeta, sigma) scale together
  m4 <- ind_model(extra = "q3 ~~ q3")
  err <- expect_error(iclv(m4, iclv_simulate(m4, ind_truth[m4$partable$name], n = 60, n_tasks = 2, seed = 4),
                           draws = iclv_draws("halton", 10), backend = "cpu", control = iclv_control(trace = 0)),
                      class = "iclv_error_identification")
  expect_true(all(c("sigma_q3", "zeta_q3", "tau_q3_1", "tau_q3_2") %in% err$parameters))
  # a fixed threshold of the indicator identifies it: no refusal from the check
  m3 <- ind_model(extra = "q2 ~ 1")
  expect_error(suppressWarnings(iclv(m3, d, draws = iclv_draws("halton", 10), backend = "cpu",
                                     fixed = c(tau_q2_1 = -0.5),
                                     control = iclv_control(trace = 0, maxit = 2, hessian = FALSE,
                                                            vcov = "bhhh"))), NA)
})

test_that("bad specifications are classed errors that name the statement", {
  bin <- function(extra) iclv_model(paste("f =~ y1 + y2 + b3", extra, sep = "\n"), id = "ID", categories = 3,
                                    indicators = list(b3 = "binary"))
  expect_error(bin("b3 ~~ b3"), class = "iclv_error_spec", regexp = "not identified")
  expect_error(bin("y1 ~~ y2"), class = "iclv_error_spec", regexp = "covariances of indicators")
  expect_error(bin("f ~~ y2"), class = "iclv_error_spec", regexp = "covariances of indicators")
  expect_error(bin("y1 ~~ -1*y1"), class = "iclv_error_spec", regexp = "positive")
  expect_error(bin("y1 ~~ 0*y1"), class = "iclv_error_spec", regexp = "positive")
  expect_error(bin("y1 ~~ start(0)*y1"), class = "iclv_error_spec", regexp = "positive")
  expect_error(bin("y1 ~ 1\n y1 ~ 1"), class = "iclv_error_spec", regexp = "twice")
  expect_error(bin("y1 ~~ y1\n y1 ~~ 2*y1"), class = "iclv_error_spec", regexp = "twice")
  expect_error(bin("y1 ~ a*1\n b3 ~ a*1"), NA) # an ordered and a binary intercept may be equal
  expect_error(bin("y1 ~~ a*y1\n y2 ~ a*1"), class = "iclv_error_spec", regexp = "scale")
  expect_error(bin("y1 ~~ a*y1\n f =~ a*y4"), class = "iclv_error_spec", regexp = "scale")
  expect_error(bin("y1 | a*t1 + b*t2\n y2 ~ a*1"), class = "iclv_error_spec", regexp = "threshold")
  expect_error(bin("y1 ~ f*1"), class = "iclv_error_spec", regexp = "latent variable")
  expect_error(bin("y1 ~ a*1\n y2 ~ a*1\n y2 ~ start(1)*1"), class = "iclv_error_spec")
  expect_error(bin("y1 ~ 1*b*1"), class = "iclv_error_spec")
  expect_error(bin("y1 ~ 2 * 1 + x"), class = "iclv_error_spec")
  # (labels on an LV's own `~~` and `~ 1`: test-lvstat.R)
  # a label with two start values
  expect_error(bin("y1 ~ start(1)*a*1\n y2 ~ start(2)*a*1"), class = "iclv_error_spec", regexp = "different")
  # a value given twice
  expect_error(iclv_model("f =~ y1 + y2\n y1 ~ 1\n y1 ~~ 2*y1", id = "ID", categories = 3,
                          fixed = c(sigma_y1 = 1)), class = "iclv_error_spec", regexp = "twice")
})

test_that("normal and binary indicators take the modifiers on their intercept and standard deviation", {
  m <- iclv_model("f =~ y1 + x2 + b3\n x2 ~ 0*1\n x2 ~~ 2*x2\n b3 ~ start(0.4)*1", id = "ID", categories = 3,
                  indicators = list(x2 = "normal", b3 = "binary_logit"))
  pt <- m$partable
  expect_identical(pt$free[match(c("alpha_x2", "sigma_x2", "alpha_b3"), pt$name)], c(FALSE, FALSE, TRUE))
  expect_equal(pt$start[match(c("alpha_x2", "sigma_x2", "alpha_b3"), pt$name)], c(0, sqrt(2), 0.4))
  # `x ~ 1` and `x ~~ x` alone are the defaults of a normal indicator
  a <- iclv_model("f =~ y1 + x2\n x2 ~ 1\n x2 ~~ x2", id = "ID", categories = 3, indicators = list(x2 = "normal"))
  b <- iclv_model("f =~ y1 + x2", id = "ID", categories = 3, indicators = list(x2 = "normal"))
  expect_identical(a$partable, b$partable)
  # labels: two normal indicators with equal intercepts and standard deviations
  m2 <- iclv_model("f =~ y1 + x2 + x3\n x2 ~ m*1\n x3 ~ m*1\n x2 ~~ v*x2\n x3 ~~ v*x3", id = "ID",
                   categories = 3, indicators = list(x2 = "normal", x3 = "normal"))
  expect_identical(m2$partable$name, c("zeta_y1", "tau_y1_1", "tau_y1_2", "zeta_x2", "m", "v", "zeta_x3"))
  th <- c(zeta_y1 = 1, tau_y1_1 = -0.5, tau_y1_2 = 0.5, zeta_x2 = 0.7, m = 1, v = 0.6, zeta_x3 = -0.4)
  d <- iclv_simulate(m2, th, n = 30, seed = 3)
  cmp <- iclv:::.iclv_compile(m2, d)
  expect_identical(cmp$c$ind_icpt[2:3], rep(match("m", cmp$partable$name) - 1L, 2))
  expect_identical(cmp$c$ind_sd[2:3], rep(match("v", cmp$partable$name) - 1L, 2))
  set.seed(2)
  user <- array(rnorm(30 * 5), c(30, 5, 1), dimnames = list(NULL, NULL, "f"))
  expect_lt(abs(iclv_loglik(m2, d, th, draws = user)$loglik - ref_loglik(cmp$c, th, unname(user))$loglik), 1e-10)
})
