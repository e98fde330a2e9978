# Several choice parts in one model (e.g. revealed and stated preference),
# compiled into one MNL choice part.
#
# `iclv_model(choice = list(rp = iclv_choice(...), sp = iclv_choice(...)))`
# combines the parts at once (.parts_combine()) into ONE ordinary
# "iclv_choice" object of type "mnl" over the union of the parts'
# alternatives, prefixed by the part's name ("rp.car", "sp.car", ...), plus
# a record of the parts (`choice$parts`). Everything downstream (name
# resolution of expression utilities, R/tape.R; the parameter table;
# compile; the engines; predict; simulate) sees that one choice object; only
# the reading of the data (.parts_rows()), the row multipliers, simulation,
# the per-part log-likelihood and printing know about the parts. The C
# engines are unchanged.
#
# Rows. Every data row belongs to exactly one part: the part whose choice
# column is not NA in that row (each part has its own choice column, NA in
# the rows of the other parts; two parts cannot share a choice column). A
# row in no part (every part's choice column NA) or in two parts is a data
# error naming the row. A part may have no rows at all (it then adds
# nothing to the likelihood; parameters only it uses are not identified).
# In a row of part k only part k's alternatives are available (the compiled
# availability), combined with the part's own `available` columns, which
# are read in the part's rows only (NA elsewhere is fine). Attributes that
# only other parts' alternatives use may be NA in the row (as for any
# unavailable alternative, R/validate.R).
#
# Parameters are shared by name across parts (one `b_time` in both parts is
# one parameter); latent variables and random terms are shared too (the
# same draw of an individual enters every part).
#
# Relative scale. `iclv_choice(..., scale = "mu_sp")` gives a part a free
# scale mu > 0 (start 1, role "scale", estimated on the log scale like
# every scale) multiplying all of its utilities: P = exp(mu V_j) / sum_k
# exp(mu V_k) over the part's available alternatives. It enters through the
# row multiplier of src/iclv_model.h (n_mult, mult_sign = +1, mult_par =
# the scale's index in the part's rows, -1 elsewhere), which the engines
# differentiate exactly. At least one part has no scale (the reference); a
# scale on the only part, or a scale outside a list of parts, is an error.
# Parts may share a scale name (one scale for both).
#
# Only MNL parts ("mnl") are supported: parts of other types (probit,
# ranked, best-worst, nested logit, ordered) are refused by name.
#
# A one-part list compiles to exactly the C list of the plain model (the
# alternatives only renamed "<part>.<alt>"; no availability or multiplier
# added), so its likelihood, gradient and Hessian are the plain model's,
# bit for bit.
#
# Outputs. predict(type = "prob") returns one column per prefixed
# alternative (all parts'); in a row of part k the other parts' alternatives
# have probability 0. summary() reports the choice log-likelihood of each
# part, "choice:<part>" (the part's rows, integrated over the latent
# variables; .parts_ll()). iclv_simulate() draws each part's choices:
# `n_tasks` is one number (that many tasks of every part per individual) or
# a vector named by the parts (0 allowed); an individual's rows are its
# tasks of the first part, then of the second, ...; each part's choice
# column holds the part's alternative names (unprefixed) in its rows and NA
# elsewhere, and its availability columns likewise.

# iclv_choice(scale = ): NULL or one parameter name, not a parameter of the
# utilities nor the worst-stage scale.
.parts_scale_arg <- function(scale, terms, worst_scale = NULL) {
  if (is.null(scale)) return(NULL)
  if (!is.character(scale) || length(scale) != 1L || is.na(scale) ||
      !grepl("^[A-Za-z.][A-Za-z0-9._]*$", scale)) {
    iclv_abort("spec", "'scale' must be NULL or one parameter name (the relative scale of a choice part)")
  }
  if (scale %in% unlist(lapply(terms, `[[`, "param"))) {
    iclv_abort("spec", sprintf("'scale' %s is also a parameter of a utility; give the scale its own name",
                               iclv_quote(scale)))
  }
  if (identical(scale, worst_scale)) iclv_abort("spec", "'scale' and 'worst_scale' must differ")
  scale
}

# Is `choice` (iclv_model()'s argument) a list of choice parts?
.parts_is_list <- function(choice) is.list(choice) && !inherits(choice, "iclv_choice")

# The combined choice object of the parts `parts` (a named list of
# iclv_choice objects); see the header.
.parts_combine <- function(parts) {
  nm <- names(parts)
  if (!length(parts)) iclv_abort("spec", "'choice' is an empty list: give one iclv_choice() per choice part")
  if (is.null(nm) || anyNA(nm) || any(!nzchar(nm))) {
    iclv_abort("spec", "every element of a list of choice parts must be named by its part, e.g. choice = list(rp = iclv_choice(...), sp = iclv_choice(...))")
  }
  if (anyDuplicated(nm)) iclv_abort("spec", sprintf("the choice part %s appears twice", iclv_quote(nm[duplicated(nm)][1])))
  bad <- !grepl("^[A-Za-z.][A-Za-z0-9._]*$", nm)
  if (any(bad)) iclv_abort("spec", sprintf("the choice part name %s is not a valid name", iclv_quote(nm[bad][1])))
  for (k in seq_along(parts)) {
    if (!inherits(parts[[k]], "iclv_choice")) {
      iclv_abort("spec", sprintf("choice part %s must be an object made by iclv_choice()", iclv_quote(nm[k])))
    }
    if (!is.null(parts[[k]]$parts)) {
      iclv_abort("spec", sprintf("choice part %s is itself made of parts; list the parts once", iclv_quote(nm[k])))
    }
  }
  types <- vapply(parts, `[[`, character(1), "type")
  if (any(types != "mnl")) {
    k <- which(types != "mnl")[1]
    iclv_abort("spec", sprintf(
      "choice part %s has type %s: several choice parts are supported for type \"mnl\" only (not probit, ranked, best-worst, nested logit or ordered parts)",
      iclv_quote(nm[k]), iclv_quote(types[k])))
  }
  cols <- vapply(parts, `[[`, character(1), "choice")
  if (anyDuplicated(cols)) {
    iclv_abort("spec", sprintf(
      "choice parts %s share the choice column %s: each part needs its own choice column (NA in the rows of the other parts)",
      iclv_quote(nm[cols == cols[duplicated(cols)][1]]), iclv_quote(cols[duplicated(cols)][1])))
  }
  scales <- vapply(parts, function(p) p$scale %||% NA_character_, character(1))
  if (length(parts) == 1L && !is.na(scales[1])) {
    iclv_abort("spec", sprintf(
      "the only choice part %s has a relative scale %s: a scale is relative to another part (one without a scale); drop it",
      iclv_quote(nm[1]), iclv_quote(scales[1])))
  }
  if (length(parts) > 1L && all(!is.na(scales))) {
    iclv_abort("spec", "every choice part has a relative scale: at least one part (the reference) must have none")
  }
  params <- unique(unlist(lapply(parts, function(p) unlist(lapply(p$terms, `[[`, "param"))), use.names = FALSE))
  clash <- intersect(stats::na.omit(scales), params)
  if (length(clash)) {
    iclv_abort("spec", sprintf("the relative scale %s is also a parameter of a utility; give the scale its own name",
                               iclv_quote(clash[1])))
  }
  pre <- function(k, a) paste0(nm[k], ".", a)
  alts <- unlist(lapply(seq_along(parts), function(k) pre(k, parts[[k]]$alternatives)), use.names = FALSE)
  ut <- stats::setNames(as.list(unlist(lapply(parts, function(p) unname(p$utilities)), use.names = FALSE)), alts)
  av <- unlist(lapply(seq_along(parts), function(k) {
    a <- parts[[k]]$available
    if (is.null(a)) character() else stats::setNames(unname(a), pre(k, names(a)))
  }))
  if (!length(av)) av <- NULL
  ch <- tryCatch(iclv_choice("mnl", choice = cols[[1]], utilities = ut, available = av),
                 iclv_error_spec = function(e) {
                   iclv_abort("spec", sprintf("the choice parts together: %s", conditionMessage(e)))
                 })
  ch$ranks <- unname(cols)
  ch$parts <- list(names = nm, choice = unname(cols),
                   alternatives = stats::setNames(lapply(parts, `[[`, "alternatives"), nm),
                   alt_part = rep(seq_along(parts), vapply(parts, function(p) length(p$alternatives), integer(1))),
                   available = stats::setNames(lapply(parts, `[[`, "available"), nm),
                   scale = unname(scales))
  ch
}

# The rows of the parts in `data` (see the header): list(y (1..J of the
# combined alternatives), A (n x J 0/1 availability, or NULL for one part
# without availability columns), part (1..K per row)). row_ids: the id of
# each row, named in errors.
.parts_rows <- function(data, ch, row_ids) {
  pp <- ch$parts
  K <- length(pp$names)
  n <- nrow(data)
  at <- function(r) sprintf("row %d (id %s)", r, format(row_ids[r]))
  inp <- matrix(FALSE, n, K)
  for (k in seq_len(K)) {
    .val_column_exists(data, pp$choice[k], "choice column")
    inp[, k] <- !is.na(data[[pp$choice[k]]])
  }
  cnt <- rowSums(inp)
  if (any(cnt == 0L)) {
    r <- which(cnt == 0L)[1]
    iclv_abort("data", sprintf(
      "%s is in no choice part: the choice columns of the parts (%s) are all missing (NA) there; drop the row or give its choice",
      at(r), iclv_quote(pp$choice)))
  }
  if (any(cnt > 1L)) {
    r <- which(cnt > 1L)[1]
    iclv_abort("data", sprintf(
      "%s is in two choice parts (%s): a row belongs to one part, so the other parts' choice columns must be NA there",
      at(r), iclv_quote(pp$names[inp[r, ]])))
  }
  part <- max.col(inp, ties.method = "first")
  J <- length(ch$alternatives)
  y <- integer(n)
  A <- matrix(0L, n, J, dimnames = list(NULL, ch$alternatives))
  off <- c(0L, cumsum(tabulate(pp$alt_part, K)))
  A1 <- NULL
  for (k in seq_len(K)) {
    mine <- which(part == k)
    other <- part != k
    alts_k <- pp$alternatives[[k]]
    col <- pp$choice[k]
    # the part's columns, with the other parts' rows filled with valid
    # values, so that errors name the row of the data
    x <- data[[col]]
    if (is.factor(x)) x <- as.character(x)
    x[other] <- if (is.numeric(x)) 1 else alts_k[1]
    sub <- stats::setNames(data.frame(x = x, stringsAsFactors = FALSE), col)
    av <- pp$available[[k]]
    for (a in names(av)) {
      if (!av[[a]] %in% names(data)) {
        iclv_abort("data", sprintf("availability column %s of alternative %s (choice part %s) is not a column of the data",
                                   iclv_quote(av[[a]]), iclv_quote(a), iclv_quote(pp$names[k])))
      }
      v <- data[[av[[a]]]]
      if (is.numeric(v) || is.logical(v)) v[other] <- 1
      sub[[av[[a]]]] <- v
    }
    yk <- .val_choice_column(sub, col, alts_k)
    Ak <- .val_availability(sub, av, alts_k, yk, row_ids)
    if (K == 1L) A1 <- Ak
    if (is.null(Ak)) Ak <- matrix(1L, n, length(alts_k))
    y[mine] <- off[k] + yk[mine]
    A[mine, off[k] + seq_along(alts_k)] <- Ak[mine, , drop = FALSE]
  }
  list(y = y, A = if (K == 1L) A1 else A, part = part)
}

# The row multipliers of the C list for the parts' relative scales (NULL
# when no part has one): n_mult, mult_sign, mult_par (src/iclv_model.h).
.parts_mult <- function(ch, part, pidx) {
  sc <- ch$parts$scale
  if (all(is.na(sc))) return(NULL)
  s <- sc[part]
  list(n_mult = as.integer(length(part)), mult_sign = rep(1, length(part)),
       mult_par = as.integer(ifelse(is.na(s), -1L, pidx(ifelse(is.na(s), sc[!is.na(sc)][1], s)))))
}

# Per-part simulated choice log-likelihoods at theta (.group_choice_ll,
# R/rank.R, over the parts), named "choice:<part>", for the parts that have
# rows. NULL for models without parts.
.parts_ll <- function(comp, theta, spec, n_threads = 0L) {
  if (is.null(comp$part)) return(NULL)
  .group_choice_ll(comp, comp$part, comp$part_names, theta, spec, n_threads)
}

# iclv_simulate()'s n_tasks for a model with parts: tasks per individual of
# each part (named integer vector), from one number (every part) or a
# vector named by the parts.
.parts_sim_tasks <- function(ch, n_tasks) {
  nm <- ch$parts$names
  bad <- function() iclv_abort("control", sprintf(
    "'n_tasks' must be one whole number >= 1 (tasks of every choice part) or whole numbers >= 0 named by the parts (%s), at least one > 0",
    iclv_quote(nm)))
  if (!is.numeric(n_tasks) || !length(n_tasks) || anyNA(n_tasks) || any(n_tasks != round(n_tasks)) ||
      any(n_tasks < 0) || any(n_tasks > .Machine$integer.max)) bad()
  if (is.null(names(n_tasks))) {
    if (length(n_tasks) != 1L || n_tasks < 1) bad()
    return(stats::setNames(rep(as.integer(n_tasks), length(nm)), nm))
  }
  unknown <- setdiff(names(n_tasks), nm)
  if (length(unknown)) {
    iclv_abort("control", sprintf("'n_tasks' names %s, which is not a choice part (%s)", iclv_quote(unknown[1]), iclv_quote(nm)))
  }
  if (anyDuplicated(names(n_tasks))) bad()
  out <- stats::setNames(integer(length(nm)), nm)
  out[names(n_tasks)] <- as.integer(n_tasks)
  if (sum(out) < 1) bad()
  out
}

# Simulated choices of a model with parts: writes into `out` (the list of
# columns) each part's choice column (the part's alternative names in its
# rows, NA elsewhere) and availability columns (0/1 in its rows, NA
# elsewhere). V: rows x J utilities of the combined alternatives; A: rows x
# J availability drawn from `availability`; part: the part of each row; th:
# the parameter values (for the scales).
.parts_simulate <- function(out, ch, V, A, part, th) {
  pp <- ch$parts
  K <- length(pp$names)
  nr <- nrow(V)
  J <- ncol(V)
  mine <- matrix(pp$alt_part[col(V)] == part, nr, J) # alternative of the row's part
  A <- A & mine
  none <- rowSums(A) == 0L
  A[none, ] <- mine[none, ]
  mu <- rep(1, K)
  mu[!is.na(pp$scale)] <- as.double(th[pp$scale[!is.na(pp$scale)]])
  U <- as.double(mu[part]) * V - log(-log(matrix(stats::runif(nr * J), nr, J)))
  U[!A] <- -Inf
  y <- max.col(U, ties.method = "first")
  off <- c(0L, cumsum(tabulate(pp$alt_part, K)))
  for (k in seq_len(K)) {
    alts_k <- pp$alternatives[[k]]
    v <- rep(NA_character_, nr)
    v[part == k] <- alts_k[y[part == k] - off[k]]
    out[[pp$choice[k]]] <- v
    av <- pp$available[[k]]
    for (a in names(av)) {
      x <- rep(NA_integer_, nr)
      x[part == k] <- as.integer(A[part == k, off[k] + match(a, alts_k)])
      out[[av[[a]]]] <- x
    }
  }
  out
}

# Printing: the parts of a combined choice object.
.parts_print <- function(x) {
  pp <- x$parts
  cat(sprintf("Choice model of %d part%s (multinomial logit each; parameters, latent variables and random terms shared by name):\n",
              length(pp$names), if (length(pp$names) > 1L) "s" else ""))
  for (k in seq_along(pp$names)) {
    alts <- x$alternatives[pp$alt_part == k]
    cat(sprintf(" part %s: column '%s', %d alternatives%s\n", pp$names[k], pp$choice[k], length(alts),
                if (is.na(pp$scale[k])) "" else sprintf(", relative scale '%s'", pp$scale[k])))
    w <- max(nchar(alts))
    for (a in alts) {
      av <- if (!is.null(x$available) && a %in% names(x$available)) sprintf("   [available: %s]", x$available[[a]]) else ""
      cat(sprintf("  %s: %s%s\n", formatC(a, width = -w), x$utilities[[a]], av))
    }
  }
  invisible(x)
}

# The model's one-line description of the choice parts.
.parts_summary_line <- function(ch) {
  pp <- ch$parts
  paste0(sprintf("%d MNL parts: ", length(pp$names)), paste(vapply(seq_along(pp$names), function(k) {
    sprintf("%s (column '%s', %d alternatives%s)", pp$names[k], pp$choice[k], sum(pp$alt_part == k),
            if (is.na(pp$scale[k])) "" else sprintf(", scale '%s'", pp$scale[k]))
  }, character(1)), collapse = "; "))
}
