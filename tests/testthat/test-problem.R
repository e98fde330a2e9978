# The problem object (issue 13): every entry point builds the same problem
# (parameter table, start/fixed values, checks, draws) in one place.

pb_model <- one_lv_mnl_model(fixed = c(asc_b = -0.3)) # (helper-models.R)
pb_data <- iclv_simulate(pb_model, one_lv_mnl_truth, n = 40, n_tasks = 2, seed = 71)
pb_draws <- iclv_draws("halton", 10, seed = 2)

test_that("start and fixed values, names and constraints are handled once, as iclv() documents", {
  prob <- iclv:::.iclv_problem(pb_model, pb_data, pb_draws, start = c(b_price = -0.5),
                               fixed = c(l_att = 0.4))
  pt <- prob$partable
  expect_identical(prob$theta0[["b_price"]], -0.5)
  expect_identical(prob$theta0[["l_att"]], 0.4)
  expect_identical(prob$theta0[["asc_b"]], -0.3) # fixed in the model
  expect_identical(pt$free[pt$name %in% c("l_att", "asc_b")], c(FALSE, FALSE))
  expect_identical(prob$free_names, pt$name[pt$free])
  expect_identical(length(prob$free), sum(pt$free))
  # iclv() and iclv_objective() refuse the same bad start with the same message
  bad <- c(tau_q1_2 = -9)
  e1 <- tryCatch(iclv(pb_model, pb_data, pb_draws, backend = "cpu", start = bad), iclv_error_input = function(e) e)
  e2 <- tryCatch(iclv_objective(pb_model, pb_data, pb_draws, start = bad), iclv_error_input = function(e) e)
  expect_s3_class(e1, "iclv_error_input")
  expect_s3_class(e2, "iclv_error_input") # before: accepted, fn() was Inf at par
  expect_identical(conditionMessage(e2), conditionMessage(e1))
  expect_match(conditionMessage(e2), "starting values: thresholds must increase: 'tau_q1_2'")
  # names: one check for start, fixed and params
  expect_error(iclv_objective(pb_model, pb_data, pb_draws, fixed = c(nope = 1, nada = 2)),
               "'fixed' names 'nope', 'nada', which are not a parameter", class = "iclv_error_input")
  expect_error(iclv_loglik(pb_model, pb_data, c(one_lv_mnl_truth, nope = 1), pb_draws),
               "'params' names 'nope', which is not a parameter", class = "iclv_error_input")
})

test_that("iclv_objective(), iclv_loglik() and iclv() evaluate the same problem", {
  obj <- iclv_objective(pb_model, pb_data, pb_draws, fixed = c(l_att = 0.4))
  p <- obj$par + 0.01
  ll <- iclv_loglik(pb_model, pb_data, c(p, l_att = 0.4), pb_draws)
  expect_identical(obj$loglik(p), ll$loglik)
  expect_identical(-obj$gr(p), ll$gradient[names(p)])
  expect_warning(fit <- iclv(pb_model, pb_data, pb_draws, backend = "cpu", fixed = c(l_att = 0.4),
                             control = iclv_control(maxit = 0)), class = "iclv_warning_convergence")
  # the same point: the fit's start went through the optimizer's
  # unconstrained parameters and back, which may move it by an ulp
  expect_equal(coef(fit)[names(obj$par)], obj$par, tolerance = 1e-15)
  expect_identical(fit$loglik, obj$loglik(coef(fit)[names(obj$par)]))
  expect_identical(names(obj$par), names(fit$gradient))
})

test_that("user draws are matched to the latent variables by name at every entry point", {
  sp <- iclv_seed_problem(n = 12, n_tasks = 2, seed = 3)
  lvs <- paste0("lv", 1:5)
  set.seed(5)
  x <- array(rnorm(12 * 4 * 5), c(12, 4, 5), dimnames = list(NULL, NULL, lvs))
  # the same draws with the latent variables in another order
  perm <- c(3L, 5L, 1L, 4L, 2L)
  xp <- x[, , perm]
  obj_p <- iclv_objective(sp$model, sp$data, draws = xp)
  ll <- iclv_loglik(sp$model, sp$data, sp$params, draws = x)$loglik
  expect_identical(iclv_loglik(sp$model, sp$data, sp$params, draws = xp)$loglik, ll)
  # before: iclv_objective() used the slices in the array's order
  expect_identical(obj_p$loglik(sp$params[names(obj_p$par)]), ll)
  expect_error(iclv_memory_plan(sp$model, sp$data, draws = `dimnames<-`(x, list(NULL, NULL, paste0("z", 1:5))),
                                n_threads = 1), class = "iclv_error_draws")
})
