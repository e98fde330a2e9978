# Random coefficients by their distribution (issue 14): shorthands that
# expand into utility expressions with named parameters, and the summary's
# reading of those expressions back into distributions.
#
# Each shorthand is text for a utility string, in parentheses, over random
# terms of iclv_model(random = ) (independent standard normals xi):
#   normal      (b_mean + b_sd * xi)                      mean, s.d. b_sd
#   lognormal   (exp(b_mu + b_sigma * xi)), or with sign = -1
#               (-exp(b_mu + b_sigma * xi)): a coefficient of one sign whose
#               log is normal (mu, sigma)
#   uniform     (b_mean + b_spread * (2 * pnorm(xi) - 1)): on
#               [mean - spread, mean + spread]
#   triangular  (b_mean + b_spread * ifelse(xi < 0, sqrt(2 * pnorm(xi)) - 1,
#               1 - sqrt(2 * pnorm(-xi)))): symmetric on the same range (the
#               inverse cdf of the triangular at Phi(xi), each half on its
#               own side so that no tail loses digits)
# iclv_random_coefs() makes correlated normals (or lognormals: exp of them)
# through a lower-triangular Cholesky factor of free parameters:
#   b_k = mean_k + sum_{l <= k} chol_k_l * xi_l.
# summary() finds these forms in the (resolved) utilities wherever they
# stand, written by hand or by the shorthands, and reports mean, s.d. and
# median with delta-method SEs (iclv_delta); the normal coefficients of
# linear terms keep their report (.random_coefficients, R/methods.R).

#' Random coefficients by their distribution
#'
#' Text for utility strings that gives a coefficient a distribution over
#' individuals, through the random terms of [iclv_model()] (`random =`,
#' independent standard-normal draws). The parameters are named after
#' `name`:
#' \describe{
#'   \item{`"normal"`}{`(<name>_mean + <name>_sd * xi)`}
#'   \item{`"lognormal"`}{`(exp(<name>_mu + <name>_sigma * xi))`: positive,
#'     or negative with `sign = -1` (a price coefficient); `mu` and `sigma`
#'     are those of its log}
#'   \item{`"uniform"`}{`(<name>_mean + <name>_spread * (2 * pnorm(xi) - 1))`:
#'     uniform on mean +- spread}
#'   \item{`"triangular"`}{symmetric triangular on mean +- spread, through
#'     the inverse cdf at `pnorm(xi)`}
#' }
#' `iclv_random_coefs()` gives several correlated normal (or lognormal)
#' coefficients: `<name_k>_mean + sum_l <name_k>_chol_<name_l> * xi_l` over
#' the first k random terms (a lower-triangular Cholesky factor of free
#' parameters, whose diagonal gives the scale).
#' `summary()` of a fit reports each such coefficient as a distribution
#' (mean, s.d., median) with standard errors by the delta method.
#'
#' @param name The coefficient's name (a prefix of its parameters' names).
#' @param draw The random term (a name in `iclv_model(random = )`).
#' @param dist `"normal"`, `"lognormal"`, `"uniform"` or `"triangular"`.
#' @param sign `1`, or `-1` for a negative lognormal coefficient.
#' @param names For `iclv_random_coefs()`: the coefficients' names.
#' @param draws For `iclv_random_coefs()`: one random term per coefficient.
#' @return A string (`iclv_random_coef`), or a character vector named by
#'   `names` (`iclv_random_coefs`), to use inside utility strings, e.g.
#'   `paste(iclv_random_coef("b_price", "xi_p", "lognormal", -1), "* price")`.
#' @examples
#' iclv_random_coef("b_price", "xi_price", "lognormal", sign = -1)
#' iclv_random_coefs(c("b_time", "b_wait"), c("xi_1", "xi_2"))
#' u <- list(car = paste("asc_car +", iclv_random_coef("b_cost", "xi_c", "lognormal", -1), "* cost_car"),
#'           bus = paste(iclv_random_coef("b_cost", "xi_c", "lognormal", -1), "* cost_bus"))
#' u
#' @export
iclv_random_coef <- function(name, draw, dist = c("normal", "lognormal", "uniform", "triangular"), sign = 1) {
  .dist_check_name(name, "name")
  .dist_check_name(draw, "draw")
  dist <- .dist_match(dist)
  if (!is.numeric(sign) || length(sign) != 1L || !sign %in% c(-1, 1)) {
    iclv_abort("spec", "'sign' must be 1 or -1")
  }
  if (sign < 0 && dist != "lognormal") {
    iclv_abort("spec", "'sign = -1' is for the lognormal: a normal, uniform or triangular coefficient takes its sign from its mean")
  }
  switch(dist,
    normal = sprintf("(%s_mean + %s_sd * %s)", name, name, draw),
    lognormal = sprintf("(%sexp(%s_mu + %s_sigma * %s))", if (sign < 0) "-" else "", name, name, draw),
    uniform = sprintf("(%s_mean + %s_spread * (2 * pnorm(%s) - 1))", name, name, draw),
    triangular = sprintf("(%s_mean + %s_spread * %s)", name, name, .dist_triangular(draw)))
}

#' @rdname iclv_random_coef
#' @export
iclv_random_coefs <- function(names, draws, dist = c("normal", "lognormal"), sign = 1) {
  if (!is.character(names) || length(names) < 1L || anyNA(names) || anyDuplicated(names)) {
    iclv_abort("spec", "'names' must be distinct names")
  }
  for (nm in names) .dist_check_name(nm, "names")
  if (!is.character(draws) || length(draws) != length(names) || anyDuplicated(draws)) {
    iclv_abort("spec", "'draws' must be one distinct random term per coefficient")
  }
  for (dr in draws) .dist_check_name(dr, "draws")
  dist <- match.arg(dist)
  sign <- rep_len(sign, length(names))
  if (!all(sign %in% c(-1, 1)) || (dist == "normal" && any(sign < 0))) {
    iclv_abort("spec", "'sign' must be 1 or -1 (and -1 only for lognormal coefficients)")
  }
  out <- vapply(seq_along(names), function(k) {
    chol <- paste(sprintf("%s_chol_%s * %s", names[k], names[seq_len(k)], draws[seq_len(k)]), collapse = " + ")
    inner <- sprintf("%s_mean + %s", names[k], chol)
    if (dist == "normal") sprintf("(%s)", inner) else sprintf("(%sexp(%s))", if (sign[k] < 0) "-" else "", inner)
  }, character(1))
  stats::setNames(out, names)
}

.dist_triangular <- function(draw) {
  sprintf("ifelse(%s < 0, sqrt(2 * pnorm(%s)) - 1, 1 - sqrt(2 * pnorm(-%s)))", draw, draw, draw)
}

.dist_match <- function(dist) {
  ok <- c("normal", "lognormal", "uniform", "triangular")
  if (!is.character(dist) || length(dist) < 1L || !dist[1] %in% ok) {
    iclv_abort("spec", sprintf("'dist' must be one of %s", iclv_quote(ok)))
  }
  dist[1]
}

.dist_check_name <- function(x, what) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !.is_name(x)) {
    iclv_abort("spec", sprintf("'%s' must be one syntactic name", what))
  }
}

# The distributions written in the resolved utilities of a fit: a
# data.frame (coefficient, random, distribution, mean, se_mean, sd, se_sd,
# median, se_median) or NULL; type the covariance type of the summary.
.random_distributions <- function(fit, type) {
  ch <- fit$model$choice
  rnd <- fit$model$random
  if (is.null(ch) || !length(rnd) || !length(ch$tapes)) return(NULL)
  pars <- names(fit$coefficients)
  found <- list()
  add <- function(expr_text, dist, draws, ex) {
    key <- paste(dist, expr_text)
    if (key %in% names(found)) return(invisible())
    found[[key]] <<- list(coefficient = expr_text, dist = dist, draws = draws, ex = ex)
  }
  is_par <- function(x) is.name(x) && as.character(x) %in% pars
  is_rnd <- function(x) is.name(x) && as.character(x) %in% rnd
  # a + sum_l s_l * xi_l (a a parameter, s_l parameters, xi_l random terms):
  # list(mean, sds, draws) or NULL
  normal_sum <- function(x) {
    terms <- list()
    split <- function(y) {
      if (.is_call_to(y, "+", 2L)) { split(y[[2L]]); split(y[[3L]]); return(invisible()) }
      terms[[length(terms) + 1L]] <<- y
    }
    split(x)
    mean <- NULL
    sds <- draws <- character()
    for (t in terms) {
      if (is_par(t) && is.null(mean)) { mean <- as.character(t); next }
      if (.is_call_to(t, "*", 2L) && is_par(t[[2L]]) && is_rnd(t[[3L]])) {
        sds <- c(sds, as.character(t[[2L]])); draws <- c(draws, as.character(t[[3L]])); next
      }
      return(NULL)
    }
    if (is.null(mean) || !length(sds)) return(NULL)
    list(mean = mean, sds = sds, draws = draws)
  }
  walk <- function(x, neg = FALSE) {
    if (!is.call(x)) return(invisible())
    if (.is_call_to(x, "(", 1L)) return(walk(x[[2L]], neg))
    if (.is_call_to(x, "-", 1L)) return(walk(x[[2L]], !neg))
    if (.is_call_to(x, "exp", 1L)) {
      ns <- normal_sum(x[[2L]])
      if (!is.null(ns)) {
        s2 <- paste(sprintf("%s^2", ns$sds), collapse = " + ")
        sg <- if (neg) "-" else ""
        add(paste0(sg, .expr_text(x)), "lognormal", ns$draws, c(
          mean = sprintf("%sexp(%s + (%s) / 2)", sg, ns$mean, s2),
          sd = sprintf("exp(%s + (%s) / 2) * sqrt(exp(%s) - 1)", ns$mean, s2, s2),
          median = sprintf("%sexp(%s)", sg, ns$mean)))
        return(invisible())
      }
    }
    if (.is_call_to(x, "+", 2L) && is_par(x[[2L]]) && .is_call_to(x[[3L]], "*", 2L) && is_par(x[[3L]][[2L]])) {
      m <- as.character(x[[2L]])
      s <- as.character(x[[3L]][[2L]])
      shape <- x[[3L]][[3L]]
      if (.is_call_to(shape, "(", 1L)) shape <- shape[[2L]]
      for (dr in rnd) {
        uni <- str2lang(sprintf("2 * pnorm(%s) - 1", dr))
        tri <- str2lang(.dist_triangular(dr))
        k <- if (identical(shape, uni)) 3 else if (identical(shape, tri)) 6 else NA
        if (!is.na(k)) {
          add(.expr_text(x), if (k == 3) "uniform" else "triangular", dr,
              c(mean = m, sd = sprintf("sqrt(%s^2 / %d)", s, k), median = m))
          return(invisible())
        }
      }
    }
    if (.is_call_to(x, "*", 2L)) { # a sign belongs to the product: the coefficient's
      walk(x[[2L]], neg)
      walk(x[[3L]], neg)
      return(invisible())
    }
    for (a in as.list(x)[-1L]) walk(a, FALSE)
  }
  for (tp in ch$tapes) walk(str2lang(tp$text))
  if (!length(found)) return(NULL)
  rows <- lapply(found, function(f) {
    d <- tryCatch(iclv_delta(fit, f$ex, type = type), error = function(e) NULL)
    est <- if (is.null(d)) rep(NA_real_, 3) else d$estimate
    se <- if (is.null(d)) rep(NA_real_, 3) else d$std.error
    data.frame(coefficient = f$coefficient, random = paste(f$draws, collapse = " + "), distribution = f$dist,
               mean = est[1], se_mean = se[1], sd = est[2], se_sd = se[2], median = est[3], se_median = se[3],
               stringsAsFactors = FALSE)
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}
