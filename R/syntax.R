# Parsers for the three small languages of a model specification:
#   measurement  lv =~ ind1 + ind2          (lavaan's "is measured by")
#   structural   lv ~ x1 + x2 + other_lv     (lavaan's regression)
#   utilities    param + param * column + param * lv + param * column * lv
# They only read text; what a name means (LV, indicator, covariate, data
# column) is decided in model.R and compile.R.

# Splits model syntax into statements: `#` starts a comment, statements end
# at a newline or `;`, and a line that ends with `+` (or a line that starts
# with `+`) continues the statement before it. Returns a character vector of
# trimmed, non-empty statements. A statement that still ends with `+` (the
# last line, or one followed by a new statement `lv =~` / `lv ~`) is an
# error quoting it: a dangling operator is never dropped silently.
.syntax_statements <- function(text, what) {
  if (is.null(text)) return(character())
  if (!is.character(text) || anyNA(text)) {
    iclv_abort("spec", sprintf("'%s' must be a character string of model syntax", what))
  }
  lines <- unlist(strsplit(paste(text, collapse = "\n"), "[\n;]"), use.names = FALSE)
  lines <- trimws(sub("#.*$", "", lines))
  lines <- lines[nzchar(lines)]
  out <- character()
  for (ln in lines) {
    n <- length(out)
    # a line holding `~` starts a statement of its own, even after a `+`
    if (n > 0L && !grepl("~", ln, fixed = TRUE) && (grepl("\\+$", out[n]) || startsWith(ln, "+"))) {
      out[n] <- paste(out[n], ln)
    } else {
      out <- c(out, ln)
    }
  }
  dangling <- out[grepl("\\+$", out)]
  if (length(dangling)) {
    iclv_abort("spec", sprintf("%s statement %s ends with a dangling '+': a term is missing after it",
                               what, iclv_quote(dangling[1])))
  }
  out
}

# Splits `x` at every `sep` (fixed), keeping empty pieces at both ends:
# strsplit() drops a trailing empty piece, so "a + b +" would lose its
# dangling operator. Pieces are trimmed.
.syntax_split <- function(x, sep) {
  pieces <- strsplit(paste0(x, sep, "."), sep, fixed = TRUE)[[1]]  # the "." piece always ends it
  trimws(pieces[-length(pieces)])
}

# A name (of a latent variable, indicator, parameter, column): R's syntax
# for names, but none of R's reserved words ("NA", "Inf", "TRUE", "if",
# "...", "..1"): "Inf" or "NA" in a utility would otherwise silently become
# a parameter of that name instead of the number the user meant.
.is_name <- function(x) {
  grepl("^[A-Za-z.][A-Za-z0-9._]*$", x) & !grepl("^\\.[0-9]", x) &
    !x %in% .reserved_words & !grepl("^\\.\\.(\\.|[0-9]+)$", x)
}
.reserved_words <- c("if", "else", "repeat", "while", "function", "for", "in", "next", "break",
                     "TRUE", "FALSE", "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_",
                     "NA_character_", "NA_complex_")

# Splits `rhs` on `+` into terms `[modifier *]... name` (lavaan's
# modifiers, at most one of each kind before the name):
#   a number (`1*x`, `-0.5*x`)   the parameter is fixed at that value;
#   `NA`                         the parameter is free (every loading and
#                                structural coefficient is free by default,
#                                so this only documents it);
#   `start(0.5)`                 its starting value;
#   a name (`a*x`)               a label: the parameter is called `a`, and
#                                every term with the label `a` has that one
#                                parameter (equal loadings, shared effects).
# A label together with a fixed value is refused (a fixed parameter needs
# no label). Returns list(names = the terms' names in order, mods = a
# data.frame with one row per term: rhs, label, fixed, start (NA where
# absent)).
.syntax_rhs_terms <- function(rhs, statement, what) {
  terms <- .syntax_split(rhs, "+")
  if (length(terms) == 0L || any(!nzchar(terms))) {
    iclv_abort("spec", sprintf("%s statement %s has an empty term", what, iclv_quote(statement)))
  }
  n <- length(terms)
  nm <- character(n)
  label <- rep(NA_character_, n)
  fixed <- rep(NA_real_, n)
  start <- rep(NA_real_, n)
  num_re <- "^-?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?$"
  for (k in seq_len(n)) {
    f <- .syntax_split(terms[k], "*")
    nm[k] <- f[length(f)]
    if (any(!nzchar(f))) {
      iclv_abort("spec", sprintf("%s statement %s: term %s has an empty factor around '*'", what,
                                 iclv_quote(statement), iclv_quote(terms[k])))
    }
    for (mod in f[-length(f)]) {
      kind <- if (grepl(num_re, mod)) "fixed" else if (identical(mod, "NA")) "free" else
        if (grepl("^start\\(.*\\)$", mod)) "start" else if (.is_name(mod)) "label" else "bad"
      seen <- switch(kind, fixed = !is.na(fixed[k]) || !is.na(label[k]), free = FALSE,
                     start = !is.na(start[k]), label = !is.na(label[k]) || !is.na(fixed[k]), bad = FALSE)
      if (kind == "bad") {
        iclv_abort("spec", sprintf(paste0(
          "%s statement %s: %s before %s is not a modifier lavaan's syntax allows here: a number ",
          "(fixed value), NA (free), start(value) or a label"), what, iclv_quote(statement),
          iclv_quote(mod), iclv_quote(nm[k])))
      }
      if (seen) {
        iclv_abort("spec", sprintf(
          "%s statement %s: term %s has two labels, two values, or a label and a fixed value (a fixed parameter needs no label)",
          what, iclv_quote(statement), iclv_quote(terms[k])))
      }
      if (kind == "fixed") fixed[k] <- as.double(mod)
      if (kind == "label") label[k] <- mod
      if (kind == "start") {
        v <- suppressWarnings(as.double(sub("^start\\((.*)\\)$", "\\1", mod)))
        if (length(v) != 1L || !is.finite(v)) {
          iclv_abort("spec", sprintf("%s statement %s: %s needs one finite number", what,
                                     iclv_quote(statement), iclv_quote(mod)))
        }
        start[k] <- v
      }
    }
    if (!is.na(fixed[k]) && !is.finite(fixed[k])) {
      iclv_abort("spec", sprintf("%s statement %s: the fixed value of %s is not finite", what,
                                 iclv_quote(statement), iclv_quote(nm[k])))
    }
    if (!is.na(fixed[k]) && !is.na(start[k])) {
      iclv_abort("spec", sprintf("%s statement %s: %s has a fixed value and a start value", what,
                                 iclv_quote(statement), iclv_quote(nm[k])))
    }
  }
  if (grepl("-", paste(nm, collapse = " "), fixed = TRUE) || any(grepl("-", label, fixed = TRUE))) {
    iclv_abort("spec", sprintf("%s statement %s: '-' is not supported; terms are separated by '+'",
                               what, iclv_quote(statement)))
  }
  bad <- nm[!.is_name(nm)]
  if (length(bad)) {
    iclv_abort("spec", sprintf(
      "%s statement %s: %s is not a name (a term is a name with optional modifiers such as '1*x', 'a*x', 'start(0.5)*x')",
      what, iclv_quote(statement), iclv_quote(bad[1])))
  }
  dup <- nm[duplicated(nm)]
  if (length(dup)) {
    iclv_abort("spec", sprintf("%s statement %s names %s twice", what, iclv_quote(statement),
                               iclv_quote(dup[1])))
  }
  list(names = nm, mods = data.frame(rhs = nm, label = label, fixed = fixed, start = start,
                                     stringsAsFactors = FALSE))
}

# Parses `lhs <op> rhs` statements. Returns a named list lhs -> character
# vector of rhs names, in order of first appearance; repeated lhs are merged.
# Attribute "mods": the terms' modifiers (.syntax_rhs_terms), one row per
# term with its lhs, only for terms that have one.
.syntax_parse <- function(text, op, what) {
  st <- .syntax_statements(text, what)
  out <- list()
  mods <- list()
  for (s in st) {
    # the operator must occur exactly once; for "~" make sure "=~" is not it
    parts <- if (op == "=~") strsplit(s, "=~", fixed = TRUE)[[1]] else strsplit(s, "~", fixed = TRUE)[[1]]
    if (op == "~" && grepl("=~", s, fixed = TRUE)) {
      iclv_abort("spec", sprintf("%s statement %s uses '=~'; measurement equations belong in 'measurement'",
                                 what, iclv_quote(s)))
    }
    if (length(parts) != 2L || grepl("~", parts[2], fixed = TRUE)) {
      iclv_abort("spec", sprintf("%s statement %s is not of the form 'lv %s %s'", what,
                                 iclv_quote(s), op, if (op == "=~") "ind1 + ind2" else "x1 + x2"))
    }
    lhs <- trimws(parts[1])
    if (!.is_name(lhs)) {
      iclv_abort("spec", sprintf("%s statement %s: left-hand side %s is not a name", what,
                                 iclv_quote(s), iclv_quote(lhs)))
    }
    tm <- .syntax_rhs_terms(trimws(parts[2]), s, what)
    rhs <- tm$names
    has <- !is.na(tm$mods$label) | !is.na(tm$mods$fixed) | !is.na(tm$mods$start)
    if (any(has)) mods[[length(mods) + 1L]] <- cbind(lhs = lhs, tm$mods[has, , drop = FALSE])
    prev <- out[[lhs]]
    dup <- intersect(prev, rhs)
    if (length(dup)) {
      iclv_abort("spec", sprintf("%s: %s appears twice on the right-hand side of %s", what,
                                 iclv_quote(dup[1]), iclv_quote(lhs)))
    }
    out[[lhs]] <- c(prev, rhs)
  }
  attr(out, "mods") <- if (length(mods)) do.call(rbind, mods) else NULL
  out
}

.parse_measurement <- function(text) {
  if (is.null(text)) iclv_abort("spec", "'measurement' is required: give at least one 'lv =~ indicator' line")
  st <- .syntax_statements(text, "measurement")
  is_thr <- grepl("|", st, fixed = TRUE) & !grepl("=~", st, fixed = TRUE)
  thr <- .parse_thresholds(st[is_thr])
  m <- .syntax_parse(paste(st[!is_thr], collapse = "\n"), "=~", "measurement")
  attr(m, "thresholds") <- thr
  if (length(m) == 0L) {
    iclv_abort("spec", "'measurement' defines no latent variable: give at least one 'lv =~ indicator' line")
  }
  m
}

.parse_structural <- function(text) .syntax_parse(text, "~", "structural")

# Threshold statements `ind | t1 + t2 + ...` (lavaan): the terms are the
# thresholds t1..tK of the ordered indicator `ind`, all of them, in order,
# with modifiers (.syntax_rhs_terms): `ind | a*t1 + b*t2` labels them,
# `ind | -1*t1 + t2` fixes one. Returns NULL or a data.frame with one row per
# threshold: lhs (the indicator), rhs ("t1", ...), k, n_thr (K), label,
# fixed, start.
.parse_thresholds <- function(st) {
  out <- list()
  for (s in st) {
    parts <- strsplit(s, "|", fixed = TRUE)[[1]]
    if (length(parts) != 2L || grepl("~", s, fixed = TRUE)) {
      iclv_abort("spec", sprintf("measurement statement %s is not of the form 'indicator | t1 + t2 + ...'", iclv_quote(s)))
    }
    lhs <- trimws(parts[1])
    if (!.is_name(lhs)) {
      iclv_abort("spec", sprintf("measurement statement %s: left-hand side %s is not a name", iclv_quote(s), iclv_quote(lhs)))
    }
    if (lhs %in% names(out)) {
      iclv_abort("spec", sprintf("the thresholds of %s are given twice ('%s | ...')", iclv_quote(lhs), lhs))
    }
    tm <- .syntax_rhs_terms(trimws(parts[2]), s, "measurement")
    K <- length(tm$names)
    if (!identical(tm$names, paste0("t", seq_len(K)))) {
      iclv_abort("spec", sprintf(
        "measurement statement %s: the thresholds must be t1, t2, ..., t%d, each once and in order (got %s)",
        iclv_quote(s), K, paste(tm$names, collapse = ", ")))
    }
    out[[lhs]] <- data.frame(lhs = lhs, tm$mods, k = seq_len(K), n_thr = K, stringsAsFactors = FALSE)
  }
  if (length(out)) {
    d <- do.call(rbind, out)
    rownames(d) <- NULL
    d
  }
}

# Parses one utility string into a data.frame of terms with columns
# param, f1, f2 (the factors after the parameter, NA when absent).
.parse_utility <- function(u, alt) {
  if (!is.character(u) || length(u) != 1L || is.na(u)) {
    iclv_abort("spec", sprintf("the utility of alternative %s must be one character string", iclv_quote(alt)))
  }
  s <- trimws(gsub("[[:space:]]+", " ", u))
  empty <- data.frame(param = character(), f1 = character(), f2 = character(),
                      stringsAsFactors = FALSE)
  if (identical(s, "0")) return(empty)
  if (!nzchar(s)) {
    iclv_abort("spec", sprintf("the utility of alternative %s is empty; write \"0\" for a utility without terms",
                               iclv_quote(alt)))
  }
  # anything beyond names, `+` and `*`: an R expression (expr.R); its latent
  # variables are known in iclv_model(), which expands it again
  # (provisionally: the data may resolve it differently, R/tape.R)
  if (.utility_is_expression(s)) {
    tm <- .expr_provisional_terms(s, alt, character())
    out <- tm[c("param", "f1", "f2")]
    attr(out, "deferred") <- attr(tm, "deferred")
    return(out)
  }
  if (grepl("-", s, fixed = TRUE)) {
    iclv_abort("spec", sprintf(
      "utility of %s: '-' is not supported (%s); write every term with '+': the estimated coefficient takes its sign",
      iclv_quote(alt), iclv_quote(s)))
  }
  terms <- .syntax_split(s, "+")
  if (any(!nzchar(terms))) {
    iclv_abort("spec", sprintf("utility of %s has an empty term: %s", iclv_quote(alt), iclv_quote(s)))
  }
  rows <- lapply(terms, function(tm) {
    f <- .syntax_split(tm, "*")
    if (length(f) < 1L || length(f) > 3L || any(!nzchar(f))) {
      iclv_abort("spec", sprintf(
        "utility of %s: term %s must be 'param', 'param * column', 'param * lv' or 'param * column * lv'",
        iclv_quote(alt), iclv_quote(tm)))
    }
    bad <- f[!.is_name(f)]
    if (length(bad)) {
      iclv_abort("spec", sprintf(
        "utility of %s: term %s contains %s, which is not a name (numeric constants and functions are not supported)",
        iclv_quote(alt), iclv_quote(tm), iclv_quote(bad[1])))
    }
    data.frame(param = f[1], f1 = if (length(f) >= 2L) f[2] else NA_character_,
               f2 = if (length(f) == 3L) f[3] else NA_character_, stringsAsFactors = FALSE)
  })
  out <- do.call(rbind, rows)
  # the same term twice ("asc + asc", "b * x * lv + b * lv * x") is a slip, not a model
  key <- vapply(seq_len(nrow(out)), function(i) {
    paste(c(out$param[i], sort(c(out$f1[i], out$f2[i]))), collapse = "*")
  }, character(1))
  if (anyDuplicated(key)) {
    iclv_abort("spec", sprintf("utility of %s has the term %s twice (%s)", iclv_quote(alt),
                               iclv_quote(terms[duplicated(key)][1]), iclv_quote(s)))
  }
  out
}

# Topological order of a directed graph over `nodes`, where parents[[k]]
# lists the nodes that node k depends on. Stable: among nodes that are
# ready, the one earliest in `nodes` goes first. A cycle is an
# iclv_error_spec naming the nodes on it.
.topo_order <- function(nodes, parents) {
  done <- character()
  remaining <- nodes
  while (length(remaining)) {
    ready <- remaining[vapply(remaining, function(k) all(parents[[k]] %in% done), logical(1))]
    if (length(ready) == 0L) {
      cyc <- .find_cycle(remaining, parents)
      iclv_abort("spec", sprintf(
        "the structural model is not recursive: the latent variables %s form a cycle (%s)",
        iclv_quote(unique(cyc)), paste(c(cyc, cyc[1]), collapse = " <- ")))
    }
    done <- c(done, ready[1])
    remaining <- setdiff(remaining, ready[1])
  }
  done
}

# One cycle among `nodes` (every node there has a parent there).
.find_cycle <- function(nodes, parents) {
  path <- nodes[1]
  repeat {
    cur <- path[length(path)]
    nxt <- intersect(parents[[cur]], nodes)[1]
    hit <- match(nxt, path)
    if (!is.na(hit)) return(path[hit:length(path)])
    path <- c(path, nxt)
  }
}
