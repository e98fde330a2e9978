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
#' @param newdata `NULL` (the estimation data) or a data.frame. A scenario
#'   needs only the id column, the structural covariates and the columns the
#'   choice part uses (attributes, availability): indicator and choice
#'   columns may be left out. Where they are present, `type = "lv"` and
#'   `conditional = TRUE` condition on them. The categories of ordered
#'   indicators are those of the fit (declared, or read from the estimation
#'   data): `newdata` need not show every category, and a value outside
#'   them is an error.
#' @param type `"prob"`, `"lv"` (posterior mean and s.d.) or `"lv_draws"`
#'   (unconditional draws of the latent variables from their structural
#'   distribution given the covariates, with the fit's draw design).
#' @param conditional For `type = "prob"`: `FALSE` (default) integrates over
#'   the structural distribution of the latent variables; `TRUE` over their
#'   posterior given the individual's observed indicators and choices (those
#'   present in `newdata`): `P_tj = sum_r w_nr P_tj(eta_nr)`, `w_nr`
#'   proportional to `L_nr`.
#' @param stages For ranked and best-worst choice models
#'   ([iclv_choice()]): `FALSE` (default) gives one row per data row, the
#'   probabilities of the first stage (each alternative's probability of
#'   being ranked first / chosen best); `TRUE` one row per stage of every
#'   data row (row names `"<row>:<rank column>"`): the probabilities of the
#'   stage's choice among the alternatives left (for the worst stage of a
#'   best-worst task, of being chosen worst). Ignored for other models.
#' @param cluster `NULL`, or a `parallel` cluster over whose workers the
#'   individuals are split (see [iclv_cluster]); the predictions are those of
#'   one process.
#' @param ... Not used.
#' @return `"prob"`: a matrix with one row per choice row (row names: the
#'   data rows) and one column per alternative (named). `"lv"`: a data.frame
#'   with `id` and, for each latent variable `lv`, `mean_lv` and `sd_lv`.
#'   `"lv_draws"`: an array individuals x draws x latent variables.
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
#' # a scenario: only the id and the price; prices up by 10%
#' sc <- data.frame(ID = nd$ID, price = nd$price * 1.1)
#' predict(fit, newdata = sc)
#' predict(fit, newdata = nd, conditional = TRUE)[1:3, ]
#' dim(predict(fit, newdata = sc, type = "lv_draws"))
#' @export
predict.iclv <- function(object, newdata = NULL, type = c("prob", "lv", "lv_draws"), conditional = FALSE, cluster = NULL,
                         stages = FALSE, ...) {
  .val_fit(object, c("compiled", "model", "draws_design", "control"))
  dots <- list(...)
  if (length(dots)) iclv_abort("control", sprintf("unknown argument %s to predict()", iclv_quote(names(dots) %||% "(unnamed)")))
  if (!is.character(type) || !(type[1] %in% c("prob", "lv", "lv_draws"))) {
    iclv_abort("control", sprintf("'type' must be \"prob\", \"lv\" or \"lv_draws\" (got %s)", paste(format(type), collapse = ", ")))
  }
  type <- type[1]
  if (!is.logical(conditional) || length(conditional) != 1L || is.na(conditional)) {
    iclv_abort("control", "'conditional' must be TRUE or FALSE")
  }
  if (!is.logical(stages) || length(stages) != 1L || is.na(stages)) iclv_abort("control", "'stages' must be TRUE or FALSE")
  # scenarios: newdata needs only the columns the choice part and the
  # structural model use (R/scenario.R)
  sc <- if (is.null(newdata)) NULL else .scenario_compile(object, newdata)
  comp <- if (is.null(sc)) object$compiled else sc$comp
  if (type == "prob" && comp$c$choice_type == 0L) {
    iclv_abort("input", "the model has no choice part: use type = \"lv\"")
  }
  if (type == "lv_draws" || conditional || (type == "lv" && !is.null(sc) && !sc$scenario$has_choice)) {
    return(.predict_per_draw(object, comp, if (is.null(sc)) object$coefficients[comp$partable$name] else sc$theta,
                             sc$scenario, type, stages))
  }
  theta <- if (is.null(sc)) object$coefficients[comp$partable$name] else sc$theta
  prob <- .problem_new(comp, object$draws_design, params = theta) # R/problem.R
  pr <- .with_problem_engine(prob, "cpu", function(engine) .engine_predict(engine, prob$theta0),
                             n_threads = object$control$n_threads, cluster = cluster)
  n_data <- if (is.null(sc)) max(comp$rows, 0L) else sc$scenario$n_rows
  keep_rows <- .choice_rows_keep(comp, n_data, stages) # R/rank.R
  keep_ind <- if (is.null(sc)) seq_len(comp$n_ind) else seq_len(sc$scenario$n_ind)
  if (type == "prob") {
    P <- pr$prob[keep_rows, , drop = FALSE]
    rn <- if (is.null(sc)) as.character(seq_len(n_data)) else sc$scenario$rows
    dimnames(P) <- list(.choice_row_names(comp, keep_rows, rn, stages), .prob_names(comp)) # R/scenario.R
    return(P)
  }
  out <- data.frame(id = comp$ids[keep_ind], stringsAsFactors = FALSE)
  for (k in seq_along(comp$lvs)) {
    out[[paste0("mean_", comp$lvs[k])]] <- pr$lv_mean[keep_ind, k]
    out[[paste0("sd_", comp$lvs[k])]] <- pr$lv_sd[keep_ind, k]
  }
  out
}
