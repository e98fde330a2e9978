# Draw designs: which standard-normal draws e[n, r, k] the simulated
# likelihood integrates over. The draws themselves are computed in C
# (src/draws.h), the same code on the CPU and the GPU; this file validates a
# design and turns it into the list that src/boundary.c reads.

.draws_types <- c("halton", "scrambled_halton", "sobol", "mlhs", "pseudo")
.draws_codes <- c(user = 0L, halton = 1L, scrambled_halton = 2L, sobol = 3L, mlhs = 4L, pseudo = 5L)
.draws_halton_max_dim <- 100L # primes tabulated in src/draws.h
.draws_sobol_max_dim <- 40L   # Joe-Kuo dimensions in src/sobol_directions.h
.draws_generate_max <- 2^28   # draws iclv_draws_generate() returns at most (N x R x K)

#' Draw designs for simulated maximum likelihood
#'
#' Describes the standard-normal draws `e[n, r, k]` (individual `n`, draw
#' `r`, latent variable `k`) over which the likelihood of each individual is
#' simulated: the individual's latent variables are built from its own `R`
#' draws, shared by all of its rows (a panel). The draws are generated in C
#' when they are needed, by the same code on the CPU and on the GPU, so a
#' design and its seed give the same draws on every backend and machine;
#' [iclv_draws_generate()] returns them for inspection.
#'
#' @section Types:
#' Every type except user arrays produces uniforms `u` in (0, 1) that are
#' mapped to normals by `e = qnorm(u)` (Wichura's AS 241, accurate to about
#' 1e-16). Individuals are numbered `n` = 0, ..., N-1 in the order of first
#' appearance of their id in the data, draws `r` = 0, ..., R-1, and latent
#' variable dimensions `k` = 0, ..., K-1.
#' \describe{
#'   \item{`"halton"`}{Dimension `k` uses the `(k+1)`-th prime as base (2, 3,
#'     5, 7, ...; at most 100 dimensions). Each dimension is one Halton
#'     sequence of length `N * R`; individual `n` takes the `n`-th
#'     consecutive block of `R` points: point index
#'     `i = skip + n * R + r + 1`, and `u` is the radical inverse of `i`. With
#'     `skip = 0` the first point used in base 2 is 0.5 (then 0.25, 0.75,
#'     0.125, ...), the convention of `randtoolbox::halton()` and Apollo; the
#'     point 0 is never used. `skip` discards further points at the start.
#'     The draws of an individual depend on its position and on `R`.}
#'   \item{`"scrambled_halton"`}{The same points with each base-`b` digit of
#'     `i` passed through a random permutation of the digits `0..b-1` (a
#'     random linear scrambling with digital shift: `d -> (h d + g) mod b`,
#'     `h` in `1..b-1`, `g` in `0..b-1`, one pair per dimension and digit
#'     position, derived from `seed` by the Philox generator). Zero is not a
#'     fixed point, so even base 2 is scrambled. This removes the strong
#'     correlation between the higher-prime dimensions of plain Halton
#'     sequences. Resolution 2^-32.}
#'   \item{`"sobol"`}{Sobol' points with Joe and Kuo's (2008) direction
#'     numbers (`new-joe-kuo-6.21201`, at most 40 dimensions; the first
#'     dimension is the van der Corput sequence), in gray-code order, 32-bit.
#'     The same indexing as Halton: point `i = skip + n * R + r + 1`, so the
#'     all-zero point is skipped; `skip + N * R` must stay below 2^32.}
#'   \item{`"mlhs"`}{Modified Latin hypercube sampling (Hess, Train and Polak
#'     2006): for each individual and dimension, `u_r = (p(r) + c) / R` with
#'     one uniform shift `c` and a random permutation `p` of `0..R-1`, both
#'     derived from `seed`, `n` and `k` (the permutation is a keyed Feistel
#'     bijection, so nothing is stored). Each individual's `R` draws of a
#'     dimension have exactly one point in each of the `R` strata
#'     `[s/R, (s+1)/R)`. An individual's draws do not depend on `N`.}
#'   \item{`"pseudo"`}{Pseudo-random: the Philox4x32-10 counter-based
#'     generator keyed by `seed` with counter `(n, r, k)`; 53 random bits give
#'     `u`. An individual's draws depend on neither `N` nor `R`.}
#' }
#' A numeric array `N x R x K` given as `type` is used as is: its values are
#' the standard-normal draws `e[n, r, k]` (not uniforms) and must be finite;
#' its dimensions must match the individuals and latent variables of the
#' model it is used with. If the third dimension is named
#' (`dimnames(x)[[3]]`), its names must be the model's latent variables,
#' and the slices are matched to them by name.
#'
#' @param type One of `"halton"` (default), `"scrambled_halton"`, `"sobol"`,
#'   `"mlhs"`, `"pseudo"`; or a numeric array of standard-normal draws with
#'   dimensions individuals x draws x latent variables.
#' @param n Draws per individual (at least 2). Taken from the array when
#'   `type` is an array.
#' @param seed A whole number in `[0, 2^53)`: the seed of the scrambled
#'   Halton, MLHS and pseudo-random types (ignored by `"halton"` and
#'   `"sobol"`).
#' @param skip A non-negative whole number: points discarded at the start of
#'   the Halton, scrambled Halton and Sobol' sequences (ignored by the other
#'   types).
#' @param ... Not used; anything given is an error.
#' @return An object of class `"iclv_draws"`: a list with `type`, `n`,
#'   `seed`, `skip` and `user` (the array, or `NULL`).
#' @references
#' Halton, J. H. (1960). On the efficiency of certain quasi-random sequences
#' of points in evaluating multi-dimensional integrals. Numerische
#' Mathematik, 2, 84-90.
#'
#' Joe, S. and Kuo, F. Y. (2008). Constructing Sobol sequences with better
#' two-dimensional projections. SIAM Journal on Scientific Computing, 30,
#' 2635-2654.
#'
#' Hess, S., Train, K. E. and Polak, J. W. (2006). On the use of a Modified
#' Latin Hypercube Sampling (MLHS) method in the estimation of a Mixed Logit
#' model for vehicle choice. Transportation Research Part B, 40, 147-163.
#'
#' Salmon, J. K., Moraes, M. A., Dror, R. O. and Shaw, D. E. (2011).
#' Parallel random numbers: as easy as 1, 2, 3. Proceedings of SC11.
#'
#' Wichura, M. J. (1988). Algorithm AS 241: The percentage points of the
#' normal distribution. Applied Statistics, 37, 477-484.
#' @seealso [iclv_draws_generate()], [iclv()]
#' @examples
#' iclv_draws("halton", n = 200)
#' iclv_draws("mlhs", n = 100, seed = 42)
#' # user-supplied standard-normal draws: 30 individuals, 50 draws, 2 LVs
#' e <- array(rnorm(30 * 50 * 2), c(30, 50, 2))
#' iclv_draws(e)
#' @export
iclv_draws <- function(type = c("halton", "scrambled_halton", "sobol", "mlhs", "pseudo"),
                       n = 100, seed = 1, skip = 0, ...) {
  dots <- list(...)
  if (length(dots)) {
    nm <- names(dots)
    nm <- if (is.null(nm)) rep("", length(dots)) else nm
    nm[!nzchar(nm)] <- "(unnamed)"
    iclv_abort("draws", sprintf("unknown argument %s to iclv_draws()", iclv_quote(nm)))
  }
  if (is.numeric(type) && !is.null(dim(type))) {
    return(.draws_user(type, n, n_missing = missing(n)))
  }
  if (identical(type, .draws_types)) type <- "halton"
  if (!is.character(type) || length(type) != 1L || is.na(type) || !(type %in% .draws_types)) {
    shown <- if (is.character(type)) paste(type, collapse = ", ") else
      if (!is.null(dim(type))) sprintf("a %s array", typeof(type)) else paste0("an object of type ", typeof(type))
    iclv_abort("draws", sprintf("'type' must be one of %s, or a numeric array of draws (got %s)",
                                iclv_quote(.draws_types), shown))
  }
  n <- .draws_whole(n, "n", min = 1, max = .Machine$integer.max)
  if (n < 2) {
    iclv_abort("draws", sprintf("too few draws: n = %d; simulated maximum likelihood needs at least 2 draws per individual", n))
  }
  seed <- .draws_whole(seed, "seed", min = 0, max = 2^53 - 1)
  skip <- .draws_whole(skip, "skip", min = 0, max = 2^53 - 1)
  structure(list(type = type, n = as.integer(n), seed = seed, skip = skip, user = NULL),
            class = "iclv_draws")
}

# A user array: N x R x K standard-normal draws, finite, no zero extent.
.draws_user <- function(x, n, n_missing = TRUE) {
  d <- dim(x)
  if (length(d) != 3L) {
    iclv_abort("draws", sprintf(
      "user draws must be a 3-dimensional array (individuals x draws x latent variables); this one has %d dimension%s",
      length(d), if (length(d) == 1L) "" else "s"))
  }
  if (any(d == 0L)) {
    iclv_abort("draws", sprintf("user draws have a zero extent (dimensions %s)", paste(d, collapse = " x ")))
  }
  bad <- which(!is.finite(x))
  if (length(bad)) {
    pos <- arrayInd(bad[1], d)
    iclv_abort("draws", sprintf(
      "user draws must be finite standard-normal values; %d are not, the first at [%d, %d, %d] (%s)",
      length(bad), pos[1], pos[2], pos[3], format(x[bad[1]])))
  }
  if (d[2] < 2L) {
    iclv_abort("draws", "too few draws: the user array has 1 draw per individual; at least 2 are needed")
  }
  if (!n_missing) {
    n <- .draws_whole(n, "n", min = 1, max = .Machine$integer.max)
    if (n != d[2]) {
      iclv_abort("draws", sprintf("'n' = %d does not match the user array's %d draws (its second dimension)",
                                  n, d[2]))
    }
  }
  # the names of the third dimension, when given, say which latent variable
  # each slice belongs to (checked and matched to the model by .draws_spec())
  nm3 <- dimnames(x)[[3]]
  if (!is.null(nm3) && all(is.na(nm3) | !nzchar(nm3))) nm3 <- NULL
  if (!is.null(nm3) && (anyNA(nm3) || any(!nzchar(nm3)) || anyDuplicated(nm3))) {
    iclv_abort("draws", sprintf(
      "the names of the user draws' third dimension (%s) must be distinct latent variable names, none empty or NA",
      paste(nm3, collapse = ", ")))
  }
  storage.mode(x) <- "double"
  attributes(x) <- if (is.null(nm3)) list(dim = as.integer(d)) else
    list(dim = as.integer(d), dimnames = list(NULL, NULL, as.character(nm3)))
  structure(list(type = "user", n = as.integer(d[2]), seed = NA_real_, skip = 0, user = x),
            class = "iclv_draws")
}

.draws_whole <- function(x, arg, min = 0, max = Inf) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x != round(x) ||
      x < min || x > max) {
    shown <- if (is.numeric(x) && length(x) == 1L) format(x, digits = 15) else
      if (length(x) != 1L) sprintf("a vector of length %d", length(x)) else paste0("a ", class(x)[1])
    range <- if (is.finite(max)) sprintf("in [%s, %s]", format(min), format(max, digits = 16)) else
      sprintf(">= %s", format(min))
    iclv_abort("draws", sprintf("'%s' must be a whole number %s (got %s)", arg, range, shown))
  }
  as.double(x)
}

#' @export
print.iclv_draws <- function(x, ...) {
  label <- c(halton = "Halton", scrambled_halton = "scrambled Halton", sobol = "Sobol'",
             mlhs = "MLHS", pseudo = "pseudo-random (Philox)", user = "user-supplied")
  if (identical(x$type, "user")) {
    d <- dim(x$user)
    cat(sprintf("iclv draw design: user-supplied standard-normal draws, %d individuals x %d draws x %d latent variable%s\n",
                d[1], d[2], d[3], if (d[3] == 1L) "" else "s"))
  } else {
    cat(sprintf("iclv draw design: %d %s draws per individual\n", x$n, label[[x$type]]))
    extra <- character()
    if (x$type %in% c("scrambled_halton", "mlhs", "pseudo")) extra <- c(extra, sprintf("seed %s", format(x$seed, digits = 16)))
    if (x$type %in% c("halton", "scrambled_halton", "sobol")) extra <- c(extra, sprintf("skip %s", format(x$skip, digits = 16)))
    if (length(extra)) cat("  ", paste(extra, collapse = ", "), "\n", sep = "")
  }
  invisible(x)
}

# The list src/boundary.c (draws_from_R) reads, for a model with n_ind
# individuals and n_lv latent variables:
#   list(type = integer code of iclv_model.h, n_draws, n_dim, n_ind (integers),
#        seed, skip (doubles), user = double array (n_ind, n_draws, n_lv) or NULL)
# `draws` is an "iclv_draws" object or a numeric array of user draws.
# `lv_names` (optional): the model's latent variables in engine order; a user
# array whose third dimension is named is matched to them by name (slices
# reordered), and names that are not the model's are an error.
.draws_spec <- function(draws, n_ind, n_lv, lv_names = NULL) {
  if (is.numeric(draws) && !is.null(dim(draws))) draws <- iclv_draws(draws)
  if (!inherits(draws, "iclv_draws")) {
    iclv_abort("draws", "'draws' must be an iclv_draws() design or a numeric array of draws (individuals x draws x latent variables)")
  }
  # rebuilt by the constructor, so that a design made or edited by hand (a
  # list with class "iclv_draws") is validated like any other
  draws <- if (identical(draws$type, "user")) .draws_user(draws$user, NULL) else
    iclv_draws(draws$type, n = draws$n, seed = draws$seed, skip = draws$skip)
  n_ind <- as.integer(.draws_whole(n_ind, "n_ind", min = 1, max = .Machine$integer.max))
  n_lv <- as.integer(.draws_whole(n_lv, "n_lv", min = 0, max = .Machine$integer.max))
  type <- draws$type
  R <- as.integer(draws$n)
  if (identical(type, "user")) {
    d <- dim(draws$user)
    if (!identical(as.integer(d), c(n_ind, R, n_lv))) {
      iclv_abort("draws", sprintf(
        "user draws have dimensions %s, but the model needs %d x %d x %d (individuals x draws x latent variables)",
        paste(d, collapse = " x "), n_ind, R, n_lv))
    }
    nm3 <- dimnames(draws$user)[[3]]
    if (!is.null(nm3) && !is.null(lv_names)) {
      if (!setequal(nm3, lv_names)) {
        iclv_abort("draws", sprintf(
          "the user draws' third dimension is named %s, but the model's latent variables (and random terms) are %s",
          iclv_quote(nm3), iclv_quote(lv_names)))
      }
      draws$user <- draws$user[, , match(lv_names, nm3), drop = FALSE]
    }
    dimnames(draws$user) <- NULL
  } else {
    last <- draws$skip + as.double(n_ind) * R
    if (type %in% c("halton", "scrambled_halton")) {
      if (n_lv > .draws_halton_max_dim) {
        iclv_abort("draws", sprintf("%s draws support at most %d latent variables; the model has %d (use \"mlhs\" or \"pseudo\")",
                                    type, .draws_halton_max_dim, n_lv))
      }
      if (last >= 2^53) {
        iclv_abort("draws", sprintf("%s draws: skip + individuals x draws must be below 2^53", type))
      }
    }
    if (identical(type, "sobol")) {
      if (n_lv > .draws_sobol_max_dim) {
        iclv_abort("draws", sprintf("sobol draws support at most %d latent variables; the model has %d (use \"scrambled_halton\", \"mlhs\" or \"pseudo\")",
                                    .draws_sobol_max_dim, n_lv))
      }
      if (last >= 2^32) {
        iclv_abort("draws", sprintf("sobol draws: skip + individuals x draws = %s must be below 2^32",
                                    format(last, digits = 16)))
      }
    }
  }
  list(type = .draws_codes[[type]], n_draws = R, n_dim = n_lv, n_ind = n_ind,
       seed = if (identical(type, "user")) 0 else as.double(draws$seed),
       skip = as.double(draws$skip),
       user = if (identical(type, "user")) draws$user else NULL)
}

#' Generate the draws of a design
#'
#' Returns the standard-normal draws `e[n, r, k]` exactly as the estimation
#' engines use them (the same C code computes them), for inspection and
#' checks: `pnorm()` of the result gives the underlying uniforms of the
#' quasi-random types.
#'
#' @param draws An [iclv_draws()] design, or a numeric array of draws.
#' @param n_ind Number of individuals `N`. For a user array, its first
#'   dimension (the default).
#' @param n_lv Number of latent variables (draw dimensions) `K`. For a user
#'   array, its third dimension (the default).
#' @return A numeric array with dimensions `N x R x K` (at most `2^28`
#'   draws in all).
#' @seealso [iclv_draws()]
#' @examples
#' e <- iclv_draws_generate(iclv_draws("halton", n = 4), n_ind = 2, n_lv = 2)
#' pnorm(e[, , 1]) # base 2: 0.5 0.25 0.75 0.125 | 0.625 0.375 0.875 0.0625
#' @export
iclv_draws_generate <- function(draws, n_ind = NULL, n_lv = NULL) {
  if (is.numeric(draws) && !is.null(dim(draws))) draws <- iclv_draws(draws)
  if (!inherits(draws, "iclv_draws")) {
    iclv_abort("draws", "'draws' must be an iclv_draws() design or a numeric array of draws (individuals x draws x latent variables)")
  }
  if (inherits(draws, "iclv_draws") && identical(draws$type, "user")) {
    if (is.null(n_ind)) n_ind <- dim(draws$user)[1]
    if (is.null(n_lv)) n_lv <- dim(draws$user)[3]
  }
  if (is.null(n_ind) || is.null(n_lv)) {
    iclv_abort("draws", "iclv_draws_generate() needs 'n_ind' and 'n_lv' (individuals and latent variables)")
  }
  n_ind <- .draws_whole(n_ind, "n_ind", min = 1, max = .Machine$integer.max)
  n_lv <- .draws_whole(n_lv, "n_lv", min = 1, max = .Machine$integer.max)
  n_el <- as.double(n_ind) * as.double(if (identical(draws$type, "user")) dim(draws$user)[2] else draws$n) * as.double(n_lv)
  # an inspection tool: 2^28 draws (2 GiB) take about a minute; more would
  # run uninterruptibly in C for many minutes (iclv() never needs the array)
  if (is.finite(n_el) && n_el > .draws_generate_max) {
    iclv_abort("draws", sprintf(
      "iclv_draws_generate() would return %.3g draws (%s); that is too large for one array (at most 2^28 = %.0f): ask for fewer individuals or draws",
      n_el, format(structure(8 * n_el, class = "object_size"), units = "auto"), .draws_generate_max))
  }
  avail <- .host_available_bytes()
  if (!is.na(avail) && 8 * n_el > avail) {
    iclv_abort("memory", sprintf("iclv_draws_generate() would return %s of draws, but only %s are available",
                                 .format_bytes(8 * n_el), .format_bytes(avail)))
  }
  .draws_generate(.draws_spec(draws, n_ind, n_lv))
}

# The caller's random number state, to put back: .rng_keep() captures the
# global .Random.seed (or its absence) and the generator kinds, and returns
# a function that restores them. Every place that seeds R's generator for a
# reproducible result of its own (iclv_simulate(seed =), the seed problem's
# missing values, the bootstrap's resamples, the identification check's
# random points) uses it as
#   restore <- .rng_keep(); on.exit(restore(), add = TRUE); set.seed(...)
# so that the user's stream continues as if iclv had not drawn.
.rng_keep <- function() {
  env <- globalenv()
  had <- exists(".Random.seed", envir = env, inherits = FALSE)
  old <- if (had) get(".Random.seed", envir = env, inherits = FALSE)
  kind <- RNGkind()
  function() {
    # the kinds first: RNGkind() re-seeds, the saved seed then overwrites it
    if (!identical(RNGkind(), kind)) do.call(RNGkind, as.list(kind))
    if (had) assign(".Random.seed", old, envir = env)
    else if (exists(".Random.seed", envir = env, inherits = FALSE)) rm(".Random.seed", envir = env)
  }
}
