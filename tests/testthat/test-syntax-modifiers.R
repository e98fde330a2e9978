# lavaan's modifiers in the measurement and structural syntax (issue 15):
# labels (shared parameters), fixed values, NA (free), start(value).

mod_model <- function(meas = "att =~ q1 + q2 + q3", st = "att ~ age", ...) {
  iclv_model(meas, structural = st,
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_price * price_a + l_att * att",
      b = "asc_b + b_price * price_b",
      c = "0")),
    id = "ID", categories = 3, ...)
}
mod_data <- function(n = 60, seed = 5) {
  iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = n, n_tasks = 3, seed = seed)
}
mod_draws <- iclv_draws("halton", 20, seed = 2)

test_that("equal labels are one parameter: LL, gradient and Hessian are those of the constraint", {
  d <- mod_data()
  m0 <- mod_model()
  m1 <- mod_model("att =~ q1 + a*q2 + a*q3")
  pt <- m1$partable
  expect_identical(sum(pt$name == "a"), 1L)
  expect_false(any(c("zeta_q2", "zeta_q3") %in% pt$name))
  expect_identical(pt$rhs[pt$name == "a"], "q2")
  expect_identical(pt$label, ifelse(pt$name == "a", "a", ""))
  p1 <- one_lv_mnl_truth[setdiff(names(one_lv_mnl_truth), c("zeta_q2", "zeta_q3"))]
  p1 <- c(p1, a = 0.9)
  p0 <- one_lv_mnl_truth
  p0[c("zeta_q2", "zeta_q3")] <- 0.9
  l0 <- iclv_loglik(m0, d, p0, draws = mod_draws, hessian = TRUE)
  l1 <- iclv_loglik(m1, d, p1, draws = mod_draws, hessian = TRUE)
  expect_identical(l1$loglik, l0$loglik)
  # the chain rule of theta(a) = (..., a, a, ...): sums of the unlabelled parts
  g0 <- l0$gradient
  expect_equal(unname(l1$gradient["a"]), unname(g0["zeta_q2"] + g0["zeta_q3"]), tolerance = 1e-12)
  others <- setdiff(names(p1), "a")
  expect_equal(l1$gradient[others], g0[others], tolerance = 1e-12)
  H0 <- l0$hessian
  haa <- H0["zeta_q2", "zeta_q2"] + H0["zeta_q3", "zeta_q3"] + 2 * H0["zeta_q2", "zeta_q3"]
  expect_equal(unname(l1$hessian["a", "a"]), unname(haa), tolerance = 1e-12)
  expect_equal(l1$hessian["a", others], H0["zeta_q2", others] + H0["zeta_q3", others], tolerance = 1e-12)
  expect_equal(l1$hessian[others, others], H0[others, others], tolerance = 1e-12)
  # structural labels shared with a loading are one parameter too
  m2 <- mod_model("att =~ q1 + q2 + q3", st = "att ~ g*age")
  expect_true("g" %in% m2$partable$name)
  p2 <- one_lv_mnl_truth
  names(p2)[names(p2) == "gamma_att_age"] <- "g"
  expect_identical(iclv_loglik(m2, d, p2, draws = mod_draws)$loglik,
                   iclv_loglik(m0, d, one_lv_mnl_truth, draws = mod_draws)$loglik)
})

test_that("fixed values, NA and start() in the syntax equal the fixed/start arguments", {
  d <- mod_data(n = 150, seed = 8)
  ma <- mod_model("att =~ 1*q1 + NA*q2 + start(0.7)*q3")
  mb <- mod_model(fixed = c(zeta_q1 = 1), start = c(zeta_q3 = 0.7))
  expect_identical(ma$partable, mb$partable)
  expect_false(ma$partable$free[ma$partable$name == "zeta_q1"])
  expect_identical(ma$partable$start[ma$partable$name == "zeta_q3"], 0.7)
  ctrl <- iclv_control(n_threads = 1)
  # a loading fixed with the LV variance fixed: over-restricted, warned
  # (test-lvstat.R); both ways of writing it say so
  fa <- expect_warning(iclv(ma, d, draws = mod_draws, control = ctrl), class = "iclv_warning_identification")
  fb <- expect_warning(iclv(mb, d, draws = mod_draws, control = ctrl), class = "iclv_warning_identification")
  expect_identical(coef(fa), coef(fb))
  # a negative fixed value and a fixed structural coefficient
  mc <- mod_model("att =~ -0.5*q1 + q2 + q3", st = "att ~ 0*age")
  pt <- mc$partable
  expect_identical(pt$start[pt$name == "zeta_q1"], -0.5)
  expect_identical(pt$start[pt$name == "gamma_att_age"], 0)
  expect_false(any(pt$free[pt$name %in% c("zeta_q1", "gamma_att_age")]))
  # the fixed argument may fix a label
  md <- mod_model("att =~ q1 + a*q2 + a*q3", fixed = c(a = 0.8))
  expect_false(md$partable$free[md$partable$name == "a"])
})

test_that("labelled models simulate as the constraint they stand for", {
  m0 <- mod_model()
  m1 <- mod_model("att =~ q1 + a*q2 + a*q3", st = "att ~ g*age")
  p1 <- one_lv_mnl_truth[setdiff(names(one_lv_mnl_truth), c("zeta_q2", "zeta_q3", "gamma_att_age"))]
  p1 <- c(p1, a = 0.9, g = 0.5)
  p0 <- one_lv_mnl_truth
  p0[c("zeta_q2", "zeta_q3")] <- 0.9
  expect_identical(iclv_simulate(m1, p1, n = 40, n_tasks = 2, seed = 3),
                   iclv_simulate(m0, p0, n = 40, n_tasks = 2, seed = 3))
})

test_that("a shared loading is recovered from simulated data", {
  skip_on_cran()
  m1 <- mod_model("att =~ q1 + a*q2 + a*q3")
  truth <- one_lv_mnl_truth[setdiff(names(one_lv_mnl_truth), c("zeta_q2", "zeta_q3"))]
  truth <- c(truth, a = 0.9)
  d <- iclv_simulate(m1, truth, n = 600, n_tasks = 4, seed = 21)
  f <- iclv(m1, d, draws = iclv_draws("halton", 100, seed = 1), control = iclv_control(n_threads = 1))
  expect_identical(f$convergence$code, 0L)
  z <- (coef(f)[names(truth)] - truth) / sqrt(diag(vcov(f)))[names(truth)]
  expect_true(all(abs(z) < 3), info = paste(names(z), round(z, 2), collapse = ", "))
})

test_that("bad modifiers are classed spec errors that name the term", {
  e <- function(meas, st = "att ~ age", ...) expect_error(mod_model(meas, st, ...), class = "iclv_error_spec")
  e("att =~ q1 + att*q2 + q3")                  # label = an LV
  e("att =~ q1 + q3*q2 + q3")                   # label = an indicator
  e("att =~ q1 + a*b*q2 + q3")                  # two labels
  e("att =~ q1 + a*1*q2 + q3")                  # label and value
  e("att =~ q1 + 1*2*q2 + q3")                  # two values
  e("att =~ q1 + 1*start(2)*q2 + q3")           # fixed and start
  e("att =~ q1 + start(abc)*q2 + q3")           # start without a number
  e("att =~ q1 + start(1)*start(2)*q2 + q3")    # two starts
  e("att =~ q1 + 2x*q2 + q3")                   # not a modifier
  e("att =~ q1 + f(1)*q2 + q3")                 # not a modifier
  e("att =~ q1 + Inf*q2 + q3")                  # not finite
  e("att =~ q1 - q2 + q3")                      # '-' between terms
  e("att =~ q1 + zeta_q3*q2 + q3")              # label = another parameter's name
  e("att =~ q1 + start(0.5)*a*q2 + start(0.6)*a*q3")  # one label, two starts
  e("att =~ 1*q1 + q2 + q3", fixed = c(zeta_q1 = 1))  # fixed twice
  e("att =~ q1 + a*q2 + q3", st = "att ~ age", fixed = c(zeta_q9 = 1))
  e("att =~ q1 + asc_a*q2 + q3")                # label = a choice parameter
  expect_error(mod_model("att =~ q1 + 2x*q2 + q3"), "2x")
  expect_error(mod_model("att =~ q1 + a*b*q2 + q3"), "a\\*b\\*q2")
})

# ---- thresholds: `ind | t1 + t2 + ...` ------------------------------------------

thr_model <- function(meas, ...) mod_model(paste("att =~ q1 + q2 + q3", meas, sep = "\n"), ...)

test_that("a threshold set shared by labels is one set of parameters: LL, gradient, Hessian of the constraint", {
  d <- mod_data(n = 80, seed = 9)
  m1 <- thr_model("q1 | a1*t1 + a2*t2\n q2 | a1*t1 + a2*t2")
  pt <- m1$partable
  expect_identical(pt$name[pt$role == "threshold"], c("a1", "a2", "tau_q3_1", "tau_q3_2"))
  comp <- iclv:::.iclv_compile(m1, d)
  expect_identical(comp$c$ind_thr[1], comp$c$ind_thr[2])       # one block for q1 and q2
  expect_length(comp$thresholds, 2L)                          # one ordered group each: {a1, a2}, q3's
  drop <- c("tau_q1_1", "tau_q1_2", "tau_q2_1", "tau_q2_2")
  p1 <- c(one_lv_mnl_truth[setdiff(names(one_lv_mnl_truth), drop)], a1 = -0.7, a2 = 0.9)
  p0 <- one_lv_mnl_truth
  p0[drop] <- c(-0.7, 0.9, -0.7, 0.9)
  l0 <- iclv_loglik(mod_model(), d, p0, draws = mod_draws, hessian = TRUE)
  l1 <- iclv_loglik(m1, d, p1, draws = mod_draws, hessian = TRUE)
  expect_identical(l1$loglik, l0$loglik)
  g0 <- l0$gradient
  H0 <- l0$hessian
  for (k in 1:2) {
    a <- paste0("a", k)
    t1 <- sprintf("tau_q1_%d", k)
    t2 <- sprintf("tau_q2_%d", k)
    expect_equal(unname(l1$gradient[a]), unname(g0[t1] + g0[t2]), tolerance = 1e-12)
    expect_equal(unname(l1$hessian[a, "zeta_q3"]), unname(H0[t1, "zeta_q3"] + H0[t2, "zeta_q3"]), tolerance = 1e-12)
  }
  expect_equal(unname(l1$hessian["a1", "a2"]),
               unname(H0["tau_q1_1", "tau_q1_2"] + H0["tau_q2_1", "tau_q2_2"] +
                        H0["tau_q1_1", "tau_q2_2"] + H0["tau_q2_1", "tau_q1_2"]), tolerance = 1e-12)
  # the simulator uses the shared set for both indicators
  expect_identical(iclv_simulate(m1, p1, n = 30, n_tasks = 2, seed = 4),
                   iclv_simulate(mod_model(), p0, n = 30, n_tasks = 2, seed = 4))
})

test_that("shared thresholds are estimated and recovered; a fixed threshold equals the fixed argument", {
  skip_on_cran()
  m1 <- thr_model("q1 | a1*t1 + a2*t2\n q2 | a1*t1 + a2*t2\n q3 | a1*t1 + a2*t2")
  drop <- grep("^tau_", names(one_lv_mnl_truth), value = TRUE)
  truth <- c(one_lv_mnl_truth[setdiff(names(one_lv_mnl_truth), drop)], a1 = -0.8, a2 = 0.7)
  d <- iclv_simulate(m1, truth, n = 500, n_tasks = 3, seed = 31)
  f <- iclv(m1, d, draws = iclv_draws("halton", 100, seed = 1), control = iclv_control(n_threads = 1))
  expect_identical(f$convergence$code, 0L)
  z <- (coef(f)[names(truth)] - truth) / sqrt(diag(vcov(f)))[names(truth)]
  expect_true(all(abs(z) < 3), info = paste(names(z), round(z, 2), collapse = ", "))
  ma <- thr_model("q1 | -1*t1 + t2")
  mb <- mod_model(fixed = c(tau_q1_1 = -1))
  expect_identical(ma$partable, mb$partable)
  expect_false(ma$partable$free[ma$partable$name == "tau_q1_1"])
})

test_that("threshold statements declare categories and refuse what they cannot mean", {
  m <- iclv_model("att =~ q1 + q2\n q1 | t1 + t2 + t3", id = "ID")
  expect_identical(m$categories[["q1"]], 4L)
  expect_true(is.na(m$categories[["q2"]]))
  e <- function(meas, ...) expect_error(thr_model(meas, ...), class = "iclv_error_spec")
  e("q1 | a1*t1 + t2")                              # part of a set labelled
  e("q1 | a1*t1 + a2*t2\n q2 | a2*t1 + a1*t2")      # the same labels in another order
  e("q1 | a1*t1 + a2*t2\n q2 | a1*t1 + b2*t2")      # overlapping sets
  e("q1 | a1*t1 + a1*t2")                           # one label twice in a set
  e("q1 | t1 + t2 + t3")                            # 3 thresholds, 3 categories declared
  e("q1 | t2 + t1")                                 # out of order
  e("q1 | t1 + t3")                                 # a gap
  e("q9 | t1 + t2")                                 # not an indicator
  e("q1 | t1 + t2\n q1 | t1 + t2")                  # given twice
  e("q1 | zeta_q2*t1 + b*t2")                       # label = another parameter
  expect_error(iclv_model("att =~ q1 + a1*q2\n q1 | a1*t1 + a2*t2", id = "ID", categories = 3),
               class = "iclv_error_spec")         # a threshold label on a loading
  expect_error(iclv_model("att =~ q1 + q2\n q1 | t1 + t2", id = "ID", indicators = list(q1 = "normal")),
               "only ordered", class = "iclv_error_spec")
  expect_error(thr_model("q1 | t1 + t2"), NA)       # labels are optional
})
