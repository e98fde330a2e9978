# The problem object: everything an entry point needs to evaluate a model on
# its data, built ONCE and in one place (issue 13). iclv(), iclv_loglik(),
# iclv_objective(), predict() and iclv_memory_plan() all start here, so the
# parameter table, the start/fixed values, the name and constraint checks,
# the draw design and the map between free and model parameters cannot
# differ between them.
#
# An "iclv_problem" is a list:
#   comp        the compiled model and data (.iclv_compile(): comp$c is the
#               list the engine reads, with 0-based parameter indices; the
#               R-side indices comp$thresholds and comp$positive are 1-based)
#   partable    the final parameter table: the compiled table with the
#               call's start/fixed values applied (free flags updated)
#   theta0      (P) named natural parameters at the start (partable order),
#               checked against the constraints (thresholds increasing,
#               standard deviations > 0)
#   free        (n_free) 1-based positions of the free parameters in theta
#   free_names  (n_free) their names
#   all_free    TRUE when every parameter is free (no subsetting needed)
#   spec        the draw spec the engine reads (.draws_spec(), user draws
#               matched to the model's latent variables by name)
#   draws       the design as given (for fit$draws_design)
#   tr          the map between the unconstrained free vector u and theta
#               (.transform_new(); its Jacobian is applied as a sparse map
#               by .transform_derivs(), never formed densely)
# The fingerprint (what a checkpoint must match) is computed on demand by
# .problem_fingerprint(): it hashes the compiled data.

# .iclv_problem(model, data, draws, start, fixed, params, estimation)
#   start, fixed: as iclv()'s (NULL, named vectors, or a fit as start);
#   params: NULL, or a named vector of values at which to evaluate
#     (iclv_loglik(): every free parameter given, fixed ones optional);
#     mutually exclusive with start/fixed;
#   estimation: passed to .iclv_compile() (FALSE: one observed category of
#     a declared ordered indicator is enough).
# Errors: iclv_error_spec (model), _data (data), _input (names, values,
#   constraints; the message names the parameter), _draws (design).
.iclv_problem <- function(model, data, draws, start = NULL, fixed = NULL, params = NULL,
                          estimation = TRUE, weights = NULL) {
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  comp <- .iclv_compile(model, data, estimation = estimation, weights = weights)
  prob <- .problem_new(comp, draws, start = start, fixed = fixed, params = params)
  # each LV's first loading (1-based in the parameter table): the LV sign
  # normalisation after estimation (R/sign.R)
  prob$first_loading <- .lv_first_loading(comp$model, prob$partable)
  prob
}

# .problem_new(comp, draws, ...): the problem of an already compiled model
# (predict() on a fit's compiled data or a compiled scenario).
.problem_new <- function(comp, draws, start = NULL, fixed = NULL, params = NULL) {
  pt <- comp$partable
  if (is.null(params)) {
    pt <- .apply_start_fixed(pt, start, fixed)
    theta0 <- .con_fill(stats::setNames(as.double(pt$start), pt$name), comp$definitions)
    what <- "starting values:"
  } else {
    theta0 <- .con_complete(.params_full(params, pt, "params"), comp$definitions, names(params), "params")
    what <- "'params':"
  }
  bad <- .check_constraints(theta0, pt$name, comp$thresholds, comp$positive, comp$unit,
                            free = if (is.null(params)) pt$free)
  if (!is.null(bad)) iclv_abort("input", paste(what, bad))
  spec <- .draws_spec(draws, comp$n_ind, length(comp$lvs), comp$lvs)
  free <- which(pt$free)
  structure(list(comp = comp, partable = pt, theta0 = theta0, free = free, free_names = pt$name[free],
                 all_free = length(free) == nrow(pt), spec = spec, draws = draws,
                 tr = .transform_new(pt$name, theta0, pt$free, comp$thresholds, comp$positive, comp$unit,
                                     definitions = comp$definitions)),
            class = "iclv_problem")
}

# What a checkpoint must match to be resumed with this problem: the free
# parameters, the individuals, the draw design, and an md5 of the compiled
# data and the fixed values.
.problem_fingerprint <- function(prob) {
  list(free_names = prob$free_names, n_ind = prob$comp$n_ind,
       draws = prob$spec[c("type", "n_draws", "n_dim", "seed", "skip")],
       data_md5 = .md5_object(.problem_fixed_part(prob)))
}

# What the fingerprint hashes besides the free names and the draws: the
# compiled data and the fixed values; with `:=` / `==` constraints, the
# definitions instead of the defined values (which follow the starts).
.problem_fixed_part <- function(prob) {
  pt <- prob$partable
  def <- .pt_defined(pt)
  if (!any(def)) return(list(prob$comp$c, prob$theta0[!pt$free]))
  list(prob$comp$c, prob$theta0[!pt$free & !def], pt$defined)
}

# The engine of a problem (.engine_new(); the caller releases it, e.g. with
# on.exit(.engine_release(engine))). `...`: n_threads, device, device_memory,
# cluster, as .engine_new() takes them.
.problem_engine <- function(prob, backend, ...) {
  .engine_new(prob$comp$c, prob$spec, backend, ...)
}

# fun(engine) with the problem's engine, released on the way out whatever
# happens (an error, an interrupt).
.with_problem_engine <- function(prob, backend, fun, ...) {
  engine <- .problem_engine(prob, backend, ...)
  on.exit(.engine_release(engine), add = TRUE)
  fun(engine)
}

# The free-parameter parts of an evaluation at natural parameters theta
# (engine output over all P parameters): gradient (n_free, named), scores
# (N x n_free) and hessian (n_free x n_free), those not computed NULL. With
# `:=` / `==` definitions the defined parameters' derivatives are carried
# to the free ones by the chain rule (.con_free_parts(), R/constraints.R),
# which needs theta.
.problem_free_parts <- function(prob, ev, theta = NULL) {
  free <- prob$free
  fn <- prob$free_names
  defs <- prob$comp$definitions
  if (length(defs)) return(.con_free_parts(defs, theta, free, fn, ev))
  out <- list(gradient = NULL, scores = NULL, hessian = NULL)
  if (!is.null(ev$gradient)) out$gradient <- stats::setNames(ev$gradient[free], fn)
  if (!is.null(ev$scores)) {
    out$scores <- ev$scores[, free, drop = FALSE]
    colnames(out$scores) <- fn
  }
  if (!is.null(ev$hessian)) {
    out$hessian <- ev$hessian[free, free, drop = FALSE]
    dimnames(out$hessian) <- list(fn, fn)
  }
  out
}

# One engine evaluation; `timer` (an environment with `seconds` and `n`, or
# NULL) gets its elapsed time and counts it.
.timed_eval <- function(engine, timer, theta, gradient = TRUE, scores = FALSE, hessian = FALSE) {
  if (is.null(timer)) return(.engine_eval(engine, theta, gradient = gradient, scores = scores, hessian = hessian))
  t0 <- proc.time()[["elapsed"]]
  ev <- .engine_eval(engine, theta, gradient = gradient, scores = scores, hessian = hessian)
  timer$seconds <- timer$seconds + (proc.time()[["elapsed"]] - t0)
  timer$n <- timer$n + 1L
  ev
}

# The optimizer's objective: fn(u, scores = FALSE, hessian = FALSE) on the
# unconstrained free vector u (n_free) -> list(loglik, gradient (n_free),
# scores (N x n_free) or NULL, hessian (n_free x n_free) or NULL), the
# derivatives taken with respect to u. One evaluation of the engine per
# call; `timer` (an environment with `seconds` and `n`, or NULL) adds the
# engine's elapsed time and counts the call. This is the whole R path
# between the optimizer and .Call: natural parameters, the engine, the
# chain rule (a sparse map, .transform_derivs()).
.problem_objective <- function(prob, engine, timer = NULL) {
  tr <- prob$tr
  free <- prob$free
  sub <- !prob$all_free
  if (length(prob$comp$definitions)) {
    return(function(u, scores = FALSE, hessian = FALSE) {
      theta <- .to_natural(u, tr)
      ev <- .timed_eval(engine, timer, theta, gradient = TRUE, scores = scores, hessian = hessian)
      p <- .problem_free_parts(prob, ev, theta)
      d <- .transform_derivs(u, tr, p$gradient, p$scores, p$hessian)
      list(loglik = ev$loglik, gradient = d$gradient, scores = d$scores, hessian = d$hessian)
    })
  }
  function(u, scores = FALSE, hessian = FALSE) {
    ev <- .timed_eval(engine, timer, .to_natural(u, tr), gradient = TRUE, scores = scores, hessian = hessian)
    d <- .transform_derivs(u, tr, if (sub) ev$gradient[free] else ev$gradient,
                           if (scores) { if (sub) ev$scores[, free, drop = FALSE] else ev$scores },
                           if (hessian) { if (sub) ev$hessian[free, free, drop = FALSE] else ev$hessian })
    list(loglik = ev$loglik, gradient = d$gradient, scores = d$scores, hessian = d$hessian)
  }
}

# ---- parameter values given by name (start, fixed, params) ---------------------

# A named numeric vector whose names are all parameters of the model; the
# error (iclv_error_input) names the argument and the unknown names.
.check_parameter_names <- function(x, arg, names) {
  .check_named_numeric(x, arg)
  unknown <- setdiff(names(x), names)
  if (length(unknown)) {
    iclv_abort("input", sprintf("'%s' names %s, which %s not a parameter of the model (see model$partable$name)",
                                arg, iclv_quote(unknown), if (length(unknown) > 1L) "are" else "is"))
  }
  invisible(x)
}

# iclv()'s `start` and `fixed` applied to the parameter table: starting
# values of free parameters, and fixed parameters (value, free = FALSE).
.apply_start_fixed <- function(pt, start, fixed) {
  if (!is.null(start)) {
    # a fit gives every coefficient: those named in `fixed` take the fixed value
    from_fit <- inherits(start, "iclv") || (is.list(start) && !is.null(start$coefficients))
    if (from_fit) start <- start$coefficients
    .check_parameter_names(start, "start", pt$name)
    # a fit gives the defined parameters too: they follow from the others
    if (from_fit) start <- start[setdiff(names(start), c(names(fixed), pt$name[.pt_defined(pt)]))]
    .con_check_values(pt, NULL, start, kind = "input")
    if (!is.null(fixed)) .spec_check_fixed_start(fixed, start, kind = "input")
    k <- match(names(start), pt$name)
    keep <- pt$free[k] # the values of fixed parameters stay fixed
    pt$start[k[keep]] <- as.double(start[keep])
  }
  if (!is.null(fixed)) {
    .check_parameter_names(fixed, "fixed", pt$name)
    .con_check_values(pt, fixed, NULL, kind = "spec")
    k <- match(names(fixed), pt$name)
    pt$start[k] <- as.double(fixed)
    pt$free[k] <- FALSE
  }
  pt
}

# .params_full(params, pt, arg): the full natural vector (P, partable order)
# from user values. Fixed parameters not given keep their partable value
# (pt$start); a fixed parameter that is given takes the given value (the
# evaluation happens where the user says). Errors (iclv_error_input) name
# unknown parameters and missing free ones.
.params_full <- function(params, pt, arg = "params") {
  .check_parameter_names(params, arg, pt$name)
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
