# Ordered choice outcomes (iclv_choice(type = "ordered"); src/iclv_core.h,
# iclv_ordered_atom): the engine against the direct formula
# (helper-reference.R: ref_ordered_probs), derivatives against finite
# differences on both CPU paths, the identity with a binary probit choice,
# the threshold groups of R/transform.R, predictions, simulation and
# recovery, bad specifications and data, shards, memory plans, and the CUDA
# mirror (skipped without a GPU).

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

oc_model <- function(link = "probit", utilities = "b_price * price + l_att * att + b_x * x * att",
                     categories = NULL, fixed = NULL) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
             choice = iclv_choice("ordered", choice = "rating", utilities = utilities, link = link,
                                  categories = categories),
             id = "ID", categories = 3, fixed = fixed)
}

oc_data <- function(n = 12L, tasks = 3L, seed = 1L, C = 4L) {
  set.seed(seed)
  nr <- n * tasks
  d <- data.frame(ID = rep(seq_len(n), each = tasks), age = rep(stats::rnorm(n), each = tasks))
  for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tasks)
  d$price <- stats::rnorm(nr)
  d$x <- stats::runif(nr)
  d$rating <- c(seq_len(C), sample(seq_len(C), nr - C, TRUE))
  d
}

oc_theta <- function(comp, tau = c(-0.7, 0.1, 0.9)) {
  th <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
          tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
          b_price = -0.8, l_att = 0.6, b_x = 0.5,
          stats::setNames(tau, sprintf("tau_rating_%d", seq_along(tau))))
  th[comp$partable$name]
}

oc_draws <- function(n, R = 7L, seed = 11L) {
  set.seed(seed)
  array(stats::rnorm(n * R), c(n, R, 1L))
}

test_that("the ordered choice compiles: one index, C categories, consecutive thresholds started from the shares", {
  d <- oc_data()
  comp <- iclv:::.iclv_compile(oc_model(), d)
  expect_identical(comp$c$choice_type, 4L)
  expect_identical(comp$c$n_alt, 1L)
  expect_identical(comp$c$n_ocat, 4L)
  expect_identical(comp$c$y, as.integer(d$rating - 1L))
  tn <- sprintf("tau_rating_%d", 1:3)
  expect_identical(comp$c$ocat_thr, match(tn[1], comp$partable$name) - 1L)
  expect_identical(match(tn, comp$partable$name), match(tn[1], comp$partable$name) + 0:2)
  pt <- comp$partable[match(tn, comp$partable$name), ]
  expect_identical(pt$role, rep("threshold", 3))
  expect_equal(pt$start, stats::qnorm(cumsum(tabulate(d$rating, 4))[1:3] / nrow(d)), tolerance = 1e-15)
  expect_identical(comp$thresholds$rating, match(tn, comp$partable$name))
  expect_identical(comp$choice_categories, 4L)
  lg <- iclv:::.iclv_compile(oc_model("logit"), d)
  expect_identical(lg$c$ocat_logit, 1L)
  expect_equal(lg$partable$start[match(tn, lg$partable$name)],
               stats::qlogis(cumsum(tabulate(d$rating, 4))[1:3] / nrow(d)), tolerance = 1e-15)
  # declared categories beyond those observed
  expect_identical(iclv:::.iclv_compile(oc_model(categories = 6), d)$c$n_ocat, 6L)
})

test_that("ordered choice log-likelihood equals the pure-R reference (1e-10), probit and logit, an LV in the index", {
  d <- oc_data()
  U <- oc_draws(12L)
  for (link in c("probit", "logit")) {
    comp <- iclv:::.iclv_compile(oc_model(link), d)
    for (tau in list(c(-0.7, 0.1, 0.9), c(-3, 2.5, 6))) {
      th <- oc_theta(comp, tau)
      e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
      out <- iclv:::.engine_eval(e, th, gradient = FALSE)
      ref <- ref_loglik(comp$c, th, U)
      expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10, label = paste(link, tau[1]))
      expect_lt(max(abs(out$loglik_i - ref$loglik_i)), 1e-10)
    }
  }
})

test_that("ordered choice gradients and Hessians match finite differences on both CPU paths", {
  d <- oc_data(n = 8L, seed = 2L, C = 5L)
  U <- oc_draws(8L, R = 5L)
  set.seed(5)
  for (link in c("probit", "logit")) {
    comp <- iclv:::.iclv_compile(oc_model(link), d)
    th <- oc_theta(comp, c(-1.2, -0.3, 0.4, 1.3))
    ch <- comp$partable$role == "choice"
    th[ch] <- th[ch] + stats::rnorm(sum(ch), sd = 0.3)
    spec <- user_draws(U)
    ev0 <- expect_engine_fd(comp$c, spec, th, "0", paste0(" ", link))
    ev1 <- expect_engine_fd(comp$c, spec, th, "1", paste0(" ", link))
    tau <- grep("^tau_rating_", comp$partable$name)
    expect_gt(min(abs(ev1$gradient[tau])), 1e-4) # the thresholds are exercised
    expect_gt(min(abs(diag(ev1$hessian)[tau])), 1e-4)
    expect_gt(max(abs(ev1$hessian[tau, ch])), 1e-3) # and their cross terms with the index
  }
})

test_that("two categories: the ordered probit is the binary probit choice with utility difference V - tau_1", {
  d <- oc_data(seed = 3L, C = 2L)
  U <- oc_draws(12L)
  d$yes <- ifelse(d$rating == 2L, "hi", "lo")
  d$one <- 1
  ord <- iclv:::.iclv_compile(oc_model(), d)
  bin <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
                    choice = iclv_choice("probit", choice = "yes",
                                         utilities = list(hi = "b_price * price + l_att * att + b_x * x * att + m_tau * one",
                                                          lo = "0")),
                    id = "ID", categories = 3)
  bc <- iclv:::.iclv_compile(bin, d)
  th <- oc_theta(ord, 0.35)
  tb <- th[setdiff(bc$partable$name, "m_tau")]
  tb <- c(tb, m_tau = -0.35)[bc$partable$name]
  ev <- function(comp, p) {
    iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L), p,
                        gradient = TRUE, hessian = TRUE)
  }
  o <- ev(ord, th)
  b <- ev(bc, tb)
  expect_equal(o$loglik_i, b$loglik_i, tolerance = 1e-13)
  k <- match(setdiff(bc$partable$name, "m_tau"), ord$partable$name)
  kb <- match(setdiff(bc$partable$name, "m_tau"), bc$partable$name)
  expect_equal(o$gradient[k], b$gradient[kb], tolerance = 1e-12)
  it <- match("tau_rating_1", ord$partable$name)
  im <- match("m_tau", bc$partable$name)
  expect_equal(o$gradient[it], -b$gradient[im], tolerance = 1e-12)
  expect_equal(o$hessian[k, k], b$hessian[kb, kb], tolerance = 1e-12)
  expect_equal(o$hessian[it, k], -b$hessian[im, kb], tolerance = 1e-12)
  expect_equal(o$hessian[it, it], b$hessian[im, im], tolerance = 1e-12)
})

test_that("the ordered choice takes the fast kernels, its rows through the atoms, equal to the reference", {
  d <- oc_data(seed = 4L)
  U <- oc_draws(12L)
  comp <- iclv:::.iclv_compile(oc_model(), d)
  expect_atom_routing(comp, user_draws(U), oc_theta(comp), label = "ordered") # (helper-compiled.R)
})

test_that("the ordered choice's rows a block of draws at a time: logit and probit, extreme indices and thresholds, equal to the reference", {
  # (block_ord_rows: the ordered indicators' kernels; the logit's draws
  # beyond its fast range, |index| or |threshold| > 150, by the reference
  # link; two blocks of draws at R = 150)
  d <- oc_data(n = 10L, seed = 6L)
  fast_ref <- function(comp, U, th, tol, label) {
    old <- Sys.getenv("ICLV_CPU_REFERENCE", NA)
    on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
    ev <- function(ref) {
      if (ref) Sys.setenv(ICLV_CPU_REFERENCE = "1") else Sys.unsetenv("ICLV_CPU_REFERENCE")
      iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L), th, TRUE, TRUE, TRUE)
    }
    f <- ev(FALSE)
    r <- ev(TRUE)
    expect_true(is.finite(r$loglik), label = paste(label, "finite"))
    for (k in c("loglik_i", "gradient", "hessian"))
      expect_lt(max(abs(f[[k]] - r[[k]])) / max(abs(r[[k]])), tol, label = paste(label, k))
  }
  for (link in c("logit", "probit")) {
    comp <- iclv:::.iclv_compile(oc_model(link), d)
    th <- oc_theta(comp)
    fast_ref(comp, oc_draws(10L), th, 1e-12, link)
    fast_ref(comp, oc_draws(10L, R = 150L), th, 1e-12, paste(link, "R = 150"))
    big <- th
    big["b_price"] <- 60 # indices beyond the logit's fast range for some rows
    fast_ref(comp, oc_draws(10L), big, 1e-11, paste(link, "large indices"))
    far <- th
    far[sprintf("tau_rating_%d", 1:3)] <- c(-800, 0, 800)
    fast_ref(comp, oc_draws(10L), far, 1e-11, paste(link, "thresholds at +-800"))
    strong <- th
    strong["l_att"] <- 40
    fast_ref(comp, 3 * oc_draws(10L), strong, 1e-11, paste(link, "a strong LV"))
  }
})

test_that("the thresholds are a threshold group: increasing through the transform, refused when not", {
  d <- oc_data(seed = 5L)
  U <- oc_draws(12L)
  comp <- iclv:::.iclv_compile(oc_model(), d)
  th <- oc_theta(comp)
  prob <- iclv:::.problem_new(comp, U, start = th)
  tau <- match(sprintf("tau_rating_%d", 1:3), prob$tr$free_names)
  u <- iclv:::.to_internal(th, prob$tr)
  expect_equal(unname(u[tau]), c(-0.7, log(0.8), log(0.8)), tolerance = 1e-14)
  expect_equal(iclv:::.to_natural(u, prob$tr), th, tolerance = 1e-14)
  expect_error(iclv:::.problem_new(comp, U, start = replace(th, "tau_rating_2", -0.9)),
               class = "iclv_error_input", regexp = "tau_rating")
  e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
  expect_error(iclv:::.engine_eval(e, replace(th, "tau_rating_3", 0), gradient = FALSE),
               class = "iclv_error_input", regexp = "ordered choice")
})

test_that("predict(type = 'prob'): one column per category, rows sum to 1, equal to the reference", {
  d <- oc_data(seed = 7L)
  U <- oc_draws(12L)
  for (link in c("probit", "logit")) {
    comp <- iclv:::.iclv_compile(oc_model(link), d)
    th <- oc_theta(comp)
    e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
    P <- iclv:::.engine_predict(e, th)$prob
    expect_identical(dim(P), c(nrow(d), 4L))
    expect_equal(rowSums(P), rep(1, nrow(P)), tolerance = 1e-14)
    ind <- rep(seq_len(comp$n_ind), diff(comp$c$row_ptr))
    ref <- t(vapply(seq_len(comp$c$n_rows), function(t) {
      rowMeans(vapply(seq_len(dim(U)[2]), function(r) {
        ref_choice_probs(comp$c, th, ref_eta(comp$c, th, ind[t], U[ind[t], r, ]), t)
      }, numeric(4)))
    }, numeric(4)))
    expect_lt(max(abs(P - ref)), 1e-12, label = link)
  }
})

test_that("iclv_simulate draws ordered categories; estimation recovers the parameters within 3 SE", {
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
                  choice = iclv_choice("ordered", choice = "rating", utilities = "b_price * price + l_att * att"),
                  id = "ID", categories = 3)
  p <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
         tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
         b_price = -0.8, l_att = 0.6, tau_rating_1 = -1, tau_rating_2 = 0, tau_rating_3 = 0.8)
  d <- iclv_simulate(m, p, n = 500, n_tasks = 4, seed = 3)
  expect_true(is.integer(d$rating))
  expect_setequal(unique(d$rating), 1:4)
  expect_error(iclv_simulate(m, replace(p, "tau_rating_2", 1), n = 5, seed = 1),
               class = "iclv_error_input", regexp = "increasing")
  fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  cf <- coef(fit)
  se <- sqrt(diag(vcov(fit)))
  z <- (cf - p[names(cf)]) / se
  expect_lt(max(abs(z)), 3, label = "max |z|")
  expect_equal(fit$loglik_null, -nrow(d) * log(4), tolerance = 1e-12) # equal category shares
  pr <- predict(fit, type = "prob")
  expect_equal(unname(rowSums(pr)), rep(1, nrow(d)), tolerance = 1e-12)
  expect_identical(colnames(pr), as.character(1:4))
  # new data without the rating column (a scenario), and with a category the data lacks
  nd <- d[d$ID %in% 1:3, c("ID", "age", "price")]
  ps <- predict(fit, newdata = nd)
  expect_identical(dim(ps), c(nrow(nd), 4L))
  expect_equal(unname(rowSums(ps)), rep(1, nrow(nd)), tolerance = 1e-12)
  nd2 <- d[d$ID %in% 1:3, ]
  nd2$rating <- 1L
  expect_identical(dim(predict(fit, newdata = nd2, conditional = TRUE)), c(nrow(nd2), 4L))
  nd2$rating[2] <- 5L
  expect_error(predict(fit, newdata = nd2), class = "iclv_error_data", regexp = "row 2")
  expect_error(iclv_elasticities(fit, attribute = "price"), class = "iclv_error_input")
})

test_that("ordered choice specification and data errors are classed", {
  spec_err <- function(..., re) {
    expect_error(iclv_choice(choice = "rating", ...), class = "iclv_error_spec", regexp = re)
  }
  spec_err("ordered", utilities = list(a = "b * x", b = "c * z"), re = "one utility")
  spec_err("ordered", utilities = "b * x", link = "cloglog", re = "'link'")
  spec_err("ordered", utilities = "b * x", categories = 1, re = "'categories'")
  spec_err("ordered", utilities = "b * x", available = list(index = "av"), re = "available")
  spec_err("mnl", utilities = list(a = "b * x", b = "0"), link = "logit", re = "only for type")
  spec_err("mnl", utilities = list(a = "b * x", b = "0"), categories = 3, re = "only for type")
  expect_error(oc_model(utilities = "asc + b_price * price"), class = "iclv_error_spec", regexp = "constant")
  d <- oc_data()
  bad <- d
  bad$rating[5] <- 2.5
  expect_error(iclv:::.iclv_compile(oc_model(), bad), class = "iclv_error_data", regexp = "row 5")
  bad$rating[5] <- 0
  expect_error(iclv:::.iclv_compile(oc_model(), bad), class = "iclv_error_data", regexp = "row 5")
  # the message names the rule, not a range read off bad values (1..5.5, 1..-1)
  bad <- d
  bad$rating <- bad$rating + 0.5
  expect_error(iclv:::.iclv_compile(oc_model(), bad), class = "iclv_error_data", regexp = "whole numbers 1..C")
  bad$rating <- -d$rating
  expect_error(iclv:::.iclv_compile(oc_model(), bad), class = "iclv_error_data", regexp = "whole numbers 1..C")
  bad <- d
  bad$rating[7] <- 9
  expect_error(iclv:::.iclv_compile(oc_model(categories = 4), bad), class = "iclv_error_data", regexp = "row 7")
  bad$rating <- 1L
  expect_error(iclv:::.iclv_compile(oc_model(), bad), class = "iclv_error_data", regexp = "fewer than two")
  ch <- iclv_choice("ordered", choice = "rating", utilities = "b * x", link = "logit")
  expect_output(print(ch), "Ordered logit")
  expect_output(print(oc_model(categories = 5)), "ordered probit, 5 categories")
})

test_that("ordered choice models keep their categories in cluster shards", {
  comp <- iclv:::.iclv_compile(oc_model(), oc_data(seed = 6L))
  expect_shards_add_up(comp, user_draws(oc_draws(12L)), oc_theta(comp)) # (helper-compiled.R)
})

test_that("the CPU memory plan equals the engine's account for an ordered choice", {
  expect_cpu_plan_is_account(oc_model(), oc_data(), iclv_draws("halton", 20, seed = 1)) # (helper-compiled.R)
})

test_that("CUDA equals the CPU engine for the ordered choice (LL, scores, gradient, Hessian; 1e-12)", {
  skip_if_no_gpu()
  d <- oc_data(n = 30L, tasks = 3L, seed = 8L, C = 5L)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 40, seed = 1), 30L, 1L)
  for (link in c("probit", "logit")) {
    comp <- iclv:::.iclv_compile(oc_model(link), d)
    th <- oc_theta(comp, c(-1.2, -0.3, 0.4, 1.3))
    expect_cuda_equals_cpu(comp, spec, th, link, hess_tol = 1e-12) # (helper-gpu.R)
  }
})

test_that("the CUDA memory plan equals the CUDA engine's account for an ordered choice", {
  skip_if_no_gpu()
  expect_cuda_plan_is_account(oc_model(), oc_data(n = 30L, tasks = 3L, seed = 8L), iclv_draws("halton", 40, seed = 1),
                              function(comp) oc_theta(comp)) # (helper-gpu.R)
})
