# One evaluation of the simulated log-likelihood at given parameters, for
# checks and advanced use; also the helpers that turn user-given named
# parameter values into the engine's full natural vector.

#' The simulated log-likelihood and its analytic derivatives at given values
#'
#' Compiles `model` with `data`, builds an engine with the draw design
#' `draws`, evaluates the simulated log-likelihood once at `params` and
#' releases the engine. Derivatives are analytic and taken with respect to
#' the free parameters in their natural form, the one [coef()] reports
#' (thresholds as thresholds, standard deviations as standard deviations).
#'
#' @param model An [iclv_model()].
#' @param data A data.frame with the model's columns.
#' @param params A named numeric vector with the names [coef()] uses (see
#'   `model$partable$name`). Every free parameter must be given; fixed
#'   parameters may be omitted and then take their fixed values. Unknown
#'   names are an error.
#' @param draws An [iclv_draws()] design, or a numeric array of standard
#'   normal draws (individuals x draws x latent variables).
#' @param backend `"cpu"` (default), `"cuda"` or `"auto"`.
#' @param gradient,scores,hessian Which derivatives to return.
#' @param cluster `NULL`, or a cluster from the `parallel` package (e.g.
#'   [parallel::makePSOCKcluster()]): the individuals are split into
#'   contiguous shards, one per worker, each evaluated by an engine on its
#'   worker (see [iclv_cluster]). The results equal those of one process.
#' @return A list: `loglik` (the simulated log-likelihood, a sum over
#'   individuals), `loglik_i` (per individual), `gradient` (named, one entry
#'   per free parameter), `scores` (individuals x free parameters: the
#'   gradient of each individual's log-likelihood), `hessian` (free x free);
#'   derivatives not requested are `NULL`.
#' @seealso [iclv()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 40, n_tasks = 3, seed = 1)
#' ll <- iclv_loglik(m, d, p, draws = iclv_draws("halton", 50), scores = TRUE)
#' ll$loglik
#' ll$gradient
#' dim(ll$scores)
#' @export
iclv_loglik <- function(model, data, params, draws = iclv_draws("halton", 100), backend = "cpu",
                        gradient = TRUE, scores = FALSE, hessian = FALSE, cluster = NULL) {
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  for (a in c("gradient", "scores", "hessian")) .control_flag(get(a), a)
  be <- if (is.null(cluster)) .resolve_backend(backend) else .cluster_resolve_backend(cluster, backend)
  comp <- .iclv_compile(model, data, estimation = FALSE)
  pt <- comp$partable
  theta <- .params_full(params, pt, "params")
  bad <- .check_constraints(theta, pt$name, comp$thresholds, comp$positive)
  if (!is.null(bad)) iclv_abort("input", paste("'params':", bad))
  spec <- .draws_spec(draws, comp$n_ind, length(comp$lvs), comp$lvs)
  engine <- .engine_new(comp$c, spec, be$name, device = if (is.null(cluster)) 0L else NULL,
                        cluster = cluster)
  on.exit(.engine_release(engine), add = TRUE)
  ev <- .engine_eval(engine, theta, gradient = gradient, scores = scores, hessian = hessian)
  free <- which(pt$free)
  fn <- pt$name[free]
  out <- list(loglik = ev$loglik, loglik_i = stats::setNames(ev$loglik_i, comp$ids),
              gradient = NULL, scores = NULL, hessian = NULL)
  if (gradient) out$gradient <- stats::setNames(ev$gradient[free], fn)
  if (scores) {
    out$scores <- ev$scores[, free, drop = FALSE]
    dimnames(out$scores) <- list(as.character(comp$ids), fn)
  }
  if (hessian) {
    out$hessian <- ev$hessian[free, free, drop = FALSE]
    dimnames(out$hessian) <- list(fn, fn)
  }
  out
}

# .params_full(params, pt, arg): the full natural vector (P, partable order)
# from user values. Fixed parameters not given keep their partable value
# (pt$start); a fixed parameter that is given takes the given value (the
# evaluation happens where the user says). Errors (iclv_error_input) name
# unknown parameters and missing free ones.
.params_full <- function(params, pt, arg = "params") {
  .check_named_numeric(params, arg)
  unknown <- setdiff(names(params), pt$name)
  if (length(unknown)) {
    iclv_abort("input", sprintf("'%s' names %s, which %s not a parameter of the model (see model$partable$name)",
                                arg, iclv_quote(unknown), if (length(unknown) > 1L) "are" else "is"))
  }
  missing_free <- setdiff(pt$name[pt$free], names(params))
  if (length(missing_free)) {
    iclv_abort("input", sprintf("'%s' lacks the free parameter(s) %s", arg, iclv_quote(missing_free)))
  }
  theta <- stats::setNames(as.double(pt$start), pt$name)
  theta[names(params)] <- as.double(params)
  theta
}

.check_named_numeric <- function(x, arg) {
  if (!is.numeric(x) || is.null(names(x)) || any(!nzchar(names(x))) || anyNA(names(x))) {
    iclv_abort("input", sprintf("'%s' must be a named numeric vector (names as in coef())", arg))
  }
  if (anyDuplicated(names(x))) {
    iclv_abort("input", sprintf("'%s' names %s twice", arg, iclv_quote(names(x)[duplicated(names(x))][1])))
  }
  bad <- names(x)[!is.finite(x)]
  if (length(bad)) iclv_abort("input", sprintf("'%s': %s is not a finite number", arg, iclv_quote(bad[1])))
  invisible(x)
}
