# Draw stability, residuals and plot().

st_model <- one_lv_mnl_model(fixed = c(asc_b = -0.3)) # (helper-models.R)
st_data <- iclv_simulate(st_model, one_lv_mnl_truth, n = 80, n_tasks = 2, seed = 61)
st_fit <- iclv(st_model, st_data, draws = iclv_draws("halton", 20, seed = 4), backend = "cpu",
               control = iclv_control(tol = 1e-10))

test_that("draw stability re-evaluates and refits with more draws, in SE units", {
  s <- iclv_draw_stability(st_fit, factors = 2, data = st_data)
  expect_s3_class(s, "iclv_draw_stability")
  ll40 <- iclv_loglik(st_model, st_data, coef(st_fit), draws = iclv_draws("halton", 40, seed = 4),
                      gradient = FALSE)$loglik
  expect_equal(s$table$loglik_at_estimates, ll40)
  expect_equal(s$table$change_loglik, ll40 - st_fit$loglik)
  f40 <- iclv(st_model, st_data, draws = iclv_draws("halton", 40, seed = 4), backend = "cpu",
              control = iclv_control(tol = 1e-10))
  free <- st_fit$partable$free
  se <- sqrt(diag(st_fit$vcov$robust))
  expect_equal(s$changes[, 1], (coef(f40)[free] - coef(st_fit)[free]) / se, tolerance = 1e-4)
  expect_equal(s$table$loglik_refit, f40$loglik, tolerance = 1e-8)
  expect_true(s$verdict %in% c("stable", "borderline", "unstable: use more draws"))
  expect_output(print(s), "Verdict")
  expect_error(iclv_draw_stability(st_fit, factors = 1, data = st_data), class = "iclv_error_control")
  expect_error(iclv_draw_stability(st_fit, factors = 2), class = "iclv_error_control")
  pdf(NULL)
  on.exit(dev.off())
  expect_invisible(plot(st_fit, which = c("trace", "lv", "stability"), stability = s))
  expect_error(plot(st_fit, which = "stability"), class = "iclv_error_control")
  expect_error(plot(st_fit, which = "nope"), class = "iclv_error_control")
})

test_that("residuals are y - P of the choice part", {
  r <- residuals(st_fit)
  P <- predict(st_fit)
  y <- match(st_data$ch, c("a", "b", "c"))
  if (anyNA(y)) y <- st_data$ch
  expect_equal(r[cbind(seq_len(nrow(r)), y)], 1 - P[cbind(seq_len(nrow(P)), y)])
  expect_equal(unname(rowSums(r)), rep(0, nrow(r)), tolerance = 1e-12)
  expect_equal(residuals(st_fit, newdata = st_data), r)
  expect_error(residuals(st_fit, newdata = st_data[, names(st_data) != "ch"]), class = "iclv_error_data")
})

# What a base-graphics plot drew: per panel (plotXY call), the y values and
# the y-axis label of the title call that follows it.
drawn_panels <- function(expr) {
  pdf(NULL)
  on.exit(dev.off())
  dev.control("enable")
  force(expr)
  dl <- recordPlot()[[1]]
  name <- vapply(dl, function(e) { f <- e[[2]][[1]]; if (is.list(f) && !is.null(f$name)) f$name else "" }, "")
  xy <- which(name == "C_plotXY")
  ti <- which(name == "C_title")
  lapply(xy, function(k) {
    t <- ti[ti > k][1]
    list(y = dl[[k]][[2]][[2]]$y, ylab = if (is.na(t)) NA_character_ else dl[[t]][[2]][[5]])
  })
}

test_that("plot(which = \"trace\") draws the LL and the scaled gradient by iteration (issue 19)", {
  h <- st_fit$history
  expect_true("scaled_gradient" %in% names(h))
  expect_identical(h$scaled_gradient[nrow(h)], st_fit$convergence$scaled_gradient)
  p <- drawn_panels(plot(st_fit, which = "trace"))
  expect_length(p, 2L)
  expect_equal(p[[1]]$y, h$loglik)
  expect_identical(p[[1]]$ylab, "log-likelihood")
  expect_match(p[[2]]$ylab, "scaled gradient")
  ok <- is.finite(h$scaled_gradient) & h$scaled_gradient > 0
  expect_equal(p[[2]]$y, h$scaled_gradient[ok])
  expect_false(isTRUE(all.equal(p[[2]]$y, h$gradient_norm[ok]))) # not max|gradient|
})
