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

# Splits `rhs` on `+` into names; every term must be a plain name.
.syntax_rhs_names <- function(rhs, statement, what) {
  if (grepl("-", rhs, fixed = TRUE)) {
    iclv_abort("spec", sprintf("%s statement %s: '-' is not supported; terms are separated by '+'",
                               what, iclv_quote(statement)))
  }
  terms <- .syntax_split(rhs, "+")
  if (length(terms) == 0L || any(!nzchar(terms))) {
    iclv_abort("spec", sprintf("%s statement %s has an empty term", what, iclv_quote(statement)))
  }
  bad <- terms[!.is_name(terms)]
  if (length(bad)) {
    iclv_abort("spec", sprintf(
      "%s statement %s: %s is not a plain name (fixed values and modifiers such as '1*x' are not supported; use the 'fixed' argument)",
      what, iclv_quote(statement), iclv_quote(bad[1])))
  }
  dup <- terms[duplicated(terms)]
  if (length(dup)) {
    iclv_abort("spec", sprintf("%s statement %s names %s twice", what, iclv_quote(statement),
                               iclv_quote(dup[1])))
  }
  terms
}

# Parses `lhs <op> rhs` statements. Returns a named list lhs -> character
# vector of rhs names, in order of first appearance; repeated lhs are merged.
.syntax_parse <- function(text, op, what) {
  st <- .syntax_statements(text, what)
  out <- list()
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
    rhs <- .syntax_rhs_names(trimws(parts[2]), s, what)
    prev <- out[[lhs]]
    dup <- intersect(prev, rhs)
    if (length(dup)) {
      iclv_abort("spec", sprintf("%s: %s appears twice on the right-hand side of %s", what,
                                 iclv_quote(dup[1]), iclv_quote(lhs)))
    }
    out[[lhs]] <- c(prev, rhs)
  }
  out
}

.parse_measurement <- function(text) {
  if (is.null(text)) iclv_abort("spec", "'measurement' is required: give at least one 'lv =~ indicator' line")
  m <- .syntax_parse(text, "=~", "measurement")
  if (length(m) == 0L) {
    iclv_abort("spec", "'measurement' defines no latent variable: give at least one 'lv =~ indicator' line")
  }
  m
}

.parse_structural <- function(text) .syntax_parse(text, "~", "structural")

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
