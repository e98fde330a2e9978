# The methods of a fitted model: print, summary, coef, vcov, logLik, AIC/BIC,
# nobs, confint, fitted, predict, update, tidy, glance.

meth_model <- function(fixed = NULL) one_lv_mnl_model(fixed) # (helper-models.R)
meth_truth <- one_lv_mnl_truth
m_meth <- meth_model(fixed = c(asc_b = -0.3))
d_meth <- iclv_simulate(m_meth, meth_truth, n = 150, n_tasks = 3, seed = 7)
dr_meth <- iclv_draws("halton", 40, seed = 2)
# a tight tolerance: the printed digits must not depend on the optimizer's path
fit_meth <- iclv(m_meth, d_meth, draws = dr_meth, backend = "cpu", control = iclv_control(tol = 1e-10))

scrub <- function(x) {
  x <- sub("^Time: .*$", "Time: <scrubbed>", x)
  # the optimizer's path (iterations, gradient) is not part of the contract
  sub("^(Convergence: (NOT )?converged).*$", "\\1 <details scrubbed>", x)
}

test_that("print and summary show the results (snapshot)", {
  expect_snapshot(print(fit_meth, digits = 3), transform = scrub)
  expect_snapshot(print(summary(fit_meth), digits = 3), transform = scrub)
  s <- summary(fit_meth, type = "hessian")
  expect_s3_class(s, "summary.iclv")
  expect_named(s$coefficients, c("measurement", "structural", "choice"))
  expect_identical(s$vcov_type, "hessian")
  tab <- do.call(rbind, s$coefficients)
  se <- sqrt(diag(fit_meth$vcov$hessian))
  expect_equal(tab[names(se), "Std. Error"], se)
  expect_equal(tab[, "z value"], tab[, "Estimate"] / tab[, "Std. Error"])
  expect_equal(tab[, "Pr(>|z|)"], 2 * pnorm(-abs(tab[, "z value"])))
  expect_identical(s$fixed, "asc_b")
})

test_that("coef, vcov, logLik, AIC, BIC and nobs agree with their definitions", {
  cf <- coef(fit_meth)
  expect_named(cf, m_meth$partable$name)
  expect_identical(cf[["asc_b"]], -0.3)
  V <- vcov(fit_meth)
  free <- fit_meth$partable$free
  expect_equal(V[free, free], fit_meth$vcov$robust)
  expect_true(all(is.na(V["asc_b", ])))
  expect_equal(vcov(fit_meth, type = "bhhh")[free, free], fit_meth$vcov$bhhh)
  expect_error(vcov(fit_meth, type = "opg"), class = "iclv_error_control")
  ll <- logLik(fit_meth)
  expect_equal(as.numeric(ll), fit_meth$loglik)
  expect_identical(attr(ll, "df"), 13L)
  expect_identical(attr(ll, "nobs"), 150L)
  expect_identical(nobs(fit_meth), 150L)
  expect_equal(AIC(fit_meth), -2 * fit_meth$loglik + 2 * 13)
  expect_equal(BIC(fit_meth), -2 * fit_meth$loglik + log(150) * 13)
})

test_that("confint gives Wald intervals", {
  ci <- confint(fit_meth)
  se <- sqrt(diag(vcov(fit_meth)))
  expect_equal(ci[, 1], coef(fit_meth) - qnorm(0.975) * se)
  expect_equal(ci[, 2], coef(fit_meth) + qnorm(0.975) * se)
  expect_identical(colnames(ci), c("2.5 %", "97.5 %"))
  ci90 <- confint(fit_meth, c("b_price", "l_att"), level = 0.9, type = "hessian")
  expect_identical(rownames(ci90), c("b_price", "l_att"))
  expect_identical(colnames(ci90), c("5 %", "95 %"))
  expect_equal(unname(ci90[, 2] - ci90[, 1]),
               unname(2 * qnorm(0.95) * sqrt(diag(fit_meth$vcov$hessian))[c("b_price", "l_att")]))
  expect_true(all(is.na(ci["asc_b", ])))
  expect_error(confint(fit_meth, "nope"), "nope", class = "iclv_error_input")
  expect_error(confint(fit_meth, level = 2), "level", class = "iclv_error_control")
})

test_that("predicted choice probabilities equal an R computation over the same draws", {
  P <- predict(fit_meth, type = "prob")
  expect_equal(dim(P), c(450L, 3L))
  expect_identical(colnames(P), c("a", "b", "c"))
  expect_equal(unname(rowSums(P)), rep(1, 450), tolerance = 1e-12)
  # independent: P_tj = (1/R) sum_r softmax_j(V(eta_r)), eta_r = gamma age + e_r
  cf <- coef(fit_meth)
  e <- iclv_draws_generate(dr_meth, n_ind = 150, n_lv = 1)[, , 1]
  idx <- match(d_meth$ID, unique(d_meth$ID))
  eta <- cf[["gamma_att_age"]] * d_meth$age + e[idx, , drop = FALSE] # rows x R
  Va <- cf[["asc_a"]] + cf[["b_price"]] * d_meth$price_a + cf[["l_att"]] * eta
  Vb <- matrix(cf[["asc_b"]] + cf[["b_price"]] * d_meth$price_b, nrow(eta), ncol(eta))
  den <- exp(Va) + exp(Vb) + 1
  ref <- cbind(rowMeans(exp(Va) / den), rowMeans(exp(Vb) / den), rowMeans(1 / den))
  expect_equal(unname(P), ref, tolerance = 1e-10)
  # fitted(): the probability of the chosen alternative
  f <- fitted(fit_meth)
  expect_length(f, 450L)
  expect_equal(f, unname(P[cbind(1:450, match(d_meth$ch, colnames(P)))]))
  # newdata: the same data gives the same predictions; a subset its rows
  expect_equal(predict(fit_meth, newdata = d_meth), P)
  sub <- d_meth[d_meth$ID %in% 1:5, ]
  Ps <- predict(fit_meth, newdata = sub)
  expect_equal(dim(Ps), c(15L, 3L))
  expect_error(predict(fit_meth, type = "utility"), class = "iclv_error_control")
})

test_that("posterior LV means and sds equal an R computation over the same draws", {
  lv <- predict(fit_meth, type = "lv")
  expect_named(lv, c("id", "mean_att", "sd_att"))
  expect_equal(nrow(lv), 150L)
  cf <- coef(fit_meth)
  e <- iclv_draws_generate(dr_meth, n_ind = 150, n_lv = 1)[, , 1]
  first <- d_meth[!duplicated(d_meth$ID), ]
  eta <- cf[["gamma_att_age"]] * first$age + e # N x R
  logw <- matrix(0, 150, ncol(e))
  for (q in c("q1", "q2", "q3")) {
    tau <- c(-Inf, cf[[paste0("tau_", q, "_1")]], cf[[paste0("tau_", q, "_2")]], Inf)
    s <- cf[[paste0("zeta_", q)]] * eta
    y <- first[[q]]
    logw <- logw + log(pnorm(tau[y + 1] - s) - pnorm(tau[y] - s))
  }
  idx <- match(d_meth$ID, first$ID)
  for (t in seq_len(nrow(d_meth))) {
    n <- idx[t]
    va <- cf[["asc_a"]] + cf[["b_price"]] * d_meth$price_a[t] + cf[["l_att"]] * eta[n, ]
    vb <- cf[["asc_b"]] + cf[["b_price"]] * d_meth$price_b[t]
    v <- switch(as.character(d_meth$ch[t]), a = va, b = vb, c = 0)
    logw[n, ] <- logw[n, ] + v - log(exp(va) + exp(vb) + 1)
  }
  w <- exp(logw - apply(logw, 1, max))
  w <- w / rowSums(w)
  m1 <- rowSums(w * eta)
  sd1 <- sqrt(rowSums(w * eta^2) - m1^2)
  expect_equal(lv$mean_att, m1, tolerance = 1e-8)
  expect_equal(lv$sd_att, sd1, tolerance = 1e-6)
  expect_equal(lv$id, first$ID)
})

test_that("tidy and glance return the documented columns", {
  td <- tidy(fit_meth)
  expect_named(td, c("term", "estimate", "std.error", "statistic", "p.value", "block", "free"))
  expect_identical(td$term, names(coef(fit_meth)))
  expect_equal(td$std.error, unname(sqrt(diag(vcov(fit_meth)))))
  tdc <- tidy(fit_meth, conf.int = TRUE, conf.level = 0.9)
  expect_true(all(c("conf.low", "conf.high") %in% names(tdc)))
  expect_equal(tdc$conf.low, unname(confint(fit_meth, level = 0.9)[, 1]))
  gl <- glance(fit_meth)
  expect_equal(nrow(gl), 1L)
  expect_named(gl, c("logLik", "AIC", "BIC", "nobs", "n_obs", "n_params", "loglik_null", "rho2",
                     "converged", "iterations", "backend", "n_draws", "time"))
  expect_equal(gl$AIC, AIC(fit_meth))
  expect_equal(gl$BIC, BIC(fit_meth))
  expect_identical(gl$n_obs, 450L)
  expect_true(gl$converged)
})

test_that("update re-estimates with changed arguments", {
  call <- update(fit_meth, control = iclv_control(method = "newton"), evaluate = FALSE)
  expect_identical(call$control, quote(iclv_control(method = "newton")))
  f2 <- update(fit_meth, control = iclv_control(method = "newton", tol = 1e-10))
  expect_identical(f2$convergence$method, "newton")
  expect_lt(abs(f2$loglik - fit_meth$loglik), 1e-5)
  f3 <- update(fit_meth, fixed = c(l_att = 0))
  expect_identical(f3$n_params, 12L)
  expect_lt(f3$loglik, fit_meth$loglik)
})
