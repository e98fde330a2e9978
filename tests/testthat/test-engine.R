# The CPU engine (src/engine.c, src/iclv_core.h) against the pure-R reference
# likelihood (helper-reference.R), finite differences, and quadrature.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

new_engine <- function(tm, draws = tm$draws, n_threads = 1L, compiled = tm$compiled) {
  iclv:::.engine_new(compiled, draws, n_threads = n_threads)
}
ll_of <- function(e, th) iclv:::.engine_eval(e, th, gradient = FALSE)$loglik

# Five-point central differences of a scalar or vector function at th.
fd_jacobian <- function(f, th, h = 1e-4) {
  cols <- lapply(seq_along(th), function(p) {
    d <- replace(numeric(length(th)), p, h)
    (-f(th + 2 * d) + 8 * f(th + d) - 8 * f(th - d) + f(th - 2 * d)) / (12 * h)
  })
  do.call(cbind, cols)
}

combos <- expand.grid(ind = names(.ind_codes), choice = names(.choice_codes),
                      stringsAsFactors = FALSE)

test_that("the C log-likelihood equals the R reference for every indicator and choice type", {
  for (i in seq_len(nrow(combos))) {
    tm <- tiny_model(combos$ind[i], combos$choice[i], seed = i)
    e <- new_engine(tm)
    for (rep in 1:2) {
      th <- jitter_theta(tm)
      out <- iclv:::.engine_eval(e, th, gradient = FALSE)
      ref <- ref_loglik(tm$compiled, th, tm$draws$user)
      info <- paste(combos$ind[i], combos$choice[i])
      expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10, label = info)
      expect_lt(max(abs(out$loglik_i - ref$loglik_i) / abs(ref$loglik_i)), 1e-10, label = info)
    }
  }
})

test_that("a model mixing every indicator type matches the reference", {
  tm <- tiny_model(c("ordered_logit", "normal", "binary_probit", "ordered_probit"), "mnl",
                   n_ind = 8L, n_draws = 6L, ncat = 5L, seed = 11)
  tm2 <- tiny_model(c("binary_logit", "ordered_probit", "normal", "normal"), "probit", seed = 12)
  for (x in list(tm, tm2)) {
    th <- jitter_theta(x)
    out <- iclv:::.engine_eval(new_engine(x), th, gradient = FALSE)
    ref <- ref_loglik(x$compiled, th, x$draws$user)
    expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10)
  }
})

test_that("the analytic gradient matches finite differences in every parameter block", {
  for (i in seq_len(nrow(combos))) {
    tm <- tiny_model(combos$ind[i], combos$choice[i], seed = 100 + i)
    e <- new_engine(tm)
    th <- jitter_theta(tm, 0.4)
    g <- iclv:::.engine_eval(e, th, gradient = TRUE)$gradient
    fd <- fd_jacobian(function(x) ll_of(e, x), th)[1, ]
    err <- abs(g - fd) / pmax(1, abs(fd))
    info <- paste(combos$ind[i], combos$choice[i])
    expect_lt(max(err), 1e-6, label = info)
    # every block is exercised: its gradient is not identically zero
    for (b in unique(tm$block)) expect_gt(max(abs(g[tm$block == b])), 1e-6, label = paste(info, b))
  }
})

test_that("the analytic Hessian matches finite differences of the analytic gradient", {
  for (i in seq_len(nrow(combos))) {
    tm <- tiny_model(combos$ind[i], combos$choice[i], seed = 200 + i)
    e <- new_engine(tm)
    th <- jitter_theta(tm, 0.4)
    H <- iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE)$hessian
    fd <- fd_jacobian(function(x) iclv:::.engine_eval(e, x)$gradient, th)
    fd <- (fd + t(fd)) / 2
    info <- paste(combos$ind[i], combos$choice[i])
    expect_lt(max(abs(H - fd) / pmax(1, abs(fd))), 1e-5, label = info)
    expect_identical(H, t(H))
    # the structural block's second derivatives (LV-on-LV terms) are non-trivial
    s <- tm$block == "structural"
    expect_gt(max(abs(H[s, s])), 1e-3, label = info)
  }
})

test_that("scores sum to the gradient and are the derivatives of log L_n", {
  tm <- tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_logit"), "mnl", seed = 3)
  e <- new_engine(tm)
  th <- jitter_theta(tm)
  out <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE)
  expect_equal(dim(out$scores), c(tm$compiled$n_ind, length(th)))
  expect_lt(max(abs(colSums(out$scores) - out$gradient)), 1e-12 * max(1, abs(out$gradient)))
  fd <- fd_jacobian(function(x) iclv:::.engine_eval(e, x, gradient = FALSE)$loglik_i, th)
  expect_lt(max(abs(out$scores - fd) / pmax(1, abs(fd))), 1e-6)
})

test_that("the gradient weights draws by their likelihood (unweighted mean is wrong)", {
  tm <- tiny_model("ordered_probit", "probit", n_ind = 5L, n_draws = 6L, seed = 4)
  th <- jitter_theta(tm)
  user <- tm$draws$user
  R <- dim(user)[2]
  out <- iclv:::.engine_eval(new_engine(tm), th, gradient = TRUE, scores = TRUE)
  # per-draw gradients g_nr: an engine that sees only draw r has scores g_nr
  g_nr <- lapply(seq_len(R), function(r) {
    e1 <- new_engine(tm, draws = user_draws(user[, r, , drop = FALSE]))
    iclv:::.engine_eval(e1, th, gradient = TRUE, scores = TRUE)$scores
  })
  unweighted <- Reduce(`+`, g_nr) / R
  ref <- ref_loglik(tm$compiled, th, user)
  w <- exp(ref$l - apply(ref$l, 1, max))
  w <- w / rowSums(w)
  weighted <- Reduce(`+`, lapply(seq_len(R), function(r) w[, r] * g_nr[[r]]))
  expect_lt(max(abs(out$scores - weighted)), 1e-10 * max(1, abs(weighted)))
  # the defect of the old implementation would show as a large difference
  expect_gt(max(abs(colSums(unweighted) - out$gradient)), 0.1)
  fd <- fd_jacobian(function(x) ll_of(new_engine(tm), x), th)[1, ]
  expect_lt(max(abs(out$gradient - fd) / pmax(1, abs(fd))), 1e-6)
})

test_that("every indicator value and every choice of every individual counts", {
  for (ch in c("mnl", "probit")) {
    tm <- tiny_model(c("ordered_probit", "normal", "binary_probit", "ordered_logit"), ch,
                     n_ind = 4L, n_draws = 3L, seed = 5)
    th <- tm$theta
    base <- iclv:::.engine_eval(new_engine(tm), th, gradient = FALSE)$loglik_i
    desc <- tm$desc
    for (o in seq_len(nrow(desc$obs))) {
      d2 <- desc
      ty <- desc$indicators[[desc$obs$indic[o] + 1L]]$type
      v <- desc$obs$val[o]
      d2$obs$val[o] <- switch(ty, if (v == 1) 2 else v - 1, if (v == 1) 2 else v - 1, v + 0.5, 1 - v, 1 - v)
      lli <- iclv:::.engine_eval(new_engine(tm, compiled = compile_by_hand(d2)), th,
                                 gradient = FALSE)$loglik_i
      n <- desc$obs$ind[o] + 1L
      expect_true(abs(lli[n] - base[n]) > 1e-8, label = paste(ch, "observation", o))
      expect_equal(lli[-n], base[-n])
    }
    for (t in seq_len(nrow(desc$rows))) {
      d2 <- desc
      alts <- if (is.null(desc$avail)) 0:1 else which(desc$avail[t, ] == 1L) - 1L
      alts <- setdiff(alts, desc$rows$y[t])
      if (length(alts) == 0L) next
      d2$rows$y[t] <- alts[1]
      lli <- iclv:::.engine_eval(new_engine(tm, compiled = compile_by_hand(d2)), th,
                                 gradient = FALSE)$loglik_i
      n <- desc$rows$ind[t] + 1L
      expect_true(abs(lli[n] - base[n]) > 1e-8, label = paste(ch, "row", t))
    }
    # covariates of every individual count too
    for (n in seq_len(desc$n_ind)) {
      d2 <- desc
      d2$cov[n, ] <- d2$cov[n, ] + 1
      lli <- iclv:::.engine_eval(new_engine(tm, compiled = compile_by_hand(d2)), th,
                                 gradient = FALSE)$loglik_i
      expect_true(abs(lli[n] - base[n]) > 1e-8, label = paste(ch, "covariates of", n))
    }
  }
})

test_that("extreme but finite parameters give a finite log-likelihood, gradient and Hessian", {
  for (it in names(.ind_codes)) {
    tm <- tiny_model(it, "probit", seed = 6)
    th <- tm$theta
    th[tm$block == "loading"] <- 50
    th[tm$block == "structural"] <- 3
    for (i in tm$desc$indicators) {
      if (i$thr >= 0) th[i$thr + seq_len(i$ncat - 1L)] <- 30 * (seq_len(i$ncat - 1L) - 2)
      if (i$icpt >= 0) th[i$icpt + 1L] <- -40
    }
    th[tm$block == "utility"] <- 20
    out <- iclv:::.engine_eval(new_engine(tm), th, gradient = TRUE, hessian = TRUE)
    expect_true(is.finite(out$loglik), label = it)
    expect_true(all(is.finite(out$gradient)), label = it)
    expect_true(all(is.finite(out$hessian)), label = it)
    ref <- ref_loglik(tm$compiled, th, tm$draws$user)$loglik
    if (is.finite(ref)) expect_lt(abs(out$loglik - ref) / abs(ref), 1e-8, label = it)
  }
})

test_that("results are bit-identical with 1 and 2 threads", {
  tm <- tiny_model(c("ordered_probit", "ordered_logit", "normal", "binary_probit"), "mnl",
                   n_ind = 40L, n_draws = 8L, seed = 7)
  th <- jitter_theta(tm)
  o1 <- iclv:::.engine_eval(new_engine(tm, n_threads = 1L), th, TRUE, TRUE, TRUE)
  o2 <- iclv:::.engine_eval(new_engine(tm, n_threads = 2L), th, TRUE, TRUE, TRUE)
  o2b <- iclv:::.engine_eval(new_engine(tm, n_threads = 2L), th, TRUE, FALSE, FALSE)
  expect_identical(o1$loglik, o2$loglik)
  expect_identical(o1$gradient, o2$gradient)
  expect_identical(o1$scores, o2$scores)
  expect_identical(o1$hessian, o2$hessian)
  expect_identical(o1$loglik, o2b$loglik)
  expect_identical(o1$gradient, o2b$gradient)
})

test_that("invalid parameters are input errors naming the parameter; data errors are refused", {
  tm <- tiny_model(c("ordered_probit", "normal", "ordered_logit", "binary_logit"), "none", seed = 8)
  e <- new_engine(tm)
  th <- tm$theta
  thr <- tm$desc$indicators[[1]]$thr
  bad <- th
  bad[thr + 2L] <- bad[thr + 1L]
  expect_error(iclv:::.engine_eval(e, bad), class = "iclv_error_input",
               regexp = sprintf("parameter %d", thr + 2L))
  sdp <- tm$desc$indicators[[2]]$sd
  bad <- th
  bad[sdp + 1L] <- -0.5
  expect_error(iclv:::.engine_eval(e, bad), class = "iclv_error_input",
               regexp = sprintf("parameter %d", sdp + 1L))
  d2 <- tm$desc
  d2$obs$val[d2$obs$indic == 0L][1] <- 7
  expect_error(new_engine(tm, compiled = compile_by_hand(d2)), class = "iclv_error_input")
})

test_that("a non-finite log-likelihood is a numeric error naming the individual and part", {
  tm <- tiny_model("normal", "none", n_ind = 3L, seed = 9)
  th <- tm$theta
  th[tm$desc$indicators[[1]]$sd + 1L] <- 1e-200 # density underflows to 0
  expect_error(iclv:::.engine_eval(new_engine(tm), th), class = "iclv_error_numeric",
               regexp = "individual [0-9]+ .*measurement model: indicator 1")
})

test_that("predictions match the reference: probabilities, posterior LVs, component LL", {
  for (ch in c("mnl", "probit", "none")) {
    tm <- tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_logit"), ch, seed = 10)
    th <- jitter_theta(tm)
    p <- iclv:::.engine_predict(new_engine(tm), th)
    ref <- ref_predict(tm$compiled, th, tm$draws$user)
    if (ch != "none") {
      expect_equal(p$prob, ref$prob, tolerance = 1e-12)
      expect_equal(rowSums(p$prob), rep(1, nrow(p$prob)), tolerance = 1e-12)
    }
    expect_equal(p$lv_mean, ref$lv_mean, tolerance = 1e-12)
    expect_equal(p$lv_sd, ref$lv_sd, tolerance = 1e-12)
    expect_equal(p$comp_ll, ref$comp_ll, tolerance = 1e-12)
    if (ch == "none") expect_identical(p$comp_ll[length(p$comp_ll)], 0)
  }
})

test_that("memory is accounted and does not grow with evaluations", {
  tm <- tiny_model("ordered_probit", "mnl", seed = 13)
  e <- new_engine(tm)
  m0 <- iclv:::.engine_memory(e)$host
  expect_gt(length(m0$buffers), 5)
  expect_equal(sum(m0$buffers), m0$current)
  for (i in 1:5) iclv:::.engine_eval(e, jitter_theta(tm), TRUE, TRUE, TRUE)
  m1 <- iclv:::.engine_memory(e)$host
  expect_identical(m1$current, m0$current)
  expect_identical(m1$peak, m0$peak)
})

test_that("one LV: SML with 20,000 draws agrees with Gauss-Hermite quadrature", {
  set.seed(21)
  N <- 4L
  R <- 20000L
  # eta = e + g * cov; 3 ordered-probit indicators, 4 binary-probit choices with lambda * eta
  ncat <- 4L
  np <- 0L
  desc <- list(n_ind = N, n_lv = 1L, lv_order = 0L, cov = matrix(stats::rnorm(N), N, 1),
               struct = data.frame(lv = 0L, par = 0L, src_type = 0L, src = 0L))
  theta <- c(0.5)
  indicators <- list()
  for (i in 1:3) {
    lp <- length(theta)
    theta <- c(theta, c(1.2, 0.8, -1)[i], c(-1, 0.1, 1) + 0.2 * i)
    indicators[[i]] <- list(type = 1L, ncat = ncat, thr = lp + 1L, icpt = -1L, sd = -1L,
                            load_lv = 0L, load_par = lp)
  }
  desc$indicators <- indicators
  desc$obs <- data.frame(ind = rep(0:(N - 1L), each = 3), indic = rep(0:2, N),
                         val = sample.int(ncat, 3 * N, replace = TRUE))
  nb <- length(theta)
  theta <- c(theta, 0.3, -0.7, 0.9)
  desc$choice_type <- 2L
  desc$n_alt <- 2L
  desc$rows <- data.frame(ind = rep(0:(N - 1L), each = 4), y = sample(0:1, 4 * N, TRUE))
  desc$X <- matrix(stats::rnorm(8 * N), 4 * N, 2)
  desc$util <- data.frame(alt = c(0L, 0L, 0L, 1L), par = nb + c(0L, 1L, 2L, 1L),
                          col = c(-1L, 0L, -1L, 1L), lv = c(-1L, -1L, 0L, -1L))
  desc$n_par <- length(theta)
  cm <- compile_by_hand(desc)
  user <- array(stats::rnorm(N * R), c(N, R, 1))
  out <- iclv:::.engine_eval(new_engine(list(), draws = user_draws(user), compiled = cm), theta,
                             gradient = FALSE)
  # L_n(eta) vectorised over eta, for the quadrature and the Monte Carlo error
  Ln_of <- function(n, eta) {
    l <- 0
    for (o in which(desc$obs$ind == n - 1L)) {
      m <- desc$indicators[[desc$obs$indic[o] + 1L]]
      tau <- c(-Inf, theta[m$thr + 1:(ncat - 1)], Inf)
      s <- theta[m$load_par + 1L] * eta
      y <- desc$obs$val[o]
      l <- l + log(stats::pnorm(tau[y + 1] - s) - stats::pnorm(tau[y] - s))
    }
    for (t in which(desc$rows$ind == n - 1L)) {
      v <- theta[nb + 1] + theta[nb + 2] * (desc$X[t, 1] - desc$X[t, 2]) + theta[nb + 3] * eta
      l <- l + stats::pnorm(if (desc$rows$y[t] == 0L) v else -v, log.p = TRUE)
    }
    exp(l)
  }
  quad <- function(nodes) {
    if (requireNamespace("statmod", quietly = TRUE)) {
      gq <- statmod::gauss.quad.prob(nodes, "normal")
      x <- gq$nodes
      wq <- gq$weights
    } else { # Golub-Welsch for the probabilists' Hermite polynomials
      J <- matrix(0, nodes, nodes)
      off <- sqrt(seq_len(nodes - 1))
      J[cbind(1:(nodes - 1), 2:nodes)] <- off
      J[cbind(2:nodes, 1:(nodes - 1))] <- off
      ev <- eigen(J, symmetric = TRUE)
      x <- ev$values
      wq <- ev$vectors[1, ]^2
    }
    vapply(seq_len(N), function(n) log(sum(wq * Ln_of(n, x + theta[1] * cm$cov[n]))), 0)
  }
  q60 <- quad(80)
  expect_lt(max(abs(q60 - quad(120))), 1e-7) # the quadrature has converged
  se <- vapply(seq_len(N), function(n) {
    Lr <- Ln_of(n, user[n, , 1] + theta[1] * cm$cov[n])
    stats::sd(Lr) / sqrt(R) / mean(Lr)
  }, 0)
  z <- (out$loglik_i - q60) / se
  expect_true(all(abs(z) < 4.5), label = paste(round(z, 2), collapse = " "))
  expect_lt(abs(out$loglik - sum(q60)), 4.5 * sqrt(sum(se^2)))
  expect_gt(max(abs(out$loglik_i - q60)), 0) # simulation, not quadrature
})
