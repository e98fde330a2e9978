# lavaan's `~~` and `~ 1` on latent variables (issue 15):
#
#   f ~~ f   frees the variance of f's structural error (by default 1);
#   f ~~ g   correlates the structural errors of f and g (by default
#            independent);
#   f ~ 1    gives f an intercept (by default its mean given the covariates
#            is 0).
#
# Either may stand in `measurement` or in `structural`, as in one lavaan
# model string. The defaults identify the model; freeing one needs another
# normalisation, e.g. the marker indicator `f =~ 1*y1 + y2 + y3` with
# `f ~~ f` (lavaan's default), or fixed thresholds with `f ~ 1`. Whether the
# result is identified is checked before estimating (R/identify.R).
#
# Parameters (partable block "structural"):
#   sigma_<f>  (op "~~", role "sd")         the standard deviation of f's
#              error, > 0 (the optimizer works on its log, R/transform.R);
#              lavaan reports the variance: sigma_f^2; start 1;
#   alpha_<f>  (op "~1", role "intercept")  f's intercept; start 0;
#   chol_<g>_<f> (op "~~", lhs f, rhs g, role "chol", f before g in the
#              model's LV order)  an element of the lower-triangular
#              Cholesky factor L of the errors' covariance: the errors are
#              zeta = L e with e independent standard normal, L's diagonal
#              sigma_<f> (1 unless `f ~~ f`), so that
#                cov(zeta_f, zeta_g) = sum_i L_fi L_gi  (= chol_g_f * sigma_f
#                                                        for two LVs),
#                var(zeta_g) = sigma_g^2 + sum_{i<g} L_gi^2;
#              start 0. Any real value: L e covers every covariance matrix.
#              A Cholesky factor with zeros does not give a covariance
#              matrix with zeros in the same places once three LVs are
#              involved, so the LVs joined by `~~` must form groups in
#              which every pair is joined (a classed error otherwise).
# In the engine (src/iclv_model.h) all are structural terms of an LV: the
# intercept a covariate term on a column of ones (.lv_ones), the standard
# deviation a term whose source is the LV's own draw (ICLV_SRC_DRAW),
# which replaces the unit coefficient of that draw, a Cholesky element a
# term on an earlier LV's draw. Both engines, predict() and the memory plan
# see ordinary structural terms; iclv_simulate() draws
# f = alpha_f + sum gamma x + (L e)_f.
#
# Modifiers on `~~` (lavaan's, which mean variances and covariances) are
# translated in .spec_lv_statements(). Not supported (classed errors that
# say so): `~~` between LVs whose groups are not complete (above), labels
# on `~~` between LVs, a covariance fixed at a non-zero value, and
# modifiers on an LV's `~ 1` (use `fixed =` / `start =` with alpha_<f>).
# `~~` and `~ 1` on indicators (their intercepts and scales) are parsed
# here and given meaning in R/indicator.R.

# The name of the covariate column of ones that carries LV intercepts (not a
# valid R name, so no data column can have it).
.lv_ones <- "(one)"

# Splits the `~~` and `~ 1` statements from model syntax `text` (a
# character vector, or a list as .spec_as_syntax() leaves it). Returns
# list(text = the other statements, one per line (NULL when none and the
# input was NULL), var = lhs of `lhs ~~ rhs` statements (with rhs),
# icpt = lhs of `lhs ~ 1`).
.syntax_lv_statements <- function(text, what) {
  out <- list(text = text, var = data.frame(lhs = character(), rhs = character(), label = character(),
                                            fixed = numeric(), start = numeric(), stringsAsFactors = FALSE),
              icpt = character(),
              icpt_mods = data.frame(lhs = character(), label = character(), fixed = numeric(),
                                     start = numeric(), stringsAsFactors = FALSE))
  if (is.null(text) || !is.character(text) || anyNA(text)) return(out)
  st <- .syntax_statements(text, what)
  is_var <- grepl("~~", st, fixed = TRUE)
  # `lhs ~ 1`, with lavaan's modifiers before the 1 (`y ~ 0*1`, `y ~ a*1`,
  # `y ~ start(0.5)*1`), allowed on indicators only (R/indicator.R)
  is_icpt <- !is_var & grepl("^[^~]*[^=~]~([^~+]*\\*)?[[:space:]]*1[[:space:]]*$", st)
  if (!any(is_var | is_icpt)) return(out)
  for (s in st[is_var]) {
    parts <- trimws(strsplit(s, "~~", fixed = TRUE)[[1]])
    if (length(parts) != 2L || !.is_name(parts[1]) || !nzchar(parts[2])) {
      iclv_abort("spec", sprintf("%s statement %s is not of the form 'lv ~~ lv'", what, iclv_quote(s)))
    }
    # lavaan's modifiers: a number fixes the variance (covariance), start()
    # starts it, NA frees it; a label would name a standard deviation or a
    # Cholesky element, not the variance the syntax means: refused
    # labels are checked in .spec_lv_statements: allowed on an indicator's
    # own `y ~~ y` (R/indicator.R), not between LVs
    tm <- .syntax_rhs_terms(parts[2], s, what)
    out$var <- rbind(out$var, data.frame(lhs = parts[1], rhs = tm$names, label = tm$mods$label,
                                         fixed = tm$mods$fixed, start = tm$mods$start, stringsAsFactors = FALSE))
  }
  out$icpt <- trimws(sub("~.*$", "", st[is_icpt]))
  for (k in seq_along(out$icpt)) {
    rhs <- trimws(sub("^[^~]*~", "", st[is_icpt][k]))
    f <- .syntax_split(rhs, "*")
    # the constant 1 as a placeholder name, so that the modifiers parse as a term's
    tm <- .syntax_rhs_terms(paste(c(f[-length(f)], ".one."), collapse = "*"), st[is_icpt][k], what)
    out$icpt_mods <- rbind(out$icpt_mods, data.frame(lhs = out$icpt[k], tm$mods[c("label", "fixed", "start")],
                                                     stringsAsFactors = FALSE))
  }
  bad <- out$icpt[!.is_name(out$icpt)]
  if (length(bad)) {
    iclv_abort("spec", sprintf("%s statement %s: left-hand side %s is not a name", what,
                               iclv_quote(st[is_icpt][!.is_name(out$icpt)][1]), iclv_quote(bad[1])))
  }
  rest <- st[!(is_var | is_icpt)]
  out$text <- if (length(rest)) paste(rest, collapse = "\n") else NULL
  out
}

# Checks the statements of both parts against the model's LVs and
# indicators; returns list(var = LVs with a variance parameter, icpt = LVs
# with an intercept), in LV order, cov = data.frame(lhs, rhs) of the
# correlated pairs, lhs before rhs in LV order, and values = list(fixed,
# start) of the modifiers, over parameter names:
#   f ~~ 1*f   the default (variance 1): no parameter;
#   f ~~ v*f   (v > 0) sigma_f fixed at sqrt(v);
#   f ~~ start(v)*f  sigma_f starts at sqrt(v) (v > 0);
#   f ~~ 0*g   the default (independent errors): no parameter;
#   f ~~ start(c)*g  chol_g_f starts at c (the covariance when sigma_f = 1,
#              as at the default start); another fixed covariance is refused
#              (it would fix a product of parameters).
.spec_lv_statements <- function(a, b, lvs, inds) {
  var <- rbind(a$var, b$var)
  icpt <- c(a$icpt, b$icpt)
  icpt_mods <- rbind(a$icpt_mods, b$icpt_mods)
  # the statements on indicators go to R/indicator.R
  on_ind <- var$lhs %in% inds | var$rhs %in% inds
  ind_var <- var[on_ind, , drop = FALSE]
  var <- var[!on_ind, , drop = FALSE]
  ind_icpt <- icpt_mods[icpt %in% inds, , drop = FALSE]
  icpt_mods <- icpt_mods[!icpt %in% inds, , drop = FALSE]
  icpt <- icpt[!icpt %in% inds]
  for (k in seq_len(nrow(var))) {
    l <- var$lhs[k]
    r <- var$rhs[k]
    s <- sprintf("'%s ~~ %s'", l, r)
    if (!is.na(var$label[k]) && l != r) {
      iclv_abort("spec", sprintf(paste0(
        "%s: labels on '~~' between two latent variables are not supported (iclv's parameters there are ",
        "Cholesky elements, chol_<lv>_<lv>, not covariances); labels on an LV's own variance are"), s))
    }
    if (!l %in% lvs || !r %in% lvs) {
      nm <- if (!l %in% lvs) l else r
      iclv_abort("spec", sprintf("%s: %s is not a latent variable of the model (latent variables: %s)", s,
                                 iclv_quote(nm), iclv_quote(lvs)))
    }
  }
  for (k in seq_along(icpt)) {
    l <- icpt[k]
    if (!l %in% lvs) {
      iclv_abort("spec", sprintf("'%s ~ 1': %s is not a latent variable of the model (latent variables: %s)", l,
                                 iclv_quote(l), iclv_quote(lvs)))
    }
  }
  own <- var$lhs == var$rhs
  dv <- var$lhs[own][duplicated(var$lhs[own])]
  if (length(dv)) iclv_abort("spec", sprintf("'%s ~~ %s' is given twice", dv[1], dv[1]))
  di <- icpt[duplicated(icpt)]
  if (length(di)) iclv_abort("spec", sprintf("'%s ~ 1' is given twice", di[1]))
  fixed <- start <- numeric()
  bad_v <- own & ((!is.na(var$fixed) & var$fixed <= 0) | (!is.na(var$start) & var$start <= 0))
  if (any(bad_v)) {
    k <- which(bad_v)[1]
    iclv_abort("spec", sprintf("'%s ~~ %s': a variance must be positive (got %s)", var$lhs[k], var$rhs[k],
                               format(if (is.na(var$fixed[k])) var$start[k] else var$fixed[k])))
  }
  bad_c <- !own & !is.na(var$fixed) & var$fixed != 0
  if (any(bad_c)) {
    k <- which(bad_c)[1]
    iclv_abort("spec", sprintf(paste0(
      "'%s ~~ %s': fixing a covariance at a non-zero value is not supported (iclv's parameter is a Cholesky ",
      "element: the covariance is chol * sigma); use 0 (independent, the default) or start()"),
      var$lhs[k], var$rhs[k]))
  }
  # the defaults written out: no parameter
  default <- (own & !is.na(var$fixed) & var$fixed == 1) | (!own & !is.na(var$fixed) & var$fixed == 0)
  # labels: `f ~~ v*f` names f's standard deviation v (equal labels, equal
  # variances), `f ~ a*1` its intercept a (op, lhs, rhs, label as the
  # syntax's labels; .lv_extra_terms applies them)
  lab <- rbind(
    data.frame(op = rep("~~", sum(own & !is.na(var$label))), lhs = var$lhs[own & !is.na(var$label)],
               rhs = var$lhs[own & !is.na(var$label)], label = var$label[own & !is.na(var$label)],
               stringsAsFactors = FALSE),
    data.frame(op = rep("~1", sum(!is.na(icpt_mods$label))), lhs = icpt[!is.na(icpt_mods$label)],
               rhs = rep("", sum(!is.na(icpt_mods$label))), label = icpt_mods$label[!is.na(icpt_mods$label)],
               stringsAsFactors = FALSE))
  lab_of <- function(op, l, default) {
    k <- match(paste(op, l), paste(lab$op, lab$lhs))
    if (is.na(k)) default else lab$label[k]
  }
  for (k in which(own & !default)) {
    nm <- lab_of("~~", var$lhs[k], sprintf("sigma_%s", var$lhs[k]))
    if (!is.na(var$fixed[k])) fixed[nm] <- sqrt(var$fixed[k])
    if (!is.na(var$start[k])) start[nm] <- sqrt(var$start[k])
  }
  cov <- .lv_cov_pairs(var[!own & !default, , drop = FALSE], lvs)
  for (k in which(!own & !default & !is.na(var$start))) {
    a <- match(c(var$lhs[k], var$rhs[k]), lvs)
    start[sprintf("chol_%s_%s", lvs[max(a)], lvs[min(a)])] <- var$start[k]
  }
  # `f ~ v*1` fixes the intercept alpha_f at v (`f ~ 0*1`: the default, no
  # parameter), `f ~ start(v)*1` starts it at v
  keep <- rep(TRUE, length(icpt))
  for (k in seq_along(icpt)) {
    nm <- lab_of("~1", icpt[k], sprintf("alpha_%s", icpt[k]))
    if (!is.na(icpt_mods$fixed[k]) && icpt_mods$fixed[k] == 0) keep[k] <- FALSE
    else if (!is.na(icpt_mods$fixed[k])) fixed[nm] <- icpt_mods$fixed[k]
    if (!is.na(icpt_mods$start[k])) start[nm] <- icpt_mods$start[k]
  }
  icpt <- icpt[keep]
  lab <- lab[(lab$op == "~~" & lab$lhs %in% var$lhs[own & !default]) | (lab$op == "~1" & lab$lhs %in% icpt), ,
             drop = FALSE]
  list(var = lvs[lvs %in% var$lhs[own & !default]], icpt = lvs[lvs %in% icpt], cov = cov,
       labels = if (nrow(lab)) lab,
       values = list(fixed = if (length(fixed)) fixed, start = if (length(start)) start),
       ind_var = ind_var, ind_icpt = ind_icpt)
}

# The correlated pairs (lhs before rhs in `lvs`), checked: no pair twice,
# and every group of LVs joined by `~~` complete (see the header).
.lv_cov_pairs <- function(pairs, lvs) {
  out <- data.frame(lhs = character(), rhs = character(), stringsAsFactors = FALSE)
  if (!nrow(pairs)) return(out)
  pairs <- pairs[c("lhs", "rhs")]
  a <- match(pairs$lhs, lvs)
  b <- match(pairs$rhs, lvs)
  out <- data.frame(lhs = lvs[pmin(a, b)], rhs = lvs[pmax(a, b)], stringsAsFactors = FALSE)
  key <- paste(out$lhs, out$rhs)
  if (anyDuplicated(key)) {
    k <- which(duplicated(key))[1]
    iclv_abort("spec", sprintf("the covariance of %s and %s is given twice", iclv_quote(out$lhs[k]), iclv_quote(out$rhs[k])))
  }
  # groups: connected components of the pairs
  grp <- stats::setNames(seq_along(lvs), lvs)
  for (k in seq_len(nrow(out))) {
    g1 <- grp[[out$lhs[k]]]
    g2 <- grp[[out$rhs[k]]]
    grp[grp == g2] <- g1
  }
  for (g in unique(grp)) {
    mem <- lvs[grp == g]
    if (length(mem) < 3L) next
    need <- utils::combn(mem, 2L)
    miss <- which(!paste(need[1, ], need[2, ]) %in% key)
    if (length(miss)) {
      iclv_abort("spec", sprintf(paste0(
        "the structural errors of %s are joined by '~~' but '%s ~~ %s' is missing: iclv correlates LVs ",
        "through a Cholesky factor, whose zeros are not zero covariances once three LVs are involved; ",
        "correlate every pair of the group, or none"), iclv_quote(mem), need[1, miss[1]], need[2, miss[1]]))
    }
  }
  out[order(match(out$rhs, lvs), match(out$lhs, lvs)), , drop = FALSE]
}

# The extra structural terms of the LVs, in LV order and within an LV the
# intercept, the standard deviation, then the Cholesky elements on earlier
# LVs' draws: data.frame(eq (the LV whose equation holds the term), lhs,
# op, rhs (the partable's columns), name, role, start, draw (the LV whose
# draw is the term's source, NA for an intercept)).
.lv_extra_terms <- function(model) {
  rows <- list()
  cv <- model$lv_cov
  # an LV's own `~~` and `~ 1` may carry a label (R/lvstat.R): its name
  lb <- model$labels
  named <- function(op, l, default) {
    k <- if (is.null(lb)) NA else match(paste(op, l, if (op == "~~") l else ""), paste(lb$op, lb$lhs, lb$rhs))
    if (is.na(k)) default else lb$label[k]
  }
  for (l in model$lvs) {
    if (l %in% model$lv_icpt) rows[[length(rows) + 1L]] <- c(l, l, "~1", "", named("~1", l, sprintf("alpha_%s", l)), "intercept", "0", NA)
    if (l %in% model$lv_var) rows[[length(rows) + 1L]] <- c(l, l, "~~", l, named("~~", l, sprintf("sigma_%s", l)), "sd", "1", l)
    for (f in cv$lhs[cv$rhs == l]) {
      rows[[length(rows) + 1L]] <- c(l, f, "~~", l, sprintf("chol_%s_%s", l, f), "chol", "0", f)
    }
  }
  if (!length(rows)) {
    return(data.frame(eq = character(), lhs = character(), op = character(), rhs = character(),
                      name = character(), role = character(), start = numeric(), draw = character(), labelled = logical(),
                      stringsAsFactors = FALSE))
  }
  m <- do.call(rbind, rows)
  out <- data.frame(eq = m[, 1], lhs = m[, 2], op = m[, 3], rhs = m[, 4], name = m[, 5], role = m[, 6],
                    start = as.numeric(m[, 7]), draw = m[, 8], stringsAsFactors = FALSE)
  out$labelled <- out$role != "chol" & !(out$name %in% c(sprintf("alpha_%s", out$lhs), sprintf("sigma_%s", out$lhs)))
  out
}

# Over-restriction: an LV whose variance is fixed (the default, or fixed
# by the user) while one of its loadings is also fixed at a non-zero value
# and another is free has its scale set twice. Warns
# (iclv_warning_identification) naming them. With every loading of the LV
# fixed (e.g. a fit that only evaluates known values) nothing is said.
# `pt`: the parameter table with the call's fixed values applied.
.lv_check_over_restriction <- function(model, pt) {
  lx <- .lv_extra_terms(model)
  for (l in model$lvs) {
    sd_name <- lx$name[lx$eq == l & lx$role == "sd"][1]
    var_fixed <- !(l %in% model$lv_var) || !pt$free[match(sd_name, pt$name)]
    if (!var_fixed) next
    # (a loading defined by a constraint, R/constraints.R, is not fixed)
    ld <- pt[pt$role == "loading" & pt$lhs == l & !pt$free & !.pt_defined(pt) & pt$start != 0, , drop = FALSE]
    if (!nrow(ld) || !any(pt$free[pt$role == "loading" & pt$lhs == l])) next
    iclv_warn("identification", sprintf(paste0(
      "latent variable %s has its variance fixed (%s) and its loading %s fixed at %s: its scale is set twice ",
      "(over-restricted), which constrains the model beyond the normalisation; free one of them ",
      "(e.g. '%s ~~ %s' with the marker loading fixed at 1)"),
      iclv_quote(l), if (l %in% model$lv_var) "by fixed =" else "at 1, the default",
      iclv_quote(ld$name[1]), format(ld$start[1]), l, l))
  }
  invisible()
}
