# The optimizers: BFGS, Newton and BHHH for a log-likelihood to MAXIMISE.
#
# They know nothing of ICLV models: they see a function of an unconstrained
# vector that returns the log-likelihood and its analytic derivatives, so
# they can be tested on any likelihood written in R (tests/testthat/
# test-optim.R uses a binary probit and checks it against glm()).
#
# Convergence codes (fit$convergence$code):
#   0  converged: scaled gradient g' A^-1 g < tol, or relative LL change <
#      reltol with a scaled gradient < 1000 tol. A BFGS or BHHH stop is
#      checked with the analytic Hessian when control$hessian is TRUE: if
#      g' (-H)^-1 g is not below tol, the optimizer goes on with Newton steps
#      (fit$convergence$message then says so).
#   1  iteration limit reached
#   2  no progress: the line search could not improve the log-likelihood, or
#      the relative change fell below reltol while the scaled gradient is large
#   3  interrupted (Ctrl-C, in R code or polled by the engine between batches of
#      individuals: iclv_error_interrupted): the best point so far is
#      returned, with a warning
#   4  stopped by the callback (it returned FALSE)
# A is the method's curvature matrix for -LL: BFGS's inverse-Hessian
# approximation (inverted), the negative Hessian (shifted to be positive
# definite), or the outer product of the scores.

# .iclv_optimize(fn, par, control, natural)
#   fn(par, scores, hessian): list(loglik (1), gradient (n), scores (N x n)
#     when scores = TRUE, hessian (n x n) when hessian = TRUE), derivatives of
#     LL with respect to par. It may raise iclv_error_numeric or
#     iclv_error_input at a trial point: the line search then backs off.
#   par: (n) starting values; control: an iclv_control() object;
#   natural: function(par) -> the parameters handed to control$callback and
#     written to the checkpoint (default: par itself).
#   resume: NULL, or the `state` of a checkpoint written by this function:
#     the optimizer then continues exactly where that run was (same point,
#     same BFGS matrix, same history), so the resumed run follows the same
#     trajectory as an uninterrupted one; `par` only gives the expected
#     length and names (the state is validated against them first).
#     control$maxit counts the iterations of this call, not the total.
#   checkpoint_extra: a list stored beside the state in every checkpoint
#     (the caller's identification of the model, data and draws).
# Returns list(par, loglik, gradient, code, message, iterations, evaluations,
#   gradient_norm (max |g|), scaled_gradient, rel_change, seconds, method (the
#   method at the end), switched_at (iteration of the switch to Newton, or
#   NA), history (data.frame: iteration, loglik, change, gradient_norm,
#   scaled_gradient (g' A^-1 g at that iteration's point, the convergence
#   measure; the last row is the `scaled_gradient` returned), step, seconds),
#   last (fn's full result at par)).
#
# The pieces: .optim_state() (the state object, an environment, holding
# the point, the method's curvature, the counters and the history), one
# direction function per method (.optim_dir_bfgs, .optim_dir_newton,
# .optim_dir_bhhh, chosen by .optim_method()), and .optim_run() (the loop:
# direction, convergence tests, line search, accepted step).
.iclv_optimize <- function(fn, par, control = iclv_control(), natural = NULL, resume = NULL,
                           checkpoint_extra = list()) {
  if (!inherits(control, "iclv_control")) iclv_abort("control", "'control' must come from iclv_control()")
  if (!is.null(resume)) resume <- .check_resume_state(resume, par)
  if (!is.null(control$checkpoint)) .check_checkpoint_writable(control$checkpoint)
  st <- .optim_state(fn, par, control, natural %||% function(x) x, resume, checkpoint_extra)
  interrupted <- tryCatch({
    .optim_run(st)
    FALSE
  }, interrupt = function(e) TRUE, iclv_error_interrupted = function(e) TRUE)
  if (interrupted) {
    if (!is.null(st$best)) {
      st$x <- st$best_x
      st$cur <- st$best
    }
    st$code <- 3L
    st$message <- "interrupted"
    st$sg <- NA_real_
    iclv_warn("interrupt", sprintf(paste0("estimation interrupted after %d iteration(s): returning the best ",
                                          "point so far (log-likelihood %s), not converged"),
                                   st$iter, format(st$cur$loglik, digits = 10)))
  }
  h <- st$hist
  if (!is.na(st$sg)) h$scaled_gradient[length(h$scaled_gradient)] <- st$sg
  list(par = st$x, loglik = st$cur$loglik, gradient = stats::setNames(st$cur$gradient, st$pnames),
       code = st$code, message = st$message, iterations = st$iter, evaluations = st$evals,
       gradient_norm = max(abs(st$cur$gradient), 0), scaled_gradient = st$sg,
       rel_change = st$rel_change, seconds = .optim_elapsed(st), method = st$method,
       switched_at = st$switched_at,
       history = data.frame(h[.optim_history_cols], stringsAsFactors = FALSE), last = st$cur)
}

# The columns of the optimizer's history (fit$history), one row per
# iteration (row 1: the start).
.optim_history_cols <- c("iteration", "loglik", "change", "gradient_norm", "scaled_gradient", "step",
                         "seconds")
.optim_history_frame <- function() {
  data.frame(iteration = integer(), loglik = double(), change = double(), gradient_norm = double(),
             scaled_gradient = double(), step = double(), seconds = double())
}

# The optimizer's state: an environment (updated in place, so that an
# interrupt anywhere leaves the last consistent point in it). A fresh
# start evaluates fn at par (with scores for BFGS, whose first curvature is
# the BHHH matrix; with the Hessian for Newton); a resume takes the saved
# state as it is.
.optim_state <- function(fn, par, control, natural, resume, extra) {
  st <- new.env(parent = emptyenv())
  st$fn <- fn
  st$control <- control
  st$natural <- natural
  st$extra <- extra
  st$resumed <- !is.null(resume)
  st$iter0 <- if (is.null(resume)) 0L else resume$iter # maxit counts this call's iterations
  st$method0 <- if (is.null(resume)) control$method else resume$method0
  if (!is.null(resume)) par <- resume$x
  st$pnames <- names(par)
  par <- as.double(par)
  names(par) <- st$pnames
  st$n <- length(par)
  st$t0 <- proc.time()[["elapsed"]] - if (is.null(resume)) 0 else resume$seconds
  st$evals <- 0L
  st$iter <- 0L
  st$code <- NA_integer_
  st$message <- NA_character_
  st$rel_change <- NA_real_
  st$sg <- NA_real_
  st$hist <- as.list(.optim_history_frame())
  # The method can change once: a BFGS or BHHH optimum is confirmed with the
  # analytic Hessian (when control$hessian), and if the true scaled gradient
  # is not below tol the optimizer goes on with Newton steps.
  st$method <- st$method0
  st$verify <- isTRUE(control$hessian) && st$method0 != "newton"
  st$switched_at <- NA_integer_
  st$x <- par
  st$Hinv <- NULL
  if (is.null(resume)) {
    st$cur <- .optim_call(st, par, scores = st$method0 != "newton", hessian = st$method0 == "newton",
                          trial = FALSE)
  } else {
    for (f in c("x", "cur", "Hinv", "bfgs_fresh", "method", "switched_at", "iter", "evals",
                "hist", "best_x", "best", "rel_change")) {
      assign(f, resume[[f]], envir = st)
    }
  }
  st
}

.optim_elapsed <- function(st) proc.time()[["elapsed"]] - st$t0

# fn at x. trial = TRUE (a line-search point): a point fn refuses or where
# anything is not finite gives NULL; trial = FALSE (the start): an error.
.optim_call <- function(st, x, scores, hessian, trial) {
  st$evals <- st$evals + 1L
  if (!trial) {
    r <- st$fn(x, scores, hessian)
  } else {
    r <- tryCatch(st$fn(x, scores, hessian),
                  iclv_error_numeric = function(e) NULL,
                  iclv_error_input = function(e) NULL)
  }
  ok <- !is.null(r) && length(r$loglik) == 1L && is.finite(r$loglik) && all(is.finite(r$gradient)) &&
    (!scores || all(is.finite(r$scores))) && (!hessian || all(is.finite(r$hessian)))
  if (!ok) {
    if (!trial) iclv_abort("numeric", "the log-likelihood or its derivatives are not finite at the starting values")
    return(NULL)
  }
  r$gradient <- as.double(r$gradient)
  r
}

# Everything the optimizer needs to go on exactly from here (a checkpoint).
.optim_snapshot <- function(st) {
  list(x = st$x, cur = st$cur, Hinv = st$Hinv, bfgs_fresh = isTRUE(st$bfgs_fresh),
       method0 = st$method0, method = st$method, switched_at = st$switched_at, iter = st$iter,
       evals = st$evals, hist = st$hist, best_x = st$best_x, best = st$best,
       rel_change = st$rel_change, seconds = .optim_elapsed(st))
}

# Appends the current point to the history (its scaled gradient is filled
# in by .optim_direction(), which computes it next).
.optim_record <- function(st, change, step) {
  h <- st$hist
  g_max <- max(abs(st$cur$gradient), 0)
  h$iteration <- c(h$iteration, st$iter)
  h$loglik <- c(h$loglik, st$cur$loglik)
  h$change <- c(h$change, change)
  h$gradient_norm <- c(h$gradient_norm, g_max)
  h$scaled_gradient <- c(h$scaled_gradient, NA_real_)
  h$step <- c(h$step, step)
  h$seconds <- c(h$seconds, .optim_elapsed(st))
  st$hist <- h
  if (st$control$trace >= 1L) {
    cat(sprintf("iter %4d  LL %17.8f  change %10.3e  max|g| %10.3e  step %9.3e  %8.2fs\n",
                st$iter, st$cur$loglik, change, g_max, step, .optim_elapsed(st)))
    utils::flush.console()
  }
}

# ---- the methods -------------------------------------------------------------
# Each direction function returns the ascent direction d = A^-1 g at the
# current point, A the method's curvature matrix of -LL; .optim_method()
# says what each trial point needs and how a step updates the state.

# BFGS: the inverse-Hessian approximation, started from the inverse BHHH
# matrix; back to a scaled identity when it has lost positive definiteness.
.optim_dir_bfgs <- function(st) {
  g <- st$cur$gradient
  if (is.null(st$Hinv)) {
    st$Hinv <- .bfgs_initial(st$cur)$H
    st$bfgs_fresh <- TRUE
  }
  d <- drop(st$Hinv %*% g)
  if (sum(d * g) <= 0) { # lost positive definiteness: restart from the identity
    .optim_restart_bfgs(st)
    d <- drop(st$Hinv %*% g)
  }
  d
}

# Forget the BFGS curvature: the identity scaled so that the next step has
# unit length at most.
.optim_restart_bfgs <- function(st) {
  st$Hinv <- .bfgs_identity(st$cur$gradient)
  st$bfgs_fresh <- TRUE
}

# After an accepted BFGS step s (change of the point) with y the change of
# the gradient of -LL.
.optim_update_bfgs <- function(st, s, y) {
  st$Hinv <- .bfgs_update(st$Hinv, s = s, y = y, scale = isTRUE(st$bfgs_fresh))
  st$bfgs_fresh <- FALSE
}

# Newton: the negative analytic Hessian (shifted to be positive definite).
.optim_dir_newton <- function(st) .solve_pd(-st$cur$hessian, st$cur$gradient)

# BHHH: the outer product of the individual scores.
.optim_dir_bhhh <- function(st) .solve_pd(crossprod(st$cur$scores), st$cur$gradient)

# What a method needs: its direction, the derivatives every trial point
# must bring, the line search (strong Wolfe for BFGS, whose update needs
# s'y > 0; Armijo otherwise), what an accepted step updates, and what a
# failed line search may retry with once.
.optim_method <- function(name) {
  switch(name,
         bfgs = list(direction = .optim_dir_bfgs, scores = FALSE, hessian = FALSE, wolfe = TRUE,
                     update = .optim_update_bfgs, restart = .optim_restart_bfgs),
         newton = list(direction = .optim_dir_newton, scores = FALSE, hessian = TRUE, wolfe = FALSE,
                       update = NULL, restart = NULL),
         bhhh = list(direction = .optim_dir_bhhh, scores = TRUE, hessian = FALSE, wolfe = FALSE,
                     update = NULL, restart = NULL))
}

# The direction at the current point and its scaled gradient g' A^-1 g,
# which also goes into the history row of the current point.
.optim_direction <- function(st) {
  d <- .optim_method(st$method)$direction(st)
  sg <- sum(d * st$cur$gradient)
  k <- length(st$hist$scaled_gradient)
  if (k) st$hist$scaled_gradient[k] <- sg
  list(d = d, sg = sg)
}

# A BFGS/BHHH optimum, checked with the analytic Hessian: "confirmed" when
# the true scaled gradient is below tol, "unavailable" when no check is
# possible (no Hessian, or already Newton), else "switched" after switching
# to Newton steps from here.
.optim_confirm <- function(st) {
  control <- st$control
  if (!st$verify || st$method == "newton") return("unavailable")
  r <- .optim_call(st, st$x, scores = FALSE, hessian = TRUE, trial = TRUE)
  if (is.null(r)) return("unavailable")
  R <- tryCatch(chol((-r$hessian - t(r$hessian)) / 2), error = function(e) NULL)
  sg <- if (is.null(R)) Inf else sum(backsolve(R, r$gradient, transpose = TRUE)^2)
  if (sg < control$tol) {
    st$sg <- sg
    return("confirmed")
  }
  if (control$trace >= 1L) {
    cat(sprintf("%s stopped with a scaled gradient of %.3g by the analytic Hessian%s: going on with Newton steps\n",
                toupper(st$method), sg, if (is.null(R)) " (not negative definite)" else ""))
    utils::flush.console()
  }
  st$method <- "newton"
  st$switched_at <- st$iter
  st$cur <- r
  "switched"
}

.optim_done <- function(st, code, message) {
  if (code == 0L && !is.na(st$switched_at)) {
    message <- sprintf("%s (%s, then Newton from iteration %d)", message, toupper(st$method0), st$switched_at)
  }
  st$code <- code
  st$message <- message
}

# The line search along d from the current point (.line_search()); NULL
# when no point improves the log-likelihood.
.optim_line_search <- function(st, d, m) {
  trace <- st$control$trace
  .line_search(function(a) {
    r <- .optim_call(st, st$x + a * d, scores = m$scores, hessian = m$hessian, trial = TRUE)
    if (trace >= 2L) {
      cat(sprintf("    step %10.3e  LL %s\n", a, if (is.null(r)) "not finite" else format(r$loglik, digits = 12)))
    }
    if (is.null(r)) return(NULL)
    list(f = -r$loglik, df = -sum(r$gradient * d), res = r)
  }, f0 = -st$cur$loglik, df0 = -sum(st$cur$gradient * d), wolfe = m$wolfe)
}

# Takes the step ls$alpha * d found by the line search: the method's
# update, the new point, the relative change, the best point, the history.
.optim_accept <- function(st, ls, d, m) {
  st$iter <- st$iter + 1L
  old <- st$cur
  x_new <- st$x + ls$alpha * d
  if (!is.null(m$update)) m$update(st, s = x_new - st$x, y = -(ls$res$gradient - old$gradient))
  st$x <- x_new
  names(st$x) <- st$pnames
  st$cur <- ls$res
  change <- st$cur$loglik - old$loglik
  st$rel_change <- abs(change) / (abs(old$loglik) + st$control$reltol)
  if (st$cur$loglik >= st$best$loglik) {
    st$best_x <- st$x
    st$best <- st$cur
  }
  .optim_record(st, change, ls$alpha)
}

# The checkpoint every control$checkpoint_every iterations; a failed write
# warns (once per run) and the estimation goes on.
.optim_checkpoint <- function(st) {
  control <- st$control
  if (is.null(control$checkpoint) || st$iter %% control$checkpoint_every != 0L) return(invisible())
  ck_err <- .write_checkpoint(control$checkpoint, st$natural(st$x), st$iter, st$cur$loglik, .optim_elapsed(st),
                              state = .optim_snapshot(st), extra = st$extra)
  if (!is.null(ck_err) && !isTRUE(st$ck_warned)) {
    st$ck_warned <- TRUE
    iclv_warn("checkpoint", sprintf(paste0("could not write the checkpoint %s at iteration %d (%s); ",
                                           "the estimation goes on (later failures are not reported)"),
                                    iclv_quote(control$checkpoint), st$iter, ck_err))
  }
  invisible()
}

# control$callback(iteration, loglik, natural parameters); FALSE stops.
.optim_callback <- function(st) {
  cb <- st$control$callback
  if (is.null(cb)) return(TRUE)
  tryCatch(cb(st$iter, st$cur$loglik, st$natural(st$x)), error = function(e) {
    iclv_abort("control", sprintf("the callback of iclv_control() failed at iteration %d: %s",
                                  st$iter, conditionMessage(e)), parent = e)
  })
}

# The iterations, until a stop sets st$code and st$message.
.optim_run <- function(st) {
  control <- st$control
  if (control$trace >= 1L) {
    cat(sprintf("%s: %d free parameters\n", toupper(st$method0), st$n))
    utils::flush.console()
  }
  if (!st$resumed) {
    .optim_record(st, NA_real_, NA_real_)
    st$best_x <- st$x
    st$best <- st$cur
  } else if (control$trace >= 1L) {
    cat(sprintf("resuming at iteration %d (LL %.8f)\n", st$iter, st$cur$loglik))
    utils::flush.console()
  }
  restarted <- FALSE
  repeat {
    m <- .optim_method(st$method)
    dir <- .optim_direction(st)
    st$sg <- dir$sg
    if (is.finite(dir$sg) && dir$sg < control$tol) {
      if (.optim_confirm(st) == "switched") next
      .optim_done(st, 0L, "converged: scaled gradient below tol")
      break
    }
    if (st$iter - st$iter0 >= control$maxit) {
      .optim_done(st, 1L, "iteration limit reached")
      break
    }
    ls <- .optim_line_search(st, dir$d, m)
    if (is.null(ls)) {
      if (!is.null(m$restart) && !restarted) { # forget the curvature once and retry
        m$restart(st)
        restarted <- TRUE
        next
      }
      chk <- .optim_confirm(st)
      if (chk == "switched") next
      if (chk == "confirmed") {
        .optim_done(st, 0L, "converged: scaled gradient below tol")
      } else {
        .optim_done(st, 2L, "the line search could not improve the log-likelihood")
      }
      break
    }
    restarted <- FALSE
    .optim_accept(st, ls, dir$d, m)
    .optim_checkpoint(st)
    if (identical(.optim_callback(st), FALSE)) {
      .optim_done(st, 4L, "stopped by the callback")
      break
    }
    if (st$rel_change < control$reltol) {
      # A tiny change is an optimum only if the gradient is small too: a
      # BFGS/BHHH stop is checked with the analytic Hessian (and goes on
      # with Newton if it fails); otherwise a tiny change with a large
      # scaled gradient is a stall (e.g. against points the engine refuses).
      st$sg <- .optim_direction(st)$sg
      chk <- .optim_confirm(st)
      if (chk == "switched") next
      if (chk == "confirmed" || (is.finite(st$sg) && st$sg < 1e3 * control$tol)) {
        .optim_done(st, 0L, "converged: relative change in the log-likelihood below reltol")
      } else {
        .optim_done(st, 2L, sprintf(paste0("no progress: the log-likelihood changed by less than reltol ",
                                           "but the scaled gradient is %.3g"), st$sg))
      }
      break
    }
  }
  invisible(NULL)
}

# Initial inverse curvature for BFGS: the inverse BHHH matrix when it is
# positive definite (a good guess of the scale of every parameter), else
# the identity scaled so that the first step has unit length.
.bfgs_initial <- function(cur) {
  g <- cur$gradient
  if (!is.null(cur$scores)) {
    B <- crossprod(cur$scores)
    inv <- tryCatch(chol2inv(chol(B)), error = function(e) NULL)
    if (!is.null(inv) && all(is.finite(inv))) return(list(H = inv))
  }
  list(H = .bfgs_identity(g))
}

# The identity scaled so that a step along it has length at most 1.
.bfgs_identity <- function(g) diag(1 / max(sqrt(sum(g^2)), 1), length(g))

# BFGS update of the inverse Hessian of -LL. s = x_new - x, y = grad(-LL)
# change. Skipped when the curvature s'y is not safely positive. `scale`
# first multiplies the matrix by s'y / y'Hinv y (Oren-Luenberger
# self-scaling; Shanno-Phua for an identity start), done once, at the first
# update after a (re)start: the initial BHHH matrix has the right shape but
# often not the right size (on the seed problem, 202 parameters, this
# halves the evaluations: without it most steps are cut to ~0.1).
.bfgs_update <- function(Hinv, s, y, scale = FALSE) {
  sy <- sum(s * y)
  if (!is.finite(sy) || sy <= 1e-12 * sqrt(sum(s^2) * sum(y^2))) return(Hinv)
  Hy <- drop(Hinv %*% y)
  yHy <- sum(y * Hy)
  if (scale && is.finite(yHy) && yHy > 0) {
    Hinv <- Hinv * (sy / yHy)
    Hy <- Hy * (sy / yHy)
    yHy <- sy
  }
  rho <- 1 / sy
  Hinv <- Hinv - rho * (outer(s, Hy) + outer(Hy, s)) + (rho^2 * yHy + rho) * outer(s, s)
  (Hinv + t(Hinv)) / 2
}

# Solves A d = g for a symmetric A that should be positive definite; if it
# is not, adds mu * I (Levenberg) with mu just large enough.
.solve_pd <- function(A, g) {
  A <- (A + t(A)) / 2
  R <- tryCatch(chol(A), error = function(e) NULL)
  if (is.null(R) || any(!is.finite(R))) {
    ev <- eigen(A, symmetric = TRUE, only.values = TRUE)$values
    top <- max(abs(ev), 1e-8)
    mu <- max(0, -min(ev)) + 1e-6 * top
    repeat {
      R <- tryCatch(chol(A + diag(mu, nrow(A))), error = function(e) NULL)
      if (!is.null(R)) break
      mu <- mu * 10
    }
  }
  drop(backsolve(R, forwardsolve(t(R), g)))
}

# Line search on phi(a) = f(x + a d), f = -LL, from a = 1.
#   evalf(a): list(f, df = phi'(a), res) or NULL where f is not finite or
#   the engine refused the point (then the step is shortened).
#   wolfe = TRUE: strong Wolfe conditions (Nocedal & Wright, Alg. 3.5/3.6,
#   cubic interpolation), as BFGS needs s'y > 0; FALSE: Armijo backtracking.
# Returns list(alpha, res) or NULL when no point decreases f.
.line_search <- function(evalf, f0, df0, wolfe = TRUE, c1 = 1e-4, c2 = 0.9, max_eval = 25) {
  if (!(df0 < 0)) return(NULL)
  n_eval <- 0L
  ev <- function(a) {
    n_eval <<- n_eval + 1L
    r <- evalf(a)
    if (is.null(r)) list(a = a, f = Inf, df = NA_real_, res = NULL) else c(list(a = a), r)
  }
  armijo <- function(p) is.finite(p$f) && p$f <= f0 + c1 * p$a * df0

  if (!wolfe) {
    a <- 1
    repeat {
      p <- ev(a)
      if (armijo(p)) return(list(alpha = a, res = p$res))
      if (n_eval >= max_eval || a < 1e-12) return(NULL)
      if (is.finite(p$f)) {
        a_q <- -df0 * a^2 / (2 * (p$f - f0 - df0 * a))
        a <- min(max(a_q, 0.1 * a), 0.5 * a)
      } else {
        a <- 0.2 * a
      }
    }
  }

  zoom <- function(lo, hi) {
    repeat {
      if (n_eval >= max_eval || abs(hi$a - lo$a) < 1e-14 * max(1, hi$a)) break
      a <- .ls_interpolate(lo, hi)
      p <- ev(a)
      if (!is.finite(p$f) || p$f > f0 + c1 * a * df0 || p$f >= lo$f) {
        hi <- p
      } else {
        if (abs(p$df) <= -c2 * df0) return(p)
        if (p$df * (hi$a - lo$a) >= 0) hi <- lo
        lo <- p
      }
    }
    if (lo$a > 0 && armijo(lo)) lo else NULL
  }

  prev <- list(a = 0, f = f0, df = df0, res = NULL)
  a <- 1
  out <- NULL
  repeat {
    p <- ev(a)
    if (!is.finite(p$f) || p$f > f0 + c1 * a * df0 || (prev$a > 0 && p$f >= prev$f)) {
      out <- zoom(prev, p)
      break
    }
    if (abs(p$df) <= -c2 * df0) {
      out <- p
      break
    }
    if (p$df >= 0) {
      out <- zoom(p, prev)
      break
    }
    if (n_eval >= max_eval || a >= 64) {
      out <- p # sufficient decrease holds; the curvature condition did not within the budget
      break
    }
    prev <- p
    a <- 2 * a
  }
  if (is.null(out)) return(NULL)
  list(alpha = out$a, res = out$res)
}

# A trial step inside (lo$a, hi$a): the minimiser of the cubic through both
# ends when both are finite with slopes, of the quadratic through lo's value
# and slope and hi's value otherwise; a fixed fraction when hi is not finite.
# Kept at least 10% away from either end.
.ls_interpolate <- function(lo, hi) {
  a0 <- lo$a
  a1 <- hi$a
  w <- a1 - a0
  if (!is.finite(hi$f)) return(a0 + 0.2 * w)
  a <- NA_real_
  if (is.finite(hi$df)) {
    d1 <- lo$df + hi$df - 3 * (lo$f - hi$f) / (a0 - a1)
    disc <- d1^2 - lo$df * hi$df
    if (is.finite(disc) && disc >= 0) {
      d2 <- sign(a1 - a0) * sqrt(disc)
      a <- a1 - (a1 - a0) * (hi$df + d2 - d1) / (hi$df - lo$df + 2 * d2)
    }
  }
  if (!is.finite(a)) {
    den <- 2 * (hi$f - lo$f - lo$df * w)
    if (is.finite(den) && den > 0) a <- a0 - lo$df * w^2 / den
  }
  lo_b <- min(a0, a1) + 0.1 * abs(w)
  hi_b <- max(a0, a1) - 0.1 * abs(w)
  if (!is.finite(a)) a <- a0 + 0.5 * w
  min(max(a, lo_b), hi_b)
}

# Writes the checkpoint atomically: a temporary file in the same folder,
# then a rename, so a run killed while writing leaves the previous
# checkpoint intact. `state` is the optimizer's snapshot (for resume),
# `extra` the caller's identification of what is being estimated.
# Returns NULL when written, else why not (one string): a checkpoint that
# cannot be written must not end the estimation (the caller warns).
.write_checkpoint <- function(path, coefficients, iteration, loglik, seconds, state = NULL,
                              extra = list()) {
  tmp <- paste0(path, ".tmp", Sys.getpid())
  why <- tryCatch({
    suppressWarnings(saveRDS(c(list(kind = "iclv_checkpoint", version = 1L, coefficients = coefficients,
                                    iteration = iteration, loglik = loglik, time = seconds,
                                    written = Sys.time(), state = state), extra), tmp))
    if (suppressWarnings(file.rename(tmp, path))) NULL else "renaming the temporary file failed"
  }, error = function(e) conditionMessage(e))
  if (!is.null(why)) unlink(tmp)
  why
}

# At the start of a run with control$checkpoint: the folder exists, the
# path is not a folder, and a file can be created beside it (the temporary
# file of .write_checkpoint()). A classed error naming the path otherwise,
# before any work is done.
.check_checkpoint_writable <- function(path) {
  dir <- dirname(path)
  if (!dir.exists(dir)) {
    iclv_abort("control", sprintf("'checkpoint': cannot write %s: the folder %s does not exist",
                                  iclv_quote(path), iclv_quote(dir)))
  }
  if (dir.exists(path)) {
    iclv_abort("control", sprintf("'checkpoint': %s is a folder, not a file", iclv_quote(path)))
  }
  probe <- paste0(path, ".tmp", Sys.getpid())
  ok <- isTRUE(suppressWarnings(tryCatch(file.create(probe), error = function(e) FALSE)))
  unlink(probe)
  if (!ok) {
    iclv_abort("control", sprintf("'checkpoint': cannot write %s: the folder %s is not writable",
                                  iclv_quote(path), iclv_quote(dir)))
  }
  invisible(path)
}

# The optimizer state of a checkpoint (iclv(resume =)), checked field by
# field before any use: a damaged or foreign state is a classed error
# naming the field, never an error deep in the optimizer. `par`: the
# problem's starting vector (its length and names are the problem's).
# Returns the state with integer counters.
.check_resume_state <- function(state, par) {
  n <- length(par)
  bad <- function(what) {
    iclv_abort("control", paste0("'resume': the checkpoint's optimizer state is damaged or belongs to ",
                                 "another problem: ", what))
  }
  finite_num <- function(v, len, what) {
    if (!is.numeric(v) || length(v) != len || !all(is.finite(v))) {
      bad(sprintf("'%s' must be %d finite number%s", what, len, if (len == 1L) "" else "s"))
    }
    invisible(v)
  }
  square <- function(v, what) {
    if (!is.numeric(v) || !is.matrix(v) || !identical(dim(v), c(n, n)) || !all(is.finite(v))) {
      bad(sprintf("'%s' must be a %d x %d matrix of finite numbers", what, n, n))
    }
  }
  count <- function(v, what, na_ok = FALSE) {
    ok <- is.numeric(v) && length(v) == 1L &&
      ((na_ok && is.na(v)) || (is.finite(v) && v >= 0 && v == round(v) && v <= .Machine$integer.max))
    if (!ok) bad(sprintf("'%s' must be a whole number >= 0%s", what, if (na_ok) " or NA" else ""))
    as.integer(v)
  }
  if (!is.list(state)) bad("it is not a list")
  need <- c("x", "cur", "Hinv", "bfgs_fresh", "method0", "method", "switched_at", "iter", "evals",
            "hist", "best_x", "best", "rel_change", "seconds")
  miss <- setdiff(need, names(state))
  if (length(miss)) bad(sprintf("missing %s", iclv_quote(miss)))
  for (f in c("x", "best_x")) {
    finite_num(state[[f]], n, f)
    if (!is.null(names(par)) && !identical(names(state[[f]]), names(par))) {
      bad(sprintf("the parameter names of '%s' are not this problem's", f))
    }
  }
  methods <- c("bfgs", "newton", "bhhh")
  for (f in c("method0", "method")) {
    v <- state[[f]]
    if (!is.character(v) || length(v) != 1L || is.na(v) || !v %in% methods) {
      bad(sprintf("'%s' must be one of %s", f, iclv_quote(methods)))
    }
  }
  for (f in c("cur", "best")) {
    p <- state[[f]]
    if (!is.list(p)) bad(sprintf("'%s' must be a list", f))
    finite_num(p$loglik, 1L, paste0(f, "$loglik"))
    finite_num(p$gradient, n, paste0(f, "$gradient"))
    if (!is.null(p$scores) && (!is.numeric(p$scores) || !is.matrix(p$scores) || ncol(p$scores) != n ||
                               nrow(p$scores) < 1L || !all(is.finite(p$scores)))) {
      bad(sprintf("'%s$scores' must be a matrix of finite numbers with %d columns", f, n))
    }
    if (!is.null(p$hessian)) square(p$hessian, paste0(f, "$hessian"))
  }
  if (state$method == "bhhh" && is.null(state$cur$scores)) bad("a BHHH state without 'cur$scores'")
  if (state$method == "newton" && is.null(state$cur$hessian)) bad("a Newton state without 'cur$hessian'")
  if (!is.null(state$Hinv)) square(state$Hinv, "Hinv")
  if (!is.logical(state$bfgs_fresh) || length(state$bfgs_fresh) != 1L || is.na(state$bfgs_fresh)) {
    bad("'bfgs_fresh' must be TRUE or FALSE")
  }
  state$iter <- count(state$iter, "iter")
  state$evals <- count(state$evals, "evals")
  state$switched_at <- count(state$switched_at, "switched_at", na_ok = TRUE)
  rc <- state$rel_change
  if (!is.numeric(rc) || length(rc) != 1L || (!is.na(rc) && !(is.finite(rc) && rc >= 0))) {
    bad("'rel_change' must be one number >= 0 or NA")
  }
  finite_num(state$seconds, 1L, "seconds")
  h <- state$hist
  cols <- c("iteration", "loglik", "change", "gradient_norm", "step", "seconds")
  if (!is.list(h) || !all(cols %in% names(h)) || !all(vapply(h[cols], is.numeric, logical(1))) ||
      length(unique(lengths(h[cols]))) != 1L || length(h$iteration) < 1L ||
      !all(is.finite(h$iteration)) || !all(is.finite(h$loglik)) ||
      !identical(as.integer(h$iteration[length(h$iteration)]), state$iter)) {
    bad(sprintf("'hist' must hold the columns %s of equal length, ending at iteration 'iter'",
                iclv_quote(cols)))
  }
  # checkpoints written before the history had a scaled gradient
  if (is.null(h$scaled_gradient)) h$scaled_gradient <- rep(NA_real_, length(h$iteration))
  if (!is.numeric(h$scaled_gradient) || length(h$scaled_gradient) != length(h$iteration)) {
    bad("'hist$scaled_gradient' must be numeric, one value per iteration")
  }
  state$hist <- h
  state
}

# Reads and checks a checkpoint for iclv(resume = path).
.read_checkpoint <- function(path) {
  if (!is.character(path) || length(path) != 1L || is.na(path) || !file.exists(path)) {
    iclv_abort("control", sprintf("'resume': no checkpoint file at %s", iclv_quote(format(path))))
  }
  ck <- tryCatch(readRDS(path), error = function(e) NULL)
  if (!is.list(ck) || !identical(ck$kind, "iclv_checkpoint") || is.null(ck$state)) {
    iclv_abort("control", sprintf("'resume': %s is not an iclv checkpoint with optimizer state", iclv_quote(path)))
  }
  ck
}
