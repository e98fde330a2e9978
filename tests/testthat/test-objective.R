# iclv_objective(): one engine, natural parameters, usable with optim().

ob_model <- one_lv_mnl_model(fixed = c(asc_b = -0.3)) # (helper-models.R)
ob_data <- iclv_simulate(ob_model, one_lv_mnl_truth, n = 80, n_tasks = 2, seed = 51)
ob_draws <- iclv_draws("halton", 25, seed = 4)

test_that("optim(BFGS) on iclv_objective reaches iclv()'s log-likelihood", {
  fit <- iclv(ob_model, ob_data, draws = ob_draws, backend = "cpu", control = iclv_control(tol = 1e-10))
  obj <- iclv_objective(ob_model, ob_data, draws = ob_draws)
  expect_identical(names(obj$par), fit$partable$name[fit$partable$free])
  opt <- optim(obj$par, obj$fn, obj$gr, method = "BFGS", control = list(maxit = 1000, reltol = 1e-12))
  expect_equal(-opt$value, fit$loglik, tolerance = 1e-6)
  est <- fit$coefficients[names(obj$par)]
  expect_equal(obj$loglik(est), fit$loglik, tolerance = 1e-12)
  expect_equal(-obj$gr(est), fit$gradient, tolerance = 1e-8)
  expect_equal(-obj$he(est), fit$hessian, tolerance = 1e-8)
  expect_equal(obj$scores(est), fit$scores, ignore_attr = TRUE, tolerance = 1e-10)
})

test_that("gr is the gradient of fn (finite differences); refused points give Inf", {
  obj <- iclv_objective(ob_model, ob_data, draws = ob_draws)
  p <- obj$par + 0.05
  g <- obj$gr(p)
  h <- 1e-6
  fd <- vapply(seq_along(p), function(i) {
    e <- replace(numeric(length(p)), i, h)
    (obj$fn(p + e) - obj$fn(p - e)) / (2 * h)
  }, 0)
  expect_equal(unname(g), fd, tolerance = 1e-5)
  bad <- obj$par
  bad[["tau_q1_2"]] <- bad[["tau_q1_1"]] - 1 # thresholds out of order
  expect_identical(obj$fn(bad), Inf)
  expect_error(obj$fn(1:3), class = "iclv_error_input")
  expect_error(obj$fn(replace(obj$par, 1, NA)), class = "iclv_error_input")
  expect_error(iclv_objective(ob_model, ob_data, nope = 1), class = "iclv_error_control")
})
