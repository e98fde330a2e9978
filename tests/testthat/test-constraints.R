# lavaan's equality and definition constraints `==` / `:=` (issue 15,
# R/constraints.R): a defined parameter is a function of the free ones,
# carried through every derivative.

con_choice <- function() {
  iclv_choice("mnl", choice = "ch", utilities = list(
    a = "asc_a + b_price * price_a + l_att * att",
    b = "asc_b + b_price * price_b",
    c = "0"))
}
con_model <- function(meas, st = "att ~ age", ...) {
  iclv_model(meas, structural = st, choice = con_choice(), id = "ID", ...)
}
# Biogeme's Optima H05 thresholds: shared by the indicators q1 and q2,
# symmetric, from two positive increments; q3 keeps free thresholds (the
# increment map of R/transform.R) so that both maps are composed
h05_meas <- "att =~ q1 + q2 + q3
  q1 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  q2 | t1*t1 + t2*t2 + t3*t3 + t4*t4
  q3 | t1 + t2 + t3 + t4
  t1 := -d1 - d2; t2 := -d1; t3 := d1; t4 := d1 + d2
  d1 := exp(ld1)
  d2 := exp(ld2)"
h05_truth <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2, ld1 = log(0.5), ld2 = log(0.8),
               tau_q3_1 = -1.2, tau_q3_2 = -0.4, tau_q3_3 = 0.3, tau_q3_4 = 1.1,
               gamma_att_age = 0.5, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
h05_data <- function(n = 150, seed = 3) iclv_simulate(con_model(h05_meas), h05_truth, n = n, n_tasks = 3, seed = seed)
con_draws <- iclv_draws("halton", 20, seed = 2)

test_that("the constraints define parameters: partable rows, new free parameters, starts", {
  m <- con_model(h05_meas)
  pt <- m$partable
  expect_identical(pt$defined[match(c("t1", "t2", "t3", "t4", "d1", "d2"), pt$name)],
                   c("-d1 - d2", "-d1", "d1", "d1 + d2", "exp(ld1)", "exp(ld2)"))
  expect_false(any(pt$free[pt$defined != ""]))
  expect_identical(pt$role[match(c("ld1", "ld2", "d1"), pt$name)], c("auxiliary", "auxiliary", "defined"))
  expect_true(all(pt$free[pt$name %in% c("ld1", "ld2")]))
  expect_identical(pt$op[match(c("ld1", "d1"), pt$name)], c("par", ":="))
  # starts: the definitions at the auxiliary starts (0.5)
  expect_equal(pt$start[pt$name == "t4"], 2 * exp(0.5))
  # with data, the auxiliary starts fit the data-based thresholds (least squares)
  d <- h05_data()
  obj <- iclv_objective(m, d, draws = con_draws)
  expect_identical(names(obj$par), pt$name[pt$free])
  expect_true(all(is.finite(obj$par)) && obj$par[["ld1"]] != 0.5)
  expect_true(is.finite(obj$fn(obj$par)))
})

test_that("'a == b' is the same model as one label 'a' on both terms (LL, derivatives, maximum, SEs)", {
  d <- h05_data()
  ml <- con_model("att =~ q1 + a*q2 + a*q3", categories = 5)
  mc <- con_model("att =~ q1 + a*q2 + b*q3
                   b == a", categories = 5)
  expect_identical(mc$partable$defined[mc$partable$name == "b"], "a")
  pl <- c(zeta_q1 = 1, a = 0.9, gamma_att_age = 0.5, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
  th <- c(-1.3, -0.5, 0.4, 1.2)
  for (i in c("q1", "q2", "q3")) pl[sprintf("tau_%s_%d", i, 1:4)] <- th + 0.1 * (i == "q2")
  ll <- iclv_loglik(ml, d, pl, draws = con_draws, scores = TRUE, hessian = TRUE)
  lc <- iclv_loglik(mc, d, pl, draws = con_draws, scores = TRUE, hessian = TRUE)
  expect_identical(lc$loglik, ll$loglik)
  expect_identical(names(lc$gradient), names(ll$gradient))
  expect_equal(lc$gradient, ll$gradient, tolerance = 1e-12)
  expect_equal(lc$scores, ll$scores, tolerance = 1e-12)
  expect_equal(lc$hessian, ll$hessian, tolerance = 1e-12)
  # the defined value may be given when it agrees with its definition, not otherwise
  expect_identical(iclv_loglik(mc, d, c(pl, b = 0.9), draws = con_draws)$loglik, ll$loglik)
  expect_error(iclv_loglik(mc, d, c(pl, b = 1), draws = con_draws), class = "iclv_error_input")
  ctl <- iclv_control(tol = 1e-10)
  fl <- iclv(ml, d, draws = con_draws, backend = "cpu", control = ctl)
  fc <- iclv(mc, d, draws = con_draws, backend = "cpu", control = ctl)
  expect_equal(fc$loglik, fl$loglik, tolerance = 1e-8)
  expect_equal(fc$coefficients[names(fl$coefficients)], fl$coefficients, tolerance = 1e-4)
  expect_identical(fc$coefficients[["b"]], fc$coefficients[["a"]])
  expect_false(fc$partable$free[fc$partable$name == "b"])
  expect_identical(fc$n_params, fl$n_params)
  se <- fc$partable$se
  expect_equal(se[fc$partable$name == "b"], se[fc$partable$name == "a"], tolerance = 1e-12)
  expect_equal(unname(sqrt(diag(vcov(fc)))[c("a", "b")]), rep(fl$partable$se[fl$partable$name == "a"], 2),
               tolerance = 1e-3)
})

test_that("the H05 thresholds equal the same values given to free shared thresholds", {
  d <- h05_data()
  mf <- con_model("att =~ q1 + q2 + q3
    q1 | t1*t1 + t2*t2 + t3*t3 + t4*t4
    q2 | t1*t1 + t2*t2 + t3*t3 + t4*t4
    q3 | t1 + t2 + t3 + t4")
  d1 <- exp(h05_truth[["ld1"]])
  d2 <- exp(h05_truth[["ld2"]])
  pf <- c(h05_truth[setdiff(names(h05_truth), c("ld1", "ld2"))], t1 = -d1 - d2, t2 = -d1, t3 = d1, t4 = d1 + d2)
  expect_identical(iclv_loglik(con_model(h05_meas), d, h05_truth, draws = con_draws)$loglik,
                   iclv_loglik(mf, d, pf, draws = con_draws)$loglik)
})

test_that("gradient and Hessian over the free parameters match finite differences (natural and optimizer scale)", {
  d <- h05_data()
  # a product and a logarithm too: second derivatives across parameters
  m <- con_model(paste(h05_meas, "
    zeta_q3 := k * zeta_q2
    l_att := log(1 + exp(r))"))
  obj <- iclv_objective(m, d, draws = con_draws)
  expect_setequal(names(obj$par), c("zeta_q1", "zeta_q2", "ld1", "ld2", "k", "r", sprintf("tau_q3_%d", 1:4),
                                    "gamma_att_age", "asc_a", "b_price", "asc_b"))
  p <- obj$par
  p[c("zeta_q2", "k", "r", "ld1", "ld2")] <- c(0.9, 1.3, 0.4, log(0.45), log(0.9))
  g <- obj$gr(p)
  H <- obj$he(p)
  h <- 1e-5
  fd_g <- vapply(seq_along(p), function(i) {
    e <- replace(numeric(length(p)), i, h)
    (obj$fn(p + e) - obj$fn(p - e)) / (2 * h)
  }, 0)
  expect_equal(unname(g), fd_g, tolerance = 1e-6)
  fd_h <- vapply(seq_along(p), function(i) {
    e <- replace(numeric(length(p)), i, h)
    (obj$gr(p + e) - obj$gr(p - e)) / (2 * h)
  }, numeric(length(p)))
  expect_equal(unname(H), unname((fd_h + t(fd_h)) / 2), tolerance = 1e-6)
  # scores add up to the gradient
  expect_equal(unname(colSums(obj$scores(p))), -unname(g), tolerance = 1e-10)
  # the optimizer's scale: the increments of q3's thresholds (log) composed
  # with the definitions
  prob <- iclv:::.iclv_problem(m, d, con_draws)
  eng <- iclv:::.problem_engine(prob, "cpu")
  on.exit(iclv:::.engine_release(eng), add = TRUE)
  f <- iclv:::.problem_objective(prob, eng)
  u <- iclv:::.to_internal(iclv:::.con_fill(replace(prob$theta0, names(p), p), prob$comp$definitions), prob$tr)
  ev <- f(u, hessian = TRUE)
  fd_u <- vapply(seq_along(u), function(i) {
    e <- replace(numeric(length(u)), i, h)
    (f(u + e)$loglik - f(u - e)$loglik) / (2 * h)
  }, 0)
  expect_equal(unname(ev$gradient), fd_u, tolerance = 1e-6)
  fd_hu <- vapply(seq_along(u), function(i) {
    e <- replace(numeric(length(u)), i, h)
    (f(u + e)$gradient - f(u - e)$gradient) / (2 * h)
  }, numeric(length(u)))
  expect_equal(unname(ev$hessian), unname((fd_hu + t(fd_hu)) / 2), tolerance = 1e-6)
})

test_that("the SEs of defined parameters are the delta method from the free ones, for every vcov type", {
  d <- h05_data()
  fit <- iclv(con_model(h05_meas), d, draws = con_draws, backend = "cpu")
  cf <- coef(fit)
  expect_equal(cf[["t4"]], exp(cf[["ld1"]]) + exp(cf[["ld2"]]), tolerance = 1e-14)
  expect_equal(cf[["t1"]], -cf[["t4"]], tolerance = 1e-14)
  J <- rbind(t1 = -exp(cf[c("ld1", "ld2")]), t2 = c(-exp(cf[["ld1"]]), 0), t3 = c(exp(cf[["ld1"]]), 0),
             t4 = exp(cf[c("ld1", "ld2")]), d1 = c(exp(cf[["ld1"]]), 0), d2 = c(0, exp(cf[["ld2"]])))
  for (type in c("robust", "hessian", "bhhh")) {
    V <- vcov(fit, type = type)
    Vd <- J %*% V[c("ld1", "ld2"), c("ld1", "ld2")] %*% t(J)
    expect_equal(V[rownames(J), rownames(J)], Vd, tolerance = 1e-12, ignore_attr = TRUE)
    # covariance of a defined and a free parameter: J V
    expect_equal(V["t4", "zeta_q1"], sum(J["t4", ] * V[c("ld1", "ld2"), "zeta_q1"]), tolerance = 1e-12)
  }
  pt <- fit$partable
  expect_equal(pt$se[match(rownames(J), pt$name)], unname(sqrt(diag(J %*% vcov(fit)[c("ld1", "ld2"), c("ld1", "ld2")] %*% t(J)))),
               tolerance = 1e-12)
  expect_false(any(pt$free[match(rownames(J), pt$name)]))
  s <- summary(fit)
  expect_false(any(rownames(J) %in% s$fixed))
  expect_setequal(s$defined, rownames(J))
  expect_equal(s$coefficients$measurement["t4", "Robust SE"], pt$se[pt$name == "t4"], tolerance = 1e-12)
  # iclv_delta() on a defined parameter: the same as on its definition
  dl <- iclv_delta(fit, c("t4", "exp(ld1) + exp(ld2)"))
  expect_equal(dl$std.error[1], dl$std.error[2], tolerance = 1e-12)
  expect_equal(dl$std.error[1], pt$se[pt$name == "t4"], tolerance = 1e-12)
})

test_that("H05-style thresholds are recovered from simulated data within 3 SE", {
  d <- h05_data(n = 500, seed = 2)
  fit <- iclv(con_model(h05_meas), d, draws = iclv_draws("halton", 50, seed = 3), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  truth <- h05_truth
  d1 <- exp(truth[["ld1"]])
  d2 <- exp(truth[["ld2"]])
  truth[c("t1", "t2", "t3", "t4", "d1", "d2")] <- c(-d1 - d2, -d1, d1, d1 + d2, d1, d2)
  pt <- fit$partable
  k <- match(names(truth), pt$name)
  z <- (pt$est[k] - truth) / pt$se[k]
  expect_true(all(abs(z) < 3), info = paste(names(truth), round(z, 2), collapse = ", "))
})

test_that("constraints refused with classed errors", {
  spec <- function(x, ...) expect_error(con_model(x, categories = 3, ...), class = "iclv_error_spec")
  # unknown names: an `==` on a name that is no parameter, a generated-looking
  # name that is no parameter, an LV or covariate in a definition
  spec("att =~ q1 + a*q2 + q3
        nope == a")
  spec("att =~ q1 + a*q2 + q3
        a == zeta_q9")
  spec("att =~ q1 + a*q2 + q3
        a := 2 * att")
  expect_error(con_model("att =~ q1 + a*q2 + q3", st = "att ~ age
        a := age", categories = 3), class = "iclv_error_spec")
  # cycles
  spec("att =~ q1 + a*q2 + b*q3
        a := b + 1
        b := 2 * a")
  spec("att =~ q1 + a*q2 + q3
        a := exp(a)")
  # a definition of a fixed parameter
  spec("att =~ 1*q1 + q2 + q3
        zeta_q1 := zeta_q2")
  spec("att =~ q1 + a*q2 + q3
        a := zeta_q3", fixed = c(a = 1))
  spec("att =~ q1 + a*q2 + q3
        a := zeta_q3", start = c(a = 1))
  # non-differentiable functions
  spec("att =~ q1 + a*q2 + q3
        a := abs(zeta_q3)")
  spec("att =~ q1 + a*q2 + q3
        a := max(zeta_q3, 1)")
  # no label on the left
  spec("att =~ q1 + a*q2 + b*q3
        a - b == 0")
  spec("att =~ q1 + a*q2 + b*q3
        2*a == b")
  spec("att =~ q1 + a*q2 + b*q3
        == b")
  # two definitions of one parameter; inequalities; bad expressions
  spec("att =~ q1 + a*q2 + b*q3
        a := b; a == 2 * b")
  spec("att =~ q1 + a*q2 + q3
        a > 0")
  spec("att =~ q1 + a*q2 + q3
        a := zeta_q3 +")
  # fixing a defined parameter in iclv()
  d <- h05_data(n = 40)
  m <- con_model(h05_meas)
  expect_error(iclv(m, d, draws = con_draws, backend = "cpu", fixed = c(t1 = -1)), class = "iclv_error_spec")
  expect_error(iclv(m, d, draws = con_draws, backend = "cpu", start = c(t1 = -1)), class = "iclv_error_input")
})

test_that("iclv_simulate() computes defined parameters and checks given ones", {
  m <- con_model(h05_meas)
  d1 <- iclv_simulate(m, h05_truth, n = 30, n_tasks = 2, seed = 9)
  full <- c(h05_truth, d1 = exp(h05_truth[["ld1"]]))
  expect_identical(iclv_simulate(m, full, n = 30, n_tasks = 2, seed = 9), d1)
  expect_error(iclv_simulate(m, c(h05_truth, d1 = 2), n = 30, n_tasks = 2, seed = 9), class = "iclv_error_input")
})

test_that("a ':=' on a new name is a derived quantity with its delta-method SE, not used by the likelihood", {
  d <- h05_data()
  m0 <- con_model("att =~ q1 + q2 + q3", categories = 5)
  m1 <- con_model("att =~ q1 + q2 + q3
                   wtp := -l_att / b_price", categories = 5)
  f0 <- iclv(m0, d, draws = con_draws, backend = "cpu")
  f1 <- iclv(m1, d, draws = con_draws, backend = "cpu")
  expect_identical(f1$loglik, f0$loglik)
  expect_identical(f1$n_params, f0$n_params)
  dl <- iclv_delta(f0, c(wtp = "-l_att / b_price"))
  pt <- f1$partable
  expect_equal(pt$est[pt$name == "wtp"], dl$estimate, tolerance = 1e-12)
  expect_equal(pt$se[pt$name == "wtp"], dl$std.error, tolerance = 1e-10)
})

test_that("the identification check sees through definitions; the LV sign flips an equality consistently", {
  d <- h05_data()
  # only the product a * b enters the likelihood: refused, naming a and b
  m <- con_model("att =~ q1 + q2 + q3
                  zeta_q2 := a * b", categories = 5)
  e <- tryCatch(iclv(m, d, draws = con_draws, backend = "cpu"), iclv_error_identification = function(e) e)
  expect_s3_class(e, "iclv_error_identification")
  expect_setequal(e$parameters, c("a", "b"))
  # a start of negative loadings: the flipped estimate keeps b == a
  m2 <- con_model("att =~ q1 + a*q2 + b*q3
                   b == a", categories = 5)
  f <- iclv(m2, d, draws = con_draws, backend = "cpu", start = c(zeta_q1 = -1, a = -1, l_att = -0.5))
  f2 <- iclv(m2, d, draws = con_draws, backend = "cpu")
  expect_identical(f$lv_sign$flipped, "att")
  expect_identical(f$coefficients[["b"]], f$coefficients[["a"]])
  expect_gt(f$coefficients[["a"]], 0)
  expect_equal(f$loglik, f2$loglik, tolerance = 1e-6)
  expect_equal(f$coefficients, f2$coefficients, tolerance = 1e-3)
})

test_that("the model's print and summary count defined parameters apart from fixed ones", {
  m <- con_model(h05_meas)
  expect_output(print(m), "6 defined by constraints")
  s <- summary(m)
  expect_identical(s$counts$defined[s$counts$block == "measurement"], 6L)
  expect_identical(s$counts$fixed[s$counts$block == "total"], 0L)
})

test_that("a checkpoint resumes the same constrained model from another start, not another definition", {
  d <- h05_data(n = 60)
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  m <- con_model(h05_meas)
  suppressWarnings(iclv(m, d, draws = con_draws, backend = "cpu",
                        control = iclv_control(maxit = 2, checkpoint = path, checkpoint_every = 1)))
  fit <- iclv(m, d, draws = con_draws, backend = "cpu", start = c(ld1 = 0), resume = path)
  ref <- iclv(m, d, draws = con_draws, backend = "cpu")
  expect_equal(fit$loglik, ref$loglik, tolerance = 1e-6)
  m2 <- con_model(sub("t4 := d1 + d2", "t4 := d1 + 2 * d2", h05_meas, fixed = TRUE))
  expect_error(iclv(m2, d, draws = con_draws, backend = "cpu", resume = path), class = "iclv_error_control")
})

test_that("'t1 := ...' beside unlabelled thresholds warns that it defines a new quantity", {
  expect_warning(m <- con_model("att =~ q1 + q2 + q3
                                 q1 | t1 + t2
                                 t1 := -exp(a)"), "no label", class = "iclv_warning_spec")
  expect_identical(m$partable$role[m$partable$name == "t1"], "defined")
  expect_true(m$partable$free[m$partable$name == "tau_q1_1"])
  expect_no_warning(con_model("att =~ q1 + q2 + q3
                               q1 | t1*t1 + t2*t2
                               t1 := -exp(a)"))
})
