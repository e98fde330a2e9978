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

# ---- clustered and bootstrap covariances ----------------------------------

# .vcov_cluster(hessian, scores, cluster): the cluster-robust sandwich
#   V_C = (-H)^-1 (sum_c s_c s_c') (-H)^-1,  s_c = sum of the scores of the
#   individuals in cluster c,
# hessian (k x k), scores (N x k) with colnames, cluster (N) one value per
# individual. No small-sample factor: with one individual per cluster V_C is
# the robust matrix exactly.
.vcov_cluster <- function(hessian, scores, cluster) {
  nm <- colnames(scores)
  Sc <- rowsum(scores, as.character(cluster), reorder = FALSE)
  B <- crossprod(Sc)
  ih <- .safe_inverse(-hessian, "the negative Hessian", nm, warn = FALSE)
  vc <- ih$inv %*% B %*% ih$inv
  vc <- .na_weak(list(inv = (vc + t(vc)) / 2, weak = ih$weak))
  dimnames(vc) <- list(nm, nm)
  vc
}

# The cluster of every individual of a fit: `cluster` is a column of `data`
# (constant within individual) or a vector with one value per individual.
.cluster_ids <- function(fit, cluster, data) {
  N <- fit$n_individuals
  if (is.null(cluster)) iclv_abort("control", "type = \"cluster\" needs 'cluster': a column of the data or one value per individual")
  if (is.character(cluster) && length(cluster) == 1L && N != 1L) {
    if (is.null(data)) {
      iclv_abort("control", sprintf("'cluster' = %s names a column: give the estimation data as 'data'",
                                    iclv_quote(cluster)))
    }
    if (!is.data.frame(data) || !cluster %in% names(data)) {
      iclv_abort("data", sprintf("cluster column %s is not in 'data'", iclv_quote(cluster)))
    }
    idv <- .val_ids(data, fit$compiled$id)
    if (!identical(as.character(idv$ids), as.character(fit$compiled$ids))) {
      iclv_abort("data", "'data' is not the estimation data: its individuals differ from the fit's")
    }
    x <- data[[cluster]]
    if (anyNA(x)) iclv_abort("data", sprintf("cluster column %s is missing (NA) in row %d", iclv_quote(cluster), which(is.na(x))[1]))
    first <- match(seq_len(N), idv$grp)
    v <- x[first]
    bad <- which(as.character(x) != as.character(v[idv$grp]))
    if (length(bad)) {
      iclv_abort("data", sprintf("cluster column %s is not constant within individual %s (row %d)",
                                 iclv_quote(cluster), iclv_quote(idv$ids[idv$grp[bad[1]]]), bad[1]))
    }
    return(v)
  }
  if (!is.atomic(cluster) || length(cluster) != N || anyNA(cluster)) {
    iclv_abort("control", sprintf("'cluster' must be a column name, or %d values (one per individual) without NA", N))
  }
  cluster
}

# .vcov_bootstrap(fit, data, R, seed, cores): the covariance of the
# estimates over R refits on individuals resampled with replacement (each
# copy a new individual), started at the estimates, fixed parameters kept
# fixed. The resamples are drawn in this process from `seed` (the caller's
# RNG state is restored), so the result does not depend on `cores`; refits
# run with parallel::mclapply where cores > 1 (forking: not on Windows).
# Refits that fail or do not converge are dropped (counted in "failed").
# Returns the (k x k) matrix with attributes "replicates" (R_ok x k) and
# "failed".
.vcov_bootstrap <- function(fit, data, R = 200L, seed = 1L, cores = 1L) {
  if (!is.data.frame(data)) iclv_abort("control", "type = \"bootstrap\" needs the estimation data as 'data'")
  if (!is.numeric(R) || length(R) != 1L || !is.finite(R) || R < 2) iclv_abort("control", "'R' must be a whole number >= 2")
  if (identical(fit$draws$type, "user")) {
    iclv_abort("draws", "type = \"bootstrap\" needs a draw design (iclv_draws()): a user array of draws cannot follow resampled individuals")
  }
  if (!is.numeric(seed) || length(seed) != 1L || !is.finite(seed)) iclv_abort("control", "'seed' must be one number")
  if (!is.numeric(cores) || length(cores) != 1L || !is.finite(cores) || cores < 1) {
    iclv_abort("control", "'cores' must be a whole number >= 1")
  }
  R <- as.integer(R)
  idv <- .val_ids(data, fit$compiled$id)
  N <- length(idv$ids)
  if (N != fit$n_individuals) iclv_abort("data", "'data' is not the estimation data: its number of individuals differs from the fit's")
  rows_of <- split(seq_len(nrow(data)), idv$grp)
  old <- if (exists(".Random.seed", globalenv())) get(".Random.seed", globalenv()) else NULL
  on.exit(if (is.null(old)) rm(".Random.seed", envir = globalenv()) else assign(".Random.seed", old, envir = globalenv()),
          add = TRUE)
  set.seed(seed)
  picks <- lapply(seq_len(R), function(b) sample.int(N, N, replace = TRUE))
  pt <- fit$partable
  free <- pt$name[pt$free]
  fixed <- fit$coefficients[!pt$free]
  ctrl <- fit$control
  ctrl$trace <- 0L
  ctrl["checkpoint"] <- list(NULL) # (`$<-` NULL would drop the element)
  ctrl["callback"] <- list(NULL)
  ctrl$start_search <- FALSE
  id <- fit$compiled$id
  one <- function(pick) {
    rows <- unlist(rows_of[pick], use.names = FALSE)
    db <- data[rows, , drop = FALSE]
    db[[id]] <- rep(seq_along(pick), lengths(rows_of[pick]))
    f <- tryCatch(suppressWarnings(iclv(fit$model, db, draws = fit$draws_design, backend = "cpu",
                                        control = ctrl, start = fit$coefficients[free],
                                        fixed = if (length(fixed)) fixed)),
                  error = function(e) NULL)
    if (is.null(f) || f$convergence$code != 0L) return(NULL)
    f$coefficients[free]
  }
  cores <- as.integer(cores)
  res <- if (cores > 1L && .Platform$OS.type == "unix") parallel::mclapply(picks, one, mc.cores = cores) else lapply(picks, one)
  ok <- !vapply(res, function(r) is.null(r) || inherits(r, "try-error"), logical(1))
  if (sum(ok) < 2L) iclv_abort("numeric", sprintf("the bootstrap failed: %d of %d refits converged", sum(ok), R))
  reps <- do.call(rbind, res[ok])
  V <- stats::cov(reps)
  dimnames(V) <- list(free, free)
  structure(V, replicates = reps, failed = R - sum(ok))
}
