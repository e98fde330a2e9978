# The CPU engine's fast kernels (src/engine_fast.c, issue 17) against the
# per-pair reference (src/iclv_core.h), which the environment variable
# ICLV_CPU_REFERENCE=1 selects when an engine is created: LL, log L_n,
# gradient, scores and Hessian equal to 1e-12 relative on every kind of model,
# including the tails where the fast forms hand over to the reference links.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# Engines on the reference path and on the fast path for one model.
engine_pair <- function(compiled, draws, n_threads = 1L) {
  old <- Sys.getenv("ICLV_CPU_REFERENCE", unset = NA)
  on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
  Sys.setenv(ICLV_CPU_REFERENCE = "1")
  ref <- iclv:::.engine_new(compiled, draws, n_threads = n_threads)
  Sys.unsetenv("ICLV_CPU_REFERENCE")
  fast <- iclv:::.engine_new(compiled, draws, n_threads = n_threads)
  list(ref = ref, fast = fast)
}

# Largest difference relative to the largest magnitude of the reference.
rel_diff <- function(a, b) max(abs(a - b)) / max(abs(b), 1e-300)

# Every output of the fast path equals the reference to tol; also the LL and
# gradient of evaluations without the Hessian (another code path).
expect_fast_equals_ref <- function(compiled, draws, th, info, tol = 1e-12) {
  e <- engine_pair(compiled, draws)
  r <- iclv:::.engine_eval(e$ref, th, TRUE, TRUE, TRUE)
  f <- iclv:::.engine_eval(e$fast, th, TRUE, TRUE, TRUE)
  g <- iclv:::.engine_eval(e$fast, th, TRUE, TRUE, FALSE)
  l <- iclv:::.engine_eval(e$fast, th, FALSE, FALSE, FALSE)
  expect_true(is.finite(r$loglik), label = info)
  for (k in c("loglik", "loglik_i", "gradient", "scores", "hessian"))
    expect_lt(rel_diff(f[[k]], r[[k]]), tol, label = paste(info, k))
  expect_lt(rel_diff(g$gradient, r$gradient), tol, label = paste(info, "gradient without Hessian"))
  expect_lt(rel_diff(g$scores, r$scores), tol, label = paste(info, "scores without Hessian"))
  expect_lt(rel_diff(l$loglik_i, r$loglik_i), tol, label = paste(info, "LL only"))
}

# tiny_model (helper-compiled.R) variants: without LV-on-LV structural terms
# (the fast Hessian applies) and with attribute-free LV utility terms (the
# exp(W) exp(L eta) MNL applies).
tiny_variant <- function(tm, no_lvlv = FALSE, rowinv = FALSE) {
  d <- tm$desc
  if (no_lvlv) {
    d$struct$src_type[] <- 0L
    d$struct$src <- c(1L, 0L, 1L, 0L, 0L)
  }
  if (rowinv && !is.null(d$util)) d$util$col[d$util$lv >= 0] <- -1L
  tm$desc <- d
  tm$compiled <- compile_by_hand(d)
  tm
}

test_that("the fast kernels equal the reference for every indicator type, choice type and structure", {
  grid <- expand.grid(ind = names(.ind_codes), choice = names(.choice_codes),
                      lvlv = c(FALSE, TRUE), rowinv = c(FALSE, TRUE), stringsAsFactors = FALSE)
  for (i in seq_len(nrow(grid))) {
    tm <- tiny_variant(tiny_model(grid$ind[i], grid$choice[i], n_ind = 9L, n_draws = 7L, seed = 300 + i),
                       no_lvlv = !grid$lvlv[i], rowinv = grid$rowinv[i])
    expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm),
                           paste(grid[i, ], collapse = " "))
  }
  # all indicator types in one model, with availability and missing values
  tm <- tiny_variant(tiny_model(c("ordered_logit", "normal", "binary_probit", "ordered_probit"), "mnl",
                                n_ind = 12L, n_draws = 9L, ncat = 5L, seed = 41), no_lvlv = TRUE, rowinv = TRUE)
  expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), "mixed, availability")
})

test_that("draw blocks of any size: R = 1, R not a multiple of the block, R over the block (128)", {
  # blocks of at most 128 draws (engine_fast.c BLOCK_DRAWS): 129 and 300
  # draws take 2 and 3 blocks; with and without LV-on-LV terms
  for (R in c(1L, 5L, 33L, 70L, 129L, 300L)) {
    tm <- tiny_variant(tiny_model(c("ordered_logit", "binary_logit", "normal", "ordered_probit"), "mnl",
                                  n_ind = 5L, n_draws = R, seed = 50 + R), no_lvlv = TRUE, rowinv = TRUE)
    expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), paste("R =", R))
  }
  for (R in c(129L, 300L)) {
    tm <- tiny_variant(tiny_model(c("ordered_logit", "ordered_probit"), "probit",
                                  n_ind = 4L, n_draws = R, seed = 80 + R), no_lvlv = FALSE, rowinv = FALSE)
    expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), paste("LV-on-LV, R =", R))
  }
})

test_that("the Hessian fold's term pairs: a parameter in plain and LV terms, LV terms sharing an alternative", {
  # the fold pairs terms without an LV densely (dX' M0 dX), an LV term with
  # them through M1_k dX, and LV terms with each other one by one: a
  # parameter both in a term without an LV and in an LV term (its diagonal
  # cell takes both orientations), two LV terms of one LV in one
  # alternative, one LV parameter in two alternatives; attribute-free LV
  # terms (row-invariant MNL) and with an attribute; with and without
  # LV-on-LV terms
  for (lvlv in c(FALSE, TRUE))
    for (attr in c(FALSE, TRUE)) {
      tm <- tiny_model(c("ordered_logit", "ordered_probit", "normal"), "mnl", n_ind = 10L,
                       n_draws = 9L, seed = 90 + 2 * lvlv + attr)
      ut <- tm$desc$util
      b_price <- ut$par[1]; lam1 <- ut$par[2]; asc1 <- ut$par[3]; lam2 <- ut$par[5]; asc2 <- ut$par[6]
      tm$desc$util <- data.frame(
        alt = c(0L, 0L, 0L, 0L, 1L, 1L, 1L, 2L, 2L),
        par = c(b_price, lam1, b_price, lam2, asc1, lam1, lam2, asc2, b_price),
        col = c(0L, -1L, -1L, if (attr) 2L else -1L, -1L, -1L, if (attr) 1L else -1L, -1L, 3L),
        lv  = c(-1L, 0L, 1L, 1L, -1L, 0L, 1L, -1L, -1L))
      tm <- tiny_variant(tm, no_lvlv = !lvlv)
      expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm),
                             paste("fold pairs, LV-on-LV", lvlv, "attribute", attr))
    }
})

test_that("more draws than one block (R > 128: blocks of 75 or 100) equal the reference, without a choice model too", {
  # (the Hessian pass's blocks once advanced only with a choice model: a
  # measurement-only model with R > 128 read past its first block)
  for (choice in c("none", "mnl", "probit"))
    for (R in c(150L, 200L)) {
      tm <- tiny_variant(tiny_model(c("ordered_probit", "ordered_logit", "normal", "binary_probit"), choice,
                                    n_ind = 5L, n_draws = R, seed = 40 + R), no_lvlv = TRUE)
      expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), paste(choice, "R =", R))
    }
  # with LV-on-LV terms (each draw's LV blocks folded draw by draw)
  tl <- tiny_model(c("ordered_probit", "normal", "ordered_logit", "binary_logit"), "none", n_ind = 4L,
                   n_draws = 150L, seed = 47)
  expect_fast_equals_ref(tl$compiled, tl$draws, jitter_theta(tl), "LV-on-LV, no choice, R = 150")
})

test_that("LV-on-LV terms whose sources have no structural terms (no D2) equal the reference", {
  # LV 0 on LVs 1 and 2 and covariates, LVs 1 and 2 exogenous: d eta / d phi
  # varies by draw but d2 eta / d phi2 = 0, which the fast Hessian does not
  # form (engine_fast.c fd->d2_zero); the seed problem's structure
  for (ch in c("mnl", "probit")) {
    tm <- tiny_model(c("ordered_probit", "ordered_logit", "normal", "binary_logit"), ch,
                     n_ind = 9L, n_draws = 8L, seed = 120 + nchar(ch))
    st <- tm$desc$struct
    st$lv[] <- 0L
    st$src_type <- c(1L, 1L, 0L, 0L, 0L)
    st$src <- c(1L, 2L, 1L, 0L, 0L)
    tm$desc$struct <- st
    tm$compiled <- compile_by_hand(tm$desc)
    expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), paste("exogenous LV sources", ch))
  }
})

test_that("LV-on-LV models' draws of weight 0 leave no trace in the Hessian's block sums", {
  # (the Hessian pass folds the mixed block a block of draws at a time,
  # fold_block: a draw whose weight underflows to 0 must add nothing) one
  # draw in 10 puts LV 1 at 60, where its indicators' log-probabilities are
  # near -1800: weight exp(l_r - log L) = 0; two blocks of draws (R = 150)
  for (ch in c("mnl", "probit")) {
    tm <- tiny_model(c("ordered_probit", "ordered_logit"), ch, n_ind = 5L, n_draws = 150L,
                     seed = 140 + nchar(ch))
    u <- tm$draws$user
    u[, seq(3, 150, by = 10), 2] <- 60
    dr <- user_draws(u)
    th <- jitter_theta(tm)
    e <- engine_pair(tm$compiled, dr)
    l <- iclv:::.engine_eval(e$ref, th, FALSE, FALSE, FALSE)
    expect_true(is.finite(l$loglik))
    expect_fast_equals_ref(tm$compiled, dr, th, paste("weight-0 draws, LV-on-LV", ch))
  }
})

test_that("binary probit rows through the Hessian's block path: one alternative available, several blocks", {
  # (hess_block_probit: gV_0 and the LVs from the LL pass; a row with one
  # alternative available has gV = 0 and HV = 0) with and without LV-on-LV
  # terms, R = 7 and 150 (two blocks)
  for (lvlv in c(FALSE, TRUE))
    for (R in c(7L, 150L)) {
      tm <- tiny_variant(tiny_model(c("ordered_probit", "normal"), "probit", n_ind = 6L, n_draws = R,
                                    seed = 160 + R + lvlv), no_lvlv = !lvlv)
      nr <- nrow(tm$desc$rows)
      av <- matrix(1L, nr, 2L)
      av[seq(2, nr, by = 3), 2L] <- 0L
      tm$desc$avail <- av
      tm$desc$rows$y[seq(2, nr, by = 3)] <- 0L
      tm$compiled <- compile_by_hand(tm$desc)
      expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm),
                             paste("probit, one alternative in some rows, LV-on-LV", lvlv, "R =", R))
    }
})

test_that("row multipliers' Hessian from the weighted sums (scales as pseudo-terms), with LV-on-LV terms too", {
  # U = s_t V with s_t = sign mu (a free scale) or a sign: the Hessian pass
  # takes d U / d mu = sign (W + L eta) as terms of mu and adds d2 U / d mu
  # d theta from G0, G1 (iclv_fast_hessian). Individuals whose rows all
  # share one multiplier keep row-invariant LV coefficients (the block path
  # of fast MNL rows, flush_rows); the others mix mu, +1 and -1 rows.
  for (lvlv in c(FALSE, TRUE))
    for (rowinv in c(FALSE, TRUE))
      for (R in c(9L, 150L)) {
        tm <- tiny_variant(tiny_model(c("ordered_probit", "ordered_logit", "normal"), "mnl", n_ind = 12L,
                                      n_draws = R, seed = 180 + R + 2 * lvlv + rowinv),
                           no_lvlv = !lvlv, rowinv = rowinv)
        cc <- tm$compiled
        nr <- cc$n_rows
        mu <- cc$n_par # a new parameter, index P (0-based)
        cc$n_par <- cc$n_par + 1L
        ind <- tm$desc$rows$ind
        odd <- ind %% 2L == 1L
        cc$n_mult <- nr
        cc$mult_par <- ifelse(odd | seq_len(nr) %% 3L == 0L, mu, -1L)
        cc$mult_sign <- ifelse(odd, 1, ifelse(seq_len(nr) %% 2L == 0L, -1, 1))
        th <- c(jitter_theta(tm), 0.7)
        expect_fast_equals_ref(cc, tm$draws, th,
                               paste("row multipliers, LV-on-LV", lvlv, "row-invariant", rowinv, "R =", R))
        e <- iclv:::.engine_new(cc, tm$draws, n_threads = 1L)
        p0 <- iclv:::.engine_paths(e)
        iclv:::.engine_eval(e, th, TRUE, TRUE, TRUE)
        expect_equal(unname(iclv:::.engine_paths(e)[["hessian_individuals"]] - p0[["hessian_individuals"]]),
                     cc$n_ind, label = "fast Hessian")
      }
})

test_that("a long panel whose kept gV would pass the cap takes explicit MNL rows draw by draw in the Hessian", {
  # (EXBLK_MAX_DOUBLES, engine_fast.c: Tmax J R = 1800 x 3 x 200 > 2^20
  # doubles, so the LL pass keeps no gV and the Hessian pass runs
  # draw_choice per draw) with an LV x attribute term: no row-invariant LV
  # coefficients
  set.seed(190)
  tm <- tiny_variant(tiny_model("ordered_probit", "mnl", n_ind = 2L, n_draws = 200L, seed = 190),
                     no_lvlv = TRUE)
  d <- tm$desc
  nr <- 1803L
  d$rows <- data.frame(ind = c(rep(0L, 1800L), rep(1L, 3L)), y = sample(0:2, nr, replace = TRUE))
  d$X <- matrix(round(stats::rnorm(nr * 4), 2), nr, 4)
  d$avail <- NULL
  tm$desc <- d
  tm$compiled <- compile_by_hand(d)
  expect_gt(nr * 3 * 200, 2^20)
  expect_fast_equals_ref(tm$compiled, tm$draws, jitter_theta(tm), "long panel over the kept-gV cap")
})

test_that("the tails hand over to the reference links: huge utilities, LV effects and thresholds", {
  base <- tiny_variant(tiny_model(c("ordered_logit", "ordered_logit", "ordered_logit", "binary_logit"), "mnl",
                                  n_ind = 8L, n_draws = 6L, ncat = 4L, seed = 61), no_lvlv = TRUE, rowinv = TRUE)
  ut <- base$desc$util
  lam <- ut$par[ut$lv >= 0] + 1L  # LV coefficients (1-based)
  ascs <- ut$par[ut$col < 0 & ut$lv < 0] + 1L
  thr1 <- base$desc$indicators[[1]]$thr + 1L + 0:2
  cases <- list(
    # utilities 300 apart: exp(W - max W) would underflow the fast product form
    asc = function(th) { th[ascs[1]] <- 300; th },
    # an LV effect so large that L eta spans more than 200 between alternatives
    lambda = function(th) { th[lam[1]] <- 150; th },
    # ordered-logit thresholds beyond +-150 and a huge loading
    thresholds = function(th) { th[thr1] <- c(-200, 0, 180); th },
    loading = function(th) { th[base$desc$indicators[[2]]$load_par + 1L] <- 400; th }
  )
  # at these far-tail points both paths lose digits to cancellation (the
  # reference too: its a = tau - s carries the rounding of s = 400 eta), so
  # they are compared to 1e-10 (measured: 1.2e-11 for the Hessian with the
  # loading of 400, below 1e-14 elsewhere)
  for (nm in names(cases)) {
    th <- cases[[nm]](base$theta)
    expect_fast_equals_ref(base$compiled, base$draws, th, nm, tol = 1e-10)
  }
})

test_that("explicit MNL rows (LV terms with attributes) are vectorised, and hand their tails to the reference", {
  counts <- function(e, th) {
    p0 <- iclv:::.engine_paths(e)
    iclv:::.engine_eval(e, th, TRUE)
    iclv:::.engine_paths(e) - p0
  }
  # rowinv = FALSE: the LV coefficients differ between rows (an attribute
  # multiplies the LV), so every row forms its own V = W + L eta
  tm <- tiny_variant(tiny_model(rep("ordered_probit", 4L), "mnl", n_ind = 8L, n_draws = 23L, seed = 64),
                     no_lvlv = TRUE, rowinv = FALSE)
  th <- jitter_theta(tm, 0.1)
  d <- counts(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th)
  expect_equal(unname(d["rows_vectorised"]), tm$compiled$n_rows * 23)
  expect_fast_equals_ref(tm$compiled, tm$draws, th, "explicit MNL rows")
  # a chosen alternative 300 below the best: its draws through the reference link
  ut <- tm$desc$util
  th2 <- th
  th2[ut$par[ut$col < 0 & ut$lv < 0][1] + 1L] <- 300
  d <- counts(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th2)
  expect_gt(unname(d["rows_reference"]), 0)
  expect_equal(unname(d["rows_vectorised"] + d["rows_reference"]), tm$compiled$n_rows * 23)
  expect_fast_equals_ref(tm$compiled, tm$draws, th2, "explicit MNL rows, far tail", tol = 1e-10)
  # a non-finite utility (an LV effect of 1e308 overflows V) ends as the
  # reference's does: the same error, naming the same individual
  th3 <- th
  th3[ut$par[ut$lv >= 0][1] + 1L] <- 1e308
  e <- engine_pair(tm$compiled, tm$draws)
  run <- function(x) tryCatch(iclv:::.engine_eval(x, th3, TRUE), error = function(err) conditionMessage(err))
  r3 <- run(e$ref)
  f3 <- run(e$fast)
  expect_type(r3, "character")
  expect_identical(f3, r3)
})

test_that("probit tails hand over to the reference: deep tails, straddling masses, probabilities near 1", {
  base <- tiny_variant(tiny_model(rep("ordered_probit", 4L), "probit", n_ind = 8L, n_draws = 6L,
                                  ncat = 4L, seed = 62), no_lvlv = TRUE)
  ut <- base$desc$util
  asc <- ut$par[ut$col < 0 & ut$lv < 0][1] + 1L
  thr1 <- base$desc$indicators[[1]]$thr + 1L + 0:2
  lp2 <- base$desc$indicators[[2]]$load_par[1] + 1L
  cases <- list(
    # choice probabilities of ~1 and ~e^-1250 (x beyond -35: the reference)
    asc = function(th) { th[asc] <- 50; th },
    # a middle category between thresholds 0.002 apart (straddling tails of
    # ~0.998: the reference), and end categories with probability near 1
    narrow = function(th) { th[thr1] <- c(-6, -0.001, 0.001); th },
    # thresholds far in the tails (Cody's third range and beyond)
    far = function(th) { th[thr1] <- c(-60, -20, 40); th },
    loading = function(th) { th[lp2] <- 60; th }
  )
  for (nm in names(cases)) {
    th <- cases[[nm]](base$theta)
    expect_fast_equals_ref(base$compiled, base$draws, th, paste("probit", nm), tol = 1e-10)
  }
  # and a tight check where nothing is extreme
  expect_fast_equals_ref(base$compiled, base$draws, jitter_theta(base), "probit moderate")
})

test_that("the fast path is taken: the kernels' path counters", {
  counts <- function(e, th, ...) {
    p0 <- iclv:::.engine_paths(e)
    iclv:::.engine_eval(e, th, ...)
    iclv:::.engine_paths(e) - p0
  }
  # ordered-probit indicators and a binary-probit choice (the seed problem's
  # links): every (observation or row, draw) term in the fast forms, nearly
  # all vectorised (a probability within 2^-12 of 1 takes the scalar log1p)
  tm <- tiny_variant(tiny_model(rep("ordered_probit", 4L), "probit", n_ind = 10L, n_draws = 37L,
                                seed = 81), no_lvlv = TRUE)
  th <- jitter_theta(tm, 0.1)
  e <- engine_pair(tm$compiled, tm$draws, n_threads = 2L)
  R <- 37
  d <- counts(e$fast, th, TRUE)
  expect_equal(unname(iclv:::.engine_paths(e$fast)["reference"]), 0)
  expect_equal(unname(d["individuals"]), tm$compiled$n_ind)
  expect_equal(unname(d["obs_vectorised"] + d["obs_scalar"]), tm$compiled$n_obs * R)
  expect_equal(unname(d["rows_vectorised"] + d["rows_scalar"]), tm$compiled$n_rows * R)
  expect_gt(unname(d["obs_vectorised"]), 0.95 * tm$compiled$n_obs * R)
  expect_gt(unname(d["rows_vectorised"]), 0.95 * tm$compiled$n_rows * R)
  expect_equal(unname(d[c("obs_reference", "rows_reference")]), c(0, 0))
  # the Hessian of a model without LV-on-LV terms goes through the fast Hessian
  d <- counts(e$fast, th, TRUE, TRUE, TRUE)
  expect_equal(unname(d["hessian_individuals"]), tm$compiled$n_ind)
  # and so does one with LV-on-LV terms (each draw's LV blocks folded with
  # its own d eta / d phi), equal to the reference
  tl <- tiny_model(rep("ordered_probit", 4L), "probit", n_ind = 6L, n_draws = 9L, seed = 84)
  el <- iclv:::.engine_new(tl$compiled, tl$draws, n_threads = 1L)
  d <- counts(el, tl$theta, TRUE, TRUE, TRUE)
  expect_equal(unname(d["hessian_individuals"]), tl$compiled$n_ind)
  expect_fast_equals_ref(tl$compiled, tl$draws, jitter_theta(tl), "LV-on-LV, fast Hessian")
  # the reference engine never enters the kernels
  d <- counts(e$ref, th, TRUE, TRUE, TRUE)
  expect_equal(unname(iclv:::.engine_paths(e$ref)["reference"]), 1)
  expect_true(all(d == 0))
  # ordered logit and the attribute-free MNL: vectorised too
  tm <- tiny_variant(tiny_model(rep("ordered_logit", 4L), "mnl", n_ind = 10L, n_draws = 37L, seed = 82),
                     no_lvlv = TRUE, rowinv = TRUE)
  d <- counts(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), jitter_theta(tm, 0.1), TRUE)
  expect_equal(unname(d["obs_vectorised"]), tm$compiled$n_obs * R)
  expect_equal(unname(d["rows_vectorised"]), tm$compiled$n_rows * R)
  # a far-tail term is counted where it went
  tm <- tiny_variant(tiny_model(rep("ordered_probit", 4L), "probit", n_ind = 4L, n_draws = 5L,
                                seed = 83), no_lvlv = TRUE)
  th <- tm$theta
  th[tm$desc$util$par[tm$desc$util$col < 0 & tm$desc$util$lv < 0][1] + 1L] <- 50
  d <- counts(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th, TRUE)
  expect_gt(unname(d["rows_reference"]) + unname(d["rows_scalar"]), 0)
  expect_equal(sum(d[c("rows_vectorised", "rows_scalar", "rows_reference")]), tm$compiled$n_rows * 5)
})

test_that("fast results are bit-identical with 1 and 2 threads (fast Hessian model)", {
  # the fast MNL rows; and binary probit rows with LV-on-LV terms (the
  # Hessian's block paths: hess_block_probit, fold_block), over two blocks
  # of draws
  for (v in 1:2) {
    tm <- if (v == 1)
      tiny_variant(tiny_model(c("ordered_logit", "ordered_probit", "normal", "binary_probit"), "mnl",
                              n_ind = 40L, n_draws = 19L, seed = 71), no_lvlv = TRUE, rowinv = TRUE)
    else tiny_model(c("ordered_probit", "ordered_logit", "normal"), "probit", n_ind = 40L, n_draws = 150L,
                    seed = 72)
    th <- jitter_theta(tm)
    o1 <- iclv:::.engine_eval(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L), th, TRUE, TRUE, TRUE)
    o2 <- iclv:::.engine_eval(iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 2L), th, TRUE, TRUE, TRUE)
    expect_identical(o1$loglik_i, o2$loglik_i)
    expect_identical(o1$gradient, o2$gradient)
    expect_identical(o1$scores, o2$scores)
    expect_identical(o1$hessian, o2$hessian)
  }
})

test_that("a model built by iclv_model() (Halton draws) matches the reference", {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = 60, n_tasks = 4, seed = 3)
  comp <- iclv:::.iclv_compile(m, d)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 40), comp$n_ind, length(comp$lvs))
  th <- iclv:::.params_full(one_lv_mnl_truth, comp$partable, "params")
  expect_fast_equals_ref(comp$c, spec, th, "one-LV MNL")
})

# Speed is measured by bench/bench_cpu_drug.R and bench/compare_engines.R
# (figures in bench/RESULTS.md), never by a timed test.

test_that("row multipliers (scales, best-worst) take the fast LL, score and Hessian passes, equal to the reference", {
  counts <- function(e, th, ...) {
    p0 <- iclv:::.engine_paths(e)
    iclv:::.engine_eval(e, th, ...)
    iclv:::.engine_paths(e) - p0
  }
  set.seed(7)
  n <- 14L; tk <- 4L; nr <- n * tk
  d <- data.frame(ID = rep(seq_len(n), each = tk), age = rep(stats::rnorm(n), each = tk))
  for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tk)
  for (a in c("x_a", "x_b", "x_c")) d[[a]] <- stats::rnorm(nr)
  d$av_c <- rep_len(c(1L, 0L, 1L), nr)
  d$ch <- sample(c("a", "b", "c"), nr, TRUE)
  d$ch[d$av_c == 0L & d$ch == "c"] <- "b"
  # RP and SP rows; the first 5 individuals have SP rows only (one
  # multiplier in every row: the LV coefficients stay row-invariant)
  sp <- rep(c(FALSE, FALSE, TRUE, TRUE), n) | d$ID <= 5L
  d$ch_rp <- ifelse(sp, NA, d$ch)
  d$ch_sp <- ifelse(sp, d$ch, NA)
  d$worst <- ifelse(d$ch == "a", "b", "a")
  d$worst[seq_len(nr) %% 5L == 0L] <- NA
  ut <- list(a = "asc_a + b_x * x_a + l_att * att", b = "asc_b + b_x * x_b", c = "b_x * x_c + l_att * att")
  ut_lvattr <- list(a = "asc_a + b_x * x_a + l_att * att * x_a", b = "asc_b + b_x * x_b",
                    c = "b_x * x_c + l_att * att")
  mk <- function(choice) iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = choice,
                                    id = "ID", categories = 3)
  models <- list(
    # RP and SP parts, the SP rows scaled
    parts = mk(list(rp = iclv_choice("mnl", "ch_rp", ut, available = list(c = "av_c")),
                    sp = iclv_choice("mnl", "ch_sp", ut, available = list(c = "av_c"), scale = "mu"))),
    # best-worst: the worst stage's rows at -mu_w
    bestworst = mk(iclv_choice("bestworst", c("ch", "worst"), ut, available = list(c = "av_c"),
                               worst_scale = "mu_w")),
    # an LV term with an attribute (no row-invariant coefficients), scaled
    parts_lvattr = mk(list(rp = iclv_choice("mnl", "ch_rp", ut_lvattr, available = list(c = "av_c")),
                           sp = iclv_choice("mnl", "ch_sp", ut_lvattr, available = list(c = "av_c"),
                                        scale = "mu"))))
  for (nm in names(models)) {
    comp <- iclv:::.iclv_compile(models[[nm]], d)
    th <- setNames(rep(0, nrow(comp$partable)), comp$partable$name)
    th[grepl("^zeta_", names(th))] <- c(1, 0.8, 1.2)
    th[grepl("^tau_", names(th))] <- c(-0.7, 0.8, -0.5, 0.6, -0.9, 0.4)
    vals <- c(gamma_att_age = 0.4, asc_a = 0.3, asc_b = -0.2, b_x = -0.8, l_att = 0.6,
              mu = 0.7, mu_w = 0.55, sp_asc_a = 0.1, sp_asc_b = -0.3, rp_asc_a = 0.2, rp_asc_b = 0.1)
    hit <- intersect(names(vals), names(th))
    th[hit] <- vals[hit]
    th[is.na(th)] <- 0
    dr <- random_draws(comp$n_ind, 9L, 1L)
    expect_fast_equals_ref(comp$c, dr, unname(th), nm)
    e <- engine_pair(comp$c, dr)
    cnt <- counts(e$fast, unname(th), TRUE)
    expect_equal(unname(cnt["individuals"]), comp$n_ind, label = paste(nm, "individuals on the fast pass"))
    # the Hessian too: the fast Hessian pass (the scales as pseudo-terms)
    cnt <- counts(e$fast, unname(th), TRUE, TRUE, TRUE)
    expect_equal(unname(cnt["hessian_individuals"]), comp$n_ind, label = paste(nm, "fast Hessian"))
    # at a scale of exactly 1 (its start value) too
    th1 <- th
    th1[intersect(c("mu", "mu_w"), names(th1))] <- 1
    expect_fast_equals_ref(comp$c, dr, unname(th1), paste(nm, "scale 1"))
  }
})
