# iclv(): estimation, standard errors, diagnostics, and what the fit holds.

# A small model (one LV, three ordered-probit indicators, a structural
# covariate, an MNL with an LV effect) for the fast tests.
# (helper-models.R)
small_model <- function() one_lv_mnl_model()
small_truth <- one_lv_mnl_truth
small_data <- function(n = 200, seed = 1) {
  iclv_simulate(small_model(), small_truth, n = n, n_tasks = 4, seed = seed)
}
small_draws <- function() iclv_draws("halton", 50, seed = 1)
small_fit <- function(..., data = small_data()) {
  iclv(small_model(), data, draws = small_draws(), backend = "cpu", ...)
}

test_that("the fit object holds every field of the API", {
  fit <- small_fit()
  expect_s3_class(fit, "iclv")
  for (f in c("coefficients", "vcov", "loglik", "loglik_null", "n_individuals", "n_obs", "n_params",
              "convergence", "draws", "backend", "timing", "partable", "memory")) {
    expect_true(f %in% names(fit), info = f)
  }
  expect_named(fit$coefficients, small_model()$partable$name)
  expect_named(fit$vcov, c("hessian", "bhhh", "robust"))
  for (v in fit$vcov) expect_equal(dim(v), c(14L, 14L))
  expect_identical(fit$n_individuals, 200L)
  expect_identical(fit$n_obs, 800L)
  expect_identical(fit$n_params, 14L)
  expect_true(all(c("code", "message", "iterations", "gradient_norm", "evaluations") %in% names(fit$convergence)))
  expect_identical(fit$convergence$code, 0L)
  expect_identical(fit$draws[c("type", "n", "seed")], list(type = "halton", n = 50L, seed = 1))
  expect_identical(fit$backend$name, "cpu")
  expect_true(all(c("total", "per_evaluation", "evaluations") %in% names(fit$timing)))
  expect_gt(fit$timing$evaluations, fit$convergence$iterations)
  expect_named(fit$partable, c("name", "block", "lhs", "op", "rhs", "free", "est", "se", "label", "defined"))
  expect_equal(fit$partable$est, unname(fit$coefficients))
  expect_equal(fit$partable$se, unname(sqrt(diag(fit$vcov$robust))))
  mem <- fit$memory
  expect_true(all(c("host_peak", "device_peak", "buffers", "device_total", "device_free_at_start",
                    "per_chunk", "n_chunks", "process_peak") %in% names(mem)))
  expect_gt(mem$host_peak, 0)
  expect_true(is.numeric(mem$buffers) && length(mem$buffers) > 0 && !is.null(names(mem$buffers)))
  expect_identical(as.integer(mem$n_chunks), 1L)
  expect_identical(as.integer(mem$per_chunk), 200L)
  if (file.exists("/proc/self/status")) expect_gt(mem$process_peak, mem$host_peak)
  # every free parameter is estimated: the gradient at the optimum is small
  # for all of them, relative to the scale of the scores
  expect_named(fit$gradient, fit$partable$name[fit$partable$free])
  expect_lt(max(abs(fit$gradient)), 0.05)
})

test_that("the log-likelihood, its components and LL(0) follow their definitions", {
  d <- small_data()
  fit <- small_fit(data = d)
  ll <- iclv_loglik(small_model(), d, coef(fit), draws = small_draws())
  expect_equal(fit$loglik, ll$loglik, tolerance = 1e-10)
  expect_equal(fit$gradient, ll$gradient, tolerance = 1e-8)
  # equal shares among 3 alternatives on 800 rows
  expect_equal(fit$loglik_null, -800 * log(3))
  expect_named(fit$loglik_components, c("q1", "q2", "q3", "choice"))
  expect_equal(fit$rho2, unname(1 - fit$loglik_components[["choice"]] / fit$loglik_null))
  expect_gt(fit$rho2, 0)
  # an ordered-probit component in closed form: y* = zeta (gamma age + e) + u,
  # so P(y <= c | age) = Phi((tau_c - zeta gamma age) / sqrt(1 + zeta^2));
  # the simulated (50 Halton draws) component LL must be close to it (its
  # simulation bias, about -var/(2R) per individual, is ~0.3% here)
  cf <- coef(fit)
  first <- d[!duplicated(d$ID), ]
  for (q in c("q1", "q2", "q3")) {
    z <- cf[[paste0("zeta_", q)]]
    tau <- c(-Inf, cf[[paste0("tau_", q, "_1")]], cf[[paste0("tau_", q, "_2")]], Inf)
    mu <- z * cf[["gamma_att_age"]] * first$age
    y <- first[[q]]
    sdv <- sqrt(1 + z^2)
    exact <- sum(log(pnorm((tau[y + 1] - mu) / sdv) - pnorm((tau[y] - mu) / sdv)))
    expect_equal(fit$loglik_components[[q]], exact, tolerance = 5e-3, info = q)
  }
})

test_that("the three covariance matrices are the textbook formulas at the optimum", {
  d <- small_data()
  fit <- small_fit(data = d)
  at <- iclv_loglik(small_model(), d, coef(fit), draws = small_draws(), scores = TRUE, hessian = TRUE)
  Hi <- solve(-at$hessian)
  B <- crossprod(at$scores)
  expect_equal(unname(fit$vcov$hessian), unname(Hi), tolerance = 1e-8)
  expect_equal(unname(fit$vcov$bhhh), unname(solve(B)), tolerance = 1e-8)
  expect_equal(unname(fit$vcov$robust), unname(Hi %*% B %*% Hi), tolerance = 1e-8)
  expect_true(fit$identification$ok)
  expect_true(all(fit$identification$eigenvalues > 0))
})

test_that("BFGS, Newton and BHHH reach the same maximum", {
  d <- small_data(n = 250, seed = 4)
  fits <- lapply(c("bfgs", "newton", "bhhh"), function(m) {
    small_fit(data = d, control = iclv_control(method = m, tol = 1e-9))
  })
  for (f in fits) expect_identical(f$convergence$code, 0L)
  expect_lt(abs(fits[[2]]$loglik - fits[[1]]$loglik), 1e-6)
  expect_lt(abs(fits[[3]]$loglik - fits[[1]]$loglik), 1e-6)
  expect_equal(coef(fits[[2]]), coef(fits[[1]]), tolerance = 1e-3)
  expect_equal(coef(fits[[3]]), coef(fits[[1]]), tolerance = 1e-3)
  expect_identical(fits[[2]]$convergence$method, "newton")
})

test_that("the start search keeps the best of its candidates and reaches the same maximum", {
  d <- small_data(n = 150, seed = 9)
  out <- capture.output(fit <- small_fit(data = d, control = iclv_control(start_search = TRUE, trace = 1)))
  expect_length(grep("^start search: loadings x", out), 2L)
  expect_identical(fit$convergence$code, 0L)
  expect_lt(abs(fit$loglik - small_fit(data = d)$loglik), 1e-5)
})

test_that("non-convergence is reported and vcov() warns", {
  expect_warning(fit <- small_fit(control = iclv_control(maxit = 2)), class = "iclv_warning_convergence")
  expect_identical(fit$convergence$code, 1L)
  expect_identical(fit$convergence$message, "iteration limit reached")
  expect_identical(fit$convergence$iterations, 2L)
  expect_warning(vcov(fit), class = "iclv_warning_convergence")
  expect_warning(confint(fit), class = "iclv_warning_convergence")
  expect_output(print(fit), "NOT converged \\(code 1\\)")
})

test_that("an interrupt returns the best point so far, marked not converged", {
  d <- small_data()
  full <- small_fit(data = d)
  seen <- numeric()
  cb <- function(iteration, loglik, params) {
    seen[iteration] <<- loglik
    expect_named(params, names(small_truth))
    if (iteration == 3) signalCondition(structure(class = c("interrupt", "condition"), list()))
  }
  expect_warning(fit <- small_fit(data = d, control = iclv_control(callback = cb)),
                 class = "iclv_warning_interrupt")
  expect_identical(fit$convergence$code, 3L)
  expect_identical(fit$convergence$message, "interrupted")
  expect_identical(fit$convergence$iterations, 3L)
  expect_equal(fit$loglik, seen[3], tolerance = 1e-10)
  expect_lt(fit$loglik, full$loglik)
  expect_warning(vcov(fit), class = "iclv_warning_convergence")
})

test_that("checkpoints are written and a run restarts from one", {
  d <- small_data()
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path))
  expect_warning(small_fit(data = d, control = iclv_control(maxit = 4, checkpoint = path, checkpoint_every = 2)),
                 class = "iclv_warning_convergence")
  cp <- readRDS(path)
  expect_identical(cp$iteration, 4L)
  expect_named(cp$coefficients, names(small_truth))
  expect_identical(cp$kind, "iclv_checkpoint")
  expect_false(file.exists(paste0(path, ".tmp", Sys.getpid()))) # written by rename
  full <- small_fit(data = d)
  # coefficients alone are a warm start ...
  warm <- small_fit(data = d, start = cp$coefficients)
  expect_lt(abs(warm$loglik - full$loglik), 1e-6)
  expect_lt(warm$convergence$iterations, full$convergence$iterations)
  # ... while resume continues the very same trajectory: same optimum to 1e-8,
  # same total iteration count
  for (method in c("bfgs", "bhhh", "newton")) {
    ctl <- iclv_control(method = method)
    full_m <- small_fit(data = d, control = ctl)
    p_m <- tempfile(fileext = ".rds")
    suppressWarnings(small_fit(data = d, control = iclv_control(method = method, maxit = 3,
                                                                checkpoint = p_m, checkpoint_every = 1)))
    resumed <- small_fit(data = d, control = ctl, resume = p_m)
    unlink(p_m)
    expect_identical(resumed$convergence$code, full_m$convergence$code, info = method)
    expect_equal(coef(resumed), coef(full_m), tolerance = 1e-8, info = method)
    expect_equal(resumed$loglik, full_m$loglik, tolerance = 1e-12, info = method)
    expect_identical(resumed$convergence$iterations, full_m$convergence$iterations, info = method)
  }
  # a checkpoint of other data, or a file that is no checkpoint, is refused
  d2 <- d
  d2$q1[1:40] <- rev(d2$q1[1:40])
  expect_error(small_fit(data = d2, resume = path), class = "iclv_error_control")
  bogus <- tempfile(fileext = ".rds")
  saveRDS(list(a = 1), bogus)
  expect_error(small_fit(data = d, resume = bogus), class = "iclv_error_control")
  expect_error(small_fit(data = d, resume = tempfile()), class = "iclv_error_control")
  unlink(bogus)
  # a previous fit works as `start` too
  again <- small_fit(data = d, start = full)
  expect_lte(again$convergence$iterations, 2L)
})

test_that("fixed parameters stay fixed, also inside a threshold group", {
  d <- small_data()
  fit <- small_fit(data = d, fixed = c(tau_q1_1 = -1, b_price = -1))
  expect_identical(fit$convergence$code, 0L)
  expect_identical(fit$n_params, 12L)
  expect_identical(coef(fit)[["tau_q1_1"]], -1)
  expect_identical(coef(fit)[["b_price"]], -1)
  expect_gt(coef(fit)[["tau_q1_2"]], -1)
  expect_false(any(fit$partable$free[fit$partable$name %in% c("tau_q1_1", "b_price")]))
  expect_true(all(is.na(fit$partable$se[!fit$partable$free])))
  V <- vcov(fit)
  expect_true(all(is.na(V["b_price", ])) && all(is.na(V[, "tau_q1_1"])))
  expect_false(anyNA(V[fit$partable$free, fit$partable$free]))
  # the restricted maximum is below the unrestricted one
  expect_lt(fit$loglik, small_fit(data = d)$loglik + 1e-8)
})

test_that("bad arguments are refused with classed errors naming them", {
  d <- small_data(n = 30)
  expect_error(small_fit(data = d, maxit = 3), "maxit", class = "iclv_error_control")
  expect_error(small_fit(data = d, control = list(method = "bfgs")), class = "iclv_error_control")
  expect_error(small_fit(data = d, start = c(nope = 1)), "nope", class = "iclv_error_input")
  expect_error(small_fit(data = d, fixed = c(zeta_q1 = NA_real_)), "zeta_q1", class = "iclv_error_input")
  expect_error(small_fit(data = d, start = c(tau_q2_1 = 2)), "tau_q2_2", class = "iclv_error_input")
  expect_error(iclv(small_model(), d, draws = small_draws(), backend = "gpu"), "backend",
               class = "iclv_error_control")
  p <- small_truth[-match("l_att", names(small_truth))]
  expect_error(iclv_loglik(small_model(), d, p, draws = small_draws()), "l_att", class = "iclv_error_input")
  expect_error(iclv_loglik(small_model(), d, c(small_truth, zz = 1), draws = small_draws()), "zz",
               class = "iclv_error_input")
  # fixed parameters may be omitted from iclv_loglik's params
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
    id = "ID", categories = 3, fixed = c(b_price = -1))
  ll <- iclv_loglik(m, d, small_truth[names(small_truth) != "b_price"], draws = small_draws(),
                    scores = TRUE, hessian = TRUE)
  ll_full <- iclv_loglik(small_model(), d, small_truth, draws = small_draws())
  expect_equal(ll$loglik, ll_full$loglik)
  expect_false("b_price" %in% names(ll$gradient))
  expect_equal(ll$gradient, ll_full$gradient[names(ll$gradient)])
  expect_equal(dim(ll$scores), c(30L, 13L))
  expect_equal(dim(ll$hessian), c(13L, 13L))
  expect_equal(unname(colSums(ll$scores)), unname(ll$gradient), tolerance = 1e-8)
})

test_that("backend = \"cuda\" without a usable GPU is an error that says why; auto says what it chose", {
  if (isTRUE(iclv_cuda_available())) {
    b <- iclv:::.resolve_backend("auto")
    expect_identical(b$name, "cuda")
    expect_match(b$reason, "auto: chose cuda")
  } else {
    expect_error(iclv:::.resolve_backend("cuda"), "backend = \"cuda\"", class = "iclv_error_cuda")
    expect_error(iclv(small_model(), small_data(n = 20), draws = small_draws(), backend = "cuda"),
                 "backend = \"cuda\"", class = "iclv_error_cuda")
    b <- iclv:::.resolve_backend("auto")
    expect_identical(b$name, "cpu")
    expect_match(b$reason, "^auto: chose cpu because .+")
    fit <- iclv(small_model(), small_data(n = 40), draws = small_draws(), backend = "auto")
    expect_identical(fit$backend$name, "cpu")
    expect_output(print(fit), "auto: chose cpu because")
  }
  expect_identical(iclv:::.resolve_backend("cpu")$name, "cpu")
})

test_that("an unidentified model is flagged, naming the parameters involved", {
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + asc_dup + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
    id = "ID", categories = 3)
  d <- small_data(n = 150)
  msgs <- character()
  fit <- withCallingHandlers(
    # the check before estimation would refuse it (test-identify.R); this
    # test is about the check at the estimate
    iclv(m, d, draws = small_draws(), backend = "cpu",
         control = iclv_control(maxit = 100, check_identification = FALSE)),
    iclv_warning = function(w) {
      msgs <<- c(msgs, paste(class(w)[1], conditionMessage(w)))
      invokeRestart("muffleWarning")
    })
  id_msg <- grep("^iclv_warning_identification", msgs, value = TRUE)
  expect_length(id_msg, 1L)
  expect_match(id_msg, "'asc_a'")
  expect_match(id_msg, "'asc_dup'")
  expect_false(fit$identification$ok)
  expect_setequal(fit$identification$weak[1:2], c("asc_a", "asc_dup"))
  # the standard errors of the unidentified pair are NA (not huge numbers,
  # not z = Inf), with a vcov warning naming them; identified ones stay
  if (fit$convergence$code == 0L) {
    vc_msg <- grep("^iclv_warning_vcov", msgs, value = TRUE)
    expect_gte(length(vc_msg), 1L)
    expect_match(vc_msg[1], "asc_dup")
  }
  for (type in c("hessian", "robust")) {
    se <- suppressWarnings(sqrt(diag(vcov(fit, type = type))))
    expect_true(all(is.na(se[c("asc_a", "asc_dup")])), info = type)
    expect_true(all(is.finite(se[c("b_price", "zeta_q1")])), info = type)
  }
  s <- suppressWarnings(summary(fit, type = "robust"))
  z <- do.call(rbind, s$coefficients)[, "z value"]
  expect_false(any(is.infinite(z)))
})

# ---- recovery ---------------------------------------------------------------

recovery_model <- function() {
  iclv_model("
      lv1 =~ a1 + a2 + a3
      lv2 =~ b1 + b2 + b3",
    structural = "
      lv1 ~ x1
      lv2 ~ x2 + lv1",
    indicators = list(a1 = "ordered_probit", a2 = "ordered_probit", a3 = "ordered_probit",
                      b1 = "ordered_logit", b2 = "ordered_logit", b3 = "ordered_logit"),
    choice = iclv_choice("mnl", choice = "choice", utilities = list(
      alt1 = "asc1 + b_cost * cost_1 + l_1 * lv1",
      alt2 = "asc2 + b_cost * cost_2 + l_2 * lv2",
      alt3 = "b_cost * cost_3")),
    id = "ID", categories = 4)
}
recovery_truth <- c(
  zeta_a1 = 1, zeta_a2 = 0.8, zeta_a3 = 1.2, zeta_b1 = 1.5, zeta_b2 = 1, zeta_b3 = 2,
  tau_a1_1 = -1, tau_a1_2 = 0, tau_a1_3 = 1, tau_a2_1 = -0.5, tau_a2_2 = 0.3, tau_a2_3 = 1.2,
  tau_a3_1 = -1.2, tau_a3_2 = -0.2, tau_a3_3 = 0.8, tau_b1_1 = -2, tau_b1_2 = 0, tau_b1_3 = 2,
  tau_b2_1 = -1.5, tau_b2_2 = 0.5, tau_b2_3 = 1.5, tau_b3_1 = -2.5, tau_b3_2 = -0.5, tau_b3_3 = 1.5,
  gamma_lv1_x1 = 0.5, gamma_lv2_x2 = -0.4, gamma_lv2_lv1 = 0.6,
  asc1 = 0.3, asc2 = -0.2, b_cost = -1, l_1 = 0.8, l_2 = -0.6)

test_that("a 2-LV model with ordered probit/logit indicators and an MNL is recovered", {
  skip_on_cran()
  m <- recovery_model()
  truth <- recovery_truth[m$partable$name]
  expect_false(anyNA(truth))
  for (s in 1:3) {
    d <- iclv_simulate(m, truth, n = 2000, n_tasks = 4, seed = s)
    fit <- iclv(m, d, draws = iclv_draws("halton", 100, seed = 1), backend = "cpu")
    expect_identical(fit$convergence$code, 0L)
    se <- sqrt(diag(vcov(fit, type = "robust")))
    z <- (coef(fit) - truth) / se
    expect_true(all(abs(z) < 3), info = sprintf("seed %d: %s", s,
      paste(names(z)[abs(z) >= 3], round(z[abs(z) >= 3], 2), collapse = ", ")))
    # jointly: sum z^2 ~ chi-square(32) when the SEs are right
    expect_lt(sum(z^2), qchisq(0.999, length(z)))
    # the three SE types agree
    se_h <- sqrt(diag(vcov(fit, type = "hessian")))
    se_b <- sqrt(diag(vcov(fit, type = "bhhh")))
    expect_true(all(abs(se_b / se_h - 1) < 0.15), info = sprintf("seed %d bhhh/hessian", s))
    expect_true(all(abs(se / se_h - 1) < 0.15), info = sprintf("seed %d robust/hessian", s))
    ci <- confint(fit, level = 0.999)
    expect_true(all(ci[, 1] < truth & truth < ci[, 2]), info = sprintf("seed %d", s))
    # the posterior LV means track the simulated LVs
    lv <- predict(fit, type = "lv")
    tl <- attr(d, "true_lv")
    expect_gt(cor(lv$mean_lv1, tl[, "lv1"]), 0.6)
    expect_gt(cor(lv$mean_lv2, tl[, "lv2"]), 0.6)
  }
})
