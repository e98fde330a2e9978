# iclv_delta() and iclv_wtp() against exact linear algebra and a Monte
# Carlo check; clustered covariances against robust ones; anova() against
# 2 x the LL difference.

dl_model <- one_lv_mnl_model() # (helper-models.R)
dl_data <- iclv_simulate(dl_model, one_lv_mnl_truth, n = 120, n_tasks = 3, seed = 21)
dl_draws <- iclv_draws("halton", 30, seed = 5)
dl_fit <- iclv(dl_model, dl_data, draws = dl_draws, backend = "cpu", control = iclv_control(tol = 1e-10))

test_that("a linear combination has its exact variance a'Va", {
  V <- vcov(dl_fit, type = "hessian")
  a <- c(asc_a = 2, l_att = -1, b_price = 0.5)
  r <- iclv_delta(dl_fit, c(lc = "2 * asc_a - l_att + 0.5 * b_price"), type = "hessian")
  cf <- coef(dl_fit)
  expect_equal(r$estimate, sum(a * cf[names(a)]))
  expect_equal(r$std.error, sqrt(drop(t(a) %*% V[names(a), names(a)] %*% a)))
  expect_equal(r$statistic, r$estimate / r$std.error)
  expect_equal(r$conf.low, r$estimate - qnorm(0.975) * r$std.error)
  expect_identical(rownames(r), "lc")
})

test_that("a ratio's delta-method SE agrees with a simulation of the same ratio", {
  r <- iclv_delta(dl_fit, "l_att / b_price")
  V <- vcov(dl_fit)[c("l_att", "b_price"), c("l_att", "b_price")]
  set.seed(42)
  nsim <- 20000
  z <- matrix(rnorm(2 * nsim), nsim) %*% chol(V)
  th <- sweep(z, 2, coef(dl_fit)[c("l_att", "b_price")], "+")
  sim_sd <- sd(th[, 1] / th[, 2])
  # b_price is far from 0 (|z| > 8): the ratio is near-linear; the MC error
  # of an sd from 20000 draws is about 0.5%; allow 5% for the curvature
  expect_equal(r$std.error, sim_sd, tolerance = 0.05)
  expect_equal(r$estimate, coef(dl_fit)[["l_att"]] / coef(dl_fit)[["b_price"]])
})

test_that("iclv_wtp is -b / b_cost for every other choice coefficient", {
  w <- iclv_wtp(dl_fit, cost = "b_price", type = "hessian")
  expect_identical(w$term, c("asc_a", "l_att", "asc_b"))
  cf <- coef(dl_fit)
  expect_equal(w$estimate, unname(-cf[w$term] / cf[["b_price"]]))
  one <- iclv_delta(dl_fit, "-asc_b / b_price", type = "hessian")
  expect_equal(w$std.error[3], one$std.error)
  expect_error(iclv_wtp(dl_fit, cost = "zeta_q1"), class = "iclv_error_input")
  expect_error(iclv_delta(dl_fit, "b_price / nope"), class = "iclv_error_input")
  expect_error(iclv_delta(dl_fit, "b_price +"), class = "iclv_error_input")
  expect_error(iclv_delta(dl_fit, "b_price / 0"), class = "iclv_error_numeric")
})

test_that("clustered SEs with one individual per cluster equal the robust SEs", {
  ids <- unique(dl_data$ID)
  V1 <- vcov(dl_fit, type = "cluster", cluster = ids)
  expect_equal(V1, vcov(dl_fit, type = "robust"), tolerance = 1e-12)
  d <- dl_data
  d$hh <- d$ID
  expect_equal(vcov(dl_fit, type = "cluster", cluster = "hh", data = d), V1)
  # pairs of individuals: the sandwich with summed scores, by hand
  d$hh <- (match(d$ID, ids) + 1L) %/% 2L
  Vc <- vcov(dl_fit, type = "cluster", cluster = "hh", data = d)
  S <- rowsum(dl_fit$scores, (seq_along(ids) + 1L) %/% 2L)
  Hi <- solve(-dl_fit$hessian)
  free <- dl_fit$partable$free
  expect_equal(Vc[free, free], Hi %*% crossprod(S) %*% Hi, tolerance = 1e-8, ignore_attr = TRUE)
  # errors: not constant within individual, no data, wrong length
  d$hh[2] <- 999
  expect_error(vcov(dl_fit, type = "cluster", cluster = "hh", data = d), class = "iclv_error_data")
  expect_error(vcov(dl_fit, type = "cluster", cluster = "hh"), class = "iclv_error_control")
  expect_error(vcov(dl_fit, type = "cluster", cluster = 1:3), class = "iclv_error_control")
  expect_error(iclv_delta(dl_fit, "l_att / b_price", type = "cluster", cluster = ids), NA)
})

test_that("anova: 2 x the LL difference for a restricted fit; refuses non-nested fits", {
  f0 <- iclv(dl_model, dl_data, draws = dl_draws, backend = "cpu", fixed = c(l_att = 0),
             control = iclv_control(tol = 1e-10))
  a <- anova(f0, dl_fit)
  expect_s3_class(a, "anova")
  expect_equal(a[["LR stat"]][2], 2 * (dl_fit$loglik - f0$loglik))
  expect_identical(a[["Df diff"]][2], 1L)
  expect_equal(a[["Pr(>Chisq)"]][2], pchisq(2 * (dl_fit$loglik - f0$loglik), 1, lower.tail = FALSE))
  expect_equal(anova(dl_fit, f0), a) # order does not matter
  # not nested: each fixes a different parameter
  f1 <- iclv(dl_model, dl_data, draws = dl_draws, backend = "cpu", fixed = c(asc_b = 0))
  f2 <- iclv(dl_model, dl_data, draws = dl_draws, backend = "cpu", fixed = c(l_att = 0, asc_a = 0))
  expect_error(anova(f1, f2), class = "iclv_error_nesting")
  expect_error(anova(f1, f0), class = "iclv_error_nesting") # same number of parameters
  # other data
  d2 <- iclv_simulate(dl_model, one_lv_mnl_truth, n = 120, n_tasks = 3, seed = 22)
  f3 <- iclv(dl_model, d2, draws = dl_draws, backend = "cpu", fixed = c(l_att = 0))
  expect_error(anova(f3, dl_fit), class = "iclv_error_nesting")
  expect_error(anova(dl_fit), class = "iclv_error_input")
})

test_that("bootstrap covariance: seeded refits on resampled individuals, the same in parallel", {
  set.seed(99)
  before <- .Random.seed
  Vb <- vcov(dl_fit, type = "bootstrap", data = dl_data, R = 8, seed = 3)
  expect_identical(.Random.seed, before) # the caller's RNG state is left alone
  reps <- attr(Vb, "replicates")
  expect_identical(dim(reps), c(8L - attr(Vb, "failed"), 14L))
  free <- dl_fit$partable$free
  expect_equal(Vb[free, free], cov(reps), ignore_attr = TRUE)
  # the replicate estimates scatter around the estimates on the scale of the SEs
  se <- sqrt(diag(vcov(dl_fit)))[free]
  expect_true(all(abs(colMeans(reps) - coef(dl_fit)[free]) < 3 * se))
  skip_on_os("windows")
  Vp <- vcov(dl_fit, type = "bootstrap", data = dl_data, R = 8, seed = 3, cores = 2)
  expect_equal(Vp, Vb)
  # on a user's cluster: the refits split over its workers, the same matrix
  cl <- parallel::makePSOCKcluster(2)
  on.exit(parallel::stopCluster(cl), add = TRUE)
  Vc <- vcov(dl_fit, type = "bootstrap", data = dl_data, R = 8, seed = 3, cluster = cl)
  expect_identical(attr(Vc, "replicates"), reps)
  expect_equal(Vc, Vb)
  expect_error(vcov(dl_fit, type = "bootstrap"), class = "iclv_error_control")
  expect_error(vcov(dl_fit, type = "bootstrap", data = dl_data, R = 8, cluster = "ID"), class = "iclv_error_control")
})
