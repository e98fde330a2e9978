# Hand-built compiled models (the element names of src/iclv_model.h) and
# user draw designs for tiny models, so the engine tests do not depend on the
# R specification code (R/compile.R).
#
# A model is first described in a readable form (`desc`, 0-based indices as
# in iclv_model.h) and then flattened by compile_by_hand().

#' Flattens a model description into the compiled list of iclv_model.h.
#' desc: list(n_ind, n_lv, n_par, lv_order, cov (N x C matrix),
#'   struct = data.frame(lv, par, src_type, src) (src_type 0 cov, 1 LV),
#'   indicators = list of list(type, ncat, thr, icpt, sd, load_lv, load_par),
#'   obs = data.frame(ind, indic, val) (individual, indicator, value),
#'   choice_type, n_alt, rows = data.frame(ind, y), X (n_rows x n_xcol matrix),
#'   avail (n_rows x n_alt 0/1 matrix or NULL),
#'   util = data.frame(alt, par, col, lv) (-1 for none)).
compile_by_hand <- function(desc) {
  N <- as.integer(desc$n_ind)
  K <- as.integer(desc$n_lv)
  st <- desc$struct
  st <- st[order(st$lv, seq_len(nrow(st))), , drop = FALSE]
  st_ptr <- c(0L, cumsum(tabulate(st$lv + 1L, nbins = K)))
  ind <- desc$indicators
  M <- length(ind)
  load_lv <- unlist(lapply(ind, `[[`, "load_lv"))
  load_par <- unlist(lapply(ind, `[[`, "load_par"))
  load_ptr <- c(0L, cumsum(vapply(ind, function(i) length(i$load_lv), 1L)))
  obs <- desc$obs
  obs <- obs[order(obs$ind, seq_len(nrow(obs))), , drop = FALSE]
  obs_ptr <- c(0L, cumsum(tabulate(obs$ind + 1L, nbins = N)))
  rows <- desc$rows
  X <- desc$X
  if (is.null(rows)) {
    rows <- data.frame(ind = integer(0), y = integer(0))
    X <- matrix(0, 0, 0)
  }
  stopifnot(!is.unsorted(rows$ind))
  row_ptr <- c(0L, cumsum(tabulate(rows$ind + 1L, nbins = N)))
  J <- as.integer(if (desc$choice_type == 0L) 0L else desc$n_alt)
  ut <- desc$util
  if (is.null(ut)) ut <- data.frame(alt = integer(0), par = integer(0), col = integer(0), lv = integer(0))
  ut <- ut[order(ut$alt, seq_len(nrow(ut))), , drop = FALSE]
  ut_ptr <- c(0L, cumsum(tabulate(ut$alt + 1L, nbins = J)))
  avail <- desc$avail
  cov <- desc$cov
  if (is.null(cov)) cov <- matrix(0, N, 0)
  list(
    n_ind = N, n_lv = K, n_par = as.integer(desc$n_par), n_cov = ncol(cov),
    n_indic = as.integer(M), n_obs = nrow(obs), n_rows = nrow(rows), n_alt = J,
    n_xcol = ncol(X), n_avail = if (is.null(avail)) 0L else as.integer(length(avail)),
    choice_type = as.integer(desc$choice_type),
    lv_order = as.integer(desc$lv_order),
    st_ptr = as.integer(st_ptr), st_par = as.integer(st$par),
    st_src_type = as.integer(st$src_type), st_src = as.integer(st$src),
    cov = as.double(t(cov)),
    ind_type = vapply(ind, function(i) as.integer(i$type), 1L),
    ind_ncat = vapply(ind, function(i) as.integer(i$ncat), 1L),
    ind_thr = vapply(ind, function(i) as.integer(i$thr), 1L),
    ind_icpt = vapply(ind, function(i) as.integer(i$icpt), 1L),
    ind_sd = vapply(ind, function(i) as.integer(i$sd), 1L),
    ind_load_ptr = as.integer(load_ptr),
    ind_load_lv = as.integer(load_lv), ind_load_par = as.integer(load_par),
    obs_ptr = as.integer(obs_ptr), obs_ind = as.integer(obs$indic),
    obs_val = as.double(obs$val),
    row_ptr = as.integer(row_ptr), y = as.integer(rows$y),
    avail = if (is.null(avail)) integer(0) else as.integer(t(avail)),
    X = as.double(t(X)),
    ut_ptr = as.integer(ut_ptr), ut_par = as.integer(ut$par),
    ut_col = as.integer(ut$col), ut_lv = as.integer(ut$lv)
  )
}

#' A user draw design (type USER) with the array e[n, r, k] = user[n, r, k].
user_draws <- function(user) {
  d <- dim(user)
  list(type = 0L, n_draws = as.integer(d[2]), n_dim = as.integer(d[3]),
       n_ind = as.integer(d[1]), seed = 0, skip = 0, user = array(as.double(user), d))
}

random_draws <- function(n_ind, n_draws, n_lv) {
  user_draws(array(stats::rnorm(n_ind * n_draws * n_lv), c(n_ind, n_draws, n_lv)))
}

.ind_codes <- c(ordered_probit = 1L, ordered_logit = 2L, normal = 3L,
                binary_probit = 4L, binary_logit = 5L)
.choice_codes <- c(none = 0L, mnl = 1L, probit = 2L)

#' A tiny model with three LVs, LV-on-LV structural effects, covariates and a
#' cross-loading. Structure (0-based LVs, lv_order = 1, 2, 0):
#'   eta1 = e1 + g4 * cov0
#'   eta2 = e2 + g5 * eta1
#'   eta0 = e0 + g1 * eta1 + g2 * eta2 + g3 * cov1
#' Indicators (types recycled from `ind_type`): I0 on LV0, I1 on LV1,
#' I2 on LV2 and LV0 (cross-loading), I3 on LV1. Missing indicator values are
#' left out at random (every individual keeps at least one).
#' Choice: "mnl" (3 alternatives, availability, a generic price coefficient
#' shared by all alternatives, LV effects as main effect and interaction),
#' "probit" (2 alternatives) or "none".
#' Returns list(desc, compiled, theta, block, draws).
tiny_model <- function(ind_type = "ordered_probit", choice = "mnl", n_ind = 6L,
                       n_draws = 5L, ncat = 4L, seed = 1L) {
  set.seed(seed)
  ind_type <- rep_len(ind_type, 4L)
  np <- 0L
  theta <- numeric(0)
  block <- character(0)
  newpar <- function(value, blk) {
    idx <- np + seq_along(value) - 1L
    np <<- np + length(value)
    theta <<- c(theta, value)
    block <<- c(block, rep(blk, length(value)))
    idx
  }
  # structural
  g <- newpar(c(0.6, -0.4, 0.5, 0.7, 0.8), "structural")
  struct <- data.frame(
    lv = c(0L, 0L, 0L, 1L, 2L), par = g,
    src_type = c(1L, 1L, 0L, 0L, 1L), src = c(1L, 2L, 1L, 0L, 1L)
  )
  cov <- cbind(stats::rnorm(n_ind), stats::runif(n_ind))
  # indicators
  load_lv <- list(0L, 1L, c(2L, 0L), 1L)
  indicators <- vector("list", 4L)
  for (i in 1:4) {
    ty <- .ind_codes[[ind_type[i]]]
    lp <- newpar(c(0.9, -0.7, 0.8, 1.1)[i] * c(1, 0.6)[seq_along(load_lv[[i]])], "loading")
    thr <- icpt <- sd <- -1L
    nc <- 0L
    if (ty %in% 1:2) {
      nc <- ncat
      thr <- newpar(seq(-1.2, 1.1, length.out = ncat - 1L) + 0.1 * i, "threshold")[1]
    } else if (ty == 3L) {
      icpt <- newpar(0.3 * i, "intercept")
      sd <- newpar(0.8 + 0.2 * i, "sd")
    } else {
      nc <- 2L
      icpt <- newpar(-0.2 * i, "intercept")
    }
    indicators[[i]] <- list(type = ty, ncat = nc, thr = thr, icpt = icpt, sd = sd,
                            load_lv = load_lv[[i]], load_par = lp)
  }
  obs <- do.call(rbind, lapply(seq_len(n_ind) - 1L, function(n) {
    keep <- stats::runif(4) < 0.8
    if (!any(keep)) keep[1 + n %% 4] <- TRUE
    data.frame(ind = n, indic = which(keep) - 1L)
  }))
  obs$val <- vapply(seq_len(nrow(obs)), function(o) {
    ty <- indicators[[obs$indic[o] + 1L]]$type
    switch(ty, sample.int(ncat, 1), sample.int(ncat, 1), stats::rnorm(1, 0.3, 1.2),
           sample(0:1, 1), sample(0:1, 1))
  }, 0)
  desc <- list(n_ind = n_ind, n_lv = 3L, lv_order = c(1L, 2L, 0L), cov = cov,
               struct = struct, indicators = indicators, obs = obs,
               choice_type = .choice_codes[[choice]])
  if (choice != "none") {
    T_n <- 2L + (seq_len(n_ind) %% 3L)
    rows <- data.frame(ind = rep(seq_len(n_ind) - 1L, T_n))
    nr <- nrow(rows)
    X <- matrix(round(stats::rnorm(nr * 4), 2), nr, 4)
    if (choice == "mnl") {
      J <- 3L
      avail <- matrix(1L, nr, J)
      avail[cbind(seq_len(nr), sample.int(J, nr, replace = TRUE))] <- 0L
      avail[seq(1, nr, by = 3), ] <- 1L
      rows$y <- apply(avail, 1, function(a) sample(which(a == 1L), 1) - 1L)
      b_price <- newpar(-0.8, "utility")
      asc <- newpar(c(0.3, -0.2), "utility")
      lam <- newpar(c(0.7, -0.5), "utility")
      util <- data.frame(
        alt = c(0L, 0L, 1L, 1L, 1L, 2L, 2L),
        par = c(b_price, lam[1], asc[1], b_price, lam[2], asc[2], b_price),
        col = c(0L, -1L, -1L, 1L, 2L, -1L, 3L),
        lv  = c(-1L, 0L, -1L, -1L, 1L, -1L, -1L)
      )
    } else {
      J <- 2L
      avail <- NULL
      rows$y <- sample(0:1, nr, replace = TRUE)
      b <- newpar(c(0.4, -0.6, 0.9, -0.3), "utility")
      util <- data.frame(
        alt = c(0L, 0L, 0L, 1L, 1L),
        par = c(b[1], b[2], b[3], b[2], b[4]),
        col = c(-1L, 0L, -1L, 1L, 2L),
        lv  = c(-1L, -1L, 0L, -1L, 2L)
      )
    }
    desc$n_alt <- J
    desc$rows <- rows
    desc$X <- X
    desc$avail <- avail
    desc$util <- util
  }
  desc$n_par <- np
  used <- c(struct$par, desc$util$par,
            unlist(lapply(indicators, function(i) c(i$load_par, i$icpt, i$sd))),
            unlist(lapply(indicators, function(i) if (i$thr >= 0) i$thr + seq_len(i$ncat - 1L) - 1L)))
  used <- sort(unique(used[used >= 0]))
  list(desc = desc, compiled = compile_by_hand(desc), theta = theta, block = block,
       used = used, draws = random_draws(n_ind, n_draws, 3L))
}

#' A random valid parameter point near theta: thresholds stay increasing,
#' sds positive.
jitter_theta <- function(tm, amount = 0.3) {
  th <- tm$theta + stats::runif(length(tm$theta), -amount, amount)
  for (i in tm$desc$indicators) {
    if (i$thr >= 0) {
      idx <- i$thr + seq_len(i$ncat - 1L)
      th[idx] <- sort(th[idx])
    }
    if (i$sd >= 0) th[i$sd + 1L] <- abs(th[i$sd + 1L]) + 0.3
  }
  th
}

#' Is the compiled C engine of iclv loadable? (The shared library needs
#' src/engine.c and src/draws.c.)
engine_ok <- function() {
  isTRUE(tryCatch({
    tm <- tiny_model(n_ind = 1L, n_draws = 1L)
    e <- iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L)
    is.finite(iclv:::.engine_eval(e, tm$theta, gradient = FALSE)$loglik)
  }, error = function(e) FALSE))
}

#' The engine's gradient and Hessian at th against central finite
#' differences (h = 1e-5), on the fast CPU path (refpath "0") or the
#' per-pair reference ("1", ICLV_CPU_REFERENCE at creation). Expects
#' relative agreement 1e-6 (gradient) and 1e-5 (Hessian) and returns the
#' evaluation (loglik, gradient, scores, hessian).
expect_engine_fd <- function(compiled, spec, th, refpath, what = "") {
  old <- Sys.getenv("ICLV_CPU_REFERENCE", unset = NA)
  Sys.setenv(ICLV_CPU_REFERENCE = refpath)
  e <- iclv:::.engine_new(compiled, spec, n_threads = 1L)
  if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old)
  on.exit(iclv:::.engine_release(e), add = TRUE)
  ev <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
  f <- function(v) iclv:::.engine_eval(e, v, gradient = FALSE)$loglik
  g <- function(v) iclv:::.engine_eval(e, v, gradient = TRUE)$gradient
  h <- 1e-5
  step <- function(i) replace(numeric(length(th)), i, h)
  fd_g <- vapply(seq_along(th), function(i) (f(th + step(i)) - f(th - step(i))) / (2 * h), numeric(1))
  fd_h <- vapply(seq_along(th), function(i) (g(th + step(i)) - g(th - step(i))) / (2 * h), numeric(length(th)))
  testthat::expect_lt(max(abs(ev$gradient - fd_g) / pmax(1, abs(fd_g))), 1e-6,
                      label = paste0("gradient", what, ", reference ", refpath))
  testthat::expect_lt(max(abs(ev$hessian - fd_h) / pmax(1, abs(fd_h))), 1e-5,
                      label = paste0("Hessian", what, ", reference ", refpath))
  ev
}

#' Shards of the individuals (1..5 and 6..12, as a cluster's workers hold
#' them) add up to the whole: LL and gradient at th.
expect_shards_add_up <- function(comp, spec, th) {
  whole <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, n_threads = 1L), th, gradient = TRUE)
  parts <- lapply(list(c(1L, 5L), c(6L, 12L)), function(s) {
    cc <- iclv:::.compiled_slice(comp$c, s[1], s[2])
    iclv:::.engine_eval(iclv:::.engine_new(cc, iclv:::.draws_spec_slice(spec, s[1], s[2]), n_threads = 1L),
                        th, gradient = TRUE)
  })
  testthat::expect_equal(parts[[1]]$loglik + parts[[2]]$loglik, whole$loglik, tolerance = 1e-13)
  testthat::expect_equal(parts[[1]]$gradient + parts[[2]]$gradient, whole$gradient, tolerance = 1e-12)
}

#' iclv_memory_plan(backend = "cpu", n_threads = 1) equals the CPU engine's
#' host account, buffer by buffer; returns the account's names.
expect_cpu_plan_is_account <- function(m, d, dr) {
  comp <- iclv:::.iclv_compile(m, d)
  e <- iclv:::.engine_new(comp$c, iclv:::.draws_spec(dr, comp$n_ind, length(comp$lvs)), backend = "cpu",
                          n_threads = 1L)
  on.exit(iclv:::.engine_release(e))
  acct <- iclv:::.engine_memory(e)$host$buffers
  plan <- iclv_memory_plan(m, d, dr, backend = "cpu", n_threads = 1L)$buffers
  for (b in names(acct)) testthat::expect_equal(plan$bytes[plan$buffer == b], acct[[b]], label = b)
  names(acct)
}

#' The default CPU engine takes this model's individuals through the fast
#' kernels with its choice rows, which have no hoisted product form (nests,
#' ordered choice, tapes), through the reference's links or atoms draw by
#' draw (every (row, draw) counted as a reference row in .engine_paths()),
#' the Hessian through the fast Hessian pass when `fast_hessian`, and gives
#' the ICLV_CPU_REFERENCE=1 engine's numbers to 1e-12 relative (LL, log L_n,
#' gradient, scores, Hessian; also from LL-only and gradient-only
#' evaluations), bit for bit the same with 1 and 2 threads. With `hoisted`
#' the rows take the MNL's hoisted forms instead (an MNL whose tapes read
#' no draw: every (row, draw) counted as vectorised or scalar, none as a
#' reference row).
expect_atom_routing <- function(comp, spec, th, fast_hessian = TRUE, label = "", hoisted = FALSE) {
  old <- Sys.getenv("ICLV_CPU_REFERENCE", NA)
  on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
  Sys.unsetenv("ICLV_CPU_REFERENCE")
  e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
  p0 <- iclv:::.engine_paths(e)
  gr <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = FALSE)
  p1 <- iclv:::.engine_paths(e) - p0
  testthat::expect_equal(p1[["individuals"]], comp$c$n_ind, label = paste(label, "fast individuals"))
  n_rd <- comp$c$n_rows * spec$n_draws
  testthat::expect_equal(p1[["rows_reference"]], if (hoisted) 0 else n_rd,
                         label = paste(label, "rows through the atoms"))
  testthat::expect_equal(p1[["rows_vectorised"]] + p1[["rows_scalar"]], if (hoisted) n_rd else 0,
                         label = paste(label, "hoisted rows"))
  p1 <- iclv:::.engine_paths(e)
  fast <- iclv:::.engine_eval(e, th, gradient = TRUE, scores = TRUE, hessian = TRUE)
  p2 <- iclv:::.engine_paths(e) - p1
  testthat::expect_equal(p2[["hessian_individuals"]], if (fast_hessian) comp$c$n_ind else 0,
                         label = paste(label, "fast Hessian individuals"))
  ll <- iclv:::.engine_eval(e, th, gradient = FALSE)
  Sys.setenv(ICLV_CPU_REFERENCE = "1")
  ref <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, n_threads = 1L), th,
                             gradient = TRUE, scores = TRUE, hessian = TRUE)
  Sys.unsetenv("ICLV_CPU_REFERENCE")
  rel <- function(a, b) max(abs(a - b)) / max(abs(b), 1e-300)
  testthat::expect_true(is.finite(ref$loglik), label = paste(label, "finite reference LL"))
  for (k in c("loglik", "loglik_i", "gradient", "scores", "hessian"))
    testthat::expect_lt(rel(fast[[k]], ref[[k]]), 1e-12, label = paste(label, k))
  testthat::expect_lt(rel(gr$gradient, ref$gradient), 1e-12, label = paste(label, "gradient-only evaluation"))
  testthat::expect_identical(gr$gradient, fast$gradient, label = paste(label, "gradient with and without Hessian"))
  testthat::expect_lt(rel(ll$loglik_i, ref$loglik_i), 1e-12, label = paste(label, "LL-only evaluation"))
  two <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, n_threads = 2L), th,
                             gradient = TRUE, scores = TRUE, hessian = TRUE)
  el <- c("loglik", "loglik_i", "gradient", "scores", "hessian")
  testthat::expect_identical(two[el], fast[el], label = paste(label, "2 threads"))
}
