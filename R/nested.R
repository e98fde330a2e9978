# Nested logit (iclv_choice(type = "nl", nests = )) on the R side: the
# choice probabilities that iclv_simulate() draws from. The likelihood, its
# derivatives and predict()'s probabilities are the engines' (src/iclv_core.h,
# iclv_nl_link and iclv_choice_probs); this is the same model written with
# R's vector arithmetic, each nest's log-sum-exp shifted by its largest
# V / lambda.

# Nested logit probabilities (n x J) of choice part `ch` from utilities V
# (n x J), availability A (n x J logical) and lam (one lambda per nest of
# ch$nests, 1 for the nests of one alternative). A nest without an
# available alternative drops out of its row.
.nl_probs <- function(ch, V, A, lam) {
  n <- nrow(V)
  nests <- ch$nests
  cond <- matrix(0, n, ncol(V))
  W <- matrix(-Inf, n, length(nests))
  nest_of <- integer(ncol(V))
  for (a in seq_along(nests)) {
    k <- match(nests[[a]], ch$alternatives)
    nest_of[k] <- a
    Z <- V[, k, drop = FALSE] / lam[a]
    Z[!A[, k, drop = FALSE]] <- -Inf
    mx <- apply(Z, 1L, max)
    ok <- is.finite(mx)
    E <- exp(Z - ifelse(ok, mx, 0))
    s <- rowSums(E)
    cond[, k] <- E / ifelse(ok, s, 1)
    W[ok, a] <- lam[a] * (mx[ok] + log(s[ok]))
  }
  Q <- exp(W - apply(W, 1L, max))
  Q <- Q / rowSums(Q)
  cond * Q[, nest_of, drop = FALSE]
}

# One draw per row from the probabilities P (n x J; a row sums to 1 up to
# rounding, unavailable alternatives 0): 1-based alternatives.
.sample_rows <- function(P) {
  cp <- t(apply(P, 1L, cumsum))
  if (ncol(P) == 1L) cp <- t(cp)
  u <- stats::runif(nrow(P)) * cp[, ncol(P)]
  1L + as.integer(rowSums(cp < u))
}
