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
#   nesting parameters of a nested logit (the compiler's `unit`, 0 < lambda
#       < 1 while free): u = qlogis(lambda), lambda = plogis(u) (a lambda
#       of 1, the MNL model, is reached by fixing it: fixed = c(lambda_x = 1));
#   every other free parameter: u = theta.
#
# An indicator with any fixed threshold keeps its free thresholds as they are
# (identity): the increments would otherwise have to cross a fixed value. Its
# ordering is then guarded by the engine, which rejects non-increasing
# thresholds (iclv_error_input); the line search treats such a trial point as
# infeasible and backs off, so the optimizer never leaves the ordered region.
#
# Fixed parameters keep their values and are not in u. Parameters defined
# by `:=` / `==` (R/constraints.R) are not in u either: .to_natural() sets
# them from their definitions after the free ones, and their derivatives
# reach the free parameters by the chain rule before this map's (see
# .con_free_parts()), so the map below only ever sees free parameters.

# .transform_new(names, theta, free, thresholds, positive, unit)
#   names: (P) parameter names; theta: (P) natural values (the fixed ones are
#   kept from here); free: (P) logical; thresholds: list of integer vectors of
#   1-based positions, one per ordered indicator, in increasing order;
#   positive: integer vector of 1-based positions that must be > 0; unit:
#   1-based positions that must lie in (0, 1).
# Returns a list describing the map: free (positions of the free parameters),
#   kind (per free parameter: "id", "log", "logit", "thr1", "thr_inc"), groups (list of
#   integer vectors: indices into u of each fully free threshold group),
#   nonlinear (per free parameter: does theta depend on it through exp() or plogis()).
.transform_new <- function(names, theta, free, thresholds = list(), positive = integer(), unit = integer(),
                           definitions = NULL) {
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
  un <- as.integer(unit)
  un <- un[free[un] & !in_thr[un]]
  kind[slot[un]] <- "logit"
  # the sparse Jacobian d theta_free / d u (see .transform_jacobian()):
  # log entries are diagonal (exp(u)); a threshold group of K >= 2 is lower
  # triangular (column 1 all ones, column j >= 2 exp(u_j) from row j down).
  # Groups of equal K are stacked (one row per group) so that the chain rule
  # works on whole columns.
  multi <- groups[lengths(groups) > 1L]
  Ks <- lengths(multi)
  blocks <- lapply(sort(unique(Ks)), function(K) do.call(rbind, multi[Ks == K]))
  list(names = names, theta = stats::setNames(as.double(theta), names), free = free_pos, kind = kind,
       groups = groups, nonlinear = kind %in% c("log", "logit", "thr_inc"), n_free = length(free_pos),
       free_names = names[free_pos], log_cols = which(kind == "log"), logit_cols = which(kind == "logit"),
       thr_blocks = blocks, definitions = definitions)
}

# Natural (P) -> internal (n_free). theta must satisfy the constraints.
.to_internal <- function(theta, tr) {
  u <- as.double(theta[tr$free])
  lg <- tr$kind == "log"
  u[lg] <- log(u[lg])
  lt <- tr$kind == "logit"
  u[lt] <- stats::qlogis(u[lt])
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
  lt <- tr$kind == "logit"
  v[lt] <- stats::plogis(v[lt])
  for (idx in tr$groups) {
    if (length(idx) > 1L) v[idx] <- cumsum(c(v[idx[1]], exp(v[idx[-1]])))
  }
  theta[tr$free] <- v # tr$theta carries the names
  if (length(tr$definitions)) theta <- .con_fill(theta, tr$definitions)
  theta
}

# d theta_free / d u: an (n_free x n_free) matrix, row = natural free
# parameter, column = internal parameter. The dense reference for tests and
# checks; the optimizer's chain rule (.transform_derivs()) applies the same
# map sparsely, with the same floating-point operations in the same order.
.transform_jacobian <- function(u, tr) {
  n <- tr$n_free
  J <- diag(1, n)
  lg <- which(tr$kind == "log")
  if (length(lg)) J[cbind(lg, lg)] <- exp(u[lg])
  lt <- which(tr$kind == "logit")
  if (length(lt)) J[cbind(lt, lt)] <- stats::plogis(u[lt]) * stats::plogis(-u[lt])
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

# M %*% J for an (r x n_free) matrix M, J = .transform_jacobian(u, tr), with
# e = exp(u) (only its log and threshold-increment entries are read) except
# at the logit columns, where e holds d lambda / d u = plogis(u) plogis(-u), in
# O(r n_free): column j of the result is sum_k M[, k] J[k, j] over the
# nonzero J[k, j], summed in increasing k from the first term, as the
# reference BLAS sums the dense product (its zero terms add nothing), so
# the result is bit-identical to M %*% J.
.transform_right <- function(M, tr, e) {
  out <- M
  r <- nrow(M)
  lg <- c(tr$log_cols, tr$logit_cols) # diagonal entries e
  if (length(lg)) out[, lg] <- M[, lg, drop = FALSE] * rep(e[lg], each = r)
  for (IDX in tr$thr_blocks) { # (groups x K): u indices of each group
    K <- ncol(IDX)
    cols <- lapply(seq_len(K), function(k) M[, IDX[, k], drop = FALSE]) # (r x groups) each
    s <- cols[[1L]]
    for (k in 2:K) s <- s + cols[[k]]
    out[, IDX[, 1L]] <- s
    for (j in 2:K) {
      ej <- rep(e[IDX[, j]], each = r)
      s <- cols[[j]] * ej
      if (j < K) for (k in (j + 1L):K) s <- s + cols[[k]] * ej
      out[, IDX[, j]] <- s
    }
  }
  out
}

# Chain rule from natural (free) derivatives to internal ones.
#   grad: (n_free) d LL / d theta_free; scores: (N x n_free) or NULL;
#   hessian: (n_free x n_free) or NULL.
# g_int = J' g_nat, S_int = S_nat J, and
# H_int = J' H_nat J + sum_k g_nat_k d2 theta_k / du du'. The second term is
# diagonal: theta_k depends on u_j through exp(u_j) alone, so
# d2 theta_k / du_j^2 = d theta_k / du_j, and the sum equals g_int_j for the
# nonlinear u_j (log sds, threshold increments) and 0 for the others; for
# a logit u_j (lambda = plogis(u_j)), d2 lambda / du_j^2 = d lambda / du_j
# (1 - 2 lambda), and the sum is g_int_j (1 - 2 lambda).
# J is applied as a sparse map (.transform_right()), never formed.
.transform_derivs <- function(u, tr, grad, scores = NULL, hessian = NULL) {
  e <- if (any(tr$nonlinear)) exp(as.double(u)) else NULL
  lt <- tr$logit_cols
  if (length(lt)) e[lt] <- stats::plogis(u[lt]) * stats::plogis(-u[lt])
  g <- .transform_right(matrix(as.double(grad), nrow = 1L), tr, e)[1L, ]
  names(g) <- tr$free_names
  out <- list(gradient = g, scores = NULL, hessian = NULL)
  if (!is.null(scores)) {
    s <- .transform_right(scores, tr, e)
    colnames(s) <- tr$free_names
    out$scores <- s
  }
  if (!is.null(hessian)) {
    h <- t(.transform_right(t(.transform_right(hessian, tr, e)), tr, e)) # J' (H J)
    nl <- which(tr$nonlinear & tr$kind != "logit")
    h[cbind(nl, nl)] <- h[cbind(nl, nl)] + g[nl]
    if (length(lt)) h[cbind(lt, lt)] <- h[cbind(lt, lt)] + g[lt] * (1 - 2 * stats::plogis(u[lt]))
    h <- (h + t(h)) / 2
    dimnames(h) <- list(tr$free_names, tr$free_names)
    out$hessian <- h
  }
  out
}

# Which constraint does theta (P) break? NULL when none, else a message that
# names the parameter.
.check_constraints <- function(theta, names, thresholds = list(), positive = integer(), unit = integer(),
                               free = NULL) {
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
  # nesting parameters: in (0, 1) while free (the logit map), in (0, 1]
  # when fixed (1 is the MNL model)
  un <- as.integer(unit)
  hi_ok <- if (is.null(free)) theta[un] <= 1 else ifelse(free[un], theta[un] < 1, theta[un] <= 1)
  bad <- un[!(theta[un] > 0 & hi_ok)]
  if (length(bad)) {
    return(sprintf("the nesting parameter %s must lie in (0, 1) (or be fixed at a value in (0, 1]); it is %s",
                   iclv_quote(names[bad[1]]), format(theta[bad[1]])))
  }
  NULL
}
