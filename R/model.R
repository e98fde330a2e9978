#' Specify an ICLV (hybrid choice) model
#'
#' Builds and checks the specification of an integrated choice and latent
#' variable model: a measurement model (latent variables measured by
#' indicators), an optional structural model (latent variables explained by
#' covariates and by other latent variables) and an optional choice model
#' ([iclv_choice()]). The result holds the parameter table that [iclv()]
#' estimates.
#'
#' @section Normalisation and identification:
#' Every latent variable (LV) `eta_k` has a structural equation
#' \deqn{\eta_k = \sum_s \gamma_{k,s} x_s + \sum_l \gamma_{k,l} \eta_l + \epsilon_k,
#'   \quad \epsilon_k \sim N(0, 1),}
#' with no intercept: the mean of the structural error is 0 and its variance
#' is 1 (an LV without a structural equation is standard normal). These two
#' restrictions fix the location and scale of each LV, so that
#' \itemize{
#'   \item every loading `zeta` is free (none is fixed to 1);
#'   \item every threshold of an ordered indicator is free and ordered
#'     indicators have no intercept and scale 1 (unless freed by `y ~ 1`,
#'     `y ~~ y`, see below);
#'   \item normal indicators have a free intercept `alpha` and a free standard
#'     deviation `sigma`; binary indicators have a free intercept `alpha` (their
#'     error has variance 1 for probit, `pi^2/3` for logit).
#' }
#' The sign of each LV is fixed only by the starting values (loadings start
#' positive); `fixed` fixes any parameter at a value.
#'
#' @section Freeing the defaults: `~~` and `~ 1` (lavaan's syntax):
#' These statements, in `measurement` or in `structural`, free the defaults
#' of an LV `f`:
#' \itemize{
#'   \item `f ~~ f` frees the variance of its structural error: the error
#'     becomes `sigma_f * epsilon_f` with a free standard deviation
#'     `sigma_f > 0` (partable op `"~~"`, role `"sd"`, start 1; lavaan
#'     reports the variance `sigma_f^2`). The scale must then be set
#'     another way, usually lavaan's marker indicator: `f =~ 1*y1 + y2 + y3`;
#'   \item `f ~ 1` gives it an intercept `alpha_f` (op `"~1"`, role
#'     `"intercept"`, start 0); its location must then be set another way,
#'     e.g. by fixing thresholds of one indicator with `fixed =`;
#'   \item `f ~~ g` correlates the structural errors of two LVs. iclv writes
#'     the errors as `L e`, `e` independent standard normal and `L` lower
#'     triangular in the order of the LVs (its diagonal: `sigma_f`, 1 unless
#'     freed); `f ~~ g` (f before g) frees the element `chol_g_f` (op `"~~"`,
#'     role `"chol"`, start 0, any sign), so that the covariance is
#'     `chol_g_f * sigma_f` and the variance of g's error
#'     `sigma_g^2 + chol_g_f^2` (with the default unit variances, the scale
#'     of g's error is no longer 1: its loadings are those of lavaan's
#'     standardised LV times that standard deviation, and the maximum
#'     log-likelihood is the same). With three or more LVs every pair of a
#'     group joined by `~~` must be joined (zeros in `L` are not zero
#'     covariances); otherwise a classed error says which pair is missing;
#'   \item on an indicator `y`, `y ~ 1` and `y ~~ y` free the intercept and
#'     the scale of an ordered indicator: its latent response becomes
#'     `alpha_y + zeta * lv + sigma_y * e`, so that
#'     `P(y <= c) = F((tau_c - alpha_y - zeta * lv) / sigma_y)` (Biogeme's
#'     Optima models: thresholds shared by all items through labels, one item
#'     normalised). `alpha_y` (op `"~1"`, role `"intercept"`, start 0) and
#'     `sigma_y > 0` (op `"~~"`, role `"sd"`, start 1); `y ~ 0*1` and
#'     `y ~~ 1*y` are the defaults (no parameter). Normal indicators always
#'     have a free intercept `alpha_y` and standard deviation `sigma_y`,
#'     binary ones a free intercept: the statements only carry modifiers
#'     there (`y ~ 0*1` fixes `alpha_y` at 0, `y ~~ 2*y` fixes `sigma_y` at
#'     `sqrt(2)`), and `y ~~ y` on a binary indicator is an error (its scale
#'     is not identified). Labels share intercepts (`y1 ~ a*1`, `y2 ~ a*1`)
#'     or scales (`y1 ~~ s*y1`, `y2 ~~ s*y2`; a scale's label labels only
#'     scales).
#' }
#' [iclv()] refuses a model that these leave unidentified (every loading
#' and the variance free; an intercept with every threshold free) before
#' estimating, naming the parameters involved (an indicator's intercept
#' with all its thresholds free is refused likewise; see `check_identification`
#' in [iclv_control()]), and warns (class `iclv_warning_identification`) when
#' an LV's scale is set twice: a loading fixed at a non-zero value while the
#' variance is fixed too. lavaan's modifiers on `~~` mean variances:
#' `f ~~ 2*f` fixes `sigma_f` at `sqrt(2)`, `f ~~ start(4)*f` starts it at 2,
#' `f ~~ 1*f` and `f ~~ 0*g` are the defaults (no parameter), and
#' `f ~~ start(0.3)*g` starts `chol_g_f`; on an LV's intercept `f ~ 0.5*1`
#' fixes `alpha_f`, `f ~ 0*1` is the default (no parameter) and
#' `f ~ start(0.2)*1` starts it; a label names them (`f ~~ v*f` and
#' `g ~~ v*g`: one standard deviation `v`, equal variances; `f ~ a*1`
#' and `g ~ a*1`: one intercept). Not supported (classed errors): labels
#' on `~~` between two LVs, a covariance fixed at a non-zero value,
#' covariances of indicators.
#'
#' @section Modifiers (lavaan's syntax):
#' A term of a measurement or structural statement may carry lavaan's
#' modifiers before its name, joined by `*`:
#' \itemize{
#'   \item a number fixes the parameter at that value: `f =~ 1*y1 + y2`,
#'     `lv ~ 0*x1` (the same as the `fixed` argument, which must not name it
#'     again);
#'   \item `NA` frees it (loadings and structural coefficients are free by
#'     default, so `NA*y1` only documents it);
#'   \item `start(0.5)` gives its starting value (as `start` does);
#'   \item a name is a label: the parameter takes that name, and terms with
#'     the same label share one parameter (`f =~ y1 + a*y2 + a*y3`: equal
#'     loadings; a label may join loadings and structural coefficients).
#'     `fixed` and `start` may name labels. A label may not be the name of a
#'     latent variable, indicator, covariate or another parameter (a
#'     generated name or a choice parameter).
#' }
#' Thresholds of an ordered indicator are written `y1 | t1 + t2 + t3`
#' (lavaan's syntax, in `measurement`): all of them, in order; the statement
#' declares `y1`'s categories (here 4; declared `categories` must agree).
#' Their terms take the same modifiers: `y1 | -1*t1 + t2 + t3` fixes one;
#' labels share thresholds between indicators as a whole set,
#' `y1 | a1*t1 + a2*t2` and `y2 | a1*t1 + a2*t2` (Likert thresholds
#' common to several items): an indicator labels all its thresholds or none,
#' and indicators that share a label share the same labels in the same
#' order.
#'
#' A term has at most one label and one value (a label and a fixed value
#' together are refused: a fixed parameter needs no label); a label's terms
#' must agree on their start value. The modifiers are kept in the model's
#' `labels` (the labelled terms), `fixed` and `start`; the `measurement` and
#' `structural` elements of a model hold the names only.
#'
#' @section Constraints:
#' lavaan's equality and definition constraints. Statements `name := expression` and `name == expression`, in
#' `measurement` or `structural`, make the parameter `name` a function of
#' other parameters: it is no longer free, and its value, its derivatives
#' (symbolic, by [stats::deriv()], first and second, made once when the model
#' is built) and its standard errors (the delta method, for every covariance
#' type of [vcov.iclv()]) follow from the free parameters. Both operators mean
#' the same here: the name on the left is defined by the expression on the
#' right. For example, Likert thresholds shared by all indicators,
#' symmetric and built from two positive increments (Biogeme's Optima H05):
#' \preformatted{
#'   y1 | t1*t1 + t2*t2 + t3*t3 + t4*t4
#'   y2 | t1*t1 + t2*t2 + t3*t3 + t4*t4
#'   t1 := -d1 - d2; t2 := -d1; t3 := d1; t4 := d1 + d2
#'   d1 := exp(ld1); d2 := exp(ld2)
#' }
#' \itemize{
#'   \item The left-hand side is one name: a label, a generated name
#'     (`zeta_y1`, `tau_y1_2`, ...) or a choice parameter (`a - b == 0` or
#'     `2*a == b` are refused: write `a == b`). With `:=` a name that is no
#'     parameter yet is a derived quantity (`wtp := -l_att / b_price`):
#'     reported in `coef()`, `summary()` and the parameter table (op `":="`,
#'     role `"defined"`) with its delta-method standard error, and not used
#'     by the likelihood. `a == b` is the same model as one label on both
#'     terms.
#'   \item The right-hand side is an R expression of parameters and numbers
#'     with the functions [stats::deriv()] knows (`+ - * / ^`, `exp`, `log`,
#'     `sqrt`, `pnorm`, ...; `abs` or `max` are refused). A name there that
#'     is no parameter of the model is a new free parameter (Biogeme's style;
#'     lavaan would need it as a label somewhere): op `"par"`, role
#'     `"auxiliary"`, start 0.5 unless `start` names it (with data, unset
#'     starts are fitted to the data-based starts of what they define). Names
#'     that look generated (`zeta_`, `tau_`, `alpha_`, `sigma_`, `gamma_`,
#'     `chol_`) but are no parameter, latent variables, indicators and
#'     covariates are refused.
#'   \item Definitions may use other defined parameters; a cycle is refused.
#'     A defined parameter cannot be fixed or given a start (its start is its
#'     definition at the other starts). Positivity is written with `exp()`;
#'     inequalities (`d1 > 0`) are not supported.
#'   \item Thresholds defined by constraints are not re-parameterised as
#'     increments: their order is up to the definitions (increasing by
#'     construction in the example above), and the likelihood refuses a
#'     point where they do not increase (the optimizer backs off).
#' }
#' The parameter table's column `defined` holds each defined parameter's
#' expression (`""` otherwise). `iclv_simulate()` and `iclv_loglik()` compute
#' defined parameters; a value given for one must agree with its definition.
#'
#' The structural model must be recursive (acyclic); the LVs are computed in
#' a topological order of the graph "LV depends on LV". A cycle is an error
#' that names the LVs on it.
#'
#' @section Indicators:
#' With `lv =~ y` the latent response of `y` is `y* = zeta * lv + e`
#' (a sum over LVs for an indicator loading on several LVs). Ordered
#' indicators (`"ordered_probit"`, `"ordered_logit"`) take the values
#' `1..C`: `P(y <= c) = F(tau_c - zeta * lv)` with `F` the normal or
#' logistic distribution function (`F((tau_c - alpha - zeta * lv) / sigma)`
#' with an intercept `y ~ 1` and a scale `y ~~ y`). `C` is declared with `categories` (one integer for
#' all ordered indicators or a named list) or read from the data, whose
#' observed values must then be exactly `1..C`. `"normal"` indicators are
#' `alpha + zeta * lv + sigma * e`, `e ~ N(0, 1)`; `"binary_probit"` and
#' `"binary_logit"` (`"binary"` is `"binary_probit"`) take the values 0 and 1
#' with `P(y = 1) = F(alpha + zeta * lv)`.
#'
#' With `indicator_level = "individual"` (default) an indicator is measured
#' once per individual: its non-missing values must be the same on every row
#' of the individual and it contributes one observation. With `"row"` every
#' non-missing row of the individual is one observation. Missing values (NA)
#' are allowed and skipped (never imputed).
#'
#' @section Parameter names:
#' \tabular{ll}{
#'   `zeta_<ind>` \tab loading of indicator `ind` (`zeta_<lv>_<ind>` when `ind` loads on several LVs)\cr
#'   `tau_<ind>_<c>` \tab threshold `c = 1..C-1` of an ordered indicator\cr
#'   `alpha_<ind>` \tab intercept of a normal or binary indicator (of an ordered one with `ind ~ 1`)\cr
#'   `sigma_<ind>` \tab standard deviation of a normal indicator (scale of an ordered one with `ind ~~ ind`)\cr
#'   `gamma_<lv>_<source>` \tab structural coefficient of a covariate or LV `source` in the equation of `lv`\cr
#'   user names \tab choice parameters, as written in the utilities
#' }
#' A choice parameter named like a generated name, a latent variable, an
#' indicator, a covariate, the id, choice or availability column, or any
#' column of the data is an error (the name would be ambiguous); so is an id
#' or choice column that also plays another role. `coef()` of a
#' fit uses these names, in the order of `$partable`: the measurement block
#' (per indicator: loadings, then thresholds, or intercept and sd), the
#' structural block, the choice block (order of first appearance).
#'
#' When ordered categories are not declared, the thresholds are added to the
#' parameter table when the model meets its data (in [iclv()]); `start` and
#' `fixed` may already name them.
#'
#' @section Compiled layout:
#' For estimation the model and the data are compiled into flat arrays
#' (0-based indices, row-major tables, CSR pointer arrays) whose names and
#' meaning are documented in the C header `src/iclv_model.h` of the package
#' sources: individuals in order of first appearance of their id (the rows
#' of one id must be adjacent), one choice row per data row, indicator
#' observations per individual grouped by indicator.
#'
#' @param measurement Measurement model in lavaan syntax: lines
#'   `lv =~ ind1 + ind2 + ...`, thresholds `ind | t1 + t2 + ...` (terms
#'   may carry modifiers, see Modifiers), `lv ~~ lv`, `lv ~ 1`, `ind ~ 1`,
#'   `ind ~~ ind` (see Freeing the defaults) and constraints `name :=
#'   expression`, `name == expression` (see Constraints); `#` starts a comment, a line ending in `+`
#'   continues on the next line (a statement that ends in `+` with nothing
#'   after it is an error), a latent variable may appear on several
#'   lines, an indicator may load on several latent variables. The
#'   `measurement` element of a model (a named list: latent variable ->
#'   indicators) is accepted too and means the same.
#' @param structural `NULL` or structural equations `lv ~ x1 + x2 + other_lv`
#'   (with modifiers, see Modifiers; constraints as in `measurement`):
#'   names that are latent variables are LV effects, other names are
#'   individual-level covariates (data columns constant within an id). The
#'   `structural` element of a model is accepted too.
#' @param indicators The indicator type: one of `"ordered_probit"`,
#'   `"ordered_logit"`, `"normal"`, `"binary_probit"` (alias `"binary"`),
#'   `"binary_logit"` for all indicators, or a named list / named character
#'   vector of types per indicator (indicators not named are ordered probit).
#' @param choice `NULL` (a measurement-only model) or an [iclv_choice()]
#'   object, such as the `choice` element of another model: it means the
#'   same in every model (its terms are classified again against this
#'   model's latent variables). Or several choice parts: a named list of
#'   [iclv_choice()] objects of type `"mnl"`, e.g.
#'   `list(rp = iclv_choice(...), sp = iclv_choice(..., scale = "mu_sp"))`,
#'   each with its own choice column; see the section Several choice parts
#'   of [iclv_choice()].
#' @param id Name of the data column identifying individuals.
#' @param indicator_level `"individual"` or `"row"` (see Indicators), or a
#'   named character vector per indicator (indicators not named are
#'   `"individual"`).
#' @param fixed `NULL` or a named numeric vector: these parameters are fixed
#'   (not estimated) at the given values. A name may appear only once, and
#'   not in both `fixed` and `start`.
#' @param start `NULL` or a named numeric vector of starting values; others
#'   come from the data (thresholds from the marginal frequencies, normal
#'   indicators from their mean and sd, binary intercepts from their mean),
#'   loadings start at 1 (0.5 for each loading of a cross-loading indicator;
#'   half the sd for normal indicators), structural and choice coefficients
#'   at 0.
#' @param random `NULL` or a character vector naming random terms:
#'   independent standard-normal draw dimensions, one value per individual
#'   (constant over its choice tasks), usable in utilities where a latent
#'   variable may stand (`b_mean * price + b_sd * xi_price * price` for a
#'   normally distributed price coefficient with mean `b_mean` and standard
#'   deviation `b_sd`). The draw design covers them after the latent
#'   variables (a user array holds them as slices of its third dimension,
#'   named by `dimnames(draws)[[3]]`); `predict(type = "lv")` reports their
#'   posterior means too. They may not appear in the measurement or
#'   structural model.
#' @param ... `categories`: one integer (number of categories of every
#'   ordered indicator) or a named list / vector per ordered indicator
#'   (`NA`: read from the data, as in a model's `categories` element); at
#'   most 100 categories (declared or read from the data) per indicator.
#'   `data`: optionally, a data.frame to check the model against now (its
#'   categories then complete the parameter table). Any other argument is an
#'   error.
#' @return An object of class `"iclv_model"`: a list holding the parsed
#'   specification and `partable`, a data.frame with one row per parameter
#'   and the columns `name`, `block` (`"measurement"`, `"structural"`,
#'   `"choice"`), `lhs`, `op` (`"=~"` loading, `"|"` threshold, `"~1"`
#'   intercept, `"~~"` sd, `"~"` structural, `":="` choice coefficient),
#'   `rhs`, `free`, `start` (`NA` where the start comes from the data) and
#'   `role` (`"loading"`, `"threshold"`, `"intercept"`, `"sd"`,
#'   `"structural"`, `"choice"`) and `label` (the label the syntax gave the
#'   parameter, see Modifiers, or `""`; a shared parameter's row is that of
#'   its first term) and `defined` (the expression of a parameter defined by
#'   a constraint, see Constraints, or `""`; such a parameter has `free =
#'   FALSE`). Constraints add rows for new parameters: op `"par"`, role
#'   `"auxiliary"` (new free parameters on the right of a constraint) and op
#'   `":="`, role `"defined"` (derived quantities).
#' @seealso [iclv_choice()], [iclv()], [iclv_simulate()]
#' @examples
#' m <- iclv_model(
#'   measurement = "
#'     quality  =~ att_quality + att_patent   # indicators of an LV
#'     distrust =~ att_ingredients + att_dominance",
#'   structural = "
#'     quality  ~ over_50
#'     distrust ~ regular_user + quality",
#'   choice = iclv_choice("mnl", choice = "best", utilities = list(
#'     brand1 = "asc_1 + b_price * price_1 + l_quality * quality",
#'     brand2 = "b_price * price_2 + l_distrust * distrust")),
#'   id = "ID", categories = 5)
#' m
#' summary(m)
#' @export
iclv_model <- function(measurement, structural = NULL, indicators = "ordered_probit",
                       choice = NULL, id, indicator_level = "individual",
                       fixed = NULL, start = NULL, random = NULL, ...) {
  dots <- list(...)
  .spec_check_dots(dots, "iclv_model", allowed = c("categories", "data"))
  cl <- match.call()
  if (missing(measurement)) {
    iclv_abort("spec", "'measurement' is required: give at least one 'lv =~ indicator' line")
  }
  if (missing(id) || !is.character(id) || length(id) != 1L || is.na(id) || !nzchar(id)) {
    iclv_abort("spec", "'id' must be the name of the column identifying individuals")
  }

  # lavaan's `:=` and `==` constraints, in either part (R/constraints.R)
  con_m <- .syntax_constraints(.spec_as_syntax(measurement, "=~"), "measurement")
  con_s <- .syntax_constraints(.spec_as_syntax(structural, "~"), "structural")
  constraints <- rbind(con_m$con, con_s$con)
  definitions <- .con_definitions(constraints)
  # lavaan's `~~` and `~ 1` on LVs, in either part (R/lvstat.R)
  lvm <- .syntax_lv_statements(con_m$text, "measurement")
  lvs_st <- .syntax_lv_statements(con_s$text, "structural")
  meas <- .parse_measurement(lvm$text)
  meas_mods <- attr(meas, "mods")
  thr_mods <- attr(meas, "thresholds")
  attr(meas, "mods") <- attr(meas, "thresholds") <- NULL
  lvs <- names(meas)
  inds <- unique(unlist(meas, use.names = FALSE))
  both <- intersect(lvs, inds)
  if (length(both)) {
    iclv_abort("spec", sprintf("%s is both a latent variable and an indicator (higher-order factors are not supported)",
                               iclv_quote(both[1])))
  }
  # loads[[ind]] = the LVs it loads on, in LV order
  loads <- lapply(inds, function(i) lvs[vapply(meas, function(v) i %in% v, logical(1))])
  names(loads) <- inds

  # structural model
  st <- .parse_structural(lvs_st$text)
  st_mods <- attr(st, "mods")
  attr(st, "mods") <- NULL
  notlv <- setdiff(names(st), lvs)
  if (length(notlv)) {
    iclv_abort("spec", sprintf(
      "latent variable %s of the structural model has no indicators: add a line '%s =~ ...' to 'measurement' (latent variables with indicators: %s)",
      iclv_quote(notlv[1]), notlv[1], iclv_quote(lvs)))
  }
  st <- st[intersect(lvs, names(st))]
  covariates <- unique(setdiff(unlist(st, use.names = FALSE), lvs))
  badcov <- intersect(covariates, inds)
  if (length(badcov)) {
    iclv_abort("spec", sprintf("%s is an indicator and cannot also be a covariate of the structural model",
                               iclv_quote(badcov[1])))
  }
  parents <- lapply(st, function(s) intersect(s, lvs))
  lv_order <- .topo_order(lvs, parents)
  lvx <- .spec_lv_statements(lvm, lvs_st, lvs, inds)

  ind_type <- .spec_indicator_types(indicators, inds)
  level <- .spec_levels(indicator_level, inds)
  categories <- .spec_categories(dots$categories, inds, ind_type)
  categories <- .spec_threshold_statements(thr_mods, categories, ind_type)
  # `y ~ 1` and `y ~~ y` on indicators (R/indicator.R)
  ix <- .spec_indicator_statements(lvx$ind_var, lvx$ind_icpt, inds, ind_type)

  # several choice parts: one combined MNL choice object (R/parts.R)
  if (.parts_is_list(choice)) {
    choice <- .parts_combine(choice)
  } else if (!is.null(choice) && !inherits(choice, "iclv_choice")) {
    iclv_abort("spec", "'choice' must be NULL, an object made by iclv_choice() or a named list of them (choice parts)")
  } else if (!is.null(choice$scale) && is.null(choice$parts)) {
    iclv_abort("spec", sprintf(
      "the choice part has a relative scale %s, but a scale is for one of several choice parts: choice = list(rp = iclv_choice(...), sp = iclv_choice(..., scale = %s))",
      iclv_quote(choice$scale), iclv_quote(choice$scale)))
  }
  random <- .spec_random(random, lvs, inds, covariates, id)
  # random terms stand where latent variables may stand in utilities
  if (!is.null(choice)) choice <- .spec_classify_choice(choice, c(lvs, random))

  model <- structure(list(
    lvs = lvs, measurement = meas, indicators = inds, loads = loads,
    ind_type = ind_type, categories = categories, level = level,
    structural = st, covariates = covariates, lv_order = lv_order,
    choice = choice, id = id, fixed = NULL, start = NULL, partable = NULL,
    labels = NULL, call = cl, random = random, lv_var = lvx$var, lv_icpt = lvx$icpt,
    lv_cov = lvx$cov, constraints = constraints, definitions = definitions,
    ord_icpt = ix$icpt, ord_scale = ix$scale
  ), class = "iclv_model")
  mods <- .spec_modifiers(meas_mods, st_mods, c(lvs, inds, covariates), thr_mods)
  # the labels of `~~` and `~ 1` on indicators (R/indicator.R) and on LVs
  # (R/lvstat.R) are checked and kept with the syntax's
  own_labels <- rbind(ix$labels, lvx$labels)
  .spec_indicator_labels(own_labels, mods$labels %||% data.frame(op = character(), lhs = character(),
                                                                 rhs = character(), label = character()),
                         c(lvs, inds, covariates))
  model$labels <- mods$labels
  if (!is.null(own_labels)) model$labels <- rbind(model$labels, own_labels)

  # the generated names must not collide with choice parameters
  if (!is.null(choice)) {
    gen <- .iclv_partable(model, categories)
    gen <- gen$name[gen$block != "choice"]
    cp <- unique(choice$terms_all$param)
    clash <- intersect(cp, gen)
    thr_pat <- .deferred_threshold_pattern(model)
    if (!is.null(thr_pat)) clash <- union(clash, cp[grepl(thr_pat, cp)])
    if (length(clash)) {
      iclv_abort("spec", sprintf(
        "choice parameter %s has the name of a generated measurement/structural parameter; rename it",
        iclv_quote(clash[1])))
    }
  }

  .spec_check_column_roles(model)
  .spec_check_choice_param_names(model)
  model$fixed <- .spec_named_values(fixed, "fixed")
  model$start <- .spec_named_values(start, "start")
  syn <- .spec_modifier_values(model, mods$values)
  # the values `~~` modifiers give (R/lvstat.R)
  ixv <- .spec_indicator_values(model, ix$values) # and those on indicators (R/indicator.R)
  for (what in c("fixed", "start")) {
    syn[[what]] <- .spec_merge_values(syn[[what]], lvx$values[[what]], what)
    syn[[what]] <- .spec_merge_values(syn[[what]], ixv[[what]], what)
  }
  model$fixed <- .spec_merge_values(model$fixed, syn$fixed, "fixed")
  model$start <- .spec_merge_values(model$start, syn$start, "start")
  .spec_check_fixed_start(model$fixed, model$start)
  model$partable <- .iclv_partable(model, categories)
  .con_check_values(model$partable, model$fixed, model$start)
  model$definitions <- .con_mark_derived(model$definitions, model$partable)
  .con_warn_threshold_terms(model$partable)
  .spec_check_names(model, model$partable, c(names(model$fixed), names(model$start)), defer = TRUE)
  .spec_check_values(model$partable, model$fixed, model$start)

  .spec_warn_unused_lvs(model)

  if (!is.null(dots$data)) {
    cmp <- .iclv_compile(model, dots$data)
    model <- cmp$model # expression utilities resolved by the data (R/tape.R)
    model$categories <- cmp$categories
    if (identical(model$choice$type, "ordered")) model$choice$categories <- cmp$choice_categories
    model$partable <- .iclv_partable(model, model$categories)
  }
  model
}

# The most categories an ordered indicator may have (declared or read from
# the data): beyond this a scale is near-continuous ("normal" fits it), and
# the thresholds would dominate the parameter table.
.max_categories <- 100L
.ind_types <- c("ordered_probit", "ordered_logit", "normal", "binary_probit", "binary_logit")
.ind_type_code <- c(ordered_probit = 1L, ordered_logit = 2L, normal = 3L, binary_probit = 4L, binary_logit = 5L)
.is_ordered <- function(type) type %in% c("ordered_probit", "ordered_logit")
.is_binary <- function(type) type %in% c("binary_probit", "binary_logit")

.spec_indicator_types <- function(indicators, inds) {
  norm_type <- function(t, who) {
    if (!is.character(t) || length(t) != 1L || is.na(t)) {
      iclv_abort("spec", sprintf("the indicator type %smust be one string", who))
    }
    if (t == "binary") t <- "binary_probit"
    if (!t %in% .ind_types) {
      iclv_abort("spec", sprintf("unknown indicator type %s %s(types: %s, \"binary\")", iclv_quote(t), who,
                                 iclv_quote(.ind_types)))
    }
    t
  }
  out <- stats::setNames(rep("ordered_probit", length(inds)), inds)
  if (is.null(indicators)) return(out)
  if ((is.character(indicators) && length(indicators) == 1L && is.null(names(indicators)))) {
    out[] <- norm_type(indicators, "")
    return(out)
  }
  if (!is.list(indicators) && !is.character(indicators)) {
    iclv_abort("spec", "'indicators' must be a type string or a named list of types per indicator")
  }
  nm <- names(indicators)
  if (is.null(nm) || anyNA(nm) || any(!nzchar(nm))) {
    iclv_abort("spec", "'indicators' with several types must be named by indicator")
  }
  .spec_no_duplicate_names(nm, "indicators")
  unknown <- setdiff(nm, inds)
  if (length(unknown)) {
    iclv_abort("spec", sprintf("'indicators' names %s, which is not an indicator of the measurement model",
                               iclv_quote(unknown[1])))
  }
  for (i in nm) out[i] <- norm_type(indicators[[i]], sprintf("of %s ", iclv_quote(i)))
  out
}

.spec_levels <- function(level, inds) {
  out <- stats::setNames(rep("individual", length(inds)), inds)
  ok <- function(l) is.character(l) && length(l) == 1L && !is.na(l) && l %in% c("individual", "row")
  if (is.character(level) && length(level) == 1L && is.null(names(level))) {
    if (!ok(level)) iclv_abort("spec", sprintf("'indicator_level' must be \"individual\" or \"row\", not %s", iclv_quote(level)))
    out[] <- level
    return(out)
  }
  nm <- names(level)
  if (is.null(nm) || anyNA(nm) || any(!nzchar(nm)) || (!is.character(level) && !is.list(level))) {
    iclv_abort("spec", "'indicator_level' must be \"individual\", \"row\" or a named vector of these per indicator")
  }
  .spec_no_duplicate_names(nm, "indicator_level")
  unknown <- setdiff(nm, inds)
  if (length(unknown)) {
    iclv_abort("spec", sprintf("'indicator_level' names %s, which is not an indicator", iclv_quote(unknown[1])))
  }
  for (i in nm) {
    if (!ok(level[[i]])) {
      iclv_abort("spec", sprintf("'indicator_level' of %s must be \"individual\" or \"row\"", iclv_quote(i)))
    }
    out[i] <- level[[i]]
  }
  out
}

# Named integer vector over the ordered indicators: declared categories, NA
# where the data decide.
.spec_categories <- function(categories, inds, ind_type) {
  ord <- inds[.is_ordered(ind_type)]
  out <- stats::setNames(rep(NA_integer_, length(ord)), ord)
  if (is.null(categories)) return(out)
  chk <- function(v, who) {
    if (!is.numeric(v) || length(v) != 1L || is.na(v) || !is.finite(v) || v != round(v) || v < 2) {
      iclv_abort("spec", sprintf("'categories'%s must be one whole number in [2, %d]", who, .max_categories))
    }
    if (v > .max_categories) {
      iclv_abort("spec", sprintf(
        "'categories'%s = %s: an ordered indicator may have at most %d categories (use indicators = \"normal\" for a near-continuous scale)",
        who, format(v, digits = 15), .max_categories))
    }
    as.integer(v)
  }
  if (is.null(names(categories)) && length(categories) == 1L) {
    out[] <- chk(categories[[1]], "")
    return(out)
  }
  nm <- names(categories)
  if (is.null(nm) || anyNA(nm) || any(!nzchar(nm))) {
    iclv_abort("spec", "'categories' must be one whole number or a named list per ordered indicator")
  }
  .spec_no_duplicate_names(nm, "categories")
  unknown <- setdiff(nm, ord)
  if (length(unknown)) {
    iclv_abort("spec", sprintf("'categories' names %s, which is not an ordered indicator", iclv_quote(unknown[1])))
  }
  for (i in nm) {  # NA: from the data, as in a model's own `categories`
    v <- categories[[i]]
    out[i] <- if (length(v) == 1L && is.na(v)) NA_integer_ else chk(v, sprintf(" of %s", iclv_quote(i)))
  }
  out
}

# A model's parsed measurement or structural part (a named list lv ->
# names, as in model$measurement and model$structural) back to syntax, so
# that a part of one model means the same in another; text is returned as
# it is (the parser checks it).
.spec_as_syntax <- function(x, op) {
  if (!is.list(x) || is.null(names(x)) && length(x)) return(x)
  ok <- vapply(x, function(v) is.character(v) && length(v) > 0L, logical(1))
  if (!all(ok) || any(!nzchar(names(x)))) return(x)
  unname(vapply(names(x), function(l) paste(l, op, paste(x[[l]], collapse = " + ")), character(1)))
}

# Classifies each utility factor as a data column or an LV, giving per
# alternative a data.frame(param, f1, f2, col, lv) (NA where absent), and
# terms_all (all terms with their alternative). A pure function of the
# parsed terms (param, f1, f2) and the LVs: a classified choice passed to
# another model is classified again there, to the same meaning.
.spec_classify_choice <- function(choice, lvs) {
  classified <- stats::setNames(vector("list", length(choice$alternatives)), choice$alternatives)
  expr_alts <- character()
  for (a in choice$alternatives) {
    if (.utility_is_expression(trimws(gsub("[[:space:]]+", " ", choice$utilities[[a]])))) {
      # the provisional reading; the data resolve it (R/tape.R)
      classified[[a]] <- .expr_provisional_terms(choice$utilities[[a]], a, lvs)
      expr_alts <- c(expr_alts, a)
      next
    }
    tm <- choice$terms[[a]]
    if (is.null(tm$f1)) tm <- .parse_utility(choice$utilities[[a]], a) # an object without them
    # a product the plain syntax cannot read (e.g. 'mu * b * x', no latent
    # variable): an expression utility, which the data resolve (R/tape.R)
    if (any(!is.na(tm$f1) & !is.na(tm$f2) & !(tm$f1 %in% lvs) & !(tm$f2 %in% lvs))) {
      classified[[a]] <- .expr_provisional_terms(choice$utilities[[a]], a, lvs)
      expr_alts <- c(expr_alts, a)
      next
    }
    col <- lv <- rep(NA_character_, nrow(tm))
    for (i in seq_len(nrow(tm))) {
      f <- c(tm$f1[i], tm$f2[i])
      f <- f[!is.na(f)]
      is_lv <- f %in% lvs
      term <- paste(c(tm$param[i], f), collapse = " * ")
      if (length(f) == 2L) {
        if (all(is_lv)) {
          iclv_abort("spec", sprintf("utility of %s: term %s multiplies two latent variables, which is not supported",
                                     iclv_quote(a), iclv_quote(term)))
        }
        if (!any(is_lv)) {
          iclv_abort("spec", sprintf(
            "utility of %s: term %s must be 'param * column * lv', but neither %s is a latent variable defined in the measurement model (latent variables: %s)",
            iclv_quote(a), iclv_quote(term), iclv_quote(f), iclv_quote(lvs)))
        }
      }
      if (any(is_lv)) lv[i] <- f[is_lv]
      if (any(!is_lv)) col[i] <- f[!is_lv]
    }
    classified[[a]] <- data.frame(param = tm$param, f1 = tm$f1, f2 = tm$f2, col = col, lv = lv,
                                  stringsAsFactors = FALSE)
  }
  choice$terms <- classified # once: assigning into choice$terms per alternative copied it each time
  choice$expr_alts <- expr_alts
  choice$tapes <- NULL
  choice$resolved <- NULL
  # column by column, not by rbind() of one data.frame per alternative
  # (quadratic: minutes for 10^5 alternatives): R/tape.R
  choice <- .choice_collect(choice)
  .choice_ordered_no_constant(choice) # R/choice.R
  choice
}

# ---- parameter names of loadings and structural coefficients ---------------
# The one place these names are made: generated (zeta_<ind>, or
# zeta_<lv>_<ind> for an indicator loading on several LVs; gamma_<lv>_<src>)
# unless the syntax labels the term (`a*x`): then the label, shared by every
# term with that label. Each returns a data.frame (lhs, rhs, name): the
# loadings per indicator in LV order (the compiled ind_load_* order), the
# structural terms per LV equation in order (the compiled st_* order).
.loading_names <- function(model) {
  n_lv <- lengths(model$loads)
  ind <- rep(model$indicators, n_lv)
  lv <- as.character(unlist(model$loads, use.names = FALSE))
  name <- ifelse(rep(n_lv > 1L, n_lv), sprintf("zeta_%s_%s", lv, ind), sprintf("zeta_%s", ind))
  .apply_labels(data.frame(lhs = lv, rhs = ind, name = name, stringsAsFactors = FALSE), model$labels, "=~")
}

# The threshold names of an ordered choice whose categories are known,
# tau_<choice column>_<k> for k = 1..C-1; character() otherwise.
.choice_threshold_names <- function(ch) {
  if (!identical(ch$type, "ordered") || is.null(ch$categories) || is.na(ch$categories)) return(character())
  sprintf("tau_%s_%d", ch$choice, seq_len(ch$categories - 1L))
}

# The thresholds of the ordered indicators whose categories are known
# (`categories`, named over the ordered indicators; NA: not yet): lhs (the
# indicator), rhs ("t1", ...), name (tau_<ind>_<k> or the label), labelled.
# Labelled thresholds are shared as whole sets (.spec_threshold_labels).
.threshold_names <- function(model, categories) {
  C <- categories[!is.na(categories) & categories > 1L]
  ind <- rep(names(C), C - 1L)
  k <- unlist(lapply(C, function(c) seq_len(c - 1L)), use.names = FALSE)
  if (is.null(k)) k <- integer()
  .apply_labels(data.frame(lhs = ind, rhs = sprintf("t%d", k), name = sprintf("tau_%s_%d", ind, k),
                           stringsAsFactors = FALSE), model$labels, "|")
}

# Threshold statements (.parse_thresholds) against the indicators: each names
# an ordered indicator, and its K thresholds declare K + 1 categories (which
# must agree with `categories` where they are declared). Returns the
# categories.
.spec_threshold_statements <- function(thr, categories, ind_type) {
  if (is.null(thr)) return(categories)
  for (ind in unique(thr$lhs)) {
    if (!ind %in% names(ind_type)) {
      iclv_abort("spec", sprintf("thresholds are given for %s, which is not an indicator of the model ('%s | ...')",
                                 iclv_quote(ind), ind))
    }
    if (!.is_ordered(ind_type[[ind]])) {
      iclv_abort("spec", sprintf("thresholds are given for %s, a %s indicator: only ordered indicators have thresholds",
                                 iclv_quote(ind), ind_type[[ind]]))
    }
    K <- thr$n_thr[thr$lhs == ind][1]
    C <- categories[[ind]]
    if (!is.na(C) && C != K + 1L) {
      iclv_abort("spec", sprintf("%s has %d categories (%d thresholds) but '%s | ...' lists %d thresholds",
                                 iclv_quote(ind), C, C - 1L, ind, K))
    }
    if (K + 1L > .max_categories) {
      iclv_abort("spec", sprintf("'%s | ...' lists %d thresholds: at most %d categories are supported", ind, K, .max_categories))
    }
    categories[[ind]] <- as.integer(K + 1L)
  }
  categories
}

# Labelled thresholds are shared as whole sets: an indicator labels all its
# thresholds or none, with distinct labels; indicators that use a label use
# the same labels in the same order (Likert thresholds common to several
# items); a threshold label labels nothing else.
.spec_threshold_labels <- function(labels, thr) {
  lt <- labels[labels$op == "|", , drop = FALSE]
  if (!nrow(lt)) return(invisible())
  other <- intersect(lt$label, labels$label[labels$op != "|"])
  if (length(other)) {
    iclv_abort("spec", sprintf("the label %s is used for a threshold and for a loading or structural coefficient",
                               iclv_quote(other[1])))
  }
  key <- character()
  for (ind in unique(lt$lhs)) {
    l <- lt$label[lt$lhs == ind][order(as.integer(sub("^t", "", lt$rhs[lt$lhs == ind])))]
    if (length(l) != thr$n_thr[thr$lhs == ind][1]) {
      iclv_abort("spec", sprintf("label every threshold of %s or none ('%s | a1*t1 + a2*t2 + ...'): a part of a set cannot be shared",
                                 iclv_quote(ind), ind))
    }
    if (anyDuplicated(l)) {
      iclv_abort("spec", sprintf("two thresholds of %s have the label %s: thresholds must be strictly increasing",
                                 iclv_quote(ind), iclv_quote(l[duplicated(l)][1])))
    }
    key[ind] <- paste(l, collapse = "\r")
  }
  for (lab in unique(lt$label)) {
    users <- unique(lt$lhs[lt$label == lab])
    if (length(unique(key[users])) > 1L) {
      iclv_abort("spec", sprintf(paste0("the threshold label %s is used by %s with different sets of labels: ",
                                        "thresholds are shared as a whole set (the same labels, in the same order)"),
                                 iclv_quote(lab), iclv_quote(users)))
    }
  }
  invisible()
}

.structural_names <- function(model) {
  st <- model$structural
  lv <- rep(names(st), lengths(st))
  src <- as.character(unlist(st, use.names = FALSE))
  .apply_labels(data.frame(lhs = lv, rhs = src, name = sprintf("gamma_%s_%s", lv, src),
                           stringsAsFactors = FALSE), model$labels, "~")
}

.apply_labels <- function(d, labels, op) {
  if (!is.null(labels) && nrow(d)) {
    lb <- labels[labels$op == op, , drop = FALSE]
    k <- match(paste(d$lhs, d$rhs, sep = "\r"), paste(lb$lhs, lb$rhs, sep = "\r"))
    d$name[!is.na(k)] <- lb$label[k[!is.na(k)]]
  }
  d$labelled <- if (!is.null(labels) && nrow(d)) !is.na(k) else logical(nrow(d))
  d
}

# The modifiers of the measurement and structural syntax (attribute "mods"
# of .syntax_parse): labels (op, lhs, rhs, label; NULL when none) and the
# fixed and start values of the modified terms (op, lhs, rhs, fixed, start).
# A label may not be the name of a latent variable, indicator or covariate
# (`taken`).
.spec_modifiers <- function(meas_mods, st_mods, taken, thr = NULL) {
  tag <- function(d, op) if (is.null(d)) NULL else cbind(op = op, d, stringsAsFactors = FALSE)
  cols <- c("lhs", "rhs", "label", "fixed", "start")
  m <- rbind(tag(meas_mods, "=~"), tag(st_mods, "~"), if (!is.null(thr)) tag(thr[cols], "|"))
  if (is.null(m)) return(list(labels = NULL, values = NULL))
  bad <- m$label[!is.na(m$label) & m$label %in% taken]
  if (length(bad)) {
    iclv_abort("spec", sprintf("the label %s is also the name of a latent variable, indicator or covariate; choose another",
                               iclv_quote(bad[1])))
  }
  lab <- m[!is.na(m$label), c("op", "lhs", "rhs", "label"), drop = FALSE]
  rownames(lab) <- NULL
  .spec_threshold_labels(lab, thr)
  list(labels = if (nrow(lab)) lab else NULL,
       values = m[!is.na(m$fixed) | !is.na(m$start), c("op", "lhs", "rhs", "fixed", "start"), drop = FALSE])
}

# The syntax's fixed and start values as named vectors over parameter names
# (a label's terms must agree on its start value).
.spec_modifier_values <- function(model, values) {
  out <- list(fixed = NULL, start = NULL)
  if (is.null(values) || !nrow(values)) return(out)
  tag <- function(d, op) data.frame(op = rep(op, nrow(d)), d, stringsAsFactors = FALSE)
  nm <- rbind(tag(.loading_names(model), "=~"), tag(.structural_names(model), "~"),
              tag(.threshold_names(model, model$categories), "|"))
  name <- nm$name[match(paste(values$op, values$lhs, values$rhs), paste(nm$op, nm$lhs, nm$rhs))]
  out <- .values_by_name(values, name)
  fl <- intersect(names(out$fixed), model$labels$label)
  if (length(fl)) {
    iclv_abort("spec", sprintf("the label %s is used for a free parameter in one term and fixed by a value in another",
                               iclv_quote(fl[1])))
  }
  out
}

# `given` (the fixed= or start= argument) plus the syntax's values; a name
# in both is an error.
.spec_merge_values <- function(given, syntax, what) {
  both <- intersect(names(given), names(syntax))
  if (length(both)) {
    iclv_abort("spec", sprintf("%s is given a %s value twice: in the model syntax and in '%s'",
                               iclv_quote(both[1]), what, what))
  }
  v <- c(given, syntax)
  if (length(v)) v else NULL
}

# The parameter table for given categories (named over the ordered
# indicators; NA = not known yet, thresholds left out).
.iclv_partable <- function(model, categories) {
  # add() takes a vector of names (the other fields recycled to it), so the
  # C - 1 thresholds of an indicator are one call: linear in C
  rows <- list()
  add <- function(name, block, lhs, op, rhs, role, start, label = FALSE) {
    n <- length(name)
    rows[[length(rows) + 1L]] <<- list(name = name, block = rep_len(block, n), lhs = rep_len(lhs, n),
                                       op = rep_len(op, n), rhs = rep_len(rhs, n),
                                       role = rep_len(role, n), start = rep_len(start, n),
                                       label = rep_len(label, n))
  }
  ln <- .loading_names(model)
  tn <- .threshold_names(model, categories)
  xn <- .indicator_names(model) # intercepts and standard deviations (scales), R/indicator.R
  for (i in model$indicators) {
    ls <- model$loads[[i]]
    ty <- model$ind_type[[i]]
    for (l in ls) {
      k <- which(ln$lhs == l & ln$rhs == i)
      add(ln$name[k], "measurement", l, "=~", i, "loading",
          if (ty == "normal") NA_real_ else if (length(ls) > 1L) 0.5 else 1, ln$labelled[k])
    }
    if (.is_ordered(ty)) {
      k <- which(tn$lhs == i)
      if (length(k)) add(tn$name[k], "measurement", i, "|", tn$rhs[k], "threshold", NA_real_, tn$labelled[k])
    }
    k <- match(i, xn$ind)
    # ordered: intercept 0 and scale 1 at the start (the defaults); normal
    # and binary: from the data (.compile_starts)
    if (!is.na(xn$icpt[k])) {
      add(xn$icpt[k], "measurement", i, "~1", "", "intercept", if (.is_ordered(ty)) 0 else NA_real_,
          xn$icpt_labelled[k])
    }
    if (!is.na(xn$sd[k])) add(xn$sd[k], "measurement", i, "~~", i, "sd", if (.is_ordered(ty)) 1 else NA_real_,
                              xn$sd_labelled[k])
  }
  sn <- .structural_names(model)
  for (k in seq_len(nrow(sn))) add(sn$name[k], "structural", sn$lhs[k], "~", sn$rhs[k], "structural", 0, sn$labelled[k])
  lx <- .lv_extra_terms(model)
  for (k in seq_len(nrow(lx))) add(lx$name[k], "structural", lx$lhs[k], lx$op[k], lx$rhs[k], lx$role[k], lx$start[k],
                                   lx$labelled[k])
  ch <- model$choice
  if (!is.null(ch)) {
    ta <- ch$terms_all %||% data.frame(alt = character(), param = character(), col = character(),
                                       lv = character(), stringsAsFactors = FALSE)
    tapes <- ch$tapes %||% list()
    for (p in ch$params) {
      t <- ta[ta$param == p, , drop = FALSE]
      desc <- vapply(seq_len(nrow(t)), function(k) {
        f <- c(t$col[k], t$lv[k])
        f <- f[!is.na(f)]
        if (length(f)) paste(f, collapse = "*") else "1"
      }, character(1))
      # in a nonlinear part (R/tape.R): "(nonlinear)"; a scale or an
      # exponent starts at 1
      nl <- names(tapes)[vapply(tapes, function(tp) p %in% tp$params, logical(1))]
      if (length(nl)) desc <- c(desc, "(nonlinear)")
      start <- if (!nrow(t) && any(vapply(tapes[nl], function(tp) p %in% tp$scales, logical(1)))) 1 else 0
      add(p, "choice", paste(unique(c(t$alt, nl)), collapse = ","), ":=", paste(unique(desc), collapse = ","),
          "choice", start)
    }
    # best-worst: the scale of the worst stage's utilities (> 0, R/rank.R)
    if (!is.null(ch$worst_scale)) add(ch$worst_scale, "choice", "worst", "scale", "", "scale", 1)
    # several choice parts: the relative scales (> 0, R/parts.R), one per name
    sc <- ch$parts$scale
    for (s in unique(stats::na.omit(sc))) {
      add(s, "choice", paste(ch$parts$names[sc %in% s], collapse = ","), "scale", "", "scale", 1)
    }
    # nested logit: one lambda per nest of the user's, in (0, 1) (R/transform.R), start 0.8
    for (k in which(!is.na(ch$nest_params %||% character()))) {
      add(ch$nest_params[k], "choice", names(ch$nests)[k], "nest", paste(ch$nests[[k]], collapse = ","),
          "nest", 0.8)
    }
    # ordered choice: C - 1 increasing thresholds once C is known (declared,
    # or read from the data by .iclv_compile()), started there from the data
    tc <- .choice_threshold_names(ch)
    if (length(tc)) add(tc, "choice", ch$choice, "|", sprintf("t%d", seq_along(tc)), "threshold", NA_real_)
  }
  field <- function(f) as.vector(unlist(lapply(rows, `[[`, f), use.names = FALSE),
                                 switch(f, start = "double", label = "logical", "character"))
  name <- field("name")
  pt <- data.frame(name = name, block = field("block"), lhs = field("lhs"), op = field("op"),
                   rhs = field("rhs"), free = rep(TRUE, length(name)), start = field("start"),
                   role = field("role"), stringsAsFactors = FALSE)
  # a label's terms are one parameter: its first term's row stands for all;
  # a label that is the name of another parameter is an error
  lab <- field("label")
  clash <- intersect(pt$name[lab], pt$name[!lab])
  if (length(clash)) {
    iclv_abort("spec", sprintf("the label %s is the name of another parameter of the model; choose another label",
                               iclv_quote(clash[1])))
  }
  pt$label <- ifelse(lab, pt$name, "") # lavaan's label column: the syntax's label, or ""
  pt <- pt[!(duplicated(pt$name) & lab), , drop = FALSE]
  dup <- pt$name[duplicated(pt$name)]
  if (length(dup)) {
    iclv_abort("spec", sprintf("two parameters get the name %s; rename an indicator, LV or covariate",
                               iclv_quote(dup[1])))
  }
  # `:=` / `==`: new parameters' rows, defined rows not free (R/constraints.R)
  pt <- .con_partable(pt, model)
  if (!is.null(model$start)) {
    k <- match(names(model$start), pt$name)
    pt$start[k[!is.na(k)]] <- model$start[!is.na(k)]
  }
  if (!is.null(model$fixed)) {
    k <- match(names(model$fixed), pt$name)
    pt$start[k[!is.na(k)]] <- model$fixed[!is.na(k)]
    pt$free[k[!is.na(k)]] <- FALSE
  }
  pt <- .con_fill_start(pt, model$definitions)
  rownames(pt) <- NULL
  pt
}

# Regular expression matching threshold names of ordered indicators whose
# categories are not declared yet (NULL if none).
.deferred_threshold_pattern <- function(model) {
  und <- names(model$categories)[is.na(model$categories)]
  ch <- model$choice
  if (identical(ch$type, "ordered") && is.na(ch$categories)) und <- c(und, ch$choice) # its thresholds
  if (length(und) == 0L) return(NULL)
  esc <- gsub(".", "\\.", und, fixed = TRUE)
  sprintf("^tau_(%s)_[0-9]+$", paste(esc, collapse = "|"))
}

.spec_named_values <- function(x, what) {
  if (is.null(x) || length(x) == 0L) return(NULL)
  if (is.list(x)) x <- unlist(x)
  nm <- names(x)
  if (!is.numeric(x) || is.null(nm) || anyNA(nm) || any(!nzchar(nm))) {
    iclv_abort("spec", sprintf("'%s' must be a named numeric vector of parameter values", what))
  }
  .spec_no_duplicate_names(nm, what)
  bad <- nm[!is.finite(x)]
  if (length(bad)) iclv_abort("spec", sprintf("'%s' value of parameter %s is not a finite number", what, iclv_quote(bad[1])))
  stats::setNames(as.double(x), nm)
}

# A named argument (`what`) must not name anything twice.
.spec_no_duplicate_names <- function(nm, what) {
  if (anyDuplicated(nm)) {
    iclv_abort("spec", sprintf("'%s' names %s twice", what, iclv_quote(nm[duplicated(nm)][1])))
  }
  invisible()
}

# A parameter given in both `fixed` and `start` is a contradiction: is it
# estimated from that start, or fixed at that value?
.spec_check_fixed_start <- function(fixed, start, kind = "spec") {
  both <- intersect(names(fixed), names(start))
  if (length(both)) {
    iclv_abort(kind, sprintf(
      "parameter %s is named in both 'fixed' and 'start': a parameter is either fixed or estimated from a start; drop it from one of them%s",
      iclv_quote(both[1]), if (kind == "input") " (or give the fit itself as 'start': then 'fixed' wins)" else ""))
  }
  invisible()
}

# Choice parameters are the names in first position of a utility term; a
# parameter spelled like a latent variable, an indicator, a covariate, the
# id, the choice or availability column, or a factor used as a data column
# in some utility is ambiguous (which one did the user mean?) and an error.
# The data's other columns are checked when the model meets its data
# (.val_attributes).
.spec_check_choice_param_names <- function(model) {
  ch <- model$choice
  if (is.null(ch)) return(invisible())
  taken <- list(
    "a latent variable" = model$lvs, "a random term" = model$random, "an indicator" = model$indicators,
    "a covariate of the structural model" = model$covariates, "the id column" = model$id,
    "the choice column" = ch$ranks %||% ch$choice, "an availability column" = unname(ch$available),
    # (expression utilities: the data tell data from parameters, R/tape.R)
    "a data column used in a utility" = if (!.choice_has_expressions(ch)) .choice_data_vars(ch))
  for (what in names(taken)) {
    clash <- intersect(ch$params, taken[[what]])
    if (length(clash)) {
      iclv_abort("spec", sprintf(
        "choice parameter %s has the name of %s; a name in first position of a utility term is a parameter, so rename the parameter",
        iclv_quote(clash[1]), what))
    }
  }
  invisible()
}

# The id column identifies individuals and the choice column holds the
# choices: neither may also play another role (latent variable, indicator,
# covariate, attribute, availability column), which would read ids or
# choices as data.
.spec_check_column_roles <- function(model) {
  ch <- model$choice
  roles <- list("a latent variable" = model$lvs, "an indicator" = model$indicators,
                "a covariate of the structural model" = model$covariates,
                "a data column of a utility" = .choice_data_vars(ch),
                "an availability column" = unname(ch$available))
  rk <- ch$ranks %||% ch$choice
  cols <- c("the id column" = model$id, if (length(rk)) stats::setNames(rk, rep("the choice column", length(rk))))
  for (k in seq_along(cols)) {
    for (what in names(roles)) {
      if (cols[[k]] %in% roles[[what]]) {
        iclv_abort("spec", sprintf("%s %s cannot also be %s", names(cols)[k], iclv_quote(cols[[k]]), what))
      }
    }
  }
  if (!is.null(ch) && identical(ch$choice, model$id)) {
    iclv_abort("spec", sprintf("the choice column and the id column are both %s", iclv_quote(model$id)))
  }
  invisible()
}

# Names in `nm` must be parameters of `pt` (or, with defer = TRUE,
# thresholds whose categories the data will tell).
.spec_check_names <- function(model, pt, nm, defer = FALSE, columns = NULL) {
  unknown <- setdiff(nm, pt$name)
  if (defer && length(unknown)) {
    pat <- .deferred_threshold_pattern(model)
    if (!is.null(pat)) unknown <- unknown[!grepl(pat, unknown)]
    # parameters of expression utilities are known once the data resolve
    # them (R/tape.R); iclv() checks the names then
    if (.choice_has_expressions(model$choice) && !isTRUE(model$choice$resolved)) unknown <- character()
  }
  if (length(unknown)) {
    # the ambiguous case of expression utilities (R/tape.R): a name given
    # as a parameter that the data have as a column reads as data
    col <- intersect(unknown, columns)
    if (length(col) && .choice_has_expressions(model$choice)) {
      iclv_abort("spec", sprintf(paste0(
        "%s is given in start =/fixed = as a parameter, but it is a column of the data, so the utilities ",
        "read it as data (names that are columns are data; ?iclv_choice): rename the parameter or the column"),
        iclv_quote(col[1])))
    }
    iclv_abort("spec", sprintf(
      "%s is not a parameter of the model (it appears in no equation or utility); parameters are: %s%s",
      iclv_quote(unknown[1]), paste(utils::head(pt$name, 12), collapse = ", "),
      if (nrow(pt) > 12) ", ..." else ""))
  }
  invisible()
}

# Values given for sds must be > 0; thresholds given for all of an
# indicator's thresholds must increase.
.spec_check_values <- function(pt, fixed, start) {
  vals <- c(start, fixed)
  vals <- vals[!duplicated(names(vals), fromLast = TRUE)]
  sds <- intersect(names(vals), pt$name[pt$role %in% c("sd", "scale")])
  bad <- sds[vals[sds] <= 0]
  if (length(bad)) {
    iclv_abort("spec", sprintf("%s %s must be > 0 (given %g)",
                               if (pt$role[match(bad[1], pt$name)] == "sd") "standard deviation" else "scale",
                               iclv_quote(bad[1]), vals[[bad[1]]]))
  }
  invisible()
}

# With a choice model, an LV that enters neither a utility nor another
# LV's equation is estimated but plays no role in the choice: warn.
.spec_warn_unused_lvs <- function(model) {
  if (is.null(model$choice)) return(invisible())
  ch <- model$choice
  used <- unique(c(stats::na.omit(ch$terms_all$lv),
                   intersect(unlist(model$structural, use.names = FALSE), model$lvs),
                   # names anywhere in an expression utility (R/tape.R)
                   unlist(lapply(ch$utilities[ch$expr_alts %||% character()],
                                 function(u) all.vars(str2lang(u))), use.names = FALSE)))
  unused <- setdiff(model$lvs, used)
  if (length(unused)) {
    iclv_warn("spec", sprintf(
      "latent variable%s %s enter%s neither the choice model nor another latent variable's equation",
      if (length(unused) > 1L) "s" else "", iclv_quote(unused), if (length(unused) > 1L) "" else "s"))
  }
  unused <- setdiff(model$random, used)
  if (length(unused)) {
    iclv_warn("spec", sprintf("random term%s %s %s not used in any utility", if (length(unused) > 1L) "s" else "",
                              iclv_quote(unused), if (length(unused) > 1L) "are" else "is"))
  }
  invisible()
}

# iclv_model(random =): NULL or distinct names, none of them a latent
# variable, an indicator, a covariate (random terms are not supported in the
# structural model) or the id column. Returns a character vector.
.spec_random <- function(random, lvs, inds, covariates, id) {
  if (is.null(random)) return(character())
  if (!is.character(random) || anyNA(random) || !all(.is_name(random))) {
    iclv_abort("spec", "'random' must be NULL or a character vector of names (e.g. c(\"xi_price\"))")
  }
  if (anyDuplicated(random)) {
    iclv_abort("spec", sprintf("'random' names %s twice", iclv_quote(random[duplicated(random)][1])))
  }
  roles <- list("a latent variable" = lvs, "an indicator" = inds,
                "a covariate of the structural model (random terms are not supported there)" = covariates,
                "the id column" = id)
  for (what in names(roles)) {
    clash <- intersect(random, roles[[what]])
    if (length(clash)) {
      iclv_abort("spec", sprintf("random term %s is also %s", iclv_quote(clash[1]), what))
    }
  }
  random
}

.model_summary_line <- function(x) {
  nty <- table(factor(x$ind_type, levels = .ind_types))
  nty <- nty[nty > 0]
  ch <- if (is.null(x$choice)) "none (measurement model only)" else if (!is.null(x$choice$parts)) {
    .parts_summary_line(x$choice) # R/parts.R
  } else if (identical(x$choice$type, "ordered")) {
    sprintf("ordered %s, %s, column '%s'", x$choice$link,
            if (is.na(x$choice$categories)) "categories from the data" else sprintf("%d categories", x$choice$categories),
            x$choice$choice)
  } else {
    sprintf("%s, %d alternatives (%s), column '%s'", x$choice$type, length(x$choice$alternatives),
            paste(x$choice$alternatives, collapse = ", "), x$choice$choice)
  }
  c(sprintf("ICLV model: %d latent variable%s (%s); %d indicator%s (%s); id '%s'",
            length(x$lvs), if (length(x$lvs) > 1L) "s" else "", paste(x$lvs, collapse = ", "),
            length(x$indicators), if (length(x$indicators) > 1L) "s" else "",
            paste(sprintf("%d %s", as.integer(nty), names(nty)), collapse = ", "), x$id),
    sprintf("Choice: %s", ch),
    if (length(x$random)) sprintf("Random terms (standard normal, one per individual): %s",
                                  paste(x$random, collapse = ", ")))
}

.model_undeclared_note <- function(x) {
  und <- names(x$categories)[is.na(x$categories)]
  if (length(und)) {
    sprintf("Thresholds of %d ordered indicator%s (%s) are added from the data's categories.",
            length(und), if (length(und) > 1L) "s" else "",
            paste(c(utils::head(und, 5), if (length(und) > 5L) "..."), collapse = ", "))
  } else character()
}

#' @export
print.iclv_model <- function(x, ...) {
  writeLines(.model_summary_line(x))
  pt <- x$partable
  nd <- sum(.pt_defined(pt))
  cat(sprintf("Parameters: %d (%d free%s)\n", nrow(pt), sum(pt$free),
              if (nd) sprintf(", %d defined by constraints", nd) else ""))
  note <- .model_undeclared_note(x)
  if (length(note)) writeLines(note)
  if (.choice_has_expressions(x$choice) && !isTRUE(x$choice$resolved)) {
    writeLines(paste("The choice parameters of expression utilities are provisional: the data tell",
                     "parameters from columns (names that are not columns are parameters; ?iclv_choice)."))
  }
  print(pt, row.names = FALSE, ...)
  invisible(x)
}

#' @export
summary.iclv_model <- function(object, ...) {
  pt <- object$partable
  blocks <- c("measurement", "structural", "choice")
  def <- .pt_defined(pt) # by `:=` / `==` (R/constraints.R): neither free nor fixed
  counts <- data.frame(
    block = blocks,
    parameters = vapply(blocks, function(b) sum(pt$block == b), integer(1)),
    free = vapply(blocks, function(b) sum(pt$block == b & pt$free), integer(1)),
    fixed = vapply(blocks, function(b) sum(pt$block == b & !pt$free & !def), integer(1)),
    defined = vapply(blocks, function(b) sum(pt$block == b & def), integer(1)),
    stringsAsFactors = FALSE, row.names = NULL)
  counts <- rbind(counts, data.frame(block = "total", parameters = sum(counts$parameters),
                                     free = sum(counts$free), fixed = sum(counts$fixed),
                                     defined = sum(counts$defined)))
  structure(list(header = .model_summary_line(object), note = .model_undeclared_note(object),
                 counts = counts, lv_order = object$lv_order, partable = pt),
            class = "summary.iclv_model")
}

#' @export
print.summary.iclv_model <- function(x, ...) {
  writeLines(x$header)
  cat(sprintf("Latent variables in structural order: %s\n", paste(x$lv_order, collapse = " -> ")))
  if (length(x$note)) writeLines(x$note)
  cat("\nParameters per block:\n")
  print(x$counts, row.names = FALSE)
  cat("\n")
  print(x$partable, row.names = FALSE, ...)
  invisible(x)
}

# A model handed to iclv(), iclv_loglik(), predict() ... must still be what
# iclv_model() made: one edited by hand (model$id <- NULL, a name added to
# model$indicators) is a spec error naming the part at fault, not a crash
# of the compiler ("subscript out of bounds").
.spec_check_object <- function(model) {
  bad <- function(what) {
    iclv_abort("spec", sprintf("'model' is not as iclv_model() made it: %s (was it edited by hand?)", what))
  }
  chr <- function(x) is.character(x) && !anyNA(x) && all(nzchar(x))
  if (!chr(model$id) || length(model$id) != 1L) bad("'id' is not one column name")
  lvs <- model$lvs
  if (!chr(lvs) || !length(lvs) || anyDuplicated(lvs)) bad("'lvs' does not name the latent variables")
  inds <- model$indicators
  if (!chr(inds) || !length(inds) || anyDuplicated(inds)) bad("'indicators' does not name the indicators")
  for (f in c("ind_type", "level")) {
    if (!chr(model[[f]]) || !identical(names(model[[f]]), inds)) {
      bad(sprintf("'%s' does not give one value per indicator", f))
    }
  }
  if (!all(model$ind_type %in% .ind_types)) bad("'ind_type' holds an unknown indicator type")
  if (!is.list(model$loads) || length(model$loads) != length(inds) ||
      !all(vapply(model$loads, function(l) chr(l) && all(l %in% lvs), logical(1))) ||
      !all(lvs %in% unlist(model$loads))) {
    bad("'loads' does not link every indicator to latent variables of 'lvs' and every latent variable to an indicator")
  }
  if (!is.null(model$covariates) && !is.character(model$covariates)) bad("'covariates' is not a character vector")
  if (!is.list(model$structural %||% list()) ||
      !all(vapply(model$structural, function(s) is.null(s) || is.character(s), logical(1)))) {
    bad("'structural' is not a list of covariate names per latent variable")
  }
  if (!is.null(model$lv_order) && !setequal(model$lv_order, lvs)) bad("'lv_order' does not list the latent variables")
  ch <- model$choice
  if (!is.null(ch) && (!inherits(ch, "iclv_choice") || !chr(ch$choice) || length(ch$choice) != 1L ||
                       !chr(ch$alternatives) || !is.list(ch$terms) ||
                       !(is.null(ch$terms_all) || is.data.frame(ch$terms_all)))) {
    bad("'choice' is not an iclv_choice() object")
  }
  if (!is.data.frame(model$partable) || !all(c("name", "block", "free", "start") %in% names(model$partable))) {
    bad("'partable' is not the parameter table")
  }
  lb <- model$labels
  if (!is.null(lb) && (!is.data.frame(lb) || !all(c("op", "lhs", "rhs", "label") %in% names(lb)) ||
                       !chr(lb$label) || !all(lb$op %in% c("=~", "~", "|", "~1", "~~")))) {
    bad("'labels' is not the table of the syntax's labels")
  }
  invisible(model)
}

# The modifiers' fixed and start values (values: a data.frame with columns
# fixed, start) of terms whose parameter names are `name`, as
# list(fixed, start) of named vectors; the terms of one label (one name)
# must agree. Shared by the terms of =~, ~, | (.spec_modifier_values) and
# the indicators' ~ 1 and ~~ (R/indicator.R).
.values_by_name <- function(values, name) {
  out <- list(fixed = NULL, start = NULL)
  for (what in c("fixed", "start")) {
    v <- values[[what]]
    have <- !is.na(v)
    if (!any(have)) next
    x <- v[have]
    n <- name[have]
    for (d in unique(n[duplicated(n)])) {
      if (length(unique(x[n == d])) > 1L) {
        iclv_abort("spec", sprintf("the label %s has different %s values in the syntax (%s)", iclv_quote(d), what,
                                   paste(format(unique(x[n == d])), collapse = ", ")))
      }
    }
    out[[what]] <- stats::setNames(x[!duplicated(n)], n[!duplicated(n)])
  }
  out
}
