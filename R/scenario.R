# Scenario prediction: newdata that carries only what the choice part (and
# the structural model) uses, and per-draw quantities (probabilities, LVs,
# likelihoods) for conditional predictions, unconditional LV draws and
# elasticities. Everything is computed by the engine; R only arranges the
# data and averages.

# .scenario_data(fit, newdata): newdata completed so that it compiles with
# the fit's model:
#   - an absent indicator column is added as NA (missing values are skipped:
#     the individual then has no indicator observations);
#   - an absent choice column is added with the first available alternative
#     of each row (a placeholder: callers must not condition on it);
#   - "pad" individuals are appended (copies of the first row with new ids)
#     that observe every category of every indicator, so the compiled
#     parameter table (the thresholds) is the fit's whatever the scenario
#     holds. Their rows and individuals come last and are dropped by the
#     callers.
# Returns list(data, n_rows (the scenario's rows), n_ind (its individuals),
#   has_choice (the choice column was given), has_indicators (named logical)).
.scenario_data <- function(fit, newdata) {
  if (!is.data.frame(newdata)) {
    iclv_abort("data", sprintf("'newdata' must be a data.frame, not an object of class %s", iclv_quote(class(newdata)[1])))
  }
  if (!nrow(newdata)) iclv_abort("data", "'newdata' has no rows")
  .val_data_frame(newdata)
  model <- fit$model
  comp <- fit$compiled
  id <- model$id
  if (!id %in% names(newdata)) {
    iclv_abort("data", sprintf("id column %s is not in 'newdata'", iclv_quote(id)))
  }
  d <- newdata
  if (is.factor(d[[id]])) d[[id]] <- as.character(d[[id]])
  n <- nrow(d)
  n_ind <- length(unique(d[[id]]))
  inds <- comp$indicators
  has_ind <- stats::setNames(inds %in% names(d), inds)
  for (ind in inds[!has_ind]) d[[ind]] <- rep(NA_real_, n)
  ch <- model$choice
  if (!is.null(ch$parts)) { # several choice parts (R/parts.R): the choice columns say the rows' parts
    if (!any(ch$parts$choice %in% names(d))) {
      iclv_abort("data", sprintf(
        "'newdata' of a model with several choice parts needs the parts' choice columns (%s), which say the part of each row (NA in the rows of the other parts)",
        iclv_quote(ch$parts$choice)))
    }
    for (col in setdiff(ch$parts$choice, names(d))) d[[col]] <- rep(NA, n)
  }
  has_choice <- is.null(ch) || ch$choice %in% names(d)
  if (!has_choice) {
    first <- rep(1L, n)
    if (!is.null(ch$available)) {
      A <- sapply(ch$alternatives, function(a) {
        col <- if (a %in% names(ch$available)) ch$available[[a]] # alternatives without a column: available
        if (is.null(col) || !col %in% names(d)) rep(1, n) else as.numeric(d[[col]])
      })
      A <- matrix(A, nrow = n)
      first <- apply(A != 0, 1L, function(r) if (any(r, na.rm = TRUE)) which(r)[1] else 1L)
    }
    d[[ch$choice]] <- as.integer(first)
  }
  # ranked / best-worst: absent later rank columns end the ranking (NA)
  for (rk in setdiff(ch$ranks, names(d))) d[[rk]] <- rep(NA_integer_, n)
  # pad individuals: pad p observes category min(p, C) of an ordered
  # indicator, (p - 1) %% 2 of a binary one, p of a normal one
  ncat <- comp$c$ind_ncat
  types <- unname(unlist(model$ind_type[inds]))
  n_pad <- max(c(2L, ncat[.is_ordered(types)]))
  pad <- d[rep(1L, n_pad), , drop = FALSE]
  idx <- d[[id]]
  pad[[id]] <- if (is.numeric(idx)) max(idx) + seq_len(n_pad) else paste0(".iclv_pad_", seq_len(n_pad))
  for (m in seq_along(inds)) {
    p <- seq_len(n_pad)
    pad[[inds[m]]] <- if (.is_ordered(types[m])) pmin(p, ncat[m]) else if (.is_binary(types[m])) (p - 1L) %% 2L else p
  }
  out <- rbind(d, pad)
  rownames(out) <- NULL
  list(data = out, n_rows = n, n_ind = n_ind, has_choice = has_choice, has_indicators = has_ind,
       rows = rownames(newdata))
}

# .scenario_compile(fit, newdata): the scenario compiled with the fit's
# parameter table (pads included), and the parameters in its order.
.scenario_compile <- function(fit, newdata) {
  sd <- .scenario_data(fit, newdata)
  comp <- .iclv_compile(fit$model, sd$data, categories = fit$compiled$categories,
                        choice_categories = fit$compiled$choice_categories)
  cf <- fit$coefficients
  lack <- setdiff(comp$partable$name, names(cf))
  if (length(lack)) {
    iclv_abort("data", sprintf("'newdata' gives the model parameters the fit does not have (%s)",
                               iclv_quote(utils::head(lack, 3L))))
  }
  list(comp = comp, theta = cf[comp$partable$name], scenario = sd)
}

# .per_draw(fit, comp, theta): the engine's quantities draw by draw. Every
# individual n is replicated once per draw r of the fit's design (draw r of
# n, given twice as a user array: one draw per pseudo-individual), so that
# the engine returns, for each (n, r):
#   prob  (n_rows, R, J)  P_tj(eta_nr) of every row t of n
#   eta   (N, R, K)       the LVs eta_nr from the structural model
#   logl  (N, R)          log L_nr (indicators and choices of n at eta_nr)
#   logc  (N, R)          the choice part of log L_nr, sum_t log P_t,y_t
# Individuals are processed in chunks of at most `chunk` pseudo-individuals
# (one engine each), so the replicated data stay small.
.per_draw <- function(fit, comp, theta, chunk = 20000L) {
  N <- comp$n_ind
  K <- length(comp$lvs)
  E <- .draws_generate(.draws_spec(fit$draws_design, N, K)) # N x R x K
  R <- dim(E)[2]
  cc <- comp$c
  has_choice <- cc$choice_type != 0L
  T <- cc$n_rows
  J <- .prob_width(cc)
  eta <- array(NA_real_, c(N, R, K))
  logl <- matrix(NA_real_, N, R)
  P <- if (has_choice) array(NA_real_, c(T, R, J)) else NULL
  per <- max(1L, as.integer(chunk %/% R))
  for (start in seq(1L, N, by = per)) {
    inds <- seq.int(start, min(N, start + per - 1L))
    nq <- length(inds) * R
    rep_c <- .replicate_compiled(cc, R, inds)
    U <- array(0, c(nq, 2L, K))
    for (k in seq_len(K)) {
      v <- as.vector(t(matrix(E[inds, , k], length(inds), R))) # q order: r fastest
      U[, 1L, k] <- v
      U[, 2L, k] <- v
    }
    spec <- .draws_spec(iclv_draws(U), nq, K)
    engine <- .engine_new(rep_c, spec, "cpu", n_threads = fit$control$n_threads %||% 0L)
    pr <- tryCatch({
      list(pred = .engine_predict(engine, theta), ev = .engine_eval(engine, theta, gradient = FALSE))
    }, finally = .engine_release(engine))
    eta[inds, , ] <- aperm(array(pr$pred$lv_mean, c(R, length(inds), K)), c(2L, 1L, 3L))
    logl[inds, ] <- t(matrix(pr$ev$loglik_i, R, length(inds)))
    if (has_choice) {
      rr <- .replicated_rows(cc, R, inds) # (rows of inds, R) rows of the replicated data
      rows <- as.integer(rownames(rr))
      for (j in seq_len(J)) P[rows, , j] <- matrix(pr$pred$prob[, j][rr], nrow(rr), R)
    }
  }
  out <- list(eta = eta, logl = logl, R = R, prob = P, logc = NULL)
  if (has_choice) {
    py <- matrix(P[cbind(rep(seq_len(T), R), rep(seq_len(R), each = T), rep(cc$y + 1L, R))], T, R)
    grp <- rep(seq_len(N), diff(cc$row_ptr))
    lc <- matrix(0, N, R)
    if (T) lc[sort(unique(grp)), ] <- rowsum(log(py), grp, reorder = TRUE)
    out$logc <- lc
  }
  out
}

# The compiled list (src/iclv_model.h) of the individuals `inds`, each
# repeated R times (r fastest): individual-level arrays are repeated, row-
# and observation-level ones follow their individual.
.replicate_compiled <- function(cc, R, inds = seq_len(cc$n_ind)) {
  q_n <- rep(inds, each = R) # original individual of pseudo-individual q
  rows_of <- function(ptr, n) if (ptr[n + 1L] > ptr[n]) seq.int(ptr[n] + 1L, ptr[n + 1L]) else integer()
  obs_idx <- unlist(lapply(q_n, function(n) rows_of(cc$obs_ptr, n)), use.names = FALSE)
  out <- cc
  out$n_ind <- as.integer(length(q_n))
  out$weight <- NULL # per-draw quantities of each individual: unweighted
  nc <- cc$n_cov
  if (nc > 0L) {
    cv <- matrix(cc$cov, nrow = nc)
    out$cov <- as.double(cv[, q_n, drop = FALSE])
  }
  out$obs_ptr <- as.integer(c(0L, cumsum(diff(cc$obs_ptr)[q_n])))
  out$obs_ind <- as.integer(cc$obs_ind[obs_idx])
  out$obs_val <- as.double(cc$obs_val[obs_idx])
  out$n_obs <- as.integer(length(obs_idx))
  if (cc$choice_type != 0L) {
    row_idx <- unlist(lapply(q_n, function(n) rows_of(cc$row_ptr, n)), use.names = FALSE)
    J <- cc$n_alt
    out$n_rows <- as.integer(length(row_idx))
    out$row_ptr <- as.integer(c(0L, cumsum(diff(cc$row_ptr)[q_n])))
    out$y <- as.integer(cc$y[row_idx])
    if (cc$n_avail > 0L) {
      out$avail <- as.integer(matrix(cc$avail, nrow = J)[, row_idx])
      out$n_avail <- as.integer(length(row_idx) * J)
    }
    if (cc$n_xcol > 0L) out$X <- as.double(matrix(cc$X, nrow = cc$n_xcol)[, row_idx])
    if ((cc$n_mult %||% 0L) > 0L) { # best-worst row multipliers follow their rows
      out$mult_sign <- cc$mult_sign[row_idx]
      out$mult_par <- cc$mult_par[row_idx]
      out$n_mult <- as.integer(length(row_idx))
    }
  }
  out
}

# For the individuals `inds` replicated by .replicate_compiled(): a
# (rows of inds, R) matrix, row names the original rows t, holding the row
# of the replicated data that has row t at draw r.
.replicated_rows <- function(cc, R, inds = seq_len(cc$n_ind)) {
  len <- diff(cc$row_ptr)
  blocks <- list()
  start_q <- 0L
  for (n in inds) {
    if (len[n]) {
      t <- seq.int(cc$row_ptr[n] + 1L, cc$row_ptr[n + 1L])
      m <- start_q + outer(seq_len(len[n]), (seq_len(R) - 1L) * len[n], "+")
      rownames(m) <- t
      blocks[[length(blocks) + 1L]] <- m
    }
    start_q <- start_q + R * len[n]
  }
  if (!length(blocks)) return(matrix(0L, 0L, R))
  do.call(rbind, blocks)
}

# Posterior weights w_nr of the draws: proportional to L_nr, or to its
# indicator part when the choices are placeholders.
.draw_weights <- function(pd, use_choice = TRUE) {
  l <- pd$logl
  if (!use_choice && !is.null(pd$logc)) l <- l - pd$logc
  l <- l - apply(l, 1L, max)
  w <- exp(l)
  w / rowSums(w)
}

# predict() through the per-draw quantities: conditional probabilities,
# posterior LV moments when the choices are placeholders, unconditional LV
# draws. `scenario` is .scenario_data()'s result, or NULL for the
# estimation data.
.predict_per_draw <- function(fit, comp, theta, scenario, type, stages = FALSE) {
  pd <- .per_draw(fit, comp, theta)
  n_rows <- if (is.null(scenario)) comp$c$n_rows else scenario$n_rows
  n_ind <- if (is.null(scenario)) comp$n_ind else scenario$n_ind
  keep <- seq_len(n_ind)
  if (type == "lv_draws") {
    out <- pd$eta[keep, , , drop = FALSE]
    dimnames(out) <- list(as.character(comp$ids[keep]), NULL, comp$lvs)
    return(out)
  }
  use_choice <- is.null(scenario) || scenario$has_choice
  w <- .draw_weights(pd, use_choice)
  if (type == "lv") {
    out <- data.frame(id = comp$ids[keep], stringsAsFactors = FALSE)
    for (k in seq_along(comp$lvs)) {
      e <- pd$eta[keep, , k, drop = FALSE]
      dim(e) <- dim(e)[1:2]
      mu <- rowSums(w[keep, , drop = FALSE] * e)
      out[[paste0("mean_", comp$lvs[k])]] <- mu
      out[[paste0("sd_", comp$lvs[k])]] <- sqrt(rowSums(w[keep, , drop = FALSE] * (e - mu)^2))
    }
    return(out)
  }
  grp <- rep(seq_len(comp$n_ind), diff(comp$c$row_ptr))
  J <- .prob_width(comp$c)
  if (is.null(scenario)) n_rows <- max(comp$rows, 0L) # data rows (ranked: fewer than compiled rows)
  keep <- .choice_rows_keep(comp, n_rows, stages) # R/rank.R
  P <- matrix(0, length(keep), J)
  wt <- w[grp[keep], , drop = FALSE]
  for (j in seq_len(J)) P[, j] <- rowSums(wt * matrix(pd$prob[keep, , j], length(keep)))
  rn <- if (is.null(scenario)) as.character(seq_len(n_rows)) else scenario$rows
  dimnames(P) <- list(.choice_row_names(comp, keep, rn, stages), .prob_names(comp))
  P
}

# Columns of predicted probabilities: the alternatives, or the categories
# 1..C of an ordered choice (src/iclv_core.h, iclv_prob_dim).
.prob_width <- function(cc) if (identical(cc$choice_type, 4L)) cc$n_ocat else cc$n_alt
.prob_names <- function(comp) {
  if (identical(comp$c$choice_type, 4L)) as.character(seq_len(comp$c$n_ocat)) else comp$alternatives
}
