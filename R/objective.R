# iclv_objective(): the simulated log-likelihood as a list of closures over
# ONE engine, for users who bring their own optimizer (TMB's MakeADFun shape).

#' The ICLV objective function for your own optimizer
#'
#' Compiles the model with the data and creates one engine that every call
#' reuses (it is released when the returned object is garbage collected, or
#' at the end of the session). The functions work on the free parameters in
#' their natural form (the names and values [coef()] reports), like
#' [optim()] and [nlminb()] expect: `fn` is the NEGATIVE simulated
#' log-likelihood (to minimise), `gr` its gradient, `he` its Hessian;
#' `scores(par)` the per-individual gradients of the log-likelihood (for
#' BHHH or sandwich covariances). At a point the engine refuses (thresholds
#' out of order, a non-positive standard deviation, a non-finite
#' likelihood) `fn` returns `Inf`, so line searches back off. Starting values
#' that break a constraint are refused when the object is made, as by
#' [iclv()] (class `iclv_error_input`, naming the parameter).
#' Parameters defined by constraints (`:=`, `==`, see [iclv_model()]) are
#' not in `par`: they follow from it, and `gr`, `he` and `scores` are total
#' derivatives.
#'
#' @inheritParams iclv
#' @param backend `"cpu"` (default), `"cuda"` or `"auto"`.
#' @param cluster `NULL`, or a cluster of the `parallel` package: the
#'   individuals are split over its workers, one engine each, kept for the
#'   life of the objective (see [iclv_cluster]); every function returns what
#'   one process returns.
#' @param weights `NULL` or the name of a column of individual weights, as in
#'   [iclv()]: `fn`, `gr`, `he` and `scores` are then those of the weighted
#'   log-likelihood.
#' @param ... Not used; anything given is an error.
#' @return A list: `par` (the starting values of the free parameters,
#'   named), `fn(par)`, `gr(par)`, `he(par)`, `scores(par)` (individuals x
#'   free parameters), `loglik(par)` (the log-likelihood itself), `names`
#'   and `engine` (an environment holding the engine).
#' @seealso [iclv()], [iclv_loglik()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' obj <- iclv_objective(m, d, draws = iclv_draws("halton", 30, seed = 1))
#' opt <- nlminb(obj$par, obj$fn, obj$gr, obj$he)
#' -opt$objective
#' @export
iclv_objective <- function(model, data, draws = iclv_draws("halton", 100), backend = "cpu",
                           start = NULL, fixed = NULL, weights = NULL, cluster = NULL, ...) {
  dots <- list(...)
  if (length(dots)) iclv_abort("control", sprintf("unknown argument %s to iclv_objective()",
                                                  iclv_quote(names(dots) %||% "(unnamed)")))
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  be <- if (is.null(cluster)) .resolve_backend(backend) else .cluster_resolve_backend(cluster, backend)
  prob <- .iclv_problem(model, data, draws, start = start, fixed = fixed,
                        weights = weights) # R/problem.R
  comp <- prob$comp
  pt <- prob$partable
  theta0 <- prob$theta0
  free <- prob$free
  fnames <- prob$free_names
  holder <- new.env(parent = emptyenv())
  holder$engine <- .problem_engine(prob, be$name, cluster = cluster)
  reg.finalizer(holder, function(h) {
    if (!is.null(h$engine)) .engine_release(h$engine)
    h$engine <- NULL
  }, onexit = TRUE)
  cache <- new.env(parent = emptyenv())
  full <- function(par) {
    if (length(par) != length(free)) {
      iclv_abort("input", sprintf("'par' has %d values; the model has %d free parameters (%s)",
                                  length(par), length(free), paste(fnames, collapse = ", ")))
    }
    if (!is.numeric(par) || anyNA(par)) iclv_abort("input", "'par' must be numeric without NA")
    th <- theta0
    th[free] <- as.double(par)
    .con_fill(th, comp$definitions) # `:=` / `==` (R/constraints.R)
  }
  eval_at <- function(par, scores = FALSE, hessian = FALSE) {
    key <- as.double(par)
    if (!is.null(cache$key) && identical(cache$key, key) && (!scores || !is.null(cache$ev$scores)) &&
        (!hessian || !is.null(cache$ev$hessian))) return(cache$ev)
    th <- full(par)
    bad <- .check_constraints(th, pt$name, comp$thresholds, comp$positive, comp$unit)
    ev <- if (!is.null(bad)) NULL else
      tryCatch(.engine_eval(holder$engine, th, gradient = TRUE, scores = scores, hessian = hessian),
               iclv_error_numeric = function(e) NULL, iclv_error_input = function(e) NULL)
    if (!is.null(ev)) ev$free <- .problem_free_parts(prob, ev, th) # over the free parameters
    cache$key <- key
    cache$ev <- ev
    ev
  }
  nm <- function(x) stats::setNames(x, fnames)
  list(
    par = nm(theta0[free]),
    fn = function(par) {
      ev <- eval_at(par)
      if (is.null(ev) || !is.finite(ev$loglik)) Inf else -ev$loglik
    },
    gr = function(par) {
      ev <- eval_at(par)
      if (is.null(ev)) return(nm(rep(NA_real_, length(free))))
      nm(-ev$free$gradient)
    },
    he = function(par) {
      ev <- eval_at(par, hessian = TRUE)
      if (is.null(ev)) iclv_abort("input", "the Hessian is not defined at 'par' (the engine refused it)")
      h <- -ev$free$hessian
      dimnames(h) <- list(fnames, fnames)
      h
    },
    scores = function(par) {
      ev <- eval_at(par, scores = TRUE)
      if (is.null(ev)) iclv_abort("input", "the scores are not defined at 'par' (the engine refused it)")
      s <- ev$free$scores
      dimnames(s) <- list(as.character(comp$ids), fnames)
      s
    },
    loglik = function(par) {
      ev <- eval_at(par)
      if (is.null(ev)) -Inf else ev$loglik
    },
    names = fnames,
    engine = holder
  )
}
