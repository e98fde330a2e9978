# Availability in every choice kernel (MNL and binary probit): the C
# likelihood, its derivatives and the predicted probabilities against the
# pure-R reference (helper-reference.R) and finite differences; a row where
# only the chosen alternative is available contributes log 1 = 0, exactly as
# if it were not in the data; simulation and prediction honour availability.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# Central differences of a scalar or vector function at th.
fd_jac <- function(f, th, h = 1e-4) {
  do.call(cbind, lapply(seq_along(th), function(p) {
    d <- replace(numeric(length(th)), p, h)
    (-f(th + 2 * d) + 8 * f(th + d) - 8 * f(th - d) + f(th - 2 * d)) / (12 * h)
  }))
}

# A tiny binary-probit model in which some rows have only the chosen
# alternative available (the other one is unavailable) and some have both.
probit_with_availability <- function(ind_type, seed) {
  tm <- tiny_model(ind_type, "probit", seed = seed)
  desc <- tm$desc
  nr <- nrow(desc$rows)
  av <- matrix(1L, nr, 2L)
  single <- seq(2L, nr, by = 2L)
  av[cbind(single, 2L - desc$rows$y[single])] <- 0L # the alternative not chosen
  desc$avail <- av
  tm$desc <- desc
  tm$compiled <- compile_by_hand(desc)
  tm$single <- single
  tm
}

kernels <- list(
  mnl = function(seed) tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_logit"), "mnl", seed = seed),
  probit = function(seed) probit_with_availability(c("ordered_logit", "binary_probit", "normal", "ordered_probit"), seed)
)

test_that("every choice kernel with availability equals the R reference (LL, per individual)", {
  for (k in names(kernels)) {
    for (s in 1:3) {
      tm <- kernels[[k]](300 + s)
      expect_gt(sum(tm$compiled$avail == 0L), 0)
      e <- iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L)
      th <- jitter_theta(tm)
      out <- iclv:::.engine_eval(e, th, gradient = FALSE)
      ref <- ref_loglik(tm$compiled, th, tm$draws$user)
      expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-12, label = paste(k, s))
      expect_lt(max(abs(out$loglik_i - ref$loglik_i) / abs(ref$loglik_i)), 1e-12, label = paste(k, s))
    }
  }
})

test_that("a probit row with only the chosen alternative available contributes exactly 0", {
  tm <- probit_with_availability(c("ordered_probit", "normal", "binary_probit", "ordered_logit"), 311)
  th <- jitter_theta(tm)
  full <- iclv:::.engine_eval(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th, gradient = TRUE)
  # the same data without the certain rows (every individual keeps a row)
  d2 <- tm$desc
  keep <- setdiff(seq_len(nrow(d2$rows)), tm$single)
  expect_setequal(unique(d2$rows$ind[keep]), unique(d2$rows$ind))
  d2$rows <- d2$rows[keep, , drop = FALSE]
  d2$X <- d2$X[keep, , drop = FALSE]
  d2$avail <- NULL
  cut <- iclv:::.engine_eval(iclv:::.engine_new(compile_by_hand(d2), tm$draws, n_threads = 1L), th,
                             gradient = TRUE)
  expect_equal(full$loglik_i, cut$loglik_i, tolerance = 1e-13)
  expect_equal(full$gradient, cut$gradient, tolerance = 1e-13)
  # and the certain rows do change the LL when the alternative is available
  d3 <- tm$desc
  d3$avail <- NULL
  all_av <- iclv:::.engine_eval(iclv:::.engine_new(compile_by_hand(d3), tm$draws, n_threads = 1L), th,
                                gradient = FALSE)
  expect_gt(abs(all_av$loglik - full$loglik), 0.1)
})

test_that("gradient and Hessian with availability match finite differences (MNL, probit)", {
  for (k in names(kernels)) {
    tm <- kernels[[k]](320)
    e <- iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L)
    th <- jitter_theta(tm, 0.4)
    out <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
    fdg <- fd_jac(function(x) iclv:::.engine_eval(e, x, gradient = FALSE)$loglik, th)[1, ]
    expect_lt(max(abs(out$gradient - fdg) / pmax(1, abs(fdg))), 1e-6, label = k)
    fds <- fd_jac(function(x) iclv:::.engine_eval(e, x, gradient = FALSE)$loglik_i, th)
    expect_lt(max(abs(out$scores - fds) / pmax(1, abs(fds))), 1e-6, label = k)
    fdh <- fd_jac(function(x) iclv:::.engine_eval(e, x)$gradient, th)
    fdh <- (fdh + t(fdh)) / 2
    expect_lt(max(abs(out$hessian - fdh) / pmax(1, abs(fdh))), 1e-5, label = k)
  }
})

test_that("predicted probabilities honour availability (reference; certain rows give 1 and 0)", {
  for (k in names(kernels)) {
    tm <- kernels[[k]](330)
    th <- jitter_theta(tm)
    p <- iclv:::.engine_predict(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th)
    ref <- ref_predict(tm$compiled, th, tm$draws$user)
    expect_equal(p$prob, ref$prob, tolerance = 1e-12, label = k)
    expect_equal(p$lv_mean, ref$lv_mean, tolerance = 1e-12, label = k)
    expect_equal(p$comp_ll, ref$comp_ll, tolerance = 1e-12, label = k)
    av <- matrix(tm$compiled$avail, ncol = tm$compiled$n_alt, byrow = TRUE)
    expect_true(all(p$prob[av == 0L] == 0), label = k)
    expect_equal(rowSums(p$prob), rep(1, nrow(p$prob)), tolerance = 1e-14)
  }
  tm <- kernels$probit(331)
  p <- iclv:::.engine_predict(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), tm$theta)
  y <- tm$desc$rows$y[tm$single]
  expect_identical(p$prob[cbind(tm$single, y + 1L)], rep(1, length(tm$single)))
})

# A probit model on data: `available` gives the LL of the data without the
# certain rows, and a chosen unavailable alternative is an error naming row and id.
probit_model <- function(available = NULL) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
             choice = iclv_choice("probit", choice = "buy", available = available,
                                  utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
             id = "ID", categories = 3)
}
probit_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
                  tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
                  gamma_att_age = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)

test_that("probit availability from the data: LL equals the data without the certain rows", {
  m <- probit_model(list(no = "av_no", yes = "av_yes"))
  d <- iclv_simulate(m, probit_truth, n = 40, n_tasks = 4, seed = 3)
  # "no" unavailable on later tasks where "yes" was chosen
  d$av_no[d$task > 1 & d$buy == "yes"] <- 0L
  single <- which(d$av_no == 0L)
  expect_gt(length(single), 10)
  expect_true(all(d$buy[single] == "yes"))
  expect_true(all(d$av_yes == 1L))
  expect_setequal(unique(d$ID[-single]), unique(d$ID))
  dr <- iclv_draws("halton", 30, seed = 2)
  ll_av <- iclv_loglik(m, d, probit_truth, draws = dr, gradient = FALSE)
  ll_cut <- iclv_loglik(probit_model(), d[-single, ], probit_truth, draws = dr, gradient = FALSE)
  ll_all <- iclv_loglik(probit_model(), d, probit_truth, draws = dr, gradient = FALSE)
  expect_equal(ll_av$loglik_i, ll_cut$loglik_i, tolerance = 1e-13)
  expect_gt(abs(ll_av$loglik - ll_all$loglik), 1)

  bad <- d
  bad$buy[single[1]] <- "no"
  expect_error(iclv_loglik(m, bad, probit_truth, draws = dr),
               sprintf("row %d \\(id %d\\).*'no' is not available.*'av_no'", single[1], d$ID[single[1]]),
               class = "iclv_error_data")
})

test_that("iclv_simulate honours availability for probit and MNL; predict gives 0 and 1", {
  m <- probit_model(list(no = "av_no"))
  d <- iclv_simulate(m, probit_truth, n = 60, n_tasks = 3, seed = 8, availability = 0.6)
  expect_true(all(d$av_no %in% 0:1))
  expect_true(any(d$av_no == 0L) && any(d$av_no == 1L))
  expect_true(all(d$buy[d$av_no == 0L] == "yes"))
  expect_true(any(d$buy[d$av_no == 1L] == "no"))
  fit <- suppressWarnings(iclv(m, d, draws = iclv_draws("halton", 20, seed = 1), backend = "cpu",
                               control = iclv_control(maxit = 3, hessian = FALSE, vcov = "bhhh")))
  pr <- predict(fit, type = "prob")
  expect_identical(unname(pr[d$av_no == 0L, "no"]), rep(0, sum(d$av_no == 0L)))
  expect_equal(unname(pr[d$av_no == 0L, "yes"]), rep(1, sum(d$av_no == 0L)), tolerance = 1e-14)
  expect_true(all(pr[d$av_no == 1L, ] > 0 & pr[d$av_no == 1L, ] < 1))

  mm <- iclv_model("att =~ q1 + q2 + q3",
                   choice = iclv_choice("mnl", choice = "ch", available = list(a = "av_a", b = "av_b"),
                                        utilities = list(a = "asc_a + l_att * att", b = "asc_b", c = "0")),
                   id = "ID", categories = 3)
  pm <- c(probit_truth[grep("^(zeta|tau)", names(probit_truth))], asc_a = 2, asc_b = 2, l_att = 0.5)
  dm <- iclv_simulate(mm, pm, n = 100, n_tasks = 3, seed = 9, availability = c(a = 0.5, b = 0.2))
  expect_true(all(dm$av_a[dm$ch == "a"] == 1L))
  expect_true(all(dm$av_b[dm$ch == "b"] == 1L))
  expect_gt(mean(dm$av_a == 0L), 0.35)
  expect_lt(mean(dm$av_b == 1L), 0.35)
  expect_s3_class(iclv:::.iclv_compile(mm, dm), "iclv_compiled")
  # the default draws no availability (the random stream is as before)
  expect_true(all(iclv_simulate(mm, pm, n = 5, seed = 1)$av_a == 1L))
  expect_error(iclv_simulate(mm, pm, n = 5, availability = 1.5), "availability", class = "iclv_error_control")
  expect_error(iclv_simulate(mm, pm, n = 5, availability = c(c = 0.5)), "'c'", class = "iclv_error_spec")
  expect_error(iclv_simulate(probit_model(), probit_truth, n = 5, availability = 0.5),
               "availability columns", class = "iclv_error_spec")
})
