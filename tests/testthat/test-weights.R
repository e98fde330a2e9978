# Individual weights (iclv(..., weights = "w"), src/iclv_model.h `weight`):
# LL = sum_n w_n log L_n with the gradient, scores and Hessian of that sum,
# checked against the pure-R reference, against duplicated individuals, and
# for bit-identity of the unweighted path.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

w_eval <- function(compiled, draws, th, reference = FALSE) {
  if (reference) {
    old <- Sys.getenv("ICLV_CPU_REFERENCE", unset = NA)
    on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
    Sys.setenv(ICLV_CPU_REFERENCE = "1")
  }
  e <- iclv:::.engine_new(compiled, draws, n_threads = 1L)
  on.exit(iclv:::.engine_release(e), add = TRUE)
  iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
}

test_that("the weighted C log-likelihood equals sum_n w_n log L_n of the R reference, on both CPU paths", {
  for (ch in c("mnl", "probit", "none")) {
    tm <- tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_logit"), ch, n_ind = 7L, seed = 3)
    th <- jitter_theta(tm)
    w <- c(0.5, 2, 0, 1.25, 3, 1, 0.75)
    cw <- tm$compiled
    cw$weight <- w
    ref <- ref_loglik(tm$compiled, th, tm$draws$user)
    for (refpath in c(FALSE, TRUE)) {
      out <- w_eval(cw, tm$draws, th, reference = refpath)
      info <- paste(ch, if (refpath) "reference path" else "fast path")
      expect_lt(abs(out$loglik - sum(w * ref$loglik_i)) / abs(sum(w * ref$loglik_i)), 1e-10, label = info)
      expect_lt(max(abs(out$loglik_i - w * ref$loglik_i)), 1e-10, label = info)
      # unweighted evaluation: its scores times the weights are the weighted scores,
      # the sum of the weighted per-individual Hessians is the weighted Hessian
      u <- w_eval(tm$compiled, tm$draws, th, reference = refpath)
      expect_equal(out$scores, w * u$scores, tolerance = 1e-13, label = info)
      expect_equal(out$gradient, colSums(w * u$scores), tolerance = 1e-12, label = info)
      # the Hessian of the weighted LL by finite differences of its gradient
      e <- iclv:::.engine_new(cw, tm$draws, n_threads = 1L)
      g <- function(x) iclv:::.engine_eval(e, x, gradient = TRUE)$gradient
      h <- 1e-5
      fd <- vapply(seq_along(th), function(p) {
        d <- replace(numeric(length(th)), p, h)
        (g(th + d) - g(th - d)) / (2 * h)
      }, numeric(length(th)))
      iclv:::.engine_release(e)
      expect_lt(max(abs(out$hessian - fd) / pmax(1, abs(fd))), 1e-5, label = info)
    }
  }
})

test_that("doubling every weight doubles LL, gradient, scores and Hessian exactly; weights 1 are bit-identical to none", {
  tm <- tiny_model("ordered_probit", "mnl", n_ind = 9L, seed = 21)
  th <- jitter_theta(tm)
  w <- c(1, 2.5, 0.3, 4, 1, 1.7, 0.9, 2, 3)
  a <- tm$compiled; a$weight <- w
  b <- tm$compiled; b$weight <- 2 * w
  one <- tm$compiled; one$weight <- rep(1, 9)
  for (refpath in c(FALSE, TRUE)) {
    ea <- w_eval(a, tm$draws, th, refpath)
    eb <- w_eval(b, tm$draws, th, refpath)
    # multiplying by 2 is exact in floating point, so the doubled sums are exact
    expect_identical(eb$loglik, 2 * ea$loglik)
    expect_identical(eb$gradient, 2 * ea$gradient)
    expect_identical(eb$scores, 2 * ea$scores)
    expect_identical(eb$hessian, 2 * ea$hessian)
    expect_identical(eb$loglik_i, 2 * ea$loglik_i)
    expect_identical(w_eval(one, tm$draws, th, refpath), w_eval(tm$compiled, tm$draws, th, refpath))
  }
})

# A small simulated data set for the R-level checks.
weights_data <- function(n = 40, seed = 2) {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = n, n_tasks = 3, seed = seed)
  d$w <- rep(c(1, 2, 3, 1, 2), length.out = n)[match(d$ID, unique(d$ID))]
  list(m = m, d = d)
}

test_that("integer weights equal duplicating individuals (LL, gradient, Hessian)", {
  x <- weights_data(n = 12)
  ids <- unique(x$d$ID)
  w <- x$d$w[match(ids, x$d$ID)]
  set.seed(5)
  user <- array(rnorm(length(ids) * 15), c(length(ids), 15, 1))
  # the duplicated data: individual i repeated w_i times, each copy its own id
  # and the same draws (so the copies have the same log L_n)
  pick <- rep(seq_along(ids), w)
  dd <- do.call(rbind, lapply(seq_along(pick), function(k) {
    r <- x$d[x$d$ID == ids[pick[k]], , drop = FALSE]
    r$ID <- k
    r
  }))
  p <- one_lv_mnl_truth + 0.05
  lw <- iclv_loglik(x$m, x$d, p, draws = user, hessian = TRUE, weights = "w")
  ld <- iclv_loglik(x$m, dd, p, draws = user[pick, , , drop = FALSE], hessian = TRUE)
  expect_equal(lw$loglik, ld$loglik, tolerance = 1e-12)
  expect_equal(lw$gradient, ld$gradient, tolerance = 1e-10)
  expect_equal(lw$hessian, ld$hessian, tolerance = 1e-10)
  # the weighted per-individual terms are w_n log L_n
  expect_equal(unname(lw$loglik_i), w * unname(ld$loglik_i[match(seq_along(ids), pick)]), tolerance = 1e-12)
})

test_that("iclv() with weights all 1 is the unweighted fit bit for bit; weights enter vcov and summary", {
  x <- weights_data(n = 40)
  dr <- iclv_draws("halton", 20, seed = 1)
  ctl <- iclv_control(trace = 0)
  f0 <- iclv(x$m, x$d, draws = dr, backend = "cpu", control = ctl)
  x$d$one <- 1
  f1 <- iclv(x$m, x$d, draws = dr, backend = "cpu", control = ctl, weights = "one")
  for (el in c("coefficients", "vcov", "loglik", "loglik_null", "loglik_components", "rho2", "gradient",
               "scores", "hessian"))
    expect_identical(f1[[el]], f0[[el]], label = el)
  keep <- setdiff(names(f0$history), "seconds")
  expect_identical(f1$history[keep], f0$history[keep])
  expect_null(f0$weights)
  expect_identical(f1$weights, list(column = "one", sum = 40))

  fw <- iclv(x$m, x$d, draws = dr, backend = "cpu", control = ctl, weights = "w")
  w <- x$d$w[match(unique(x$d$ID), x$d$ID)]
  expect_identical(fw$weights$sum, sum(w))
  # LL at the estimate is the weighted sum of the unweighted terms
  lu <- iclv_loglik(x$m, x$d, coef(fw), draws = dr, scores = TRUE)
  expect_equal(fw$loglik, sum(w * lu$loglik_i), tolerance = 1e-12)
  # the scores are the weighted ones, and the sandwich uses them (pweights)
  expect_equal(unname(fw$scores), unname(w * lu$scores), tolerance = 1e-10)
  Hinv <- solve(-fw$hessian)
  expect_equal(unname(fw$vcov$robust), unname(Hinv %*% crossprod(fw$scores) %*% Hinv), tolerance = 1e-6)
  # LL(0) of the choice part counts each row with its individual's weight
  expect_equal(fw$loglik_null, -sum(rep(w, table(factor(x$d$ID, levels = unique(x$d$ID))))) * log(3))
  out <- capture.output(summary(fw))
  expect_true(any(grepl(sprintf("column 'w', sum of weights %s", format(sum(w))), out, fixed = TRUE)))
  expect_false(any(grepl("Weights:", capture.output(summary(f0)), fixed = TRUE)))
  # update() keeps the weights
  fu <- update(fw, data = x$d)
  expect_identical(fu$weights, fw$weights)
  # post-estimation on a weighted fit: per-individual quantities are unweighted
  expect_equal(predict(fw, type = "prob"), predict(fw, newdata = x$d, type = "prob"), tolerance = 1e-12)
  expect_equal(predict(fw, type = "lv"), predict(fw, newdata = x$d, type = "lv"), tolerance = 1e-12)
  expect_identical(dim(predict(fw, type = "lv_draws")), dim(predict(f0, type = "lv_draws")))
  el <- iclv_elasticities(fw, attribute = "price_a")
  expect_true(all(is.finite(el$average)))
})

test_that("hostile weights are classed errors naming the column, row and id", {
  x <- weights_data(n = 10)
  dr <- iclv_draws("halton", 5, seed = 1)
  ll <- function(d, w) iclv_loglik(x$m, d, one_lv_mnl_truth, draws = dr, weights = w)
  expect_error(ll(x$d, "nope"), class = "iclv_error_data", regexp = "'nope' is not a column")
  expect_error(ll(x$d, 3), class = "iclv_error_control", regexp = "'weights'")
  expect_error(ll(x$d, c("w", "w")), class = "iclv_error_control")
  expect_error(ll(x$d, NA_character_), class = "iclv_error_control")
  d <- x$d; d$w <- as.character(d$w)
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "must be numeric")
  d <- x$d; d$w <- factor(d$w)
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "must be numeric")
  d <- x$d; d$w[5] <- NA
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "missing \\(NA\\) in row 5 \\(id")
  d <- x$d; d$w[4] <- Inf
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "not finite")
  d <- x$d; d$w[d$ID == unique(d$ID)[2]] <- -1
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "negative")
  d <- x$d; d$w <- 0
  expect_error(ll(d, "w"), class = "iclv_error_data", regexp = "0 for every individual")
  d <- x$d; r <- which(d$ID == unique(d$ID)[3])[2]; d$w[r] <- d$w[r] + 1
  expect_error(ll(d, "w"), class = "iclv_error_data",
               regexp = sprintf("'w' varies within id '%s'", unique(d$ID)[3]))
  expect_error(iclv(x$m, d, draws = dr, backend = "cpu", weights = "w"), class = "iclv_error_data")
  expect_error(iclv_objective(x$m, d, draws = dr, weights = "w"), class = "iclv_error_data")
  # the C boundary refuses a hand-made compiled list with bad weights
  tm <- tiny_model("ordered_probit", "mnl", n_ind = 4L, seed = 1)
  bad <- tm$compiled
  for (v in list(c(1, -1, 1, 1), c(1, NaN, 1, 1), c(1, 1, 1))) {
    bad$weight <- v
    expect_error(iclv:::.engine_new(bad, tm$draws, n_threads = 1L), class = "iclv_error_input")
  }
})

test_that("a cluster shard carries its individuals' weights", {
  tm <- tiny_model("ordered_probit", "mnl", n_ind = 8L, seed = 4)
  th <- jitter_theta(tm)
  cw <- tm$compiled
  cw$weight <- c(1, 2, 0.5, 3, 1.5, 2, 1, 0.25)
  whole <- w_eval(cw, tm$draws, th)
  parts <- lapply(list(c(1, 3), c(4, 8)), function(s) {
    w_eval(iclv:::.compiled_slice(cw, s[1], s[2]), iclv:::.draws_spec_slice(tm$draws, s[1], s[2]), th)
  })
  expect_equal(c(parts[[1]]$loglik_i, parts[[2]]$loglik_i), whole$loglik_i, tolerance = 1e-14)
  expect_equal(parts[[1]]$loglik + parts[[2]]$loglik, whole$loglik, tolerance = 1e-13)
})

test_that("a 2-worker cluster gives the weighted single-process LL, gradient, scores and Hessian", {
  skip_on_cran()
  cl <- tryCatch(parallel::makePSOCKcluster(2L), error = function(e) e)
  if (inherits(cl, "error")) skip(paste("parallel cannot make a local PSOCK cluster here:", conditionMessage(cl)))
  on.exit(try(parallel::stopCluster(cl), silent = TRUE), add = TRUE)
  x <- weights_data(n = 30)
  dr <- iclv_draws("halton", 10)
  p <- one_lv_mnl_truth + 0.03
  one <- iclv_loglik(x$m, x$d, p, draws = dr, scores = TRUE, hessian = TRUE, weights = "w")
  two <- iclv_loglik(x$m, x$d, p, draws = dr, scores = TRUE, hessian = TRUE, weights = "w", cluster = cl)
  # the shards' weighted terms are summed in index order, as the engine sums them
  expect_identical(two$loglik, one$loglik)
  expect_identical(two$loglik_i, one$loglik_i)
  expect_identical(two$gradient, one$gradient)
  expect_identical(two$scores, one$scores)
  expect_equal(two$hessian, one$hessian, tolerance = 1e-12)
  u <- iclv_loglik(x$m, x$d, p, draws = dr)
  expect_false(isTRUE(all.equal(u$loglik, one$loglik)))
})
