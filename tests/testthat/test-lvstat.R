# lavaan's `~~` and `~ 1` on latent variables (R/lvstat.R): a free
# structural standard deviation and an LV intercept, against a likelihood
# written by hand from the data frame, the pure-R reference on the compiled
# list, finite differences, the default normalisation, and recovery.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# Two LVs: att with a free s.d.; nrm with an intercept and a free s.d. and
# att in its structural equation (an LV source: the second-derivative path);
# their errors correlated (a Cholesky element on att's draw).
lvs_model <- function(extra = "att ~~ att\n nrm ~ 1\n nrm ~~ nrm\n nrm ~~ att", where = "measurement") {
  meas <- "att =~ q1 + q2 + q3\n nrm =~ q4 + q5"
  st <- "att ~ age\n nrm ~ att + age"
  if (where == "measurement") meas <- paste(meas, extra, sep = "\n") else st <- paste(st, extra, sep = "\n")
  iclv_model(meas, structural = st,
    choice = iclv_choice("mnl", "ch", list(
      a = "asc_a + b_price * price_a + l_att * att",
      b = "asc_b + b_price * price_b + l_nrm * nrm",
      c = "0")),
    id = "ID", categories = 3)
}
lvs_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
               zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, zeta_q4 = 0.9, tau_q4_1 = -0.6, tau_q4_2 = 0.7,
               zeta_q5 = 1.1, tau_q5_1 = -0.8, tau_q5_2 = 0.4, gamma_att_age = 0.5, gamma_nrm_att = 0.4,
               gamma_nrm_age = -0.3, sigma_att = 1.3, alpha_nrm = 0.4, sigma_nrm = 0.7,
               chol_nrm_att = 0.6, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3, l_nrm = 0.5)

# The simulated LL from the data frame, independent of R/compile.R:
# att = sigma_att e1 + g age; nrm = alpha + sigma_nrm e2 + chol e1 + g1 att + g2 age.
lvs_hand_loglik <- function(d, p, user) {
  ids <- unique(d$ID)
  R <- dim(user)[2]
  sum(vapply(seq_along(ids), function(n) {
    rows <- d[d$ID == ids[n], ]
    l <- vapply(seq_len(R), function(r) {
      att <- p[["sigma_att"]] * user[n, r, 1] + p[["gamma_att_age"]] * rows$age[1]
      nrm <- p[["alpha_nrm"]] + p[["sigma_nrm"]] * user[n, r, 2] + p[["chol_nrm_att"]] * user[n, r, 1] +
        p[["gamma_nrm_att"]] * att +
        p[["gamma_nrm_age"]] * rows$age[1]
      li <- 0
      for (q in 1:5) {
        y <- rows[[paste0("q", q)]][1]
        tau <- c(-Inf, p[[sprintf("tau_q%d_1", q)]], p[[sprintf("tau_q%d_2", q)]], Inf)
        s <- p[[paste0("zeta_q", q)]] * (if (q <= 3) att else nrm)
        li <- li + log(pnorm(tau[y + 1] - s) - pnorm(tau[y] - s))
      }
      Va <- p[["asc_a"]] + p[["b_price"]] * rows$price_a + p[["l_att"]] * att
      Vb <- p[["asc_b"]] + p[["b_price"]] * rows$price_b + p[["l_nrm"]] * nrm
      V <- cbind(Va, Vb, 0)
      y <- match(rows$ch, c("a", "b", "c"))
      li + sum(V[cbind(seq_along(y), y)] - log(rowSums(exp(V))))
    }, numeric(1))
    m <- max(l)
    m + log(mean(exp(l - m)))
  }, numeric(1)))
}

test_that("the parameter table has lavaan's rows for ~~ and ~ 1, in either part of the syntax", {
  m <- lvs_model()
  pt <- m$partable
  r <- pt[pt$name %in% c("sigma_att", "alpha_nrm", "sigma_nrm", "chol_nrm_att"), ]
  expect_identical(r$name, c("sigma_att", "alpha_nrm", "sigma_nrm", "chol_nrm_att"))
  expect_identical(r$op, c("~~", "~1", "~~", "~~"))
  expect_identical(r$lhs, c("att", "nrm", "nrm", "att"))
  expect_identical(r$rhs, c("att", "", "nrm", "nrm"))
  expect_identical(r$role, c("sd", "intercept", "sd", "chol"))
  expect_identical(r$block, rep("structural", 4))
  expect_identical(r$start, c(1, 0, 1, 0))
  # written either way round
  expect_identical(lvs_model("att ~~ att\n nrm ~ 1\n nrm ~~ nrm\n att ~~ nrm")$partable, pt)
  m2 <- lvs_model(where = "structural")
  expect_identical(m2$partable, m$partable)
  expect_identical(m$lv_var, c("att", "nrm"))
  expect_identical(m$lv_icpt, "nrm")
  # sigma is positive: the optimizer works on its log
  d <- iclv_simulate(m, lvs_truth, n = 10, n_tasks = 2, seed = 1)
  cmp <- iclv:::.iclv_compile(m, d)
  expect_true(all(match(c("sigma_att", "sigma_nrm"), cmp$partable$name) %in% cmp$positive))
  expect_error(iclv_loglik(m, d, replace(lvs_truth, "sigma_att", -1), draws = iclv_draws("halton", 5)),
               class = "iclv_error_input", regexp = "sigma_att")
})

test_that("the log-likelihood equals the one written by hand and the R reference", {
  m <- lvs_model()
  d <- iclv_simulate(m, lvs_truth, n = 20, n_tasks = 3, seed = 2)
  set.seed(5)
  user <- array(rnorm(20 * 9 * 2), c(20, 9, 2), dimnames = list(NULL, NULL, c("att", "nrm")))
  cmp <- iclv:::.iclv_compile(m, d)
  for (k in 1:3) {
    p <- lvs_truth + if (k == 1) 0 else stats::runif(length(lvs_truth), -0.2, 0.2)
    ll <- iclv_loglik(m, d, p, draws = user)$loglik
    expect_lt(abs(ll - lvs_hand_loglik(d, p, user)), 1e-10)
    expect_lt(abs(ll - ref_loglik(cmp$c, p[cmp$partable$name], unname(user))$loglik), 1e-10)
  }
  # sigma = 1 and alpha = 0 are the default model, bit for bit
  m0 <- iclv_model("att =~ q1 + q2 + q3\n nrm =~ q4 + q5", structural = "att ~ age\n nrm ~ att + age",
                   choice = m$choice, id = "ID", categories = 3)
  p1 <- replace(lvs_truth, c("sigma_att", "sigma_nrm", "alpha_nrm", "chol_nrm_att"), c(1, 1, 0, 0))
  l1 <- iclv_loglik(m, d, p1, draws = user)
  l0 <- iclv_loglik(m0, d, p1[m0$partable$name], draws = user)
  expect_identical(l1$loglik, l0$loglik)
  # (the gradient takes another path of the fast engine: a draw source makes
  # d eta / d phi depend on the draw)
  expect_equal(l1$gradient[names(l0$gradient)], l0$gradient, tolerance = 1e-13)
})

test_that("gradient and Hessian match finite differences, on both CPU paths", {
  m <- lvs_model()
  d <- iclv_simulate(m, lvs_truth, n = 15, n_tasks = 3, seed = 3)
  cmp <- iclv:::.iclv_compile(m, d)
  spec <- iclv:::.draws_spec(iclv_draws("mlhs", 10, seed = 4), cmp$n_ind, 2L)
  set.seed(9)
  th <- lvs_truth[cmp$partable$name] + stats::runif(length(lvs_truth), -0.15, 0.15)
  evs <- list()
  for (refpath in c("0", "1")) {
    ev <- expect_engine_fd(cmp$c, spec, th, refpath) # (helper-compiled.R)
    # the new parameters have curvature of their own (the check can fail)
    k <- match(c("sigma_att", "alpha_nrm", "sigma_nrm", "chol_nrm_att"), names(th))
    expect_true(all(abs(diag(ev$hessian)[k]) > 1e-3))
    evs[[refpath]] <- ev
  }
  # the fast path and the reference agree
  for (el in c("loglik", "gradient", "scores", "hessian"))
    expect_equal(evs[["0"]][[el]], evs[["1"]][[el]], tolerance = 1e-12, label = el)
})

test_that("freeing the variance with a marker loading reaches the default normalisation's maximum, rescaled", {
  m0 <- one_lv_mnl_model()
  d <- iclv_simulate(m0, one_lv_mnl_truth, n = 200, n_tasks = 4, seed = 11)
  dr <- iclv_draws("halton", 40, seed = 1)
  f0 <- iclv(m0, d, draws = dr, backend = "cpu", control = iclv_control(tol = 1e-10))
  m1 <- iclv_model("att =~ 1*q1 + q2 + q3\n att ~~ att", structural = "att ~ age", choice = m0$choice,
                   id = "ID", categories = 3)
  f1 <- iclv(m1, d, draws = dr, backend = "cpu", control = iclv_control(tol = 1e-10))
  expect_identical(f0$convergence$code, 0L)
  expect_identical(f1$convergence$code, 0L)
  expect_lt(abs(as.numeric(logLik(f0)) - as.numeric(logLik(f1))), 1e-6)
  c0 <- coef(f0)
  c1 <- coef(f1)
  s <- c1[["sigma_att"]]
  # att_1 = s att_0: loadings and LV effects scale by s, structural effects by 1/s
  expect_equal(s, c0[["zeta_q1"]], tolerance = 1e-4)
  expect_equal(c1[c("zeta_q2", "zeta_q3", "l_att")] * s, c0[c("zeta_q2", "zeta_q3", "l_att")], tolerance = 1e-4)
  expect_equal(c1[["gamma_att_age"]] / s, c0[["gamma_att_age"]], tolerance = 1e-4)
  same <- c("tau_q1_1", "tau_q2_2", "asc_a", "b_price", "asc_b")
  expect_equal(c1[same], c0[same], tolerance = 1e-4)
})

test_that("unidentified and over-restricted uses are refused or warned, naming the parameters", {
  m0 <- one_lv_mnl_model()
  d <- iclv_simulate(m0, one_lv_mnl_truth, n = 150, n_tasks = 4, seed = 12)
  dr <- iclv_draws("halton", 20, seed = 1)
  # LV variance and every loading free
  m1 <- iclv_model("att =~ q1 + q2 + q3\n att ~~ att", structural = "att ~ age", choice = m0$choice,
                   id = "ID", categories = 3)
  e1 <- tryCatch(iclv(m1, d, draws = dr, backend = "cpu"), iclv_error_identification = function(e) e)
  expect_s3_class(e1, "iclv_error_identification")
  expect_true(all(c("sigma_att", "zeta_q1", "zeta_q2", "zeta_q3") %in% e1$parameters))
  # an LV intercept with every threshold free
  m2 <- iclv_model("att =~ q1 + q2 + q3\n att ~ 1", structural = "att ~ age", choice = m0$choice,
                   id = "ID", categories = 3)
  e2 <- tryCatch(iclv(m2, d, draws = dr, backend = "cpu"), iclv_error_identification = function(e) e)
  expect_s3_class(e2, "iclv_error_identification")
  expect_true(all(c("alpha_att", "tau_q1_1", "tau_q3_2") %in% e2$parameters))
  # a marker loading with the default variance: over-restricted, a warning
  m3 <- iclv_model("att =~ 1*q1 + q2 + q3", structural = "att ~ age", choice = m0$choice,
                   id = "ID", categories = 3)
  expect_warning(suppressWarnings(iclv(m3, d, draws = dr, backend = "cpu", control = iclv_control(maxit = 3)),
                                  classes = "iclv_warning_convergence"),
                 class = "iclv_warning_identification", regexp = "over-restricted")
  # ... and the same through fixed =, but not when the variance is free
  expect_warning(suppressWarnings(iclv(m0, d, draws = dr, backend = "cpu", fixed = c(zeta_q2 = 0.8),
                                       control = iclv_control(maxit = 3)), classes = "iclv_warning_convergence"),
                 class = "iclv_warning_identification", regexp = "'zeta_q2' fixed at 0.8")
  w <- character()
  withCallingHandlers(
    iclv(iclv_model("att =~ 1*q1 + q2 + q3\n att ~~ att", structural = "att ~ age", choice = m0$choice,
                    id = "ID", categories = 3), d, draws = dr, backend = "cpu", control = iclv_control(maxit = 3)),
    warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") })
  expect_false(any(grepl("over-restricted", w)))
  # every parameter fixed (an evaluation at known values): nothing to say
  w <- character()
  withCallingHandlers(iclv(m0, d, draws = dr, backend = "cpu", fixed = one_lv_mnl_truth),
                      warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") })
  expect_false(any(grepl("over-restricted", w)))
})

test_that("specification errors are classed and say what is not supported", {
  e <- function(meas, st = "att ~ age", regexp) {
    expect_error(iclv_model(meas, structural = st, id = "ID"), class = "iclv_error_spec", regexp = regexp)
  }
  e("att =~ q1 + q2\n nrm =~ q3 + q4\n h =~ q5 + q6\n att ~~ nrm\n att ~~ h",
    regexp = "'nrm ~~ h' is missing")
  e("att =~ q1 + q2\n nrm =~ q3 + q4\n att ~~ nrm\n nrm ~~ att", regexp = "given twice")
  pt3 <- iclv_model("att =~ q1 + q2\n nrm =~ q3 + q4\n h =~ q5 + q6\n att ~~ nrm\n att ~~ h\n h ~~ nrm",
                    id = "ID")$partable
  expect_identical(pt3$name[pt3$role == "chol"], c("chol_nrm_att", "chol_h_att", "chol_h_nrm"))
  # on indicators they are an intercept and a scale (R/indicator.R, test-indicator-syntax.R)
  pti <- iclv_model("att =~ q1 + q2\n q1 ~~ q1\n q1 ~ 1", structural = "att ~ age", id = "ID")$partable
  expect_identical(pti$role[match(c("alpha_q1", "sigma_q1"), pti$name)], c("intercept", "sd"))
  e("att =~ q1 + q2\n foo ~~ foo", regexp = "'foo' is not a latent variable")
  e("att =~ q1 + q2\n foo ~ 1", regexp = "'foo' is not a latent variable")
  e("att =~ q1 + q2\n nrm =~ q3 + q4\n att ~~ a*nrm", regexp = "labels on '~~' between two latent variables are not supported")
  e("att =~ q1 + q2\n att ~~ -1*att", regexp = "a variance must be positive")
  e("att =~ q1 + q2\n att ~~ start(0)*att", regexp = "a variance must be positive")
  e("att =~ q1 + q2\n nrm =~ q3 + q4\n att ~~ 0.3*nrm", regexp = "non-zero value is not supported")
  e("att =~ q1 + q2\n att ~~ att", st = "att ~ age\n att ~~ att", regexp = "given twice")
  e("att =~ q1 + q2", st = "att ~ 1 + age", regexp = "'1' is not a name")
  e("att =~ q1 + q2\n att ~~", regexp = "not of the form")
})

test_that("iclv_simulate draws the LVs with the free s.d. and intercept, and a fit recovers them", {
  m <- iclv_model("att =~ 1*q1 + q2 + q3\n att ~~ att\n att ~ 1", structural = "att ~ age",
    choice = iclv_choice("mnl", "ch", list(a = "asc_a + b_price * price_a + l_att * att",
                                           b = "asc_b + b_price * price_b", c = "0")),
    id = "ID", categories = 3, fixed = c(tau_q1_1 = -1, tau_q1_2 = 1))
  truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
             zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5, alpha_att = 0.6,
             sigma_att = 1.4, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
  d <- iclv_simulate(m, truth, n = 1200, n_tasks = 4, seed = 21)
  lv <- attr(d, "true_lv")[, "att"]
  age <- d$age[!duplicated(d$ID)]
  err <- lv - 0.5 * age - 0.6
  expect_lt(abs(mean(err)), 4 * 1.4 / sqrt(1200))
  expect_lt(abs(stats::sd(err) / 1.4 - 1), 0.06)
  fit <- iclv(m, d, draws = iclv_draws("mlhs", 100, seed = 2), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  est <- coef(fit)
  free <- fit$partable$name[fit$partable$free]
  expect_false(any(c("zeta_q1", "tau_q1_1", "tau_q1_2") %in% free))
  se <- sqrt(diag(vcov(fit)))[free]
  expect_false(anyNA(se))
  z <- (est[free] - truth[free]) / se
  expect_true(all(abs(z) < 3), info = paste(names(z), round(z, 2), collapse = ", "))
  # predict: posterior LV means follow the intercept
  lvp <- predict(fit, type = "lv")
  expect_lt(abs(mean(lvp$mean_att - est[["gamma_att_age"]] * age) - est[["alpha_att"]]), 0.15)
})

test_that("the sign normalisation leaves a free s.d. positive and flips an intercept", {
  m <- iclv_model("att =~ q1 + q2 + q3\n att ~~ att\n att ~ 1", structural = "att ~ age", id = "ID", categories = 3)
  d <- iclv_simulate(m, c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
                          tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
                          gamma_att_age = 0.5, alpha_att = 0.3, sigma_att = 1.2), n = 10, seed = 3)
  cmp <- iclv:::.iclv_compile(m, d)
  pt <- cmp$partable
  th <- stats::setNames(c(-1, -1, 1, -0.8, -0.5, 0.8, -1.2, -1, 0.5, 0.5, 0.3, 1.2)[seq_len(nrow(pt))], pt$name)
  th[["sigma_att"]] <- 1.2
  th[["alpha_att"]] <- 0.3
  th[["gamma_att_age"]] <- 0.5
  fl <- iclv:::.lv_sign_flip(cmp$c, th, pt$free, match("zeta_q1", pt$name))
  expect_identical(fl$flip, 0L)
  expect_identical(fl$theta[["sigma_att"]], 1.2)
  expect_identical(fl$theta[["alpha_att"]], -0.3)
  expect_identical(fl$theta[["gamma_att_age"]], -0.5)
  expect_identical(fl$theta[["zeta_q1"]], 1)
})

test_that("correlated structural errors are recovered, and the sign flip negates the Cholesky element", {
  m <- iclv_model("att =~ q1 + q2 + q3\n nrm =~ q4 + q5 + q6\n att ~~ nrm", structural = "att ~ age",
    choice = iclv_choice("mnl", "ch", list(a = "asc_a + b_price * price_a + l_att * att",
                                           b = "asc_b + b_price * price_b + l_nrm * nrm", c = "0")),
    id = "ID", categories = 3)
  truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
             zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, zeta_q4 = 0.9, tau_q4_1 = -0.6, tau_q4_2 = 0.7,
             zeta_q5 = 1.1, tau_q5_1 = -0.8, tau_q5_2 = 0.4, zeta_q6 = 1, tau_q6_1 = -0.4, tau_q6_2 = 0.9,
             gamma_att_age = 0.5, chol_nrm_att = 0.8, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3,
             l_nrm = 0.5)
  d <- iclv_simulate(m, truth, n = 1000, n_tasks = 3, seed = 31)
  lv <- attr(d, "true_lv")
  # cov(zeta_att, zeta_nrm) = chol = 0.8, var(zeta_nrm) = 1 + 0.8^2
  age <- d$age[!duplicated(d$ID)]
  expect_lt(abs(stats::cov(lv[, "att"] - 0.5 * age, lv[, "nrm"]) - 0.8), 0.15)
  expect_lt(abs(stats::var(lv[, "nrm"]) - 1.64), 0.25)
  fit <- iclv(m, d, draws = iclv_draws("mlhs", 100, seed = 2), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  se <- sqrt(diag(vcov(fit)))
  z <- (coef(fit) - truth[names(coef(fit))]) / se
  expect_true(all(abs(z) < 3), info = paste(names(z), round(z, 2), collapse = ", "))
  # the flip of att alone negates the element (its sign is s_att s_nrm)
  cmp <- iclv:::.iclv_compile(m, d)
  th <- truth[cmp$partable$name]
  th[["zeta_q1"]] <- -1
  fl <- iclv:::.lv_sign_flip(cmp$c, th, cmp$partable$free, match(c("zeta_q1", "zeta_q4"), cmp$partable$name))
  expect_identical(fl$flip, 0L)
  expect_identical(fl$theta[["chol_nrm_att"]], -0.8)
  expect_identical(fl$theta[["l_nrm"]], 0.5)
})

test_that("lavaan's modifiers on ~~: a fixed variance is a fixed sigma, the defaults written out add nothing", {
  pt <- function(meas) {
    p <- iclv_model(meas, id = "ID", categories = 3)$partable
    p[p$role %in% c("sd", "chol"), c("name", "free", "start")]
  }
  base <- "att =~ 1*q1 + q2\n nrm =~ q3 + q4"
  # variance fixed at 2: sigma_att = sqrt(2), not free
  r <- pt(paste(base, "att ~~ 2*att", sep = "\n"))
  expect_identical(r$name, "sigma_att")
  expect_false(r$free)
  expect_identical(r$start, sqrt(2))
  # start(4): sigma starts at 2, free
  r <- pt(paste(base, "att ~~ start(4)*att", sep = "\n"))
  expect_true(r$free)
  expect_identical(r$start, 2)
  # NA*att frees it, as the plain statement does
  expect_identical(pt(paste(base, "att ~~ NA*att", sep = "\n")), pt(paste(base, "att ~~ att", sep = "\n")))
  # 1*att and 0*nrm are the defaults: no parameter
  expect_identical(nrow(pt(paste(base, "att ~~ 1*att\n att ~~ 0*nrm", sep = "\n"))), 0L)
  # a covariance's start is the Cholesky element's, on either side of ~~, and
  # several right-hand sides in one statement
  r <- pt(paste(base, "nrm ~~ start(0.3)*att + nrm", sep = "\n"))
  expect_identical(r$name, c("sigma_nrm", "chol_nrm_att"))
  expect_identical(r$start, c(1, 0.3))
  # a fixed variance with a free marker-less LV: not over-restricted; with a
  # fixed loading it is (the scale set twice)
  m0 <- one_lv_mnl_model()
  d <- iclv_simulate(m0, one_lv_mnl_truth, n = 100, n_tasks = 2, seed = 4)
  m <- iclv_model("att =~ 1*q1 + q2 + q3\n att ~~ 2*att", structural = "att ~ age", choice = m0$choice,
                  id = "ID", categories = 3)
  expect_warning(suppressWarnings(iclv(m, d, draws = iclv_draws("halton", 10), backend = "cpu",
                                       control = iclv_control(maxit = 2)), classes = "iclv_warning_convergence"),
                 class = "iclv_warning_identification", regexp = "by fixed =")
})

test_that("modifiers on an LV's intercept: a fixed value, 0 (the default), start(); labels refused", {
  mk <- function(s) iclv_model(paste("f =~ y1 + y2 + y3\n", s), id = "ID", categories = 3)
  pt <- mk("f ~ 0.3*1")$partable
  expect_identical(pt$free[pt$name == "alpha_f"], FALSE)
  expect_identical(pt$start[pt$name == "alpha_f"], 0.3)
  expect_false("alpha_f" %in% mk("f ~ 0*1")$partable$name)
  pt <- mk("f ~ start(0.2)*1")$partable
  expect_identical(pt$free[pt$name == "alpha_f"], TRUE)
  expect_identical(pt$start[pt$name == "alpha_f"], 0.2)
  expect_identical(mk("f ~ NA*1")$partable$free[mk("f ~ NA*1")$partable$name == "alpha_f"], TRUE)
  expect_identical(sum(mk("f ~ a*1")$partable$name == "a"), 1L) # a label names it
})

test_that("labels on an LV's own variance and intercept: equal labels are one parameter", {
  spec <- "f =~ 1*y1 + y2 + y3\n g =~ 1*y4 + y5 + y6\n f ~~ v*f\n g ~~ v*g\n f ~ a*1\n g ~ a*1"
  ch <- iclv_choice("mnl", "ch", list(A = "asc + l_f * f + l_g * g", B = "0"))
  ma <- iclv_model(spec, choice = ch, id = "ID", categories = 3)
  mb <- iclv_model("f =~ 1*y1 + y2 + y3\n g =~ 1*y4 + y5 + y6\n f ~~ f\n g ~~ g\n f ~ 1\n g ~ 1",
                   choice = ch, id = "ID", categories = 3)
  pa <- ma$partable
  expect_identical(sum(pa$name == "v"), 1L)
  expect_identical(pa$role[pa$name == "v"], "sd")
  expect_identical(sum(pa$name == "a"), 1L)
  expect_false(any(c("sigma_f", "sigma_g", "alpha_f", "alpha_g") %in% pa$name))
  base <- c(tau_y1_1 = -1, tau_y1_2 = 1, zeta_y2 = 0.8, tau_y2_1 = -0.5, tau_y2_2 = 0.7, zeta_y3 = 1.1,
            tau_y3_1 = -0.9, tau_y3_2 = 0.6, tau_y4_1 = -0.8, tau_y4_2 = 0.9, zeta_y5 = 0.9, tau_y5_1 = -0.6,
            tau_y5_2 = 0.5, zeta_y6 = 1.2, tau_y6_1 = -1.1, tau_y6_2 = 0.4, asc = 0.2, l_f = 0.5, l_g = -0.4)
  pa_v <- c(base, v = 1.3, a = 0.25, zeta_y1 = 1, zeta_y4 = 1)
  pb_v <- c(base, sigma_f = 1.3, sigma_g = 1.3, alpha_f = 0.25, alpha_g = 0.25, zeta_y1 = 1, zeta_y4 = 1)
  d <- iclv_simulate(ma, pa_v, n = 60, n_tasks = 2, seed = 3)
  dr <- iclv_draws("halton", 30)
  la <- iclv_loglik(ma, d, pa_v, draws = dr, gradient = TRUE)
  lb <- iclv_loglik(mb, d, pb_v, draws = dr, gradient = TRUE)
  expect_equal(la$loglik, lb$loglik, tolerance = 1e-13)
  expect_equal(la$gradient[["v"]], lb$gradient[["sigma_f"]] + lb$gradient[["sigma_g"]], tolerance = 1e-10)
  expect_equal(la$gradient[["a"]], lb$gradient[["alpha_f"]] + lb$gradient[["alpha_g"]], tolerance = 1e-10)
  # start() with a label; a label between two LVs stays refused
  ms <- iclv_model(sub("f ~~ v\\*f", "f ~~ start(4)*v*f", spec), choice = ch, id = "ID", categories = 3)
  expect_identical(ms$partable$start[ms$partable$name == "v"], 2)
  expect_error(iclv_model("f =~ y1 + y2 + y3\n g =~ y4 + y5 + y6\n f ~~ c*g", id = "ID", categories = 3),
               class = "iclv_error_spec", regexp = "between two latent variables")
  expect_error(iclv_model("f =~ y1 + y2 + y3\n f ~~ v*f\n y1 ~ v*1", id = "ID", categories = 3),
               class = "iclv_error_spec", regexp = "'v'")
})
