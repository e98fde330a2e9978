# A slow, obviously-correct pure-R simulated log-likelihood that reads the
# same compiled list (src/iclv_model.h) and draw array as the C engine.
# Loops everywhere; pnorm / plogis / dnorm; the log of the mean of exp() over
# draws with a max shift. Used only as the reference in tests.

#' LVs of individual n (1-based) at the draw vector e (K), in lv_order.
ref_eta <- function(cm, theta, n, e) {
  K <- cm$n_lv
  eta <- rep(NA_real_, K)
  for (k in cm$lv_order + 1L) {
    v <- e[k]
    if (cm$st_ptr[k] < cm$st_ptr[k + 1L]) {
      terms <- (cm$st_ptr[k] + 1L):cm$st_ptr[k + 1L]
      # a term on the LV's own draw is its free standard deviation: it
      # replaces the unit coefficient (`lv ~~ lv`)
      if (any(cm$st_src_type[terms] == 2L & cm$st_src[terms] == k - 1L)) v <- 0
      for (t in terms) {
        src <- if (cm$st_src_type[t] == 0L) {
          cm$cov[(n - 1L) * cm$n_cov + cm$st_src[t] + 1L]
        } else if (cm$st_src_type[t] == 2L) {
          e[cm$st_src[t] + 1L]
        } else {
          eta[cm$st_src[t] + 1L]
        }
        v <- v + theta[cm$st_par[t] + 1L] * src
      }
    }
    eta[k] <- v
  }
  eta
}

#' Log-probability of indicator observation o (1-based) given eta.
ref_indicator <- function(cm, theta, eta, o) {
  m <- cm$obs_ind[o] + 1L
  y <- cm$obs_val[o]
  s <- 0
  if (cm$ind_load_ptr[m] < cm$ind_load_ptr[m + 1L]) {
    for (q in (cm$ind_load_ptr[m] + 1L):cm$ind_load_ptr[m + 1L])
      s <- s + theta[cm$ind_load_par[q] + 1L] * eta[cm$ind_load_lv[q] + 1L]
  }
  type <- cm$ind_type[m]
  if (type %in% c(1L, 2L)) {
    C <- cm$ind_ncat[m]
    tau <- c(-Inf, theta[cm$ind_thr[m] + seq_len(C - 1L)], Inf)
    F <- if (type == 1L) stats::pnorm else stats::plogis
    # an intercept (`y ~ 1`) and a scale (`y ~~ y`) where the compiled
    # indicator has them (ind_icpt, ind_sd >= 0): 0 and 1 otherwise
    alpha <- if (cm$ind_icpt[m] >= 0L) theta[cm$ind_icpt[m] + 1L] else 0
    sigma <- if (cm$ind_sd[m] >= 0L) theta[cm$ind_sd[m] + 1L] else 1
    return(log(F((tau[y + 1L] - alpha - s) / sigma) - F((tau[y] - alpha - s) / sigma)))
  }
  if (type == 3L) {
    return(stats::dnorm(y, theta[cm$ind_icpt[m] + 1L] + s, theta[cm$ind_sd[m] + 1L], log = TRUE))
  }
  a <- theta[cm$ind_icpt[m] + 1L] + s
  F <- if (type == 4L) stats::pnorm else stats::plogis
  if (y == 1) log(F(a)) else log(F(-a))
}

#' Utilities (n_alt) of choice row t (1-based) given eta.
ref_utilities <- function(cm, theta, eta, t) {
  # a test may give the utilities as R evaluates the user's strings
  # (ref_utilities_by_r): nonlinear utilities (R/tape.R) are checked so
  if (!is.null(cm$ref_V)) return(cm$ref_V(theta, eta, t))
  V <- numeric(cm$n_alt)
  for (j in seq_len(cm$n_alt)) {
    if (cm$ut_ptr[j] < cm$ut_ptr[j + 1L]) {
      for (u in (cm$ut_ptr[j] + 1L):cm$ut_ptr[j + 1L]) {
        x <- if (cm$ut_col[u] >= 0L) cm$X[(t - 1L) * cm$n_xcol + cm$ut_col[u] + 1L] else 1
        f <- if (cm$ut_lv[u] >= 0L) eta[cm$ut_lv[u] + 1L] else 1
        V[j] <- V[j] + theta[cm$ut_par[u] + 1L] * x * f
      }
    }
  }
  V
}

#' The utility multiplier of row t (best-worst's worst stage: -1 or -mu).
ref_row_mult <- function(cm, theta, t) {
  if (is.null(cm$n_mult) || cm$n_mult == 0L) return(1)
  p <- cm$mult_par[t]
  cm$mult_sign[t] * (if (p >= 0L) theta[p + 1L] else 1)
}

#' Choice probabilities (n_alt) of row t given eta. Unavailable alternatives
#' get 0; a binary probit row with one alternative available gives it 1.
ref_choice_probs <- function(cm, theta, eta, t) {
  V <- ref_utilities(cm, theta, eta, t) * ref_row_mult(cm, theta, t)
  av <- if (cm$n_avail == 0L) rep(TRUE, cm$n_alt) else
    cm$avail[(t - 1L) * cm$n_alt + seq_len(cm$n_alt)] != 0L
  if (cm$choice_type == 2L) {
    if (!all(av)) return(as.double(av))
    return(c(stats::pnorm(V[1] - V[2]), stats::pnorm(V[2] - V[1])))
  }
  if (cm$choice_type == 3L) return(ref_nl_probs(cm, theta, V, av))
  if (cm$choice_type == 4L) return(ref_ordered_probs(cm, theta, V[1]))
  p <- ifelse(av, exp(V), 0)
  p / sum(p)
}

#' Ordered choice probabilities (n_ocat categories) at the index V:
#' P(c) = F(tau_c - V) - F(tau_{c-1} - V), tau_0 = -Inf, tau_C = Inf,
#' F = pnorm or plogis, directly (no log space); in the upper tail as
#' F(V - tau_{c-1}) - F(V - tau_c) (F symmetric), which R's F keeps exact.
ref_ordered_probs <- function(cm, theta, V) {
  C <- cm$n_ocat
  tau <- c(-Inf, theta[cm$ocat_thr + seq_len(C - 1L)], Inf)
  F <- if (cm$ocat_logit == 1L) stats::plogis else stats::pnorm
  a <- tau[-(C + 1L)] - V
  b <- tau[-1L] - V
  ifelse(a > 0, F(-a) - F(-b), F(b) - F(a))
}

#' Nested logit probabilities (n_alt) from utilities V and availability av,
#' the textbook formula without log-space shifts: for j in nest m,
#' P(j) = exp(V_j / l_m) / sum_{k in m} exp(V_k / l_m) *
#'        exp(l_m I_m) / sum_n exp(l_n I_n), I_m = log sum_{k in m} exp(V_k / l_m),
#' over available alternatives; nests without one drop out.
ref_nl_probs <- function(cm, theta, V, av) {
  lam <- ifelse(cm$nest_par >= 0L, theta[cm$nest_par + 1L], 1)
  nest <- cm$nest_of + 1L
  I <- rep(-Inf, cm$n_nest)
  for (a in seq_len(cm$n_nest)) {
    k <- which(nest == a & av)
    if (length(k)) I[a] <- log(sum(exp(V[k] / lam[a])))
  }
  denom <- sum(exp(lam * I))
  p <- numeric(cm$n_alt)
  for (j in which(av)) {
    a <- nest[j]
    p[j] <- exp(V[j] / lam[a]) / exp(I[a]) * exp(lam[a] * I[a]) / denom
  }
  p
}

#' Per-draw log-likelihoods of every individual: list(l = N x R matrix,
#' parts = N x R x (n_indic + 1) array of per-component values).
ref_draw_loglik <- function(cm, theta, user) {
  N <- cm$n_ind
  R <- dim(user)[2]
  M <- cm$n_indic
  l <- matrix(0, N, R)
  parts <- array(0, c(N, R, M + 1L))
  for (n in seq_len(N)) {
    for (r in seq_len(R)) {
      eta <- ref_eta(cm, theta, n, user[n, r, ])
      if (cm$obs_ptr[n] < cm$obs_ptr[n + 1L]) {
        for (o in (cm$obs_ptr[n] + 1L):cm$obs_ptr[n + 1L]) {
          m <- cm$obs_ind[o] + 1L
          parts[n, r, m] <- parts[n, r, m] + ref_indicator(cm, theta, eta, o)
        }
      }
      if (cm$choice_type != 0L && cm$row_ptr[n] < cm$row_ptr[n + 1L]) {
        for (t in (cm$row_ptr[n] + 1L):cm$row_ptr[n + 1L]) {
          p <- ref_choice_probs(cm, theta, eta, t)
          parts[n, r, M + 1L] <- parts[n, r, M + 1L] + log(p[cm$y[t] + 1L])
        }
      }
      l[n, r] <- sum(parts[n, r, ])
    }
  }
  list(l = l, parts = parts)
}

#' log of the mean of exp(x), max-shifted.
ref_log_mean_exp <- function(x) {
  mx <- max(x)
  mx + log(mean(exp(x - mx)))
}

#' The simulated log-likelihood: list(loglik, loglik_i, l (N x R)).
ref_loglik <- function(cm, theta, user) {
  dl <- ref_draw_loglik(cm, theta, user)
  lli <- apply(dl$l, 1, ref_log_mean_exp)
  list(loglik = sum(lli), loglik_i = lli, l = dl$l, parts = dl$parts)
}

#' Reference predictions: integrated choice probabilities (n_rows x n_alt),
#' posterior LV means and sds (N x K), per-component simulated LL.
ref_predict <- function(cm, theta, user) {
  N <- cm$n_ind
  R <- dim(user)[2]
  K <- cm$n_lv
  rl <- ref_loglik(cm, theta, user)
  prob <- matrix(0, cm$n_rows, cm$n_alt)
  mean <- sd <- matrix(0, N, K)
  for (n in seq_len(N)) {
    w <- exp(rl$l[n, ] - max(rl$l[n, ]))
    w <- w / sum(w)
    etas <- t(vapply(seq_len(R), function(r) ref_eta(cm, theta, n, user[n, r, ]), numeric(K)))
    etas <- matrix(etas, R, K)
    mean[n, ] <- colSums(w * etas)
    sd[n, ] <- sqrt(colSums(w * sweep(etas, 2, mean[n, ])^2))
    if (cm$choice_type != 0L && cm$row_ptr[n] < cm$row_ptr[n + 1L]) {
      for (t in (cm$row_ptr[n] + 1L):cm$row_ptr[n + 1L]) {
        for (r in seq_len(R)) prob[t, ] <- prob[t, ] + ref_choice_probs(cm, theta, etas[r, ], t) / R
      }
    }
  }
  comp <- vapply(seq_len(cm$n_indic + 1L), function(c)
    sum(apply(rl$parts[, , c, drop = FALSE], 1, ref_log_mean_exp)), 0)
  list(prob = prob, lv_mean = mean, lv_sd = sd, comp_ll = comp)
}

#' The log-probability of one ranked or best-worst task read from its data,
#' without the stage rows of R/rank.R: V (J) the utilities, av (J) logical
#' availability, ranks the 1-based alternatives ranked best first (NA ends
#' the ranking); "bestworst": ranks = c(best, worst), worst utilities -mu V.
ref_rank_task <- function(V, av, ranks, type = "ranked", mu = 1) {
  lp <- 0
  left <- av
  ranks <- ranks[seq_len(if (anyNA(ranks)) which(is.na(ranks))[1] - 1L else length(ranks))]
  for (k in seq_along(ranks)) {
    u <- if (type == "bestworst" && k == 2L) -mu * V else V
    lp <- lp + u[ranks[k]] - log(sum(exp(u[left])))
    left[ranks[k]] <- FALSE
  }
  lp
}

#' The simulated log-likelihood of a ranked or best-worst model from the
#' data: cm is the model compiled as an MNL of the first rank (one row per
#' data row; it gives the indicators and the utilities), theta its
#' parameters, Rk (rows x ranks) the ranked alternatives (1-based, NA), A
#' (rows x J) availability, mu the worst stage's scale. list(loglik,
#' loglik_i, stage (N x R x stages) per-stage log-probabilities).
ref_rank_loglik <- function(cm, theta, user, Rk, A, type = "ranked", mu = 1) {
  N <- cm$n_ind
  R <- dim(user)[2]
  M <- cm$n_indic
  l <- matrix(0, N, R)
  stage <- array(0, c(N, R, ncol(Rk)))
  for (n in seq_len(N)) {
    for (r in seq_len(R)) {
      eta <- ref_eta(cm, theta, n, user[n, r, ])
      if (cm$obs_ptr[n] < cm$obs_ptr[n + 1L]) {
        for (o in (cm$obs_ptr[n] + 1L):cm$obs_ptr[n + 1L]) l[n, r] <- l[n, r] + ref_indicator(cm, theta, eta, o)
      }
      if (cm$row_ptr[n] < cm$row_ptr[n + 1L]) {
        for (t in (cm$row_ptr[n] + 1L):cm$row_ptr[n + 1L]) {
          V <- ref_utilities(cm, theta, eta, t)
          for (k in seq_len(ncol(Rk))) { # each stage on its own, then the whole task
            if (is.na(Rk[t, k])) next
            stage[n, r, k] <- stage[n, r, k] +
              ref_rank_task(V, A[t, ], Rk[t, seq_len(k)], type, mu) -
              (if (k > 1L) ref_rank_task(V, A[t, ], Rk[t, seq_len(k - 1L)], type, mu) else 0)
          }
          l[n, r] <- l[n, r] + ref_rank_task(V, A[t, ], Rk[t, ], type, mu)
        }
      }
    }
  }
  lli <- apply(l, 1, ref_log_mean_exp)
  list(loglik = sum(lli), loglik_i = lli, l = l, stage = stage)
}

#' Attaches to compiled list cm a utility function that evaluates the
#' utility strings `u` (named by alternative, "0" allowed) with R on data
#' row t of `data` (the rows of cm), the parameters by name (theta named as
#' the parameter table) and the draw dimensions by name (`dims`).
ref_utilities_by_r <- function(cm, u, data, dims) {
  ex <- lapply(u, str2lang)
  cm$ref_V <- function(theta, eta, t) {
    env <- c(as.list(theta), as.list(data[t, , drop = FALSE]), stats::setNames(as.list(eta), dims))
    vapply(ex, function(e) as.double(eval(e, env, asNamespace("stats"))), numeric(1), USE.NAMES = FALSE)
  }
  cm
}
