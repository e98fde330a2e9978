# Several choice parts in one model (R/parts.R): the one-part identity with
# the plain model, the engine against the compiled-list reference and a
# likelihood written by hand from the data frame, derivatives (the relative
# scale included, at 1 too) against finite differences, per-part
# log-likelihoods, predictions, simulation, recovery and bad input.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

pt_rp <- function(available = NULL, choice = "ch_rp") {
  iclv_choice("mnl", choice = choice, available = available,
              utilities = list(car = "asc_car + b_time * time_car + l_att * att", bus = "b_time * time_bus"))
}
pt_sp <- function(scale = "mu_sp", type = "mnl") {
  iclv_choice(type, choice = "ch_sp", scale = scale, available = if (type == "mnl") list(bike = "av_bike"),
              utilities = if (type == "mnl") {
                list(car = "asc_car_sp + b_time * time_car + b_cost * cost_car + l_att * att",
                     bus = "b_time * time_bus", bike = "asc_bike + b_time * time_bike")
              } else list(car = "asc_car_sp + b_time * time_car + l_att * att", bus = "b_time * time_bus"))
}
pt_model <- function(choice) {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = choice, id = "ID", categories = 3)
}

# n individuals, each with `rp` RP rows then `sp` SP rows; SP-only columns
# (cost_car, av_bike) are NA in RP rows, and ch_rp / ch_sp NA outside their
# part.
pt_data <- function(n = 10L, rp = 2L, sp = 3L, seed = 1L) {
  set.seed(seed)
  tk <- rp + sp
  nr <- n * tk
  d <- data.frame(ID = rep(seq_len(n), each = tk), age = rep(stats::rnorm(n), each = tk))
  for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tk)
  is_sp <- rep(c(rep(FALSE, rp), rep(TRUE, sp)), n)
  for (a in c("time_car", "time_bus", "time_bike", "cost_car")) d[[a]] <- stats::rnorm(nr)
  d$cost_car[!is_sp] <- NA
  d$av_bike <- ifelse(is_sp, rep_len(c(1L, 0L, 1L), nr), NA)
  d$ch_rp <- ifelse(is_sp, NA, sample(c("car", "bus"), nr, TRUE))
  d$ch_sp <- ifelse(is_sp, sample(c("car", "bus", "bike"), nr, TRUE), NA)
  d$ch_sp[is_sp & d$av_bike == 0L & d$ch_sp == "bike"] <- "bus"
  d
}

pt_theta <- function(comp, mu = 0.7) {
  th <- c(zeta_q1 = 1, tau_q1_1 = -0.8, tau_q1_2 = 0.9, zeta_q2 = 0.7, tau_q2_1 = -0.4,
          tau_q2_2 = 0.6, zeta_q3 = 1.1, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.4,
          asc_car = 0.3, b_time = -0.9, l_att = 0.6, asc_car_sp = -0.2, b_cost = -0.5, asc_bike = 0.25,
          mu_sp = mu)
  th[comp$partable$name]
}

pt_draws <- function(n, R = 6L, seed = 11L) {
  set.seed(seed)
  array(stats::rnorm(n * R), c(n, R, 1L))
}

# The simulated log-likelihood written by hand from the data frame (not the
# compiled list): ordered probit indicators (zeta eta, thresholds tau), and
# in each row the MNL of its part's available alternatives, the SP
# utilities multiplied by mu. `indicators = FALSE`: the choice part only;
# `parts`: the parts whose rows count.
pt_hand_loglik <- function(d, th, U, indicators = TRUE, parts = c("rp", "sp")) {
  ids <- unique(d$ID)
  ll <- 0
  for (i in seq_along(ids)) {
    di <- d[d$ID == ids[i], , drop = FALSE]
    lr <- vapply(seq_len(dim(U)[2]), function(r) {
      eta <- th[["gamma_att_age"]] * di$age[1] + U[i, r, 1]
      l <- 0
      if (indicators) {
        for (q in 1:3) {
          z <- th[[paste0("zeta_q", q)]]
          tau <- c(-Inf, th[[sprintf("tau_q%d_1", q)]], th[[sprintf("tau_q%d_2", q)]], Inf)
          y <- di[[paste0("q", q)]][1]
          l <- l + log(stats::pnorm(tau[y + 1] - z * eta) - stats::pnorm(tau[y] - z * eta))
        }
      }
      for (t in seq_len(nrow(di))) {
        x <- di[t, ]
        if (!is.na(x$ch_rp) && "rp" %in% parts) {
          V <- c(car = th[["asc_car"]] + th[["b_time"]] * x$time_car + th[["l_att"]] * eta,
                 bus = th[["b_time"]] * x$time_bus)
          l <- l + V[[x$ch_rp]] - log(sum(exp(V)))
        }
        if (!is.na(x$ch_sp) && "sp" %in% parts) {
          V <- th[["mu_sp"]] * c(car = th[["asc_car_sp"]] + th[["b_time"]] * x$time_car + th[["b_cost"]] * x$cost_car +
                                   th[["l_att"]] * eta,
                                 bus = th[["b_time"]] * x$time_bus,
                                 bike = th[["asc_bike"]] + th[["b_time"]] * x$time_bike)
          if (x$av_bike == 0L) V <- V[c("car", "bus")]
          l <- l + V[[x$ch_sp]] - log(sum(exp(V)))
        }
      }
      l
    }, numeric(1))
    mx <- max(lr)
    ll <- ll + mx + log(mean(exp(lr - mx)))
  }
  ll
}

test_that("a model of one choice part is the plain single-choice model exactly (LL, gradient, Hessian)", {
  d <- pt_data(n = 8L, rp = 3L, sp = 0L)
  d$av_car <- rep_len(c(1L, 1L, 0L), nrow(d))
  d$ch_rp[d$av_car == 0L] <- "bus"
  U <- pt_draws(8L)
  for (av in list(NULL, list(car = "av_car"))) {
    plain <- iclv:::.iclv_compile(pt_model(pt_rp(av)), d)
    one <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp(av))), d)
    expect_identical(one$c, plain$c)
    expect_identical(one$alternatives, c("rp.car", "rp.bus"))
    th <- pt_theta(plain)
    ev <- lapply(list(plain, one), function(cm) {
      e <- iclv:::.engine_new(cm$c, user_draws(U), n_threads = 1L)
      on.exit(iclv:::.engine_release(e))
      iclv:::.engine_eval(e, th, gradient = TRUE, hessian = TRUE)
    })
    expect_identical(ev[[2]]$loglik, ev[[1]]$loglik)
    expect_identical(ev[[2]]$gradient, ev[[1]]$gradient)
    expect_identical(ev[[2]]$hessian, ev[[1]]$hessian)
  }
})

test_that("two parts with a relative scale: the engine equals the compiled-list reference and a likelihood by hand (1e-10)", {
  d <- pt_data()
  U <- pt_draws(10L)
  comp <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp(), sp = pt_sp())), d)
  expect_identical(comp$alternatives, c("rp.car", "rp.bus", "sp.car", "sp.bus", "sp.bike"))
  expect_identical(comp$part, rep(rep(1:2, c(2L, 3L)), 10L))
  expect_identical(comp$c$n_mult, nrow(d))
  for (mu in c(0.7, 1, 1.6)) {
    th <- pt_theta(comp, mu)
    e <- iclv:::.engine_new(comp$c, user_draws(U), n_threads = 1L)
    out <- iclv:::.engine_eval(e, th, gradient = FALSE)
    iclv:::.engine_release(e)
    ref <- ref_loglik(comp$c, th, U)$loglik
    hand <- pt_hand_loglik(d, th, U)
    expect_lt(abs(out$loglik - ref) / abs(ref), 1e-10, label = paste("reference, mu", mu))
    expect_lt(abs(out$loglik - hand) / abs(hand), 1e-10, label = paste("by hand, mu", mu))
    # the per-part choice log-likelihoods (summary's "choice:<part>")
    pl <- iclv:::.parts_ll(comp, th, user_draws(U), n_threads = 1L)
    expect_named(pl, c("choice:rp", "choice:sp"))
    for (p in c("rp", "sp")) {
      expect_lt(abs(pl[[paste0("choice:", p)]] - pt_hand_loglik(d, th, U, FALSE, p)), 1e-9, label = p)
    }
  }
})

test_that("two-part gradients and Hessians (the relative scale included, at 1 too) match finite differences", {
  d <- pt_data(n = 8L, seed = 2L)
  U <- pt_draws(8L, R = 5L)
  comp <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp(), sp = pt_sp())), d)
  for (mu in c(0.7, 1)) {
    th <- pt_theta(comp, mu)
    for (refpath in c("0", "1")) out <- expect_engine_fd(comp$c, user_draws(U), th, refpath, paste0(" mu ", mu))
    # the scale is exercised (at exactly 1 as well: a multiplier of 1 kept its derivatives)
    expect_gt(abs(out$gradient[match("mu_sp", names(th))]), 1e-3)
    expect_gt(abs(out$hessian[match("mu_sp", names(th)), match("mu_sp", names(th))]), 1e-3)
  }
})

test_that("a part without rows adds nothing: the two-part model equals the first part alone", {
  d <- pt_data(n = 8L, rp = 3L, sp = 0L)
  d$cost_car <- d$av_bike <- NA
  d$ch_sp <- NA_character_
  U <- pt_draws(8L)
  two <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp(), sp = pt_sp())), d)
  one <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp())), d)
  th2 <- pt_theta(two)
  th1 <- th2[one$partable$name]
  ll <- function(cm, th) {
    e <- iclv:::.engine_new(cm$c, user_draws(U), n_threads = 1L)
    on.exit(iclv:::.engine_release(e))
    iclv:::.engine_eval(e, th, gradient = TRUE)
  }
  a <- ll(two, th2)
  b <- ll(one, th1)
  expect_equal(a$loglik, b$loglik, tolerance = 1e-13)
  expect_equal(unname(a$gradient[match(names(th1), names(th2))]), unname(b$gradient), tolerance = 1e-12)
  expect_true(all(a$gradient[match(c("asc_car_sp", "b_cost", "asc_bike", "mu_sp"), names(th2))] == 0))
  expect_named(iclv:::.parts_ll(two, th2, user_draws(U), n_threads = 1L), "choice:rp")
})

test_that("predictions, printing and simulation follow the parts", {
  m <- pt_model(list(rp = pt_rp(), sp = pt_sp()))
  expect_output(print(m), "2 MNL parts: rp \\(column 'ch_rp', 2 alternatives\\); sp \\(column 'ch_sp', 3 alternatives, scale 'mu_sp'\\)")
  expect_output(print(m$choice), "part sp: column 'ch_sp', 3 alternatives, relative scale 'mu_sp'")
  expect_identical(m$partable$role[m$partable$name == "mu_sp"], "scale")
  expect_output(print(pt_sp()), "relative scale 'mu_sp'")
  tr <- pt_theta(iclv:::.iclv_compile(m, pt_data()))
  d <- iclv_simulate(m, tr, n = 20, n_tasks = c(rp = 1, sp = 2), seed = 3, availability = c(sp.bike = 0.5))
  expect_identical(nrow(d), 60L)
  sp_row <- rep(c(FALSE, TRUE, TRUE), 20)
  expect_identical(is.na(d$ch_rp), sp_row)
  expect_identical(is.na(d$ch_sp), !sp_row)
  expect_identical(is.na(d$av_bike), !sp_row)
  expect_true(all(d$ch_rp[!sp_row] %in% c("car", "bus")))
  expect_true(all(d$ch_sp[sp_row] %in% c("car", "bus", "bike")))
  expect_true(all(d$ch_sp[sp_row & d$av_bike %in% 0L] != "bike"))
  expect_identical(nrow(iclv_simulate(m, tr, n = 4, n_tasks = 2, seed = 1)), 16L) # 2 tasks of each part
  expect_error(iclv_simulate(m, tr, n = 4, n_tasks = c(xx = 2)), class = "iclv_error_control")
  # (a tiny data set: curvature warnings are not the point here)
  fit <- suppressWarnings(iclv(m, d, draws = iclv_draws("halton", 20, seed = 1), backend = "cpu", start = tr))
  P <- predict(fit)
  expect_identical(colnames(P), c("rp.car", "rp.bus", "sp.car", "sp.bus", "sp.bike"))
  expect_equal(unname(rowSums(P)), rep(1, 60), tolerance = 1e-12)
  expect_true(all(P[!sp_row, 3:5] == 0) && all(P[sp_row, 1:2] == 0))
  expect_true(all(P[sp_row & d$av_bike %in% 0L, "sp.bike"] == 0))
  expect_true(all(c("choice", "choice:rp", "choice:sp") %in% names(fit$loglik_components)))
  chosen <- ifelse(sp_row, paste0("sp.", d$ch_sp), paste0("rp.", d$ch_rp))
  expect_equal(unname(fitted(fit)), unname(P[cbind(seq_len(60), match(chosen, colnames(P)))]))
  res <- residuals(fit, newdata = d[sp_row, ])
  expect_equal(unname(rowSums(res)), rep(0, 40), tolerance = 1e-12)
  expect_true(all(res[, 1:2] == 0))
  comps <- summary(fit)$stats$components
  expect_identical(comps$n_obs[comps$component == "choice:sp"], 40L)
  expect_output(print(summary(fit)), "choice:sp")
})

test_that("recovery: an RP + SP model with a relative scale, estimates within 3 SE of the truth", {
  skip_on_cran()
  m <- pt_model(list(rp = pt_rp(), sp = pt_sp()))
  tr <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
          tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5,
          asc_car = 0.3, b_time = -1, l_att = 0.7, asc_car_sp = -0.2, b_cost = -0.5, asc_bike = -0.4,
          mu_sp = 0.6)
  d <- iclv_simulate(m, tr, n = 400, n_tasks = c(rp = 2, sp = 4), seed = 3, availability = c(sp.bike = 0.7))
  fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
  expect_identical(fit$convergence$code, 0L)
  z <- (coef(fit) - tr[names(coef(fit))]) / sqrt(diag(vcov(fit)))
  expect_lt(max(abs(z)), 3)
  expect_lt(abs(coef(fit)[["mu_sp"]] - 0.6), 0.2)
})

test_that("bad choice parts are classed errors", {
  d <- pt_data(n = 4L)
  m <- pt_model(list(rp = pt_rp(), sp = pt_sp()))
  # a row in no part, a row in two parts
  d0 <- d
  d0$ch_rp[1] <- NA
  expect_error(iclv:::.iclv_compile(m, d0), "row 1 \\(id 1\\) is in no choice part", class = "iclv_error_data")
  d2 <- d
  d2$ch_sp[1] <- "car"
  d2$av_bike[1] <- 1L
  expect_error(iclv:::.iclv_compile(m, d2), "row 1 \\(id 1\\) is in two choice parts", class = "iclv_error_data")
  # a choice that is not an alternative of its part names the data row
  d3 <- d
  d3$ch_rp[2] <- "bike"
  expect_error(iclv:::.iclv_compile(m, d3), "row 2", class = "iclv_error_data")
  # a scale on the only part, on a plain choice, on every part
  expect_error(pt_model(list(sp = pt_sp())), "only choice part", class = "iclv_error_spec")
  expect_error(pt_model(pt_sp()), "several choice parts", class = "iclv_error_spec")
  expect_error(pt_model(list(rp = pt_rp(), sp = pt_sp(), sp2 = iclv_choice("mnl", choice = "c2",
                                                                              utilities = list(a = "x1 * b", b = "0"),
                                                                              scale = "mu2"))),
               NA)
  all_scaled <- list(rp = iclv_choice("mnl", choice = "ch_rp", utilities = list(car = "asc_car", bus = "0"), scale = "m1"),
                     sp = pt_sp())
  expect_error(pt_model(all_scaled), "at least one part", class = "iclv_error_spec")
  # mixed types, a shared choice column, unnamed parts, a scale named like a parameter
  expect_error(pt_model(list(rp = pt_rp(), sp = pt_sp(scale = NULL, type = "probit"))),
               "type \"mnl\" only", class = "iclv_error_spec")
  expect_error(pt_model(list(rp = pt_rp(), sp = pt_rp())), "share the choice column", class = "iclv_error_spec")
  expect_error(pt_model(list(pt_rp(), pt_sp())), "named by its part", class = "iclv_error_spec")
  expect_error(pt_model(list(rp = pt_rp(), sp = pt_sp(scale = "b_time"))), "also a parameter", class = "iclv_error_spec")
  expect_error(pt_model(list(rp = pt_rp(), sp = "x")), "iclv_choice", class = "iclv_error_spec")
})

test_that("elasticities of a model with parts (the relative scale included) equal finite differences of predict()", {
  m <- pt_model(list(rp = pt_rp(), sp = pt_sp()))
  tr <- pt_theta(iclv:::.iclv_compile(m, pt_data()))
  d <- iclv_simulate(m, tr, n = 10, n_tasks = c(rp = 1, sp = 2), seed = 8)
  fit <- iclv(m, d, draws = iclv_draws("halton", 20, seed = 1), backend = "cpu", fixed = tr)
  e <- iclv_elasticities(fit, attribute = "time_car")
  h <- 1e-5
  up <- dn <- d
  up$time_car <- up$time_car + h
  dn$time_car <- dn$time_car - h
  P <- predict(fit, newdata = d)
  fd <- (predict(fit, newdata = up) - predict(fit, newdata = dn)) / (2 * h) * d$time_car / P
  ok <- P > 0
  expect_identical(unname(is.na(e$per_row)), unname(!ok))
  expect_equal(unname(e$per_row[ok]), unname(fd[ok]), tolerance = 1e-6)
})

test_that("CUDA equals the CPU engine for a model with parts, the scale at 0.7 and at 1 (LL, scores, gradient, Hessian)", {
  skip_if_no_gpu()
  d <- pt_data(n = 30L, seed = 8L)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 40, seed = 1), 30L, 1L)
  comp <- iclv:::.iclv_compile(pt_model(list(rp = pt_rp(), sp = pt_sp())), d)
  for (mu in c(0.7, 1)) expect_cuda_equals_cpu(comp, spec, pt_theta(comp, mu), paste("parts, mu", mu)) # (helper-gpu.R)
})

test_that("the CPU memory plan equals the engine's account for a model with parts", {
  expect_cpu_plan_is_account(pt_model(list(rp = pt_rp(), sp = pt_sp())), pt_data(), iclv_draws("halton", 20, seed = 1)) # (helper-compiled.R)
})
