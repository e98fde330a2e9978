# Utilities written as R expressions (issue 14), the part that is linear in
# the parameters.
#
# A utility string that uses only names, `+` and `*` is read by the term
# parser of syntax.R, as before. Any other utility (numbers, `-`, `/`, `^`,
# parentheses, exp(), log(), sqrt(), comparisons, ifelse(), strings) is
# parsed with R's parser and expanded here into the same terms:
#
#   V = sum_k  param_k * data_k * lv_k
#
# where data_k is an expression of data columns only (NA when the term has
# none) and lv_k a latent variable (NA when none). Each distinct data
# expression becomes one column of X (iclv_model.h), evaluated ONCE in R at
# compile time (.expr_column), so the engines see today's terms
# (ut_par / ut_col / ut_lv) and keep their fast path.
#
# How names resolve, in this order:
#   1. a latent variable of the model (iclv_model()) is a latent variable;
#   2. in each additive term (a product of factors, `*` and `/`), the first
#      factor that is a plain name and not divided by is the term's
#      PARAMETER (the old syntax's rule: "the first factor is the
#      parameter");
#   3. every other name is a DATA COLUMN.
# A name used as a parameter that is also a column of the data, or a
# parameter that also appears as a data column in another term, is an
# error (ambiguous); a data-column name that is not a column of the data is
# an error at compile time, whose message says that a parameter there would
# make the utility nonlinear in its parameters, not supported yet.
#
# Expansion rules: `a + b`, `a - b`, `-a` and parentheses around a sum at
# the additive level give separate terms (the sign goes into the data
# expression); `ifelse(cond, A, B)` leading a product (before any parameter)
# is distributed: the terms of A times (cond) plus the terms of B times
# !(cond), so `ifelse(income > 50, b_high, b_low) * price` is linear too.
# A factor after the parameter, or a parenthesised sum after it, is data.
# Functions allowed in data expressions: .expr_funs.

.expr_funs <- c("+", "-", "*", "/", "^", "(", "exp", "log", "sqrt", "pnorm",
                "==", "!=", "<", ">", "<=", ">=", "ifelse", "&", "|", "!")

# Does the utility string need R's parser (anything beyond names, `+`, `*`)?
.utility_is_expression <- function(s) {
  if (identical(s, "0")) return(FALSE) # the zero utility of the old syntax
  if (grepl("[^A-Za-z0-9._[:space:]+*]", s)) return(TRUE)
  f <- trimws(unlist(strsplit(s, "[+*]")))
  any(grepl("^([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][0-9]+)?$", f))
}

.expr_text <- function(e) paste(deparse(e, width.cutoff = 500L), collapse = " ")

.is_call_to <- function(e, f, n = NULL) {
  is.call(e) && is.name(e[[1L]]) && identical(as.character(e[[1L]]), f) &&
    (is.null(n) || length(e) == n + 1L)
}

# Terms of utility string `s` of alternative `alt` given the model's latent
# variables: data.frame(param, f1, f2, col, lv) as .spec_classify_choice
# makes them (f1 = col, f2 = lv), `col` being the data expression's text
# (a plain column name when the expression is one name).
.expr_utility_terms <- function(s, alt, lvs) {
  where <- sprintf("utility of %s", iclv_quote(alt))
  e <- tryCatch(str2lang(s), error = function(err) {
    iclv_abort("spec", sprintf("%s is not a valid expression (%s): %s", where, iclv_quote(s),
                               conditionMessage(err)))
  })
  .expr_check_names(e, where, s)
  terms <- .expr_sum(e, 1, list(), where, lvs)
  rows <- lapply(terms, function(t) .expr_term_row(t, where, lvs))
  out <- do.call(rbind, c(list(data.frame(param = character(), f1 = character(), f2 = character(),
                                          col = character(), lv = character(),
                                          stringsAsFactors = FALSE)), rows))
  key <- paste(out$param, out$col, out$lv, sep = "\r")
  if (anyDuplicated(key)) {
    k <- which(duplicated(key))[1]
    iclv_abort("spec", sprintf("%s has the term %s twice (%s)", where,
                               iclv_quote(.expr_term_label(out[k, ])), iclv_quote(s)))
  }
  out
}

.expr_term_label <- function(r) {
  paste(c(r$param, if (!is.na(r$col)) r$col, if (!is.na(r$lv)) r$lv), collapse = " * ")
}

# Every symbol must be a name (not a reserved word), every function one of
# .expr_funs, every constant a finite number or a string.
.expr_check_names <- function(e, where, s) {
  walk <- function(x) {
    if (is.name(x)) {
      nm <- as.character(x)
      if (!.is_name(nm)) {
        iclv_abort("spec", sprintf("%s: %s in %s is not a name", where, iclv_quote(nm), iclv_quote(s)))
      }
    } else if (is.call(x)) {
      f <- x[[1L]]
      if (!is.name(f) || !as.character(f) %in% .expr_funs) {
        iclv_abort("spec", sprintf(
          "%s: %s is not supported in %s (allowed: numbers, strings, + - * / ^, parentheses, %s)",
          where, iclv_quote(.expr_text(f)), iclv_quote(s),
          paste(setdiff(.expr_funs, c("+", "-", "*", "/", "^", "(")), collapse = ", ")))
      }
      if (identical(as.character(f), "ifelse") && length(x) != 4L) {
        iclv_abort("spec", sprintf("%s: ifelse() takes three arguments (condition, yes, no) in %s",
                                   where, iclv_quote(s)))
      }
      for (a in as.list(x)[-1L]) {
        if (is.name(a) && !nzchar(as.character(a))) {
          iclv_abort("spec", sprintf("%s: an argument is empty in %s", where, iclv_quote(s)))
        }
        walk(a)
      }
    } else if (!(is.character(x) || (is.numeric(x) && all(is.finite(x))) || (is.logical(x) && !anyNA(x)))) {
      iclv_abort("spec", sprintf("%s: the constant %s in %s is not a finite number or a string",
                                 where, iclv_quote(.expr_text(x)), iclv_quote(s)))
    }
    invisible()
  }
  walk(e)
}

# Additive expansion: a list of terms, each list(sign, factors (list of
# list(e, pow))). `extra`: data factors every term gets (from ifelse).
.expr_sum <- function(e, sign, extra, where, lvs) {
  if (.is_call_to(e, "+", 2L)) {
    return(c(.expr_sum(e[[2L]], sign, extra, where, lvs), .expr_sum(e[[3L]], sign, extra, where, lvs)))
  }
  if (.is_call_to(e, "-", 2L)) {
    return(c(.expr_sum(e[[2L]], sign, extra, where, lvs), .expr_sum(e[[3L]], -sign, extra, where, lvs)))
  }
  if (.is_call_to(e, "-", 1L)) return(.expr_sum(e[[2L]], -sign, extra, where, lvs))
  if (.is_call_to(e, "+", 1L) || .is_call_to(e, "(", 1L)) return(.expr_sum(e[[2L]], sign, extra, where, lvs))
  fl <- .expr_flatten(e, 1)
  sign <- sign * fl$sign
  fs <- fl$factors
  p <- .expr_param_index(fs, lvs)
  q <- which(vapply(fs, function(f) .is_call_to(f$e, "ifelse", 3L) && f$pow == 1, logical(1)))[1]
  if (!is.na(q) && (is.na(p) || q < p)) {
    ie <- fs[[q]]$e
    rest <- c(extra, fs[-q])
    cond <- ie[[2L]]
    yes <- .expr_sum(ie[[3L]], sign, c(rest, list(list(e = call("(", cond), pow = 1))), where, lvs)
    no <- .expr_sum(ie[[4L]], sign, c(rest, list(list(e = call("!", call("(", cond)), pow = 1))), where, lvs)
    return(c(yes, no))
  }
  list(list(sign = sign, factors = c(fs, extra), text = .expr_text(e)))
}

# Factors of a product: `*` and `/` (and parentheses around a product, a
# name or a negation, and unary minus) flattened into list(sign, factors =
# list(list(e, pow))).
.expr_flatten <- function(e, pow) {
  if (.is_call_to(e, "*", 2L) || .is_call_to(e, "/", 2L)) {
    a <- .expr_flatten(e[[2L]], pow)
    b <- .expr_flatten(e[[3L]], if (.is_call_to(e, "/", 2L)) -pow else pow)
    return(list(sign = a$sign * b$sign, factors = c(a$factors, b$factors)))
  }
  if (.is_call_to(e, "-", 1L)) {
    a <- .expr_flatten(e[[2L]], pow)
    return(list(sign = -a$sign, factors = a$factors))
  }
  if (.is_call_to(e, "(", 1L) && (.is_call_to(e[[2L]], "*", 2L) || .is_call_to(e[[2L]], "/", 2L) ||
                                  .is_call_to(e[[2L]], "(", 1L) || .is_call_to(e[[2L]], "-", 1L) ||
                                  is.name(e[[2L]]))) {
    return(.expr_flatten(e[[2L]], pow))
  }
  list(sign = 1, factors = list(list(e = e, pow = pow)))
}

# Index of the parameter among the factors: the first plain name, not a
# latent variable, not divided by; NA when there is none.
.expr_param_index <- function(fs, lvs) {
  ok <- vapply(fs, function(f) is.name(f$e) && f$pow == 1 && !as.character(f$e) %in% lvs, logical(1))
  which(ok)[1]
}

# One expanded term -> one row (param, f1, f2, col, lv).
.expr_term_row <- function(t, where, lvs) {
  fs <- t$factors
  p <- .expr_param_index(fs, lvs)
  if (is.na(p)) {
    iclv_abort("spec", sprintf(
      "%s: the term %s has no parameter; a term is a parameter (the first plain name of a product) times data and at most one latent variable, e.g. 'b_price * price' or 'b * (brand == \"Novum\")'",
      where, iclv_quote(t$text)))
  }
  param <- as.character(fs[[p]]$e)
  fs <- fs[-p]
  is_lv <- vapply(fs, function(f) is.name(f$e) && as.character(f$e) %in% lvs, logical(1))
  lv_pow <- vapply(fs[is_lv], `[[`, numeric(1), "pow")
  if (any(lv_pow != 1)) {
    iclv_abort("spec", sprintf("%s: the term %s divides by a latent variable, which is not supported",
                               where, iclv_quote(t$text)))
  }
  if (sum(is_lv) > 1L) {
    iclv_abort("spec", sprintf("%s: the term %s multiplies two latent variables, which is not supported",
                               where, iclv_quote(t$text)))
  }
  lv <- if (any(is_lv)) as.character(fs[[which(is_lv)]]$e) else NA_character_
  data <- fs[!is_lv]
  for (f in data) {
    inside <- intersect(all.vars(f$e), lvs)
    if (length(inside)) {
      iclv_abort("spec", sprintf(
        "%s: in the term %s the latent variable %s is inside a function or a power; only 'parameter * data * latent variable' is supported",
        where, iclv_quote(t$text), iclv_quote(inside[1])))
    }
  }
  col <- .expr_data_call(data, t$sign)
  data.frame(param = param, f1 = col, f2 = lv, col = col, lv = lv, stringsAsFactors = FALSE)
}

# The text of sign * prod(data factors with pow 1) / prod(those with pow -1),
# NA when it is the constant 1; a single plain name stays that name (the
# column of the old syntax, the same X column).
.expr_data_call <- function(data, sign) {
  num <- lapply(Filter(function(f) f$pow == 1, data), `[[`, "e")
  den <- lapply(Filter(function(f) f$pow == -1, data), `[[`, "e")
  prod_of <- function(xs) Reduce(function(a, b) call("*", a, b), xs)
  if (!length(num) && !length(den)) {
    return(if (sign > 0) NA_character_ else "-1")
  }
  e <- if (length(num)) prod_of(num) else 1
  if (length(den)) e <- call("/", e, if (length(den) == 1L) den[[1L]] else call("(", prod_of(den)))
  if (sign < 0) e <- call("-", e)
  .expr_text(e)
}

# Is a column key (terms' `col`) a data expression rather than a column name?
.is_data_expr <- function(key) !.is_name(key)

# The data columns a choice part reads: plain columns and the names inside
# its data expressions.
.choice_data_vars <- function(ch) {
  cols <- ch$columns
  if (!length(cols)) return(character())
  unique(unlist(lapply(cols, function(k) if (.is_data_expr(k)) all.vars(str2lang(k)) else k),
                use.names = FALSE))
}

# Strings that data expressions compare each column with (for simulation):
# a named list column -> character vector.
.choice_string_levels <- function(ch) {
  out <- list()
  add <- function(v, s) out[[v]] <<- unique(c(out[[v]], s))
  walk <- function(x) {
    if (!is.call(x)) return(invisible())
    if (is.name(x[[1L]]) && as.character(x[[1L]]) %in% c("==", "!=", "<", ">", "<=", ">=") && length(x) == 3L) {
      if (is.name(x[[2L]]) && is.character(x[[3L]])) add(as.character(x[[2L]]), x[[3L]])
      if (is.name(x[[3L]]) && is.character(x[[2L]])) add(as.character(x[[3L]]), x[[2L]])
    }
    for (a in as.list(x)[-1L]) walk(a)
  }
  for (k in ch$columns) if (.is_data_expr(k)) walk(str2lang(k))
  out
}

# The evaluation environment of data expressions: only the functions of
# .expr_funs (from base), nothing else reachable.
.expr_env <- function() {
  env <- new.env(parent = emptyenv())
  for (f in .expr_funs) assign(f, get(f, mode = "function", envir = asNamespace("stats")), envir = env) # base, and pnorm
  env
}

# Evaluates data expression `key` on `data` (every row); `users`: the
# alternatives whose utility uses it (named in errors). Returns a double
# vector of nrow(data) (NA where an operand is missing). Errors are
# iclv_error_data naming the expression and the utility.
.expr_column <- function(data, key, users) {
  e <- str2lang(key)
  where <- sprintf("the data expression %s of the utility of %s", iclv_quote(key), iclv_quote(users[1]))
  vars <- all.vars(e)
  miss <- setdiff(vars, names(data))
  if (length(miss)) {
    iclv_abort("data", sprintf(paste0(
      "%s uses %s, which is neither a column of the data nor a latent variable of the model ",
      "(if %s is a parameter, the utility is not linear in its parameters: only sums of ",
      "'parameter * data expression * latent variable' are supported so far)"),
      where, iclv_quote(miss[1]), iclv_quote(miss[1])))
  }
  n <- nrow(data)
  vals <- lapply(vars, function(v) {
    x <- data[[v]]
    if (!is.atomic(x) || is.matrix(x) || !(is.numeric(x) || is.logical(x) || is.character(x) || is.factor(x))) {
      iclv_abort("data", sprintf("%s: column %s must be numeric, logical, character or a factor, not %s",
                                 where, iclv_quote(v), class(x)[1]))
    }
    x
  })
  names(vals) <- vars
  x <- withCallingHandlers(
    tryCatch(eval(e, vals, .expr_env()), error = function(err) {
      iclv_abort("data", sprintf("%s cannot be evaluated: %s", where, conditionMessage(err)))
    }),
    warning = function(w) {
      iclv_abort("data", sprintf("%s cannot be evaluated: %s", where, conditionMessage(w)))
    })
  if (!(is.numeric(x) || is.logical(x)) || is.factor(x) || !(length(x) %in% c(1L, n))) {
    iclv_abort("data", sprintf("%s does not give one number per row (it gives %s of length %d)",
                               where, class(x)[1], length(x)))
  }
  x <- rep_len(as.double(x), n)
  inf <- which(is.infinite(x))
  if (length(inf)) {
    iclv_abort("data", sprintf("%s is not finite (%s) in row %d", where, format(x[inf[1]]), inf[1]))
  }
  x[is.nan(x)] <- NA_real_
  x
}

# The data columns (X, keyed by ch$columns) of a choice part on `data`, as
# a list: plain columns as they are, data expressions evaluated. For
# iclv_simulate(); compile goes through .val_attributes (checks).
.choice_columns <- function(ch, data) {
  users <- function(k) ch$alternatives[vapply(ch$alternatives, function(a) k %in% ch$terms[[a]]$col, logical(1))]
  stats::setNames(lapply(ch$columns, function(k) {
    if (.is_data_expr(k)) .expr_column(data, k, users(k)) else data[[k]]
  }), ch$columns)
}
