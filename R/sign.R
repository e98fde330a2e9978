# The sign of the latent variables (issue 15).
#
# The likelihood does not identify the sign of an LV: eta_k -> -eta_k with
# every parameter that multiplies eta_k negated gives the same model (with
# the draws of dimension k negated: the same simulated likelihood with the
# draws -e, which the design does not contain). So two runs from different
# starts can report mirror images. iclv fixes the sign after estimation: an
# LV whose first loading (its first indicator in the measurement syntax) is
# estimated negative is flipped, and the estimation goes on from the
# flipped point (with the user's draws the flipped point is near, not at, a
# maximum). An LV whose sign the user has set is left alone: one with a
# parameter that the flip would negate fixed at a non-zero value (e.g.
# `f =~ 1*y1`, or `-1*y1`).
#
# The flip of a set S of LVs multiplies each term by a sign: a loading on
# LV k or a utility term with LV k by s_k, a structural term of the
# equation of LV j with source LV k by s_j s_k (a covariate source: s_j),
# with s_k = -1 for k in S and 1 otherwise. A parameter shared by several
# terms (labels, or a choice coefficient used in several utilities) must
# get one sign from all of them; when it does not, the set cannot be
# flipped (.lv_sign_flip says why).

# .lv_sign_terms(cc): every term that multiplies an LV, from the compiled
# arrays (src/iclv_model.h): par (0-based parameter), lv1, lv2 (0-based LVs
# whose signs multiply the term; lv2 = -1 when one).
# A free standard deviation (`f ~~ f`: a term whose source is f's own draw,
# type 2) is left out: the flip negates the draw with f (that is what the
# mirror image is), so sigma_f keeps its sign; a Cholesky element (`f ~~ g`,
# the draw of another LV) is multiplied by both signs, as an LV source; an
# intercept (`f ~ 1`, a covariate term) is negated with f.
.lv_sign_terms <- function(cc) {
  K <- cc$n_lv
  n_st <- diff(cc$st_ptr)
  st_eq <- rep(seq_len(K) - 1L, n_st)
  keep <- !(cc$st_src_type == 2L & cc$st_src == st_eq)
  st_lhs <- st_eq[keep]
  st_lv <- ifelse(cc$st_src_type == 0L, -1L, cc$st_src)[keep]
  ut <- if (length(cc$ut_lv)) which(cc$ut_lv >= 0L & cc$ut_lv < K) else integer()
  data.frame(par = c(cc$ind_load_par, cc$st_par[keep], cc$ut_par[ut]),
             lv1 = c(cc$ind_load_lv, st_lhs, cc$ut_lv[ut]),
             lv2 = c(rep(-1L, length(cc$ind_load_par)), st_lv, rep(-1L, length(ut))))
}

# The parameter (1-based, in `pt`) of each LV's first loading: the loading
# of the first indicator of its `lv =~ ...` statement.
.lv_first_loading <- function(model, pt) {
  ln <- .loading_names(model)
  vapply(model$lvs, function(l) match(ln$name[ln$lhs == l & ln$rhs == model$measurement[[l]][1]], pt$name), 1L)
}

# .lv_sign_flip(cc, theta, free, first): which LVs to flip at theta
# (natural parameters, length n_par; free: logical, length n_par; first:
# .lv_first_loading(), 1-based) and the flipped
# theta. Returns list(flip = 0-based LVs flipped (integer(0): none),
# theta = the flipped parameters, sign = per parameter +1/-1, user = 0-based
# LVs whose sign the user set, note = why a wanted flip was not made, or
# NULL).
.lv_sign_flip <- function(cc, theta, free, first) {
  K <- cc$n_lv
  tm <- .lv_sign_terms(cc)
  sgn_of <- function(S) {
    s <- rep(1, K)
    s[S + 1L] <- -1
    s[tm$lv1 + 1L] * ifelse(tm$lv2 >= 0L, s[pmax(tm$lv2, 0L) + 1L], 1)
  }
  # the user's: a flip of k alone would negate a fixed non-zero parameter
  fixed_nz <- !free & theta != 0
  user <- which(vapply(seq_len(K) - 1L, function(k) any(fixed_nz[tm$par[sgn_of(k) < 0] + 1L]), NA)) - 1L
  want <- setdiff(which(theta[first] < 0) - 1L, user)
  out <- list(flip = integer(), theta = theta, sign = rep(1, length(theta)), user = user, note = NULL)
  if (!length(want)) return(out)
  ts <- sgn_of(want)
  bad <- unique(tm$par[tm$par %in% tm$par[ts > 0] & tm$par %in% tm$par[ts < 0]])
  if (length(bad)) {
    nm <- names(theta)[bad[1] + 1L]
    out$note <- sprintf("parameter %s is shared by terms whose signs the flip would change differently",
                        if (is.null(nm)) as.character(bad[1] + 1L) else iclv_quote(nm))
    return(out)
  }
  sign <- rep(1, length(theta))
  sign[unique(tm$par[ts < 0]) + 1L] <- -1
  out$flip <- as.integer(want)
  out$sign <- sign
  out$theta <- theta * sign
  out
}

# .lv_sign_normalise(prob, opt, rerun): the sign normalisation of iclv().
# After a converged optimization (opt$code 0; an interrupted or unconverged
# run is returned as it is), flips the LVs whose first loading is negative
# (.lv_sign_flip) and, when there are any, runs the optimizer again from
# the flipped point: rerun(theta) -> an optimizer result (the flipped point
# is an optimum of the likelihood with those LVs' draws negated, so near,
# not at, the optimum with the design's draws). The two runs are reported
# as one: evaluations and seconds summed, the histories one after the other
# with the flip counted as one iteration. Adds `lv_sign` = list(flipped = names of the flipped LVs,
# user = names of the LVs whose sign the user set, note = why a wanted flip
# was not made (then an iclv_warning_sign), or NULL).
.lv_sign_normalise <- function(prob, opt, rerun) {
  lvs <- prob$comp$lvs
  first <- prob$first_loading
  opt$lv_sign <- list(flipped = character(), user = character(), note = NULL)
  if (!length(first) || !length(prob$free) || !identical(opt$code, 0L)) return(opt)
  defs <- prob$comp$definitions
  # a defined parameter (`:=` / `==`) is not the user's sign: whether the
  # flip keeps its definition is checked below
  fl <- .lv_sign_flip(prob$comp$c, opt$theta, prob$partable$free | .pt_defined(prob$partable), first)
  if (length(defs) && length(fl$flip) && is.null(fl$note)) {
    # the flipped point must satisfy every definition that the likelihood
    # uses (the parameters of the flipped terms); else no flip
    refill <- .con_fill(fl$theta, defs)
    used <- unique(.lv_sign_terms(prob$comp$c)$par) + 1L
    d <- intersect(used, match(names(defs), names(fl$theta)))
    off <- d[!(abs(refill[d] - fl$theta[d]) <= 1e-10 * pmax(1, abs(fl$theta[d])))]
    if (length(off)) {
      fl$note <- sprintf("parameter %s is defined by a constraint that the flip would break",
                         iclv_quote(names(fl$theta)[off[1]]))
    }
  }
  user <- lvs[fl$user[fl$user < length(first)] + 1L]
  if (!is.null(fl$note)) {
    opt$lv_sign <- list(flipped = character(), user = user, note = fl$note)
    iclv_warn("sign", sprintf(paste0("the sign of LV %s was not normalised (its first loading is negative): %s; ",
                                     "fix the sign with a fixed loading, e.g. '1*indicator'"),
                              iclv_quote(lvs[setdiff(which(opt$theta[first] < 0), fl$user + 1L)]),
                              fl$note))
    return(opt)
  }
  if (!length(fl$flip)) {
    opt$lv_sign$user <- user
    return(opt)
  }
  opt2 <- rerun(stats::setNames(fl$theta, names(opt$theta)))
  h1 <- opt$history
  h2 <- opt2$history
  # the flip is one step: the second run's start is the iteration after the first run's end
  if (nrow(h2)) h2$iteration <- h2$iteration + if (nrow(h1)) max(h1$iteration) + 1L else 0L
  opt2$history <- rbind(h1, h2)
  opt2$iterations <- opt$iterations + 1L + opt2$iterations
  opt2$evaluations <- (opt$evaluations %||% 0L) + (opt2$evaluations %||% 0L)
  opt2$seconds <- (opt$seconds %||% 0) + (opt2$seconds %||% 0)
  opt2$lv_sign <- list(flipped = lvs[fl$flip + 1L], user = user, note = NULL)
  opt2
}
