# Compiles a model and its data into the flat arrays of src/iclv_model.h.
#
# Layout (see the header for the meaning of every element):
#   - individuals n = 0..N-1 in order of first appearance of their id; the
#     rows of one id are adjacent (checked);
#   - choice rows: every data row is one choice row, in data order
#     (row_ptr over individuals), so `rows` is 1..nrow(data);
#   - indicator observations of individual n: grouped by indicator (in the
#     model's indicator order), and within an indicator by data row. With
#     indicator_level "individual" an indicator gives one observation per
#     individual (its value on the individual's rows), with "row" one per
#     non-missing row. Missing values are skipped and counted in n_missing.
#
# categories: NULL (estimation: the model's declared categories, or those
# read from the data), or the named integer vector of a fit's categories
# (fit$compiled$categories, every ordered indicator): for prediction on new
# data, which are checked against them and never re-read.
# estimation: TRUE (iclv(), memory plans) requires two observed categories
# of each ordered indicator; FALSE (iclv_loglik(), an evaluation at given
# parameters) accepts one when the categories are declared (one individual).
# choice_categories: NULL, or a fit's number of categories of an ordered
# choice (fit$compiled$choice_categories), for new data as `categories`.
# weights: NULL, or the name of a column of individual weights
# (.val_weights): the C list then has `weight` (N) and the result
# `weights` (N, named by id) and `weights_column`; without weights the C
# list has no `weight` element at all (the engines' unweighted path).

.iclv_compile <- function(model, data, categories = NULL, estimation = TRUE, weights = NULL,
                          choice_categories = NULL) {
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  .spec_check_object(model)
  .val_data_frame(data)
  # expression utilities: names resolved by the data's columns (R/tape.R)
  dnames <- names(data)
  model <- .choice_resolve(model, function(v) v %in% dnames)
  idv <- .val_ids(data, model$id)
  .val_lvs_not_columns(model, data)
  grp <- idv$grp
  ids <- idv$ids
  N <- length(ids)
  n <- nrow(data)
  wts <- .val_weights(data, weights, grp, N, ids, model$id)

  # ---- measurement ---------------------------------------------------------
  inds <- model$indicators
  M <- length(inds)
  ncat <- stats::setNames(integer(M), inds)
  obs <- vector("list", M)
  n_missing <- stats::setNames(integer(M), inds)
  for (m in seq_len(M)) {
    ind <- inds[m]
    type <- model$ind_type[[ind]]
    .val_column_exists(data, ind, "indicator")
    x <- .val_numeric_column(data, ind, "indicator", id = data[[model$id]])
    if (.is_ordered(type) && !is.null(categories)) {
      ncat[m] <- .val_stored_categories(x, ind, categories[[ind]], ids[grp])
    } else {
      declared <- if (.is_ordered(type)) model$categories[[ind]] else NA_integer_
      ncat[m] <- .val_indicator_values(x, ind, type, declared, id = data[[model$id]], need_two = estimation)
    }
    if (model$level[[ind]] == "individual") {
      v <- .val_constant_within(x, grp, N, ind, "indicator", ids)
      have <- which(!is.na(v))
      obs[[m]] <- data.frame(n = have, m = rep(m, length(have)), val = v[have], row = match(have, grp))
      n_missing[m] <- N - length(have)
    } else {
      have <- which(!is.na(x))
      obs[[m]] <- data.frame(n = grp[have], m = rep(m, length(have)), val = x[have], row = have)
      n_missing[m] <- n - length(have)
    }
  }
  # every LV needs at least one observed indicator value
  for (l in model$lvs) {
    mine <- inds[vapply(model$loads, function(ls) l %in% ls, logical(1))]
    if (all(vapply(obs[match(mine, inds)], nrow, integer(1)) == 0L)) {
      iclv_abort("data", sprintf("latent variable %s has no observed indicator value: its indicators %s are all missing",
                                 iclv_quote(l), iclv_quote(mine)))
    }
  }
  empty <- inds[vapply(obs, nrow, integer(1)) == 0L]
  if (length(empty)) {
    iclv_abort("data", sprintf("indicator %s is missing (NA) in every row", iclv_quote(empty[1])))
  }
  ob <- do.call(rbind, obs)
  ob <- ob[order(ob$n, ob$m, ob$row), , drop = FALSE]
  categories <- ncat[.is_ordered(model$ind_type)]

  # ---- structural ------------------------------------------------------------
  covs <- model$covariates
  covmat <- matrix(0, N, length(covs), dimnames = list(NULL, covs))
  for (j in seq_along(covs)) {
    cv <- covs[j]
    if (!cv %in% names(data)) {
      iclv_abort("data", sprintf(
        "covariate %s of the structural model is neither a column of the data nor a latent variable of the model",
        iclv_quote(cv)))
    }
    x <- .val_numeric_column(data, cv, "covariate")
    na <- which(is.na(x))
    if (length(na)) iclv_abort("data", sprintf("covariate %s is missing (NA) in row %d", iclv_quote(cv), na[1]))
    covmat[, j] <- .val_constant_within(x, grp, N, cv, "covariate", ids)
  }
  # LV intercepts (`lv ~ 1`, R/lvstat.R): a covariate column of ones
  if (length(model$lv_icpt)) {
    covs <- c(covs, .lv_ones)
    covmat <- cbind(covmat, matrix(1, N, 1L, dimnames = list(NULL, .lv_ones)))
  }

  # ---- choice ------------------------------------------------------------------
  ch <- model$choice
  if (!is.null(ch)) {
    alts <- ch$alternatives
    if (ch$type == "ordered") { # the category 1..C of each row; one index, no availability
      y <- .val_ordered_choice(data, ch$choice, choice_categories %||% ch$categories, ids[grp],
                               fitted = !is.null(choice_categories))
      model$choice$categories <- ch$categories <- attr(y, "C")
      A <- NULL
      X <- .val_attributes(data, ch$columns, ch$terms, alts, A, ch$tapes)
    } else if (ch$type %in% c("ranked", "bestworst")) {
      stg <- .rank_stages(data, ch, ids[grp]) # one MNL row per stage (R/rank.R)
      X <- .val_attributes(data, ch$columns, ch$terms, alts, stg$A_data, ch$tapes)
      y <- A <- NULL # the stage rows replace them below
    } else if (!is.null(ch$parts)) { # several choice parts (R/parts.R)
      prt <- .parts_rows(data, ch, ids[grp])
      y <- prt$y
      A <- prt$A
      X <- .val_attributes(data, ch$columns, ch$terms, alts, A, ch$tapes)
    } else {
      y <- .val_choice_column(data, ch$choice, alts)
      A <- .val_availability(data, ch$available, alts, y, ids[grp])
      X <- .val_attributes(data, ch$columns, ch$terms, alts, A, ch$tapes)
    }
  }

  # ---- parameter table ---------------------------------------------------------
  pt <- .iclv_partable(model, categories)
  .spec_check_names(model, pt, c(names(model$fixed), names(model$start)), columns = names(data))
  given <- c(names(model$fixed), names(model$start))
  tn <- .threshold_names(model, categories)
  if (!is.null(ch) && ch$type == "ordered") pt <- .compile_choice_starts(pt, ch, y, given)
  pt <- .compile_starts(pt, model, ob, inds, given, tn)
  P <- nrow(pt)
  pidx <- function(nm) match(nm, pt$name) - 1L

  # ---- the C list ---------------------------------------------------------------
  # draw dimensions: the latent variables, then the random terms (draws with
  # no structural terms and no indicators: eta = e; src/iclv_model.h)
  lvs <- c(model$lvs, model$random)
  K <- length(lvs)
  # structural terms, LV by LV: the equation's terms, then the intercept
  # (covariate .lv_ones) and the free standard deviation (the LV's own draw,
  # type 2 = ICLV_SRC_DRAW), R/lvstat.R
  sn <- .structural_names(model)
  lx <- .lv_extra_terms(model)
  st_tab <- data.frame(lhs = c(sn$lhs, lx$eq), name = c(sn$name, lx$name),
                       type = c(ifelse(sn$rhs %in% lvs, 1L, 0L), ifelse(is.na(lx$draw), 0L, 2L)),
                       src = c(ifelse(sn$rhs %in% lvs, match(sn$rhs, lvs), match(sn$rhs, covs)),
                               ifelse(is.na(lx$draw), match(rep(.lv_ones, nrow(lx)), covs), match(lx$draw, lvs))) - 1L,
                       stringsAsFactors = FALSE)
  st_tab <- st_tab[order(match(st_tab$lhs, lvs), seq_len(nrow(st_tab))), , drop = FALSE]
  st_len <- vapply(lvs, function(l) sum(st_tab$lhs == l), integer(1))

  load_ind <- rep(inds, vapply(model$loads, length, integer(1)))
  load_lv <- unlist(model$loads, use.names = FALSE)
  load_par <- .loading_names(model)$name  # per indicator, per LV (labels shared)

  ord <- .is_ordered(model$ind_type)
  thr_first <- vapply(inds, function(i) {
    if (.is_ordered(model$ind_type[[i]])) pidx(tn$name[tn$lhs == i][1]) else -1L
  }, integer(1))
  # intercepts and standard deviations (scales) of indicators, -1 where an
  # indicator has none (ordered: intercept 0, scale 1; R/indicator.R)
  xn <- .indicator_names(model)
  icpt <- ifelse(is.na(xn$icpt), -1L, pidx(xn$icpt))
  sdp <- ifelse(is.na(xn$sd), -1L, pidx(xn$sd))

  cl <- list(
    n_ind = as.integer(N), n_lv = as.integer(K), n_par = as.integer(P),
    n_cov = as.integer(length(covs)), n_indic = as.integer(M), n_obs = as.integer(nrow(ob)),
    n_rows = 0L, n_alt = 0L, n_xcol = 0L, n_avail = 0L, choice_type = 0L,
    lv_order = as.integer(match(c(model$lv_order, model$random), lvs) - 1L),
    st_ptr = as.integer(c(0L, cumsum(st_len))),
    st_par = as.integer(pidx(st_tab$name)),
    st_src_type = as.integer(st_tab$type),
    st_src = as.integer(st_tab$src),
    cov = as.double(t(covmat)),
    ind_type = as.integer(unname(.ind_type_code[model$ind_type])),
    ind_ncat = as.integer(unname(ncat)),
    ind_thr = as.integer(unname(thr_first)),
    ind_icpt = as.integer(unname(icpt)),
    ind_sd = as.integer(unname(sdp)),
    ind_load_ptr = as.integer(c(0L, cumsum(vapply(model$loads, length, integer(1))))),
    ind_load_lv = as.integer(match(load_lv, lvs) - 1L),
    ind_load_par = as.integer(pidx(load_par)),
    obs_ptr = as.integer(c(0L, cumsum(tabulate(ob$n, N)))),
    obs_ind = as.integer(ob$m - 1L),
    obs_val = as.double(ob$val),
    row_ptr = integer(N + 1L), y = integer(), avail = integer(), X = double(),
    ut_ptr = 0L, ut_par = integer(), ut_col = integer(), ut_lv = integer()
  )
  rows <- integer()
  if (!is.null(ch)) {
    J <- length(alts)
    ta <- do.call(rbind, lapply(alts, function(a) ch$terms[[a]]))
    cl$n_rows <- as.integer(n)
    cl$n_alt <- as.integer(J)
    cl$n_xcol <- as.integer(length(ch$columns))
    cl$choice_type <- switch(ch$type, probit = 2L, nl = 3L, ordered = 4L, 1L) # ranked, best-worst: MNL stages
    cl$row_ptr <- as.integer(c(0L, cumsum(tabulate(grp, N))))
    cl$y <- as.integer(y - 1L)
    if (!is.null(A)) {
      cl$avail <- as.integer(t(A))
      cl$n_avail <- as.integer(n * J)
    }
    cl$X <- as.double(t(X))
    cl$ut_ptr <- as.integer(c(0L, cumsum(vapply(alts, function(a) nrow(ch$terms[[a]]), integer(1)))))
    cl$ut_par <- as.integer(pidx(ta$param))
    cl$ut_col <- as.integer(ifelse(is.na(ta$col), -1L, match(ta$col, ch$columns) - 1L))
    cl$ut_lv <- as.integer(ifelse(is.na(ta$lv), -1L, match(ta$lv, lvs) - 1L))
    # the nonlinear parts of the utilities (R/tape.R, src/iclv_tape.h)
    cl <- c(cl, .tape_compile(ch, alts, pidx, lvs, P))
    if (ch$type == "nl") { # nests (src/iclv_model.h): user's nests, then one per alternative in none
      nn <- ch$nests
      cl$n_nest <- as.integer(length(nn))
      cl$nest_of <- as.integer(match(alts, unlist(nn, use.names = FALSE)) - 1L)
      cl$nest_of <- as.integer(rep(seq_along(nn), lengths(nn))[cl$nest_of + 1L] - 1L)
      cl$nest_par <- as.integer(ifelse(is.na(ch$nest_params), -1L, pidx(ch$nest_params)))
    }
    if (ch$type == "ordered") { # categories and thresholds (src/iclv_model.h)
      cl$n_ocat <- as.integer(ch$categories)
      cl$ocat_thr <- as.integer(pidx(.choice_threshold_names(ch)[1]))
      cl$ocat_logit <- as.integer(identical(ch$link, "logit"))
    }
    rows <- seq_len(n)
    if (!is.null(ch$parts)) cl <- c(cl, .parts_mult(ch, prt$part, pidx)) # relative scales (R/parts.R)
    if (ch$type %in% c("ranked", "bestworst")) {
      rows <- stg$row
      cl$n_rows <- as.integer(length(rows))
      cl$row_ptr <- as.integer(c(0L, cumsum(tabulate(grp[rows], N))))
      cl$y <- as.integer(stg$y - 1L)
      cl$avail <- as.integer(t(stg$A))
      cl$n_avail <- as.integer(length(rows) * J)
      cl$X <- as.double(t(X[rows, , drop = FALSE]))
      if (ch$type == "bestworst") {
        cl$n_mult <- as.integer(length(rows))
        cl$mult_sign <- as.double(stg$sign)
        cl$mult_par <- as.integer(if (is.null(ch$worst_scale)) rep(-1L, length(rows)) else
          ifelse(stg$stage == 2L, pidx(ch$worst_scale), -1L))
      }
    }
  }
  if (!is.null(wts)) cl$weight <- as.double(wts)
  stopifnot(!anyNA(unlist(cl[vapply(cl, is.integer, logical(1))])))
  cl <- lapply(cl, function(v) { names(v) <- NULL; v })

  # one group per set of thresholds (indicators sharing a labelled set share
  # its group, named by the first of them)
  thr <- lapply(inds[ord], function(i) as.integer(match(tn$name[tn$lhs == i], pt$name)))
  names(thr) <- inds[ord]
  thr <- thr[!duplicated(thr)]
  if (!is.null(ch) && ch$type == "ordered") { # the ordered choice's thresholds: one more group
    thr[[ch$choice]] <- as.integer(match(.choice_threshold_names(ch), pt$name))
  }
  structure(list(
    c = cl, partable = pt, ids = ids, n_ind = N, rows = rows, model = model,
    alternatives = if (is.null(ch)) character() else alts,
    lvs = lvs, random = model$random, indicators = inds, covariates = covs,
    thresholds = thr, positive = which(pt$role %in% c("sd", "scale")), unit = which(pt$role == "nest"),
    n_missing = n_missing, n_obs_indicator = stats::setNames(tabulate(ob$m, M), inds),
    categories = categories, xcols = if (is.null(ch)) character() else ch$columns,
    id = model$id, choice_type = if (is.null(ch)) "none" else ch$type,
    weights = if (is.null(wts)) NULL else stats::setNames(wts, ids), weights_column = weights,
    stage = if (!is.null(ch) && ch$type %in% c("ranked", "bestworst")) stg$stage,
    stage_names = if (!is.null(ch) && ch$type %in% c("ranked", "bestworst")) ch$ranks,
    choice_categories = if (!is.null(ch) && ch$type == "ordered") ch$categories,
    part = if (!is.null(ch$parts)) prt$part, part_names = ch$parts$names,
    definitions = model$definitions
  ), class = "iclv_compiled")
}

# The values x of ordered indicator `ind` must be categories 1..C of a fitted
# model (new data need not show every category); row_ids (length(x)): the id
# of each row, named in the error. Returns C.
.val_stored_categories <- function(x, ind, C, row_ids) {
  bad <- which(!is.na(x) & (x != round(x) | x < 1 | x > C))
  if (length(bad)) {
    r <- bad[1]
    iclv_abort("data", sprintf(
      "ordered indicator %s has the value %s in row %d (id %s), which is not one of the categories 1..%d of the fitted model",
      iclv_quote(ind), format(x[r]), r, format(row_ids[r]), C))
  }
  as.integer(C)
}

# Data-driven starting values where the user gave none (names in `given`,
# whose values .iclv_partable() has set); thresholds must end up strictly
# increasing.
.compile_starts <- function(pt, model, ob, inds, given, tn) {
  keep <- pt$name %in% given
  xn <- .indicator_names(model)
  for (m in seq_along(inds)) {
    ind <- inds[m]
    type <- model$ind_type[[ind]]
    v <- ob$val[ob$m == m]
    nv <- length(v)
    lo <- 0.5 / nv
    q <- if (type %in% c("ordered_logit", "binary_logit")) stats::qlogis else stats::qnorm
    set <- function(nm, val) {  # vectorised: one match() per indicator, linear in its categories
      k <- match(nm, pt$name)
      val <- rep_len(val, length(k))
      pt$start[k[!keep[k]]] <<- val[!keep[k]]
    }
    if (.is_ordered(type)) {
      nm <- tn$name[tn$lhs == ind]
      C <- length(nm) + 1L
      cp <- cumsum(tabulate(as.integer(v), C))[seq_len(C - 1L)] / nv
      tau <- q(pmin(pmax(cp, lo), 1 - lo))
      for (c in seq_len(C - 1L)[-1L]) if (tau[c] < tau[c - 1L] + 0.1) tau[c] <- tau[c - 1L] + 0.1
      set(nm, tau)
      keep[match(nm, pt$name)] <- TRUE # a shared set starts from the first indicator that has it
    } else if (type == "normal") {
      s <- if (nv > 1L) stats::sd(v) else NA_real_
      if (!is.finite(s) || s <= 0) s <- 1
      set(xn$icpt[m], mean(v))
      set(xn$sd[m], s)
      set(pt$name[pt$role == "loading" & pt$rhs == ind], 0.5 * s / length(model$loads[[ind]]))
    } else {
      set(xn$icpt[m], q(min(max(mean(v), lo), 1 - lo)))
    }
  }
  # an LV whose fixed loadings (a marker, `f =~ -1*y1`) are all negative:
  # its other loadings start negative too, so that the start does not pit
  # the marker against the rest (from such a start the optimizer can run to
  # a degenerate point, the LV's s.d. to 0 and its loadings to infinity)
  for (l in model$lvs) {
    ld <- pt$role == "loading" & pt$lhs == l
    fx <- pt$name[ld] %in% names(model$fixed)
    if (any(fx) && all(pt$start[ld][fx] < 0)) {
      flip <- which(ld & !keep)
      pt$start[flip] <- -abs(pt$start[flip])
    }
  }
  # defined parameters (`:=`, R/constraints.R): the auxiliary parameters not
  # given start where their definitions best match the data-based starts,
  # then every definition is applied
  defs <- model$definitions
  if (length(defs)) {
    target <- stats::setNames(pt$start, pt$name)[intersect(names(defs), pt$name)]
    target <- target[is.finite(target)]
    aux <- pt$name[pt$role == "auxiliary" & pt$free & !pt$name %in% given]
    pt <- .con_fit_starts(pt, defs, aux, target)
    pt <- .con_fill_start(pt, defs)
  }
  # the model's own start/fixed values are in pt already (.iclv_partable(),
  # with the categories known); the call's come later (.apply_start_fixed())
  for (ind in unique(pt$lhs[pt$role == "threshold"])) {
    tv <- pt$start[pt$role == "threshold" & pt$lhs == ind]
    if (length(tv) > 1L && any(diff(tv) <= 0)) {
      iclv_abort("spec", sprintf("the thresholds of %s must be strictly increasing; their start/fixed values are %s",
                                 iclv_quote(ind), paste(format(tv), collapse = ", ")))
    }
  }
  if (anyNA(pt$start)) {
    iclv_abort("spec", sprintf("no starting value for %s", iclv_quote(pt$name[is.na(pt$start)][1])))
  }
  pt
}

# The thresholds of an ordered choice start, where the user gave none, from
# the data's cumulative shares of its categories y (1..C) through the link's
# quantile function, as the ordered indicators' do; strictly increasing.
.compile_choice_starts <- function(pt, ch, y, given) {
  nm <- .choice_threshold_names(ch)
  C <- length(nm) + 1L
  q <- if (identical(ch$link, "logit")) stats::qlogis else stats::qnorm
  nv <- length(y)
  lo <- 0.5 / max(nv, 1L)
  cp <- cumsum(tabulate(as.integer(y), C))[seq_len(C - 1L)] / max(nv, 1L)
  tau <- q(pmin(pmax(cp, lo), 1 - lo))
  for (c in seq_len(C - 1L)[-1L]) if (tau[c] < tau[c - 1L] + 0.1) tau[c] <- tau[c - 1L] + 0.1
  k <- match(nm, pt$name)
  set <- !(nm %in% given)
  pt$start[k[set]] <- tau[set]
  tv <- pt$start[k]
  if (length(tv) > 1L && any(diff(tv) <= 0)) {
    iclv_abort("spec", sprintf("the thresholds of the ordered choice %s must be strictly increasing; their start/fixed values are %s",
                               iclv_quote(ch$choice), paste(format(tv), collapse = ", ")))
  }
  pt
}

# The categories (1..C) of an ordered choice column `col`: whole numbers (or
# a factor's level positions); C = `C` (declared, or a fit's when `fitted`)
# or the largest value in the data. Values outside 1..C are a data error
# naming the row and id. Returns the integer categories with attribute "C".
.val_ordered_choice <- function(data, col, C, row_ids, fitted = FALSE) {
  .val_column_exists(data, col, "choice column")
  x <- data[[col]]
  if (is.factor(x)) x <- as.integer(x)
  if (!is.numeric(x) || is.matrix(x)) {
    iclv_abort("data", sprintf("the ordered choice column %s must hold the categories 1..C as numbers", iclv_quote(col)))
  }
  na <- which(is.na(x))
  if (length(na)) {
    iclv_abort("data", sprintf("the choice (column %s) is missing (NA) in row %d (id %s)", iclv_quote(col), na[1],
                               format(row_ids[na[1]])))
  }
  if (is.null(C) || is.na(C)) {
    bad <- which(x != round(x) | x < 1)
    C <- if (length(x)) max(x) else NA
    if (!length(bad) && (is.na(C) || C < 2)) {
      iclv_abort("data", sprintf("the ordered choice column %s shows fewer than two categories; declare them with iclv_choice(categories = )",
                                 iclv_quote(col)))
    }
    if (!length(bad) && C > .max_categories) bad <- which(x > .max_categories)[1]
  } else {
    bad <- which(x != round(x) | x < 1 | x > C)
  }
  if (length(bad)) {
    r <- bad[1]
    # C read from the data is only a count of categories when every value is
    # a whole number >= 1: otherwise name the rule, not a range like 1..5.5
    known <- !is.na(C) && C == round(C) && C >= 2 && C <= .max_categories
    iclv_abort("data", sprintf(
      "the ordered choice %s has the value %s in row %d (id %s), which is not one of the categories %s%s",
      iclv_quote(col), format(x[r]), r, format(row_ids[r]),
      if (known) sprintf("1..%d", as.integer(C)) else sprintf("(whole numbers 1..C, C at most %d)", .max_categories),
      if (fitted) " of the fitted model" else ""))
  }
  structure(as.integer(x), C = as.integer(C))
}

#' @export
print.iclv_compiled <- function(x, ...) {
  cc <- x$c
  cat(sprintf("Compiled ICLV model: %d individuals, %d latent variables, %d parameters, %d indicator observations, %d choice rows\n",
              cc$n_ind, cc$n_lv, cc$n_par, cc$n_obs, cc$n_rows))
  invisible(x)
}
