# iclv(): the estimation driver. It compiles the model with the data,
# resolves the backend, creates ONE engine (released on exit, whatever
# happens), runs the optimizer on the unconstrained free parameters
# (transform.R), and at the optimum computes the covariance matrices, the
# identification check, the per-component log-likelihoods and the memory
# report.

#' Estimate an ICLV model by simulated maximum likelihood
#'
#' Maximises the simulated log-likelihood
#' \deqn{LL = \sum_n \log \frac{1}{R} \sum_r L_{nr}}{LL = sum_n log( (1/R) sum_r L_nr )}
#' with analytic gradients (and, for `method = "newton"`, the analytic
#' Hessian), on the CPU or on a CUDA GPU.
#'
#' @section Parameterisation:
#' The optimizer works on an unconstrained version of the free parameters:
#' the thresholds of an ordered indicator as the first threshold and the logs
#' of the increments (so they stay ordered), standard deviations as their
#' logs, everything else as is. Results (coefficients, gradients, covariance
#' matrices) are all reported for the natural parameters. If some threshold
#' of an indicator is fixed, the free thresholds of that indicator are
#' optimised as they are; the engine refuses unordered values and the line
#' search backs off from them.
#'
#' @section Starting values:
#' Starting values come from the parameter table (`model$partable`), which
#' is completed from the data (thresholds from the marginal frequencies of
#' each indicator, intercepts and sds of normal indicators from their mean
#' and sd; loadings 1, structural and choice coefficients 0), then from
#' `start`. `control = iclv_control(start_search = TRUE)` also tries a few
#' rescalings of the starting loadings and keeps the best.
#'
#' @section Standard errors:
#' At the optimum the engine returns the individual scores and the analytic
#' Hessian of the simulated log-likelihood. All three covariance matrices
#' are stored: `"hessian"` (inverse negative Hessian), `"bhhh"` (inverse
#' outer product of the scores) and `"robust"` (sandwich); `control$vcov`
#' chooses the one that [summary()] and [confint()] use. The eigenvalues of
#' the negative Hessian scaled to unit diagonal (`D^-1/2 (-H) D^-1/2`, `D`
#' its diagonal) are checked, so that the check does not depend on the units
#' of the data: a negative one, or one below 1e-8 times the largest, gives a
#' warning (class `iclv_warning_identification`) naming the parameters most
#' involved. Standard errors are `NA` only for parameters in the directions
#' where the scaled Hessian (or outer product of the scores) is singular or
#' has no positive diagonal entry, with a warning (`iclv_warning_vcov`).
#' Before estimating, a model that is not identified at all (flat in some
#' direction at two random parameter points) is refused with an
#' `iclv_error_identification` naming the parameters of that direction; see
#' `check_identification` in [iclv_control()].
#'
#' @section Sign of the latent variables:
#' The likelihood does not identify the sign of an LV (negating it and every
#' parameter that multiplies it gives the same model), so two runs from
#' different starts could report mirror images. After a converged
#' estimation iclv flips each LV whose first loading (the loading of the
#' first indicator of its `=~` statement) is negative, with every loading,
#' structural coefficient and utility coefficient it multiplies, and runs
#' the optimizer again from the flipped point (with the design's draws the
#' flipped point is close to, not exactly at, the maximum; the second run
#' takes a few iterations, and the history shows both runs). The standard
#' errors are those at the final estimate. An LV whose sign the user set
#' (a parameter the flip would negate fixed at a non-zero value, e.g.
#' `f =~ 1*y1` or `f =~ -1*y1`) is left alone. `fit$lv_sign` says which
#' LVs were flipped (`flipped`), which the user set (`user`), and why a
#' flip could not be made (`note`: a parameter shared by labels between
#' terms whose signs would change differently; then a warning of class
#' `iclv_warning_sign`). An interrupted or unconverged run is not
#' normalised.
#'
#' @section Null log-likelihood:
#' `loglik_null` is the log-likelihood of the choice model with every
#' utility zero (equal shares among the available alternatives),
#' `-sum over choice rows of log(number available)`. `rho2` compares it with
#' the choice component of the log-likelihood at the estimate (the choice
#' probabilities integrated over the latent variables given the covariates,
#' `loglik_components["choice"]`): `1 - LL_choice / LL_null`.
#'
#' @section Weights:
#' With `weights = "w"` the log-likelihood is \eqn{\sum_n w_n \log L_n}{sum_n w_n log L_n}
#' (sampling weights, as Stata's `pweight` and Apollo's weights). Its
#' gradient, Hessian and the individual scores are those of this weighted
#' sum: the scores are \eqn{w_n s_n}{w_n s_n}, so the BHHH matrix is
#' \eqn{\sum_n w_n^2 s_n s_n'}{sum_n w_n^2 s_n s_n'} and the `"robust"`
#' covariance is the sandwich of the weighted Hessian and these weighted
#' scores, the estimator for sampling weights; prefer it to `"hessian"`
#' and `"bhhh"`, which assume the weights are frequencies or do not
#' account for them. Integer weights give the log-likelihood, gradient
#' and Hessian of a data set in which each individual appears \eqn{w_n}{w_n}
#' times. `loglik_null`, `loglik_components`
#' and `rho2` are weighted too; `fit$weights` holds the column and the
#' sum of the weights, which [summary()] reports. Without weights the
#' engines run their unweighted code: the results are bit for bit those
#' of earlier versions, and weights all 1 give the same bits.
#'
#' @section Long runs:
#' With `trace = 1` every iteration prints one line. Ctrl-C stops the
#' estimation and returns the best point reached, marked not converged
#' (code 3), with a warning (class `iclv_warning_interrupt`); the engine
#' checks for it between batches of individuals (a small fraction of a
#' second; see bench/RESULTS.md), also inside a long Hessian evaluation.
#' Ctrl-C after the optimizer has stopped, while the standard errors are
#' computed, keeps the estimates and the log-likelihood: the fit has code 3,
#' message "interrupted during standard errors", and `NA` covariance
#' matrices and standard errors. `checkpoint` in [iclv_control()]
#' saves the optimizer's whole state every `checkpoint_every` iterations,
#' atomically (a temporary file, then a rename); a path that cannot be
#' written is refused at the start, and a write that fails later only
#' warns. `iclv(..., resume = path)`
#' with the same model, data, draws and fixed parameters continues from it
#' exactly: same point, same BFGS matrix, same history, so the resumed run
#' reaches the estimates an uninterrupted run reaches. A checkpoint of a
#' different model, data or draw design, or one whose saved state is damaged,
#' is refused (class `iclv_error_control`). When resuming, `maxit` counts the
#' iterations of this call only: a run stopped by `maxit = 3` and resumed
#' with `maxit = 3` does 3 more (6 in all).
#'
#' @param model An [iclv_model()].
#' @param data A data.frame with every column the model uses, the rows of
#'   one individual adjacent.
#' @param draws An [iclv_draws()] design, or a numeric array of standard
#'   normal draws (individuals x draws x latent variables).
#' @param backend `"auto"` (CUDA when a usable device exists, else the CPU;
#'   the choice and its reason are in `fit$backend` and printed), `"cpu"` or
#'   `"cuda"` (an error, saying why, when no device is usable).
#' @param control An [iclv_control()] object.
#' @param start `NULL`, a named numeric vector of starting values (names as
#'   in [coef()]; parameters not named keep their defaults), or a previous
#'   fit (its coefficients are used).
#' @param fixed `NULL` or a named numeric vector: these parameters are fixed
#'   at the given values (in addition to those fixed in the model). A
#'   parameter named in both `fixed` and a vector `start` is an error; with a
#'   fit as `start`, the parameters in `fixed` take the fixed values.
#' @param resume `NULL` or the path of a checkpoint written by an earlier run
#'   with `iclv_control(checkpoint = path)`: the optimizer continues from its
#'   saved state (see "Long runs").
#' @param cluster `NULL`, or a cluster from the `parallel` package: the
#'   individuals are split into contiguous shards, one per worker, each with
#'   its own engine for the whole fit (on its host's GPU with
#'   `backend = "cuda"`); see [iclv_cluster]. The estimates equal those of
#'   one process; `fit$memory$workers` reports each worker.
#' @param weights `NULL` (every individual counts once) or the name of a
#'   numeric column of `data` holding a weight per individual: constant
#'   within each individual, finite, not missing, non-negative and not zero
#'   for everyone (an `iclv_error_data` names the column and the first row
#'   and id at fault otherwise). See "Weights".
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv"`: a list with `coefficients` (all
#'   parameters, fixed included), `vcov` (list of the `hessian`, `bhhh` and
#'   `robust` matrices over the free parameters), `vcov_type`, `loglik`,
#'   `loglik_null`, `loglik_components` (per indicator and the choice model;
#'   for ranked and best-worst choices also per stage, `"choice:<column>"`),
#'   `rho2`, `n_individuals`, `n_obs` (choice rows; for ranked and
#'   best-worst choices the MNL rows of their stages), `n_params` (free),
#'   `convergence` (list: `code` (0 converged, 1 iteration limit, 2 no
#'   progress, 3 interrupted, 4 stopped by the callback), `message`,
#'   `iterations`, `gradient_norm` (max absolute gradient at the estimate),
#'   `scaled_gradient`, `evaluations`, `method`, `final_method` and
#'   `switched_at` (a BFGS/BHHH run finished by Newton steps)), `gradient`,
#'   `identification` (`eigenvalues` of the negative Hessian scaled to unit
#'   diagonal, `ok`, `weak` (the parameters most involved when not ok),
#'   `condition` (its condition number)), `draws` (`type`,
#'   `n`, `seed`), `backend` (`name`, `device`, `reason`), `timing` (`total`,
#'   `per_evaluation` seconds, `evaluations`), `lv_sign` (see "Sign of the
#'   latent variables"), `partable` (`name`, `block`,
#'   `lhs`, `op`, `rhs`, `free`, `est`, `se`, lavaan's `label`: the
#'   user's label of the parameter or "", and `defined`: the expression of
#'   a parameter defined by a `:=` / `==` constraint, or "" (its `se` is the
#'   delta method's, see "Constraints" in [iclv_model()])),
#'   `definitions_jacobian` (the derivatives of the defined parameters with
#'   respect to the free ones at the estimate; NULL without constraints),
#'   `memory` (`host_peak`,
#'   `device_peak`, `buffers`, `device_total`, `device_free_at_start`,
#'   `per_chunk`, `n_chunks`, `process_peak` in bytes), `history` (a
#'   data.frame, one row per iteration, row 1 the start: `iteration`,
#'   `loglik`, `change`, `gradient_norm` (max |gradient|),
#'   `scaled_gradient` (`g' A^-1 g` at that point, `A` the method's
#'   curvature matrix: the convergence measure compared with `tol`; the
#'   last row is `convergence$scaled_gradient`), `step`, `seconds`),
#'   `call`, `model`, `control`.
#' @seealso [iclv_model()], [iclv_control()], [summary.iclv()],
#'   [predict.iclv()], [iclv_loglik()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   structural = "att ~ age",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5,
#'        asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 150, n_tasks = 4, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 50, seed = 1), backend = "cpu")
#' fit
#' summary(fit)
#' @export
iclv <- function(model, data, draws = iclv_draws("halton", 100), backend = "auto",
                 control = iclv_control(), start = NULL, fixed = NULL, resume = NULL,
                 cluster = NULL, weights = NULL, ...) {
  dots <- list(...)
  if (length(dots)) {
    nm <- names(dots)
    nm <- if (is.null(nm)) rep("", length(dots)) else nm
    nm[!nzchar(nm)] <- "(unnamed)"
    iclv_abort("control", sprintf("unknown argument %s to iclv()", iclv_quote(nm)))
  }
  t_begin <- proc.time()[["elapsed"]]
  cl <- match.call()
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  control <- .control_valid(control)
  be <- if (is.null(cluster)) .resolve_backend(backend, control$device) else
    .cluster_resolve_backend(cluster, backend)

  prob <- .iclv_problem(model, data, draws, start = start, fixed = fixed, weights = weights)
  model <- prob$comp$model # expression utilities resolved by the data (R/tape.R): what the fit keeps
  .lv_check_over_restriction(model, prob$partable)
  engine <- .problem_engine(prob, be$name, n_threads = control$n_threads, device = control$device,
                            device_memory = if (is.null(control$device_memory)) 0 else control$device_memory,
                            cluster = cluster)
  on.exit(.engine_release(engine), add = TRUE)
  timer <- new.env(parent = emptyenv())
  timer$seconds <- 0
  timer$n <- 0L

  opt <- .iclv_estimate(prob, engine, control, resume, timer)
  n_opt_evals <- timer$n
  opt_seconds <- timer$seconds
  t_post <- proc.time()[["elapsed"]]
  inf <- .iclv_inference(prob, engine, opt, control, timer)
  t_end <- proc.time()[["elapsed"]]
  fit <- .iclv_fit(prob, inf, be, control,
                   timing = list(total = t_end - t_begin,
                                 per_evaluation = if (n_opt_evals) opt_seconds / n_opt_evals else NA_real_,
                                 evaluations = n_opt_evals, optimizer = opt$seconds,
                                 post_estimation = t_end - t_post),
                   call = cl, model = model, draws = draws, start = start, fixed = fixed)
  if (!fit$convergence$code %in% c(0L, 3L)) {
    iclv_warn("convergence", sprintf("the estimation did not converge: %s (after %d iterations)",
                                     fit$convergence$message, fit$convergence$iterations))
  }
  fit
}

# The estimation itself: checkpoint to resume (checked against the
# problem's fingerprint), the optional start search, the optimizer on the
# unconstrained free parameters. Returns .iclv_optimize()'s list with
# `theta` (P, natural) added; with no free parameter, the start.
.iclv_estimate <- function(prob, engine, control, resume, timer) {
  theta0 <- prob$theta0
  # what a checkpoint must match to be resumed here (hashing the data only
  # when a checkpoint is read or written)
  fingerprint <- if (!is.null(resume) || !is.null(control$checkpoint)) .problem_fingerprint(prob)
  resume_state <- NULL
  if (!is.null(resume)) {
    ck <- .read_checkpoint(resume)
    if (!identical(ck$fingerprint, fingerprint)) {
      iclv_abort("control", sprintf(paste0("'resume': the checkpoint %s was written for another model, data, ",
                                           "draw design or set of fixed parameters"), iclv_quote(resume)))
    }
    resume_state <- ck$state
  }
  if (!length(prob$free)) {
    return(list(theta = theta0, code = 0L, message = "no free parameters", iterations = 0L, evaluations = 0L,
                scaled_gradient = 0, rel_change = NA_real_, seconds = 0, history = .optim_history_frame()))
  }
  if (control$check_identification && is.null(resume_state)) .identification_precheck(prob, engine)
  if (control$start_search && is.null(resume_state)) {
    theta0 <- .start_search(theta0, prob$partable, function(theta, gradient = TRUE) {
      # scaled loadings change the definitions that use them (R/constraints.R)
      .timed_eval(engine, timer, .con_fill(theta, prob$comp$definitions), gradient = gradient)
    }, control$trace)
  }
  tr <- prob$tr
  run <- function(theta, resume) {
    opt <- .iclv_optimize(.problem_objective(prob, engine, timer), .to_internal(theta, tr), control,
                          natural = function(u) .to_natural(u, tr), resume = resume,
                          checkpoint_extra = list(fingerprint = fingerprint))
    opt$theta <- .to_natural(opt$par, tr)
    opt
  }
  .lv_sign_normalise(prob, run(theta0, resume_state), function(theta) run(theta, NULL))
}

# At the optimum: the evaluation with scores and Hessian, the covariance
# matrices, the identification check, the per-component log-likelihoods
# and the memory report. Ctrl-C here (the engine polls between batches of
# individuals) keeps the estimates: what the interrupted evaluation would
# give is NA, and `opt` comes back with code 3 and a message saying so.
.iclv_inference <- function(prob, engine, opt, control, timer) {
  theta_hat <- opt$theta
  free <- prob$free
  free_names <- prob$free_names
  comp <- prob$comp
  on_int <- function(e) NULL
  final <- tryCatch(.timed_eval(engine, timer, theta_hat, gradient = TRUE, scores = TRUE,
                                hessian = control$hessian),
                    interrupt = on_int, iclv_error_interrupted = on_int)
  post_interrupted <- is.null(final)
  if (post_interrupted) {
    na_free <- matrix(NA_real_, length(free), length(free), dimnames = list(free_names, free_names))
    final <- list(loglik = opt$loglik %||% NA_real_, gradient = rep(NA_real_, length(theta_hat)))
  }
  parts <- .problem_free_parts(prob, if (post_interrupted) list(gradient = final$gradient) else
    list(gradient = final$gradient, scores = final$scores, hessian = if (control$hessian) final$hessian),
    theta_hat)
  H <- parts$hessian
  # at a point that is not an optimum, curvature warnings would mislead:
  # vcov() warns about the non-converged fit instead
  converged <- opt$code == 0L
  vc <- if (post_interrupted) list(hessian = na_free, bhhh = na_free, robust = na_free) else
    if (length(free)) .vcov_compute(H, parts$scores, free_names, warn = converged) else
    list(hessian = NULL, bhhh = NULL, robust = NULL)
  ident <- .identification(H, free_names, warn = converged)

  pred <- if (!post_interrupted) {
    tryCatch(.engine_predict(engine, theta_hat), interrupt = on_int, iclv_error_interrupted = on_int)
  }
  if (post_interrupted || is.null(pred)) {
    pred <- list(comp_ll = rep(NA_real_, length(comp$indicators) + 1L))
    opt$code <- 3L
    opt$message <- if (post_interrupted) "interrupted during standard errors" else
      "interrupted after the standard errors (no log-likelihood components)"
    iclv_warn("interrupt", sprintf(paste0("interrupted after the optimizer stopped (%s): returning the ",
                                          "estimates (log-likelihood %s)%s"),
                                   if (converged) "converged" else "not converged",
                                   format(final$loglik, digits = 10),
                                   if (post_interrupted) " without standard errors" else ""))
  }
  has_choice <- comp$c$choice_type != 0L
  comp_ll <- stats::setNames(as.double(pred$comp_ll), c(comp$indicators, "choice"))
  if (!has_choice) comp_ll <- comp_ll[-length(comp_ll)]
  # ranked / best-worst: the choice LL of each stage too ("choice:<column>", R/rank.R)
  if (has_choice && !post_interrupted && !is.null(comp$stage)) {
    comp_ll <- c(comp_ll, .rank_stage_ll(comp, theta_hat, prob$spec, control$n_threads))
  }
  # several choice parts: the choice LL of each part too ("choice:<part>", R/parts.R)
  if (has_choice && !post_interrupted && !is.null(comp$part)) {
    comp_ll <- c(comp_ll, .parts_ll(comp, theta_hat, prob$spec, control$n_threads))
  }
  ll_null <- if (has_choice) .loglik_null(comp$c) else NA_real_ # (weighted by comp$c$weight)
  list(opt = opt, loglik = final$loglik, gradient = parts$gradient, scores = parts$scores, hessian = H,
       vcov = vc, identification = ident, comp_ll = comp_ll, ll_null = ll_null,
       rho2 = if (has_choice) unname(1 - comp_ll[["choice"]] / ll_null) else NA_real_,
       memory = .memory_report(.engine_memory(engine)))
}

# The "iclv" object from the problem, the optimizer's result and the
# inference at the optimum (see ?iclv, "Value").
.iclv_fit <- function(prob, inf, be, control, timing, call, model, draws, start, fixed) {
  opt <- inf$opt
  pt <- prob$partable
  free <- prob$free
  theta_hat <- opt$theta
  vc <- inf$vcov
  vtype <- control$vcov
  se <- rep(NA_real_, nrow(pt))
  if (length(free) && !is.null(vc[[vtype]])) se[free] <- .se_from_vcov(vc[[vtype]])
  # parameters defined by `:=` / `==`: the Jacobian of their definitions at
  # the estimate (defined x free), and their delta-method SEs (R/constraints.R)
  defs <- prob$comp$definitions
  if (length(defs)) theta_hat <- .con_fill(theta_hat, defs, report = TRUE)
  dj <- if (length(defs)) .con_derivs(defs, theta_hat, prob$free_names)$D
  if (!is.null(dj) && length(free) && !is.null(vc[[vtype]])) {
    V <- .vcov_expand(list(coefficients = theta_hat, definitions_jacobian = dj), vc[[vtype]])
    d <- match(rownames(dj), pt$name)
    se[d] <- .se_from_vcov(V[d, d, drop = FALSE])
  }
  ptab <- data.frame(name = pt$name, block = pt$block, lhs = pt$lhs, op = pt$op, rhs = pt$rhs,
                     free = pt$free, est = unname(theta_hat), se = se,
                     label = pt$label %||% rep("", nrow(pt)), defined = pt$defined %||% rep("", nrow(pt)),
                     stringsAsFactors = FALSE)
  fit <- list(
    coefficients = theta_hat,
    vcov = vc,
    vcov_type = vtype,
    loglik = inf$loglik,
    # LL at the optimizer's starting point (iteration 0 of the history)
    loglik_start = if (nrow(opt$history)) opt$history$loglik[1] else inf$loglik,
    loglik_null = inf$ll_null,
    loglik_components = inf$comp_ll,
    rho2 = inf$rho2,
    n_individuals = prob$comp$n_ind,
    n_obs = prob$comp$c$n_rows,
    n_params = length(free),
    weights = if (is.null(prob$comp$weights)) NULL else
      list(column = prob$comp$weights_column, sum = sum(prob$comp$weights)),
    convergence = list(code = opt$code, message = opt$message, iterations = opt$iterations,
                       gradient_norm = if (length(free)) max(abs(inf$gradient)) else 0,
                       scaled_gradient = opt$scaled_gradient, rel_change = opt$rel_change,
                       evaluations = timing$evaluations, method = control$method,
                       final_method = opt$method %||% control$method,
                       switched_at = opt$switched_at %||% NA_integer_),
    gradient = inf$gradient,
    # per-individual scores (N x free) and the Hessian (free x free) at the
    # estimate, for clustered covariances and the scaled gradient
    scores = inf$scores,
    hessian = inf$hessian,
    definitions_jacobian = dj,
    identification = inf$identification,
    lv_sign = opt$lv_sign,
    draws = .draws_info(draws),
    backend = list(name = be$name, device = be$device, device_name = be$device_name,
                   requested = be$requested, reason = be$reason),
    timing = timing,
    partable = ptab,
    memory = inf$memory,
    history = opt$history,
    call = call,
    model = model,
    control = control,
    # what predict() and fitted() need without the data
    compiled = prob$comp,
    draws_design = draws,
    # what update() needs besides the data
    start = if (is.list(start)) start$coefficients else start,
    fixed = fixed
  )
  class(fit) <- "iclv"
  fit
}

# A cheap look around the starting values: the loadings scaled by 0.5, 1
# and 2 (the scale of the latent variables is the main unknown); the best
# log-likelihood wins. Only free loadings change.
.start_search <- function(theta0, pt, evaluate, trace = 0L) {
  load <- which(pt$role == "loading" & pt$free)
  if (!length(load)) return(theta0)
  best <- theta0
  best_ll <- tryCatch(evaluate(theta0, gradient = FALSE)$loglik, iclv_error_numeric = function(e) -Inf)
  for (s in c(0.5, 2)) {
    th <- theta0
    th[load] <- th[load] * s
    ll <- tryCatch(evaluate(th, gradient = FALSE)$loglik, iclv_error_numeric = function(e) -Inf)
    if (trace >= 1L) cat(sprintf("start search: loadings x %.1f  LL %s\n", s, format(ll, digits = 10)))
    if (is.finite(ll) && ll > best_ll) {
      best <- th
      best_ll <- ll
    }
  }
  best
}

# LL of the choice model with every utility zero: -sum_t log(available_t)
# (each row t weighted by its individual's weight when cc$weight is set).
.loglik_null <- function(cc) {
  if (cc$n_rows == 0L) return(NA_real_)
  n_av <- if (cc$n_avail > 0L) {
    rowSums(matrix(cc$avail != 0L, nrow = cc$n_rows, ncol = cc$n_alt, byrow = TRUE))
  } else {
    rep(.prob_width(cc), cc$n_rows) # the alternatives, or an ordered choice's categories
  }
  if (!is.null(cc$weight)) return(-sum(rep(cc$weight, diff(cc$row_ptr)) * log(n_av)))
  -sum(log(n_av))
}

# fit$draws: type, n, seed of the design (a user array: type "user").
.draws_info <- function(draws) {
  if (is.array(draws) || (is.numeric(draws) && !inherits(draws, "iclv_draws"))) {
    d <- dim(draws)
    return(list(type = "user", n = if (length(d) >= 2L) d[2] else NA_integer_, seed = NA_real_))
  }
  if (is.list(draws) && !is.null(draws$type) && draws$type == "user") {
    d <- dim(draws$user %||% draws$draws)
    return(list(type = "user", n = draws$n %||% (if (length(d) >= 2L) d[2] else NA_integer_),
                seed = NA_real_))
  }
  list(type = draws$type %||% NA_character_, n = draws$n %||% NA_integer_,
       seed = draws$seed %||% NA_real_)
}

# fit$memory from the engine's accounts and the process's high-water mark.
.memory_report <- function(m) {
  host <- m$host
  dev <- m$device
  bufs <- host$buffers
  if (length(bufs)) names(bufs) <- paste0("host:", names(bufs))
  if (!is.null(dev) && length(dev$buffers)) {
    db <- dev$buffers
    names(db) <- paste0("device:", names(db))
    bufs <- c(bufs, db)
  }
  list(host_peak = host$peak,
       device_peak = if (is.null(dev)) NA_real_ else dev$peak,
       buffers = bufs,
       device_total = m$device_total,
       device_free_at_start = m$device_free_at_start,
       per_chunk = m$per_chunk,
       n_chunks = m$n_chunks,
       process_peak = .process_peak(),
       workers = m$workers) # a cluster engine's report per worker (NULL otherwise)
}

# The resident-set high-water mark of this R process (VmHWM), bytes; NA
# where /proc is not readable (e.g. macOS, Windows).
.process_peak <- function() {
  f <- "/proc/self/status"
  if (!file.exists(f)) return(NA_real_)
  x <- tryCatch(readLines(f, warn = FALSE), error = function(e) character())
  line <- grep("^VmHWM:", x, value = TRUE)
  if (!length(line)) return(NA_real_)
  kb <- suppressWarnings(as.numeric(gsub("[^0-9]", "", line[1])))
  if (is.na(kb)) NA_real_ else kb * 1024
}

# md5 of an R object's serialisation (identifies the compiled data of a
# checkpoint without keeping a copy of it)
.md5_object <- function(x) {
  f <- tempfile()
  on.exit(unlink(f))
  con <- file(f, "wb")
  serialize(x, con, xdr = TRUE, version = 2)
  close(con)
  unname(tools::md5sum(f))
}
