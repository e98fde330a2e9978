# Covariance matrices of the estimates and the identification check, all over
# the FREE parameters in the natural parameterisation (thresholds as
# thresholds, standard deviations as standard deviations): the engine's
# natural derivatives at the optimum are used directly, so no delta method
# is needed.
#
#   hessian  V_H = (-H)^-1                    H: Hessian of LL
#   bhhh     V_B = B^-1,  B = sum_n s_n s_n'   s_n: score of individual n
#   robust   V_R = V_H B V_H                   (sandwich)

# .vcov_compute(hessian, scores, names)
#   hessian: (k x k) Hessian of LL or NULL; scores: (N x k) individual scores;
#   names: (k) parameter names; warn: warn when a matrix is not positive
#   definite (iclv() passes FALSE for a fit that did not converge: vcov()
#   then warns about the fit as a whole).
# Returns list(hessian, bhhh, robust), each (k x k) with dimnames, or NULL
# where the Hessian was not computed.
.vcov_compute <- function(hessian, scores, names = colnames(scores), warn = TRUE) {
  dn <- list(names, names)
  B <- crossprod(scores)
  ib <- .safe_inverse(B, "the outer product of the scores (BHHH)", names, warn)
  vb <- .na_weak(ib)
  dimnames(vb) <- dn
  vh <- vr <- NULL
  if (!is.null(hessian)) {
    ih <- .safe_inverse(-hessian, "the negative Hessian", names, warn)
    vr <- ih$inv %*% B %*% ih$inv
    vr <- (vr + t(vr)) / 2
    vh <- .na_weak(ih)
    vr <- .na_weak(list(inv = vr, weak = ih$weak))
    dimnames(vh) <- dimnames(vr) <- dn
  }
  list(hessian = vh, bhhh = vb, robust = vr)
}

# The inverse of a symmetric matrix that should be positive definite.
# The eigenvalues decide: when all exceed 1e-10 times the largest, the
# Cholesky inverse (.inverse_spd). Otherwise the matrix is singular or
# indefinite at the estimate (e.g. an unidentified parameter): a generalized
# inverse over the kept eigenvalues is returned together with `weak`, the
# indices of the parameters with large weights in the dropped directions,
# whose variances the caller sets to NA (.na_weak) rather than reporting
# meaningless numbers; with a warning naming them.
# Returns list(inv (k x k), weak (integer indices)).
.safe_inverse <- function(a, what, names = NULL, warn = TRUE) {
  a <- (a + t(a)) / 2
  storage.mode(a) <- "double"
  if (!length(a)) return(list(inv = a, weak = integer()))
  e <- .eigen_sym(a)
  top <- max(abs(e$values))
  keep <- e$values > 1e-10 * top
  if (all(keep)) {
    inv <- tryCatch(.inverse_spd(a), iclv_error_lapack = function(err) NULL)
    if (!is.null(inv) && all(is.finite(inv))) return(list(inv = (inv + t(inv)) / 2, weak = integer()))
  }
  V <- e$vectors[, keep, drop = FALSE]
  inv <- V %*% (t(V) / e$values[keep])
  weak <- .weak_index(e$vectors[, !keep, drop = FALSE])
  if (warn) iclv_warn("vcov", sprintf(paste0("%s is not positive definite (%d of %d eigenvalues <= 0 or near 0); ",
                                   "the standard errors of the parameters involved (%s) are set to NA"),
                            what, sum(!keep), length(keep),
                            if (is.null(names)) "see the identification check" else
                              iclv_quote(names[weak])))
  list(inv = inv, weak = weak)
}

# A covariance matrix with the rows and columns of `weak` parameters, and of
# any parameter whose variance is not positive, set to NA.
.na_weak <- function(x) {
  inv <- x$inv
  bad <- union(x$weak, which(!(diag(inv) > 0)))
  inv[bad, ] <- NA_real_
  inv[, bad] <- NA_real_
  inv
}

# Standard errors from a covariance matrix: NA where the variance is NA or
# not positive (never a clamped 0 that would print as z = Inf).
.se_from_vcov <- function(V) {
  d <- diag(V)
  out <- rep(NA_real_, length(d))
  ok <- is.finite(d) & d > 0
  out[ok] <- sqrt(d[ok])
  names(out) <- names(d)
  out
}

# Indices of the parameters with large weights (> 0.1 of the largest) in
# the given eigenvectors (columns).
.weak_index <- function(vectors) {
  w <- apply(abs(vectors), 1L, max)
  which(w > 0.1 * max(w))
}

# The parameters with the largest weights in the given eigenvectors (columns).
.weak_parameters <- function(vectors, names, n = 3L) {
  w <- apply(abs(vectors), 1L, max)
  o <- order(w, decreasing = TRUE)
  o <- o[w[o] > 0.1 * w[o[1]]]
  names[utils::head(o, n)]
}

# .identification(hessian, names): eigenvalues of the negative Hessian
# (ascending). A negative one, or one below 1e-8 of the largest, means the
# model is (empirically) not identified at the estimate, or the optimum is
# not a maximum: iclv_warn("identification") naming the parameters with the
# largest weights in that eigenvector.
# warn = FALSE (a fit that did not converge) records without warning.
# Returns list(eigenvalues, ok, weak (names)).
.identification <- function(hessian, names, warn = TRUE) {
  if (is.null(hessian) || !length(hessian)) return(list(eigenvalues = numeric(), ok = NA, weak = character()))
  e <- .eigen_sym(-(hessian + t(hessian)) / 2)
  top <- max(abs(e$values))
  bad <- which(e$values < 1e-8 * top)
  weak <- character()
  if (length(bad)) {
    weak <- .weak_parameters(e$vectors[, bad, drop = FALSE], names)
    neg <- any(e$values[bad] < 0)
    if (warn) iclv_warn("identification", sprintf(
      paste0("the negative Hessian at the estimate has %d %s eigenvalue(s) (smallest %s, largest %s): ",
             "the model may not be identified%s; the parameters most involved are %s"),
      length(bad), if (neg) "negative or near-zero" else "near-zero",
      format(min(e$values), digits = 3), format(top, digits = 3),
      if (neg) " or the estimate is not a maximum" else "", iclv_quote(weak)))
  }
  list(eigenvalues = e$values, ok = !length(bad), weak = weak)
}
