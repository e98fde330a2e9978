# Specification objects are values: building a model or fitting it never
# changes their meaning, and every part of a model (measurement, structural,
# choice, indicator types and levels, categories, fixed/start values) and of
# a fit (draws, control) can be given to a new model or fit and means the
# same there.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

dr <- iclv_draws("halton", 20, seed = 1)

test_that("the choice part of a model reused in a new model keeps its meaning (same LL)", {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = 60, n_tasks = 3, seed = 1)
  m2 <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = m$choice,
                   id = "ID", categories = 3)
  expect_identical(m2$choice, m$choice)
  expect_identical(m2$partable, m$partable)
  l1 <- iclv_loglik(m, d, one_lv_mnl_truth, draws = dr, hessian = TRUE)
  l2 <- iclv_loglik(m2, d, one_lv_mnl_truth, draws = dr, hessian = TRUE)
  expect_identical(l2$loglik, l1$loglik)
  expect_identical(l2$gradient, l1$gradient)
  expect_identical(l2$hessian, l1$hessian)
  # and again, from the second model
  m3 <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = m2$choice,
                   id = "ID", categories = 3)
  expect_identical(iclv_loglik(m3, d, one_lv_mnl_truth, draws = dr)$loglik, l1$loglik)
})

# Every field but the call.
spec_fields <- function(m) unclass(m)[setdiff(names(m), "call")]

test_that("every part of a model round-trips into a new model unchanged", {
  ch <- iclv_choice("mnl", choice = "ch", available = list(b = "av_b"), utilities = list(
    a = "asc_a + b_price * price_a + l_att * att + b_inc * price_a * trust",
    b = "asc_b + b_price * price_b",
    c = "0"))
  ch0 <- ch
  m <- iclv_model("att =~ q1 + q2 + q3 + r1\n trust =~ r1 + r2 + r3",
                  structural = "trust ~ age\n att ~ trust + male",
                  indicators = list(q3 = "ordered_logit", r2 = "normal", r3 = "binary"),
                  indicator_level = c(r2 = "row"), choice = ch, id = "ID",
                  categories = list(q1 = 3, r1 = 4),
                  fixed = c(asc_b = 0.1), start = c(b_price = -0.5, tau_q2_1 = -1))
  expect_identical(ch, ch0) # the argument itself is untouched
  expect_true(is.na(m$categories[["q2"]]))
  m2 <- iclv_model(m$measurement, structural = m$structural, indicators = m$ind_type,
                   choice = m$choice, id = m$id, indicator_level = m$level,
                   fixed = m$fixed, start = m$start, categories = m$categories)
  expect_identical(spec_fields(m2), spec_fields(m))
  # a measurement-only model without a structural part
  mm <- iclv_model("f =~ y1 + y2 + y3", id = "ID", indicators = "normal")
  mm2 <- iclv_model(mm$measurement, structural = mm$structural, indicators = mm$ind_type, id = mm$id)
  expect_identical(spec_fields(mm2), spec_fields(mm))
  # the parts of a model checked against data (categories read from it)
  p <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
         zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5,
         asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
  m0 <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = one_lv_mnl_model()$choice,
                   id = "ID")
  d <- iclv_simulate(m0, p, n = 60, n_tasks = 2, seed = 4)
  md <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = m0$choice, id = "ID", data = d)
  md2 <- iclv_model(md$measurement, structural = md$structural, choice = md$choice, id = "ID",
                    categories = md$categories)
  expect_identical(spec_fields(md2), spec_fields(md))
  expect_identical(iclv_loglik(md2, d, p, draws = dr)$loglik, iclv_loglik(md, d, p, draws = dr)$loglik)
})

test_that("draws, control and model objects are unchanged by a fit and reusable", {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = 60, n_tasks = 3, seed = 2)
  draws <- iclv_draws("scrambled_halton", 15, seed = 7)
  ctl <- iclv_control(maxit = 40, vcov = "hessian")
  copies <- list(m = m, draws = draws, ctl = ctl)
  f1 <- iclv(m, d, draws = draws, control = ctl, backend = "cpu")
  expect_identical(list(m = m, draws = draws, ctl = ctl), copies)
  expect_identical(f1$model, m)
  expect_identical(f1$draws_design, draws)
  expect_identical(f1$control, ctl)
  f2 <- iclv(f1$model, d, draws = f1$draws_design, control = f1$control, backend = "cpu")
  expect_identical(f2$coefficients, f1$coefficients)
  expect_identical(f2$loglik, f1$loglik)
  expect_identical(f2$vcov, f1$vcov)
  # a model rebuilt from the fit's model parts fits the same
  mr <- iclv_model(f1$model$measurement, structural = f1$model$structural, choice = f1$model$choice,
                   id = f1$model$id, categories = f1$model$categories)
  f3 <- iclv(mr, d, draws = draws, control = ctl, backend = "cpu")
  expect_identical(f3$coefficients, f1$coefficients)
})
