# The stats generics for a fitted ICLV model ("iclv"), and tidy/glance
# through the generics package.

#' @importFrom stats coef vcov logLik nobs confint fitted update predict pnorm qnorm printCoefmat anova residuals
#' @importFrom generics tidy glance
NULL

#' @importFrom generics tidy
#' @export
generics::tidy

#' @importFrom generics glance
#' @export
generics::glance

# Convergence in scaled terms: the scaled gradient g'(-H)^-1 g (unit-free:
# twice the gain a Newton step would still make), then max|gradient|.
.conv_line <- function(cv, sg = cv$scaled_gradient) {
  status <- if (cv$code == 0L) "converged" else sprintf("NOT converged (code %d)", cv$code)
  sprintf("%s (%s); %d iterations, %d evaluations; scaled gradient g'(-H)^-1 g = %s, max|gradient| %.2e",
          status, sub("^converged: ", "", cv$message), cv$iterations, cv$evaluations,
          if (is.null(sg) || is.na(sg)) "NA" else formatC(sg, format = "e", digits = 2L), cv$gradient_norm)
}

.draws_line <- function(d) {
  sprintf("%s, %s per individual%s", d$type, format(d$n),
          if (!is.null(d$seed) && !is.na(d$seed)) sprintf(" (seed %s)", format(d$seed)) else "")
}

.backend_line <- function(b) {
  dev <- if (!is.na(b$device)) sprintf(" device %d (%s)", b$device, b$device_name) else ""
  sprintf("%s%s -- %s", b$name, dev, b$reason)
}

#' Methods for fitted ICLV models
#'
#' `print()` shows the main results, `summary()` the parameter tables by block
#' (measurement, structural, choice) with standard errors, z values and
#' p-values, and the fit statistics. `coef()` returns every parameter (fixed
#' ones included), `vcov()` the covariance matrix of the chosen type over all
#' parameters (rows and columns of fixed parameters are `NA`), `logLik()` the
#' simulated log-likelihood with `df` = number of free parameters and `nobs`
#' = number of individuals (so [AIC()] and [BIC()] work), `confint()` Wald
#' intervals, `fitted()` the probability of each chosen alternative,
#' `update()` re-estimates with changed arguments.
#'
#' @param x,object A fit from [iclv()].
#' @param type Covariance type: `"robust"`, `"hessian"` or `"bhhh"` (stored in
#'   the fit), `"cluster"` or `"bootstrap"` (computed on request, `vcov()`
#'   only); by default
#'   the one chosen in [iclv_control()] (`vcov`, default `"robust"`).
#' @param digits Significant digits to print.
#' @param parm Parameters (names or positions) for `confint()`; all by default.
#' @param level Confidence level.
#' @param ... For `update()`: arguments of [iclv()] to change; otherwise not used.
#' @return `summary()`: an object of class `"summary.iclv"`; `coef()`: a named
#'   vector; `vcov()`: a matrix; `logLik()`: a `"logLik"` object; `nobs()`:
#'   the number of individuals; `confint()`: a matrix with one row per
#'   parameter; `fitted()`: a vector with one probability per choice row;
#'   `update()`: a new fit.
#' @seealso [iclv()], [predict.iclv()], [tidy.iclv()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 150, n_tasks = 4, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
#' coef(fit)
#' sqrt(diag(vcov(fit, type = "hessian")))
#' logLik(fit); AIC(fit); BIC(fit); nobs(fit)
#' confint(fit, c("b_price", "l_att"))
#' head(fitted(fit))
#' fit2 <- update(fit, control = iclv_control(method = "newton"))
#' logLik(fit2)
#' @name iclv-methods
NULL

# The first lines of print(fit) and print(summary(fit)): what was estimated,
# on what, how.
.print_fit_header <- function(x) {
  cat("ICLV model estimated by simulated maximum likelihood\n")
  cat("Call: ", paste(deparse(x$call, width.cutoff = 70L), collapse = "\n       "), "\n", sep = "")
  cat(sprintf("Individuals: %d   choice rows: %d   free parameters: %d\n",
              x$n_individuals, x$n_obs, x$n_params))
  if (!is.null(x$weights)) {
    cat(sprintf("Weights:      column %s, sum of weights %s\n", iclv_quote(x$weights$column),
                format(x$weights$sum, digits = 10L)))
  }
  cat("Draws:       ", .draws_line(x$draws), "\n", sep = "")
  cat("Backend:     ", .backend_line(x$backend), "\n", sep = "")
}

#' @rdname iclv-methods
#' @export
print.iclv <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  .val_fit(x)
  digits <- .val_digits(digits)
  .print_fit_header(x)
  ll <- logLik.iclv(x)
  cat(sprintf("Log-likelihood: %s   AIC: %s   BIC: %s\n", format(x$loglik, nsmall = 2L, digits = digits + 4L),
              format(stats::AIC(ll), nsmall = 2L, digits = digits + 4L),
              format(stats::BIC(ll), nsmall = 2L, digits = digits + 4L)))
  cat("Convergence: ", .conv_line(x$convergence, .scaled_gradient(x)), "\n", sep = "")
  pt <- x$partable
  blocks <- table(factor(pt$block[pt$free], levels = unique(pt$block)))
  cat("Free parameters by block: ", paste(sprintf("%s %d", names(blocks), blocks), collapse = ", "), "\n", sep = "")
  ch <- pt$block == "choice"
  if (any(ch)) {
    se <- .se_from_vcov(.vcov_or_na(x, x$vcov_type))
    cat(sprintf("\nChoice model (estimate and %s SE):\n", x$vcov_type))
    tab <- cbind(Estimate = x$coefficients[ch], SE = se[ch])
    print(round(tab, digits), na.print = "")
  }
  cat("\nsummary() shows every estimate with its standard errors and the fit statistics.\n")
  invisible(x)
}

# The scaled gradient g'(-H)^-1 g at the estimate (the Newton decrement: the
# log-likelihood gain a Newton step would still make, times 2), from the
# stored gradient and Hessian; the optimizer's own figure when the Hessian
# was not computed or is not invertible.
.scaled_gradient <- function(fit) {
  g <- fit$gradient
  H <- fit$hessian
  if (!length(g)) return(0)
  if (!is.null(H)) {
    sg <- tryCatch(sum(g * solve(-H, g)), error = function(e) NA_real_)
    if (is.finite(sg)) return(sg)
  }
  fit$convergence$scaled_gradient %||% NA_real_
}

# The covariance matrix of one type over all parameters, or an NA matrix
# when that type was not computed (never an error: for printing).
.vcov_or_na <- function(fit, type) {
  .vcov_expand(fit, fit$vcov[[type]]) # defined parameters by the delta method (R/constraints.R)
}

# Condition number of the scaled negative Hessian D^-1/2 (-H) D^-1/2,
# D = diag(-H): the ratio of its largest to its smallest eigenvalue, free of
# the parameters' units. NA without a Hessian or with a non-positive
# diagonal; Inf when the smallest eigenvalue is not positive.
.scaled_condition <- function(H) {
  if (is.null(H) || !length(H)) return(NA_real_)
  A <- -(H + t(H)) / 2
  d <- diag(A)
  if (any(!is.finite(d)) || any(d <= 0)) return(NA_real_)
  A <- A / sqrt(outer(d, d))
  ev <- .eigen_sym(A)$values
  if (min(ev) <= 0) return(Inf)
  max(ev) / min(ev)
}

# Fit statistics as apollo_modelOutput reports them, for the whole model and
# per component (each indicator and the choice model).
#   LL(0): equal shares. Choice: every available alternative equally likely,
#     -sum_t log(available_t). Ordered indicator with C categories: each
#     category 1/C, -n log C; binary indicator: -n log 2. A normal indicator
#     is a density and has no "0" model: its LL(0) and LL(C) are NA, and so
#     are the whole model's.
#   LL(C): observed shares (a constants-only model): sum_c n_c log(n_c / n)
#     over the categories (alternatives) of the component. For the choice
#     model only when every alternative is available in every row (with
#     varying availability a constants-only model needs its own estimation).
#   Whole model: the sums over the components. The adjusted rho-squared
#     subtracts the number of free parameters k from LL(final) (vs LL(0)),
#     and k minus the number of constants of the shares model (vs LL(C)),
#     as Apollo does.
# Returns list(components (data.frame), ll_start, ll0, llc, ll, k, rho2_0,
#   adj_rho2_0, rho2_c, adj_rho2_c, rho2_start, rho2_choice).
.fit_stats <- function(fit) {
  comp <- fit$compiled
  cc <- comp$c
  model <- fit$model
  inds <- comp$indicators
  shares_ll <- function(counts) {
    n <- sum(counts)
    counts <- counts[counts > 0]
    sum(counts * log(counts / n))
  }
  # with individual weights every observation counts its individual's weight
  # (LL(0), LL(C) of the weighted log-likelihood); else counts are counts
  ow <- if (is.null(cc$weight)) NULL else rep(cc$weight, diff(cc$obs_ptr))
  rw <- if (is.null(cc$weight)) NULL else rep(cc$weight, diff(cc$row_ptr))
  wtab <- function(k, C, w) if (is.null(w)) tabulate(k, C) else
    vapply(seq_len(C), function(c) sum(w[k == c]), numeric(1))
  rows <- lapply(seq_along(inds), function(m) {
    ind <- inds[m]
    type <- model$ind_type[[ind]]
    sel <- cc$obs_ind == m - 1L
    v <- cc$obs_val[sel]
    w <- if (is.null(ow)) NULL else ow[sel]
    n <- length(v)
    nw <- if (is.null(w)) n else sum(w)
    if (.is_ordered(type)) {
      C <- cc$ind_ncat[m]
      data.frame(ll0 = -nw * log(C), llc = shares_ll(wtab(as.integer(v), C, w)), n_const = C - 1L,
                 type = type, n = n)
    } else if (.is_binary(type)) {
      data.frame(ll0 = -nw * log(2), llc = shares_ll(wtab(as.integer(v != 0) + 1L, 2L, w)), n_const = 1L,
                 type = type, n = n)
    } else {
      data.frame(ll0 = NA_real_, llc = NA_real_, n_const = NA_integer_, type = type, n = n)
    }
  })
  tab <- do.call(rbind, c(list(data.frame(ll0 = double(), llc = double(), n_const = integer(),
                                          type = character(), n = integer())), rows))
  tab$component <- inds
  if (cc$choice_type != 0L) {
    all_av <- cc$n_avail == 0L || all(cc$avail != 0L)
    Jc <- .prob_width(cc) # alternatives, or an ordered choice's categories
    llc <- if (all_av) shares_ll(wtab(cc$y + 1L, Jc, rw)) else NA_real_
    tab <- rbind(tab, data.frame(ll0 = fit$loglik_null %||% .loglik_null(cc), llc = llc,
                                 n_const = Jc - 1L, type = comp$choice_type,
                                 n = cc$n_rows, component = "choice"))
    if (!is.null(comp$stage)) { # ranked / best-worst: one line per stage (R/rank.R)
      for (k in seq_along(comp$stage_names)) {
        keep <- which(comp$stage == k)
        if (!length(keep)) next
        tab <- rbind(tab, data.frame(ll0 = .loglik_null(.compiled_choice_rows(cc, keep)), llc = NA_real_,
                                     n_const = 0L, type = sprintf("stage %d", k), n = length(keep),
                                     component = paste0("choice:", comp$stage_names[k])))
      }
    }
    if (!is.null(comp$part)) { # several choice parts: one line per part (R/parts.R)
      for (k in seq_along(comp$part_names)) {
        keep <- which(comp$part == k)
        if (!length(keep)) next
        tab <- rbind(tab, data.frame(ll0 = .loglik_null(.compiled_choice_rows(cc, keep)), llc = NA_real_,
                                     n_const = 0L, type = "part", n = length(keep),
                                     component = paste0("choice:", comp$part_names[k])))
      }
    }
  }
  tab$ll <- unname(fit$loglik_components[tab$component])
  tab <- tab[, c("component", "type", "n", "ll0", "llc", "ll")]
  names(tab) <- c("component", "type", "n_obs", "LL(0)", "LL(C)", "LL(final)")
  rownames(tab) <- NULL
  n_const <- sum(vapply(rows, function(r) r$n_const, numeric(1))) +
    if (cc$choice_type != 0L) .prob_width(cc) - 1L else 0L
  whole <- !grepl("^choice:", tab$component) # stage lines are parts of "choice"
  ll0 <- sum(tab[["LL(0)"]][whole])
  llc <- sum(tab[["LL(C)"]][whole])
  ll <- fit$loglik
  k <- fit$n_params
  ll_start <- fit$loglik_start %||% NA_real_
  c(list(components = tab, ll_start = ll_start, ll0 = ll0, llc = llc, ll = ll, k = k),
    .rho2_apollo(ll, ll0, llc, k, n_const),
    list(rho2_start = 1 - ll / ll_start,
         rho2_choice = if (cc$choice_type != 0L) fit$rho2 else NA_real_))
}

# The distributions of the random coefficients of the utilities
# (iclv_model(random =)): a coefficient of one data column (or constant) in
# one alternative is mu + sum_i s_i xi_i, with mu the parameter of the term
# without a draw (0 when there is none) and s_i the parameters of the terms
# with the random term xi_i, so it is normal with mean mu and s.d.
# sqrt(sum s_i^2) (median = mean); SEs by the delta method from V. Rows are
# deduplicated over alternatives and columns with the same parameters.
# Returns NULL (no random term in a utility) or a data.frame: coefficient
# (where it stands), random (the terms), mean, se_mean, sd, se_sd, median.
.random_coefficients <- function(fit, V) {
  comp <- fit$compiled
  rnd <- comp$random
  cc <- comp$c
  if (!length(rnd) || !cc$choice_type) return(NULL)
  K <- length(comp$lvs) - length(rnd)
  J <- cc$n_alt
  alt_of <- rep(seq_len(J), diff(cc$ut_ptr))
  lv <- cc$ut_lv
  is_r <- lv >= K
  if (!any(is_r)) return(NULL)
  key <- paste(alt_of, cc$ut_col)
  theta <- fit$coefficients
  nm <- names(theta)
  se_of <- function(g) {
    i <- match(names(g), rownames(V))
    if (anyNA(i)) return(NA_real_)
    sqrt(max(drop(t(g) %*% V[i, i, drop = FALSE] %*% g), 0))
  }
  rows <- list()
  seen <- character()
  for (k in unique(key[is_r])) {
    here <- which(key == k)
    sdp <- nm[cc$ut_par[here[is_r[here]]] + 1L]
    mup <- nm[cc$ut_par[here[!is_r[here] & lv[here] < 0L]] + 1L]
    sig <- paste(c(sort(mup), "|", sort(paste(sdp, lv[here[is_r[here]]]))), collapse = " ")
    col <- cc$ut_col[here[1]]
    what <- if (col < 0L) "constant" else comp$xcols[col + 1L]
    where <- sprintf("%s (%s)", what, comp$alternatives[alt_of[here[1]]])
    if (sig %in% seen) {
      j <- match(sig, seen)
      rows[[j]]$coefficient <- paste(rows[[j]]$coefficient, where, sep = ", ")
      next
    }
    seen <- c(seen, sig)
    mu <- sum(theta[mup])
    s <- theta[sdp]
    sdv <- sqrt(sum(s^2))
    g_mu <- stats::setNames(rep(1, length(mup)), mup)
    g_sd <- stats::setNames(if (sdv > 0) s / sdv else rep(NA_real_, length(s)), sdp)
    rows[[length(rows) + 1L]] <- data.frame(
      coefficient = where, random = paste(unique(comp$lvs[lv[here[is_r[here]]] + 1L]), collapse = " + "),
      mean = mu, se_mean = if (length(mup)) se_of(g_mu) else 0, sd = sdv,
      se_sd = if (any(is.na(g_sd))) NA_real_ else se_of(g_sd), median = mu, stringsAsFactors = FALSE)
  }
  do.call(rbind, rows)
}

# Apollo's rho-squared definitions (apollo_modelOutput): against equal
# shares, 1 - LL/LL(0) and adjusted 1 - (LL - k)/LL(0); against observed
# shares, 1 - LL/LL(C) and adjusted 1 - (LL - (k - n_const))/LL(C), where
# n_const is the number of constants of the shares model (J - 1 for one
# choice model with J alternatives).
.rho2_apollo <- function(ll, ll0, llc, k, n_const) {
  list(rho2_0 = 1 - ll / ll0, adj_rho2_0 = 1 - (ll - k) / ll0,
       rho2_c = 1 - ll / llc, adj_rho2_c = 1 - (ll - (k - n_const)) / llc)
}

#' @rdname iclv-methods
#' @param se Which standard errors drive the z values and p-values of
#'   `summary()`: `"robust"`, `"hessian"` or `"bhhh"`; by default the one
#'   chosen in [iclv_control()]. The table always shows the classical
#'   (inverse Hessian) and the robust standard errors side by side.
#' @export
summary.iclv <- function(object, se = NULL, type = NULL, ...) {
  .val_fit(object)
  type <- .vcov_type(object, se %||% type, c("robust", "hessian", "bhhh"))
  V <- vcov.iclv(object, type = type)
  est <- object$coefficients
  se_main <- .se_from_vcov(V)
  se_h <- .se_from_vcov(.vcov_or_na(object, "hessian"))
  se_r <- .se_from_vcov(.vcov_or_na(object, "robust"))
  z <- est / se_main
  p <- 2 * stats::pnorm(-abs(z))
  tab <- cbind(Estimate = est, `Std. Error` = se_h, `Robust SE` = se_r)
  if (type == "bhhh") tab <- cbind(tab, `BHHH SE` = se_main)
  tab <- cbind(tab, `z value` = z, `Pr(>|z|)` = p)
  pt <- object$partable
  blocks <- unique(pt$block)
  tabs <- lapply(blocks, function(b) tab[pt$block == b, , drop = FALSE])
  names(tabs) <- blocks
  ll <- logLik.iclv(object)
  structure(list(
    call = object$call, coefficients = tabs, fixed = pt$name[!pt$free & !.pt_defined(pt)],
    defined = pt$name[.pt_defined(pt)], vcov_type = type,
    loglik = object$loglik, loglik_null = object$loglik_null,
    loglik_components = object$loglik_components, rho2 = object$rho2,
    stats = .fit_stats(object), scaled_gradient = .scaled_gradient(object),
    condition = .scaled_condition(object$hessian),
    aic = stats::AIC(ll), bic = stats::BIC(ll), n_individuals = object$n_individuals,
    weights = object$weights,
    n_obs = object$n_obs, n_params = object$n_params, draws = object$draws,
    backend = object$backend, timing = object$timing, convergence = object$convergence,
    identification = object$identification, lv_sign = object$lv_sign,
    random = .random_coefficients(object, V),
    distributions = .random_distributions(object, type) # R/distributions.R
  ), class = "summary.iclv")
}

#' @rdname iclv-methods
#' @export
print.summary.iclv <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  digits <- .val_digits(digits)
  .print_fit_header(x)
  st <- x$stats
  f <- function(v) if (is.null(v) || !is.finite(v)) "NA" else formatC(v, format = "f", digits = 2L)
  r <- function(v) if (is.null(v) || !is.finite(v)) "NA" else formatC(v, format = "f", digits = 4L)
  line <- function(label, value, note = "") cat(formatC(label, width = -46L, flag = "-"), ": ", value,
                                                if (nzchar(note)) paste0("   ", note), "\n", sep = "")
  no0 <- if (!is.finite(st$ll0)) "(a normal indicator is a density: it has no equal-shares model)" else ""
  cat("\n")
  line("LL(start)", f(st$ll_start))
  line("LL(0, whole model: equal shares)", f(st$ll0), no0)
  line("LL(C, whole model: observed shares)", f(st$llc))
  line("LL(final, whole model)", f(st$ll))
  line("rho2 (whole model vs LL(0))", r(st$rho2_0))
  line("adj. rho2 (whole model vs LL(0))", r(st$adj_rho2_0))
  line("rho2 (whole model vs LL(C))", r(st$rho2_c))
  line("adj. rho2 (whole model vs LL(C))", r(st$adj_rho2_c))
  line("rho2 (whole model vs LL(start))", r(st$rho2_start))
  if (is.finite(st$rho2_choice)) line("rho2 (choice part vs equal shares)", r(st$rho2_choice))
  line("AIC", f(x$aic))
  line("BIC", f(x$bic))
  cat("\nLog-likelihood by component (each integrates the latent variables over their\n",
      "structural distribution; the components share them and do not add up to LL(final)):\n", sep = "")
  ct <- st$components
  for (nm in c("LL(0)", "LL(C)", "LL(final)")) ct[[nm]] <- vapply(ct[[nm]], f, character(1))
  print(ct, row.names = FALSE, right = TRUE)
  titles <- c(measurement = "Measurement model", structural = "Structural model", choice = "Choice model")
  for (b in names(x$coefficients)) {
    ttl <- if (b %in% names(titles)) titles[[b]] else b
    cat("\n", ttl, ":\n", sep = "")
    tab <- x$coefficients[[b]]
    nse <- sum(grepl("SE|Std", colnames(tab)))
    stats::printCoefmat(tab, digits = digits, na.print = "", has.Pvalue = TRUE, P.values = TRUE,
                        cs.ind = seq_len(1L + nse), tst.ind = 2L + nse, signif.legend = FALSE)
  }
  if (!is.null(x$random)) {
    cat("\nRandom coefficients (normal: mean + s.d. x standard-normal draw; s.d. = sqrt of the sum of\n",
        "the squared draw coefficients; SEs by the delta method):\n", sep = "")
    rt <- x$random
    out <- data.frame(coefficient = rt$coefficient, draws = rt$random,
                      mean = format(rt$mean, digits = digits), `SE mean` = format(rt$se_mean, digits = digits),
                      s.d. = format(rt$sd, digits = digits), `SE s.d.` = format(rt$se_sd, digits = digits),
                      median = format(rt$median, digits = digits), check.names = FALSE)
    print(out, row.names = FALSE, right = TRUE)
  }
  if (!is.null(x$distributions)) {
    cat("\nRandom coefficients in nonlinear utilities (lognormal: mean exp(mu + sigma^2/2), median exp(mu);\n",
        "uniform and triangular on mean +- spread; SEs by the delta method):\n", sep = "")
    rt <- x$distributions
    out <- data.frame(coefficient = rt$coefficient, draws = rt$random, distribution = rt$distribution,
                      mean = format(rt$mean, digits = digits), `SE mean` = format(rt$se_mean, digits = digits),
                      s.d. = format(rt$sd, digits = digits), `SE s.d.` = format(rt$se_sd, digits = digits),
                      median = format(rt$median, digits = digits), `SE median` = format(rt$se_median, digits = digits),
                      check.names = FALSE)
    print(out, row.names = FALSE, right = TRUE)
  }
  if (length(x$fixed)) cat("\nFixed (not estimated): ", paste(x$fixed, collapse = ", "), "\n", sep = "")
  if (length(x$defined)) {
    cat("\nDefined by constraints (delta-method SEs): ", paste(x$defined, collapse = ", "), "\n", sep = "")
  }
  cat(sprintf("\nStd. Error: inverse of the negative Hessian; Robust SE: sandwich. z and p use the %s.\n",
              switch(x$vcov_type, robust = "robust standard errors", hessian = "Hessian standard errors",
                     bhhh = "BHHH standard errors (inverse outer product of the scores)")))
  cat("Convergence: ", .conv_line(x$convergence, x$scaled_gradient), "\n", sep = "")
  cat(sprintf("Scaled Hessian: condition number %s%s\n", format(x$condition, digits = 3L),
              if (is.finite(x$condition) && x$condition > 1e8) " (large: weakly identified parameters?)" else ""))
  if (length(x$lv_sign$flipped)) {
    cat("LV sign: ", paste(x$lv_sign$flipped, collapse = ", "),
        " flipped so that the first loading is positive (then re-estimated)\n", sep = "")
  }
  if (isFALSE(x$identification$ok)) {
    cat("Identification: the negative Hessian is near-singular or indefinite; parameters involved: ",
        paste(x$identification$weak, collapse = ", "), "\n", sep = "")
  }
  tm <- x$timing
  pre <- max(tm$total - (tm$optimizer %||% 0) - (tm$post_estimation %||% 0), 0)
  cat(sprintf("Time: %.2f s (pre-estimation %.2f s, estimation %.2f s, post-estimation %.2f s; %d evaluations, %.4f s each)\n",
              tm$total, pre, tm$optimizer %||% NA_real_, tm$post_estimation %||% NA_real_,
              tm$evaluations, tm$per_evaluation))
  invisible(x)
}

#' @rdname iclv-methods
#' @export
coef.iclv <- function(object, ...) object$coefficients

.vcov_types <- c("robust", "hessian", "bhhh", "cluster", "bootstrap")
.vcov_type <- function(object, type, allowed = .vcov_types) {
  if (is.null(type)) return(object$vcov_type)
  if (!is.character(type) || length(type) != 1L || !type %in% allowed) {
    iclv_abort("control", sprintf("'type' must be one of %s (got %s)", paste0('"', allowed, '"', collapse = ", "),
                                  paste(format(type), collapse = ", ")))
  }
  type
}

#' @rdname iclv-methods
#' @param cluster For `vcov(type = "cluster")`: a column of `data` constant
#'   within individual (e.g. `"household"`), or a vector with one value per
#'   individual. The cluster-robust sandwich sums the individuals' scores
#'   within each cluster (no small-sample factor: with one individual per
#'   cluster it equals the robust matrix). For `type = "bootstrap"`: `NULL`
#'   or a cluster of the `parallel` package (see [iclv_cluster]) whose
#'   workers run the refits, one contiguous batch of resamples each, with
#'   one thread per worker (the result is the same as without it).
#' @param data The estimation data, for `type = "cluster"` with a column
#'   name and for `type = "bootstrap"`.
#' @param R,seed,cores For `type = "bootstrap"`: the number of refits on
#'   individuals resampled with replacement (each started at the estimates,
#'   on the CPU, fixed parameters kept fixed), the seed of the resampling
#'   (the caller's random-number state is left as it was), and the number of
#'   worker processes (a local PSOCK cluster, one thread each). Refits that fail or do
#'   not converge are dropped; the matrix carries the attributes
#'   `replicates` and `failed`.
#' @export
vcov.iclv <- function(object, type = NULL, cluster = NULL, data = NULL, R = 200L, seed = 1L,
                      cores = 1L, ...) {
  .val_fit(object)
  type <- .vcov_type(object, type)
  if (object$convergence$code != 0L) {
    iclv_warn("convergence", sprintf(paste0("the estimation did not converge (%s): the covariance matrix ",
                                            "is computed at the last point and is not reliable"),
                                     object$convergence$message))
  }
  extra <- NULL
  if (type == "cluster") {
    if (is.null(object$hessian) || is.null(object$scores)) {
      iclv_abort("control", "type = \"cluster\" needs the Hessian and the scores at the estimate (iclv_control(hessian = TRUE))")
    }
    Vf <- .vcov_cluster(object$hessian, object$scores, .cluster_ids(object, cluster, data))
  } else if (type == "bootstrap") {
    if (!is.null(cluster) && !inherits(cluster, "cluster")) {
      iclv_abort("control", paste0("with type = \"bootstrap\", 'cluster' is a `parallel` cluster to run the refits on ",
                                   "(parallel::makePSOCKcluster(), MPI, parallelly), not a column of the data"))
    }
    Vf <- .vcov_bootstrap(object, data, R = R, seed = seed, cores = cores, cluster = cluster)
    extra <- attributes(Vf)[c("replicates", "failed")]
  } else {
    Vf <- object$vcov[[type]]
  }
  if (is.null(Vf) && object$n_params > 0L) {
    iclv_abort("control", sprintf("the \"%s\" covariance matrix was not computed (iclv_control(hessian = FALSE))", type))
  }
  # the free parameters' covariance, and the defined parameters' (`:=` /
  # `==`) by the delta method from it (R/constraints.R)
  V <- .vcov_expand(object, if (object$n_params > 0L) Vf)
  if (!is.null(extra)) attributes(V)[names(extra)] <- extra
  V
}

#' @rdname iclv-methods
#' @export
logLik.iclv <- function(object, ...) {
  .val_fit(object)
  structure(object$loglik, df = object$n_params, nobs = object$n_individuals, class = "logLik")
}

#' @rdname iclv-methods
#' @export
nobs.iclv <- function(object, ...) object$n_individuals

#' @rdname iclv-methods
#' @export
confint.iclv <- function(object, parm, level = 0.95, type = NULL, ...) {
  .val_fit(object)
  .val_level(level, "level")
  cf <- object$coefficients
  pnames <- names(cf)
  if (missing(parm)) {
    parm <- pnames
  } else if (is.numeric(parm)) {
    if (anyNA(parm) || any(parm != round(parm) | parm < 1 | parm > length(pnames))) {
      iclv_abort("input", sprintf("'parm' positions must be whole numbers in 1..%d", length(pnames)))
    }
    parm <- pnames[parm]
  } else if (!is.character(parm)) {
    iclv_abort("input", "'parm' must be parameter names (a character vector) or positions")
  }
  unknown <- setdiff(parm, pnames)
  if (length(unknown) || anyNA(parm)) {
    iclv_abort("input", sprintf("'parm' names %s, which is not a parameter", iclv_quote(unknown[1])))
  }
  se <- .se_from_vcov(vcov.iclv(object, type = type))[parm]
  a <- (1 - level) / 2
  q <- stats::qnorm(1 - a)
  ci <- cbind(cf[parm] - q * se, cf[parm] + q * se)
  dimnames(ci) <- list(parm, paste(format(100 * c(a, 1 - a), trim = TRUE, scientific = FALSE, digits = 3), "%"))
  ci
}

#' @rdname iclv-methods
#' @export
fitted.iclv <- function(object, ...) {
  .val_fit(object, c("compiled", "model", "draws_design", "control"))
  comp <- object$compiled
  if (comp$c$choice_type == 0L) iclv_abort("input", "the model has no choice part: there are no fitted choice probabilities")
  pr <- predict.iclv(object, type = "prob", stages = TRUE) # every stage of a ranking
  pr[cbind(seq_len(nrow(pr)), comp$c$y + 1L)]
}

#' Tidy and glance an ICLV fit
#'
#' `tidy()` returns one row per parameter; `glance()` one row of fit
#' statistics. Both are methods of the generics of the generics package (as
#' broom uses them).
#'
#' @param x A fit from [iclv()].
#' @param conf.int Add Wald confidence intervals (`conf.low`, `conf.high`).
#' @param conf.level Their level.
#' @param type Covariance type (see [vcov.iclv()]).
#' @param ... Not used.
#' @return `tidy()`: a data.frame with `term`, `estimate`, `std.error`,
#'   `statistic`, `p.value` (and `conf.low`, `conf.high`), `block` and
#'   `free`. `glance()`: a one-row data.frame with `logLik`, `AIC`, `BIC`,
#'   `nobs` (individuals), `n_obs` (choice rows), `n_params`, `loglik_null`,
#'   `rho2`, `converged`, `iterations`, `backend`, `n_draws` and `time`.
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 150, n_tasks = 4, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
#' tidy(fit, conf.int = TRUE)
#' glance(fit)
#' @name tidy.iclv
#' @method tidy iclv
#' @export
tidy.iclv <- function(x, conf.int = FALSE, conf.level = 0.95, type = NULL, ...) {
  .val_fit(x)
  .control_flag(conf.int, "conf.int")
  if (conf.int) .val_level(conf.level, "conf.level")
  cf <- x$coefficients
  se <- .se_from_vcov(vcov.iclv(x, type = type))
  z <- cf / se
  out <- data.frame(term = names(cf), estimate = unname(cf), std.error = unname(se),
                    statistic = unname(z), p.value = unname(2 * stats::pnorm(-abs(z))),
                    stringsAsFactors = FALSE)
  if (isTRUE(conf.int)) {
    q <- stats::qnorm(1 - (1 - conf.level) / 2)
    out$conf.low <- out$estimate - q * out$std.error
    out$conf.high <- out$estimate + q * out$std.error
  }
  out$block <- x$partable$block
  out$free <- x$partable$free
  rownames(out) <- NULL
  out
}

#' @rdname tidy.iclv
#' @method glance iclv
#' @export
glance.iclv <- function(x, ...) {
  .val_fit(x)
  ll <- logLik.iclv(x)
  data.frame(logLik = x$loglik, AIC = stats::AIC(ll), BIC = stats::BIC(ll), nobs = x$n_individuals,
             n_obs = x$n_obs, n_params = x$n_params, loglik_null = x$loglik_null, rho2 = x$rho2,
             converged = x$convergence$code == 0L, iterations = x$convergence$iterations,
             backend = x$backend$name, n_draws = x$draws$n, time = x$timing$total,
             stringsAsFactors = FALSE)
}

#' Likelihood-ratio test of nested ICLV fits
#'
#' `anova(fit1, fit2)` compares two fits of nested models on the same data:
#' the restricted one (fewer free parameters) must have no parameter the
#' other lacks, and its free parameters must be free in the other (the
#' restrictions are parameters fixed or left out). The statistic is
#' \eqn{2 (LL_1 - LL_0)}{2 (LL1 - LL0)} with as many degrees of freedom as
#' restrictions. Fits that are not nested, on different data, or whose
#' larger model has the lower log-likelihood (its optimizer stopped short)
#' are refused with an error of class `iclv_error_nesting`.
#'
#' @param object,... Two fits from [iclv()].
#' @return An object of class `c("anova", "data.frame")`: one row per fit
#'   (restricted first) with `LogLik`, `Df` (free parameters), `Df diff`,
#'   `LR stat` and `Pr(>Chisq)`.
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 150, n_tasks = 4, seed = 1)
#' dr <- iclv_draws("halton", 50, seed = 1)
#' fit1 <- iclv(m, d, draws = dr, backend = "cpu")
#' fit0 <- iclv(m, d, draws = dr, backend = "cpu", fixed = c(l_att = 0))
#' anova(fit0, fit1)
#' @export
anova.iclv <- function(object, ...) {
  fits <- c(list(object), list(...))
  if (length(fits) != 2L || !all(vapply(fits, inherits, logical(1), "iclv"))) {
    iclv_abort("input", "anova() compares exactly two fits from iclv()")
  }
  nest <- function(msg) iclv_abort("nesting", msg)
  a <- fits[[1]]
  b <- fits[[2]]
  if (a$n_individuals != b$n_individuals || a$n_obs != b$n_obs ||
      !identical(as.character(a$compiled$ids), as.character(b$compiled$ids)) ||
      !identical(a$compiled$c$y, b$compiled$c$y)) {
    nest("the two fits are not on the same data (individuals, choice rows or choices differ)")
  }
  if (a$n_params == b$n_params) nest("the two fits have the same number of free parameters: they are not nested")
  small <- if (a$n_params < b$n_params) a else b
  large <- if (a$n_params < b$n_params) b else a
  fs <- small$partable$name[small$partable$free]
  fl <- large$partable$name[large$partable$free]
  extra <- setdiff(names(small$coefficients), names(large$coefficients))
  if (length(extra)) nest(sprintf("not nested: the restricted fit has parameters the other lacks (%s)", iclv_quote(extra)))
  notfree <- setdiff(fs, fl)
  if (length(notfree)) nest(sprintf("not nested: %s is free in the restricted fit but fixed in the other", iclv_quote(notfree)))
  if (!identical(small$draws[c("type", "n")], large$draws[c("type", "n")])) {
    iclv_warn("nesting", "the two fits use different draw designs: the simulated log-likelihoods are not exactly comparable")
  }
  tol <- 1e-6 * max(1, abs(large$loglik))
  if (large$loglik < small$loglik - tol) {
    nest(sprintf(paste0("the larger model has the lower log-likelihood (%.4f < %.4f): the models are not nested, ",
                        "or its estimation stopped short of the optimum (restart it from the restricted estimates)"),
                 large$loglik, small$loglik))
  }
  df <- large$n_params - small$n_params
  lr <- max(2 * (large$loglik - small$loglik), 0)
  out <- data.frame(LogLik = c(small$loglik, large$loglik), Df = c(small$n_params, large$n_params),
                    `Df diff` = c(NA, df), `LR stat` = c(NA, lr),
                    `Pr(>Chisq)` = c(NA, stats::pchisq(lr, df, lower.tail = FALSE)),
                    check.names = FALSE, row.names = c("restricted", "unrestricted"))
  structure(out, heading = "Likelihood-ratio test of nested ICLV fits\n", class = c("anova", "data.frame"))
}

#' Response residuals of the choice part
#'
#' `y_tj - P_tj`: the indicator of the chosen alternative minus its
#' probability (integrated over the structural distribution of the latent
#' variables, as `predict(type = "prob")`), for every choice row and
#' alternative.
#'
#' @param object A fit from [iclv()].
#' @param newdata `NULL` (the estimation data) or a data.frame with the
#'   choice column and the columns of the choice part.
#' @param type `"response"` (the only type).
#' @param ... Not used.
#' @return A matrix: choice rows x alternatives.
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu")
#' head(residuals(fit))
#' @export
residuals.iclv <- function(object, newdata = NULL, type = "response", ...) {
  if (!identical(type, "response")) iclv_abort("control", "'type' must be \"response\"")
  if (object$compiled$c$choice_type == 0L) iclv_abort("input", "the model has no choice part: there are no choice residuals")
  ch <- object$model$choice
  cols <- ch$parts$choice %||% ch$choice # several choice parts: any of theirs (R/parts.R)
  if (!is.null(newdata) && !any(cols %in% names(newdata))) {
    iclv_abort("data", sprintf("'newdata' needs the choice column %s for residuals", iclv_quote(cols)))
  }
  P <- predict.iclv(object, newdata = newdata, type = "prob", stages = TRUE)
  comp <- if (is.null(newdata)) object$compiled else .scenario_compile(object, newdata)$comp
  y <- comp$c$y[seq_len(nrow(P))] + 1L
  Y <- matrix(0, nrow(P), ncol(P), dimnames = dimnames(P))
  Y[cbind(seq_len(nrow(P)), y)] <- 1
  Y - P
}
