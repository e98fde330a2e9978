# .iclv_compile(): the flat arrays of src/iclv_model.h, checked by hand.

# 3 individuals ("b", "a", "c": not sorted), 2 rows each. LVs g and f (g is
# defined first but depends on f, so lv_order is f, g). q2 is a row-level
# binary indicator loading on both LVs, z a normal indicator, q1 ordered
# probit with categories from the data. C is unavailable in row 3, where
# its attribute pC is NA.
hand_model <- function(...) {
  iclv_model(
    measurement = "g =~ q2 + z
                   f =~ q1 + q2",
    structural = "g ~ x + f",
    indicators = list(q2 = "binary_probit", z = "normal"),
    indicator_level = c(q2 = "row"),
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      A = "asc_A + b_p * pA + l_f * f",
      B = "asc_B + b_p * pB + b_pf * g * pB",
      C = "b_p * pC"), available = list(C = "avC")),
    id = "ID", ...)
}
hand_data <- function() {
  data.frame(
    ID = c("b", "b", "a", "a", "c", "c"),
    q1 = c(2, 2, 1, NA, 3, 3),
    q2 = c(1, 0, NA, NA, 0, 1),
    z = c(0.5, 0.5, 1.5, 1.5, NA, NA),
    x = c(1, 1, 2, 2, 3, 3),
    pA = 1:6, pB = (1:6) * 10, pC = c(7, 8, NA, 9, 10, 11),
    avC = c(1, 1, 0, 1, 1, 1),
    ch = c("A", "B", "A", "C", "B", "A"),
    stringsAsFactors = FALSE)
}

test_that("the tiny data set compiles to the hand-computed arrays", {
  cmp <- iclv:::.iclv_compile(hand_model(), hand_data())
  expect_s3_class(cmp, "iclv_compiled")
  cc <- cmp$c
  expect_equal(cmp$partable$name, c("zeta_g_q2", "zeta_f_q2", "alpha_q2", "zeta_z", "alpha_z", "sigma_z",
                                    "zeta_q1", "tau_q1_1", "tau_q1_2", "gamma_g_x", "gamma_g_f",
                                    "asc_A", "b_p", "l_f", "asc_B", "b_pf"))
  expected <- list(
    n_ind = 3L, n_lv = 2L, n_par = 16L, n_cov = 1L, n_indic = 3L, n_obs = 9L, n_rows = 6L,
    n_alt = 3L, n_xcol = 3L, n_avail = 18L, choice_type = 1L,
    lv_order = c(1L, 0L),
    st_ptr = c(0L, 2L, 2L), st_par = c(9L, 10L), st_src_type = c(0L, 1L), st_src = c(0L, 1L),
    cov = c(1, 2, 3),
    ind_type = c(4L, 3L, 1L), ind_ncat = c(2L, 0L, 3L), ind_thr = c(-1L, -1L, 7L),
    ind_icpt = c(2L, 4L, -1L), ind_sd = c(-1L, 5L, -1L),
    ind_load_ptr = c(0L, 2L, 3L, 4L), ind_load_lv = c(0L, 1L, 0L, 1L), ind_load_par = c(0L, 1L, 3L, 6L),
    obs_ptr = c(0L, 4L, 6L, 9L),
    obs_ind = c(0L, 0L, 1L, 2L, 1L, 2L, 0L, 0L, 2L),
    obs_val = c(1, 0, 0.5, 2, 1.5, 1, 0, 1, 3),
    row_ptr = c(0L, 2L, 4L, 6L),
    y = c(0L, 1L, 0L, 2L, 1L, 0L),
    avail = c(1L, 1L, 1L, 1L, 1L, 1L, 1L, 1L, 0L, 1L, 1L, 1L, 1L, 1L, 1L, 1L, 1L, 1L),
    X = c(1, 10, 7, 2, 20, 8, 3, 30, 0, 4, 40, 9, 5, 50, 10, 6, 60, 11),
    ut_ptr = c(0L, 3L, 6L, 7L),
    ut_par = c(11L, 12L, 13L, 14L, 12L, 15L, 12L),
    ut_col = c(-1L, 0L, -1L, -1L, 1L, 1L, 2L),
    ut_lv = c(-1L, -1L, 1L, -1L, -1L, 0L, -1L))
  expect_setequal(names(cc), names(expected))
  for (nm in names(expected)) expect_identical(cc[[nm]], expected[[nm]], label = nm)
  expect_equal(cmp$ids, c("b", "a", "c"))
  expect_equal(cmp$n_ind, 3L)
  expect_equal(cmp$rows, 1:6)
  expect_equal(cmp$alternatives, c("A", "B", "C"))
  expect_equal(cmp$lvs, c("g", "f"))
  expect_equal(cmp$indicators, c("q2", "z", "q1"))
  expect_equal(cmp$covariates, "x")
  expect_equal(cmp$thresholds, list(q1 = c(8L, 9L)))
  expect_equal(cmp$positive, 6L)
  expect_equal(cmp$n_missing, c(q2 = 2L, z = 1L, q1 = 0L))
  expect_equal(cmp$xcols, c("pA", "pB", "pC"))
})

test_that("data-driven starting values", {
  cmp <- iclv:::.iclv_compile(hand_model(), hand_data())
  st <- stats::setNames(cmp$partable$start, cmp$partable$name)
  # q1 per individual: 2, 1, 3 -> cumulative proportions 1/3, 2/3
  expect_equal(st[["tau_q1_1"]], qnorm(1 / 3))
  expect_equal(st[["tau_q1_2"]], qnorm(2 / 3))
  expect_equal(st[["alpha_z"]], 1)
  expect_equal(st[["sigma_z"]], sd(c(0.5, 1.5)))
  expect_equal(st[["alpha_q2"]], qnorm(0.5))
  expect_equal(st[["zeta_q1"]], 1)
  expect_equal(st[["zeta_g_q2"]], 0.5)
  expect_equal(st[["zeta_z"]], 0.5 * sd(c(0.5, 1.5)))
  expect_equal(unname(st[c("gamma_g_x", "asc_A", "b_pf")]), c(0, 0, 0))
  # logit thresholds use qlogis; user values override; unobserved categories are nudged
  m <- iclv_model("f =~ y", indicators = "ordered_logit", id = "ID", categories = 5,
                  start = c(tau_y_1 = -3))
  d <- data.frame(ID = 1:4, y = c(1, 2, 2, 3))
  pt <- iclv:::.iclv_compile(m, d)$partable
  tau <- pt$start[pt$role == "threshold"]
  expect_equal(tau[1], -3)
  expect_equal(tau[2], qlogis(3 / 4))
  expect_true(all(diff(tau) > 0))
  # fixed thresholds that do not increase are an error
  m2 <- iclv_model("f =~ y", id = "ID", fixed = c(tau_y_1 = 1, tau_y_2 = 0))
  expect_error(iclv:::.iclv_compile(m2, d), "strictly increasing", class = "iclv_error_spec")
  # fixed names for thresholds the data do not have
  m3 <- iclv_model("f =~ y", id = "ID", fixed = c(tau_y_7 = 1))
  expect_error(iclv:::.iclv_compile(m3, d), "tau_y_7", class = "iclv_error_spec")
})

test_that("every row counts once: choice rows and indicator observations", {
  sp <- iclv_seed_problem(n = 25, n_tasks = 4, seed = 3, p_missing = 0.2)
  d <- sp$data
  cmp <- iclv:::.iclv_compile(sp$model, d)
  cc <- cmp$c
  expect_equal(cc$n_rows, nrow(d))
  expect_equal(cmp$rows, seq_len(nrow(d)))
  expect_equal(diff(cc$row_ptr), as.vector(table(d$ID)))
  expect_equal(cc$y, as.integer(ifelse(d$choice == "yes", 0L, 1L)))
  # individual-level indicators: one observation per individual with a value
  first <- d[!duplicated(d$ID), ]
  nonmiss <- vapply(sp$model$indicators, function(i) sum(!is.na(first[[i]])), numeric(1))
  expect_true(sum(is.na(first[sp$model$indicators])) > 0)
  expect_equal(cmp$n_obs_indicator, setNames(as.integer(nonmiss), sp$model$indicators))
  expect_equal(cmp$n_missing, setNames(as.integer(25 - nonmiss), sp$model$indicators))
  expect_equal(cc$n_obs, as.integer(sum(nonmiss)))
  expect_equal(as.vector(tabulate(cc$obs_ind + 1L, 38)), as.vector(nonmiss))
  # X holds the attribute columns in order, row-major
  expect_equal(cc$X, as.vector(t(as.matrix(d[c("a1", "a2", "a3")]))))
  expect_equal(cc$cov, as.vector(t(as.matrix(first[c("x1", "x2", "x3")]))))
})

test_that("row-level indicators give one observation per non-missing row", {
  m <- iclv_model("f =~ y", id = "ID", indicator_level = "row", categories = 3)
  d <- data.frame(ID = c(1, 1, 1, 2, 2), y = c(1, NA, 3, 2, 2))
  cmp <- iclv:::.iclv_compile(m, d)
  expect_identical(cmp$c$obs_ptr, c(0L, 2L, 4L))
  expect_identical(cmp$c$obs_val, c(1, 3, 2, 2))
  expect_identical(cmp$n_missing, c(y = 1L))
})

test_that("a measurement-only model has no choice arrays", {
  m <- iclv_model("f =~ y1 + y2", id = "ID")
  d <- data.frame(ID = c(1, 1, 2, 3), y1 = c(1, 1, 2, 2), y2 = c(2, 2, NA, 1))
  cmp <- iclv:::.iclv_compile(m, d)
  cc <- cmp$c
  expect_identical(cc$choice_type, 0L)
  expect_identical(cc$n_alt, 0L)
  expect_identical(cc$n_rows, 0L)
  expect_identical(cc$row_ptr, c(0L, 0L, 0L, 0L))
  expect_identical(cc$ut_ptr, 0L)
  expect_identical(cc$X, double())
  expect_identical(cc$avail, integer())
  expect_identical(cc$obs_ptr, c(0L, 2L, 3L, 5L))
  expect_identical(cmp$n_missing, c(y1 = 0L, y2 = 1L))
  expect_identical(cmp$rows, integer())
})

test_that("choices given as positions; no availability gives n_avail = 0", {
  m <- iclv_model("f =~ y", id = "ID", choice = iclv_choice("mnl", "ch",
                  list(A = "asc + l * f", B = "0", C = "asc2")))
  d <- data.frame(ID = 1:4, y = c(1, 2, 1, 2), ch = c(3, 1, 2, 3))
  cc <- iclv:::.iclv_compile(m, d)$c
  expect_identical(cc$y, c(2L, 0L, 1L, 2L))
  expect_identical(cc$n_avail, 0L)
  expect_identical(cc$avail, integer())
  expect_identical(cc$n_xcol, 0L)
  expect_identical(cc$ut_col, c(-1L, -1L, -1L))
  expect_identical(cc$ut_lv, c(-1L, 0L, -1L))
  expect_identical(cc$choice_type, 1L)
  expect_true(all(vapply(cc, function(v) is.integer(v) || is.double(v), logical(1))))
})

test_that("binary probit choice compiles with choice_type 2", {
  m <- iclv_model("f =~ y", id = "ID", choice = iclv_choice("probit", "buy",
                  list(yes = "asc + b * p + l * f", no = "0")))
  d <- data.frame(ID = c(1, 1, 2, 2), y = c(1, 1, 2, 2), p = c(0.1, 0.2, 0.3, 0.4),
                  buy = factor(c("yes", "no", "no", "yes")))
  cc <- iclv:::.iclv_compile(m, d)$c
  expect_identical(cc$choice_type, 2L)
  expect_identical(cc$y, c(0L, 1L, 1L, 0L))
  expect_identical(cc$ut_ptr, c(0L, 3L, 3L))
})

test_that("the compiled arrays give the C engine the likelihood of a direct R computation", {
  # An independent likelihood from the raw data (not from the arrays), with
  # user draws, against the CPU engine fed with the compiled list.
  m <- hand_model()
  d <- hand_data()
  cmp <- iclv:::.iclv_compile(m, d)
  pt <- cmp$partable
  set.seed(1)
  th <- stats::setNames(pt$start + rnorm(nrow(pt), 0, 0.2), pt$name)
  th[c("tau_q1_1", "tau_q1_2", "sigma_z")] <- c(-0.4, 0.6, 0.8)
  R <- 7
  e <- array(rnorm(3 * R * 2), c(3, R, 2))   # dimension k = LV index: g, f
  spec <- list(type = 0L, n_draws = as.integer(R), n_dim = 2L, n_ind = 3L, seed = 0, skip = 0, user = e)
  eng <- tryCatch(iclv:::.engine_new(cmp$c, spec, "cpu"), error = function(err) NULL)
  skip_if(is.null(eng), "the CPU engine is not available in this build")
  on.exit(iclv:::.engine_release(eng))
  ll_c <- iclv:::.engine_eval(eng, th, gradient = FALSE)$loglik
  ll <- 0
  for (n in 1:3) {
    rows <- which(d$ID == cmp$ids[n])
    lr <- numeric(R)
    for (r in 1:R) {
      f <- e[n, r, 2]
      g <- e[n, r, 1] + th[["gamma_g_x"]] * d$x[rows[1]] + th[["gamma_g_f"]] * f
      l <- 0
      for (i in rows) if (!is.na(d$q2[i])) {
        a <- th[["alpha_q2"]] + th[["zeta_g_q2"]] * g + th[["zeta_f_q2"]] * f
        l <- l + pnorm(if (d$q2[i] == 1) a else -a, log.p = TRUE)
      }
      z <- stats::na.omit(d$z[rows])[1]
      if (!is.na(z)) l <- l + dnorm(z, th[["alpha_z"]] + th[["zeta_z"]] * g, th[["sigma_z"]], log = TRUE)
      q <- stats::na.omit(d$q1[rows])[1]
      cut <- c(-Inf, th[["tau_q1_1"]], th[["tau_q1_2"]], Inf)
      l <- l + log(pnorm(cut[q + 1] - th[["zeta_q1"]] * f) - pnorm(cut[q] - th[["zeta_q1"]] * f))
      for (i in rows) {
        V <- c(A = th[["asc_A"]] + th[["b_p"]] * d$pA[i] + th[["l_f"]] * f,
               B = th[["asc_B"]] + th[["b_p"]] * d$pB[i] + th[["b_pf"]] * g * d$pB[i],
               C = th[["b_p"]] * d$pC[i])
        V <- V[c(TRUE, TRUE, d$avC[i] == 1)]
        l <- l + V[[d$ch[i]]] - log(sum(exp(V)))
      }
      lr[r] <- l
    }
    ll <- ll + log(mean(exp(lr)))
  }
  expect_equal(ll_c, ll, tolerance = 1e-10)
})
