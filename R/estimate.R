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
#'
#' @section Null log-likelihood:
#' `loglik_null` is the log-likelihood of the choice model with every
#' utility zero (equal shares among the available alternatives),
#' `-sum over choice rows of log(number available)`. `rho2` compares it with
#' the choice component of the log-likelihood at the estimate (the choice
#' probabilities integrated over the latent variables given the covariates,
#' `loglik_components["choice"]`): `1 - LL_choice / LL_null`.
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
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv"`: a list with `coefficients` (all
#'   parameters, fixed included), `vcov` (list of the `hessian`, `bhhh` and
#'   `robust` matrices over the free parameters), `vcov_type`, `loglik`,
#'   `loglik_null`, `loglik_components` (per indicator and the choice model),
#'   `rho2`, `n_individuals`, `n_obs` (choice rows), `n_params` (free),
#'   `convergence` (list: `code` (0 converged, 1 iteration limit, 2 no
#'   progress, 3 interrupted, 4 stopped by the callback), `message`,
#'   `iterations`, `gradient_norm` (max absolute gradient at the estimate),
#'   `scaled_gradient`, `evaluations`, `method`, `final_method` and
#'   `switched_at` (a BFGS/BHHH run finished by Newton steps)), `gradient`,
#'   `identification` (`eigenvalues` of the negative Hessian scaled to unit
#'   diagonal, `ok`, `weak` (the parameters most involved when not ok),
#'   `condition` (its condition number)), `draws` (`type`,
#'   `n`, `seed`), `backend` (`name`, `device`, `reason`), `timing` (`total`,
#'   `per_evaluation` seconds, `evaluations`), `partable` (`name`, `block`,
#'   `lhs`, `op`, `rhs`, `free`, `est`, `se`), `memory` (`host_peak`,
#'   `device_peak`, `buffers`, `device_total`, `device_free_at_start`,
#'   `per_chunk`, `n_chunks`, `process_peak` in bytes), `history` (one row
#'   per iteration), `call`, `model`, `control`.
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
                 cluster = NULL, ...) {
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

  comp <- .iclv_compile(model, data)
  pt <- comp$partable
  pt <- .apply_start_fixed(pt, start, fixed)
  theta0 <- stats::setNames(as.double(pt$start), pt$name)
  bad <- .check_constraints(theta0, pt$name, comp$thresholds, comp$positive)
  if (!is.null(bad)) iclv_abort("input", paste("starting values:", bad))

  spec <- .draws_spec(draws, comp$n_ind, length(comp$lvs), comp$lvs)
  engine <- .engine_new(comp$c, spec, be$name, n_threads = control$n_threads, device = control$device,
                        device_memory = if (is.null(control$device_memory)) 0 else control$device_memory,
                        cluster = cluster)
  on.exit(.engine_release(engine), add = TRUE)

  free <- which(pt$free)
  free_names <- pt$name[free]
  timer <- new.env(parent = emptyenv())
  timer$seconds <- 0
  timer$n <- 0L
  evaluate <- function(theta, gradient = TRUE, scores = FALSE, hessian = FALSE) {
    t0 <- proc.time()[["elapsed"]]
    ev <- .engine_eval(engine, theta, gradient = gradient, scores = scores, hessian = hessian)
    timer$seconds <- timer$seconds + (proc.time()[["elapsed"]] - t0)
    timer$n <- timer$n + 1L
    ev
  }

  # what a checkpoint must match to be resumed here
  fingerprint <- list(free_names = free_names, n_ind = comp$n_ind,
                      draws = spec[c("type", "n_draws", "n_dim", "seed", "skip")],
                      data_md5 = .md5_object(list(comp$c, theta0[!pt$free])))
  resume_state <- NULL
  if (!is.null(resume)) {
    ck <- .read_checkpoint(resume)
    if (!identical(ck$fingerprint, fingerprint)) {
      iclv_abort("control", sprintf(paste0("'resume': the checkpoint %s was written for another model, data, ",
                                           "draw design or set of fixed parameters"), iclv_quote(resume)))
    }
    resume_state <- ck$state
  }

  if (control$start_search && length(free) && is.null(resume_state)) {
    theta0 <- .start_search(theta0, pt, comp, evaluate, control$trace)
  }

  tr <- .transform_new(pt$name, theta0, pt$free, comp$thresholds, comp$positive)
  fn <- function(u, scores = FALSE, hessian = FALSE) {
    theta <- .to_natural(u, tr)
    ev <- evaluate(theta, gradient = TRUE, scores = scores, hessian = hessian)
    d <- .transform_derivs(u, tr, ev$gradient[free],
                           if (scores) ev$scores[, free, drop = FALSE],
                           if (hessian) ev$hessian[free, free, drop = FALSE])
    list(loglik = ev$loglik, gradient = d$gradient, scores = d$scores, hessian = d$hessian)
  }

  if (length(free)) {
    opt <- .iclv_optimize(fn, .to_internal(theta0, tr), control,
                          natural = function(u) .to_natural(u, tr), resume = resume_state,
                          checkpoint_extra = list(fingerprint = fingerprint))
    theta_hat <- .to_natural(opt$par, tr)
  } else {
    theta_hat <- theta0
    opt <- list(code = 0L, message = "no free parameters", iterations = 0L, evaluations = 0L,
                scaled_gradient = 0, rel_change = NA_real_, seconds = 0,
                history = data.frame(iteration = integer(), loglik = double(), change = double(),
                                     gradient_norm = double(), step = double(), seconds = double()))
  }
  n_opt_evals <- timer$n
  opt_seconds <- timer$seconds

  # ---- at the optimum ----------------------------------------------------
  t_post <- proc.time()[["elapsed"]]
  # Ctrl-C here (the engine polls between batches of individuals) keeps the
  # estimates: the fit is returned without what this evaluation gives
  # (standard errors, gradient, identification, components), code 3
  on_int <- function(e) NULL
  final <- tryCatch(evaluate(theta_hat, gradient = TRUE, scores = TRUE, hessian = control$hessian),
                    interrupt = on_int, iclv_error_interrupted = on_int)
  post_interrupted <- is.null(final)
  if (post_interrupted) {
    na_free <- matrix(NA_real_, length(free), length(free), dimnames = list(free_names, free_names))
    final <- list(loglik = opt$loglik %||% NA_real_, gradient = rep(NA_real_, length(theta_hat)))
  }
  g_nat <- stats::setNames(final$gradient[free], free_names)
  S <- if (!post_interrupted) final$scores[, free, drop = FALSE]
  if (!post_interrupted) colnames(S) <- free_names
  H <- if (control$hessian && !post_interrupted) final$hessian[free, free, drop = FALSE] else NULL
  if (!is.null(H)) dimnames(H) <- list(free_names, free_names)
  # at a point that is not an optimum, curvature warnings would mislead:
  # vcov() warns about the non-converged fit instead
  converged <- opt$code == 0L
  vc <- if (post_interrupted) list(hessian = na_free, bhhh = na_free, robust = na_free) else
    if (length(free)) .vcov_compute(H, S, free_names, warn = converged) else
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
  ll_null <- if (has_choice) .loglik_null(comp$c) else NA_real_
  rho2 <- if (has_choice) unname(1 - comp_ll[["choice"]] / ll_null) else NA_real_
  memory <- .memory_report(.engine_memory(engine))
  t_end <- proc.time()[["elapsed"]]

  vtype <- control$vcov
  se <- rep(NA_real_, nrow(pt))
  if (length(free) && !is.null(vc[[vtype]])) se[free] <- .se_from_vcov(vc[[vtype]])
  ptab <- data.frame(name = pt$name, block = pt$block, lhs = pt$lhs, op = pt$op, rhs = pt$rhs,
                     free = pt$free, est = unname(theta_hat), se = se, stringsAsFactors = FALSE)

  fit <- list(
    coefficients = theta_hat,
    vcov = vc,
    vcov_type = vtype,
    loglik = final$loglik,
    # LL at the optimizer's starting point (iteration 0 of the history)
    loglik_start = if (nrow(opt$history)) opt$history$loglik[1] else final$loglik,
    loglik_null = ll_null,
    loglik_components = comp_ll,
    rho2 = rho2,
    n_individuals = comp$n_ind,
    n_obs = comp$c$n_rows,
    n_params = length(free),
    convergence = list(code = opt$code, message = opt$message, iterations = opt$iterations,
                       gradient_norm = if (length(free)) max(abs(g_nat)) else 0,
                       scaled_gradient = opt$scaled_gradient, rel_change = opt$rel_change,
                       evaluations = n_opt_evals, method = control$method,
                       final_method = opt$method %||% control$method,
                       switched_at = opt$switched_at %||% NA_integer_),
    gradient = g_nat,
    # per-individual scores (N x free) and the Hessian (free x free) at the
    # estimate, for clustered covariances and the scaled gradient
    scores = S,
    hessian = H,
    identification = ident,
    draws = .draws_info(draws),
    backend = list(name = be$name, device = be$device, device_name = be$device_name,
                   requested = be$requested, reason = be$reason),
    timing = list(total = t_end - t_begin,
                  per_evaluation = if (n_opt_evals) opt_seconds / n_opt_evals else NA_real_,
                  evaluations = n_opt_evals, optimizer = opt$seconds,
                  post_estimation = t_end - t_post),
    partable = ptab,
    memory = memory,
    history = opt$history,
    call = cl,
    model = model,
    control = control,
    # what predict() and fitted() need without the data
    compiled = comp,
    draws_design = draws,
    # what update() needs besides the data
    start = if (is.list(start)) start$coefficients else start,
    fixed = fixed
  )
  class(fit) <- "iclv"
  if (!opt$code %in% c(0L, 3L)) {
    iclv_warn("convergence", sprintf("the estimation did not converge: %s (after %d iterations)",
                                     opt$message, opt$iterations))
  }
  fit
}

# Starting and fixed values from iclv()'s `start` and `fixed` (by name).
# A named numeric vector whose names are all parameters of the model.
.check_parameter_names <- function(x, arg, names) {
  .check_named_numeric(x, arg)
  unknown <- setdiff(names(x), names)
  if (length(unknown)) {
    iclv_abort("input", sprintf("'%s' names %s, which is not a parameter of the model (see model$partable$name)",
                                arg, iclv_quote(unknown)))
  }
  invisible(x)
}

.apply_start_fixed <- function(pt, start, fixed) {
  if (!is.null(start)) {
    # a fit gives every coefficient: those named in `fixed` take the fixed value
    from_fit <- inherits(start, "iclv") || (is.list(start) && !is.null(start$coefficients))
    if (from_fit) start <- start$coefficients
    .check_parameter_names(start, "start", pt$name)
    if (from_fit) start <- start[setdiff(names(start), names(fixed))]
    if (!is.null(fixed)) .spec_check_fixed_start(fixed, start, kind = "input")
    k <- match(names(start), pt$name)
    keep <- pt$free[k] # the values of fixed parameters stay fixed
    pt$start[k[keep]] <- as.double(start[keep])
  }
  if (!is.null(fixed)) {
    .check_parameter_names(fixed, "fixed", pt$name)
    k <- match(names(fixed), pt$name)
    pt$start[k] <- as.double(fixed)
    pt$free[k] <- FALSE
  }
  pt
}

# A cheap look around the starting values: the loadings scaled by 0.5, 1
# and 2 (the scale of the latent variables is the main unknown); the best
# log-likelihood wins. Only free loadings change.
.start_search <- function(theta0, pt, comp, evaluate, trace = 0L) {
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

# LL of the choice model with every utility zero: -sum_t log(available_t).
.loglik_null <- function(cc) {
  if (cc$n_rows == 0L) return(NA_real_)
  n_av <- if (cc$n_avail > 0L) {
    rowSums(matrix(cc$avail != 0L, nrow = cc$n_rows, ncol = cc$n_alt, byrow = TRUE))
  } else {
    rep(cc$n_alt, cc$n_rows)
  }
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
