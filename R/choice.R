#' The choice part of an ICLV model
#'
#' Describes the discrete choice model: its type, the data column with the
#' chosen alternative, one utility per alternative and, optionally, the
#' availability of each alternative.
#'
#' A utility is a string of terms separated by `+`; in its simplest form
#' each term is one of
#' \itemize{
#'   \item `param` (a constant, e.g. an alternative-specific constant),
#'   \item `param * column` (an attribute, a column of the data),
#'   \item `param * lv` (a latent variable of the model),
#'   \item `param * column * lv` (an attribute interacted with a latent variable;
#'     the two factors after `param` may come in either order).
#' }
#' Parameters are shared by name: `b_price * price_1` in one utility and
#' `b_price * price_2` in another estimate one coefficient. Which names are
#' latent variables (and random terms) is decided by [iclv_model()]. The
#' string `"0"` is a utility without terms (e.g. the reference alternative).
#'
#' @section Utilities as expressions:
#' A utility may be any R expression (parsed by R's parser) over parameters,
#' data columns, latent variables and random terms: numbers, `+ - * / ^`,
#' parentheses, `exp()`, `log()`, `sqrt()`, `pnorm()`, comparisons
#' `== != < > <= >=` with numbers or strings (a character or factor column
#' compared with `"Novum"` gives 1 or 0), `& | !` and
#' `ifelse(condition, a, b)`; it need not be linear in its parameters. For
#' example `"asc_1 - b_price * price_1 / income + b_novum * (brand_1 == 'Novum')"`,
#' `"mu * (asc_car + b_time * time_car)"` (a scale),
#' `"-exp(m_price + s_price * xi_price) * price_1"` (a lognormal coefficient,
#' see [iclv_random_coef()]) or `"b_cost * (cost / income) ^ lambda_inc"`.
#'
#' \strong{How names resolve.} When the model meets its data ([iclv()],
#' [iclv_loglik()], [iclv_objective()], `iclv_model(data = )`), in this order:
#' a latent variable or random term of the model is that; a column of the
#' data is data; any other name is a parameter. ([iclv_simulate()], which
#' makes the data, takes the names in its `params` as the parameters.)
#' Before data, [iclv_model()] reads a utility provisionally (in each
#' product the first plain name is the parameter), and its parameter table
#' is completed by the data. A misspelt column therefore reads as a
#' parameter: when it then stands in a product with other parameters, none
#' of which occurs anywhere else (`b_p * prce / 2`: only the product would be
#' identified), the error names it (parameters meant so are named in
#' `iclv_model(start = )`).
#'
#' \strong{What is computed how.} The utility is split into its additive
#' terms (signs and parentheses around sums expanded; a product led by
#' `ifelse(data condition, a, b)` distributed over its branches). A term
#' that is `parameter * data * at most one latent variable` is a linear
#' term: its data part is evaluated once, into a column of the compiled
#' data, and linear utilities are estimated exactly as with hand-made
#' columns (same fast engine). Every other term goes into the alternative's
#' nonlinear part, compiled into a small program (a tape) that both engines
#' run for every choice task and draw with exact first and second
#' derivatives (forward mode); there too every subexpression of data only
#' is evaluated once, into a column. On the CPU engine a tape whose
#' variables are all parameters (no latent variable or random term) runs
#' once per respondent and task, not once per draw; in an MNL without row
#' multipliers its value then enters like the linear part, and the task takes
#' the linear MNL's fast path. The parameters that only a
#' nonlinear part uses start at 0, or at 1 for a scale (a parameter
#' multiplying an expression with parameters), an exponent, or a parameter
#' alone inside `log()` or `sqrt()`, in a denominator or as the base of a
#' power.
#'
#' Errors: a term without parameter (pure data: an offset needs a parameter,
#' fixed at 1), the same linear term twice, a condition of `ifelse()` or a
#' comparison that holds a parameter or a latent variable (no derivative;
#' conditions on data and random terms are allowed), a function not listed
#' above, and more than 32 parameters and latent variables in one
#' alternative's nonlinear part.
#'
#' For `type = "mnl"` the probability of alternative `j` in a choice task is
#' `exp(V_j)` divided by the sum of `exp(V_k)` over the available `k`. For `type = "probit"` (binary
#' probit) there must be exactly two alternatives and
#' `P(first) = pnorm(V_1 - V_2)` when both are available; a task with one
#' alternative available chooses it with probability 1 (log-likelihood
#' contribution 0), for either type. The chosen alternative must be available
#' (an error names the row and the id).
#'
#' For `type = "ranked"` (exploded logit) `choice` names one column per rank,
#' best first (e.g. `c("best", "second", "third", "worst")`), each holding
#' the alternative at that rank. The probability of a ranking is the product
#' over its ranks `k` of `exp(V_rk) / sum exp(V_j)` over the available
#' alternatives not ranked before `k`. Partial rankings: an `NA` rank ends
#' the ranking (a later rank must then be `NA` too); alternatives no rank
#' names are unranked and stay in every stage's choice set (ranked below
#' the ranked ones, in an unobserved order). The last rank of a full
#' ranking (one alternative left) has probability 1 and adds nothing. Ties
#' cannot be written one alternative per rank: an alternative named at two
#' ranks is an error; end the ranking before tied positions to treat the
#' tied alternatives as unranked. A ranking with only its first rank is the
#' MNL model of the best choice, exactly.
#'
#' For `type = "bestworst"` (sequential best-worst) `choice` names the
#' best and the worst column: the best is chosen among the available
#' alternatives with `exp(V_b) / sum exp(V_j)`, then the worst among the
#' others with utilities `-mu V`: `exp(-mu V_w) / sum_{j != b} exp(-mu V_j)`,
#' where `mu = 1` or, with `worst_scale = "mu_w"`, a free parameter (> 0,
#' start 1) of that name. A missing (`NA`) worst leaves the best choice
#' alone (MNL).
#'
#' Both are compiled into one MNL row per stage (the alternatives chosen in
#' earlier stages made unavailable; the worst stage's utilities multiplied
#' by `-mu`), so every engine evaluates them with its MNL kernel, with exact
#' gradients and Hessians. The summary reports the choice log-likelihood of
#' each stage (`choice:<column>`); [predict.iclv()] returns the
#' probabilities of the first stage (the best choice), or of every stage
#' with `stages = TRUE`; [iclv_simulate()] simulates whole rankings
#' (best-worst pairs).
#'
#' @section Nested logit:
#' For `type = "nl"`, `nests` groups the alternatives, e.g.
#' `nests = list(branded = c("A", "B"), generic = c("C", "D"))`. Each nest
#' `m` has a nesting parameter `lambda_<m>` (the nest's name, so it must be
#' a valid name), and with `I_m = log sum exp(V_k / lambda_m)` over the
#' available alternatives `k` of nest `m`,
#' `P(j) = exp(V_j / lambda_m) / exp(I_m) * exp(lambda_m I_m) / sum_n exp(lambda_n I_n)`
#' for `j` in nest `m`, the sum over the nests with an available
#' alternative (a nest without one drops out of the task). Nests must not
#' overlap, must name alternatives of `utilities` and hold at least two
#' alternatives each (the lambda of a nest of one alternative is not
#' identified: leave the alternative out instead). An alternative in no
#' nest is a nest of its own with lambda 1 (no parameter). The lambdas are
#' estimated in (0, 1), the range consistent with random utility
#' maximisation: the optimizer sees `qlogis(lambda)`, while starting
#' values, estimates, standard errors and `coef()` are in `lambda` itself
#' (start 0.8). Fixing a lambda at 1, `iclv_model(..., fixed = c(lambda_branded = 1))`,
#' collapses its nest; with every lambda fixed at 1 the model is the MNL
#' model, bit for bit. The likelihood is evaluated in log space (stable for
#' small lambdas), with exact gradients and Hessians in the utilities (hence
#' LVs and random terms) and the lambdas, by the reference CPU kernel (the
#' fast CPU kernels cover MNL and probit) and the CUDA kernels.
#' [predict.iclv()] returns the nested logit probabilities and
#' [iclv_simulate()] draws nested logit choices.
#'
#' @section Ordered choice:
#' For `type = "ordered"` each choice row holds an ordered outcome, e.g. a
#' rating `1..C` of the scenario of the row, in the column `choice` (whole
#' numbers `1..C`, or a factor whose levels are the categories in order).
#' `utilities` is one utility string (or a list of one string; the index is
#' called `index` unless the list names it), written with the same terms as
#' an MNL utility (parameters, data columns, latent variables, random
#' terms), giving the index `V` of the row. With thresholds
#' `tau_1 < ... < tau_{C-1}`, `tau_0 = -Inf`, `tau_C = Inf`,
#' `P(y = c) = F(tau_c - V) - F(tau_{c-1} - V)`, `F` the standard normal
#' (`link = "probit"`, the default) or logistic (`link = "logit"`)
#' distribution function: the ordered indicators' model with `V` in place of
#' the loadings' index. The thresholds are parameters named
#' `tau_<choice>_1` ... `tau_<choice>_<C-1>` (block `"choice"`, role
#' `"threshold"`), estimated increasing as the indicators' thresholds are
#' (the first one, then the logs of the increments) and started from the
#' data's cumulative shares of the categories. A constant term in the index
#' is not identified with free thresholds and is refused. `C` is the
#' largest category in the data unless `categories` declares it (categories
#' never observed are allowed then); a value outside `1..C` is a data error
#' that names the row. The likelihood is evaluated in log space with exact
#' gradients and Hessians (the index's parameters, LVs and random terms, the
#' thresholds, and all cross terms) by the reference CPU kernel (the fast
#' CPU kernels cover MNL and probit) and the CUDA kernels. [predict.iclv()]
#' returns one column per category (named `"1"`, ..., `"C"`);
#' [iclv_simulate()] draws the category of `V + e` cut at the thresholds
#' (`e` normal or logistic). [iclv_elasticities()] refuses ordered choices.
#' With two categories the ordered probit is the binary probit choice whose
#' utility difference is `V - tau_1`.
#'
#' @section Several choice parts:
#' [iclv_model()] takes a named list of MNL choice parts,
#' `choice = list(rp = iclv_choice("mnl", choice = "ch_rp", ...), sp = iclv_choice("mnl", choice = "ch_sp", ..., scale = "mu_sp"))`
#' (e.g. revealed and stated preference). Each part has its own choice
#' column; a data row belongs to the part whose choice column is not `NA`
#' there: a row where every part's choice column is `NA`, or where two are
#' not, is an error naming the row, and two parts cannot share a choice
#' column. A part may have no rows. In a row of part `k` only part `k`'s
#' alternatives are available (and of those, the ones its own `available`
#' columns allow; these are read in the part's rows only, and attributes
#' that only other parts use may be `NA` there). Parameters are shared by
#' name across parts, and so are the latent variables and random terms (the
#' same draw of an individual enters every part).
#'
#' `scale = "mu_sp"` gives the part a relative scale: a free parameter
#' `mu > 0` (start 1, role `"scale"`, estimated on the log scale) that
#' multiplies all of the part's utilities,
#' `P(j) = exp(mu V_j) / sum_k exp(mu V_k)`. At least one part has no scale
#' (the reference): a scale on the only part, on every part or on a choice
#' that is not a part of a list is an error. Parts may share a scale name.
#'
#' The parts are compiled into one MNL choice model over the alternatives
#' prefixed by their part, `"<part>.<alternative>"` (`"rp.car"`,
#' `"sp.car"`, ...), with the scales as multipliers of their rows'
#' utilities, so every engine evaluates them with its MNL kernel and exact
#' gradients and Hessians; a list of one part is the plain model exactly
#' (alternatives renamed). Only `"mnl"` parts are supported; other types are
#' refused by name. The summary reports the choice log-likelihood of each
#' part (`choice:<part>`, its rows integrated over the latent variables);
#' [predict.iclv()] returns one column per prefixed alternative, the other
#' parts' alternatives having probability 0 in a row; [iclv_simulate()]
#' takes `n_tasks` as one number (that many tasks of every part per
#' individual) or a vector named by the parts (`c(rp = 2, sp = 4)`; 0
#' allowed), gives each individual its tasks of the first part, then of the
#' second, ..., and writes each part's choice and availability columns with
#' `NA` outside its rows (its `availability` argument names the prefixed
#' alternatives, e.g. `c(sp.bike = 0.7)`). `newdata` for [predict.iclv()]
#' needs the parts' choice columns (they say each row's part).
#'
#' @param type `"mnl"` (multinomial logit, two or more alternatives),
#'   `"probit"` (binary probit, exactly two alternatives), `"ranked"`
#'   (exploded logit of a full or partial ranking), `"bestworst"`
#'   (sequential best-worst), `"nl"` (nested logit; needs `nests`) or
#'   `"ordered"` (ordered probit or logit outcome of one utility index; see
#'   the section Ordered choice).
#' @param choice Name of the data column holding the chosen alternative: its
#'   name (a name of `utilities`; character or factor column) or its 1-based
#'   position in `utilities` (numeric column). For `"ranked"`, the names of
#'   the rank columns, best first; for `"bestworst"`, of the best and the
#'   worst column; for `"ordered"`, of the column of categories `1..C`.
#' @param utilities A named list (or named character vector) of utility
#'   strings, one per alternative, in the order of the alternatives. For
#'   `"ordered"`: one string (or a list of one string), the index.
#' @param available `NULL` (every alternative always available) or a named
#'   list / named character vector mapping alternatives to 0/1 data columns.
#'   Alternatives not named are always available.
#' @param worst_scale For `"bestworst"`: `NULL` (the worst stage's utilities
#'   are `-V`) or the name of a free scale parameter `mu` (`-mu V`).
#' @param nests For `"nl"` only (and required there): a named list of
#'   character vectors, one per nest, each naming two or more alternatives;
#'   nests do not overlap. See the section Nested logit.
#' @param link For `"ordered"` only: `"probit"` (default) or `"logit"`.
#' @param categories For `"ordered"` only: `NULL` (the largest category in
#'   the data) or the number of categories `C` (a whole number in `[2, 100]`).
#' @param scale For a part of several choice parts (see the section Several
#'   choice parts): `NULL` or the name of a free relative scale parameter
#'   multiplying all of the part's utilities.
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv_choice"`: a list with `type`, `choice`
#'   (the first rank column for `"ranked"` and `"bestworst"`), `ranks` (every
#'   rank column; `choice` for the other types), `alternatives`, `utilities`
#'   (the strings), `terms` (one data.frame of parsed terms per alternative),
#'   `available`, `worst_scale`, `nests` (for `"nl"`: the nests, each
#'   alternative in no nest added as a nest of its own named after it) and
#'   `nest_params` (the name of each nest's lambda, `NA` for the added
#'   nests), `link` and `categories` (for `"ordered"`: the link and `C`, `NA`
#'   until the data give it; `NULL` for the other types) and `scale`. The
#'   combined choice of several parts (a model's `choice`) also has `parts`:
#'   the parts' `names`, `choice` columns, `alternatives` (unprefixed),
#'   `alt_part` (the part of each combined alternative), `available` and
#'   `scale` (`NA` for none).
#' @seealso [iclv_model()]
#' @examples
#' ch <- iclv_choice("mnl", choice = "best",
#'   utilities = list(car = "asc_car + b_time * time_car + l_env * env",
#'                    bus = "b_time * time_bus",
#'                    bike = "asc_bike + b_time * time_bike * env"))
#' ch
#' iclv_choice("ordered", choice = "rating", utilities = "b_price * price + l_att * att",
#'             link = "logit", categories = 5)
#' @export
iclv_choice <- function(type = c("mnl", "probit", "ranked", "bestworst", "nl", "ordered"), choice, utilities,
                        available = NULL, worst_scale = NULL, nests = NULL, link = NULL, categories = NULL,
                        scale = NULL, ...) {
  .spec_check_dots(list(...), "iclv_choice")
  types <- c("mnl", "probit", "ranked", "bestworst", "nl", "ordered")
  if (!is.character(type) || length(type) < 1L) {
    iclv_abort("spec", sprintf("'type' must be one of %s", iclv_quote(types)))
  }
  type <- tryCatch(match.arg(type, types), error = function(e) {
    iclv_abort("spec", sprintf("unknown choice model type %s: use one of %s",
                               iclv_quote(type[1]), iclv_quote(types)))
  })
  ranks <- .choice_rank_columns(type, choice, worst_scale)
  choice <- ranks[1]
  ord <- .choice_ordered_args(type, link, categories, available, nests)
  if (type == "ordered") utilities <- .choice_ordered_utility(utilities)
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
  if (length(alts) < 2L && type != "ordered") {
    iclv_abort("spec", "a choice model needs at least two alternatives")
  }
  if (type == "probit" && length(alts) != 2L) {
    iclv_abort("spec", sprintf("a binary probit choice model needs exactly 2 alternatives; 'utilities' has %d (%s)",
                               length(alts), iclv_quote(alts)))
  }
  utilities <- as.list(utilities)
  terms <- Map(.parse_utility, utilities, alts)
  names(terms) <- alts
  # (a utility the data will read, R/tape.R, has terms to come)
  if (sum(vapply(terms, nrow, integer(1))) == 0L &&
      !any(vapply(terms, function(t) !is.null(attr(t, "deferred")), logical(1)))) {
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
  if (!is.null(worst_scale) && worst_scale %in% unlist(lapply(terms, `[[`, "param"))) {
    iclv_abort("spec", sprintf("'worst_scale' %s is also a parameter of a utility; give the scale its own name",
                               iclv_quote(worst_scale)))
  }
  nst <- .choice_nests(type, nests, alts, unique(unlist(lapply(terms, `[[`, "param"))))
  scale <- .parts_scale_arg(scale, terms, worst_scale) # R/parts.R
  structure(list(type = type, choice = choice, ranks = ranks, alternatives = alts,
                 utilities = vapply(utilities, identity, character(1)),
                 terms = terms, available = available, worst_scale = worst_scale,
                 nests = nst$nests, nest_params = nst$params, link = ord$link, categories = ord$categories,
                 scale = scale),
            class = "iclv_choice")
}

# The arguments only an ordered choice takes: list(link ("probit" or
# "logit"; NULL for other types), categories (NA: from the data, or a whole
# number in [2, .max_categories]; NULL for other types)).
.choice_ordered_args <- function(type, link, categories, available, nests) {
  if (type != "ordered") {
    if (!is.null(link)) iclv_abort("spec", "'link' is only for type = \"ordered\" (ordered choice)")
    if (!is.null(categories)) iclv_abort("spec", "'categories' is only for type = \"ordered\" (ordered choice)")
    return(list(link = NULL, categories = NULL))
  }
  if (!is.null(available)) iclv_abort("spec", "an ordered choice has no alternatives to make unavailable: drop 'available'")
  if (!is.null(nests)) iclv_abort("spec", "'nests' is only for type = \"nl\" (nested logit)")
  link <- link %||% "probit"
  if (!is.character(link) || length(link) != 1L || !link %in% c("probit", "logit")) {
    iclv_abort("spec", "'link' must be \"probit\" or \"logit\"")
  }
  if (is.null(categories)) {
    categories <- NA_integer_
  } else if (!is.numeric(categories) || length(categories) != 1L || is.na(categories) ||
             categories != round(categories) || categories < 2 || categories > .max_categories) {
    iclv_abort("spec", sprintf("'categories' must be one whole number in [2, %d]", .max_categories))
  }
  list(link = link, categories = as.integer(categories))
}

# The one utility (the index V) of an ordered choice: a string or a list /
# vector of one string, named "index" unless the user named it.
.choice_ordered_utility <- function(utilities) {
  if (missing(utilities) || length(utilities) != 1L || (!is.list(utilities) && !is.character(utilities)) ||
      !is.character(utilities[[1]]) || length(utilities[[1]]) != 1L || is.na(utilities[[1]])) {
    iclv_abort("spec", "an ordered choice has one utility (its index): 'utilities' must be one string or a list of one string")
  }
  nm <- names(utilities)
  if (is.null(nm) || is.na(nm) || !nzchar(nm)) nm <- "index"
  stats::setNames(list(utilities[[1]]), nm)
}

# An ordered choice's index must not hold a constant term (a parameter
# alone): with free thresholds it is not identified.
.choice_ordered_no_constant <- function(choice) {
  if (!identical(choice$type, "ordered") || is.null(choice$terms_all)) return(invisible())
  ta <- choice$terms_all
  k <- which(is.na(ta$col) & is.na(ta$lv))
  if (length(k)) {
    iclv_abort("spec", sprintf(
      "the ordered choice's utility has the constant term %s: with free thresholds a constant is not identified; drop it (the thresholds absorb it)",
      iclv_quote(ta$param[k[1]])))
  }
  invisible()
}

# The nests of a nested logit (type "nl"), checked against the alternatives
# `alts` and the utilities' parameter names `params`: list(nests (named list
# of alternative names: the user's nests, then one nest of its own for each
# alternative in none, named after it), params (the lambda of each nest,
# "lambda_<nest>", NA for the added nests)). NULLs for other types.
.choice_nests <- function(type, nests, alts, params) {
  if (type != "nl") {
    if (!is.null(nests)) iclv_abort("spec", "'nests' is only for type = \"nl\" (nested logit)")
    return(list(nests = NULL, params = NULL))
  }
  if (is.null(nests)) {
    iclv_abort("spec", "type = \"nl\" needs 'nests': a named list of alternatives, e.g. nests = list(a = c(\"x\", \"y\"))")
  }
  if (!is.list(nests) || length(nests) == 0L) iclv_abort("spec", "'nests' must be a non-empty named list of alternative names")
  nn <- names(nests)
  if (is.null(nn) || anyNA(nn) || any(!nzchar(nn))) iclv_abort("spec", "every element of 'nests' must be named by its nest")
  if (anyDuplicated(nn)) iclv_abort("spec", sprintf("the nest %s appears twice in 'nests'", iclv_quote(nn[duplicated(nn)][1])))
  pn <- paste0("lambda_", nn)
  bad <- !grepl("^[A-Za-z.][A-Za-z0-9._]*$", pn)
  if (any(bad)) iclv_abort("spec", sprintf("the nest name %s does not make a parameter name (lambda_<nest>)", iclv_quote(nn[bad][1])))
  seen <- character()
  for (k in seq_along(nests)) {
    a <- nests[[k]]
    if (is.factor(a)) a <- as.character(a)
    if (!is.character(a) || anyNA(a) || length(a) == 0L) {
      iclv_abort("spec", sprintf("nest %s must be a character vector of alternatives", iclv_quote(nn[k])))
    }
    unknown <- setdiff(a, alts)
    if (length(unknown)) {
      iclv_abort("spec", sprintf("nest %s names %s, which is not an alternative (alternatives: %s)",
                                 iclv_quote(nn[k]), iclv_quote(unknown[1]), iclv_quote(alts)))
    }
    dup <- intersect(a, seen)
    if (anyDuplicated(a)) dup <- c(a[duplicated(a)], dup)
    if (length(dup)) {
      iclv_abort("spec", sprintf("nests overlap: alternative %s is in nest %s and in an earlier nest (or twice); every alternative belongs to at most one nest",
                                 iclv_quote(dup[1]), iclv_quote(nn[k])))
    }
    if (length(a) < 2L) {
      iclv_abort("spec", sprintf("nest %s has one alternative (%s): its lambda is not identified; leave the alternative out of 'nests' (an alternative in no nest is a nest of its own, lambda 1)",
                                 iclv_quote(nn[k]), iclv_quote(a)))
    }
    seen <- c(seen, a)
    nests[[k]] <- a
  }
  clash <- intersect(pn, params)
  if (length(clash)) {
    iclv_abort("spec", sprintf("the nesting parameter %s is also a parameter of a utility; rename the nest or the parameter",
                               iclv_quote(clash[1])))
  }
  rest <- setdiff(alts, seen)
  if (length(rest) && any(rest %in% nn)) {
    iclv_abort("spec", sprintf("alternative %s is in no nest and is also the name of a nest; rename the nest",
                               iclv_quote(rest[rest %in% nn][1])))
  }
  out <- c(lapply(nests, as.character), stats::setNames(as.list(rest), rest))
  list(nests = out, params = c(pn, rep(NA_character_, length(rest))))
}

# The choice columns of a choice part by type (one for "mnl" and "probit",
# one per rank for "ranked", best and worst for "bestworst"), checked;
# and `worst_scale` (only with "bestworst": NULL or one name).
.choice_rank_columns <- function(type, choice, worst_scale) {
  what <- switch(type, ranked = "the names of the rank columns, best first",
                 bestworst = "the names of the best and the worst column",
                 "the name of the data column with the chosen alternative")
  ok <- !missing(choice) && is.character(choice) && length(choice) >= 1L && !anyNA(choice) && all(nzchar(choice))
  if (!ok || (type %in% c("mnl", "probit", "ordered") && length(choice) != 1L) ||
      (type == "bestworst" && length(choice) != 2L)) {
    iclv_abort("spec", sprintf("'choice' must be %s", what))
  }
  if (anyDuplicated(choice)) {
    iclv_abort("spec", sprintf("'choice' names the column %s twice", iclv_quote(choice[duplicated(choice)][1])))
  }
  if (!is.null(worst_scale)) {
    if (type != "bestworst") iclv_abort("spec", "'worst_scale' is only for type = \"bestworst\"")
    if (!is.character(worst_scale) || length(worst_scale) != 1L || is.na(worst_scale) ||
        !grepl("^[A-Za-z.][A-Za-z0-9._]*$", worst_scale)) {
      iclv_abort("spec", "'worst_scale' must be NULL or one parameter name")
    }
  }
  choice
}

#' @export
print.iclv_choice <- function(x, ...) {
  if (!is.null(x$parts)) return(.parts_print(x)) # several choice parts (R/parts.R)
  lab <- c(mnl = "Multinomial logit", probit = "Binary probit", ranked = "Ranked (exploded logit)",
           bestworst = "Best-worst", nl = "Nested logit",
           ordered = sprintf("Ordered %s", x$link %||% "probit"))[[x$type]]
  cols <- x$ranks %||% x$choice
  cat(sprintf("%s choice model, column%s %s, %s%s%s\n", lab, if (length(cols) > 1L) "s" else "",
              paste0("'", cols, "'", collapse = ", "),
              if (identical(x$type, "ordered")) {
                if (is.na(x$categories)) "categories from the data" else sprintf("%d categories", x$categories)
              } else sprintf("%d alternatives", length(x$alternatives)),
              if (is.null(x$worst_scale)) "" else sprintf(", worst-stage scale '%s'", x$worst_scale),
              if (is.null(x$scale)) "" else sprintf(", relative scale '%s' (a part of several)", x$scale)))
  w <- max(nchar(x$alternatives))
  for (a in x$alternatives) {
    av <- if (!is.null(x$available) && a %in% names(x$available)) sprintf("   [available: %s]", x$available[[a]]) else ""
    cat(sprintf("  %s: %s%s\n", formatC(a, width = -w), x$utilities[[a]], av))
  }
  if (identical(x$type, "nl")) {
    for (k in which(!is.na(x$nest_params))) {
      cat(sprintf("  nest %s (%s): %s\n", names(x$nests)[k], x$nest_params[k], paste(x$nests[[k]], collapse = ", ")))
    }
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
