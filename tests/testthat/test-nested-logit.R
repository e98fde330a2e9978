# Nested logit choice parts (iclv_choice(type = "nl", nests = );
# src/iclv_core.h, iclv_nl_link): the engine against the textbook formula
# (helper-reference.R: ref_nl_probs), derivatives against finite
# differences, the identity with MNL, the lambda map of R/transform.R,
# predictions, simulation and recovery, bad specifications, and the CUDA
# mirror (skipped without a GPU).

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# Five alternatives: A, B in nest "branded", C, D in nest "generic", E in
# no nest (its own, lambda 1); B and D not always available (some rows with
# one available alternative in a nest), an LV in two utilities.
nl_util <- list(A = "asc_A + b_price * price_A + l_att * att", B = "asc_B + b_price * price_B",
                C = "asc_C + b_price * price_C", D = "b_price * price_D", E = "asc_E + l_E * att")
nl_nests <- list(branded = c("A", "B"), generic = c("C", "D"))
nl_model <- function(nests = nl_nests, type = "nl", fixed = NULL, utilities = nl_util) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
             choice = iclv_choice(type, choice = "ch", utilities = utilities,
                                  available = list(B = "av_B", D = "av_D"), nests = nests),
             id = "ID", categories = 3, fixed = fixed)
}

nl_data <- function(n = 12L, tasks = 3L, seed = 1L) {
  set.seed(seed)
  nr <- n * tasks
  d <- data.frame(ID = rep(seq_len(n), each = tasks), age = rep(stats::rnorm(n), each = tasks))
  for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tasks)
  for (a in c("A", "B", "C", "D")) d[[paste0("price_", a)]] <- stats::rnorm(nr)
  d$av_B <- rep_len(c(1L, 0L, 1L), nr)
  d$av_D <- rep_len(c(1L, 1L, 0L, 1L), nr)
  d$ch <- vapply(seq_len(nr), function(i) {
    sample(c("A", if (d$av_B[i] == 1L) "B", "C", if (d$av_D[i] == 1L) "D", "E"), 1L)
  }, "")
  d
}

nl_theta <- function(comp, lam = c(lambda_branded = 0.6, lambda_generic = 0.35)) {
  th <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
          tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
          asc_A = 0.3, b_price = -0.9, l_att = 0.6, asc_B = -0.2, asc_C = 0.25, asc_E = -0.3,
          l_E = 0.4, lam)
  th[comp$partable$name]
}

nl_draws <- function(n, R = 7L, seed = 11L) {
  set.seed(seed)
  array(stats::rnorm(n * R), c(n, R, 1L))
}

test_that("the nests compile into nest_of / nest_par, an alternative in no nest its own nest without lambda", {
  comp <- iclv:::.iclv_compile(nl_model(), nl_data())
  expect_identical(comp$c$choice_type, 3L)
  expect_identical(comp$c$n_nest, 3L)
  expect_identical(comp$c$nest_of, c(0L, 0L, 1L, 1L, 2L))
  expect_identical(comp$c$nest_par, c(match(c("lambda_branded", "lambda_generic"), comp$partable$name) - 1L, -1L))
  pt <- comp$partable[comp$partable$role == "nest", ]
  expect_identical(pt$name, c("lambda_branded", "lambda_generic"))
  expect_identical(pt$start, c(0.8, 0.8))
})

test_that("nested logit log-likelihood equals the pure-R textbook likelihood (1e-10), availability and an LV included", {
  d <- nl_data()
  U <- nl_draws(12L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  for (lam in list(c(0.6, 0.35), c(0.05, 0.9), c(1, 0.5))) {
    th <- nl_theta(comp, c(lambda_branded = lam[1], lambda_generic = lam[2]))
    e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
    out <- iclv:::.engine_eval(e, th, gradient = FALSE)
    ref <- ref_loglik(comp$c, th, U)
    expect_lt(abs(out$loglik - ref$loglik) / abs(ref$loglik), 1e-10, label = paste(lam, collapse = ","))
    expect_lt(max(abs(out$loglik_i - ref$loglik_i)), 1e-10)
  }
  # the chosen probabilities are not those of MNL (the nests matter)
  mnl <- iclv:::.iclv_compile(nl_model(NULL, "mnl"), d)
  ll_mnl <- iclv:::.engine_eval(iclv:::.engine_new(mnl$c, user_draws(U), n_threads = 1L),
                                nl_theta(mnl, NULL), gradient = FALSE)$loglik
  expect_gt(abs(out$loglik - ll_mnl), 0.1)
})

test_that("nested logit gradients and Hessians match finite differences at random points", {
  d <- nl_data(n = 8L, seed = 2L)
  U <- nl_draws(8L, R = 5L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  set.seed(5)
  for (i in 1:3) {
    th <- nl_theta(comp, c(lambda_branded = stats::runif(1, 0.2, 0.95), lambda_generic = stats::runif(1, 0.2, 0.95)))
    ch <- comp$partable$role == "choice"
    th[ch] <- th[ch] + stats::rnorm(sum(ch), sd = 0.3)
    out <- expect_engine_fd(comp$c, user_draws(U), th, "0", paste(" at point", i)) # (helper-compiled.R)
    lam <- match(c("lambda_branded", "lambda_generic"), comp$partable$name)
    expect_gt(min(abs(out$gradient[lam])), 1e-3) # the lambdas are exercised
    expect_gt(min(abs(out$hessian[lam, lam])), 1e-3)
  }
})

test_that("every lambda fixed at 1 is MNL exactly; the nested model takes the fast kernels", {
  d <- nl_data(seed = 3L)
  U <- nl_draws(12L)
  old <- Sys.getenv("ICLV_CPU_REFERENCE", NA)
  on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
  one <- iclv:::.iclv_compile(nl_model(fixed = c(lambda_branded = 1, lambda_generic = 1)), d)
  mnl <- iclv:::.iclv_compile(nl_model(NULL, "mnl"), d)
  ev <- function(comp, th) {
    iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L), th,
                        gradient = TRUE, hessian = TRUE)
  }
  # both through the per-pair reference: the links themselves, bit for bit
  Sys.setenv(ICLV_CPU_REFERENCE = "1")
  o_mnl <- ev(mnl, nl_theta(mnl, NULL))
  o_one <- ev(one, nl_theta(one, c(lambda_branded = 1, lambda_generic = 1)))
  Sys.unsetenv("ICLV_CPU_REFERENCE")
  expect_identical(o_one$loglik, o_mnl$loglik)
  expect_identical(o_one$loglik_i, o_mnl$loglik_i)
  k <- match(mnl$partable$name, one$partable$name)
  expect_lt(max(abs(o_one$gradient[k] - o_mnl$gradient)), 1e-12)
  expect_lt(max(abs(o_one$hessian[k, k] - o_mnl$hessian)) / max(abs(o_mnl$hessian)), 1e-12)
  # the fast kernels take the nests' general formulas there (block_nl_rows,
  # fast exp and log): the reference's MNL numbers to rounding
  o_fast <- ev(one, nl_theta(one, c(lambda_branded = 1, lambda_generic = 1)))
  expect_lt(abs(o_fast$loglik - o_mnl$loglik), 1e-13 * abs(o_mnl$loglik))
  expect_lt(max(abs(o_fast$loglik_i - o_mnl$loglik_i)), 1e-13 * max(abs(o_mnl$loglik_i)))
  expect_lt(max(abs(o_fast$gradient[k] - o_mnl$gradient)), 1e-12 * max(abs(o_mnl$gradient)))
  expect_lt(max(abs(o_fast$hessian[k, k] - o_mnl$hessian)) / max(abs(o_mnl$hessian)), 1e-12)
  # the fixed lambdas do not reach the optimizer, and the fit's LL is MNL's
  prob <- iclv:::.problem_new(one, U)
  expect_false(any(c("lambda_branded", "lambda_generic") %in% prob$free_names))
  # routing: the fast kernels, the rows through the atoms, the reference's numbers
  comp <- iclv:::.iclv_compile(nl_model(), d)
  expect_atom_routing(comp, user_draws(U), nl_theta(comp), label = "NL") # (helper-compiled.R)
})

# Two LVs (att with q1, q2; nor with q3) and the nests of nl_nests: the
# routing check of helper-compiled.R at jittered start values, lambdas lam,
# R draws per individual.
expect_two_lv_routing <- function(structural, u, lam, seed, R, fast_hessian, label) {
  d <- nl_data(n = 10L, seed = seed)
  m <- iclv_model("att =~ q1 + q2\nnor =~ q3", structural = structural,
                  choice = iclv_choice("nl", choice = "ch", utilities = u,
                                       available = list(B = "av_B", D = "av_D"), nests = nl_nests),
                  id = "ID", categories = 3)
  comp <- iclv:::.iclv_compile(m, d)
  set.seed(seed + 1)
  th <- comp$partable$start + stats::runif(nrow(comp$partable), -0.15, 0.15)
  th[comp$partable$role == "nest"] <- lam
  set.seed(seed + 2)
  U <- array(stats::rnorm(10L * R * 2L), c(10L, R, 2L))
  expect_atom_routing(comp, user_draws(U), th, fast_hessian = fast_hessian, label = label)
}

test_that("with an LV-on-LV term the nests take the fast LL pass and the reference Hessian, equal to it", {
  # d eta / d phi depends on the draw: the fast Hessian does not fold the
  # atoms' LV blocks draw by draw, so the engine takes the per-pair Hessian
  expect_two_lv_routing("att ~ age + nor", nl_util, c(0.55, 0.4), seed = 8L, R = 6L,
                        fast_hessian = FALSE, label = "NL, LV on LV")
})

test_that("two LVs in the nests' utilities (one times an attribute) take the fast Hessian, equal to the reference", {
  # the Hessian pass sums each row's C over the draws with eta_k and
  # eta_k eta_l (affine_sums): two LVs exercise the cross sums (k != l)
  u <- list(A = "asc_A + b_price * price_A + l_att * att + l_nor * nor * price_A",
            B = "asc_B + b_price * price_B + l_norB * nor", C = "asc_C + b_price * price_C",
            D = "b_price * price_D + l_attD * att", E = "asc_E + l_E * att")
  expect_two_lv_routing("att ~ age\nnor ~ age", u, c(0.45, 0.7), seed = 12L, R = 9L,
                        fast_hessian = TRUE, label = "NL, two LVs")
})

test_that("a nest whose alternatives are all unavailable in some rows, over two blocks of draws, equals the reference", {
  # (B and D together: both unavailable in some rows, so the nest drops out
  # there, I = -Inf; R = 150 draws: two blocks of 75)
  d <- nl_data(n = 14L, tasks = 4L, seed = 9L)
  expect_gt(sum(d$av_B == 0 & d$av_D == 0), 0)
  comp <- iclv:::.iclv_compile(nl_model(nests = list(bd = c("B", "D"), ac = c("A", "C"))), d)
  set.seed(3)
  th <- comp$partable$start + stats::runif(nrow(comp$partable), -0.2, 0.2)
  th[comp$partable$role == "nest"] <- c(0.3, 0.7)
  expect_atom_routing(comp, user_draws(nl_draws(14L, R = 150L, seed = 4L)), th, label = "NL, empty nest")
})

test_that("the nests a block of draws at a time: small, unit and large lambdas, large utilities, equal to the reference", {
  # (block_nl_rows: fast_exp_core and fast_log over the draws, the shifted
  # exponents clamped at -708)
  d <- nl_data(n = 12L, seed = 3L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  U <- nl_draws(12L, R = 9L)
  old <- Sys.getenv("ICLV_CPU_REFERENCE", NA)
  on.exit(if (is.na(old)) Sys.unsetenv("ICLV_CPU_REFERENCE") else Sys.setenv(ICLV_CPU_REFERENCE = old))
  ev <- function(th, ref, draws = U) {
    if (ref) Sys.setenv(ICLV_CPU_REFERENCE = "1") else Sys.unsetenv("ICLV_CPU_REFERENCE")
    iclv:::.engine_eval(iclv:::.engine_new(comp$c, user_draws(draws), n_threads = 1L), th, TRUE, TRUE, TRUE)
  }
  cases <- list(list(lam = c(0.01, 0.02)), list(lam = c(0.001, 0.9)), list(lam = c(0.999, 1)),
                list(lam = c(1.5, 2)), list(lam = c(0.6, 0.35), b_price = 300),
                list(lam = c(0.01, 0.35), b_price = 30), list(lam = c(0.6, 0.35), l_att = 200, k = 5))
  for (cs in cases) {
    th <- nl_theta(comp, c(lambda_branded = cs$lam[1], lambda_generic = cs$lam[2]))
    if (!is.null(cs$b_price)) th["b_price"] <- cs$b_price
    if (!is.null(cs$l_att)) th["l_att"] <- cs$l_att
    dr <- U * (if (is.null(cs$k)) 1 else cs$k)
    f <- ev(th, FALSE, dr)
    r <- ev(th, TRUE, dr)
    label <- paste(names(unlist(cs)), unlist(cs), collapse = " ")
    expect_true(is.finite(r$loglik), label = label)
    for (k in c("loglik_i", "gradient", "hessian"))
      expect_lt(max(abs(f[[k]] - r[[k]])) / max(abs(r[[k]])), 1e-12, label = paste(label, k))
  }
})

test_that("the lambda map: qlogis for the optimizer, natural values outside, exact chain rule", {
  d <- nl_data(n = 8L, seed = 4L)
  U <- nl_draws(8L, R = 5L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  th <- nl_theta(comp, c(lambda_branded = 0.3, lambda_generic = 0.85))
  prob <- iclv:::.problem_new(comp, U, start = th)
  tr <- prob$tr
  lam <- match(c("lambda_branded", "lambda_generic"), tr$free_names)
  expect_identical(tr$kind[lam], c("logit", "logit"))
  u <- iclv:::.to_internal(th, tr)
  expect_equal(unname(u[lam]), stats::qlogis(c(0.3, 0.85)), tolerance = 1e-15)
  expect_equal(iclv:::.to_natural(u, tr), th, tolerance = 1e-14)
  e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
  f <- function(v) iclv:::.engine_eval(e, iclv:::.to_natural(v, tr), gradient = FALSE)$loglik
  out <- iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE)
  der <- iclv:::.transform_derivs(u, tr, out$gradient[tr$free], hessian = out$hessian[tr$free, tr$free])
  h <- 1e-4
  for (i in lam) {
    dd <- replace(numeric(length(u)), i, h)
    expect_lt(abs(der$gradient[i] - (f(u + dd) - f(u - dd)) / (2 * h)) / abs(der$gradient[i]), 1e-6)
    expect_lt(abs(der$hessian[i, i] - (f(u + dd) - 2 * f(u) + f(u - dd)) / h^2) / abs(der$hessian[i, i]), 1e-4)
  }
  # starting values outside (0, 1) are refused, a fixed 1 is allowed
  expect_error(iclv:::.problem_new(comp, U, start = replace(th, "lambda_branded", 1)),
               class = "iclv_error_input", regexp = "lambda_branded")
  expect_error(iclv:::.problem_new(comp, U, start = replace(th, "lambda_generic", 0)),
               class = "iclv_error_input", regexp = "lambda_generic")
  expect_silent(iclv:::.problem_new(comp, U, fixed = c(lambda_branded = 1)))
  # the engine refuses a lambda that is not positive
  expect_error(iclv:::.engine_eval(e, replace(th, "lambda_branded", -0.1), gradient = FALSE),
               class = "iclv_error_input", regexp = "nesting parameter")
})

test_that("predict(type = 'prob'): rows sum to 1 and equal the reference probabilities", {
  d <- nl_data(seed = 7L)
  U <- nl_draws(12L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  th <- nl_theta(comp)
  e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
  P <- iclv:::.engine_predict(e, th)$prob
  expect_equal(rowSums(P), rep(1, nrow(P)), tolerance = 1e-14)
  ind <- rep(seq_len(comp$n_ind), diff(comp$c$row_ptr))
  ref <- t(vapply(seq_len(comp$c$n_rows), function(t) {
    rowMeans(vapply(seq_len(dim(U)[2]), function(r) {
      ref_choice_probs(comp$c, th, ref_eta(comp$c, th, ind[t], U[ind[t], r, ]), t)
    }, numeric(5)))
  }, numeric(5)))
  expect_lt(max(abs(P - ref)), 1e-12)
  expect_true(all(P[d$av_B == 0L, 2] == 0) && all(P[d$av_D == 0L, 4] == 0))
})

test_that("iclv_simulate draws nested logit choices; estimation recovers lambda within 3 SE", {
  util <- list(A = "asc_A + b_price * price_A + l_att * att", B = "asc_B + b_price * price_B",
               C = "asc_C + b_price * price_C", D = "b_price * price_D")
  m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
                  choice = iclv_choice("nl", choice = "ch", utilities = util, available = list(D = "av_D"),
                                       nests = nl_nests),
                  id = "ID", categories = 3)
  p <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
         tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
         asc_A = 0.3, b_price = -1.2, l_att = 0.6, asc_B = -0.2, asc_C = 0.25,
         lambda_branded = 0.5, lambda_generic = 0.7)
  d <- iclv_simulate(m, p, n = 800, n_tasks = 5, seed = 3, availability = 0.8)
  expect_setequal(unique(d$ch), c("A", "B", "C", "D"))
  expect_true(all(d$ch[d$av_D == 0L] != "D"))
  expect_error(iclv_simulate(m, replace(p, "lambda_branded", 1.2), n = 5, seed = 1),
               class = "iclv_error_input", regexp = "lambda_branded")
  fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  cf <- coef(fit)
  se <- sqrt(diag(vcov(fit)))
  z <- (cf - p[names(cf)]) / se
  expect_lt(max(abs(z)), 3, label = "max |z|")
  expect_lt(max(se[c("lambda_branded", "lambda_generic")]), 0.1)
  pr <- predict(fit, type = "prob")
  expect_equal(unname(rowSums(pr)), rep(1, nrow(d)), tolerance = 1e-12)
  expect_identical(colnames(pr), c("A", "B", "C", "D"))
})

test_that("nested logit specification errors are classed iclv_error_spec", {
  u <- nl_util
  spec_err <- function(..., re) {
    expect_error(iclv_choice(choice = "ch", utilities = u, ...), class = "iclv_error_spec", regexp = re)
  }
  spec_err("nl", nests = list(x = c("A", "B"), y = c("B", "C")), re = "overlap")
  spec_err("nl", nests = list(x = c("A", "A", "B")), re = "overlap")
  spec_err("nl", nests = list(x = c("A", "Z")), re = "not an alternative")
  spec_err("mnl", nests = nl_nests, re = "only for type")
  spec_err("nl", re = "needs 'nests'")
  spec_err("nl", nests = list(x = "A", y = c("B", "C")), re = "one alternative")
  spec_err("nl", nests = list(c("A", "B")), re = "named")
  spec_err("nl", nests = list(x = c("A", "B"), x = c("C", "D")), re = "twice")
  spec_err("nl", nests = list(x = character()), re = "character vector")
  spec_err("nl", nests = list(`a b` = c("A", "B")), re = "parameter name")
  spec_err("nl", nests = list(E = c("A", "B")), re = "no nest")
  expect_error(iclv_choice("nl", choice = "ch", nests = list(price = c("A", "B")),
                           utilities = list(A = "lambda_price * x", B = "b * y")),
               class = "iclv_error_spec", regexp = "lambda_price")
  ch <- iclv_choice("nl", choice = "ch", utilities = u, nests = nl_nests)
  expect_identical(names(ch$nests), c("branded", "generic", "E"))
  expect_identical(ch$nest_params, c("lambda_branded", "lambda_generic", NA))
  expect_output(print(ch), "nest branded \\(lambda_branded\\): A, B")
})

test_that("nested logit models keep their nests in cluster shards", {
  comp <- iclv:::.iclv_compile(nl_model(), nl_data(seed = 6L))
  expect_shards_add_up(comp, user_draws(nl_draws(12L)), nl_theta(comp)) # (helper-compiled.R)
})

test_that("the CPU memory plan equals the engine's account for a nested logit", {
  held <- expect_cpu_plan_is_account(nl_model(), nl_data(), iclv_draws("halton", 20, seed = 1)) # (helper-compiled.R)
  expect_true("thread_choice_scratch" %in% held)
})

test_that("CUDA equals the CPU engine for the nested logit (LL, scores, gradient, Hessian; 1e-12)", {
  skip_if_no_gpu()
  d <- nl_data(n = 30L, tasks = 3L, seed = 8L)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 40, seed = 1), 30L, 1L)
  comp <- iclv:::.iclv_compile(nl_model(), d)
  for (lam in list(c(0.6, 0.35), c(1, 1))) {
    th <- nl_theta(comp, c(lambda_branded = lam[1], lambda_generic = lam[2]))
    expect_cuda_equals_cpu(comp, spec, th, paste(lam, collapse = ",")) # (helper-gpu.R)
  }
})

test_that("the CUDA memory plan equals the CUDA engine's account for a nested logit", {
  skip_if_no_gpu()
  # (helper-gpu.R; the Hessian's pair scratch holds the link's (J + M)^2 block)
  expect_cuda_plan_is_account(nl_model(), nl_data(n = 30L, tasks = 3L, seed = 8L), iclv_draws("halton", 40, seed = 1),
                              function(comp) nl_theta(comp))
})
