# Checks of the data against a model. Each check raises a classed error
# (iclv_error_data, or iclv_error_spec for the specification) whose message
# names the column, row, id or parameter at fault. Rows are the 1-based row
# numbers of the data.frame.

.val_data_frame <- function(data) {
  if (!is.data.frame(data)) {
    iclv_abort("data", sprintf("'data' must be a data.frame, not an object of class %s",
                               iclv_quote(class(data)[1])))
  }
  if (nrow(data) == 0L) iclv_abort("data", "'data' has no rows")
  nm <- names(data)
  dup <- which(duplicated(nm) & !is.na(nm) & nzchar(nm))
  if (length(dup)) {
    iclv_abort("data", sprintf(
      "'data' has two columns named %s (columns %d and %d); column names must be unique, or the model would silently read the first",
      iclv_quote(nm[dup[1]]), match(nm[dup[1]], nm), dup[1]))
  }
  invisible()
}

# "row r" of the data, with the individual's id when the id column is known
# (`id`: the id column's values): "row 7 (id 'A12')".
.val_row <- function(r, id = NULL) {
  if (is.null(id)) sprintf("row %d", r) else sprintf("row %d (id %s)", r, iclv_quote(format(id[r])))
}

# Individuals: returns list(ids, grp) with grp[i] in 1..N the individual of
# row i. The rows of one id must be adjacent.
.val_ids <- function(data, id) {
  if (!id %in% names(data)) {
    iclv_abort("data", sprintf("id column %s is not in the data", iclv_quote(id)))
  }
  x <- data[[id]]
  if (!is.atomic(x) || is.matrix(x)) iclv_abort("data", sprintf("id column %s must be a plain vector", iclv_quote(id)))
  na <- which(is.na(x))
  if (length(na)) {
    iclv_abort("data", sprintf("id column %s is missing (NA) in row %d", iclv_quote(id), na[1]))
  }
  if (is.complex(x) || is.raw(x) || is.logical(x)) {
    iclv_abort("data", sprintf("id column %s must hold numbers, strings or a factor, not %s values",
                               iclv_quote(id), typeof(x)))
  }
  inf <- if (is.numeric(x)) which(is.infinite(x)) else integer()
  if (length(inf)) {
    iclv_abort("data", sprintf("id column %s is not finite (%s) in row %d", iclv_quote(id),
                               format(x[inf[1]]), inf[1]))
  }
  if (is.factor(x)) x <- as.character(x)
  ids <- unique(x)
  grp <- match(x, ids)
  n <- length(grp)
  starts <- c(1L, which(grp[-1L] != grp[-n]) + 1L)
  again <- starts[duplicated(grp[starts])]
  if (length(again)) {
    r <- again[1]
    first <- match(grp[r], grp)
    iclv_abort("data", sprintf(
      "the rows of id %s are not adjacent: it appears in row %d and again in row %d after other ids; sort the data by %s",
      iclv_quote(x[r]), first, r, iclv_quote(id)))
  }
  list(ids = ids, grp = grp)
}

# A column used as `what` must exist (`hint` explains where it is used).
.val_column_exists <- function(data, col, what) {
  if (!col %in% names(data)) {
    iclv_abort("data", sprintf("%s %s is not a column of the data", what, iclv_quote(col)))
  }
  invisible()
}

# A numeric (or logical) column; returns it as double. `id` (the id column's
# values, optional) lets messages name the individual of a bad row.
.val_numeric_column <- function(data, col, what, id = NULL) {
  x <- data[[col]]
  if (is.logical(x)) return(as.double(x))
  if (!is.numeric(x) || is.factor(x) || is.matrix(x)) {
    iclv_abort("data", sprintf("%s %s must be numeric, not %s", what, iclv_quote(col),
                               class(x)[1]))
  }
  x <- as.double(x)
  bad <- which(is.infinite(x) | is.nan(x))
  if (length(bad)) {
    iclv_abort("data", sprintf("%s %s is not finite (%s) in %s", what, iclv_quote(col), format(x[bad[1]]),
                               .val_row(bad[1], id)))
  }
  x
}

# Values of x (rows with a value) must be equal within each individual.
# Returns the per-individual value (NA where the individual has none).
.val_constant_within <- function(x, grp, N, col, what, ids) {
  ok <- which(!is.na(x))
  first <- rep(NA_real_, N)
  g <- grp[ok]
  fo <- !duplicated(g)
  first[g[fo]] <- x[ok][fo]
  bad <- ok[x[ok] != first[g]]
  if (length(bad)) {
    r <- bad[1]
    r0 <- ok[match(grp[r], g)]
    iclv_abort("data", sprintf(
      "%s %s varies within id %s (row %d: %s, row %d: %s); it must be constant within an individual%s",
      what, iclv_quote(col), iclv_quote(ids[grp[r]]), r0, format(x[r0]), r, format(x[r]),
      if (what == "indicator") " (or use indicator_level = \"row\")" else ""))
  }
  first
}

# Individual weights (iclv(..., weights = "w")): `weights` is NULL or the
# name of a numeric column, finite, not NA, non-negative, constant within
# each individual and not zero for everyone. Returns NULL or the (N) weight
# of each individual. Errors (iclv_error_control for the argument,
# iclv_error_data for the column) name the column, and the row and id at
# fault.
.val_weights <- function(data, weights, grp, N, ids, id_col) {
  if (is.null(weights)) return(NULL)
  if (!is.character(weights) || length(weights) != 1L || is.na(weights) || !nzchar(weights)) {
    iclv_abort("control", "'weights' must be NULL or the name of one column of the data")
  }
  .val_column_exists(data, weights, "weights column")
  id <- data[[id_col]]
  x <- .val_numeric_column(data, weights, "weights column", id = id)
  na <- which(is.na(x))
  if (length(na)) {
    iclv_abort("data", sprintf("weights column %s is missing (NA) in %s", iclv_quote(weights),
                               .val_row(na[1], id)))
  }
  neg <- which(x < 0)
  if (length(neg)) {
    iclv_abort("data", sprintf("weights column %s is negative (%s) in %s; weights must be >= 0",
                               iclv_quote(weights), format(x[neg[1]]), .val_row(neg[1], id)))
  }
  w <- .val_constant_within(x, grp, N, weights, "weights column", ids)
  if (all(w == 0)) iclv_abort("data", sprintf("weights column %s is 0 for every individual", iclv_quote(weights)))
  w
}

# Checks an indicator's values by type. Returns the number of categories
# (ordered: declared or from the data, at most .max_categories; binary: 2;
# normal: 0). `id` (the id column's values, optional) lets messages name the
# individual of a bad row. Linear in the number of rows and categories.
# `need_two`: at least two categories must be observed (estimation).
.val_indicator_values <- function(x, ind, type, declared, id = NULL, need_two = TRUE) {
  ok <- which(!is.na(x))
  if (length(ok) == 0L) return(if (.is_ordered(type)) declared else if (.is_binary(type)) 2L else 0L)
  v <- x[ok]
  at <- function(r) sprintf("the value %s in %s", format(x[r], digits = 15), .val_row(r, id))
  if (.is_ordered(type)) {
    nonint <- ok[v != round(v)]
    if (length(nonint)) {
      iclv_abort("data", sprintf("ordered indicator %s has %s, which is not a whole number; its values must be the categories 1..C",
                                 iclv_quote(ind), at(nonint[1])))
    }
    if (!is.na(declared)) {
      out <- ok[v < 1 | v > declared]
      if (length(out)) {
        iclv_abort("data", sprintf("ordered indicator %s has %s, outside its declared categories 1..%d",
                                   iclv_quote(ind), at(out[1]), declared))
      }
      C <- declared
    } else {
      # before any integer conversion: 1e10 is no category count
      out <- ok[v < 1 | v > .max_categories]
      if (length(out)) {
        iclv_abort("data", sprintf(
          "ordered indicator %s has %s: undeclared categories must be 1..C with C at most %d (recode the values to 1..C, or use indicators = list(%s = \"normal\"))",
          iclv_quote(ind), at(out[1]), .max_categories, ind))
      }
      C <- as.integer(max(v))
      seen <- tabulate(as.integer(v), C) > 0L
      if (!all(seen)) {
        iclv_abort("data", sprintf(
          "ordered indicator %s has the values %s but never %s: undeclared categories must be exactly 1..C with every category observed; recode, or declare them with categories = list(%s = C)",
          iclv_quote(ind), paste(which(seen), collapse = ", "), paste(which(!seen), collapse = ", "), ind))
      }
    }
    # estimation needs two observed categories to say anything about the
    # thresholds; evaluating at given parameters (iclv_loglik() on one
    # individual) does not, when the categories are declared
    nobs <- length(unique(v))
    if (nobs < 2L && (need_two || is.na(declared))) {
      iclv_abort("data", sprintf("ordered indicator %s has fewer than 2 observed categories (only %s)",
                                 iclv_quote(ind), format(v[1])))
    }
    return(as.integer(C))
  }
  if (.is_binary(type)) {
    bad <- ok[!(v %in% c(0, 1))]
    if (length(bad)) {
      iclv_abort("data", sprintf("binary indicator %s must be 0 or 1; it has %s",
                                 iclv_quote(ind), at(bad[1])))
    }
    return(2L)
  }
  0L
}

# The chosen alternative of every row as 1..J.
.val_choice_column <- function(data, col, alts) {
  .val_column_exists(data, col, "choice column")
  x <- data[[col]]
  na <- which(is.na(x))
  if (length(na)) {
    iclv_abort("data", sprintf("the choice (column %s) is missing (NA) in row %d", iclv_quote(col), na[1]))
  }
  J <- length(alts)
  if (is.character(x) || is.factor(x)) {
    x <- as.character(x)
    y <- match(x, alts)
    bad <- which(is.na(y))
    if (length(bad)) {
      iclv_abort("data", sprintf(
        "the choice %s in row %d (column %s) is not an alternative (alternatives: %s)",
        iclv_quote(x[bad[1]]), bad[1], iclv_quote(col), iclv_quote(alts)))
    }
    return(y)
  }
  if (is.numeric(x) && !is.matrix(x)) {
    # alternatives named by numbers other than their positions make a numeric
    # choice ambiguous: is 1 the first alternative or the one named "1"?
    as_num <- suppressWarnings(as.numeric(alts))
    if (any(!is.na(as_num) & as_num != seq_len(J))) {
      iclv_abort("data", sprintf(paste0(
        "the choice column %s is numeric, but the alternatives are named by numbers that are not their ",
        "positions (%s): a numeric choice is read as a position, so give the choices as character ",
        "(the alternatives' names) or name the alternatives in the order of their numbers"),
        iclv_quote(col), paste(sprintf("position %d is '%s'", seq_len(J), alts)[!is.na(as_num) & as_num != seq_len(J)],
                               collapse = ", ")))
    }
    bad <- which(x != round(x) | x < 1 | x > J)
    if (length(bad)) {
      iclv_abort("data", sprintf(
        "the choice %s in row %d (column %s) is not the position of an alternative (1..%d: %s)",
        format(x[bad[1]]), bad[1], iclv_quote(col), J, iclv_quote(alts)))
    }
    return(as.integer(x))
  }
  iclv_abort("data", sprintf(
    "the choice column %s must hold alternative names (character/factor) or positions (numeric), not %s",
    iclv_quote(col), class(x)[1]))
}

# Availability matrix (n x J, 0/1 integers), or NULL. `row_ids` (n): the id
# of each row, named in the error for an unavailable chosen alternative.
.val_availability <- function(data, available, alts, y, row_ids = NULL) {
  if (is.null(available)) return(NULL)
  n <- nrow(data)
  A <- matrix(1L, n, length(alts), dimnames = list(NULL, alts))
  for (a in names(available)) {
    col <- available[[a]]
    if (!col %in% names(data)) {
      iclv_abort("data", sprintf("availability column %s of alternative %s is not a column of the data",
                                 iclv_quote(col), iclv_quote(a)))
    }
    x <- data[[col]]
    if (!(is.numeric(x) || is.logical(x)) || is.factor(x)) {
      iclv_abort("data", sprintf("availability column %s must be numeric 0/1, not %s", iclv_quote(col), class(x)[1]))
    }
    bad <- which(is.na(x) | !(x %in% c(0, 1)))
    if (length(bad)) {
      iclv_abort("data", sprintf("availability column %s must be 0 or 1; row %d has %s",
                                 iclv_quote(col), bad[1], format(x[bad[1]])))
    }
    A[, a] <- as.integer(x)
  }
  un <- which(A[cbind(seq_len(n), y)] == 0L)
  if (length(un)) {
    r <- un[1]
    iclv_abort("data", sprintf("row %d%s: the chosen alternative %s is not available (column %s is 0)",
                               r, if (is.null(row_ids)) "" else sprintf(" (id %s)", format(row_ids[r])),
                               iclv_quote(alts[y[r]]), iclv_quote(available[[alts[y[r]]]])))
  }
  A
}

# Attribute matrix (n x length(cols)). NA is an error where an available
# alternative uses the column, and 0 otherwise (it never enters a utility).
# First, no choice parameter (terms[[alt]]$param) may be named like a column.
.val_attributes <- function(data, cols, terms, alts, A, tapes = NULL) {
  # the alternatives that use column key `col` (1-based): in a linear term
  # or in the data of a nonlinear part (R/tape.R)
  uses <- function(col) {
    which(vapply(alts, function(a) col %in% terms[[a]]$col || col %in% tapes[[a]]$data, logical(1)))
  }
  # a choice parameter spelled like a column of the data is ambiguous (did
  # the user mean the parameter or the column?): refuse it by name
  params <- unique(unlist(lapply(terms, `[[`, "param"), use.names = FALSE))
  clash <- intersect(params, names(data))
  if (length(clash)) {
    users <- alts[vapply(alts, function(a) clash[1] %in% terms[[a]]$param, logical(1))]
    iclv_abort("data", sprintf(
      "the utility of %s has the parameter %s, which is also the name of a column of the data; rename the parameter (or the column)",
      iclv_quote(users[1]), iclv_quote(clash[1])))
  }
  n <- nrow(data)
  X <- matrix(0, n, length(cols), dimnames = list(NULL, cols))
  for (j in seq_along(cols)) {
    col <- cols[j]
    if (.is_data_expr(col)) {
      # a data expression of a utility (expr.R): evaluated once, here
      users <- uses(col)
      x <- .expr_column(data, col, alts[users])
      X[, j] <- .val_attribute_na(x, col, users, A, "data expression")
      next
    }
    if (!col %in% names(data)) {
      users <- alts[uses(col)]
      iclv_abort("data", sprintf(
        "the utility of %s uses %s, which is neither a column of the data nor a latent variable of the model",
        iclv_quote(users[1]), iclv_quote(col)))
    }
    x <- .val_numeric_column(data, col, "attribute column")
    users <- uses(col)
    X[, j] <- .val_attribute_na(x, col, users, A, "attribute column")
  }
  X
}

# Missing values of attribute x (column or data expression `col`, used by
# the alternatives `users`, indices) are allowed where none of those is
# available (A: availability matrix or NULL) and then count 0; elsewhere an
# error naming the row.
.val_attribute_na <- function(x, col, users, A, what) {
  na <- which(is.na(x))
  if (length(na)) {
    av <- if (is.null(A)) rep(TRUE, length(na)) else rowSums(A[na, users, drop = FALSE]) > 0
    if (any(av)) {
      r <- na[which(av)[1]]
      iclv_abort("data", sprintf(
        "%s %s is missing (NA) in row %d, where an alternative that uses it is available",
        what, iclv_quote(col), r))
    }
    x[na] <- 0
  }
  x
}

# A fit handed to a method (summary, vcov, predict, ...) must still be what
# iclv() returned: a fit edited by hand (fit$coefficients <- NULL) is an
# input error naming the part at fault, not "subscript out of bounds" deep
# in a method. `need`: the parts the calling method uses beyond the core
# ("compiled", "model", "draws_design", "control" for predictions).
.val_fit <- function(object, need = character()) {
  bad <- function(what) {
    iclv_abort("input", sprintf("'object' is not a fit as iclv() returns it: %s (was it modified by hand?)", what))
  }
  if (!inherits(object, "iclv") || !is.list(object)) bad("it is not a list of class \"iclv\"")
  cf <- object$coefficients
  if (!is.numeric(cf) || is.null(names(cf)) || anyNA(names(cf)) || anyDuplicated(names(cf))) {
    bad("'coefficients' is not a named numeric vector")
  }
  pt <- object$partable
  if (!is.data.frame(pt) || !all(c("name", "block", "free", "est", "se") %in% names(pt)) ||
      !identical(as.character(pt$name), names(cf)) || !is.logical(pt$free) || anyNA(pt$free)) {
    bad("'partable' does not list the parameters of 'coefficients' (columns name, block, free, est, se)")
  }
  np <- object$n_params
  if (!is.numeric(np) || length(np) != 1L || is.na(np) || np != sum(pt$free)) {
    bad("'n_params' is not the number of free parameters in 'partable'")
  }
  scalar <- function(x, int = FALSE) is.numeric(x) && length(x) == 1L && (!int || (!is.na(x) && x >= 1))
  if (!scalar(object$loglik)) bad("'loglik' is not one number")
  if (!scalar(object$n_individuals, int = TRUE)) bad("'n_individuals' is not a positive count")
  cv <- object$convergence
  if (!is.list(cv) || !is.numeric(cv$code) || length(cv$code) != 1L || is.na(cv$code)) {
    bad("'convergence' has no code")
  }
  if (!is.list(object$vcov) || !all(c("robust", "hessian", "bhhh") %in% names(object$vcov))) {
    bad("'vcov' is not the list of the covariance matrices (robust, hessian, bhhh)")
  }
  free_names <- as.character(pt$name[pt$free])
  for (type in c("robust", "hessian", "bhhh")) {
    V <- object$vcov[[type]]
    if (is.null(V)) next
    if (!is.matrix(V) || !is.numeric(V) || !identical(dim(V), rep(length(free_names), 2L)) ||
        !identical(rownames(V), free_names) || !identical(colnames(V), free_names)) {
      bad(sprintf("its \"%s\" covariance matrix is not a square matrix over the %d free parameters",
                  type, length(free_names)))
    }
  }
  if (!is.character(object$vcov_type) || length(object$vcov_type) != 1L ||
      !object$vcov_type %in% c("robust", "hessian", "bhhh")) {
    bad("'vcov_type' is not \"robust\", \"hessian\" or \"bhhh\"")
  }
  if ("compiled" %in% need && !inherits(object$compiled, "iclv_compiled")) bad("'compiled' is missing")
  if ("model" %in% need && !inherits(object$model, "iclv_model")) bad("'model' is not an iclv_model()")
  if ("draws_design" %in% need &&
      !(inherits(object$draws_design, "iclv_draws") || (is.numeric(object$draws_design) && length(dim(object$draws_design)) == 3L))) {
    bad("'draws_design' is not an iclv_draws() design")
  }
  if ("control" %in% need && !inherits(object$control, "iclv_control")) bad("'control' is not an iclv_control()")
  invisible(object)
}

# A confidence level (confint()'s `level`, tidy()'s `conf.level`).
.val_level <- function(level, arg) {
  if (!is.numeric(level) || length(level) != 1L || is.na(level) || !(level > 0 && level < 1)) {
    iclv_abort("control", sprintf("'%s' must be one number between 0 and 1 (got %s)", arg,
                                  paste(format(level), collapse = ", ")))
  }
  invisible(level)
}

# A latent variable used in a utility or as a structural predictor that is
# also a column of the data is ambiguous (did the user mean the column?):
# refuse it by name, as a parameter spelled like a column is refused.
.val_lvs_not_columns <- function(model, data) {
  used <- unlist(lapply(model$choice$terms, function(t) t$lv), use.names = FALSE)
  used <- c(used, unlist(model$structural, use.names = FALSE))
  clash <- intersect(intersect(c(model$lvs, model$random), used), names(data))
  if (length(clash)) {
    iclv_abort("data", sprintf(paste0(
      if (clash[1] %in% model$lvs) "latent variable" else "random term",
      " %s is also the name of a column of the data; the model never reads the column: rename one of them"),
      iclv_quote(clash[1])))
  }
  invisible()
}

# `digits` of a print method: a whole number >= 1; more than 18 is shown as
# 18 (the methods add up to 4 for the log-likelihood, and format() allows
# at most 22; options(digits = 22) gives a default of 19).
.val_digits <- function(digits) {
  if (!is.numeric(digits) || length(digits) != 1L || is.na(digits) || digits != round(digits) ||
      digits < 1) {
    iclv_abort("control", sprintf("'digits' must be a whole number of at least 1 (got %s)",
                                  paste(format(digits), collapse = ", ")))
  }
  as.integer(min(digits, 18))
}
