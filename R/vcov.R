# Covariance matrices of the estimates and the identification check, all over
# the FREE parameters in the natural parameterisation (thresholds as
# thresholds, standard deviations as standard deviations): the engine's
# natural derivatives at the optimum are used directly, so no delta method
# is needed.
#
#   hessian  V_H = (-H)^-1                    H: Hessian of LL
#   bhhh     V_B = B^-1,  B = sum_n s_n s_n'   s_n: score of individual n
#   robust   V_R = V_H B V_H                   (sandwich)
#
# With individual weights (iclv(weights =)) H is the Hessian of the weighted
# LL and s_n the weighted score w_n d log L_n / d theta (the engine returns
# them so), hence B = sum_n w_n^2 g_n g_n': the sandwich for sampling weights
# (Stata's pweights, Apollo); nothing here changes.

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

# Every decision about singularity is taken on the matrix scaled to unit
# diagonal, C = D^-1/2 A D^-1/2 with D = diag(A) (a correlation-type
# scaling), never on raw eigenvalues: rescaling a parameter (an attribute
# measured in other units) rescales a row and column of A, which leaves C,
# and so every decision, unchanged, and the covariances scale exactly.

# .unit_diagonal(a): a symmetric (k x k) with a diagonal that should be
# positive. Returns list(pos (indices with a positive, finite diagonal),
# none (the others: no information or negative curvature in that
# coordinate), s (length(pos): 1 / sqrt(diag)), c (the pos block scaled to
# unit diagonal)).
.unit_diagonal <- function(a) {
  d <- diag(a)
  pos <- which(is.finite(d) & d > 0)
  s <- 1 / sqrt(d[pos])
  c <- a[pos, pos, drop = FALSE] * (s %o% s)
  diag(c) <- 1
  list(pos = pos, none = setdiff(seq_along(d), pos), s = s, c = c)
}

# The inverse of a symmetric matrix that should be positive definite,
# decided on its unit-diagonal scaling (.unit_diagonal). When every
# eigenvalue of the scaled matrix exceeds 1e-10 times the largest, the
# Cholesky inverse (.inverse_spd) of the scaled matrix, scaled back.
# Otherwise the matrix is singular or indefinite at the estimate (e.g. an
# unidentified parameter): a generalized inverse over the kept eigenvalues
# is returned together with `weak`, the indices of the parameters with large
# weights in the dropped directions, and of those whose diagonal entry is
# not positive (no information, or negative curvature); the caller sets
# their variances to NA (.na_weak) rather than reporting meaningless
# numbers, and a warning names them. The rows and columns of the
# non-positive-diagonal parameters are 0 in `inv` (so that a sandwich built
# from it stays finite for the others).
# Returns list(inv (k x k), weak (integer indices)).
.safe_inverse <- function(a, what, names = NULL, warn = TRUE) {
  a <- (a + t(a)) / 2
  storage.mode(a) <- "double"
  if (!length(a)) return(list(inv = a, weak = integer()))
  u <- .unit_diagonal(a)
  inv <- matrix(0, nrow(a), ncol(a))
  weak <- u$none
  n_drop <- 0L
  if (length(u$pos)) {
    e <- .eigen_sym(u$c)
    keep <- e$values > 1e-10 * max(e$values)
    ic <- NULL
    if (all(keep)) {
      ic <- tryCatch(.inverse_spd(u$c), iclv_error_lapack = function(err) NULL)
      if (!is.null(ic) && !all(is.finite(ic))) ic <- NULL
    }
    if (is.null(ic)) {
      V <- e$vectors[, keep, drop = FALSE]
      ic <- V %*% (t(V) / e$values[keep])
      if (any(!keep)) weak <- c(weak, u$pos[.weak_index(e$vectors[, !keep, drop = FALSE])])
      n_drop <- sum(!keep)
    }
    inv[u$pos, u$pos] <- ((ic + t(ic)) / 2) * (u$s %o% u$s)
  }
  weak <- sort(unique(weak))
  if (length(weak) && warn) {
    nm <- function(i) if (is.null(names)) paste(i, collapse = ", ") else iclv_quote(names[i])
    why <- c(if (n_drop) sprintf("%d of %d eigenvalues of the matrix scaled to unit diagonal are <= 0 or near 0",
                                 n_drop, length(u$pos)),
             if (length(u$none)) sprintf("its diagonal is not positive for %s (no information, or negative curvature)",
                                         nm(u$none)))
    iclv_warn("vcov", sprintf("%s is not positive definite (%s); the standard errors of the parameters involved (%s) are set to NA",
                              what, paste(why, collapse = "; "),
                              if (is.null(names)) "see the identification check" else nm(weak)))
  }
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

# .identification(hessian, names): the eigenvalues (ascending) of the
# negative Hessian scaled to unit diagonal (D^-1/2 (-H) D^-1/2, D its
# diagonal; a non-positive diagonal entry is scaled by its absolute value,
# or by 1 when 0), so that they do not depend on the units of the data or
# the parameters. A negative one, one below 1e-8 of the largest, or a
# non-positive diagonal entry means the model is (empirically) not
# identified at the estimate, or the optimum is not a maximum:
# iclv_warn("identification") naming the parameters with the largest
# weights in those eigenvectors (and those without positive curvature).
# `condition`: the largest over the smallest eigenvalue (Inf when the
# smallest is not positive).
# warn = FALSE (a fit that did not converge) records without warning.
# Returns list(eigenvalues, ok, weak (names), condition).
.identification <- function(hessian, names, warn = TRUE) {
  if (is.null(hessian) || !length(hessian)) {
    return(list(eigenvalues = numeric(), ok = NA, weak = character(), condition = NA_real_))
  }
  a <- -(hessian + t(hessian)) / 2
  storage.mode(a) <- "double"
  d <- abs(diag(a))
  d[!is.finite(d) | d == 0] <- 1
  s <- 1 / sqrt(d)
  e <- .eigen_sym(a * (s %o% s))
  top <- max(e$values)
  low <- min(e$values)
  condition <- if (low > 0) top / low else Inf
  none <- which(!(diag(a) > 0))
  bad <- which(e$values < 1e-8 * top)
  weak <- character()
  if (length(bad) || length(none)) {
    weak <- unique(c(names[none], if (length(bad)) .weak_parameters(e$vectors[, bad, drop = FALSE], names)))
    neg <- any(e$values[bad] < 0) || any(diag(a)[none] < 0)
    if (warn) iclv_warn("identification", sprintf(
      paste0("the negative Hessian at the estimate, scaled to unit diagonal, has %d %s eigenvalue(s) ",
             "(smallest %s, largest %s)%s: the model may not be identified%s; the parameters most involved are %s"),
      length(bad), if (neg) "negative or near-zero" else "near-zero",
      format(low, digits = 3), format(top, digits = 3),
      if (length(none)) sprintf(" and no positive curvature in %s", iclv_quote(names[none])) else "",
      if (neg) " or the estimate is not a maximum" else "", iclv_quote(weak)))
  }
  list(eigenvalues = e$values, ok = !length(bad) && !length(none), weak = weak, condition = condition)
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

# .vcov_bootstrap(fit, data, R, seed, cores, cluster): the covariance of
# the estimates over R refits on individuals resampled with replacement
# (each copy a new individual), started at the estimates, fixed parameters
# kept fixed. The resamples are drawn in this process from `seed` (the
# caller's RNG state is restored) and each refit is deterministic, so the
# result depends neither on `cores` nor on the cluster. Refits run here
# (cores = 1, no cluster), on a PSOCK cluster of `cores` fresh R processes,
# or on the user's `parallel` cluster: the resamples are split into one
# contiguous batch per worker, each worker receives the data once with its
# batch and refits with one thread; a worker that dies or does not answer
# within option iclv.cluster_timeout gives an iclv_error_cluster
# (R/cluster.R). Refits that fail or do not converge are dropped (counted in
# "failed"). Returns the (k x k) matrix with attributes "replicates"
# (R_ok x k) and "failed".
.vcov_bootstrap <- function(fit, data, R = 200L, seed = 1L, cores = 1L, cluster = NULL) {
  if (!is.data.frame(data)) iclv_abort("control", "type = \"bootstrap\" needs the estimation data as 'data'")
  if (!is.numeric(R) || length(R) != 1L || !is.finite(R) || R < 2) iclv_abort("control", "'R' must be a whole number >= 2")
  if (identical(fit$draws$type, "user")) {
    iclv_abort("draws", "type = \"bootstrap\" needs a draw design (iclv_draws()): a user array of draws cannot follow resampled individuals")
  }
  if (!is.numeric(seed) || length(seed) != 1L || !is.finite(seed)) iclv_abort("control", "'seed' must be one number")
  if (!is.numeric(cores) || length(cores) != 1L || !is.finite(cores) || cores < 1) {
    iclv_abort("control", "'cores' must be a whole number >= 1")
  }
  if (!is.null(cluster)) .check_cluster(cluster)
  R <- as.integer(R)
  idv <- .val_ids(data, fit$compiled$id)
  N <- length(idv$ids)
  if (N != fit$n_individuals) iclv_abort("data", "'data' is not the estimation data: its number of individuals differs from the fit's")
  restore <- .rng_keep() # (R/draws.R)
  on.exit(restore(), add = TRUE)
  set.seed(seed)
  picks <- lapply(seq_len(R), function(b) sample.int(N, N, replace = TRUE))
  pt <- fit$partable
  free <- pt$name[pt$free]
  fixed <- fit$coefficients[!pt$free & !.pt_defined(pt)] # defined ones follow (R/constraints.R)
  ctrl <- fit$control
  ctrl$trace <- 0L
  ctrl["checkpoint"] <- list(NULL) # (`$<-` NULL would drop the element)
  ctrl["callback"] <- list(NULL)
  ctrl$start_search <- FALSE
  job <- list(model = fit$model, data = data, rows_of = split(seq_len(nrow(data)), idv$grp),
              id = fit$compiled$id, draws = fit$draws_design, control = ctrl,
              start = fit$coefficients[free], fixed = if (length(fixed)) fixed,
              weights = fit$weights$column)
  cores <- as.integer(cores)
  if (is.null(cluster) && cores > 1L) {
    # fresh worker processes, not forks: a child forked from a process whose
    # OpenMP runtime has started threads can deadlock in its first parallel
    # region (seen with libgomp)
    cluster <- parallel::makePSOCKcluster(cores)
    on.exit(parallel::stopCluster(cluster), add = TRUE)
  }
  res <- if (is.null(cluster)) .bootstrap_refits(picks, job) else .bootstrap_on_cluster(cluster, picks, job)
  ok <- !vapply(res, function(r) is.null(r) || inherits(r, "try-error"), logical(1))
  if (sum(ok) < 2L) iclv_abort("numeric", sprintf("the bootstrap failed: %d of %d refits converged", sum(ok), R))
  reps <- do.call(rbind, res[ok])
  V <- stats::cov(reps)
  dimnames(V) <- list(free, free)
  structure(V, replicates = reps, failed = R - sum(ok))
}

# The refits of the resamples `picks` (each a vector of individual indices)
# described by `job` (.vcov_bootstrap): a list with, per resample, the free
# estimates, or NULL when the refit failed or did not converge.
.bootstrap_refits <- function(picks, job) {
  lapply(picks, function(pick) {
    rows <- unlist(job$rows_of[pick], use.names = FALSE)
    db <- job$data[rows, , drop = FALSE]
    db[[job$id]] <- rep(seq_along(pick), lengths(job$rows_of[pick]))
    f <- tryCatch(suppressWarnings(iclv(job$model, db, draws = job$draws, backend = "cpu",
                                        control = job$control, start = job$start, fixed = job$fixed,
                                        weights = job$weights)),
                  error = function(e) NULL)
    if (is.null(f) || f$convergence$code != 0L) return(NULL)
    f$coefficients[names(job$start)]
  })
}

# The refits on the workers of `cluster`: one contiguous batch of resamples
# per worker (sizes differ by at most one), one round of R/cluster.R's
# transport (versions checked, timeouts, classed errors); the answers are
# put back in resample order.
.bootstrap_on_cluster <- function(cluster, picks, job) {
  S <- min(length(cluster), length(picks))
  batch <- split(seq_along(picks), cut(seq_along(picks), S, labels = FALSE))
  ce <- .cluster_connect(cluster[seq_len(S)])
  ce$released <- FALSE
  on.exit(ce$released <- TRUE, add = TRUE) # no engines to release on the workers
  job$control$n_threads <- 1L
  out <- .cluster_round(ce, ".cluster_worker_bootstrap", function(s) list(picks[batch[[s]]], job))
  do.call(c, unname(out)) # NULLs (failed refits) kept in place
}
