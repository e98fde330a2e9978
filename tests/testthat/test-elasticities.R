# Analytic elasticities against central finite differences of predict().

el_model <- one_lv_mnl_model() # (helper-models.R)
el_data <- iclv_simulate(el_model, one_lv_mnl_truth, n = 30, n_tasks = 2, seed = 41)
el_fit <- iclv(el_model, el_data, draws = iclv_draws("halton", 40, seed = 2), backend = "cpu",
               fixed = one_lv_mnl_truth)

fd_elasticity <- function(fit, nd, attribute, h = 1e-5) {
  up <- nd
  dn <- nd
  up[[attribute]] <- up[[attribute]] + h
  dn[[attribute]] <- dn[[attribute]] - h
  dP <- (predict(fit, newdata = up) - predict(fit, newdata = dn)) / (2 * h)
  dP * nd[[attribute]] / predict(fit, newdata = nd)
}

test_that("MNL elasticities (direct and cross) equal finite differences of predict()", {
  e <- iclv_elasticities(el_fit, attribute = "price_a")
  fd <- fd_elasticity(el_fit, el_data, "price_a")
  expect_equal(unname(e$per_row), unname(fd), tolerance = 1e-6)
  expect_identical(unname(e$kind), c("direct", "cross", "cross"))
  expect_equal(e$average, colMeans(e$per_row))
  # a scenario without indicator and choice columns
  sc <- el_data[1:6, c("ID", "age", "price_a", "price_b")]
  es <- iclv_elasticities(el_fit, newdata = sc, attribute = "price_b")
  expect_equal(unname(es$per_row), unname(fd_elasticity(el_fit, sc, "price_b")), tolerance = 1e-6)
  expect_error(iclv_elasticities(el_fit, attribute = "age"), class = "iclv_error_input")
})

test_that("an attribute in several utilities and an LV interaction: still the finite differences", {
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_price * price_a + l_att * att + b_pa * price_a * att",
      b = "asc_b + b_price * price_b + b_x * price_a", c = "0")),
    id = "ID", categories = 3)
  p <- c(one_lv_mnl_truth, b_pa = 0.3, b_x = 0.4)
  d <- iclv_simulate(m, p, n = 20, n_tasks = 2, seed = 5)
  f <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu", fixed = p)
  e <- iclv_elasticities(f, attribute = "price_a")
  expect_equal(unname(e$per_row), unname(fd_elasticity(f, d, "price_a")), tolerance = 1e-6)
  expect_identical(unname(e$kind), c("direct", "direct", "cross"))
})

test_that("binary probit elasticities equal finite differences", {
  m <- iclv_model("att =~ q1 + q2 + q3",
    choice = iclv_choice("probit", choice = "buy",
      utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
    id = "ID", categories = 3)
  p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2, tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5,
         tau_q2_2 = 0.8, tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)
  d <- iclv_simulate(m, p, n = 20, n_tasks = 2, seed = 6)
  f <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu", fixed = p)
  e <- iclv_elasticities(f, attribute = "price")
  expect_equal(unname(e$per_row), unname(fd_elasticity(f, d, "price")), tolerance = 1e-6)
})
