# The optimizer's parameterisation.
#
# The engine works with the natural parameters theta (length P, partable
# order; thresholds as thresholds, standard deviations as standard
# deviations, fixed parameters included). The optimizer works with an
# unconstrained vector u of the FREE parameters only:
#
#   thresholds of an ordered indicator whose thresholds are all free:
#       u = (tau_1, log(tau_2 - tau_1), ..., log(tau_K - tau_{K-1}))
#       so tau_k = tau_1 + sum_{j=2..k} exp(u_j) is strictly increasing;
#   standard deviations (the compiler's `positive`): u = log(sd);
#   every other free parameter: u = theta.
#
# An indicator with any fixed threshold keeps its free thresholds as they are
# (identity): the increments would otherwise have to cross a fixed value. Its
# ordering is then guarded by the engine, which rejects non-increasing
# thresholds (iclv_error_input); the line search treats such a trial point as
# infeasible and backs off, so the optimizer never leaves the ordered region.
#
# Fixed parameters keep their values and are not in u.

# .transform_new(names, theta, free, thresholds, positive)
#   names: (P) parameter names; theta: (P) natural values (the fixed ones are
#   kept from here); free: (P) logical; thresholds: list of integer vectors of
#   1-based positions, one per ordered indicator, in increasing order;
#   positive: integer vector of 1-based positions that must be > 0.
# Returns a list describing the map: free (positions of the free parameters),
#   kind (per free parameter: "id", "log", "thr1", "thr_inc"), groups (list of
#   integer vectors: indices into u of each fully free threshold group),
#   nonlinear (per free parameter: does theta depend on it through exp()).
.transform_new <- function(names, theta, free, thresholds = list(), positive = integer()) {
  P <- length(theta)
  stopifnot(length(names) == P, length(free) == P)
  free_pos <- which(as.logical(free))
  kind <- rep("id", length(free_pos))
  slot <- match(seq_len(P), free_pos) # u index of each natural parameter (NA when fixed)
  groups <- list()
  in_thr <- logical(P)
  for (g in thresholds) {
    g <- as.integer(g)
    if (!length(g)) next
    in_thr[g] <- TRUE
    if (all(free[g])) {
      idx <- slot[g]
      kind[idx[1]] <- "thr1"
      if (length(idx) > 1L) kind[idx[-1]] <- "thr_inc"
      groups[[length(groups) + 1L]] <- idx
    }
  }
  pos <- as.integer(positive)
  pos <- pos[free[pos] & !in_thr[pos]]
  kind[slot[pos]] <- "log"
  list(names = names, theta = as.double(theta), free = free_pos, kind = kind, groups = groups,
       nonlinear = kind %in% c("log", "thr_inc"), n_free = length(free_pos),
       free_names = names[free_pos])
}

# Natural (P) -> internal (n_free). theta must satisfy the constraints.
.to_internal <- function(theta, tr) {
  u <- as.double(theta[tr$free])
  lg <- tr$kind == "log"
  u[lg] <- log(u[lg])
  for (idx in tr$groups) {
    if (length(idx) > 1L) {
      tau <- u[idx]
      u[idx[-1]] <- log(diff(tau))
    }
  }
  names(u) <- tr$free_names
  u
}

# Internal (n_free) -> natural (P), fixed parameters from tr$theta.
.to_natural <- function(u, tr) {
  theta <- tr$theta
  v <- as.double(u)
  lg <- tr$kind == "log"
  v[lg] <- exp(v[lg])
  for (idx in tr$groups) {
    if (length(idx) > 1L) v[idx] <- cumsum(c(v[idx[1]], exp(v[idx[-1]])))
  }
  theta[tr$free] <- v
  names(theta) <- tr$names
  theta
}

# d theta_free / d u: an (n_free x n_free) matrix, row = natural free
# parameter, column = internal parameter.
.transform_jacobian <- function(u, tr) {
  n <- tr$n_free
  J <- diag(1, n)
  lg <- which(tr$kind == "log")
  if (length(lg)) J[cbind(lg, lg)] <- exp(u[lg])
  for (idx in tr$groups) {
    K <- length(idx)
    if (K < 2L) next
    e <- exp(u[idx])
    for (k in 2:K) {
      J[idx[k], idx[1]] <- 1
      J[idx[k], idx[2:k]] <- e[2:k]
    }
  }
  dimnames(J) <- list(tr$free_names, tr$free_names)
  J
}

# Chain rule from natural (free) derivatives to internal ones.
#   grad: (n_free) d LL / d theta_free; scores: (N x n_free) or NULL;
#   hessian: (n_free x n_free) or NULL.
# H_int = J' H_nat J + sum_k g_nat_k d2 theta_k / du du'. The second term is
# diagonal: theta_k depends on u_j through exp(u_j) alone, so
# d2 theta_k / du_j^2 = d theta_k / du_j, and the sum equals g_int_j for the
# nonlinear u_j (log sds, threshold increments) and 0 for the others.
.transform_derivs <- function(u, tr, grad, scores = NULL, hessian = NULL) {
  J <- .transform_jacobian(u, tr)
  g <- drop(crossprod(J, grad))
  names(g) <- tr$free_names
  out <- list(gradient = g, scores = NULL, hessian = NULL, jacobian = J)
  if (!is.null(scores)) {
    s <- scores %*% J
    colnames(s) <- tr$free_names
    out$scores <- s
  }
  if (!is.null(hessian)) {
    h <- crossprod(J, hessian %*% J)
    d <- ifelse(tr$nonlinear, g, 0)
    h <- h + diag(d, length(d))
    h <- (h + t(h)) / 2
    dimnames(h) <- list(tr$free_names, tr$free_names)
    out$hessian <- h
  }
  out
}

# Which constraint does theta (P) break? NULL when none, else a message that
# names the parameter.
.check_constraints <- function(theta, names, thresholds = list(), positive = integer()) {
  for (g in thresholds) {
    g <- as.integer(g)
    if (length(g) > 1L) {
      bad <- which(diff(theta[g]) <= 0)
      if (length(bad)) {
        return(sprintf("thresholds must increase: %s = %s is not above %s = %s",
                       iclv_quote(names[g[bad[1] + 1L]]), format(theta[g[bad[1] + 1L]]),
                       iclv_quote(names[g[bad[1]]]), format(theta[g[bad[1]]])))
      }
    }
  }
  pos <- as.integer(positive)
  bad <- pos[!(theta[pos] > 0)]
  if (length(bad)) {
    return(sprintf("%s must be > 0 (is %s)", iclv_quote(names[bad[1]]), format(theta[bad[1]])))
  }
  NULL
}
