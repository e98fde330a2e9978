# Scenario prediction (newdata with only the choice part's columns), the
# conditional (posterior) probabilities, posterior LV moments and
# unconditional LV draws, against quadrature and the pure-R reference
# (helper-reference.R).

sc_model <- one_lv_mnl_model() # (helper-models.R)
sc_data <- iclv_simulate(sc_model, one_lv_mnl_truth, n = 40, n_tasks = 2, seed = 31)
# every parameter fixed at the truth: no optimization, a long draw design
sc_fit <- iclv(sc_model, sc_data, draws = iclv_draws("halton", 2000, seed = 1), backend = "cpu",
               fixed = one_lv_mnl_truth)
scen <- data.frame(ID = c(1, 1, 2, 3), age = c(-1, -1, 0, 1.5),
                   price_a = c(1, 2, 0.5, 1), price_b = c(1.5, 1, 1, 0.2))

mnl_at <- function(p, row, eta) {
  V <- c(p[["asc_a"]] + p[["b_price"]] * row$price_a + p[["l_att"]] * eta,
         p[["asc_b"]] + p[["b_price"]] * row$price_b, 0)
  exp(V) / sum(exp(V))
}

test_that("scenario data without indicator or choice columns equals quadrature over the structural distribution", {
  P <- predict(sc_fit, newdata = scen)
  expect_identical(dim(P), c(4L, 3L))
  expect_identical(colnames(P), c("a", "b", "c"))
  p <- one_lv_mnl_truth
  for (t in seq_len(nrow(scen))) {
    mu <- p[["gamma_att_age"]] * scen$age[t]
    for (j in 1:3) {
      q <- integrate(function(e) vapply(e, function(ee) mnl_at(p, scen[t, ], mu + ee)[j], 0) * dnorm(e),
                     -12, 12, rel.tol = 1e-10)$value
      expect_lt(abs(P[t, j] - q), 1e-3) # simulation error of 2000 Halton draws
    }
  }
  # exactly the mean over the design's own draws (the same draws, by hand)
  E <- iclv_draws_generate(sc_fit$draws_design, n_ind = 3, n_lv = 1)
  for (t in seq_len(nrow(scen))) {
    n <- match(scen$ID[t], unique(scen$ID))
    eta <- p[["gamma_att_age"]] * scen$age[t] + E[n, , 1]
    hand <- rowMeans(vapply(eta, function(h) mnl_at(p, scen[t, ], h), numeric(3)))
    expect_equal(unname(P[t, ]), hand, tolerance = 1e-10)
  }
  # the same as predicting on full data with those attributes
  full <- sc_data[sc_data$ID %in% unique(sc_data$ID)[1:3], ]
  Pf <- predict(sc_fit, newdata = full)
  Ps <- predict(sc_fit, newdata = full[, c("ID", "age", "price_a", "price_b")])
  expect_equal(unname(Ps), unname(Pf), tolerance = 1e-12)
})

test_that("conditional probabilities and posterior LVs weight the draws by L_nr", {
  sc_fit2 <- iclv(sc_model, sc_data, draws = iclv_draws("halton", 25, seed = 1), backend = "cpu",
                  fixed = one_lv_mnl_truth)
  nd <- sc_data[sc_data$ID %in% unique(sc_data$ID)[1:4], ]
  Pc <- predict(sc_fit2, newdata = nd, conditional = TRUE)
  # the compiled scenario (with the pad individuals that carry every category)
  comp <- iclv:::.scenario_compile(sc_fit2, nd)$comp
  cm <- comp$c
  theta <- one_lv_mnl_truth[comp$partable$name]
  E <- iclv_draws_generate(sc_fit2$draws_design, n_ind = comp$n_ind, n_lv = 1)
  dl <- ref_draw_loglik(cm, theta, E)
  grp <- rep(seq_len(cm$n_ind), diff(cm$row_ptr))
  for (t in seq_len(nrow(nd))) {
    n <- grp[t]
    w <- exp(dl$l[n, ] - max(dl$l[n, ]))
    w <- w / sum(w)
    pr <- vapply(seq_len(25), function(r) ref_choice_probs(cm, theta, ref_eta(cm, theta, n, E[n, r, ]), t), numeric(3))
    expect_equal(unname(Pc[t, ]), drop(pr %*% w), tolerance = 1e-10)
  }
  # unconditional: the engine's integrated probabilities
  expect_equal(predict(sc_fit2, newdata = nd, conditional = FALSE),
               predict(sc_fit2, newdata = nd), tolerance = 1e-12)
  # posterior LVs through the per-draw path equal the engine's
  lv <- predict(sc_fit2, newdata = nd, type = "lv")
  lv2 <- iclv:::.predict_per_draw(sc_fit2, comp, theta, NULL, "lv")
  expect_equal(lv2[1:4, ], lv, tolerance = 1e-10)
  # without the choice column: the posterior given the indicators only
  nd2 <- nd[, setdiff(names(nd), "ch")]
  lvi <- predict(sc_fit2, newdata = nd2, type = "lv")
  li <- dl$l - dl$parts[, , 4]
  eta <- t(vapply(seq_len(comp$n_ind), function(n) vapply(1:25, function(r) ref_eta(cm, theta, n, E[n, r, ]), 0), numeric(25)))
  w <- exp(li - apply(li, 1, max))
  w <- w / rowSums(w)
  expect_equal(lvi$mean_att, rowSums(w * eta)[1:4], tolerance = 1e-10)
})

test_that("lv_draws are the structural distribution's draws given covariates", {
  D <- predict(sc_fit, newdata = scen, type = "lv_draws")
  expect_identical(dim(D), c(3L, 2000L, 1L))
  E <- iclv_draws_generate(sc_fit$draws_design, n_ind = 3, n_lv = 1)
  age <- c(-1, 0, 1.5)
  expect_equal(D[, , 1], one_lv_mnl_truth[["gamma_att_age"]] * age + E[, , 1], ignore_attr = TRUE)
  expect_equal(apply(D[, , 1], 1, sd), rep(1, 3), tolerance = 0.01, ignore_attr = TRUE)
})

test_that("scenario errors name what is missing", {
  expect_error(predict(sc_fit, newdata = scen[, -2]), class = "iclv_error_data") # no covariate
  expect_error(predict(sc_fit, newdata = scen[, -3]), class = "iclv_error_data") # no attribute
  expect_error(predict(sc_fit, newdata = scen[, -1]), class = "iclv_error_data") # no id
  expect_error(predict(sc_fit, newdata = scen, conditional = NA), class = "iclv_error_control")
  expect_error(predict(sc_fit, newdata = scen, type = "nope"), class = "iclv_error_control")
})

test_that("the per-draw quantities do not depend on the chunking", {
  nd <- sc_data[sc_data$ID %in% unique(sc_data$ID)[1:7], ]
  f <- iclv(sc_model, sc_data, draws = iclv_draws("halton", 10, seed = 1), backend = "cpu",
            fixed = one_lv_mnl_truth)
  sc <- iclv:::.scenario_compile(f, nd)
  a <- iclv:::.per_draw(f, sc$comp, sc$theta)
  b <- iclv:::.per_draw(f, sc$comp, sc$theta, chunk = 25L) # 2 individuals a chunk
  expect_equal(b, a, tolerance = 1e-14)
  # the per-draw probabilities average to the engine's integrated ones
  P <- predict(f, newdata = nd)
  expect_equal(unname(apply(a$prob[seq_len(nrow(nd)), , , drop = FALSE], c(1, 3), mean)), unname(P),
               tolerance = 1e-12)
})
