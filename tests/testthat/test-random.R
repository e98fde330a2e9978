# Random terms (iclv_model(random = )): standard-normal draw dimensions after
# the latent variables, used linearly in utilities (b_sd * xi * price), against
# a likelihood computed by hand from the data frame, the pure-R reference on
# the compiled list (helper-reference.R), and finite differences.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

rnd_model <- function(random = "xi_price", u_a = NULL) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", "ch", list(
      a = u_a %||% "asc_a + b_price * price_a + b_sd * xi_price * price_a + l_att * att",
      b = "asc_b + b_price * price_b + b_sd * xi_price * price_b + s_b * xi_b",
      c = "0")),
    id = "ID", categories = 3, random = random)
}
`%||%` <- function(a, b) if (is.null(a)) b else a
rnd_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
               zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5, asc_a = 0.2,
               b_price = -1, b_sd = 0.6, l_att = 0.7, asc_b = -0.3, s_b = 0.8)

# The simulated LL written from the data frame, independent of R/compile.R:
# eta = gamma * age + e[, 1], xi_price = e[, 2], xi_b = e[, 3].
hand_loglik <- function(d, p, user) {
  ids <- unique(d$ID)
  R <- dim(user)[2]
  sum(vapply(seq_along(ids), function(n) {
    rows <- d[d$ID == ids[n], ]
    l <- vapply(seq_len(R), function(r) {
      eta <- p[["gamma_att_age"]] * rows$age[1] + user[n, r, 1]
      xi <- user[n, r, 2]
      xb <- user[n, r, 3]
      li <- 0
      for (q in 1:3) {
        y <- rows[[paste0("q", q)]][1]
        tau <- c(-Inf, p[[sprintf("tau_q%d_1", q)]], p[[sprintf("tau_q%d_2", q)]], Inf)
        s <- p[[paste0("zeta_q", q)]] * eta
        li <- li + log(pnorm(tau[y + 1] - s) - pnorm(tau[y] - s))
      }
      bp <- p[["b_price"]] + p[["b_sd"]] * xi
      Va <- p[["asc_a"]] + bp * rows$price_a + p[["l_att"]] * eta
      Vb <- p[["asc_b"]] + bp * rows$price_b + p[["s_b"]] * xb
      V <- cbind(Va, Vb, 0)
      y <- match(rows$ch, c("a", "b", "c"))
      li + sum(V[cbind(seq_along(y), y)] - log(rowSums(exp(V))))
    }, numeric(1))
    m <- max(l)
    m + log(mean(exp(l - m)))
  }, numeric(1)))
}

rnd_data <- function(n = 25, seed = 1) {
  m <- rnd_model(c("xi_price", "xi_b"))
  d <- iclv_simulate(m, rnd_truth, n = n, n_tasks = 3, seed = seed)
  list(m = m, d = d)
}

test_that("a mixed-logit ICLV with random terms equals the likelihood written by hand and the R reference", {
  x <- rnd_data()
  expect_identical(x$m$random, c("xi_price", "xi_b"))
  expect_output(print(x$m), "Random terms \\(standard normal, one per individual\\): xi_price, xi_b")
  set.seed(2)
  user <- array(rnorm(25 * 12 * 3), c(25, 12, 3), dimnames = list(NULL, NULL, c("att", "xi_price", "xi_b")))
  for (k in 1:2) {
    p <- rnd_truth + if (k == 1) 0 else stats::runif(length(rnd_truth), -0.2, 0.2)
    p[c("tau_q1_2", "tau_q2_2", "tau_q3_2")] <- p[c("tau_q1_2", "tau_q2_2", "tau_q3_2")] + 0.5
    ll <- iclv_loglik(x$m, x$d, p, draws = user)$loglik
    expect_lt(abs(ll - hand_loglik(x$d, p, user)), 1e-10)
    cmp <- iclv:::.iclv_compile(x$m, x$d)
    expect_identical(cmp$lvs, c("att", "xi_price", "xi_b"))
    expect_lt(abs(ll - ref_loglik(cmp$c, p[cmp$partable$name], unname(user))$loglik), 1e-10)
  }
  # the user array's slices are matched by name, not position
  perm <- user[, , c("xi_b", "att", "xi_price")]
  expect_identical(iclv_loglik(x$m, x$d, rnd_truth, draws = perm)$loglik,
                   iclv_loglik(x$m, x$d, rnd_truth, draws = user)$loglik)
  bad <- user
  dimnames(bad)[[3]] <- c("att", "xi_price", "zeta")
  expect_error(iclv_loglik(x$m, x$d, rnd_truth, draws = bad), class = "iclv_error_draws",
               regexp = "random terms")
  expect_error(iclv_loglik(x$m, x$d, rnd_truth, draws = user[, , 1:2]), class = "iclv_error_draws",
               regexp = "x 12 x 3")
  # generated designs cover the random dimensions too
  expect_true(is.finite(iclv_loglik(x$m, x$d, rnd_truth, draws = iclv_draws("sobol", 16))$loglik))
})

test_that("gradient and Hessian with random terms match finite differences, on both CPU paths", {
  x <- rnd_data(n = 15, seed = 3)
  cmp <- iclv:::.iclv_compile(x$m, x$d)
  spec <- iclv:::.draws_spec(iclv_draws("mlhs", 10, seed = 4), cmp$n_ind, 3L)
  set.seed(9)
  th <- rnd_truth[cmp$partable$name] + stats::runif(length(rnd_truth), -0.15, 0.15)
  for (refpath in c("0", "1")) {
    ev <- expect_engine_fd(cmp$c, spec, th, refpath) # (helper-compiled.R)
    # the random-coefficient parameters have curvature of their own (the check can fail)
    sd_i <- match(c("b_sd", "s_b"), names(th))
    expect_true(all(abs(diag(ev$hessian)[sd_i]) > 1e-3))
  }
})

test_that("random terms: specification errors are classed and name the term", {
  expect_error(rnd_model("att"), class = "iclv_error_spec", regexp = "'att' is also a latent variable")
  expect_error(rnd_model(c("xi_price", "xi_price")), class = "iclv_error_spec", regexp = "twice")
  expect_error(rnd_model(c("xi_price", NA)), class = "iclv_error_spec", regexp = "'random'")
  expect_error(rnd_model(c("xi_price", "1x")), class = "iclv_error_spec", regexp = "'random'")
  expect_error(rnd_model(c("xi_price", "q1")), class = "iclv_error_spec", regexp = "indicator")
  expect_error(iclv_model("att =~ q1 + q2 + q3", structural = "att ~ xi", id = "ID", random = "xi"),
               class = "iclv_error_spec", regexp = "not supported there")
  expect_error(rnd_model(c("xi_price", "xi_b", "ID")), class = "iclv_error_spec", regexp = "id column")
  expect_warning(rnd_model(c("xi_price", "xi_b", "xi_unused")), class = "iclv_warning_spec",
                 regexp = "'xi_unused' is not used")
  # a random term is never a parameter, and never a data column
  m <- rnd_model(c("xi_price", "xi_b"), u_a = "(xi_price * b_sd * price_a) + asc_a + l_att * att")
  expect_identical(m$choice$terms$a$param[1], "b_sd")
  expect_error(rnd_model(c("xi_price", "xi_b"), u_a = "asc_a + b_x * xi_price * att"),
               class = "iclv_error_spec", regexp = "two latent variables")
  x <- rnd_data(n = 5)
  d <- x$d
  d$xi_b <- 1
  expect_error(iclv_loglik(x$m, d, rnd_truth, draws = iclv_draws("halton", 5)), class = "iclv_error_data",
               regexp = "random term 'xi_b' is also the name of a column")
})

test_that("a mixed-logit ICLV recovers its parameters from simulated data", {
  skip_on_cran()
  m <- rnd_model(c("xi_price", "xi_b"))
  d <- iclv_simulate(m, rnd_truth, n = 400, n_tasks = 6, seed = 21)
  st <- rnd_truth
  st[] <- ifelse(grepl("^tau|^zeta", names(st)), rnd_truth, 0.3)
  fit <- iclv(m, d, draws = iclv_draws("sobol", 100, seed = 3), backend = "cpu",
              control = iclv_control(trace = 0), start = st)
  expect_identical(fit$convergence$code, 0L)
  se <- sqrt(diag(vcov(fit)))[names(rnd_truth)]
  z <- abs(abs(coef(fit)[names(rnd_truth)]) - abs(rnd_truth)) / se # sds are identified up to sign
  expect_true(all(z < 3), info = paste(names(z)[z >= 3], collapse = ", "))
  # predict() reports the posterior means of the random terms as of the LVs
  pl <- predict(fit, type = "lv")
  expect_true(all(c("mean_att", "mean_xi_price", "mean_xi_b") %in% names(pl)))
  expect_identical(dim(predict(fit, newdata = d[1:12, ], type = "prob")), c(12L, 3L))
  # summary() reports the random coefficients as distributions
  sm <- summary(fit)
  rt <- sm$random
  V <- vcov(fit, type = sm$vcov_type)
  expect_identical(nrow(rt), 2L)
  expect_identical(rt$coefficient[1], "price_a (a), price_b (b)")
  expect_identical(rt$random, c("xi_price", "xi_b"))
  expect_equal(rt$mean, unname(coef(fit)[c("b_price", "asc_b")]))
  expect_equal(rt$median, rt$mean)
  expect_equal(rt$sd, unname(abs(coef(fit)[c("b_sd", "s_b")])))
  expect_equal(rt$se_mean, unname(sqrt(diag(V))[c("b_price", "asc_b")]))
  expect_equal(rt$se_sd, unname(sqrt(diag(V))[c("b_sd", "s_b")]))
  expect_output(print(sm), "Random coefficients")
})
