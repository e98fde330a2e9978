# Utilities nonlinear in their parameters (issue 14): names resolved by the
# data, the nonlinear rest on a tape (R/tape.R, src/iclv_tape.h).

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# A model with a scale on a sum, a lognormal coefficient on a random term, a
# Box-Cox-like power of a data ratio, an ifelse() inside a function, an LV
# inside exp() and an LV divided by; `type` the choice kernel.
tape_utils <- list(
  a = "mu * (asc_a + b_time * time_a) + l_att * att",
  b = "mu * b_time * time_b - exp(m_p + s_p * xi) * price_b",
  c = "b_c * (cost_c / inc) ^ lam + exp(ifelse(inc > 1.5, g1, g2)) * cost_c + g3 * exp(att / 2) * time_a / (2 + sqrt(inc))")
tape_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
                zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4, l_att = 0.6, mu = 1.3,
                asc_a = 0.3, b_time = -0.5, m_p = -0.7, s_p = 0.5, b_c = -0.4, lam = 0.6, g1 = -1, g2 = -0.6,
                g3 = 0.3)

tape_model <- function(type = "mnl", u = tape_utils, ...) {
  ch <- switch(type,
    mnl = iclv_choice("mnl", "ch", u),
    nl = iclv_choice("nl", "ch", u, nests = list(ab = c("a", "b"))),
    probit = iclv_choice("probit", "ch", u[c("a", "b")]),
    ordered = iclv_choice("ordered", "rating", list(index = u[["c"]]), categories = 4L))
  mk <- function() iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = ch, id = "ID",
                              categories = 3, random = "xi", ...)
  # (the ordered index and the probit's two utilities leave xi unused: a warning that says so)
  if (type %in% c("ordered", "probit")) suppressWarnings(mk()) else mk()
}

# Data of the model's shape with positive attributes (the power and the
# square root need them); choices from the simulation of a linear stand-in.
tape_data <- function(n, n_tasks, seed, type = "mnl") {
  set.seed(seed)
  m0 <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
                   choice = iclv_choice("mnl", "ch", list(a = "asc_a + l_att * att", b = "0", c = "0")),
                   id = "ID", categories = 3)
  d <- iclv_simulate(m0, tape_truth[c(1:10, 11, 13)], n = n, n_tasks = n_tasks, seed = seed)
  nr <- nrow(d)
  d$time_a <- stats::runif(nr, 0.5, 2)
  d$time_b <- stats::runif(nr, 0.5, 2)
  d$price_b <- stats::runif(nr, 0.5, 2)
  d$cost_c <- stats::runif(nr, 0.5, 2)
  d$inc <- rep(stats::runif(n, 1, 2), each = n_tasks)
  d$rating <- sample(1:4, nr, replace = TRUE)
  if (type == "probit") d$ch <- ifelse(d$ch == "c", "a", d$ch)
  d
}

tape_params <- function(comp, jitter = 0) {
  th <- tape_truth[intersect(names(tape_truth), comp$partable$name)]
  th <- th + stats::runif(length(th), -jitter, jitter)
  for (nm in setdiff(comp$partable$name, names(th))) th[nm] <- 0.4 # lambda_ab, thresholds below
  thr <- grep("^tau_rating_", comp$partable$name, value = TRUE)
  if (length(thr)) th[thr] <- c(-1, 0, 1)
  th[comp$partable$name]
}

test_that("the data resolve the names: linear utilities keep their terms, the rest becomes a tape", {
  m <- tape_model()
  d <- tape_data(30, 2, 1)
  comp <- iclv:::.iclv_compile(m, d)
  pt <- comp$partable
  expect_true(all(c("mu", "asc_a", "b_time", "m_p", "s_p", "b_c", "lam", "g1", "g2", "g3") %in% pt$name))
  # a scale and an exponent start at 1, other coefficients at 0
  expect_identical(pt$start[match(c("mu", "lam", "asc_a", "m_p"), pt$name)], c(1, 1, 0, 0))
  expect_identical(comp$model$choice$terms$a$param, "l_att") # the linear term stays linear
  expect_identical(comp$c$n_tape, 3L)
  expect_true(all(c("time_a", "price_b", "cost_c/inc", "inc > 1.5") %in% comp$xcols)) # data folded once
  expect_true(isTRUE(comp$model$choice$resolved))
  # a linear expression utility: no tape, the same terms as the provisional reading
  ml <- iclv_model("att =~ q1 + q2 + q3", choice = iclv_choice("mnl", "ch", list(
    a = "asc_a + b_time * time_a / 2 + l_att * att * (inc > 1.5)", b = "b_time * time_b", c = "0")),
    id = "ID", categories = 3)
  cl <- iclv:::.iclv_compile(ml, d)
  expect_null(cl$c$n_tape)
  expect_identical(cl$model$choice$terms, ml$choice$terms)
  # start and fixed may name parameters that only the data reveal; an unknown name still fails there
  mf <- tape_model(start = c(lam = 0.5), fixed = c(g3 = 0))
  expect_identical(iclv:::.iclv_compile(mf, d)$partable$start[match("lam", pt$name)], 0.5)
  expect_error(iclv:::.iclv_compile(tape_model(start = c(lamda = 0.5)), d), class = "iclv_error_spec",
               regexp = "'lamda' is not a parameter")
  # ambiguous: named as a parameter, but a column of the data (which wins)
  expect_error(iclv:::.iclv_compile(tape_model(start = c(inc = 0.5)), d), class = "iclv_error_spec",
               regexp = "'inc' is given in start =/fixed = as a parameter, but it is a column of the data")
  # iclv_model(data = ) resolves at once
  md <- tape_model(data = d)
  expect_true("lam" %in% md$partable$name)
})

test_that("C equals the utilities as R evaluates them (1e-10), for every choice kernel", {
  dims <- c("att", "xi")
  for (type in c("mnl", "nl", "probit", "ordered")) {
    m <- tape_model(type)
    d <- tape_data(25, 3, 2, type)
    comp <- iclv:::.iclv_compile(m, d)
    set.seed(5)
    user <- array(stats::rnorm(25 * 7 * 2), c(25, 7, 2), dimnames = list(NULL, NULL, dims))
    th <- tape_params(comp, jitter = 0.2)
    ll <- iclv_loglik(m, d, th, draws = user)$loglik
    u <- if (type == "probit") tape_utils[c("a", "b")] else if (type == "ordered") list(index = tape_utils[["c"]]) else tape_utils
    cm <- ref_utilities_by_r(comp$c, u, d, dims)
    expect_lt(abs(ll - ref_loglik(cm, th, unname(user))$loglik), 1e-10 * abs(ll), label = type)
  }
})

test_that("gradient and Hessian of nonlinear utilities equal finite differences, on both CPU paths", {
  for (type in c("mnl", "nl", "ordered")) {
    m <- tape_model(type)
    d <- tape_data(12, 2, 3, type)
    comp <- iclv:::.iclv_compile(m, d)
    spec <- iclv:::.draws_spec(iclv_draws("mlhs", 6, seed = 2), comp$n_ind, length(comp$lvs))
    set.seed(11)
    th <- tape_params(comp, jitter = 0.3)
    for (ref in c("0", "1")) expect_engine_fd(comp$c, spec, th, ref, paste0(" ", type))
    expect_atom_routing(comp, spec, th, label = type) # tapes: fast kernels, rows through the atoms
    # two blocks of draws (R = 150: 2 x 75)
    spec2 <- iclv:::.draws_spec(iclv_draws("mlhs", 150, seed = 3), comp$n_ind, length(comp$lvs))
    expect_atom_routing(comp, spec2, th, label = paste(type, "R = 150"))
  }
})

test_that("tapes that read no LV or random term run once per individual in the fast kernels", {
  # (the same values for every draw: iclv_row_tapes once per row, not once
  # per (row, draw); counted in .engine_paths()$tape_rows_hoisted)
  u <- list(a = "mu * (asc_a + b_time * time_a) + l_att * att",
            b = "mu * b_time * time_b - exp(m_p) * price_b",
            c = "b_c * (cost_c / inc) ^ lam + exp(ifelse(inc > 1.5, g1, g2)) * cost_c + l_c * att")
  for (type in c("mnl", "nl", "ordered")) {
    ch <- switch(type,
      mnl = iclv_choice("mnl", "ch", u),
      nl = iclv_choice("nl", "ch", u, nests = list(ab = c("a", "b"))),
      ordered = iclv_choice("ordered", "rating", list(index = u[["c"]]), categories = 4L))
    m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = ch, id = "ID",
                    categories = 3)
    d <- tape_data(12, 2, 3, type)
    comp <- iclv:::.iclv_compile(m, d)
    expect_gt(comp$c$n_tape, 0)
    spec <- iclv:::.draws_spec(iclv_draws("mlhs", 6, seed = 2), comp$n_ind, length(comp$lvs))
    set.seed(12)
    th <- tape_params(comp, jitter = 0.3)
    # (an MNL's tapes join W: its rows take the hoisted MNL forms)
    expect_atom_routing(comp, spec, th, label = paste("fixed tapes", type), hoisted = type == "mnl")
    e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
    iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE) # the LL pass, then the Hessian pass
    expect_equal(iclv:::.engine_paths(e)[["tape_rows_hoisted"]], 2 * comp$c$n_rows, label = type)
  }
  # the MNL's tapes joining W with LV-on-LV terms and an LV x attribute term
  # (explicit rows), over one and two blocks of draws
  u2 <- u
  u2$c <- "b_c * (cost_c / inc) ^ lam + exp(ifelse(inc > 1.5, g1, g2)) * cost_c + l_c * att * time_a"
  m2 <- iclv_model("att =~ q1 + q2\nf2 =~ q3", structural = "att ~ age + f2",
                   choice = iclv_choice("mnl", "ch", u2), id = "ID", categories = 3)
  comp2 <- iclv:::.iclv_compile(m2, tape_data(12, 2, 3))
  set.seed(13)
  th2 <- tape_params(comp2, jitter = 0.3)
  for (R in c(6L, 150L))
    expect_atom_routing(comp2, iclv:::.draws_spec(iclv_draws("mlhs", R, seed = 2), comp2$n_ind, 2L), th2,
                        label = paste("fixed tapes, LV-on-LV, R =", R), hoisted = TRUE)
  # a tape with a random term (xi) or an LV runs draw by draw
  comp <- iclv:::.iclv_compile(tape_model("mnl"), tape_data(12, 2, 3))
  spec <- iclv:::.draws_spec(iclv_draws("mlhs", 6, seed = 2), comp$n_ind, length(comp$lvs))
  e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
  iclv:::.engine_eval(e, tape_params(comp), gradient = TRUE, hessian = TRUE)
  expect_equal(iclv:::.engine_paths(e)[["tape_rows_hoisted"]], 0)
})

test_that("a utility on a tape equals the same utility in linear terms", {
  d <- tape_data(30, 3, 4)
  lin <- iclv_model("att =~ q1 + q2 + q3", choice = iclv_choice("mnl", "ch", list(
    a = "asc_a + b_time * time_a + l_att * att", b = "b_time * time_b", c = "0")), id = "ID", categories = 3)
  tap <- iclv_model("att =~ q1 + q2 + q3", choice = iclv_choice("mnl", "ch", list(
    a = "mu * (asc_a + b_time * time_a) + l_att * att", b = "mu * b_time * time_b", c = "0")),
    id = "ID", categories = 3)
  th <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
          zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, l_att = 0.6, asc_a = 0.3, b_time = -0.5)
  dr <- iclv_draws("halton", 20)
  a <- iclv_loglik(lin, d, th, draws = dr, gradient = TRUE)
  b <- iclv_loglik(tap, d, c(th, mu = 1), draws = dr, gradient = TRUE)
  expect_equal(b$loglik, a$loglik, tolerance = 1e-13)
  expect_equal(b$gradient[names(a$gradient)], a$gradient, tolerance = 1e-12)
  # the scale's own score: mu multiplies asc_a and b_time only, so at mu = 1
  # d LL / d mu is the derivative along theta_k = (1 + h) theta_k for those
  # two, sum_k theta_k d LL / d theta_k of the linear model
  k <- c("asc_a", "b_time")
  expect_equal(b$gradient[["mu"]], sum(th[k] * a$gradient[k]), tolerance = 1e-10)
  expect_gt(abs(b$gradient[["mu"]]), 1e-3) # not a vacuous 0 = 0
  # predictions read the tape too
  fl <- suppressWarnings(iclv(lin, d, draws = dr, start = th, control = iclv_control(maxit = 0, hessian = FALSE, vcov = "bhhh",
                                                                         check_identification = FALSE)))
  ft <- suppressWarnings(iclv(tap, d, draws = dr, start = th, fixed = c(mu = 1),
                              control = iclv_control(maxit = 0, hessian = FALSE, vcov = "bhhh",
                                                     check_identification = FALSE)))
  expect_equal(coef(ft)[names(th)], coef(fl)[names(th)])
  expect_equal(unname(predict(ft, type = "prob")), unname(predict(fl, type = "prob")), tolerance = 1e-12)
})

test_that("nonlinear utilities that cannot be written are classed errors naming the cause", {
  d <- tape_data(10, 2, 5)
  bad <- function(u) iclv:::.iclv_compile(suppressWarnings(iclv_model("att =~ q1 + q2 + q3",
    choice = iclv_choice("mnl", "ch", list(a = u, b = "b_time * time_b", c = "0")), id = "ID", categories = 3)), d)
  expect_error(bad("ifelse(b_time > 0, g1, g2) * exp(mu * time_a)"), class = "iclv_error_spec",
               regexp = "condition of ifelse\\(\\) uses 'b_time'")
  expect_error(bad("exp(mu * (b_time > 0))"), class = "iclv_error_spec", regexp = "no derivative")
  expect_error(bad("b_p * prce / 2"), class = "iclv_error_data", regexp = "Is one of 'b_p', 'prce' a column missing")
  # named in start =: parameters meant so
  mk2 <- function(u, ...) iclv:::.iclv_compile(suppressWarnings(iclv_model("att =~ q1 + q2 + q3",
    choice = iclv_choice("mnl", "ch", list(a = u, b = "b_time * time_b", c = "0")), id = "ID", categories = 3, ...)), d)
  expect_true(all(c("b_p", "prce") %in% mk2("b_p * prce / 2", start = c(b_p = 1, prce = 1))$partable$name))
  # a scale found elsewhere identifies the lone coefficient it multiplies
  ok <- mk2("mu * asc_a + mu * b_time * time_a")
  expect_true(all(c("mu", "asc_a") %in% ok$partable$name))
  expect_error(bad("b_time * prce"), class = "iclv_error_data", regexp = "'prce', which is neither a column") # plain syntax
  expect_error(bad("exp(mu) + time_a"), class = "iclv_error_spec", regexp = "term 'time_a' has no parameter")
  many <- paste0("exp(", paste(sprintf("p%d", 1:33), collapse = " + "), ")")
  expect_error(bad(many), class = "iclv_error_spec", regexp = "at most 32")
})

test_that("an individual whose Hessian alone is not finite is named, in every block and on both paths", {
  # (q_s + z)^1.5 at q_s = 0: its first derivative is 0 where z = 0, its
  # second infinite; z = 0 in one individual's rows only. With 40
  # individuals the Hessian runs in blocks (32 per thread): individual 37
  # is in the second. The engine checks each block's sum once and looks
  # for the culprit only when that sum is not finite.
  u <- list(a = "asc_a + b_time * time_a + l_att * att", b = "b_time * time_b + (q_s + z) ^ 1.5 * price_b",
            c = "b_c * cost_c")
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = iclv_choice("mnl", "ch", u),
                  id = "ID", categories = 3)
  for (who in c(3L, 37L)) {
    d <- tape_data(40, 2, 3)
    d$z <- ifelse(d$ID == unique(d$ID)[who], 0, 1)
    comp <- iclv:::.iclv_compile(m, d)
    th <- tape_params(comp)
    spec <- iclv:::.draws_spec(iclv_draws("mlhs", 6, seed = 2), comp$n_ind, length(comp$lvs))
    for (ref in c("0", "1")) for (threads in 1:2) {
      old <- Sys.getenv("ICLV_CPU_REFERENCE", unset = NA)
      Sys.setenv(ICLV_CPU_REFERENCE = ref) # (read at creation)
      e <- iclv:::.engine_new(comp$c, spec, n_threads = threads)
      if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old)
      lab <- sprintf("individual %d, reference %s, %d threads", who, ref, threads)
      ok <- iclv:::.engine_eval(e, replace(th, "q_s", 0.5), gradient = TRUE, hessian = TRUE)
      expect_true(all(is.finite(ok$hessian)), label = lab)
      g <- iclv:::.engine_eval(e, replace(th, "q_s", 0), gradient = TRUE)
      expect_true(all(is.finite(g$gradient)), label = lab)
      err <- tryCatch(iclv:::.engine_eval(e, replace(th, "q_s", 0), gradient = TRUE, hessian = TRUE),
                      error = function(e) e)
      expect_s3_class(err, "iclv_error_numeric")
      expect_match(conditionMessage(err), sprintf("the simulated Hessian of individual %d is not finite", who),
                   fixed = TRUE, label = lab)
    }
  }
})

test_that("weights scale a nonlinear model's LL, gradient and Hessian exactly", {
  m <- tape_model()
  d <- tape_data(15, 2, 6)
  d$w <- 1
  comp1 <- iclv:::.iclv_compile(m, d, weights = "w")
  d$w <- 2
  comp2 <- iclv:::.iclv_compile(m, d, weights = "w")
  spec <- iclv:::.draws_spec(iclv_draws("halton", 8), comp1$n_ind, length(comp1$lvs))
  th <- tape_params(comp1, 0.1)
  e1 <- iclv:::.engine_eval(iclv:::.engine_new(comp1$c, spec, n_threads = 1L), th, gradient = TRUE, hessian = TRUE)
  e2 <- iclv:::.engine_eval(iclv:::.engine_new(comp2$c, spec, n_threads = 1L), th, gradient = TRUE, hessian = TRUE)
  expect_identical(e2$loglik, 2 * e1$loglik)
  expect_identical(e2$gradient, 2 * e1$gradient)
  expect_identical(e2$hessian, 2 * e1$hessian)
})

test_that("a mixed-logit ICLV with a lognormal price recovers its parameters from iclv_simulate()", {
  skip_on_cran()
  m <- iclv_model("att =~ q1 + q2 + q3", choice = iclv_choice("mnl", "ch", list(
    a = "asc_a + b_time * time_a - exp(m_p + s_p * xi) * price_a + l_att * att",
    b = "asc_b + b_time * time_b - exp(m_p + s_p * xi) * price_b", c = "0")),
    id = "ID", categories = 4, random = "xi")
  truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 0, tau_q1_3 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.8,
             tau_q2_2 = 0.1, tau_q2_3 = 0.9, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0, tau_q3_3 = 0.7,
             asc_a = 0.4, b_time = -0.8, m_p = 0.2, s_p = 0.6, l_att = 0.8, asc_b = -0.2)
  d <- iclv_simulate(m, truth, n = 600, n_tasks = 8, seed = 14)
  expect_true(all(c("time_a", "price_a", "price_b") %in% names(d)))
  fit <- iclv(m, d, draws = iclv_draws("mlhs", 60, seed = 1), start = truth,
              control = iclv_control(vcov = "hessian"))
  expect_identical(fit$convergence$code, 0L)
  z <- (coef(fit)[names(truth)] - truth) / sqrt(diag(vcov(fit)))[names(truth)]
  expect_lt(max(abs(z)), 3)
  expect_true("m_p" %in% names(coef(fit)))
})

test_that("distribution shorthands expand into utilities with exact derivatives, and summary reads them back", {
  expect_identical(iclv_random_coef("b", "xi"), "(b_mean + b_sd * xi)")
  expect_identical(iclv_random_coef("b", "xi", "lognormal", sign = -1), "(-exp(b_mu + b_sigma * xi))")
  expect_identical(iclv_random_coef("b", "xi", "uniform"), "(b_mean + b_spread * (2 * pnorm(xi) - 1))")
  expect_identical(iclv_random_coefs(c("b1", "b2"), c("x1", "x2")),
                   c(b1 = "(b1_mean + b1_chol_b1 * x1)", b2 = "(b2_mean + b2_chol_b1 * x1 + b2_chol_b2 * x2)"))
  expect_error(iclv_random_coef("b", "xi", "gamma"), class = "iclv_error_spec")
  expect_error(iclv_random_coef("b", "xi", "normal", sign = -1), class = "iclv_error_spec")
  # the triangular's inverse cdf: symmetric on [-1, 1], density 1 - |t|
  tri <- function(xi) eval(str2lang(iclv:::.dist_triangular("xi")), list(xi = xi))
  q <- tri(stats::qnorm(c(0.02, 0.125, 0.5, 0.875, 0.98)))
  expect_equal(q, c(sqrt(0.04) - 1, -0.5, 0, 0.5, 1 - sqrt(0.04)))
  u <- list(a = paste("asc_a +", iclv_random_coef("b_t", "xi1", "triangular"), "* time_a + l_att * att"),
            b = paste(iclv_random_coef("b_u", "xi2", "uniform"), "* time_b +",
                      iclv_random_coef("b_p", "xi1", "lognormal", sign = -1), "* price_b"),
            c = "0")
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = iclv_choice("mnl", "ch", u),
                  id = "ID", categories = 3, random = c("xi1", "xi2"))
  d <- tape_data(20, 3, 7)
  comp <- iclv:::.iclv_compile(m, d)
  expect_true(all(c("b_t_mean", "b_t_spread", "b_u_mean", "b_u_spread", "b_p_mu", "b_p_sigma") %in% comp$partable$name))
  set.seed(8)
  th <- stats::setNames(stats::runif(nrow(comp$partable), -0.5, 0.5), comp$partable$name)
  th[grep("^tau_q._1", names(th))] <- -1
  th[grep("^tau_q._2", names(th))] <- 1
  user <- array(stats::rnorm(20 * 6 * 3), c(20, 6, 3), dimnames = list(NULL, NULL, c("att", "xi1", "xi2")))
  user[1, 1, "xi1"] <- 0 # the triangular's midpoint (a Halton draw's first point)
  ll <- iclv_loglik(m, d, th, draws = user)$loglik
  cm <- ref_utilities_by_r(comp$c, u, d, c("att", "xi1", "xi2"))
  expect_lt(abs(ll - ref_loglik(cm, th, unname(user))$loglik), 1e-10 * abs(ll))
  spec <- iclv:::.draws_spec(iclv_draws("mlhs", 6, seed = 4), comp$n_ind, length(comp$lvs))
  for (ref in c("0", "1")) expect_engine_fd(comp$c, spec, th, ref, " distributions")
  # summary: each distribution with its delta-method SEs
  fit <- suppressWarnings(iclv(m, d, draws = iclv_draws("halton", 20), start = th,
                               control = iclv_control(maxit = 3, check_identification = FALSE)))
  s <- suppressWarnings(summary(fit, type = "hessian")) # (3 iterations: not converged, on purpose)
  ds <- s$distributions
  expect_setequal(ds$distribution, c("triangular", "uniform", "lognormal"))
  cf <- coef(fit)
  ln <- ds[ds$distribution == "lognormal", ]
  expect_equal(ln$mean, -exp(cf[["b_p_mu"]] + cf[["b_p_sigma"]]^2 / 2))
  expect_equal(ln$median, -exp(cf[["b_p_mu"]]))
  expect_equal(ln$sd, exp(cf[["b_p_mu"]] + cf[["b_p_sigma"]]^2 / 2) * sqrt(exp(cf[["b_p_sigma"]]^2) - 1))
  dl <- suppressWarnings(iclv_delta(fit, "-exp(b_p_mu + b_p_sigma^2 / 2)", type = "hessian"))
  expect_equal(ln$se_mean, dl$std.error)
  un <- ds[ds$distribution == "uniform", ]
  expect_equal(un$sd, abs(cf[["b_u_spread"]]) / sqrt(3))
  tr <- ds[ds$distribution == "triangular", ]
  expect_equal(tr$sd, abs(cf[["b_t_spread"]]) / sqrt(6))
  expect_output(print(s), "Random coefficients in nonlinear utilities")
})

test_that("the once-per-draw part of a tape is recomputed exactly when its variables change", {
  m <- tape_model()
  d <- tape_data(15, 3, 9)
  comp <- iclv:::.iclv_compile(m, d)
  expect_gt(comp$c$tape_nslot, 0L) # exp(m_p + s_p * xi), exp(att / 2), ... run once per draw
  spec <- iclv:::.draws_spec(iclv_draws("halton", 10), comp$n_ind, length(comp$lvs))
  th1 <- tape_params(comp)
  th2 <- replace(th1, c("m_p", "s_p", "g1"), c(-0.2, 0.9, -0.3))
  e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
  invisible(iclv:::.engine_eval(e, th1, gradient = TRUE, hessian = TRUE))
  again <- iclv:::.engine_eval(e, th2, gradient = TRUE, hessian = TRUE)
  fresh <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, n_threads = 1L), th2, gradient = TRUE,
                               hessian = TRUE)
  expect_identical(again[c("loglik", "gradient", "hessian")], fresh[c("loglik", "gradient", "hessian")])
})
