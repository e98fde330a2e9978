# Optimizer and reporting settings, validated in one place (as
# survival::coxph.control does): iclv() and everything after it may trust the
# object this returns.

#' Settings for estimating an ICLV model
#'
#' Every setting of the optimizer, of the standard errors and of the backend
#' is validated here, so that a bad value fails before any work starts.
#'
#' The optimizer works on an unconstrained version of the free parameters
#' (thresholds as a first threshold plus log increments, standard deviations
#' as log standard deviations; see [iclv()]). It stops with success when the
#' scaled gradient `g' H^-1 g` is below `tol`, `H` being the method's current
#' curvature matrix (BFGS: its inverse-Hessian approximation; Newton: the
#' negative analytic Hessian, made positive definite if needed; BHHH: the
#' outer product of the individual scores), or when an iteration changes the
#' log-likelihood by less than `reltol` relative to its size.
#'
#' @param method `"bfgs"` (default; analytic gradient, strong-Wolfe line
#'   search, started from the BHHH matrix), `"newton"` (analytic Hessian with
#'   a Levenberg-style shift where it is not negative definite) or `"bhhh"`
#'   (outer product of the analytic scores).
#' @param maxit Maximum number of iterations of this call (a whole number
#'   from 0 to `.Machine$integer.max`; so are `trace`, `checkpoint_every`
#'   (from 1) and `device`). When resuming from a checkpoint
#'   (`iclv(resume = )`), the iterations already done are not counted:
#'   `maxit = 3` runs up to 3 more. `fit$convergence$iterations` reports the
#'   total.
#' @param tol Convergence tolerance on the scaled gradient `g' H^-1 g`.
#' @param reltol Convergence tolerance on the relative change of the
#'   log-likelihood in one iteration.
#' @param trace 0 (silent), 1 (one line per iteration: iteration,
#'   log-likelihood, change, gradient norm, step length, seconds) or 2 (also
#'   every trial point of the line search).
#' @param n_threads CPU threads for the CPU engine, at most 1024; 0 means the
#'   OpenMP default (which respects `OMP_NUM_THREADS` and `OMP_THREAD_LIMIT`).
#'   More than 4 per processor, or more than the system can start now (e.g.
#'   under `ulimit -v`), is refused when the engine is created (class
#'   `iclv_error_control`).
#' @param device CUDA device ordinal used by the `"cuda"` backend.
#' @param device_memory `NULL` (let the backend decide) or the number of
#'   bytes of device memory the CUDA backend may use; individuals are split
#'   into chunks that fit.
#' @param vcov The covariance type that [summary()], [confint()], `tidy()` and
#'   the `se` column of the parameter table use: `"robust"` (sandwich,
#'   default), `"hessian"` (inverse negative Hessian) or `"bhhh"` (inverse
#'   outer product of the scores). All three are always stored in the fit.
#' @param hessian Use the analytic Hessian after the optimizer stops: for
#'   the `"hessian"` and `"robust"` covariance types, for the identification
#'   check, and to confirm a BFGS or BHHH stop (if `g' (-H)^-1 g` is not below
#'   `tol` there, the optimizer goes on with Newton steps and
#'   `fit$convergence$message` says so).
#' @param checkpoint `NULL` or a file path: every `checkpoint_every`
#'   iterations the optimizer's whole state (point, BFGS matrix, history,
#'   best point) is written there atomically (a temporary file, then a
#'   rename) with [saveRDS()], together with `coefficients`, `iteration`,
#'   `loglik` and `time`. `iclv(..., resume = path)` continues exactly from it;
#'   `readRDS(path)$coefficients` can also serve as `start`. [iclv()] checks
#'   at the start that the file can be written (a classed error otherwise);
#'   a write that fails later gives one warning (class
#'   `iclv_warning_checkpoint`) and the estimation goes on.
#' @param checkpoint_every Iterations between checkpoints.
#' @param callback `NULL` or a function `function(iteration, loglik, params)`
#'   called after every iteration with the current (natural, named)
#'   parameters. If it returns `FALSE` the optimizer stops (convergence code 4).
#'   It must accept three arguments (or `...`); an error it raises stops the
#'   estimation with an `iclv_error_control` naming the iteration.
#' @param start_search If `TRUE`, before optimizing, the log-likelihood is
#'   evaluated at a few rescalings of the starting loadings and latent
#'   variable effects (0.5, 1, 2 times, and with the choice model's latent
#'   variable effects at zero), and the best point is used. Cheap: a handful
#'   of evaluations.
#' @param check_identification If `TRUE` (the default), before optimizing,
#'   the information matrix is checked for rank at two random parameter
#'   points near the start (the sum of the individuals' score outer
#'   products, or the negative Hessian when there are fewer than twice as
#'   many individuals as free parameters; scaled to unit diagonal). A model
#'   whose log-likelihood is flat in some direction at both points (an
#'   alternative-specific constant on every alternative, labels that tie
#'   parameters so that they cancel, a parameter that nothing depends on)
#'   is refused with an error of class `iclv_error_identification` that
#'   names the parameters of that direction (also in its `parameters`
#'   field). Costs two evaluations with scores. `FALSE` skips it; the
#'   check of the Hessian at the estimate (see [iclv()]) still runs.
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv_control"`: a list of the settings.
#' @seealso [iclv()]
#' @examples
#' ctrl <- iclv_control(method = "bfgs", maxit = 100, trace = 1)
#' ctrl$tol
#' try(iclv_control(maxit = -1))
#' @export
iclv_control <- function(method = c("bfgs", "newton", "bhhh"), maxit = 200, tol = 1e-6,
                         reltol = 1e-10, trace = 0, n_threads = 0, device = 0,
                         device_memory = NULL, vcov = c("robust", "hessian", "bhhh"),
                         hessian = TRUE, checkpoint = NULL, checkpoint_every = 10,
                         callback = NULL, start_search = FALSE, check_identification = TRUE, ...) {
  dots <- list(...)
  if (length(dots)) {
    nm <- names(dots)
    nm <- if (is.null(nm)) rep("", length(dots)) else nm
    nm[!nzchar(nm)] <- "(unnamed)"
    iclv_abort("control", sprintf("unknown argument %s to iclv_control()", iclv_quote(nm)))
  }
  method <- .control_choice(method, c("bfgs", "newton", "bhhh"), "method")
  vcov <- .control_choice(vcov, c("robust", "hessian", "bhhh"), "vcov")
  maxit <- .control_count(maxit, "maxit", min = 0)
  tol <- .control_number(tol, "tol")
  reltol <- .control_number(reltol, "reltol")
  if (is.logical(trace) && length(trace) == 1L && !is.na(trace)) trace <- as.integer(trace)
  trace <- .control_count(trace, "trace", min = 0)
  if (is.numeric(n_threads) && length(n_threads) == 1L && is.finite(n_threads) && n_threads > 1024) {
    iclv_abort("control", sprintf("'n_threads' = %s is more threads than iclv allows (at most 1024; 0 means the OpenMP default)",
                                  format(n_threads, digits = 15)))
  }
  n_threads <- .control_count(n_threads, "n_threads", min = 0, max = 1024)
  device <- .control_count(device, "device", min = 0)
  if (!is.null(device_memory)) device_memory <- .control_number(device_memory, "device_memory", positive = TRUE)
  hessian <- .control_flag(hessian, "hessian")
  start_search <- .control_flag(start_search, "start_search")
  check_identification <- .control_flag(check_identification, "check_identification")
  if (!hessian && vcov != "bhhh") {
    iclv_abort("control", sprintf("vcov = \"%s\" needs the Hessian; use hessian = TRUE or vcov = \"bhhh\"", vcov))
  }
  if (!is.null(checkpoint)) {
    if (!is.character(checkpoint) || length(checkpoint) != 1L || is.na(checkpoint) || !nzchar(checkpoint)) {
      iclv_abort("control", "'checkpoint' must be NULL or one file path")
    }
    dir <- dirname(checkpoint)
    if (!dir.exists(dir)) {
      iclv_abort("control", sprintf("'checkpoint': cannot write %s: the folder %s does not exist",
                                    iclv_quote(checkpoint), iclv_quote(dir)))
    }
  }
  checkpoint_every <- .control_count(checkpoint_every, "checkpoint_every", min = 1)
  if (!is.null(callback) && !is.function(callback)) {
    iclv_abort("control", "'callback' must be NULL or a function(iteration, loglik, params)")
  }
  if (!is.null(callback)) {
    fa <- names(formals(args(callback)))
    if (!"..." %in% fa && length(fa) < 3L) {
      iclv_abort("control", sprintf(
        "'callback' must accept three arguments (iteration, loglik, params); it has %d%s", length(fa),
        if (length(fa)) sprintf(" (%s)", paste(fa, collapse = ", ")) else ""))
    }
  }
  structure(list(method = method, maxit = maxit, tol = tol, reltol = reltol, trace = trace,
                 n_threads = n_threads, device = device, device_memory = device_memory,
                 vcov = vcov, hessian = hessian, checkpoint = checkpoint,
                 checkpoint_every = checkpoint_every, callback = callback,
                 start_search = start_search, check_identification = check_identification),
            class = "iclv_control")
}

#' @export
print.iclv_control <- function(x, ...) {
  cat("iclv control settings\n")
  show <- x
  show$callback <- if (is.null(x$callback)) "none" else "a function"
  show$checkpoint <- if (is.null(x$checkpoint)) "none" else x$checkpoint
  show$device_memory <- if (is.null(x$device_memory)) "backend default" else format(x$device_memory)
  for (nm in names(show)) cat(sprintf("  %-16s %s\n", nm, format(show[[nm]])))
  invisible(x)
}

# ---- validators: each names the argument at fault ---------------------------

.control_choice <- function(x, choices, arg) {
  if (identical(x, choices)) return(choices[1])
  if (!is.character(x) || length(x) != 1L || is.na(x) || !(x %in% choices)) {
    iclv_abort("control", sprintf("'%s' must be one of %s (got %s)", arg, iclv_quote(choices),
                                  paste(format(x), collapse = ", ")))
  }
  x
}

# A whole number in [min, max] (max at most R's largest integer), returned as
# an integer: never as.integer() on a value it cannot hold (that is NA with
# a warning, which later reads as "missing").
.control_count <- function(x, arg, min = 0, max = .Machine$integer.max) {
  if (!is.numeric(x) || is.factor(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x != round(x) ||
      x < min || x > max) {
    shown <- if (length(x) == 0L) sprintf("a %s of length 0", class(x)[1]) else
      paste(format(x, digits = 15), collapse = ", ")
    iclv_abort("control", sprintf("'%s' must be a whole number in [%d, %d] (got %s)", arg, min, max, shown))
  }
  as.integer(x)
}

.control_number <- function(x, arg, positive = TRUE) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || (positive && x <= 0)) {
    iclv_abort("control", sprintf("'%s' must be one finite number > 0 (got %s)", arg,
                                  paste(format(x), collapse = ", ")))
  }
  as.double(x)
}

.control_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    iclv_abort("control", sprintf("'%s' must be TRUE or FALSE", arg))
  }
  x
}

# A control object as iclv_control() makes it. One edited by hand (or a
# list given the class) is rebuilt through the constructor, so that every
# field is validated the same way; unknown fields are an error.
.control_valid <- function(control) {
  if (!inherits(control, "iclv_control") || !is.list(control)) {
    iclv_abort("control", "'control' must be made by iclv_control()")
  }
  x <- unclass(control)
  known <- setdiff(names(formals(iclv_control)), "...")
  extra <- setdiff(names(x), known)
  if (is.null(names(x)) || length(extra)) {
    iclv_abort("control", sprintf("'control' has fields iclv_control() does not make (%s): was it edited by hand?",
                                  if (length(extra)) iclv_quote(extra) else "unnamed"))
  }
  do.call(iclv_control, x)
}
