# One evaluation of the simulated log-likelihood at given parameters, for
# checks and advanced use (the problem object: R/problem.R).

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
#'   names are an error. Parameters defined by constraints (`:=`, `==`, see
#'   [iclv_model()]) are computed; a value given for one must agree with
#'   its definition.
#' @param draws An [iclv_draws()] design, or a numeric array of standard
#'   normal draws (individuals x draws x latent variables).
#' @param backend `"cpu"` (default), `"cuda"` or `"auto"`.
#' @param gradient,scores,hessian Which derivatives to return.
#' @param weights `NULL` or the name of a column of individual weights, as
#'   in [iclv()]: `loglik` is then \eqn{\sum_n w_n \log L_n}{sum_n w_n log L_n},
#'   and `loglik_i`, `gradient`, `scores` and `hessian` are those of the
#'   weighted sum (`loglik_i` and the scores are the weighted terms).
#' @param cluster `NULL`, or a cluster from the `parallel` package (e.g.
#'   [parallel::makePSOCKcluster()]): the individuals are split into
#'   contiguous shards, one per worker, each evaluated by an engine on its
#'   worker (see [iclv_cluster]). The results equal those of one process.
#' @return A list: `loglik` (the simulated log-likelihood, a sum over
#'   individuals), `loglik_i` (per individual), `gradient` (named, one entry
#'   per free parameter), `scores` (individuals x free parameters: the
#'   gradient of each individual's log-likelihood), `hessian` (free x free);
#'   derivatives not requested are `NULL`. With constraints the derivatives
#'   are total: the defined parameters move with the free ones.
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
                        gradient = TRUE, scores = FALSE, hessian = FALSE, cluster = NULL,
                        weights = NULL) {
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  for (a in c("gradient", "scores", "hessian")) .control_flag(get(a), a)
  be <- if (is.null(cluster)) .resolve_backend(backend) else .cluster_resolve_backend(cluster, backend)
  prob <- .iclv_problem(model, data, draws, params = params, estimation = FALSE,
                        weights = weights)
  ev <- .with_problem_engine(prob, be$name, function(engine) {
    .engine_eval(engine, prob$theta0, gradient = gradient, scores = scores, hessian = hessian)
  }, device = if (is.null(cluster)) 0L else NULL, cluster = cluster)
  out <- c(list(loglik = ev$loglik, loglik_i = stats::setNames(ev$loglik_i, prob$comp$ids)),
           .problem_free_parts(prob, list(gradient = if (gradient || hessian) ev$gradient,
                                          scores = if (scores) ev$scores, hessian = if (hessian) ev$hessian),
                               prob$theta0))
  if (!gradient) out["gradient"] <- list(NULL)
  if (scores) rownames(out$scores) <- as.character(prob$comp$ids)
  out
}

