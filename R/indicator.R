# lavaan's `~ 1` and `~~` on indicators (issue 15): intercepts and scales.
#
# An ordered indicator y (probit or logit) has the latent response
#   y* = alpha_y + s + sigma_y e,   s = sum of loadings * LVs,
# e standard normal or logistic, and y = c when tau_{c-1} < y* <= tau_c, so
#   P(y = c) = F((tau_c - alpha_y - s) / sigma_y) - F((tau_{c-1} - alpha_y - s) / sigma_y)
# (Biogeme's Optima models: intercept, loading and scale per Likert item,
# thresholds shared by all items, one item normalised). By default alpha_y
# = 0 and sigma_y = 1 (no parameters: the thresholds are free); the syntax
# frees them:
#   y ~ 1      alpha_<y>  (op "~1", role "intercept", start 0);
#   y ~~ y     sigma_<y>  (op "~~", role "sd", start 1, > 0: the optimizer
#              works on its log, R/transform.R), the standard deviation of
#              the latent response (for ordered logit: of its standard
#              logistic error's multiplier, so var(y* | s) = sigma^2 pi^2/3).
# The names are those of a normal indicator's intercept and standard
# deviation, which always exist (free); for normal and binary indicators
# `y ~ 1` and `y ~~ y` only carry modifiers. Binary indicators have no
# scale: `y ~~ y` on one is refused (its scale is not identified: the
# error's variance is what fixes the scale of alpha and the loadings).
#
# Modifiers, as lavaan's (`~~` means a variance):
#   y ~ 0*1         ordered: the default (no parameter); normal/binary: the
#                   intercept fixed at 0; y ~ c*1 fixes alpha_y at c;
#   y ~ start(v)*1  starts alpha_y at v; y ~ NA*1 is y ~ 1;
#   y ~~ 1*y        ordered: the default (no parameter); normal: sigma_y
#                   fixed at 1; y ~~ v*y (v > 0) fixes sigma_y at sqrt(v);
#   y ~~ start(v)*y starts sigma_y at sqrt(v);
#   y ~ a*1, y ~~ b*y  labels: the parameter is called a (b), and indicators
#                   with the same label share it (equal intercepts, equal
#                   scales; a label names the standard deviation, so equal
#                   labels are equal variances too). A label of `~~` labels
#                   only standard deviations (positivity), and an
#                   intercept's label no threshold.
# In the engine (src/iclv_model.h) the ordered indicator's ind_icpt and
# ind_sd point at the parameters (-1 when absent), as for normal
# indicators: the per-pair atom (src/iclv_core.h, shared with the CUDA
# kernels) has their exact derivatives; the fast CPU kernels
# (src/engine_fast.c) take such observations through the reference link
# draw by draw and form their scores from the usual weighted sums.
#
# Identification: freeing an intercept of an indicator whose thresholds are
# all free (and not shared with an indicator without intercept), or a scale
# together with every loading and threshold of the indicator, leaves a flat
# direction; iclv() refuses such a model before estimating, naming the
# parameters (R/identify.R).

# The statements on indicators that .spec_lv_statements() set aside:
# var = data.frame(lhs, rhs, label, fixed, start) of `y ~~ ...`, icpt =
# data.frame(lhs, label, fixed, start) of `y ~ ...*1`. Returns list(icpt =
# ordered indicators with an intercept parameter, scale = ordered indicators
# with a scale parameter (both in indicator order), labels = data.frame(op,
# lhs, rhs, label) of the labelled statements or NULL, values =
# data.frame(op, lhs, fixed, start) of the values the modifiers give, on the
# parameter's scale (a standard deviation for `~~`)).
.spec_indicator_statements <- function(var, icpt, inds, ind_type) {
  for (k in seq_len(nrow(var))) {
    l <- var$lhs[k]
    r <- var$rhs[k]
    s <- sprintf("'%s ~~ %s'", l, r)
    if (l != r) {
      iclv_abort("spec", sprintf(paste0(
        "%s: covariances of indicators (with another indicator or a latent variable) are not supported; ",
        "'y ~~ y' gives an indicator's variance (scale)"), s))
    }
    if (.is_binary(ind_type[[l]])) {
      iclv_abort("spec", sprintf(paste0(
        "%s: a binary indicator has no scale parameter: it is not identified (the variance of its error, 1 for ",
        "probit, pi^2/3 for logit, sets the scale of its intercept and loadings)"), s))
    }
    v <- c(var$fixed[k], var$start[k])
    if (any(!is.na(v) & v <= 0)) {
      iclv_abort("spec", sprintf("%s: a variance must be positive (got %s)", s, format(v[!is.na(v)][1])))
    }
  }
  dv <- var$lhs[duplicated(var$lhs)]
  if (length(dv)) iclv_abort("spec", sprintf("'%s ~~ %s' is given twice", dv[1], dv[1]))
  di <- icpt$lhs[duplicated(icpt$lhs)]
  if (length(di)) iclv_abort("spec", sprintf("'%s ~ 1' is given twice", di[1]))
  ord <- .is_ordered(ind_type[var$lhs])
  # an ordered indicator's defaults written out: no parameter
  var_param <- !ord | is.na(var$fixed) | var$fixed != 1
  ordi <- .is_ordered(ind_type[icpt$lhs])
  icpt_param <- !ordi | is.na(icpt$fixed) | icpt$fixed != 0
  lab <- rbind(
    data.frame(op = rep("~1", nrow(icpt)), lhs = icpt$lhs, rhs = rep("", nrow(icpt)), label = icpt$label,
               stringsAsFactors = FALSE),
    data.frame(op = rep("~~", nrow(var)), lhs = var$lhs, rhs = var$rhs, label = var$label, stringsAsFactors = FALSE))
  lab <- lab[!is.na(lab$label), , drop = FALSE]
  rownames(lab) <- NULL
  values <- rbind(
    data.frame(op = rep("~1", sum(icpt_param)), lhs = icpt$lhs[icpt_param], fixed = icpt$fixed[icpt_param],
               start = icpt$start[icpt_param], stringsAsFactors = FALSE),
    data.frame(op = rep("~~", sum(var_param)), lhs = var$lhs[var_param], fixed = sqrt(var$fixed[var_param]),
               start = sqrt(var$start[var_param]), stringsAsFactors = FALSE))
  values <- values[!is.na(values$fixed) | !is.na(values$start), , drop = FALSE]
  list(icpt = inds[inds %in% icpt$lhs[ordi & icpt_param]], scale = inds[inds %in% var$lhs[ord & var_param]],
       labels = if (nrow(lab)) lab, values = values)
}

# Labels of indicator intercepts and scales against the other labels
# (`labels`, the model's, op "=~", "~", "|") and names (`taken`: LVs,
# indicators, covariates): a scale's label labels only scales (it must stay
# positive), an intercept's label no threshold (thresholds are shared as
# whole sets, .spec_threshold_labels).
.spec_indicator_labels <- function(ilab, labels, taken) {
  if (is.null(ilab)) return(invisible())
  bad <- ilab$label[ilab$label %in% taken]
  if (length(bad)) {
    iclv_abort("spec", sprintf("the label %s is also the name of a latent variable, indicator or covariate; choose another",
                               iclv_quote(bad[1])))
  }
  all <- rbind(labels[c("op", "lhs", "rhs", "label")], ilab)
  sc <- unique(all$label[all$op == "~~"])
  mixed <- intersect(sc, all$label[all$op != "~~"])
  if (length(mixed)) {
    iclv_abort("spec", sprintf(paste0(
      "the label %s is used for an indicator's scale ('~~') and for another kind of parameter: a scale is a ",
      "standard deviation (> 0) and can be shared only with other scales"), iclv_quote(mixed[1])))
  }
  thr <- intersect(all$label[all$op == "~1"], all$label[all$op == "|"])
  if (length(thr)) {
    iclv_abort("spec", sprintf("the label %s is used for an indicator's intercept and for a threshold", iclv_quote(thr[1])))
  }
  invisible()
}

# The intercept and standard deviation (scale) parameter of each indicator:
# data.frame(ind, icpt, sd (the parameter names, NA where the indicator has
# none), icpt_labelled, sd_labelled), in indicator order. The one place
# these names are made: alpha_<ind> and sigma_<ind>, or the syntax's label.
.indicator_names <- function(model) {
  inds <- model$indicators
  ty <- model$ind_type[inds]
  has_i <- !.is_ordered(ty) | inds %in% model$ord_icpt
  has_s <- ty == "normal" | inds %in% model$ord_scale
  ic <- .apply_labels(data.frame(lhs = inds[has_i], rhs = rep("", sum(has_i)), name = sprintf("alpha_%s", inds[has_i]),
                                 stringsAsFactors = FALSE), model$labels, "~1")
  sd <- .apply_labels(data.frame(lhs = inds[has_s], rhs = inds[has_s], name = sprintf("sigma_%s", inds[has_s]),
                                 stringsAsFactors = FALSE), model$labels, "~~")
  out <- data.frame(ind = inds, icpt = NA_character_, sd = NA_character_, icpt_labelled = FALSE,
                    sd_labelled = FALSE, stringsAsFactors = FALSE)
  out$icpt[has_i] <- ic$name
  out$icpt_labelled[has_i] <- ic$labelled
  out$sd[has_s] <- sd$name
  out$sd_labelled[has_s] <- sd$labelled
  out
}

# The modifiers' values (.spec_indicator_statements()$values) as named
# vectors over parameter names: list(fixed, start); the terms of one label
# must agree.
.spec_indicator_values <- function(model, values) {
  out <- list(fixed = NULL, start = NULL)
  if (is.null(values) || !nrow(values)) return(out)
  nm <- .indicator_names(model)
  name <- ifelse(values$op == "~1", nm$icpt[match(values$lhs, nm$ind)], nm$sd[match(values$lhs, nm$ind)])
  out <- .values_by_name(values, name)
  out
}
