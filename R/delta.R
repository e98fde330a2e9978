# The delta method for named expressions of the coefficients (WTP ratios,
# sums, differences), with exact derivatives from R's deriv().

#' Delta-method estimates of expressions of the coefficients
#'
#' `iclv_delta()` evaluates each expression at the estimates and gives its
#' standard error by the delta method, \eqn{\mathrm{Var}(g(\hat\theta))
#' \approx J V J'}{Var g = J V J'} with \eqn{J}{J} the exact derivatives of
#' the expressions with respect to the free parameters (symbolic, by
#' [stats::deriv()]), and \eqn{V}{V} the covariance matrix of the chosen
#' type. Fixed parameters enter as constants. `iclv_wtp()` is the
#' willingness to pay of every other choice-model coefficient,
#' `-b / b_cost`.
#'
#' @param fit A fit from [iclv()].
#' @param expr A character vector of R expressions in the parameter names of
#'   [coef()] (e.g. `"b_risk / b_price"`, `"asc_a - asc_b"`); its names (if
#'   any) name the results. Functions must be known to [stats::deriv()]
#'   (arithmetic, `exp`, `log`, `sqrt`, `pnorm`, ...).
#' @param type The covariance type (see [vcov.iclv()]): `"robust"`,
#'   `"hessian"`, `"bhhh"`, `"cluster"` or `"bootstrap"`; by default the
#'   fit's.
#' @param level Confidence level of the Wald intervals.
#' @param ... Passed to [vcov.iclv()] (e.g. `cluster =` and `data =` for
#'   `type = "cluster"`).
#' @param cost The name of the cost coefficient.
#' @return A data.frame with one row per expression: `term`, `estimate`,
#'   `std.error`, `statistic` (z), `p.value` and `conf.low`, `conf.high`;
#'   attributes `vcov` (the covariance matrix of the expressions, J V J')
#'   and `jacobian` (expressions x free parameters).
#' @seealso [vcov.iclv()], [confint.iclv()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("mnl", choice = "ch", utilities = list(
#'     a = "asc_a + b_price * price_a + l_att * att", b = "b_price * price_b")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
#'        tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
#'        asc_a = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu")
#' iclv_delta(fit, c(wtp_att = "-l_att / b_price", "asc_a + l_att"))
#' iclv_wtp(fit, cost = "b_price")
#' @export
iclv_delta <- function(fit, expr, type = NULL, level = 0.95, ...) {
  if (!inherits(fit, "iclv")) iclv_abort("input", "'fit' must be a fit from iclv()")
  if (!is.character(expr) || !length(expr) || anyNA(expr)) {
    iclv_abort("input", "'expr' must be a character vector of expressions of the coefficients, e.g. \"b_risk / b_price\"")
  }
  if (!is.numeric(level) || length(level) != 1L || !(level > 0 && level < 1)) {
    iclv_abort("control", "'level' must be one number between 0 and 1")
  }
  cf <- fit$coefficients
  # the free parameters and those defined by `:=` / `==` (their covariance,
  # from vcov(), is the delta method's from the free ones: J V J' is then the
  # same as with the definitions substituted)
  free <- fit$partable$name[fit$partable$free | .pt_defined(fit$partable)]
  V <- vcov.iclv(fit, type = type, ...)[free, free, drop = FALSE]
  labels <- names(expr)
  if (is.null(labels)) labels <- rep("", length(expr))
  labels[!nzchar(labels)] <- expr[!nzchar(labels)]
  est <- double(length(expr))
  J <- matrix(0, length(expr), length(free), dimnames = list(labels, free))
  env <- list2env(as.list(cf), parent = asNamespace("stats"))
  for (i in seq_along(expr)) {
    e <- tryCatch(str2lang(expr[i]), error = function(err) {
      iclv_abort("input", sprintf("'expr' %s is not an R expression: %s", iclv_quote(expr[i]), conditionMessage(err)))
    })
    vars <- all.vars(e)
    unknown <- setdiff(vars, names(cf))
    if (length(unknown)) {
      iclv_abort("input", sprintf("'expr' %s uses %s, which is not a parameter of the fit (see names(coef(fit)))",
                                  iclv_quote(expr[i]), iclv_quote(unknown)))
    }
    wrt <- intersect(vars, free)
    g <- tryCatch(stats::deriv(e, wrt), error = function(err) {
      iclv_abort("input", sprintf("'expr' %s cannot be differentiated symbolically: %s",
                                  iclv_quote(expr[i]), conditionMessage(err)))
    })
    val <- eval(g, env)
    if (length(val) != 1L || !is.finite(val)) {
      iclv_abort("numeric", sprintf("'expr' %s is not one finite number at the estimates (it is %s)",
                                    iclv_quote(expr[i]), paste(format(val), collapse = ", ")))
    }
    est[i] <- as.double(val)
    if (length(wrt)) J[i, wrt] <- attr(val, "gradient")[1, wrt]
  }
  # parameters with zero derivative do not propagate their NA variances
  used <- colSums(J != 0) > 0
  Ve <- J[, used, drop = FALSE] %*% V[used, used, drop = FALSE] %*% t(J[, used, drop = FALSE])
  se <- sqrt(pmax(diag(Ve), 0))
  se[!is.finite(diag(Ve))] <- NA_real_
  z <- est / se
  q <- stats::qnorm(1 - (1 - level) / 2)
  out <- data.frame(term = labels, estimate = est, std.error = se, statistic = z,
                    p.value = 2 * stats::pnorm(-abs(z)), conf.low = est - q * se,
                    conf.high = est + q * se, stringsAsFactors = FALSE)
  rownames(out) <- labels
  attr(out, "vcov") <- Ve
  attr(out, "jacobian") <- J
  out
}

#' @rdname iclv_delta
#' @export
iclv_wtp <- function(fit, cost, type = NULL, level = 0.95, ...) {
  if (!inherits(fit, "iclv")) iclv_abort("input", "'fit' must be a fit from iclv()")
  pt <- fit$partable
  if (!is.character(cost) || length(cost) != 1L || is.na(cost) || !cost %in% pt$name[pt$block == "choice"]) {
    iclv_abort("input", sprintf("'cost' must name one coefficient of the choice model (one of %s)",
                                iclv_quote(pt$name[pt$block == "choice"])))
  }
  others <- setdiff(pt$name[pt$block == "choice"], cost)
  if (!length(others)) iclv_abort("input", "the choice model has no coefficient besides 'cost'")
  expr <- stats::setNames(sprintf("-%s / %s", others, cost), others)
  iclv_delta(fit, expr, type = type, level = level, ...)
}
