# Ranked (exploded logit) and best-worst choice parts (R/rank.R, the row
# multiplier of src/iclv_core.h): the engine against a pure-R likelihood
# read from the data (helper-reference.R: ref_rank_loglik, which never sees
# the stage rows), derivatives against finite differences, the identities
# with MNL, predictions, simulation, per-stage log-likelihoods, bad input
# and recovery.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

rk_utilities <- list(a = "asc_a + b_price * price_a + l_att * att", b = "asc_b + b_price * price_b",
                     c = "0", d = "asc_d + b_price * price_d")
rk_model <- function(type = "ranked", choice = c("r1", "r2", "r3", "r4"), worst_scale = NULL,
                     utilities = rk_utilities) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
             choice = iclv_choice(type, choice = choice, utilities = utilities,
                                  available = list(d = "av_d"), worst_scale = worst_scale),
             id = "ID", categories = 3)
}

# A small data set: rankings of the available alternatives (alternative d
# unavailable in some rows), some partial (NA from a rank on), and a best /
# worst pair per row (worst NA in some rows).
rk_data <- function(n = 12L, tasks = 2L, seed = 1L) {
  set.seed(seed)
  nr <- n * tasks
  d <- data.frame(ID = rep(seq_len(n), each = tasks), age = rep(stats::rnorm(n), each = tasks))
  for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tasks)
  for (a in c("price_a", "price_b", "price_d")) d[[a]] <- stats::rnorm(nr)
  d$av_d <- rep_len(c(1L, 1L, 0L), nr)
  alts <- c("a", "b", "c", "d")
  rk <- t(vapply(seq_len(nr), function(i) {
    o <- sample(alts[c(TRUE, TRUE, TRUE, d$av_d[i] == 1L)])
    c(o, rep(NA, 4L - length(o)))
  }, character(4)))
  cut <- seq(2L, nr, by = 5L)            # partial rankings: only the first two ranks
  rk[cut, 3:4] <- NA
  rk[seq(4L, nr, by = 7L), 2:4] <- NA    # only the best
  for (k in 1:4) d[[paste0("r", k)]] <- rk[, k]
  d$best <- rk[, 1]
  d$worst <- vapply(seq_len(nr), function(i) { v <- rk[i, !is.na(rk[i, ])]; v[length(v)] }, "")
  d$worst[d$worst == d$best | seq_len(nr) %% 6L == 0L] <- NA
  d
}

rk_theta <- function(comp, extra = NULL) {
  th <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
          tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
          asc_a = 0.3, b_price = -0.9, l_att = 0.6, asc_b = -0.2, asc_d = 0.25, extra)
  th[comp$partable$name]
}

rk_draws <- function(n, R = 7L, seed = 11L) {
  set.seed(seed)
  array(stats::rnorm(n * R), c(n, R, 1L))
}

# The rank columns as 1-based alternatives, and the availability, for
# ref_rank_loglik().
rk_ranks <- function(d, cols) {
  sapply(cols, function(k) match(d[[k]], c("a", "b", "c", "d")))
}
rk_avail <- function(d) cbind(TRUE, TRUE, TRUE, d$av_d == 1L)

test_that("ranked and best-worst log-likelihoods equal the pure-R likelihood read from the data (1e-10)", {
  d <- rk_data()
  U <- rk_draws(12L)
  mnl <- iclv:::.iclv_compile(rk_model("mnl", "r1"), d)
  cases <- list(
    ranked = list(model = rk_model(), cols = c("r1", "r2", "r3", "r4"), type = "ranked", mu = NULL),
    bestworst = list(model = rk_model("bestworst", c("best", "worst")), cols = c("best", "worst"),
                     type = "bestworst", mu = NULL),
    bestworst_scale = list(model = rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"),
                           cols = c("best", "worst"), type = "bestworst", mu = 0.55))
  for (nm in names(cases)) {
    cs <- cases[[nm]]
    comp <- iclv:::.iclv_compile(cs$model, d)
    th <- rk_theta(comp, c(mu_w = cs$mu))
    e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
    out <- iclv:::.engine_eval(e, th, gradient = FALSE)
    ref <- ref_rank_loglik(mnl$c, rk_theta(mnl), U, rk_ranks(d, cs$cols), rk_avail(d), cs$type,
                           cs$mu %||% 1)
    expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10, label = nm)
    expect_lt(max(abs(out$loglik_i - ref$loglik_i)), 1e-10, label = nm)
    # the stage rows through the compiled-list reference too (the row multiplier)
    expect_lt(abs(ref_loglik(comp$c, th, U)$loglik - ref$loglik), 1e-10, label = nm)
  }
})

test_that("ranked and best-worst gradients and Hessians (the scale included) match finite differences", {
  d <- rk_data(n = 8L, seed = 2L)
  U <- rk_draws(8L, R = 5L)
  for (m in list(rk_model(), rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"))) {
    comp <- iclv:::.iclv_compile(m, d)
    th <- rk_theta(comp, c(mu_w = 0.7))
    # both CPU paths (helper-compiled.R)
    for (refpath in c("0", "1")) out <- expect_engine_fd(comp$c, user_draws(U), th, refpath, paste0(" ", m$choice$type))
    if ("mu_w" %in% names(th)) expect_gt(abs(out$gradient[match("mu_w", names(th))]), 1e-3) # the scale is exercised
  }
})

test_that("a ranking with only its first rank, and best-worst without worst, equal MNL on the best exactly", {
  d <- rk_data(seed = 3L)
  U <- rk_draws(12L)
  mnl <- iclv:::.iclv_compile(rk_model("mnl", "r1"), d)
  ev <- function(comp, th) {
    iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L), th,
                        gradient = TRUE, hessian = TRUE)
  }
  ref <- ev(mnl, rk_theta(mnl))
  d1 <- d
  d1[c("r2", "r3", "r4")] <- NA
  d1$worst <- NA
  rk1 <- iclv:::.iclv_compile(rk_model(), d1)
  out <- ev(rk1, rk_theta(rk1))
  expect_identical(rk1$c$n_rows, nrow(d))
  expect_equal(out$loglik, ref$loglik, tolerance = 1e-14)
  expect_equal(out$gradient, ref$gradient, tolerance = 1e-13)
  expect_equal(out$hessian, ref$hessian, tolerance = 1e-13)
  bw <- iclv:::.iclv_compile(rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"), d1)
  out <- ev(bw, rk_theta(bw, c(mu_w = 0.8)))
  expect_equal(out$loglik, ref$loglik, tolerance = 1e-14)
  k <- match(mnl$partable$name, bw$partable$name)
  expect_equal(out$gradient[k], ref$gradient, tolerance = 1e-13)
  expect_identical(out$gradient[match("mu_w", bw$partable$name)], 0)
  # and the full ranking differs (the later ranks count)
  full <- iclv:::.iclv_compile(rk_model(), d)
  expect_lt(ev(full, rk_theta(full))$loglik, ref$loglik - 1)
})

test_that("stage rows: earlier ranks unavailable, the last rank of a full ranking dropped, worst rows negated", {
  d <- rk_data()
  comp <- iclv:::.iclv_compile(rk_model(), d)
  n_av <- 3L + (d$av_d == 1L)
  n_ranked <- rowSums(!is.na(d[c("r1", "r2", "r3", "r4")]))
  expect_identical(as.integer(tabulate(comp$rows, nrow(d))), as.integer(pmin(n_ranked, n_av - 1L)))
  A <- matrix(comp$c$avail, ncol = 4L, byrow = TRUE)
  i <- which(comp$rows == 1L)
  expect_identical(rowSums(A[i, , drop = FALSE]), as.double(n_av[1] - seq_along(i) + 1L))
  bw <- iclv:::.iclv_compile(rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"), d)
  expect_identical(bw$c$mult_sign, ifelse(bw$stage == 2L, -1, 1))
  expect_identical(bw$c$mult_par, ifelse(bw$stage == 2L, match("mu_w", bw$partable$name) - 1L, -1L))
  expect_identical(bw$partable$role[bw$partable$name == "mu_w"], "scale")
  expect_true(match("mu_w", bw$partable$name) %in% bw$positive)
  # utilities without data columns: a stage subset still compiles (no X)
  m0 <- rk_model(utilities = list(a = "asc_a + l_att * att", b = "asc_b", c = "0", d = "asc_d"))
  c0 <- iclv:::.iclv_compile(m0, d)
  sub <- iclv:::.compiled_choice_rows(c0$c, which(c0$stage == 2L))
  expect_identical(sub$n_rows, sum(c0$stage == 2L))
  U <- rk_draws(12L)
  ll2 <- iclv:::.rank_stage_ll(c0, rk_theta(c0), user_draws(U), 1L)
  expect_named(ll2, c("choice:r1", "choice:r2", "choice:r3"))
  expect_true(all(is.finite(ll2) & ll2 < 0))
})

test_that("bad rankings and specifications are classed errors naming the row or argument", {
  d <- rk_data()
  m <- rk_model()
  bad <- d; bad$r3[1] <- NA; bad$r4[1] <- "a"
  if (identical(bad$r2[1], NA_character_)) bad$r2[1] <- "b"
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "row 1 .*ends the ranking")
  bad <- d; bad$r2[1] <- bad$r1[1]
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "row 1 .*two ranks")
  bad <- d; i <- which(d$av_d == 0L)[1]; bad$r2[i] <- "d"
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "not available")
  bad <- d; bad$r1[2] <- NA
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "missing \\(NA\\) in row 2")
  bad <- d; bad$r3[3] <- "zz" # row 2's r3 is NA: the row is still named right
  expect_true(is.na(d$r3[2]))
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "zz.* row 3")
  bad <- d; bad$r4 <- NULL
  expect_error(iclv:::.iclv_compile(m, bad), class = "iclv_error_data", regexp = "r4")
  expect_error(iclv_choice("mnl", choice = c("x", "y"), utilities = rk_utilities), class = "iclv_error_spec")
  expect_error(iclv_choice("bestworst", choice = "x", utilities = rk_utilities), class = "iclv_error_spec",
               regexp = "best and the worst")
  expect_error(iclv_choice("ranked", choice = c("x", "x"), utilities = rk_utilities), class = "iclv_error_spec",
               regexp = "twice")
  expect_error(iclv_choice("ranked", choice = c("x", "y"), utilities = rk_utilities, worst_scale = "m"),
               class = "iclv_error_spec", regexp = "worst_scale")
  expect_error(iclv_choice("bestworst", choice = c("x", "y"), utilities = rk_utilities, worst_scale = "b_price"),
               class = "iclv_error_spec", regexp = "b_price")
  mb <- rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w")
  comp <- iclv:::.iclv_compile(mb, d)
  expect_error(iclv_loglik(mb, d, rk_theta(comp, c(mu_w = -0.5)), iclv_draws("halton", 5)),
               class = "iclv_error_input", regexp = "mu_w")
})

test_that("predict: first-stage probabilities per data row, every stage with stages = TRUE, against the reference", {
  skip_on_cran()
  d <- iclv_simulate(rk_model(), c(rk_theta(iclv:::.iclv_compile(rk_model(), rk_data()))), n = 40,
                     n_tasks = 2, seed = 5)
  fit <- suppressWarnings(iclv(rk_model(), d, draws = iclv_draws("halton", 20, seed = 1), backend = "cpu",
                               control = iclv_control(maxit = 3, hessian = FALSE, vcov = "bhhh")))
  comp <- fit$compiled
  p1 <- predict(fit)
  expect_identical(dim(p1), c(nrow(d), 4L))
  expect_identical(rownames(p1), as.character(seq_len(nrow(d))))
  ps <- predict(fit, stages = TRUE)
  expect_identical(nrow(ps), comp$c$n_rows)
  expect_identical(rownames(ps)[1:2], c("1:r1", "1:r2"))
  E <- iclv:::.draws_generate(iclv:::.draws_spec(fit$draws_design, comp$n_ind, 1L))
  ref <- ref_predict(comp$c, fit$coefficients[comp$partable$name], E)
  expect_lt(max(abs(unname(ps) - ref$prob)), 1e-12)
  expect_lt(max(abs(unname(p1) - ref$prob[comp$stage == 1L, ])), 1e-12)
  # a stage's probabilities are 0 on the alternatives ranked before it
  expect_true(all(ps[cbind(which(comp$stage == 2L), match(d$r1, comp$alternatives))] == 0))
  # fitted: the probability of each stage's choice
  expect_equal(unname(fitted(fit)), unname(ps[cbind(seq_len(nrow(ps)), comp$c$y + 1L)]))
  # a scenario without the rank columns: first-stage probabilities
  sc <- d[1:5, c("ID", "age", "price_a", "price_b", "price_d", "av_d")]
  expect_equal(unname(predict(fit, newdata = sc)), unname(p1[1:5, ]), tolerance = 1e-12)
  pc <- predict(fit, newdata = d[1:6, ], conditional = TRUE, stages = TRUE)
  expect_identical(nrow(pc), sum(comp$rows <= 6L))
  expect_equal(unname(rowSums(pc)), rep(1, nrow(pc)), tolerance = 1e-12)
})

test_that("per-stage choice log-likelihoods: without LVs in the utilities they add up to the choice LL, each the exploded-logit sum", {
  skip_on_cran()
  ut <- rk_utilities
  ut$a <- "asc_a + b_price * price_a"
  m <- suppressWarnings(rk_model(utilities = ut)) # att enters no utility
  th <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
          tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
          asc_a = 0.3, b_price = -0.9, asc_b = -0.2, asc_d = 0.25)
  d <- iclv_simulate(m, th, n = 60, n_tasks = 2, seed = 7)
  fit <- suppressWarnings(iclv(m, d, draws = iclv_draws("halton", 10, seed = 1), backend = "cpu",
                               control = iclv_control(maxit = 2, hessian = FALSE, vcov = "bhhh")))
  lc <- fit$loglik_components
  expect_named(lc, c("q1", "q2", "q3", "choice", "choice:r1", "choice:r2", "choice:r3"))
  expect_equal(sum(lc[c("choice:r1", "choice:r2", "choice:r3")]), lc[["choice"]], tolerance = 1e-12)
  cf <- fit$coefficients
  V <- cbind(cf[["asc_a"]] + cf[["b_price"]] * d$price_a, cf[["asc_b"]] + cf[["b_price"]] * d$price_b, 0,
             cf[["asc_d"]] + cf[["b_price"]] * d$price_d)
  Rk <- rk_ranks(d, c("r1", "r2", "r3", "r4"))
  A <- rk_avail(d)
  by_stage <- vapply(1:3, function(k) sum(vapply(seq_len(nrow(d)), function(i) {
    if (is.na(Rk[i, k])) return(0)
    ref_rank_task(V[i, ], A[i, ], Rk[i, seq_len(k)]) -
      (if (k > 1L) ref_rank_task(V[i, ], A[i, ], Rk[i, seq_len(k - 1L)]) else 0)
  }, 0)), 0)
  expect_equal(unname(lc[c("choice:r1", "choice:r2", "choice:r3")]), by_stage, tolerance = 1e-10)
  tab <- suppressWarnings(summary(fit))$stats$components
  expect_true(all(c("choice:r1", "choice:r2", "choice:r3") %in% tab$component))
  expect_equal(tab[["LL(0)"]][tab$component == "choice:r1"], -sum(log(3 + (d$av_d == 1L))), tolerance = 1e-12)
})

test_that("simulated rankings are orderings of the available alternatives; best-worst pairs differ", {
  m <- rk_model()
  th <- rk_theta(iclv:::.iclv_compile(m, rk_data()))
  d <- iclv_simulate(m, th, n = 50, n_tasks = 2, seed = 9, availability = 0.5)
  R <- as.matrix(d[c("r1", "r2", "r3", "r4")])
  n_av <- 3L + d$av_d
  expect_identical(unname(rowSums(!is.na(R))), as.double(n_av))
  expect_true(all(apply(R, 1, function(r) !anyDuplicated(r[!is.na(r)]))))
  expect_false(any(R[d$av_d == 0L, ] == "d", na.rm = TRUE))
  mb <- rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w")
  db <- iclv_simulate(mb, c(th, mu_w = 0.5), n = 50, n_tasks = 2, seed = 9)
  expect_true(all(db$best != db$worst))
  expect_error(iclv_simulate(mb, c(th, mu_w = 0), n = 5, seed = 1), class = "iclv_error_input", regexp = "mu_w")
})

test_that("recovery: ranked and best-worst (with its scale) estimates within 3 SE of the truth", {
  skip_on_cran()
  truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
             tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5,
             asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3, asc_d = 0.4, mu_w = 0.6)
  for (m in list(rk_model(), rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"))) {
    tr <- truth[m$partable$name %||% iclv:::.iclv_partable(m, m$categories)$name]
    tr <- tr[!is.na(tr)]
    d <- iclv_simulate(m, tr, n = 300, n_tasks = 3, seed = 4)
    fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
    expect_identical(fit$convergence$code, 0L)
    z <- (coef(fit) - tr[names(coef(fit))]) / sqrt(diag(vcov(fit)))
    expect_lt(max(abs(z)), 3, label = paste(m$choice$type, "max |z|"))
  }
})

test_that("best-worst rows keep their multipliers in cluster shards and per-draw replicas", {
  d <- rk_data(seed = 6L)
  U <- rk_draws(12L)
  comp <- iclv:::.iclv_compile(rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"), d)
  th <- rk_theta(comp, c(mu_w = 0.65))
  spec <- user_draws(U)
  whole <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, n_threads = 1L), th, gradient = TRUE)
  parts <- lapply(list(c(1L, 5L), c(6L, 12L)), function(s) {
    cc <- iclv:::.compiled_slice(comp$c, s[1], s[2])
    expect_identical(cc$n_mult, cc$n_rows)
    iclv:::.engine_eval(iclv:::.engine_new(cc, iclv:::.draws_spec_slice(spec, s[1], s[2]), n_threads = 1L),
                        th, gradient = TRUE)
  })
  expect_equal(parts[[1]]$loglik + parts[[2]]$loglik, whole$loglik, tolerance = 1e-13)
  expect_equal(parts[[1]]$gradient + parts[[2]]$gradient, whole$gradient, tolerance = 1e-12)
  # replicas (conditional predictions): each replica's rows keep the worst stage's -mu
  rep2 <- iclv:::.replicate_compiled(comp$c, 2L, 1:3)
  expect_identical(rep2$n_mult, rep2$n_rows)
  ind <- rep(seq_len(comp$n_ind), diff(comp$c$row_ptr))
  expect_identical(rep2$mult_par, comp$c$mult_par[unlist(lapply(1:3, function(n) rep(which(ind == n), 2L)))])
  expect_identical(rep2$mult_sign, comp$c$mult_sign[unlist(lapply(1:3, function(n) rep(which(ind == n), 2L)))])
})

test_that("CUDA equals the CPU engine for ranked and best-worst (LL, scores, gradient, Hessian; 1e-12)", {
  skip_if_no_gpu()
  d <- rk_data(n = 30L, tasks = 3L, seed = 8L)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 40, seed = 1), 30L, 1L)
  for (m in list(rk_model(), rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"))) {
    comp <- iclv:::.iclv_compile(m, d)
    th <- rk_theta(comp, c(mu_w = 0.7))
    expect_cuda_equals_cpu(comp, spec, th, m$choice$type) # (helper-gpu.R)
  }
})

test_that("the CUDA memory plan counts the best-worst row multipliers", {
  skip_if_no_gpu()
  # every buffer, the model arrays with the multipliers included (helper-gpu.R)
  expect_cuda_plan_is_account(rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"),
                              rk_data(n = 30L, tasks = 3L, seed = 8L), iclv_draws("halton", 40, seed = 1),
                              function(comp) rk_theta(comp, c(mu_w = 0.7)))
})

test_that("the engines refuse malformed row multipliers and a scale that is not positive", {
  d <- rk_data()
  comp <- iclv:::.iclv_compile(rk_model("bestworst", c("best", "worst"), worst_scale = "mu_w"), d)
  spec <- user_draws(rk_draws(12L))
  bad <- comp$c; bad$mult_sign[2] <- 2
  expect_error(iclv:::.engine_new(bad, spec, n_threads = 1L), class = "iclv_error_input", regexp = "mult_sign")
  bad <- comp$c; bad$n_mult <- bad$n_mult - 1L
  expect_error(iclv:::.engine_new(bad, spec, n_threads = 1L), class = "iclv_error_input", regexp = "n_mult")
  bad <- comp$c; bad$mult_par[2] <- comp$c$n_par
  expect_error(iclv:::.engine_new(bad, spec, n_threads = 1L), class = "iclv_error_input", regexp = "mult_par")
  e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
  expect_error(iclv:::.engine_eval(e, rk_theta(comp, c(mu_w = 0)), gradient = FALSE),
               class = "iclv_error_input", regexp = "scale of choice row")
})

test_that("ranked and best-worst with nonlinear utilities (tapes) equal the pure-R likelihood, with exact derivatives", {
  d <- rk_data()
  U <- rk_draws(12L)
  u <- list(a = "mu * (asc_a + b_price * price_a) + l_att * att",
            b = "mu * (asc_b - exp(m_p + s_p * att) * price_b)", c = "0", d = "asc_d + b_price * price_d")
  extra <- c(mu = 1.3, m_p = -0.4, s_p = 0.5, mu_w = 0.6)
  mnl <- iclv:::.iclv_compile(rk_model("mnl", "r1", utilities = u), d)
  cm <- ref_utilities_by_r(mnl$c, u, d, "att") # the utilities as R evaluates the strings
  for (cs in list(list(type = "ranked", cols = c("r1", "r2", "r3", "r4"), ws = NULL),
                  list(type = "bestworst", cols = c("best", "worst"), ws = "mu_w"))) {
    comp <- iclv:::.iclv_compile(rk_model(cs$type, cs$cols, worst_scale = cs$ws, utilities = u), d)
    expect_gt(comp$c$n_tape, 0L)
    th <- rk_theta(comp, extra)
    out <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L), th, gradient = FALSE)
    ref <- ref_rank_loglik(cm, rk_theta(mnl, extra), U, rk_ranks(d, cs$cols), rk_avail(d), cs$type,
                           if (is.null(cs$ws)) 1 else extra[["mu_w"]])
    expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10, label = cs$type)
    spec <- iclv:::.draws_spec(iclv_draws("mlhs", 5, seed = 3), comp$n_ind, length(comp$lvs))
    for (rp in c("0", "1")) expect_engine_fd(comp$c, spec, th, rp, paste0(" ", cs$type, " with tapes"))
  }
})
