#' The choice part of an ICLV model
#'
#' Describes the discrete choice model: its type, the data column with the
#' chosen alternative, one utility per alternative and, optionally, the
#' availability of each alternative.
#'
#' Utilities are linear in their parameters. A utility is a string of terms
#' separated by `+`; each term is one of
#' \itemize{
#'   \item `param` (a constant, e.g. an alternative-specific constant),
#'   \item `param * column` (an attribute, a column of the data),
#'   \item `param * lv` (a latent variable of the model),
#'   \item `param * column * lv` (an attribute interacted with a latent variable;
#'     the two factors after `param` may come in either order).
#' }
#' The first factor of a term is always the parameter. Parameters are shared
#' by name: `b_price * price_1` in one utility and `b_price * price_2` in
#' another estimate one coefficient. Which names are latent variables is
#' decided by [iclv_model()]; every other factor is a data column. The string
#' `"0"` is a utility without terms (e.g. the reference alternative). A term
#' with a leading `-` is not supported (the coefficient takes the sign), and
#' numeric constants are not supported (fix a parameter with `fixed` in
#' [iclv_model()] instead).
#'
#' For `type = "mnl"` the probability of alternative `j` in a choice task is
#' `exp(V_j)` divided by the sum of `exp(V_k)` over the available `k`. For `type = "probit"` (binary
#' probit) there must be exactly two alternatives and
#' `P(first) = pnorm(V_1 - V_2)` when both are available; a task with one
#' alternative available chooses it with probability 1 (log-likelihood
#' contribution 0), for either type. The chosen alternative must be available
#' (an error names the row and the id).
#'
#' @param type `"mnl"` (multinomial logit, two or more alternatives) or
#'   `"probit"` (binary probit, exactly two alternatives).
#' @param choice Name of the data column holding the chosen alternative: its
#'   name (a name of `utilities`; character or factor column) or its 1-based
#'   position in `utilities` (numeric column).
#' @param utilities A named list (or named character vector) of utility
#'   strings, one per alternative, in the order of the alternatives.
#' @param available `NULL` (every alternative always available) or a named
#'   list / named character vector mapping alternatives to 0/1 data columns.
#'   Alternatives not named are always available.
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv_choice"`: a list with `type`, `choice`,
#'   `alternatives`, `utilities` (the strings), `terms` (one data.frame of
#'   parsed terms per alternative) and `available`.
#' @seealso [iclv_model()]
#' @examples
#' ch <- iclv_choice("mnl", choice = "best",
#'   utilities = list(car = "asc_car + b_time * time_car + l_env * env",
#'                    bus = "b_time * time_bus",
#'                    bike = "asc_bike + b_time * time_bike * env"))
#' ch
#' @export
iclv_choice <- function(type = c("mnl", "probit"), choice, utilities, available = NULL, ...) {
  .spec_check_dots(list(...), "iclv_choice")
  if (!is.character(type) || length(type) < 1L) {
    iclv_abort("spec", "'type' must be \"mnl\" or \"probit\"")
  }
  type <- tryCatch(match.arg(type, c("mnl", "probit")), error = function(e) {
    iclv_abort("spec", sprintf("unknown choice model type %s: use \"mnl\" or \"probit\"",
                               iclv_quote(type[1])))
  })
  if (missing(choice) || !is.character(choice) || length(choice) != 1L || is.na(choice) || !nzchar(choice)) {
    iclv_abort("spec", "'choice' must be the name of the data column with the chosen alternative")
  }
  if (missing(utilities) || length(utilities) == 0L || (!is.list(utilities) && !is.character(utilities))) {
    iclv_abort("spec", "'utilities' must be a named list of utility strings, one per alternative")
  }
  alts <- names(utilities)
  if (is.null(alts) || anyNA(alts) || any(!nzchar(alts))) {
    iclv_abort("spec", "every element of 'utilities' must be named by its alternative")
  }
  if (anyDuplicated(alts)) {
    iclv_abort("spec", sprintf("alternative %s appears twice in 'utilities'", iclv_quote(alts[duplicated(alts)][1])))
  }
  if (length(alts) < 2L) {
    iclv_abort("spec", "a choice model needs at least two alternatives")
  }
  if (type == "probit" && length(alts) != 2L) {
    iclv_abort("spec", sprintf("a binary probit choice model needs exactly 2 alternatives; 'utilities' has %d (%s)",
                               length(alts), iclv_quote(alts)))
  }
  utilities <- as.list(utilities)
  terms <- Map(.parse_utility, utilities, alts)
  names(terms) <- alts
  if (sum(vapply(terms, nrow, integer(1))) == 0L) {
    iclv_abort("spec", "every utility is \"0\": the choice model has no parameter")
  }
  if (!is.null(available)) {
    if (!is.list(available) && !is.character(available)) {
      iclv_abort("spec", "'available' must be NULL or a named list of 0/1 column names")
    }
    an <- names(available)
    if (is.null(an) || any(!nzchar(an))) iclv_abort("spec", "every element of 'available' must be named by its alternative")
    unknown <- setdiff(an, alts)
    if (length(unknown)) {
      iclv_abort("spec", sprintf("'available' names %s, which is not an alternative (alternatives: %s)",
                                 iclv_quote(unknown[1]), iclv_quote(alts)))
    }
    if (anyDuplicated(an)) iclv_abort("spec", sprintf("'available' names %s twice", iclv_quote(an[duplicated(an)][1])))
    ok <- vapply(available, function(a) is.character(a) && length(a) == 1L && !is.na(a) && nzchar(a), logical(1))
    if (!all(ok)) {
      iclv_abort("spec", sprintf("'available' for %s must be one column name", iclv_quote(an[!ok][1])))
    }
    available <- vapply(available, identity, character(1))
    if (length(available) == 0L) available <- NULL
  }
  structure(list(type = type, choice = choice, alternatives = alts,
                 utilities = vapply(utilities, identity, character(1)),
                 terms = terms, available = available),
            class = "iclv_choice")
}

#' @export
print.iclv_choice <- function(x, ...) {
  cat(sprintf("%s choice model, column '%s', %d alternatives\n",
              if (x$type == "mnl") "Multinomial logit" else "Binary probit", x$choice,
              length(x$alternatives)))
  w <- max(nchar(x$alternatives))
  for (a in x$alternatives) {
    av <- if (!is.null(x$available) && a %in% names(x$available)) sprintf("   [available: %s]", x$available[[a]]) else ""
    cat(sprintf("  %s: %s%s\n", formatC(a, width = -w), x$utilities[[a]], av))
  }
  invisible(x)
}

# Unknown `...` arguments are an error everywhere in the package.
.spec_check_dots <- function(dots, fun, allowed = character()) {
  if (length(dots) == 0L) return(invisible())
  nm <- names(dots)
  if (is.null(nm)) nm <- rep("", length(dots))
  bad <- nm[!(nm %in% allowed) | !nzchar(nm)]
  if (length(bad)) {
    lab <- ifelse(nzchar(bad), bad, "<unnamed>")
    iclv_abort("spec", sprintf("unknown argument%s %s to %s()", if (length(lab) > 1L) "s" else "",
                               iclv_quote(lab), fun))
  }
  invisible()
}
