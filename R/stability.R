# Are the draws enough? The log-likelihood at the estimates and the
# estimates themselves with more draws (the idea of Biogeme's diagnostic).

#' Draw stability: the fit with more draws
#'
#' For each factor `f`, the draw design of the fit with `f` times as many
#' draws (same type and seed): the simulated log-likelihood re-evaluated at
#' the estimates, then (with `refit = TRUE`) a refit started at the
#' estimates. The changes in the estimates are reported in standard-error
#' units. Verdict: `"stable"` when every change is below 0.1 SE and the
#' re-evaluated log-likelihood moves by less than 1; `"borderline"` below
#' 0.5 SE; `"unstable"` otherwise (use more draws).
#'
#' @param fit A fit from [iclv()] with an [iclv_draws()] design (not a user
#'   array).
#' @param factors Whole numbers > 1: the multiples of the fit's number of
#'   draws.
#' @param data The estimation data.
#' @param refit Also re-estimate with the larger designs.
#' @param type The covariance type of the SE units (see [vcov.iclv()]).
#' @return An object of class `"iclv_draw_stability"`: `table` (one row per
#'   factor: `factor`, `n_draws`, `loglik_at_estimates`, `change_loglik`,
#'   `loglik_refit`, `max_change_se`, `worst`), `changes` (parameters x
#'   factors, in SE units), `verdict` and `loglik` (the fit's).
#' @seealso [iclv_draws()], [plot.iclv()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 25, seed = 1), backend = "cpu")
#' iclv_draw_stability(fit, factors = 2, data = d)
#' @export
iclv_draw_stability <- function(fit, factors = c(2, 4), data, refit = TRUE, type = NULL) {
  if (!inherits(fit, "iclv")) iclv_abort("input", "'fit' must be a fit from iclv()")
  if (!is.numeric(factors) || !length(factors) || anyNA(factors) || any(factors <= 1) || any(factors != round(factors))) {
    iclv_abort("control", "'factors' must be whole numbers greater than 1")
  }
  if (missing(data) || !is.data.frame(data)) iclv_abort("control", "'data' (the estimation data) is needed")
  dd <- fit$draws_design
  if (!inherits(dd, "iclv_draws") || identical(dd$type, "user")) {
    iclv_abort("draws", "draw stability needs a draw design (iclv_draws()), not a user array")
  }
  .control_flag(refit, "refit")
  pt <- fit$partable
  free <- pt$name[pt$free]
  se <- .se_from_vcov(vcov.iclv(fit, type = type))[free]
  ctrl <- fit$control
  ctrl$trace <- 0L
  ctrl["checkpoint"] <- list(NULL)
  ctrl["callback"] <- list(NULL)
  rows <- list()
  changes <- matrix(NA_real_, length(free), length(factors), dimnames = list(free, paste0("x", factors)))
  for (i in seq_along(factors)) {
    f <- factors[i]
    nd <- dd
    nd$n <- as.integer(dd$n * f)
    ll_at <- iclv_loglik(fit$model, data, fit$coefficients, draws = nd, backend = "cpu", gradient = FALSE,
                         weights = fit$weights$column)$loglik
    ll_refit <- NA_real_
    if (refit) {
      rf <- suppressWarnings(iclv(fit$model, data, draws = nd, backend = fit$backend$name, control = ctrl,
                                  start = fit$coefficients[free],
                                  fixed = if (any(!pt$free & !.pt_defined(pt))) fit$coefficients[!pt$free & !.pt_defined(pt)],
                                  weights = fit$weights$column))
      ll_refit <- rf$loglik
      changes[, i] <- (rf$coefficients[free] - fit$coefficients[free]) / se
    }
    ac <- abs(changes[, i])
    worst <- if (all(is.na(ac))) NA_character_ else free[which.max(ac)]
    rows[[i]] <- data.frame(factor = f, n_draws = nd$n, loglik_at_estimates = ll_at,
                            change_loglik = ll_at - fit$loglik, loglik_refit = ll_refit,
                            max_change_se = if (all(is.na(ac))) NA_real_ else max(ac, na.rm = TRUE),
                            worst = worst, stringsAsFactors = FALSE)
  }
  tab <- do.call(rbind, rows)
  mx <- max(tab$max_change_se, na.rm = TRUE)
  dl <- max(abs(tab$change_loglik))
  verdict <- if (!refit) {
    if (dl < 1) "stable log-likelihood (estimates not refitted)" else "unstable log-likelihood: use more draws"
  } else if (mx < 0.1 && dl < 1) "stable" else if (mx < 0.5) "borderline" else "unstable: use more draws"
  structure(list(table = tab, changes = changes, verdict = verdict, loglik = fit$loglik, n_draws = dd$n),
            class = "iclv_draw_stability")
}

#' @export
print.iclv_draw_stability <- function(x, digits = 4L, ...) {
  cat(sprintf("Draw stability (the fit: %d draws, LL %.3f)\n", x$n_draws, x$loglik))
  print(x$table, digits = digits, row.names = FALSE)
  cat("Verdict: ", x$verdict, "\n", sep = "")
  invisible(x)
}
