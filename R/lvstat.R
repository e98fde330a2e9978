# lavaan's `~~` and `~ 1` on latent variables (issue 15):
#
#   f ~~ f   frees the variance of f's structural error (by default 1);
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
#   alpha_<f>  (op "~1", role "intercept")  f's intercept; start 0.
# In the engine (src/iclv_model.h) both are structural terms of f: the
# intercept a covariate term on a column of ones (.lv_ones), the standard
# deviation a term whose source is f's own draw (ICLV_SRC_DRAW), which
# replaces the unit coefficient of that draw. Both engines, predict() and
# the memory plan see ordinary structural terms; iclv_simulate() draws
# f = alpha_f + sum gamma x + sigma_f e.
#
# Not supported (classed errors that say so): `f ~~ g` between different
# LVs (correlated structural errors), `~~` and `~ 1` on indicators (ordered
# indicators have no intercept or scale parameter; normal and binary ones
# already have a free intercept alpha_<y>, normal ones a free sigma_<y>),
# and modifiers on these statements (use `fixed =` / `start =` with the
# parameter names above).

# The name of the covariate column of ones that carries LV intercepts (not a
# valid R name, so no data column can have it).
.lv_ones <- "(one)"

# Splits the `~~` and `~ 1` statements from model syntax `text` (a
# character vector, or a list as .spec_as_syntax() leaves it). Returns
# list(text = the other statements, one per line (NULL when none and the
# input was NULL), var = lhs of `lhs ~~ rhs` statements (with rhs),
# icpt = lhs of `lhs ~ 1`).
.syntax_lv_statements <- function(text, what) {
  out <- list(text = text, var = data.frame(lhs = character(), rhs = character(), stringsAsFactors = FALSE),
              icpt = character())
  if (is.null(text) || !is.character(text) || anyNA(text)) return(out)
  st <- .syntax_statements(text, what)
  is_var <- grepl("~~", st, fixed = TRUE)
  is_icpt <- !is_var & grepl("^[^~]*[^=~]~[[:space:]]*1[[:space:]]*$", st)
  if (!any(is_var | is_icpt)) return(out)
  for (s in st[is_var]) {
    parts <- trimws(strsplit(s, "~~", fixed = TRUE)[[1]])
    if (length(parts) != 2L || !.is_name(parts[1]) || !.is_name(parts[2])) {
      if (length(parts) == 2L && grepl("*", parts[2], fixed = TRUE)) {
        iclv_abort("spec", sprintf(paste0(
          "%s statement %s: modifiers on '~~' are not supported; free the variance with '%s ~~ %s' and fix or ",
          "start its standard deviation with fixed = / start = (sigma_%s)"),
          what, iclv_quote(s), parts[1], parts[1], parts[1]))
      }
      iclv_abort("spec", sprintf("%s statement %s is not of the form 'lv ~~ lv'", what, iclv_quote(s)))
    }
    out$var <- rbind(out$var, data.frame(lhs = parts[1], rhs = parts[2], stringsAsFactors = FALSE))
  }
  out$icpt <- trimws(sub("~.*$", "", st[is_icpt]))
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
# indicators; returns list(var = LVs with a free variance, icpt = LVs with
# an intercept), in LV order.
.spec_lv_statements <- function(a, b, lvs, inds) {
  var <- rbind(a$var, b$var)
  icpt <- c(a$icpt, b$icpt)
  for (k in seq_len(nrow(var))) {
    l <- var$lhs[k]
    r <- var$rhs[k]
    s <- sprintf("'%s ~~ %s'", l, r)
    if (l %in% inds || r %in% inds) {
      iclv_abort("spec", sprintf(paste0(
        "%s: '~~' on indicators is not supported (ordered indicators have residual variance 1 and no scale ",
        "parameter; normal indicators already have a free standard deviation sigma_<indicator>)"), s))
    }
    if (!l %in% lvs || !r %in% lvs) {
      nm <- if (!l %in% lvs) l else r
      iclv_abort("spec", sprintf("%s: %s is not a latent variable of the model (latent variables: %s)", s,
                                 iclv_quote(nm), iclv_quote(lvs)))
    }
    if (l != r) {
      iclv_abort("spec", sprintf(paste0(
        "%s: covariances between the structural errors of two latent variables are not supported yet; ",
        "a latent variable may enter the other's structural equation ('%s ~ %s')"), s, r, l))
    }
  }
  for (l in icpt) {
    if (l %in% inds) {
      iclv_abort("spec", sprintf(paste0(
        "'%s ~ 1': intercepts of indicators are not supported in the syntax (ordered indicators have none, ",
        "their thresholds are free; normal and binary indicators already have a free intercept alpha_%s)"), l, l))
    }
    if (!l %in% lvs) {
      iclv_abort("spec", sprintf("'%s ~ 1': %s is not a latent variable of the model (latent variables: %s)", l,
                                 iclv_quote(l), iclv_quote(lvs)))
    }
  }
  dv <- var$lhs[duplicated(var$lhs)]
  if (length(dv)) iclv_abort("spec", sprintf("'%s ~~ %s' is given twice", dv[1], dv[1]))
  di <- icpt[duplicated(icpt)]
  if (length(di)) iclv_abort("spec", sprintf("'%s ~ 1' is given twice", di[1]))
  list(var = lvs[lvs %in% var$lhs], icpt = lvs[lvs %in% icpt])
}

# The extra structural terms of the LVs, in LV order and within an LV the
# intercept, then the standard deviation: data.frame(lhs, name, op, rhs,
# role, start).
.lv_extra_terms <- function(model) {
  rows <- list()
  for (l in model$lvs) {
    if (l %in% model$lv_icpt) rows[[length(rows) + 1L]] <- c(l, sprintf("alpha_%s", l), "~1", "", "intercept", "0")
    if (l %in% model$lv_var) rows[[length(rows) + 1L]] <- c(l, sprintf("sigma_%s", l), "~~", l, "sd", "1")
  }
  if (!length(rows)) {
    return(data.frame(lhs = character(), name = character(), op = character(), rhs = character(),
                      role = character(), start = numeric(), stringsAsFactors = FALSE))
  }
  m <- do.call(rbind, rows)
  data.frame(lhs = m[, 1], name = m[, 2], op = m[, 3], rhs = m[, 4], role = m[, 5],
             start = as.numeric(m[, 6]), stringsAsFactors = FALSE)
}

# Over-restriction: an LV whose variance is fixed (the default, or fixed
# by the user) while one of its loadings is also fixed at a non-zero value
# and another is free has its scale set twice. Warns
# (iclv_warning_identification) naming them. With every loading of the LV
# fixed (e.g. a fit that only evaluates known values) nothing is said.
# `pt`: the parameter table with the call's fixed values applied.
.lv_check_over_restriction <- function(model, pt) {
  for (l in model$lvs) {
    sd_name <- sprintf("sigma_%s", l)
    var_fixed <- !(l %in% model$lv_var) || !pt$free[match(sd_name, pt$name)]
    if (!var_fixed) next
    ld <- pt[pt$role == "loading" & pt$lhs == l & !pt$free & pt$start != 0, , drop = FALSE]
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
