# Ranked (exploded logit) and best-worst choice tasks, compiled into MNL
# stages.
#
# A task of type "ranked" names the alternative at each rank in its rank
# columns (best first). Its likelihood is the exploded logit
#   P(ranking) = prod_{k=1..K} exp(V_{r_k}) / sum_{j in A_k} exp(V_j),
# A_k the available alternatives not ranked before rank k. A task of type
# "bestworst" has a best and a worst column:
#   P = exp(V_b) / sum_{j in A} exp(V_j) * exp(-mu V_w) / sum_{j in A \ b} exp(-mu V_j),
# mu = 1, or a free scale parameter (iclv_choice(worst_scale = )).
#
# .rank_stages() turns every data row into one MNL row per stage, each with
# its own chosen alternative and availability (the alternatives ranked
# before it unavailable), and for the worst stage of a best-worst task the
# row multiplier -1 or -mu (src/iclv_model.h: mult_sign, mult_par). The
# engines then evaluate them with the MNL kernel they already have (CPU
# reference, fast CPU kernels for rankings, CUDA), with exact gradients and
# Hessians; nothing else in C knows about rankings.
#
# Rankings: an NA rank ends the ranking (the ranks after it must be NA
# too); alternatives that no rank names are "unranked": they stay
# available in every stage (they rank below every ranked one, in an
# unobserved order). A stage with only one alternative left (the last rank
# of a full ranking) has probability 1 and gives no row. Ties cannot be
# written in one-alternative-per-rank columns: an alternative named at two
# ranks is an error; end the ranking before tied positions (NA) to treat
# the tied alternatives as unranked.

# The rank columns of choice part `ch` checked against `data`:
# list(R (n x K integer matrix of alternative positions, NA = not ranked),
#      A (n x J 0/1 availability)).
.rank_read <- function(data, ch, row_ids) {
  alts <- ch$alternatives
  cols <- ch$ranks
  n <- nrow(data)
  Rk <- matrix(NA_integer_, n, length(cols), dimnames = list(NULL, cols))
  for (k in seq_along(cols)) {
    .val_column_exists(data, cols[k], "rank column")
    x <- data[[cols[k]]]
    if (is.factor(x)) x <- as.character(x)
    na <- is.na(x)
    if (!all(na)) {
      # NA (the ranking ended) filled with a valid value, so that an error
      # names the row of the data
      x[na] <- if (is.numeric(x)) 1 else alts[1]
      sub <- data.frame(x = x, stringsAsFactors = FALSE)
      names(sub) <- cols[k]
      y <- .val_choice_column(sub, cols[k], alts)
      y[na] <- NA_integer_
      Rk[, k] <- y
    }
  }
  at <- function(r) if (is.null(row_ids)) "" else sprintf(" (id %s)", format(row_ids[r]))
  if (anyNA(Rk[, 1])) {
    r <- which(is.na(Rk[, 1]))[1]
    iclv_abort("data", sprintf("the choice (column %s) is missing (NA) in row %d%s", iclv_quote(cols[1]), r, at(r)))
  }
  if (ncol(Rk) > 1L) {
    # an NA rank ends the ranking: a rank after it is an error
    gap <- which(is.na(Rk[, -ncol(Rk), drop = FALSE]) & !is.na(Rk[, -1L, drop = FALSE]), arr.ind = TRUE)
    if (nrow(gap)) {
      r <- min(gap[, 1])
      k <- min(gap[gap[, 1] == r, 2])
      iclv_abort("data", sprintf(
        "row %d%s: rank column %s is NA but the later rank column %s is not; an NA rank ends the ranking",
        r, at(r), iclv_quote(cols[k]), iclv_quote(cols[k + 1L])))
    }
    for (k in 2:ncol(Rk)) {
      dup <- which(!is.na(Rk[, k]) & rowSums(Rk[, seq_len(k - 1L), drop = FALSE] == Rk[, k], na.rm = TRUE) > 0)
      if (length(dup)) {
        r <- dup[1]
        iclv_abort("data", sprintf(
          "row %d%s: alternative %s is named at two ranks (column %s and an earlier one); ties are not supported: end the ranking before tied positions (NA)",
          r, at(r), iclv_quote(alts[Rk[r, k]]), iclv_quote(cols[k])))
      }
    }
  }
  A <- .val_availability(data, ch$available, alts, Rk[, 1], row_ids)
  if (is.null(A)) A <- matrix(1L, n, length(alts))
  for (k in seq_len(ncol(Rk))[-1L]) {
    un <- which(!is.na(Rk[, k]) & A[cbind(seq_len(n), pmax(Rk[, k], 1L))] == 0L)
    if (length(un)) {
      r <- un[1]
      iclv_abort("data", sprintf("row %d%s: the alternative %s named in rank column %s is not available (column %s is 0)",
                                 r, at(r), iclv_quote(alts[Rk[r, k]]), iclv_quote(cols[k]),
                                 iclv_quote(ch$available[[alts[Rk[r, k]]]])))
    }
  }
  if (ch$type == "bestworst" && ncol(Rk) == 2L) {
    n_av <- rowSums(A != 0L)
    bad <- which(!is.na(Rk[, 2]) & n_av < 2L)
    if (length(bad)) {
      r <- bad[1]
      iclv_abort("data", sprintf("row %d%s: a worst choice needs at least two available alternatives", r, at(r)))
    }
  }
  list(R = Rk, A = A)
}

# The stage rows of every data row: list(row (data row of each stage row),
# stage (1-based stage: rank, or 1 = best and 2 = worst), y (1-based
# chosen alternative), A (stage rows x J availability), A_data (data rows x
# J availability), sign (+1, or -1 for a worst stage)). Stages with one
# alternative left are dropped.
.rank_stages <- function(data, ch, row_ids) {
  rd <- .rank_read(data, ch, row_ids)
  Rk <- rd$R
  A0 <- rd$A != 0L
  n <- nrow(Rk)
  J <- ncol(A0)
  K <- ncol(Rk)
  rows <- list(); stage <- list(); y <- list(); Av <- list()
  used <- matrix(FALSE, n, J)
  for (k in seq_len(K)) {
    have <- which(!is.na(Rk[, k]))
    av <- A0[have, , drop = FALSE] & !used[have, , drop = FALSE]
    keep <- rowSums(av) > 1L
    rows[[k]] <- have[keep]
    stage[[k]] <- rep(k, sum(keep))
    y[[k]] <- Rk[have[keep], k]
    Av[[k]] <- av[keep, , drop = FALSE]
    used[cbind(have, Rk[have, k])] <- TRUE
  }
  row <- unlist(rows)
  st <- unlist(stage)
  o <- order(row, st) # stage rows of a data row together, in stage order
  A <- do.call(rbind, Av)[o, , drop = FALSE]
  storage.mode(A) <- "integer"
  list(row = row[o], stage = st[o], y = unlist(y)[o], A = A, A_data = rd$A,
       sign = if (ch$type == "bestworst") ifelse(st[o] == 2L, -1, 1) else rep(1, length(o)))
}

# The compiled choice rows `keep` (1-based) of the C list cc: the other rows
# dropped, individuals unchanged (an individual without rows contributes
# 0 to the choice log-likelihood).
.compiled_choice_rows <- function(cc, keep) {
  J <- cc$n_alt
  ind <- rep(seq_len(cc$n_ind), diff(cc$row_ptr))
  out <- cc
  out$n_rows <- length(keep)
  out$row_ptr <- as.integer(c(0L, cumsum(tabulate(ind[keep], cc$n_ind))))
  out$y <- cc$y[keep]
  if (cc$n_avail > 0L) {
    out$avail <- as.integer(matrix(cc$avail, nrow = J)[, keep])
    out$n_avail <- as.integer(length(keep) * J)
  }
  if (cc$n_xcol > 0L) out$X <- as.double(matrix(cc$X, nrow = cc$n_xcol)[, keep])
  if ((cc$n_mult %||% 0L) > 0L) {
    out$mult_sign <- cc$mult_sign[keep]
    out$mult_par <- cc$mult_par[keep]
    out$n_mult <- length(keep)
  }
  out
}

# Simulated choice log-likelihoods of groups of choice rows at theta: for
# each group k (rows with group == k), sum_n log((1/R) sum_r prod_{t of
# group k} P_t(eta_nr)), by the CPU engine on the group's rows. Named
# "choice:<names[k]>", for the groups that have rows. Shared by the stages
# of ranked / best-worst models (.rank_stage_ll) and the choice parts
# (.parts_ll, R/parts.R).
.group_choice_ll <- function(comp, group, names, theta, spec, n_threads = 0L) {
  M <- comp$c$n_indic
  out <- vapply(seq_along(names), function(k) {
    keep <- which(group == k)
    if (!length(keep)) return(NA_real_)
    cc <- .compiled_choice_rows(comp$c, keep)
    eng <- .engine_new(cc, spec, "cpu", n_threads = n_threads)
    on.exit(.engine_release(eng))
    .engine_predict(eng, theta)$comp_ll[M + 1L]
  }, double(1))
  out <- stats::setNames(out, paste0("choice:", names))
  out[!is.na(out)] # groups without rows (e.g. the last rank of full rankings) have none
}

# Per-stage simulated choice log-likelihoods of a ranked or best-worst
# model at theta (.group_choice_ll over the stages), named "choice:<rank
# column>". NULL for other models.
.rank_stage_ll <- function(comp, theta, spec, n_threads = 0L) {
  if (is.null(comp$stage)) return(NULL)
  .group_choice_ll(comp, comp$stage, comp$stage_names, theta, spec, n_threads)
}

# The compiled choice rows that predict() returns: those of the first
# `n_data` data rows (pad rows of a scenario dropped), and of them the
# first stage only unless `stages`.
.choice_rows_keep <- function(comp, n_data, stages = FALSE) {
  keep <- which(comp$rows <= n_data)
  if (!stages && !is.null(comp$stage)) keep <- keep[comp$stage[keep] == 1L]
  keep
}

# Row names of predict()'s matrix for compiled rows `keep`: the data rows
# (`names`: the data's row names), with ":<stage>" for ranked and best-worst
# models when every stage is shown.
.choice_row_names <- function(comp, keep, names, stages = FALSE) {
  nm <- names[comp$rows[keep]]
  if (stages && !is.null(comp$stage)) nm <- paste0(nm, ":", comp$stage_names[comp$stage[keep]])
  nm
}

# Simulated ranked or best-worst choices: a data.frame of the rank columns
# (alternative names) from utilities V (n x J), availability A (n x J
# logical) and the worst-stage scale mu. Rankings: Gumbel errors added to V,
# alternatives sorted by utility among the available (the exploded logit's
# random-utility form); unavailable alternatives and ranks beyond the
# available ones are NA. Best-worst: the best maximises V + e1 and the worst
# maximises -mu V + e2 among the rest.
.rank_simulate <- function(ch, V, A, mu = 1) {
  n <- nrow(V)
  J <- ncol(V)
  alts <- ch$alternatives
  gumbel <- function() -log(-log(matrix(stats::runif(n * J), n, J)))
  U <- V + gumbel()
  U[!A] <- -Inf
  out <- list()
  if (ch$type == "bestworst") {
    b <- max.col(U, ties.method = "first")
    W <- -mu * V + gumbel()
    W[!A] <- -Inf
    W[cbind(seq_len(n), b)] <- -Inf
    w <- max.col(W, ties.method = "first")
    w[rowSums(A) < 2L] <- NA_integer_
    out[[ch$ranks[1]]] <- alts[b]
    out[[ch$ranks[2]]] <- alts[w]
  } else {
    ord <- t(apply(U, 1L, order, decreasing = TRUE))
    if (J == 1L) ord <- t(ord)
    n_av <- rowSums(A)
    for (k in seq_along(ch$ranks)) {
      v <- if (k <= J) alts[ord[, k]] else rep(NA_character_, n)
      v[n_av < k] <- NA_character_
      out[[ch$ranks[k]]] <- v
    }
  }
  as.data.frame(out, stringsAsFactors = FALSE, optional = TRUE)
}
