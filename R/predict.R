# Predictions from a fitted ICLV model, computed by the CPU engine with the
# fit's draw design: choice probabilities integrated over the latent
# variables, or the posterior distribution of each individual's latent
# variables given all of their data.

#' Predictions from an ICLV fit
#'
#' `type = "prob"`: the choice probabilities of every alternative on every
#' choice row, integrated over the distribution of the latent variables
#' given the individual's covariates (not their indicators or choices):
#' `P_tj = (1/R) sum_r P_tj(eta_r)`. `type = "lv"`: the posterior mean and
#' standard deviation of each latent variable of each individual given all of
#' the individual's data (indicators and choices), weighting draw `r` by
#' `L_nr / sum_s L_ns`.
#'
#' The draw design of the fit is used (for `newdata`, the same design for the
#' new number of individuals; a user-supplied array of draws only fits data
#' with the same individuals).
#'
#' @param object A fit from [iclv()].
#' @param newdata `NULL` (the estimation data) or a data.frame with every
#'   column the model uses (the indicators and the choice column included:
#'   `type = "lv"` conditions on them, and the compiler checks them). The
#'   categories of ordered indicators are those of the fit (declared, or
#'   read from the estimation data): `newdata` need not show every category,
#'   and a value outside them is an error.
#' @param type `"prob"` or `"lv"`.
#' @param ... Not used.
#' @return `"prob"`: a matrix with one row per choice row (row names: the
#'   data rows) and one column per alternative (named). `"lv"`: a data.frame
#'   with `id` and, for each latent variable `lv`, `mean_lv` and `sd_lv`.
#' @seealso [iclv()], [fitted.iclv()]
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
#' head(predict(fit, type = "prob"))
#' head(predict(fit, type = "lv"))
#' nd <- iclv_simulate(m, p, n = 5, n_tasks = 2, seed = 2)
#' predict(fit, newdata = nd)
#' @export
predict.iclv <- function(object, newdata = NULL, type = c("prob", "lv"), ...) {
  .val_fit(object, c("compiled", "model", "draws_design", "control"))
  dots <- list(...)
  if (length(dots)) iclv_abort("control", sprintf("unknown argument %s to predict()", iclv_quote(names(dots) %||% "(unnamed)")))
  if (!is.character(type) || !(type[1] %in% c("prob", "lv"))) {
    iclv_abort("control", sprintf("'type' must be \"prob\" or \"lv\" (got %s)", paste(format(type), collapse = ", ")))
  }
  type <- type[1]
  comp <- if (is.null(newdata)) object$compiled else
    .iclv_compile(object$model, newdata, categories = object$compiled$categories)
  if (type == "prob" && comp$c$choice_type == 0L) {
    iclv_abort("input", "the model has no choice part: use type = \"lv\"")
  }
  cf <- object$coefficients
  need <- comp$partable$name
  lack <- setdiff(need, names(cf))
  if (length(lack)) {
    iclv_abort("data", sprintf(paste0("'newdata' gives the model parameters the fit does not have (%s): ",
                                      "the categories of an ordered indicator differ from the estimation data?"),
                               iclv_quote(utils::head(lack, 3L))))
  }
  theta <- cf[need]
  spec <- .draws_spec(object$draws_design, comp$n_ind, length(comp$lvs), comp$lvs)
  engine <- .engine_new(comp$c, spec, "cpu", n_threads = object$control$n_threads)
  on.exit(.engine_release(engine), add = TRUE)
  pr <- .engine_predict(engine, theta)
  if (type == "prob") {
    P <- pr$prob
    dimnames(P) <- list(as.character(comp$rows), comp$alternatives)
    return(P)
  }
  out <- data.frame(id = comp$ids, stringsAsFactors = FALSE)
  for (k in seq_along(comp$lvs)) {
    out[[paste0("mean_", comp$lvs[k])]] <- pr$lv_mean[, k]
    out[[paste0("sd_", comp$lvs[k])]] <- pr$lv_sd[, k]
  }
  out
}
