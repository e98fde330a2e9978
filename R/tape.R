# Utilities that are not linear in their parameters (issue 14): name
# resolution against the data, the split of a utility into linear terms and
# a nonlinear rest, and the rest compiled into a tape (src/iclv_tape.h).
#
# Two readings of a utility string
#   When the model is built (iclv_model(), no data yet), an expression
#   utility is read by the linear rule of expr.R: in each product the first
#   plain name is the parameter, other names are data. That reading is
#   PROVISIONAL. When the model meets its data (iclv(), iclv_loglik(),
#   iclv_objective(), iclv_model(data = ), iclv_simulate()), every
#   expression utility is resolved by its names, in this order:
#     1. a latent variable or random term of the model is that;
#     2. a column of the data is data (iclv_simulate(): a name that is not in
#        `params` is data);
#     3. any other name is a parameter.
#   When this agrees with the provisional reading (every parameter is not a
#   column, every data name is one), nothing changes: the linear utilities
#   of the first release keep their terms and their fast path. Otherwise the
#   utility is split into additive terms (signs and parentheses around sums
#   expanded, ifelse(data condition, a, b) leading a product distributed);
#   a term that is `parameter * data * at most one latent variable` is a
#   linear term as before, every other term goes into the alternative's
#   nonlinear rest N_j, compiled into a tape. A term with no parameter and
#   no latent variable or random term (pure data) is an error: an offset
#   needs a parameter (fix it at 1). The resolved model is what the fit
#   keeps (fit$model): prediction on new data never re-resolves.
#
# The tape (src/iclv_tape.h for the machine): the rest N_j in postfix form.
#   Every subexpression of data only (no parameter, latent variable or
#   random term) becomes ONE data column, evaluated once in R (a column key
#   of ch$columns, as the linear terms' data expressions); constants fold;
#   a ^ c with a constant c is POWC, any other power POW (a > 0); pnorm();
#   ifelse(cond, a, b) needs a condition free of parameters and latent
#   variables (data and random terms: SEL); comparisons likewise (a random
#   term compared with a number, as a triangular distribution needs);
#   comparisons and logical operators on parameters are errors (no
#   derivative), and so are logical operators on random terms.
#   Symbolically per alternative: list(op (codes), arg (list: variable name,
#   data key or number), vars (the tape's parameters and LVs, in order of
#   first use), depth (stack depth), text); .tape_compile() maps the names
#   to indices for the C list.
#
# Start values of the parameters that only the rest uses: 1 for a
# parameter that multiplies an expression with parameters (a scale), is an
# exponent, or stands alone where 0 is not allowed (log(b), sqrt(b), x / b,
# b ^ x), else 0 (iclv_model(start = ) overrides).

.tape_ops <- c(CONST = 1L, VAR = 2L, DATA = 3L, ADD = 4L, SUB = 5L, MUL = 6L, DIV = 7L, POW = 8L,
               NEG = 9L, EXP = 10L, LOG = 11L, SQRT = 12L, POWC = 13L, SEL = 14L, PNORM = 15L,
               LT = 16L, GT = 17L, LE = 18L, GE = 19L, EQ = 20L, NE = 21L, STORE = 22L, LOAD = 23L)
.tape_cmp <- c("<" = "LT", ">" = "GT", "<=" = "LE", ">=" = "GE", "==" = "EQ", "!=" = "NE")
.tape_max_vars <- 32L  # ICLV_TAPE_MAX_VARS (src/iclv_tape.h)
.tape_max_depth <- 64L # ICLV_TAPE_MAX_DEPTH

# Does the model's choice part have expression utilities whose reading may
# change with the data (parameter names then become known there)?
.choice_has_expressions <- function(ch) {
  !is.null(ch) && length(ch$expr_alts %||% character()) > 0L
}

# The provisional reading at model time: expr.R's terms, or, when that
# reading fails for a reason the data may lift (no parameter in a term, a
# latent variable inside a function, ...), none yet (deferred).
.expr_provisional_terms <- function(s, alt, lvs) {
  where <- sprintf("utility of %s", iclv_quote(alt))
  e <- tryCatch(str2lang(s), error = function(err) {
    iclv_abort("spec", sprintf("%s is not a valid expression (%s): %s", where, iclv_quote(s),
                               conditionMessage(err)))
  })
  .expr_check_names(e, where, s) # an unsupported function is an error now
  .expr_check_constant_terms(e, where, s) # so is a term no data can give a parameter
  tryCatch(.expr_utility_terms(s, alt, lvs), iclv_error_spec = function(err) {
    out <- .expr_empty_terms()
    attr(out, "deferred") <- conditionMessage(err)
    out
  })
}

# An additive term without any name (a number) can never hold a parameter.
.expr_check_constant_terms <- function(e, where, s) {
  walk <- function(x) {
    if (.is_call_to(x, "+", 2L) || .is_call_to(x, "-", 2L)) return(c(walk(x[[2L]]), walk(x[[3L]])))
    if (.is_call_to(x, "-", 1L) || .is_call_to(x, "+", 1L) || .is_call_to(x, "(", 1L)) return(walk(x[[2L]]))
    list(x)
  }
  for (p in walk(e)) {
    if (!length(all.vars(p))) {
      iclv_abort("spec", sprintf(
        "%s: the term %s has no parameter; a term is a parameter (the first plain name of a product) times data and at most one latent variable, e.g. 'b_price * price' or 'b * (brand == \"Novum\")'",
        where, iclv_quote(.expr_text(p))))
    }
  }
  invisible()
}

.expr_empty_terms <- function() {
  data.frame(param = character(), f1 = character(), f2 = character(), col = character(),
             lv = character(), stringsAsFactors = FALSE)
}

# Resolves the expression utilities of `model` (see the header); is_data:
# function(names) -> logical. Returns the model (unchanged when the choice
# part is resolved already or has no expression utilities).
.choice_resolve <- function(model, is_data) {
  rnd <- model$random
  ch <- model$choice
  if (is.null(ch) || isTRUE(ch$resolved) || !.choice_has_expressions(ch)) return(model)
  lvs <- c(model$lvs, model$random)
  tapes <- ch$tapes %||% list()
  changed <- FALSE
  # how often each name occurs in the choice part's utilities (the typo check)
  seen <- table(unlist(lapply(ch$utilities[ch$alternatives], function(u) {
    if (identical(trimws(u), "0")) character() else all.names(str2lang(u))
  }), use.names = FALSE))
  for (a in ch$expr_alts) {
    prov <- ch$terms[[a]]
    if (is.null(attr(prov, "deferred")) && .expr_terms_agree(prov, is_data)) next
    res <- .expr_resolve_utility(ch$utilities[[a]], a, lvs, is_data, seen, rnd,
                                 declared = c(names(model$start), names(model$fixed)))
    ch$terms[[a]] <- res$terms
    tapes[[a]] <- res$tape
    changed <- TRUE
  }
  ch$resolved <- TRUE
  if (changed) {
    ch$tapes <- tapes[!vapply(tapes, is.null, logical(1))]
    ch <- .choice_collect(ch)
    .choice_ordered_no_constant(ch)
  }
  model$choice <- ch
  if (changed) model$partable <- .iclv_partable(model, model$categories)
  model
}

# Does the provisional reading hold on the data? (Its parameters are no
# columns, the names in its data expressions are columns.)
.expr_terms_agree <- function(tm, is_data) {
  if (!nrow(tm)) return(TRUE)
  if (any(is_data(tm$param))) return(FALSE)
  cols <- unique(stats::na.omit(tm$col))
  vars <- unique(unlist(lapply(cols, function(k) if (.is_data_expr(k)) all.vars(str2lang(k)) else k),
                        use.names = FALSE))
  all(is_data(vars))
}

# The data-based reading of utility `s` of alternative `alt`:
# list(terms (the linear terms, as expr.R's), tape (NULL or the rest's
# symbolic tape)).
.expr_resolve_utility <- function(s, alt, lvs, is_data, seen = NULL, rnd = character(),
                                  declared = character()) {
  where <- sprintf("utility of %s", iclv_quote(alt))
  e <- str2lang(s)
  nm <- all.vars(e)
  role <- stats::setNames(ifelse(nm %in% rnd, "random", ifelse(nm %in% lvs, "lv",
                                                                ifelse(is_data(nm), "data", "param"))), nm)
  pieces <- .tape_split(e, 1, role, where, s)
  rows <- list()
  rest <- list()
  for (p in pieces) {
    r <- .tape_linear_row(p, role)
    if (!is.null(r)) {
      rows[[length(rows) + 1L]] <- r
      next
    }
    .tape_check_typo(p, role, seen, where, declared)
    v <- intersect(all.vars(p$e), nm[role != "data"])
    if (!length(v)) {
      iclv_abort("spec", sprintf(
        "%s: the term %s has no parameter (its names %s are data columns); a constant offset needs a parameter, e.g. 'b_off * %s' with fixed = c(b_off = 1)",
        where, iclv_quote(.expr_text(p$e)), iclv_quote(all.vars(p$e)), .expr_text(p$e)))
    }
    rest[[length(rest) + 1L]] <- if (p$sign < 0) call("-", p$e) else p$e
  }
  tm <- do.call(rbind, c(list(.expr_empty_terms()), rows))
  key <- paste(tm$param, tm$col, tm$lv, sep = "\r")
  if (anyDuplicated(key)) {
    k <- which(duplicated(key))[1]
    iclv_abort("spec", sprintf("%s has the term %s twice (%s)", where,
                               iclv_quote(.expr_term_label(tm[k, ])), iclv_quote(s)))
  }
  tape <- NULL
  if (length(rest)) {
    ne <- Reduce(function(a, b) call("+", a, b), rest)
    tape <- .tape_build(ne, role, where, s)
  }
  list(terms = tm, tape = tape)
}

# Additive pieces list(sign, e) of e: sums, differences, negations and
# parentheses expanded; a product led by ifelse(data condition, a, b)
# distributed over its branches (the condition as a data factor).
.tape_split <- function(e, sign, role, where, s) {
  if (.is_call_to(e, "+", 2L)) return(c(.tape_split(e[[2L]], sign, role, where, s), .tape_split(e[[3L]], sign, role, where, s)))
  if (.is_call_to(e, "-", 2L)) return(c(.tape_split(e[[2L]], sign, role, where, s), .tape_split(e[[3L]], -sign, role, where, s)))
  if (.is_call_to(e, "-", 1L)) return(.tape_split(e[[2L]], -sign, role, where, s))
  if (.is_call_to(e, "+", 1L) || .is_call_to(e, "(", 1L)) return(.tape_split(e[[2L]], sign, role, where, s))
  fl <- .expr_flatten(e, 1)
  q <- which(vapply(fl$factors, function(f) .is_call_to(f$e, "ifelse", 3L) && f$pow == 1 &&
                      .tape_data_only(f$e[[2L]], role) && !.tape_data_only(f$e, role), logical(1)))[1]
  if (!is.na(q)) {
    ie <- fl$factors[[q]]$e
    rest <- fl$factors[-q]
    prod_with <- function(branch, cond) {
      Reduce(function(a, b) call("*", a, b), c(list(call("(", branch)), lapply(rest, .tape_factor_expr),
                                              list(call("(", cond))))
    }
    sg <- sign * fl$sign
    return(c(.tape_split(prod_with(ie[[3L]], ie[[2L]]), sg, role, where, s),
             .tape_split(prod_with(ie[[4L]], call("!", call("(", ie[[2L]]))), sg, role, where, s)))
  }
  list(list(sign = sign, e = e))
}

.tape_factor_expr <- function(f) if (f$pow == 1) f$e else call("/", 1, f$e)

# A misspelt column reads as a parameter (it is not in the data): in a
# product of plain names and data such as 'b_price * prce' it makes two
# parameters that enter only through their product. When every parameter
# of such a product occurs nowhere else in the choice part (seen:
# occurrences by name), only the product is identified: an error that names
# the likely typo, unless iclv_model(start = , fixed = ) names them
# (`declared`). With one of them elsewhere ('mu * b_dist * dist', mu the
# scale of every utility) the product identifies the others: no error.
.tape_check_typo <- function(p, role, seen, where, declared = character()) {
  if (is.null(seen)) return(invisible())
  fs <- .expr_flatten(p$e, 1)$factors
  plain <- vapply(fs, function(f) is.name(f$e) || .tape_data_only(f$e, role), logical(1))
  if (!all(plain)) return(invisible())
  pars <- unique(vapply(Filter(function(f) is.name(f$e) && role[[as.character(f$e)]] == "param", fs),
                        function(f) as.character(f$e), character(1)))
  if (length(pars) < 2L) return(invisible())
  lone <- setdiff(pars[as.integer(seen[pars]) <= 1L], declared)
  if (length(lone) == length(pars)) {
    iclv_abort("data", sprintf(paste0(
      "%s: the term %s multiplies the parameters %s (names that are not columns of the data read as ",
      "parameters), and none of them occurs anywhere else: only their product is identified. ",
      "Is one of %s a column missing from the data, or a latent variable the model does not define (or misspelt)? ",
      "(If they are parameters, name them in iclv_model(start = ).)"),
      where, iclv_quote(.expr_text(p$e)), iclv_quote(pars), iclv_quote(lone)))
  }
  invisible()
}

# Is e free of parameters, latent variables and random terms?
.tape_data_only <- function(e, role) all(role[all.vars(e)] == "data")

# Is e free of parameters and latent variables (data and random terms only)?
.tape_param_free <- function(e, role) all(role[all.vars(e)] %in% c("data", "random"))

# A piece that is `parameter * data * at most one LV` as a terms row
# (expr.R's columns), else NULL.
.tape_linear_row <- function(p, role) {
  fl <- .expr_flatten(p$e, 1)
  fs <- fl$factors
  kind <- vapply(fs, function(f) {
    if (is.name(f$e)) {
      r <- role[[as.character(f$e)]]
      if (r == "param") return(if (f$pow == 1) "param" else "other")
      if (r %in% c("lv", "random")) return(if (f$pow == 1) "lv" else "other")
      return("data")
    }
    if (.tape_data_only(f$e, role) && length(all.vars(f$e))) "data" else
      if (!length(all.vars(f$e))) "data" else "other"
  }, character(1))
  if (any(kind == "other") || sum(kind == "param") != 1L || sum(kind == "lv") > 1L) return(NULL)
  param <- as.character(fs[[which(kind == "param")]]$e)
  lv <- if (any(kind == "lv")) as.character(fs[[which(kind == "lv")]]$e) else NA_character_
  col <- .expr_data_call(fs[kind == "data"], p$sign * fl$sign)
  data.frame(param = param, f1 = col, f2 = lv, col = col, lv = lv, stringsAsFactors = FALSE)
}

# The symbolic tape of expression e (role: name -> "param"/"lv"/"data").
.tape_build <- function(e, role, where, s) {
  # two programs: "row" (run per choice row) and "pair" (run once per
  # (individual, draw): the subtrees without data, hoisted; iclv_tape.h)
  prog <- list(row = list(op = integer(), arg = list(), top = 0L), pair = list(op = integer(), arg = list(), top = 0L))
  to <- "row"
  slots <- character() # hoisted subtrees by their text (one slot each)
  vars <- character()
  depth <- 0L
  push <- function(code, a = 0) {
    p <- prog[[to]]
    p$op[length(p$op) + 1L] <- .tape_ops[[code]]
    p$arg[[length(p$arg) + 1L]] <- a
    p$top <- p$top + switch(code, CONST = , VAR = , DATA = , LOAD = 1L, ADD = , SUB = , MUL = , DIV = , POW = ,
                            LT = , GT = , LE = , GE = , EQ = , NE = , STORE = -1L, SEL = -2L, 0L)
    if (p$top > depth) depth <<- p$top
    prog[[to]] <<- p
  }
  # a subtree worth running once per pair: an operation on parameters,
  # latent variables, random terms and constants only
  hoistable <- function(x) {
    is.call(x) && !.is_call_to(x, "(", 1L) && length(all.vars(x)) > 0L &&
      all(role[all.vars(x)] != "data")
  }
  bad <- function(what) {
    iclv_abort("spec", sprintf("%s: %s in %s", where, what, iclv_quote(s)))
  }
  emit <- function(x) {
    if (is.numeric(x) || is.logical(x)) return(push("CONST", as.double(x)))
    if (is.character(x)) bad(sprintf("the string %s stands outside a comparison with data", iclv_quote(x)))
    if (is.name(x)) {
      nm <- as.character(x)
      if (role[[nm]] == "data") return(push("DATA", nm))
      if (!nm %in% vars) vars <<- c(vars, nm)
      return(push("VAR", nm))
    }
    if (!length(all.vars(x))) { # constants only: fold
      v <- eval(x, .expr_env())
      if (!is.numeric(v) && !is.logical(v) || length(v) != 1L || !is.finite(v)) {
        bad(sprintf("the constant expression %s is not one finite number", iclv_quote(.expr_text(x))))
      }
      return(push("CONST", as.double(v)))
    }
    if (to == "row" && hoistable(x)) {
      key <- .expr_text(x)
      k <- match(key, slots)
      if (is.na(k)) {
        slots <<- c(slots, key)
        k <- length(slots)
        to <<- "pair"
        emit(x)
        push("STORE", k - 1L)
        to <<- "row"
      }
      return(push("LOAD", k - 1L))
    }
    f <- as.character(x[[1L]])
    n <- length(x) - 1L
    if (f == "(") return(emit(x[[2L]]))
    if (.tape_data_only(x, role)) return(push("DATA", .expr_text(x)))
    if (f == "+" && n == 1L) return(emit(x[[2L]]))
    if (f == "-" && n == 1L) { emit(x[[2L]]); return(push("NEG")) }
    if (f %in% c("+", "-", "*", "/")) {
      emit(x[[2L]]); emit(x[[3L]])
      return(push(switch(f, "+" = "ADD", "-" = "SUB", "*" = "MUL", "/" = "DIV")))
    }
    if (f == "^") {
      ex <- x[[3L]]
      if (!length(all.vars(ex))) {
        c0 <- eval(ex, .expr_env())
        emit(x[[2L]])
        return(push("POWC", as.double(c0)))
      }
      emit(x[[2L]]); emit(ex)
      return(push("POW"))
    }
    if (f %in% names(.tape_cmp) && n == 2L) {
      if (!.tape_param_free(x, role)) {
        v <- setdiff(all.vars(x), names(role)[role %in% c("data", "random")])
        bad(sprintf("%s has no derivative in %s (a comparison may hold data and random terms only)",
                    iclv_quote(.expr_text(x)), iclv_quote(v[1])))
      }
      emit(x[[2L]]); emit(x[[3L]])
      return(push(.tape_cmp[[f]]))
    }
    if (f %in% c("exp", "log", "sqrt", "pnorm")) {
      if (n != 1L) bad(sprintf("%s() takes one argument", f))
      emit(x[[2L]])
      return(push(toupper(f)))
    }
    if (f == "ifelse") {
      if (!.tape_param_free(x[[2L]], role)) {
        v <- setdiff(all.vars(x[[2L]]), names(role)[role %in% c("data", "random")])
        bad(sprintf("the condition of ifelse() uses %s, which is not data: a condition must be about data and random terms only", iclv_quote(v[1])))
      }
      emit(x[[2L]]); emit(x[[3L]]); emit(x[[4L]])
      return(push("SEL"))
    }
    v <- setdiff(all.vars(x), names(role)[role == "data"])
    bad(sprintf("%s has no derivative in %s (it applies %s to %s, which is not data)",
                iclv_quote(.expr_text(x)), iclv_quote(v[1]), iclv_quote(f), iclv_quote(v[1])))
  }
  emit(e)
  if (length(vars) > .tape_max_vars) {
    bad(sprintf("the nonlinear part has %d parameters and latent variables; at most %d are supported",
                length(vars), .tape_max_vars))
  }
  if (depth > .tape_max_depth) bad(sprintf("the nonlinear part nests deeper than %d", .tape_max_depth))
  if (length(slots) > 4L * .tape_max_depth) {
    bad(sprintf("the nonlinear part has more than %d subexpressions without data", 4L * .tape_max_depth))
  }
  op <- prog$row$op
  arg <- prog$row$arg
  list(op = op, arg = arg, pop = prog$pair$op, parg = prog$pair$arg, nslot = length(slots),
       vars = vars, depth = depth, text = .expr_text(e),
       params = vars[role[vars] == "param"], data = unique(unlist(arg[op == .tape_ops[["DATA"]]])),
       scales = .tape_scales(e, role))
}

# Parameters of a nonlinear rest that start at 1: a factor of a product
# whose other factors hold parameters (a scale), in an exponent, and a
# parameter standing alone where 0 has no value or no derivative: the
# argument of log() or sqrt(), a denominator, the base of a power.
.tape_scales <- function(e, role) {
  out <- character()
  par_in <- function(x) any(role[all.vars(x)] == "param")
  walk <- function(x) {
    if (!is.call(x)) return(invisible())
    f <- as.character(x[[1L]])
    if (f == "*" && length(x) == 3L) {
      for (k in 2:3) {
        o <- x[[5L - k]]
        if (is.name(x[[k]]) && identical(role[[as.character(x[[k]])]], "param") && par_in(o)) {
          out <<- c(out, as.character(x[[k]]))
        }
      }
    }
    if (f == "^" && length(x) == 3L) out <<- c(out, intersect(all.vars(x[[3L]]), names(role)[role == "param"]))
    alone <- function(y) {
      while (.is_call_to(y, "(", 1L)) y <- y[[2L]]
      if (is.name(y) && identical(role[[as.character(y)]], "param")) out <<- c(out, as.character(y))
    }
    if (f %in% c("log", "sqrt") && length(x) == 2L) alone(x[[2L]])
    if (f == "/" && length(x) == 3L) alone(x[[3L]])
    if (f == "^" && length(x) == 3L) alone(x[[2L]])
    for (a in as.list(x)[-1L]) walk(a)
  }
  walk(e)
  unique(out)
}

# The choice part's summaries of its terms and tapes: terms_all, params (the
# linear terms' parameters in order, then those only tapes use), columns
# (the linear terms' data, then the tapes' data keys).
.choice_collect <- function(choice) {
  tl <- choice$terms[choice$alternatives]
  n_t <- vapply(tl, nrow, integer(1))
  choice$terms_all <- if (sum(n_t) == 0L) NULL else {
    field <- function(k) as.character(unlist(lapply(tl, `[[`, k), use.names = FALSE))
    data.frame(alt = rep(choice$alternatives, n_t), param = field("param"), f1 = field("f1"),
               f2 = field("f2"), col = field("col"), lv = field("lv"), stringsAsFactors = FALSE)
  }
  tapes <- choice$tapes %||% list()
  choice$params <- unique(c(choice$terms_all$param, unlist(lapply(tapes, `[[`, "params"), use.names = FALSE)))
  choice$columns <- unique(c(stats::na.omit(choice$terms_all$col),
                             unlist(lapply(tapes, `[[`, "data"), use.names = FALSE)))
  choice
}

# The tape elements of the C list (src/iclv_model.h) for the alternatives
# `alts` of choice part ch; pidx: names -> 0-based parameter indices; lvs:
# the draw dimensions' names; P: parameters. NULL without tapes.
.tape_compile <- function(ch, alts, pidx, lvs, P) {
  tapes <- ch$tapes %||% list()
  if (!length(tapes)) return(NULL)
  op <- arg <- var <- pop <- parg <- integer()
  consts <- double()
  ptr <- vptr <- pptr <- 0L
  args_of <- function(tp, ops, as) {
    vapply(seq_along(ops), function(q) {
      o <- ops[q]
      x <- as[[q]]
      if (o == .tape_ops[["VAR"]]) return(match(x, tp$vars) - 1L)
      if (o == .tape_ops[["DATA"]]) return(match(x, ch$columns) - 1L)
      if (o %in% .tape_ops[c("CONST", "POWC")]) {
        consts <<- c(consts, x)
        return(length(consts) - 1L)
      }
      if (o %in% .tape_ops[c("STORE", "LOAD")]) return(as.integer(x))
      0L
    }, integer(1))
  }
  for (a in alts) {
    tp <- tapes[[a]]
    if (!is.null(tp)) {
      arg <- c(arg, args_of(tp, tp$op, tp$arg))
      op <- c(op, tp$op)
      parg <- c(parg, args_of(tp, tp$pop, tp$parg))
      pop <- c(pop, tp$pop)
      var <- c(var, ifelse(tp$vars %in% lvs, P + match(tp$vars, lvs) - 1L, pidx(tp$vars)))
    }
    ptr <- c(ptr, length(op))
    vptr <- c(vptr, length(var))
    pptr <- c(pptr, length(pop))
  }
  nv <- max(diff(vptr))
  list(n_tape = as.integer(sum(diff(ptr) > 0L)), tape_nv = as.integer(nv),
       tape_depth = as.integer(max(vapply(tapes, `[[`, integer(1), "depth"))),
       tape_ptr = as.integer(ptr), tape_op = as.integer(op), tape_arg = as.integer(arg),
       n_tape_const = as.integer(length(consts)), tape_const = as.double(consts),
       tape_var_ptr = as.integer(vptr), tape_var = as.integer(var),
       tape_nslot = as.integer(max(vapply(tapes, `[[`, integer(1), "nslot"))),
       tape_pptr = as.integer(pptr), tape_pop = as.integer(pop), tape_parg = as.integer(parg))
}

# The rest N_j of each alternative on data (for iclv_simulate()): a matrix
# (rows x alternatives) of 0 where an alternative has no tape; env: a list
# of the parameter values, data columns and LV / random-term columns by name.
.tape_values <- function(ch, env, nr) {
  out <- matrix(0, nr, length(ch$alternatives))
  for (j in seq_along(ch$alternatives)) {
    tp <- (ch$tapes %||% list())[[ch$alternatives[j]]]
    if (is.null(tp)) next
    out[, j] <- rep_len(as.double(eval(str2lang(tp$text), env, .expr_env())), nr)
  }
  out
}
