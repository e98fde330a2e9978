# Biogeme's Optima hybrid choice model H05 written in iclv (issues 14, 15):
# Likert indicators (ordered logit) sharing one set of thresholds built from
# two positive increments (labels and `:=`), an intercept, a loading and a
# scale per indicator with Envir01 normalised (intercept 0, loading -1,
# scale 1), an LV with an intercept and a free structural s.d., and an MNL
# with a scale parameter whose time coefficients vary with the LV through
# exp() (nonlinear utilities on the tape). Estimated on simulated data of
# the same shape.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

h05_spec <- "
  carlovers =~ -1*Envir01 + Envir02 + Envir03 + Mobil11 + Mobil14
  Envir01 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  Envir02 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  Envir03 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  Mobil11 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  Mobil14 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  t1 := -d1 - d2; t2 := -d1; t3 := d1; t4 := d1 + d2
  d1 := exp(ld1); d2 := exp(ld2)
  Envir02 ~ 1; Envir03 ~ 1; Mobil11 ~ 1; Mobil14 ~ 1
  Envir02 ~~ Envir02; Envir03 ~~ Envir03; Mobil11 ~~ Mobil11; Mobil14 ~~ Mobil14
  carlovers ~ 1
  carlovers ~~ carlovers"
h05_truth <- c(zeta_Envir01 = -1, zeta_Envir02 = -0.8, alpha_Envir02 = 0.3, sigma_Envir02 = 0.9,
               zeta_Envir03 = -0.6, alpha_Envir03 = -0.2, sigma_Envir03 = 1.2, zeta_Mobil11 = 0.7,
               alpha_Mobil11 = 0.4, sigma_Mobil11 = 1.1, zeta_Mobil14 = 0.9, alpha_Mobil14 = -0.3,
               sigma_Mobil14 = 0.8, gamma_carlovers_age_65 = -0.4, gamma_carlovers_male = 0.5,
               alpha_carlovers = 0.3, sigma_carlovers = 1.1, ld1 = log(0.7), ld2 = log(1.1),
               asc_pt = -0.3, b_time_pt = -1, b_time_pt_cl = -0.3, b_cost = -0.6, asc_car = 0.4,
               b_time_car = -0.8, b_time_car_cl = 0.3, b_dist = -0.5)

test_that("Biogeme's Optima H05 can be written, and recovers its parameters from simulated data", {
  skip_on_cran()
  m <- iclv_model(h05_spec, structural = "carlovers ~ age_65 + male", indicators = "ordered_logit",
    choice = iclv_choice("mnl", "choice", list(
      pt = "mu * (asc_pt + b_time_pt * exp(b_time_pt_cl * carlovers) * time_pt + b_cost * cost_pt)",
      car = "mu * (asc_car + b_time_car * exp(b_time_car_cl * carlovers) * time_car + b_cost * cost_car)",
      sm = "mu * b_dist * dist")),
    id = "ID", fixed = c(b_cost = -0.6), start = c(mu = 1))
  # the MNL's scale mu multiplies every utility; the cost coefficient is
  # fixed (as from another study), which identifies it
  truth <- c(h05_truth[names(h05_truth) != "b_cost"], b_cost = -0.6, mu = 1.4)
  d <- iclv_simulate(m, truth, n = 1500, n_tasks = 1, seed = 5, binary = c("age_65", "male"))
  fit <- iclv(m, d, draws = iclv_draws("mlhs", 60, seed = 2))
  expect_identical(fit$convergence$code, 0L)
  # the choice part's parameters came from the data (R/tape.R), the time
  # coefficients' LV effects from its nonlinear part
  expect_true(all(c("asc_pt", "b_time_pt_cl", "b_time_car_cl", "b_cost") %in% names(coef(fit))))
  expect_identical(fit$compiled$c$n_tape, 3L) # every utility: the scale
  free <- setdiff(names(truth), c("zeta_Envir01", "b_cost"))
  expect_true("mu" %in% free)
  z <- (coef(fit)[free] - truth[free]) / sqrt(diag(vcov(fit)))[free]
  expect_lt(max(abs(z)), 3)
  # the shared thresholds are the definitions at the estimates
  cf <- coef(fit)
  d1 <- exp(cf[["ld1"]]); d2 <- exp(cf[["ld2"]])
  expect_equal(unname(cf[c("t1", "t2", "t3", "t4")]), c(-d1 - d2, -d1, d1, d1 + d2))
})
