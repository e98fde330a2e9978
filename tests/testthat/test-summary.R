# summary(): Apollo's fit statistics (LL(start), LL(0), LL(C), rho-squared
# and adjusted rho-squared), the per-component table, the SE columns and the
# scaled convergence figures, against hand computations.

sm_model <- one_lv_mnl_model(fixed = c(asc_b = -0.3)) # (helper-models.R)
sm_data <- iclv_simulate(sm_model, one_lv_mnl_truth, n = 60, n_tasks = 2, seed = 11)
sm_fit <- iclv(sm_model, sm_data, draws = iclv_draws("halton", 30, seed = 3), backend = "cpu",
               control = iclv_control(tol = 1e-10))

test_that("Apollo's rho-squared formulas reproduce a published apollo_modelOutput", {
  # Apollo's MNL example output: LL(0) -6607.09, LL(C) -5430.89, LL(final)
  # -4670.99, 7 parameters, 4 alternatives; printed rho2 0.293, adj 0.292,
  # rho2(C) 0.1399, adj rho2(C) 0.1392
  r <- iclv:::.rho2_apollo(-4670.99, -6607.09, -5430.89, k = 7, n_const = 3)
  expect_equal(round(r$rho2_0, 3), 0.293)
  expect_equal(round(r$adj_rho2_0, 3), 0.292)
  expect_equal(round(r$rho2_c, 4), 0.1399)
  expect_equal(round(r$adj_rho2_c, 4), 0.1392)
})

test_that("LL(0), LL(C) and the rho-squareds equal their hand computations", {
  s <- summary(sm_fit)$stats
  n <- nrow(sm_data)
  ids <- !duplicated(sm_data$ID) # indicators are individual-level
  # equal shares: three 3-category indicators and a 3-alternative MNL
  ll0_q <- -sum(ids) * log(3)
  ll0_ch <- -n * log(3)
  shares <- function(v) { tb <- table(v); sum(tb * log(tb / sum(tb))) }
  llc_q <- c(shares(sm_data$q1[ids]), shares(sm_data$q2[ids]), shares(sm_data$q3[ids]))
  llc_ch <- shares(sm_data$ch)
  ct <- s$components
  expect_identical(ct$component, c("q1", "q2", "q3", "choice"))
  expect_equal(ct[["LL(0)"]], c(rep(ll0_q, 3), ll0_ch))
  expect_equal(ct[["LL(C)"]], c(llc_q, llc_ch))
  expect_equal(ct[["LL(final)"]], unname(sm_fit$loglik_components[ct$component]))
  ll0 <- 3 * ll0_q + ll0_ch
  llc <- sum(llc_q) + llc_ch
  ll <- sm_fit$loglik
  k <- 13 # 14 parameters, asc_b fixed
  expect_equal(s$ll0, ll0)
  expect_equal(s$llc, llc)
  expect_equal(s$rho2_0, 1 - ll / ll0)
  expect_equal(s$adj_rho2_0, 1 - (ll - k) / ll0)
  # constants of the shares model: 2 thresholds per indicator, 2 ASCs
  expect_equal(s$adj_rho2_c, 1 - (ll - (k - 8)) / llc)
  expect_equal(s$rho2_choice, 1 - sm_fit$loglik_components[["choice"]] / ll0_ch)
  # LL(start) is the log-likelihood at the starting values
  st <- sm_fit$compiled$partable
  l0 <- iclv_loglik(sm_model, sm_data, setNames(st$start, st$name),
                    draws = iclv_draws("halton", 30, seed = 3), gradient = FALSE)$loglik
  expect_equal(s$ll_start, l0)
  expect_equal(s$rho2_start, 1 - ll / l0)
})

test_that("a normal indicator has no LL(0): the whole model's is NA and said so", {
  m <- iclv_model("att =~ q1 + q2 + x1", structural = "att ~ age",
    indicators = list(q1 = "ordered_probit", q2 = "ordered_probit", x1 = "normal"),
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b", c = "0")),
    id = "ID", categories = 3)
  p <- c(one_lv_mnl_truth[c("zeta_q1", "tau_q1_1", "tau_q1_2", "zeta_q2", "tau_q2_1", "tau_q2_2",
                            "gamma_att_age", "asc_a", "b_price", "l_att", "asc_b")],
         zeta_x1 = 0.5, alpha_x1 = 1, sigma_x1 = 0.7)
  d <- iclv_simulate(m, p, n = 50, n_tasks = 2, seed = 4)
  fit <- iclv(m, d, draws = iclv_draws("halton", 20, seed = 1), backend = "cpu")
  s <- summary(fit)
  expect_true(is.na(s$stats$ll0))
  expect_true(is.na(s$stats$components[["LL(0)"]][3]))
  expect_false(is.na(s$stats$rho2_choice))
  out <- capture.output(print(s))
  expect_true(any(grepl("has no equal-shares model", out)))
})

test_that("summary shows classical and robust SEs; se = chooses the ones behind z and p", {
  s <- summary(sm_fit, se = "hessian")
  tab <- do.call(rbind, s$coefficients)
  free <- sm_fit$partable$free
  expect_equal(tab[free, "Std. Error"], sqrt(diag(sm_fit$vcov$hessian)), ignore_attr = TRUE)
  expect_equal(tab[free, "Robust SE"], sqrt(diag(sm_fit$vcov$robust)), ignore_attr = TRUE)
  expect_equal(tab[, "z value"], tab[, "Estimate"] / tab[, "Std. Error"])
  s2 <- summary(sm_fit, se = "robust")
  tab2 <- do.call(rbind, s2$coefficients)
  expect_equal(tab2[, "z value"], tab2[, "Estimate"] / tab2[, "Robust SE"])
  s3 <- summary(sm_fit, se = "bhhh")
  tab3 <- do.call(rbind, s3$coefficients)
  expect_equal(tab3[free, "BHHH SE"], sqrt(diag(sm_fit$vcov$bhhh)), ignore_attr = TRUE)
  expect_error(summary(sm_fit, se = "opg"), class = "iclv_error_control")
})

test_that("convergence is stated in scaled terms, with the scaled-Hessian condition number", {
  s <- summary(sm_fit)
  g <- sm_fit$gradient
  H <- sm_fit$hessian
  expect_equal(s$scaled_gradient, sum(g * solve(-H, g)))
  A <- -H / sqrt(outer(diag(-H), diag(-H)))
  ev <- eigen(A, symmetric = TRUE, only.values = TRUE)$values
  expect_equal(s$condition, max(ev) / min(ev))
  out <- capture.output(print(sm_fit))
  expect_true(any(grepl("scaled gradient g'(-H)^-1 g", out, fixed = TRUE)))
  expect_false(any(grepl("^Coefficients:", out)))
})

scrub_summary <- function(x) {
  x <- sub("^Time: .*$", "Time: <scrubbed>", x)
  sub("^(Convergence: (NOT )?converged).*$", "\\1 <details scrubbed>", x)
}

test_that("summary of a small fixed fit (snapshot)", {
  expect_snapshot(print(summary(sm_fit), digits = 3), transform = scrub_summary)
})
