#' Simulate data from an ICLV model
#'
#' Draws a data set from a model and true parameter values: individual
#' covariates, attributes, latent variables (from the structural model, in
#' topological order, with standard normal errors), indicators (every type)
#' and the choices of each task.
#'
#' Covariates are standard normal, or Bernoulli(0.5) when named in
#' `binary`. Every attribute column used in a utility is drawn per row,
#' standard normal (`attributes = "normal"`) or uniform on (-1, 1)
#' (`attributes = "uniform"`). In utilities written as R expressions the
#' names in `params` are the parameters and every other name (not a latent
#' variable or random term) is an attribute column drawn so: a parameter
#' left out of `params` is drawn as data, so give them all (a fit's
#' `fit$model` is resolved already and keeps its parameters). Indicators with `indicator_level =
#' "individual"` are drawn once per individual and repeated on its rows;
#' with `"row"` they are drawn per row. Choices: MNL by adding standard
#' Gumbel errors to the utilities and taking the largest; binary probit by
#' `P(first alternative) = pnorm(V_1 - V_2)`, both taken among the
#' alternatives available in the row (ranked: the available alternatives in
#' the order of their utilities plus Gumbel errors, the ranks beyond them
#' `NA`; best-worst: the best as for MNL, then the worst maximising
#' `-mu V` plus Gumbel errors among the others; nested logit: drawn from its
#' probabilities, nests without an available alternative dropped): an
#' alternative with an availability
#' column in the model is available with probability `availability`
#' (default 1: always), independently per row; a row where no alternative
#' would be available has them all available. A binary probit row with one
#' alternative available chooses it.
#'
#' @param model An [iclv_model()].
#' @param params Named numeric vector with a value for every parameter of
#'   `model$partable` (for ordered indicators whose categories are not
#'   declared, the thresholds `tau_<ind>_1..` named here define them).
#' @param n Number of individuals.
#' @param n_tasks Number of choice tasks (rows) per individual. For a model
#'   of several choice parts: one number (that many tasks of every part) or
#'   a vector named by the parts, e.g. `c(rp = 2, sp = 4)` (see
#'   [iclv_choice()], section Several choice parts).
#' @param seed `NULL` (use the current random number stream) or a seed (a
#'   whole number of absolute value at most `.Machine$integer.max`): the
#'   result is then reproducible and the caller's random number state is
#'   left as it was.
#' @param ... `binary`: names of covariates drawn as Bernoulli(0.5);
#'   `attributes`: `"normal"` (default) or `"uniform"`; `availability`: the
#'   probability that an alternative with an availability column is
#'   available (one number in `[0, 1]`, or a vector named by those
#'   alternatives). Any other argument is an error.
#' @return A data.frame with one row per (individual, task): the id column
#'   (named as the model's `id`, values 1..n), the task number `task`,
#'   covariates, indicators, attributes, availability columns and the
#'   choice column (alternative names). Its attribute `true_lv` is the
#'   `n x K` matrix of the simulated latent variables.
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   structural = "att ~ age",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + b_price * price + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5,
#'        asc = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 50, n_tasks = 4, seed = 1)
#' head(d)
#' @export
iclv_simulate <- function(model, params, n, n_tasks = 1, seed = NULL, ...) {
  dots <- list(...)
  .spec_check_dots(dots, "iclv_simulate", allowed = c("binary", "attributes", "availability"))
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  # expression utilities: the names in `params` are the parameters, the
  # others data to draw (R/tape.R; a fit's model is resolved already)
  if (is.numeric(params) && !is.null(names(params))) {
    pn <- names(params)
    model <- .choice_resolve(model, function(v) !v %in% pn)
  }
  chk_count <- function(v, what) {
    if (!is.numeric(v) || length(v) != 1L || is.na(v) || v < 1 || v != round(v) ||
        v > .Machine$integer.max) {
      iclv_abort("control", sprintf("'%s' must be one whole number between 1 and %d", what,
                                    .Machine$integer.max))
    }
    as.integer(v)
  }
  n <- chk_count(n, "n")
  # several choice parts: tasks of each part per individual (R/parts.R)
  part_tasks <- if (!is.null(model$choice$parts)) .parts_sim_tasks(model$choice, n_tasks)
  n_tasks <- if (is.null(part_tasks)) chk_count(n_tasks, "n_tasks") else sum(part_tasks)
  if (as.double(n) * n_tasks > .Machine$integer.max) {
    iclv_abort("control", sprintf("'n' x 'n_tasks' = %s rows is more than a data.frame can hold (%d)",
                                  format(as.double(n) * n_tasks, digits = 15), .Machine$integer.max))
  }
  # the columns of the result and the n_rows x J work matrices of the choices,
  # 8 bytes each: refuse at once what the host cannot hold
  J <- length(model$choice$alternatives)
  n_cols <- 4 + length(model$covariates) + length(model$indicators) + length(model$choice$columns) +
    length(model$choice$available) + 3 * J
  need <- 8 * as.double(n) * n_tasks * n_cols
  avail <- .host_available_bytes()
  if (!is.na(avail) && need > avail) {
    iclv_abort("memory", sprintf("simulating %s rows needs about %s of memory, but only %s are available; ask for fewer individuals or tasks",
                                 format(as.double(n) * n_tasks, big.mark = ","), .format_bytes(need), .format_bytes(avail)))
  }
  attributes <- if (is.null(dots$attributes)) "normal" else dots$attributes
  if (!identical(attributes, "normal") && !identical(attributes, "uniform")) {
    iclv_abort("control", "'attributes' must be \"normal\" or \"uniform\"")
  }
  binary <- dots$binary
  if (!is.null(binary)) {
    unknown <- setdiff(binary, model$covariates)
    if (length(unknown)) iclv_abort("spec", sprintf("'binary' names %s, which is not a covariate of the model", iclv_quote(unknown[1])))
  }

  p_avail <- .sim_availability(model, dots$availability)
  pt <- .sim_partable(model, params)
  params <- attr(pt, "params") # with the defined parameters (`:=` / `==`) computed
  tn <- attr(pt, "thresholds")
  th <- stats::setNames(as.double(params[pt$name]), pt$name)

  if (!is.null(seed)) {
    if (!is.numeric(seed) || length(seed) != 1L || is.na(seed) || seed != round(seed) ||
        abs(seed) > .Machine$integer.max) {
      iclv_abort("control", sprintf("'seed' must be NULL or one whole number in [-%d, %d] (as set.seed() takes)",
                                    .Machine$integer.max, .Machine$integer.max))
    }
    restore <- .rng_keep() # (R/draws.R)
    on.exit(restore(), add = TRUE)
    set.seed(seed)
  }

  nr <- n * n_tasks
  ind_of_row <- rep(seq_len(n), each = n_tasks)
  out <- list()
  out[[model$id]] <- ind_of_row
  out$task <- rep(seq_len(n_tasks), times = n)

  # covariates
  covs <- model$covariates
  covmat <- matrix(0, n, length(covs), dimnames = list(NULL, covs))
  for (cv in covs) {
    covmat[, cv] <- if (cv %in% binary) stats::rbinom(n, 1L, 0.5) else stats::rnorm(n)
    out[[cv]] <- covmat[ind_of_row, cv]
  }

  # latent variables in topological order
  lvs <- model$lvs
  eta <- matrix(0, n, length(lvs), dimnames = list(NULL, lvs))
  e <- matrix(stats::rnorm(n * length(lvs)), n, length(lvs))
  colnames(e) <- lvs
  sn <- .structural_names(model)
  ln <- .loading_names(model)
  lx <- .lv_extra_terms(model)
  for (l in model$lv_order) {
    # `l ~~ l` and `l ~ 1` (R/lvstat.R): sigma_l e + alpha_l (their names may be labels)
    v <- if (l %in% model$lv_var) th[[lx$name[lx$eq == l & lx$role == "sd"]]] * e[, l] else e[, l]
    if (l %in% model$lv_icpt) v <- v + th[[lx$name[lx$eq == l & lx$role == "intercept"]]]
    cv <- model$lv_cov
    for (f in cv$lhs[cv$rhs == l]) v <- v + th[[sprintf("chol_%s_%s", l, f)]] * e[, f]
    for (s in model$structural[[l]]) {
      src <- if (s %in% lvs) eta[, s] else covmat[, s]
      v <- v + th[[sn$name[sn$lhs == l & sn$rhs == s]]] * src
    }
    eta[, l] <- v
  }
  # random terms: one standard normal per individual, after the LVs
  if (length(model$random)) {
    eta <- cbind(eta, matrix(stats::rnorm(n * length(model$random)), n, length(model$random),
                             dimnames = list(NULL, model$random)))
  }

  # indicators; intercepts and scales (alpha 0 and sigma 1 where an ordered
  # indicator has none, R/indicator.R)
  xn <- .indicator_names(model)
  for (ind in model$indicators) {
    k <- match(ind, xn$ind)
    alpha <- if (is.na(xn$icpt[k])) 0 else th[[xn$icpt[k]]]
    sigma <- if (is.na(xn$sd[k])) 1 else th[[xn$sd[k]]]
    type <- model$ind_type[[ind]]
    row_level <- model$level[[ind]] == "row"
    ls <- model$loads[[ind]]
    s <- numeric(n)
    for (l in ls) {
      s <- s + th[[ln$name[ln$lhs == l & ln$rhs == ind]]] * eta[, l]
    }
    if (row_level) s <- s[ind_of_row]
    m <- length(s)
    logit <- type %in% c("ordered_logit", "binary_logit")
    err <- if (logit) stats::rlogis(m) else stats::rnorm(m)
    val <- if (.is_ordered(type)) {
      tau <- th[tn$name[tn$lhs == ind]]
      ystar <- alpha + s + sigma * err
      1L + as.integer(rowSums(outer(ystar, tau, ">")))
    } else if (type == "normal") {
      alpha + s + sigma * stats::rnorm(m)
    } else {
      as.integer(alpha + s + err > 0)
    }
    out[[ind]] <- if (row_level) val else val[ind_of_row]
  }

  # choices
  ch <- model$choice
  if (!is.null(ch)) {
    # the data columns of the utilities (a covariate may also be an attribute);
    # a column that a data expression compares with strings takes those
    # strings (and one more, "other"), at random
    lev <- .choice_string_levels(ch)
    for (col in setdiff(.choice_data_vars(ch), names(out))) {
      out[[col]] <- if (!is.null(lev[[col]])) sample(c(lev[[col]], "other"), nr, replace = TRUE) else
        if (attributes == "normal") stats::rnorm(nr) else stats::runif(nr, -1, 1)
    }
    xcols <- .choice_columns(ch, as.data.frame(out[.choice_data_vars(ch)], stringsAsFactors = FALSE,
                                               optional = TRUE))
    alts <- ch$alternatives
    V <- matrix(0, nr, length(alts))
    for (j in seq_along(alts)) {
      tm <- ch$terms[[alts[j]]]
      for (k in seq_len(nrow(tm))) {
        x <- if (is.na(tm$col[k])) 1 else xcols[[tm$col[k]]]
        f <- if (is.na(tm$lv[k])) 1 else eta[ind_of_row, tm$lv[k]]
        V[, j] <- V[, j] + th[[tm$param[k]]] * x * f
      }
    }
    if (length(ch$tapes)) { # the nonlinear parts (R/tape.R), evaluated by R on the rows
      env <- c(as.list(th), out[intersect(.choice_data_vars(ch), names(out))],
               lapply(stats::setNames(colnames(eta), colnames(eta)), function(k) eta[ind_of_row, k]))
      V <- V + .tape_values(ch, env, nr)
    }
    A <- matrix(TRUE, nr, length(alts), dimnames = list(NULL, alts))
    for (a in names(p_avail)) if (p_avail[[a]] < 1) A[, a] <- stats::runif(nr) < p_avail[[a]]
    if (!is.null(ch$parts)) { # each row's part: the individual's tasks of part 1, then 2, ...
      out <- .parts_simulate(out, ch, V, A, rep(rep(seq_along(part_tasks), part_tasks), times = n), th)
    } else {
    A[rowSums(A) == 0L, ] <- TRUE
    if (ch$type %in% c("ranked", "bestworst")) { # whole rankings / best-worst pairs (R/rank.R)
      mu <- if (is.null(ch$worst_scale)) 1 else th[[ch$worst_scale]]
      rk <- .rank_simulate(ch, V, A, mu)
      for (a in names(ch$available)) out[[ch$available[[a]]]] <- as.integer(A[, a])
      for (col in names(rk)) out[[col]] <- rk[[col]]
    } else if (ch$type == "nl") { # nested logit: drawn from its probabilities (R/nested.R)
      lam <- ifelse(is.na(ch$nest_params), 1, th[ifelse(is.na(ch$nest_params), 1L, ch$nest_params)])
      y <- .sample_rows(.nl_probs(ch, V, A, as.double(lam)))
    } else if (ch$type == "ordered") { # latent V + e cut at the thresholds (logistic or normal e)
      tau <- th[pt$name[pt$role == "threshold" & pt$block == "choice"]]
      e <- if (identical(ch$link, "logit")) stats::rlogis(nr) else stats::rnorm(nr)
      y <- 1L + findInterval(V[, 1] + e, tau, left.open = TRUE)
    } else if (ch$type == "mnl") {
      U <- V - log(-log(matrix(stats::runif(nr * length(alts)), nr, length(alts))))
      U[!A] <- -Inf
      y <- max.col(U, ties.method = "first")
    } else {
      y <- ifelse(V[, 1] - V[, 2] + stats::rnorm(nr) > 0, 1L, 2L)
      y[!A[, 1]] <- 2L
      y[!A[, 2]] <- 1L
    }
    if (!ch$type %in% c("ranked", "bestworst")) {
      for (a in names(ch$available)) out[[ch$available[[a]]]] <- as.integer(A[, a])
      out[[ch$choice]] <- if (ch$type == "ordered") as.integer(y) else alts[y]
    }
    }
  }
  d <- as.data.frame(out, stringsAsFactors = FALSE, optional = TRUE)
  attr(d, "true_lv") <- eta
  d
}

# Probability of availability per alternative with an availability column
# (named numeric), from iclv_simulate()'s `availability` (NULL: 1).
.sim_availability <- function(model, availability) {
  av <- names(model$choice$available)
  if (is.null(availability)) return(stats::setNames(rep(1, length(av)), av))
  if (!is.numeric(availability) || !length(availability) || anyNA(availability) ||
      any(availability < 0 | availability > 1)) {
    iclv_abort("control", "'availability' must be probabilities in [0, 1]")
  }
  if (!length(av)) {
    iclv_abort("spec", "'availability' needs a choice model with availability columns (iclv_choice(available = ))")
  }
  if (is.null(names(availability))) {
    if (length(availability) != 1L) {
      iclv_abort("control", "'availability' must be one probability or a vector named by alternative")
    }
    return(stats::setNames(rep(as.double(availability), length(av)), av))
  }
  if (anyDuplicated(names(availability))) {
    iclv_abort("spec", sprintf("'availability' names %s twice", iclv_quote(names(availability)[duplicated(names(availability))][1])))
  }
  unknown <- setdiff(names(availability), av)
  if (length(unknown)) {
    iclv_abort("spec", sprintf("'availability' names %s, which is not an alternative with an availability column (%s)",
                               iclv_quote(unknown[1]), iclv_quote(av)))
  }
  out <- stats::setNames(rep(1, length(av)), av)
  out[names(availability)] <- as.double(availability)
  out
}

# The full parameter table for simulation: categories of ordered indicators
# that the model does not declare are read from the threshold names in
# `params`. Every parameter needs a value; unknown names are errors.
# Attribute "thresholds": .threshold_names() of every ordered indicator.
.sim_partable <- function(model, params) {
  if (!is.numeric(params) || is.null(names(params)) || any(!nzchar(names(params)))) {
    iclv_abort("input", "'params' must be a named numeric vector with a value for every parameter")
  }
  cats <- model$categories
  for (ind in names(cats)[is.na(cats)]) {
    pat <- sprintf("^tau_%s_([0-9]+)$", gsub(".", "\\.", ind, fixed = TRUE))
    k <- as.integer(sub(pat, "\\1", grep(pat, names(params), value = TRUE)))
    if (length(k) == 0L) {
      iclv_abort("input", sprintf("'params' has no thresholds for ordered indicator %s (tau_%s_1, ...)", iclv_quote(ind), ind))
    }
    if (!setequal(k, seq_len(max(k)))) {
      iclv_abort("input", sprintf("the thresholds of %s in 'params' must be numbered 1..C-1", iclv_quote(ind)))
    }
    cats[ind] <- max(k) + 1L
  }
  ch <- model$choice
  if (identical(ch$type, "ordered") && is.na(ch$categories)) { # the ordered choice's C, likewise
    pat <- sprintf("^tau_%s_([0-9]+)$", gsub(".", "\\.", ch$choice, fixed = TRUE))
    k <- as.integer(sub(pat, "\\1", grep(pat, names(params), value = TRUE)))
    if (length(k) == 0L || !setequal(k, seq_len(max(k)))) {
      iclv_abort("input", sprintf("'params' needs the thresholds of the ordered choice %s numbered 1..C-1 (tau_%s_1, ...)",
                                  iclv_quote(ch$choice), ch$choice))
    }
    model$choice$categories <- max(k) + 1L
  }
  pt <- .iclv_partable(model, cats)
  # parameters defined by `:=` / `==` are computed (R/constraints.R); given
  # ones must agree with their definitions
  miss <- setdiff(pt$name[!.pt_defined(pt)], names(params))
  if (length(miss)) {
    iclv_abort("input", sprintf("'params' has no value for %s%s", iclv_quote(utils::head(miss, 5)),
                                if (length(miss) > 5) sprintf(" (and %d more)", length(miss) - 5) else ""))
  }
  extra <- setdiff(names(params), pt$name)
  if (length(extra)) iclv_abort("input", sprintf("'params' names %s, which is not a parameter of the model", iclv_quote(extra[1])))
  if (length(model$definitions)) {
    full <- stats::setNames(rep(NA_real_, nrow(pt)), pt$name)
    full[names(params)] <- as.double(params)
    params <- .con_complete(full, model$definitions, names(params), "params")
  }
  v <- params[pt$name]
  if (any(!is.finite(v))) iclv_abort("input", sprintf("parameter %s is not finite", iclv_quote(pt$name[!is.finite(v)][1])))
  sds <- pt$name[pt$role %in% c("sd", "scale")]
  bad <- sds[params[sds] <= 0]
  if (length(bad)) iclv_abort("input", sprintf("%s %s must be > 0", if (pt$role[match(bad[1], pt$name)] == "sd")
    "standard deviation" else "scale", iclv_quote(bad[1])))
  lams <- pt$name[pt$role == "nest"]
  bad <- lams[!(params[lams] > 0 & params[lams] <= 1)]
  if (length(bad)) iclv_abort("input", sprintf("the nesting parameter %s must lie in (0, 1]", iclv_quote(bad[1])))
  for (ind in unique(pt$lhs[pt$role == "threshold"])) {
    tv <- params[pt$name[pt$role == "threshold" & pt$lhs == ind]]
    if (any(diff(tv) <= 0)) iclv_abort("input", sprintf("the thresholds of %s must be strictly increasing", iclv_quote(ind)))
  }
  attr(pt, "thresholds") <- .threshold_names(model, cats) # every ordered indicator's, shared sets repeated
  attr(pt, "params") <- params
  pt
}
