# iclv_simulate(): reproducibility, structure, and moments against the
# model-implied ones (computed by numerical integration over the LV).

sim_model <- function() {
  iclv_model(
    measurement = "f =~ y1 + n1 + b1 + l1",
    structural = "f ~ x",
    indicators = list(n1 = "normal", b1 = "binary_logit", l1 = "ordered_logit"),
    choice = iclv_choice("probit", choice = "buy",
                         utilities = list(yes = "asc + b * a + lam * f", no = "0")),
    id = "person", categories = list(y1 = 4, l1 = 3))
}
sim_params <- c(zeta_y1 = 1.2, tau_y1_1 = -1.5, tau_y1_2 = 0, tau_y1_3 = 1.1,
                zeta_n1 = 0.7, alpha_n1 = 2, sigma_n1 = 0.5,
                zeta_b1 = -0.8, alpha_b1 = 0.4,
                zeta_l1 = 1.5, tau_l1_1 = -0.7, tau_l1_2 = 1.2,
                gamma_f_x = 0.6,
                asc = -0.3, b = 0.9, lam = 0.8)

test_that("same seed gives the same data, another seed other data; the RNG state is restored", {
  m <- sim_model()
  d1 <- iclv_simulate(m, sim_params, n = 50, n_tasks = 3, seed = 11)
  d2 <- iclv_simulate(m, sim_params, n = 50, n_tasks = 3, seed = 11)
  d3 <- iclv_simulate(m, sim_params, n = 50, n_tasks = 3, seed = 12)
  expect_identical(d1, d2)
  expect_false(identical(d1$y1, d3$y1))
  expect_false(identical(d1$a, d3$a))
  set.seed(99); u1 <- runif(3)
  set.seed(99); invisible(iclv_simulate(m, sim_params, n = 5, seed = 1)); u2 <- runif(3)
  expect_identical(u1, u2)
})

test_that("the simulated data have the model's structure and compile", {
  m <- sim_model()
  d <- iclv_simulate(m, sim_params, n = 40, n_tasks = 5, seed = 3)
  expect_equal(nrow(d), 200L)
  expect_equal(d$person, rep(1:40, each = 5))
  expect_true(all(c("person", "x", "y1", "n1", "b1", "l1", "a", "buy") %in% names(d)))
  tl <- attr(d, "true_lv")
  expect_equal(dim(tl), c(40L, 1L))
  expect_equal(colnames(tl), "f")
  for (v in c("x", "y1", "n1", "b1", "l1")) {
    expect_true(all(tapply(d[[v]], d$person, function(z) length(unique(z))) == 1), label = v)
  }
  expect_true(length(unique(d$a)) > 100)   # attributes vary by row
  expect_true(all(d$y1 %in% 1:4))
  expect_true(all(d$l1 %in% 1:3))
  expect_true(all(d$b1 %in% 0:1))
  expect_true(all(d$buy %in% c("yes", "no")))
  cmp <- iclv:::.iclv_compile(m, d)
  expect_equal(cmp$c$n_rows, 200L)
  expect_equal(cmp$c$n_obs, 160L)
  # the data regenerate the LV: correlation of the true LV with the covariate
  d2 <- iclv_simulate(m, sim_params, n = 5000, seed = 4)
  tl <- attr(d2, "true_lv")[, "f"]
  expect_equal(var(tl), 1 + 0.6^2, tolerance = 0.08)
  expect_equal(unname(coef(lm(tl ~ d2$x))[2]), 0.6, tolerance = 0.08)
})

test_that("indicator and choice moments agree with the implied ones", {
  m <- sim_model()
  n <- 20000
  p <- sim_params
  d <- iclv_simulate(m, p, n = n, n_tasks = 1, seed = 2024)
  sf <- sqrt(1 + p[["gamma_f_x"]]^2)          # sd of f
  implied_ordered <- function(zeta, tau, F) {
    cut <- c(-Inf, tau, Inf)
    vapply(seq_len(length(tau) + 1L), function(c) {
      stats::integrate(function(u) (F(cut[c + 1] - zeta * sf * u) - F(cut[c] - zeta * sf * u)) * dnorm(u),
                       -Inf, Inf, rel.tol = 1e-10)$value
    }, numeric(1))
  }
  within <- function(obs, pr, n) all(abs(obs - pr) < 4.5 * sqrt(pr * (1 - pr) / n))

  # ordered probit
  pr <- implied_ordered(p[["zeta_y1"]], p[c("tau_y1_1", "tau_y1_2", "tau_y1_3")], pnorm)
  expect_equal(sum(pr), 1, tolerance = 1e-8)
  obs <- tabulate(d$y1, 4) / n
  expect_true(within(obs, pr, n), label = paste(round(obs, 4), round(pr, 4), collapse = " "))
  # ordered logit
  pr <- implied_ordered(p[["zeta_l1"]], p[c("tau_l1_1", "tau_l1_2")], plogis)
  obs <- tabulate(d$l1, 3) / n
  expect_true(within(obs, pr, n), label = paste(round(obs, 4), round(pr, 4), collapse = " "))
  # binary logit
  pb <- stats::integrate(function(u) plogis(p[["alpha_b1"]] + p[["zeta_b1"]] * sf * u) * dnorm(u), -Inf, Inf)$value
  expect_true(within(mean(d$b1), pb, n))
  # normal: mean alpha, variance zeta^2 var(f) + sigma^2
  v <- p[["zeta_n1"]]^2 * sf^2 + p[["sigma_n1"]]^2
  expect_lt(abs(mean(d$n1) - p[["alpha_n1"]]), 4.5 * sqrt(v / n))
  expect_lt(abs(var(d$n1) - v), 4.5 * v * sqrt(2 / n))
  # binary probit choice: P(yes) = E pnorm(asc + b a + lam f), a ~ N(0, 1)
  s <- sqrt(p[["b"]]^2 + p[["lam"]]^2 * sf^2)
  py <- stats::integrate(function(z) pnorm(p[["asc"]] + z) * dnorm(z, 0, s), -Inf, Inf)$value
  expect_equal(py, pnorm(p[["asc"]] / sqrt(1 + s^2)), tolerance = 1e-6)
  expect_true(within(mean(d$buy == "yes"), py, n), label = paste(mean(d$buy == "yes"), py))
  # and the choice depends on the LV with the right sign
  expect_gt(cor(attr(d, "true_lv")[, "f"], d$buy == "yes"), 0.2)
})

test_that("MNL choice shares agree with the implied logit probabilities", {
  m <- iclv_model("f =~ y", id = "ID", categories = 2, choice = iclv_choice("mnl", "ch",
                  list(A = "ascA + lam * f", B = "ascB", C = "0")))
  p <- c(zeta_y = 1, tau_y_1 = 0, ascA = 0.2, lam = 1.0, ascB = -0.4)
  n <- 15000
  d <- iclv_simulate(m, p, n = n / 3, n_tasks = 3, seed = 7)
  implied <- vapply(1:3, function(j) stats::integrate(function(u) {
    V <- cbind(p[["ascA"]] + p[["lam"]] * u, p[["ascB"]], 0)
    E <- exp(V - apply(V, 1, max))
    E[, j] / rowSums(E) * dnorm(u)
  }, -Inf, Inf)$value, numeric(1))
  obs <- as.vector(table(factor(d$ch, c("A", "B", "C")))) / n
  # tasks of one individual share f: inflate the binomial se for clustering
  expect_true(all(abs(obs - implied) < 4.5 * 1.5 * sqrt(implied * (1 - implied) / n)),
              label = paste(round(obs, 4), round(implied, 4), collapse = " "))
})

test_that("binary covariates, uniform attributes, row-level indicators, errors", {
  m <- iclv_model("f =~ y", structural = "f ~ z", indicator_level = "row", id = "ID",
                  choice = iclv_choice("mnl", "ch", list(A = "b * p + l * f", B = "0"),
                                       available = list(A = "avA")))
  p <- c(zeta_y = 1, tau_y_1 = -0.5, tau_y_2 = 0.5, gamma_f_z = 1, b = 1, l = 1)
  d <- iclv_simulate(m, p, n = 200, n_tasks = 4, seed = 1, binary = "z", attributes = "uniform")
  expect_setequal(unique(d$z), c(0, 1))
  expect_true(all(d$p > -1 & d$p < 1))
  expect_true(all(d$avA == 1))
  expect_true(all(d$y %in% 1:3))   # categories from the threshold names
  expect_true(any(tapply(d$y, d$ID, function(v) length(unique(v))) > 1))  # drawn per row
  expect_s3_class(iclv:::.iclv_compile(m, d), "iclv_compiled")
  expect_error(iclv_simulate(m, p[-1], n = 5), "zeta_y", class = "iclv_error_input")
  expect_error(iclv_simulate(m, c(p, extra = 1), n = 5), "extra", class = "iclv_error_input")
  expect_error(iclv_simulate(m, replace(p, "tau_y_2", -1), n = 5), "increasing", class = "iclv_error_input")
  expect_error(iclv_simulate(m, p, n = 5, binary = "w"), "'w'", class = "iclv_error_spec")
  expect_error(iclv_simulate(m, p, n = 5, foo = 1), "foo", class = "iclv_error_spec")
})

test_that("the seed problem data are simulated from its true values", {
  sp <- iclv_seed_problem(n = 60, n_tasks = 3, seed = 5)
  d2 <- iclv_simulate(sp$model, sp$params, n = 60, n_tasks = 3, seed = 5, binary = "x3")
  expect_identical(sp$data, d2)
  expect_equal(dim(attr(sp$data, "true_lv")), c(60L, 5L))
  sp2 <- iclv_seed_problem(n = 60, n_tasks = 3, seed = 5, p_missing = 0.1)
  miss <- mean(is.na(sp2$data[!duplicated(sp2$data$ID), sp$model$indicators]))
  expect_gt(miss, 0.03)
  expect_lt(miss, 0.2)
})
