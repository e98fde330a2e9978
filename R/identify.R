# The identification check before estimation (issue 15): a numerical rank
# test of the information at random parameter points, so that a model whose
# likelihood is flat in some direction (an alternative-specific constant on
# every alternative, a label that makes two parameters move together, a
# variable that is constant across alternatives) is refused at once, with
# the parameters of that direction named, instead of after hours of
# optimisation with NA standard errors.
#
# Why it works: if the simulated log-likelihood is invariant along a
# direction d of the free parameters, then at EVERY point each individual's
# score s_n satisfies s_n' d = 0 (each individual's likelihood is invariant
# too, for the models iclv writes), and the Hessian satisfies H d = 0. So
# the information sum_n s_n s_n' (BHHH) is singular along d at every point.
# An identified model gives a singular BHHH only by accident, and not at
# two independent random points.
#
# The test:
#   - two points: the start in the optimizer's unconstrained coordinates
#     plus independent N(0, 0.1^2) steps (deterministic: a fixed stream that
#     does not touch the user's random number generator); random points
#     avoid the start's accidental zeros (a scale parameter multiplying
#     coefficients that all start at 0 has a zero score there);
#   - at each point the natural free parameters' scores (N x k) give the
#     information A = S'S when N >= 2k; with fewer individuals BHHH has rank
#     at most N, so the negative Hessian is used instead;
#   - A is scaled to unit diagonal (the result does not depend on units);
#     a parameter whose diagonal entry is 0 has no information at all;
#   - eigenvalues below ICLV_IDENT_TOL times the largest (in absolute value)
#     are a null direction. The tolerance is far below what weak
#     identification produces (the post-estimation check warns at 1e-8) and
#     far above rounding (exact invariances give about 1e-16).
# The model is refused (iclv_error_identification) only when BOTH points
# have a null direction; the parameters named are those with a weight above
# 0.1 of the largest in the null eigenvectors of the second point, and the
# parameters without information at both points.
# A point where the likelihood cannot be evaluated (not finite) is skipped;
# with no point left nothing is concluded (the optimizer reports the
# problem at the start).
# Cost: two evaluations with scores (or Hessians when N < 2k).
# Not caught here: a direction that is flat only up to rounding (a term
# written identically in every utility has scores of about 1e-16 that
# scaling cannot tell from information without a scale of its own); the
# check of the Hessian at the estimate (.identification()) reports it.
.ident_tol <- 1e-10

.identification_precheck <- function(prob, engine, timer = NULL) {
  k <- length(prob$free)
  if (k == 0L) return(invisible(NULL))
  u0 <- .to_internal(prob$theta0, prob$tr)
  steps <- .ident_steps(k)
  use_hessian <- prob$comp$n_ind < 2L * k
  found <- list()
  for (p in seq_len(ncol(steps))) {
    theta <- .to_natural(u0 + 0.1 * steps[, p], prob$tr)
    ev <- tryCatch(.timed_eval(engine, timer, theta, gradient = TRUE, scores = !use_hessian, hessian = use_hessian),
                   iclv_error_numeric = function(e) NULL)
    if (is.null(ev) || !is.finite(ev$loglik)) next
    parts <- .problem_free_parts(prob, ev, theta)
    a <- if (use_hessian) -(parts$hessian + t(parts$hessian)) / 2 else crossprod(parts$scores)
    r <- .ident_null(a, prob$free_names)
    if (is.null(r)) return(invisible(NULL)) # full rank at one point: identified
    found[[length(found) + 1L]] <- r
  }
  if (length(found) < 2L) return(invisible(NULL))
  none <- Reduce(intersect, lapply(found, `[[`, "none"))
  last <- found[[length(found)]]
  named <- unique(c(none, last$direction))
  iclv_abort("identification", sprintf(paste0(
    "the model is not identified: the %s (%s) at two random parameter points, scaled to unit diagonal, ",
    "has %d zero eigenvalue(s) (below %s of the largest); the parameters involved: %s%s. ",
    "Fix one of them (fixed = or a 1* modifier), drop one, or turn this check off with ",
    "iclv_control(check_identification = FALSE)"),
    if (use_hessian) "negative Hessian of the log-likelihood" else "information (BHHH)",
    if (use_hessian) sprintf("fewer than 2 x %d individuals", k) else "sum of the individuals' score outer products",
    last$n_null, format(.ident_tol), iclv_quote(named),
    if (length(none)) sprintf(" (%s: no information at all, the log-likelihood does not depend on %s)",
                              iclv_quote(none), if (length(none) > 1L) "them" else "it") else ""),
    parameters = named)
}

# The null directions of a symmetric k x k matrix scaled to unit diagonal:
# NULL when there is none, else list(n_null, none (names with a zero
# diagonal), direction (names with weight > 0.1 of the largest in the null
# eigenvectors)).
.ident_null <- function(a, names) {
  d <- diag(a)
  none <- which(!(abs(d) > 0))
  s <- 1 / sqrt(abs(d))
  s[none] <- 0
  b <- a * (s %o% s)
  diag(b)[none] <- 0
  e <- .eigen_sym(b)
  mag <- abs(e$values)
  top <- max(mag)
  if (!is.finite(top) || top == 0) {
    return(list(n_null = length(d), none = names[none], direction = names))
  }
  null <- which(mag < .ident_tol * top)
  if (!length(null)) return(NULL)
  # the names with a weight above 0.1 of the largest, as the check at the
  # estimate names them (R/vcov.R), all of them
  list(n_null = length(null), none = names[none],
       direction = .weak_parameters(e$vectors[, null, drop = FALSE], names, n = length(names)))
}

# k x 2 standard-normal steps from a fixed stream, leaving the user's
# .Random.seed as it was (or absent).
.ident_steps <- function(k) {
  restore <- .rng_keep() # (R/draws.R)
  on.exit(restore(), add = TRUE)
  RNGkind("Mersenne-Twister", "Inversion", "Rejection")
  set.seed(20261201L)
  matrix(stats::rnorm(2L * k), k, 2L)
}
