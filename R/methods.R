# The stats generics for a fitted ICLV model ("iclv"), and tidy/glance
# through the generics package.

#' @importFrom stats coef vcov logLik nobs confint fitted update predict pnorm qnorm printCoefmat
#' @importFrom generics tidy glance
NULL

#' @importFrom generics tidy
#' @export
generics::tidy

#' @importFrom generics glance
#' @export
generics::glance

.conv_line <- function(cv) {
  status <- if (cv$code == 0L) cv$message else sprintf("NOT converged (code %d): %s", cv$code, cv$message)
  sprintf("%s; %d iterations, %d evaluations, max|gradient| %.2e",
          status, cv$iterations, cv$evaluations, cv$gradient_norm)
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
#' @param type Covariance type: `"robust"`, `"hessian"` or `"bhhh"`; by default
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

#' @rdname iclv-methods
#' @export
print.iclv <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  .val_fit(x)
  digits <- .val_digits(digits)
  cat("ICLV model estimated by simulated maximum likelihood\n")
  cat("Call: ", paste(deparse(x$call, width.cutoff = 70L), collapse = "\n       "), "\n", sep = "")
  cat(sprintf("Individuals: %d   choice rows: %d   free parameters: %d\n",
              x$n_individuals, x$n_obs, x$n_params))
  cat("Draws:       ", .draws_line(x$draws), "\n", sep = "")
  cat("Backend:     ", .backend_line(x$backend), "\n", sep = "")
  cat("Log-likelihood: ", format(x$loglik, digits = digits + 4L, nsmall = 2L), "\n", sep = "")
  cat("Convergence: ", .conv_line(x$convergence), "\n", sep = "")
  cat("\nCoefficients:\n")
  print(round(x$coefficients, digits), ...)
  invisible(x)
}

#' @rdname iclv-methods
#' @export
summary.iclv <- function(object, type = NULL, ...) {
  .val_fit(object)
  type <- .vcov_type(object, type)
  V <- vcov.iclv(object, type = type)
  est <- object$coefficients
  se <- .se_from_vcov(V)
  z <- est / se
  p <- 2 * stats::pnorm(-abs(z))
  tab <- cbind(Estimate = est, `Std. Error` = se, `z value` = z, `Pr(>|z|)` = p)
  pt <- object$partable
  blocks <- unique(pt$block)
  tabs <- lapply(blocks, function(b) tab[pt$block == b, , drop = FALSE])
  names(tabs) <- blocks
  ll <- logLik.iclv(object)
  structure(list(
    call = object$call, coefficients = tabs, fixed = pt$name[!pt$free], vcov_type = type,
    loglik = object$loglik, loglik_null = object$loglik_null,
    loglik_components = object$loglik_components, rho2 = object$rho2,
    aic = stats::AIC(ll), bic = stats::BIC(ll), n_individuals = object$n_individuals,
    n_obs = object$n_obs, n_params = object$n_params, draws = object$draws,
    backend = object$backend, timing = object$timing, convergence = object$convergence,
    identification = object$identification
  ), class = "summary.iclv")
}

#' @rdname iclv-methods
#' @export
print.summary.iclv <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  digits <- .val_digits(digits)
  cat("ICLV model estimated by simulated maximum likelihood\n")
  cat("Call: ", paste(deparse(x$call, width.cutoff = 70L), collapse = "\n       "), "\n", sep = "")
  titles <- c(measurement = "Measurement model", structural = "Structural model", choice = "Choice model")
  for (b in names(x$coefficients)) {
    ttl <- if (b %in% names(titles)) titles[[b]] else b
    cat("\n", ttl, ":\n", sep = "")
    stats::printCoefmat(x$coefficients[[b]], digits = digits, na.print = "", has.Pvalue = TRUE,
                        P.values = TRUE, signif.legend = FALSE)
  }
  if (length(x$fixed)) cat("\nFixed (not estimated): ", paste(x$fixed, collapse = ", "), "\n", sep = "")
  cat(sprintf("\nStandard errors: %s\n", switch(x$vcov_type,
    robust = "robust (sandwich of the Hessian and the outer product of the scores)",
    hessian = "inverse of the negative Hessian",
    bhhh = "inverse of the outer product of the scores (BHHH)")))
  f <- function(v) if (is.na(v)) "NA" else formatC(v, format = "f", digits = 3L)
  cat("\nLog-likelihood:        ", f(x$loglik), "\n", sep = "")
  if (!is.na(x$loglik_null)) {
    cat("  choice component:    ", f(x$loglik_components[["choice"]]), "\n", sep = "")
    cat("  choice LL(0):        ", f(x$loglik_null), "   (all utilities 0)\n", sep = "")
    cat("  choice rho-squared:  ", formatC(x$rho2, format = "f", digits = 4L), "\n", sep = "")
  }
  cat("AIC: ", f(x$aic), "   BIC: ", f(x$bic), "\n", sep = "")
  cat(sprintf("Individuals: %d   choice rows: %d   free parameters: %d\n",
              x$n_individuals, x$n_obs, x$n_params))
  cat("Draws:       ", .draws_line(x$draws), "\n", sep = "")
  cat("Backend:     ", .backend_line(x$backend), "\n", sep = "")
  cat(sprintf("Time:        %.2f s (%d evaluations, %.4f s each)\n", x$timing$total,
              x$timing$evaluations, x$timing$per_evaluation))
  cat("Convergence: ", .conv_line(x$convergence), "\n", sep = "")
  if (isFALSE(x$identification$ok)) {
    cat("Identification: the negative Hessian is near-singular or indefinite; parameters involved: ",
        paste(x$identification$weak, collapse = ", "), "\n", sep = "")
  }
  invisible(x)
}

#' @rdname iclv-methods
#' @export
coef.iclv <- function(object, ...) object$coefficients

.vcov_type <- function(object, type) {
  if (is.null(type)) return(object$vcov_type)
  if (!is.character(type) || length(type) != 1L || !type %in% c("robust", "hessian", "bhhh")) {
    iclv_abort("control", sprintf("'type' must be \"robust\", \"hessian\" or \"bhhh\" (got %s)",
                                  paste(format(type), collapse = ", ")))
  }
  type
}

#' @rdname iclv-methods
#' @export
vcov.iclv <- function(object, type = NULL, ...) {
  .val_fit(object)
  type <- .vcov_type(object, type)
  if (object$convergence$code != 0L) {
    iclv_warn("convergence", sprintf(paste0("the estimation did not converge (%s): the covariance matrix ",
                                            "is computed at the last point and is not reliable"),
                                     object$convergence$message))
  }
  Vf <- object$vcov[[type]]
  if (is.null(Vf) && object$n_params > 0L) {
    iclv_abort("control", sprintf("the \"%s\" covariance matrix was not computed (iclv_control(hessian = FALSE))", type))
  }
  nm <- names(object$coefficients)
  V <- matrix(NA_real_, length(nm), length(nm), dimnames = list(nm, nm))
  if (object$n_params > 0L) V[rownames(Vf), colnames(Vf)] <- Vf
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
  pr <- predict.iclv(object, type = "prob")
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
