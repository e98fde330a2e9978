# Draw designs: known values of each sequence, the properties that define
# each type, reproducibility, and validation. The draws come from C
# (src/draws.h) through iclv_draws_generate(); the checks below use
# independent computations (exact radical inverses, Joe and Kuo's recurrence
# recomputed in R, Random123's known answers, stats::qnorm).

gen <- function(type, n_ind, n_draws, n_lv, seed = 1, skip = 0) {
  iclv_draws_generate(iclv_draws(type, n = n_draws, seed = seed, skip = skip), n_ind, n_lv)
}

# exact radical inverse of the integer i in base b
radical_inverse <- function(i, b) {
  u <- 0
  f <- 1 / b
  while (i > 0) {
    u <- u + (i %% b) * f
    i <- i %/% b
    f <- f / b
  }
  u
}

test_that("Halton draws are the radical inverses of i = skip + n*R + r + 1", {
  e <- gen("halton", n_ind = 2, n_draws = 4, n_lv = 3)
  expect_equal(dim(e), c(2L, 4L, 3L))
  u <- pnorm(e)
  # base 2: 0.5, 0.25, 0.75, 0.125 for individual 1; the next block for individual 2
  expect_equal(u[1, , 1], c(0.5, 0.25, 0.75, 0.125), tolerance = 1e-14)
  expect_equal(u[2, , 1], c(0.625, 0.375, 0.875, 0.0625), tolerance = 1e-14)
  # base 3: 1/3, 2/3, 1/9, 4/9 | 7/9, 2/9, 5/9, 8/9
  expect_equal(u[1, , 2], c(1, 2, 1, 4) / c(3, 3, 9, 9), tolerance = 1e-14)
  expect_equal(u[2, , 2], c(7, 2, 5, 8) / 9, tolerance = 1e-14)
  # base 5
  expect_equal(u[1, , 3], c(1, 2, 3, 4) / 5, tolerance = 1e-14)
  # the normals are qnorm of the exact points, to 1e-14
  for (k in 1:3) {
    b <- c(2, 3, 5)[k]
    exact <- outer(0:1, 0:3, function(n, r) mapply(radical_inverse, n * 4 + r + 1, b))
    expect_equal(e[, , k], qnorm(exact), tolerance = 1e-14)
  }
  # skip discards points at the start of every dimension
  s <- pnorm(gen("halton", n_ind = 1, n_draws = 3, n_lv = 2, skip = 5))
  expect_equal(s[1, , 1], sapply(6:8, radical_inverse, b = 2), tolerance = 1e-14)
  expect_equal(s[1, , 2], sapply(6:8, radical_inverse, b = 3), tolerance = 1e-14)
  # a larger design against the exact points, 10 dimensions (primes up to 29)
  big <- gen("halton", n_ind = 7, n_draws = 13, n_lv = 10, skip = 3)
  primes <- c(2, 3, 5, 7, 11, 13, 17, 19, 23, 29)
  for (k in c(1, 4, 10)) {
    idx <- outer(0:6, 0:12, function(n, r) 3 + n * 13 + r + 1)
    exact <- array(sapply(idx, radical_inverse, b = primes[k]), dim(idx))
    expect_equal(big[, , k], qnorm(exact), tolerance = 1e-14)
  }
})

test_that("Halton and scrambled Halton fill every stratum of a full block exactly once", {
  for (type in c("halton", "scrambled_halton")) {
    # base 2: points i = 64..127 (skip 63) hit each of the 64 strata once
    u <- pnorm(gen(type, n_ind = 4, n_draws = 16, n_lv = 1, seed = 11, skip = 63))
    expect_equal(sort(floor(as.vector(u) * 64)), 0:63, info = type)
    # base 3: points i = 81..161 hit each of the 81 strata once
    u <- pnorm(gen(type, n_ind = 3, n_draws = 27, n_lv = 2, seed = 11, skip = 80))
    expect_equal(sort(floor(as.vector(u[, , 2]) * 81)), 0:80, info = type)
  }
})

test_that("scrambled Halton depends on the seed and differs from plain Halton", {
  a <- gen("scrambled_halton", 5, 20, 3, seed = 1)
  expect_identical(a, gen("scrambled_halton", 5, 20, 3, seed = 1))
  b <- gen("scrambled_halton", 5, 20, 3, seed = 2)
  expect_true(all(a != b))
  h <- gen("halton", 5, 20, 3)
  expect_gt(mean(abs(a - h)), 0.1)
  # plain Halton's first points in every base are 1/b; scrambling moves them
  expect_false(isTRUE(all.equal(pnorm(a[1, 1, ]), 1 / c(2, 3, 5))))
  # uniforms in (0, 1): finite normals
  expect_true(all(is.finite(a)))
})

# Joe and Kuo's new-joe-kuo-6.21201, dimensions 2..40: s, a, m_1..m_s
joe_kuo <- list(
  c(1, 0, 1), c(2, 1, 1, 3), c(3, 1, 1, 3, 1), c(3, 2, 1, 1, 1), c(4, 1, 1, 1, 3, 3),
  c(4, 4, 1, 3, 5, 13), c(5, 2, 1, 1, 5, 5, 17), c(5, 4, 1, 1, 5, 5, 5),
  c(5, 7, 1, 1, 7, 11, 19), c(5, 11, 1, 1, 5, 1, 1), c(5, 13, 1, 1, 1, 3, 11),
  c(5, 14, 1, 3, 5, 5, 31), c(6, 1, 1, 3, 3, 9, 7, 49), c(6, 13, 1, 1, 1, 15, 21, 21),
  c(6, 16, 1, 3, 1, 13, 27, 49), c(6, 19, 1, 1, 1, 15, 7, 5), c(6, 22, 1, 3, 1, 15, 13, 25),
  c(6, 25, 1, 1, 5, 5, 19, 61), c(7, 1, 1, 3, 7, 11, 23, 15, 103),
  c(7, 4, 1, 3, 7, 13, 13, 15, 69), c(7, 7, 1, 1, 3, 13, 7, 35, 63),
  c(7, 8, 1, 3, 5, 9, 1, 25, 53), c(7, 14, 1, 3, 1, 13, 9, 35, 107),
  c(7, 19, 1, 3, 1, 5, 27, 61, 31), c(7, 21, 1, 1, 5, 11, 19, 41, 61),
  c(7, 28, 1, 3, 5, 3, 3, 13, 69), c(7, 31, 1, 1, 7, 13, 1, 19, 1),
  c(7, 32, 1, 3, 7, 5, 13, 19, 59), c(7, 37, 1, 1, 3, 9, 25, 29, 41),
  c(7, 41, 1, 3, 5, 13, 23, 1, 55), c(7, 42, 1, 3, 7, 3, 13, 59, 17),
  c(7, 50, 1, 3, 1, 3, 5, 53, 69), c(7, 55, 1, 1, 5, 5, 23, 33, 13),
  c(7, 56, 1, 1, 7, 7, 1, 61, 123), c(7, 59, 1, 1, 7, 9, 13, 61, 49),
  c(7, 62, 1, 3, 3, 5, 3, 55, 33), c(8, 14, 1, 3, 1, 15, 31, 13, 49, 245),
  c(8, 21, 1, 3, 5, 15, 31, 59, 63, 97), c(8, 22, 1, 3, 1, 11, 11, 11, 77, 249))

# 32-bit XOR and shift on doubles (bitwXor is limited to 31 bits)
xor32 <- function(a, b) {
  bitwXor(a %/% 65536, b %/% 65536) * 65536 + bitwXor(a %% 65536, b %% 65536)
}
# direction numbers V[1..nbits] of dimension d (1-based), as doubles in [0, 2^32)
sobol_v <- function(d, nbits) {
  if (d == 1) return(2^(32 - seq_len(nbits)))
  row <- joe_kuo[[d - 1]]
  s <- row[1]; a <- row[2]; m <- row[-(1:2)]
  v <- numeric(nbits)
  for (j in seq_len(nbits)) {
    if (j <= s) {
      v[j] <- m[j] * 2^(32 - j)
    } else {
      x <- xor32(v[j - s], v[j - s] %/% 2^s)
      for (l in seq_len(s - 1)) if ((a %/% 2^(s - 1 - l)) %% 2 == 1) x <- xor32(x, v[j - l])
      v[j] <- x
    }
  }
  v
}
# Sobol' point i (gray-code order), dimension d
sobol_point <- function(i, d, v) {
  g <- bitwXor(i, i %/% 2)
  x <- 0
  j <- 1
  while (g > 0) {
    if (g %% 2 == 1) x <- xor32(x, v[j])
    g <- g %/% 2
    j <- j + 1
  }
  x / 2^32
}

test_that("Sobol' draws match the published first points and Joe and Kuo's recurrence", {
  u <- pnorm(gen("sobol", n_ind = 1, n_draws = 9, n_lv = 3))
  # the first points after the all-zero point (Joe and Kuo's program, scipy scramble = FALSE)
  known <- rbind(c(0.5, 0.5, 0.5), c(0.75, 0.25, 0.25), c(0.25, 0.75, 0.75),
                 c(0.375, 0.375, 0.625), c(0.875, 0.875, 0.125), c(0.625, 0.125, 0.875),
                 c(0.125, 0.625, 0.375), c(0.1875, 0.3125, 0.9375), c(0.6875, 0.8125, 0.4375))
  expect_equal(u[1, , ], known, tolerance = 1e-14)

  # all 40 dimensions, points i = 1..256, against the recurrence in R
  N <- 4; R <- 64
  e <- gen("sobol", n_ind = N, n_draws = R, n_lv = 40)
  idx <- outer(0:(N - 1), 0:(R - 1), function(n, r) n * R + r + 1)
  for (d in 1:40) {
    v <- sobol_v(d, 9)
    exact <- array(sapply(idx, sobol_point, d = d, v = v), dim(idx))
    expect_equal(pnorm(e[, , d]), exact, tolerance = 1e-12, info = paste("dimension", d))
    # points are multiples of 2^-32: the absolute error must be far below that
    expect_lt(max(abs(pnorm(e[, , d]) - exact)), 1e-12)
  }
  # skip shifts the index, and the first 2^m points after zero form a (0, m, s)-net
  s <- pnorm(gen("sobol", n_ind = 2, n_draws = 5, n_lv = 2, skip = 100))
  expect_equal(s[2, 3, 2], sobol_point(100 + 5 + 2 + 1, 2, sobol_v(2, 9)), tolerance = 1e-14)
  u <- pnorm(gen("sobol", n_ind = 1, n_draws = 63, n_lv = 5))
  for (d in 1:5) expect_equal(sort(round(u[1, , d] * 64)), 1:63) # exact multiples of 1/64
})

test_that("Philox4x32-10 reproduces Random123's known answers", {
  # counter (0, 0, 0, 0), key (0, 0) -> 6627e8d5 e169c58d ...: the pseudo draw of
  # individual 0, draw 0, dimension 0 with seed 0 is qnorm of 53 bits of it
  e <- gen("pseudo", n_ind = 1, n_draws = 2, n_lv = 1, seed = 0)
  u <- (0x6627e8d5 * 2^21 + 0xe169c58d %/% 2^11) / 2^53
  expect_equal(e[1, 1, 1], qnorm(u), tolerance = 1e-14)

  # the full known-answer vectors, through the C function itself
  src <- normalizePath(file.path(testthat::test_path(), "..", "..", "src"), mustWork = FALSE)
  skip_if_not(file.exists(file.path(src, "draws.h")), "package sources (src/draws.h) not available")
  dir <- tempfile("iclv_kat")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  writeLines(c(
    "#include <stdint.h>",
    "#include \"draws.h\"",
    "void kat_philox(double *ctr_key, double *out) {",
    "  uint32_t c[4], k[2], o[4];",
    "  for (int i = 0; i < 4; i++) c[i] = (uint32_t) ctr_key[i];",
    "  for (int i = 0; i < 2; i++) k[i] = (uint32_t) ctr_key[4 + i];",
    "  iclv_philox4x32_10(c, k, o);",
    "  for (int i = 0; i < 4; i++) out[i] = (double) o[i];",
    "}",
    "void kat_qnorm(double *u, int *n, double *out) {",
    "  for (int i = 0; i < *n; i++) out[i] = iclv_qnorm(u[i]);",
    "}"), file.path(dir, "kat.c"))
  so <- file.path(dir, paste0("kat", .Platform$dynlib.ext))
  out <- suppressWarnings(system2(file.path(R.home("bin"), "R"),
                                  c("CMD", "SHLIB", "-o", shQuote(so), shQuote(file.path(dir, "kat.c"))),
                                  env = paste0("PKG_CPPFLAGS=-I", shQuote(src)), stdout = TRUE, stderr = TRUE))
  skip_if_not(file.exists(so), paste("no C compiler for the known-answer test:", paste(out, collapse = " ")))
  dll <- dyn.load(so)
  on.exit(dyn.unload(so), add = TRUE)
  philox <- function(ctr, key) {
    res <- .C("kat_philox", as.double(c(ctr, key)), out = double(4), PACKAGE = dll[["name"]])$out
    sprintf("%08x", as.integer(res - ifelse(res >= 2^31, 2^32, 0)))
  }
  expect_equal(philox(c(0, 0, 0, 0), c(0, 0)), c("6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"))
  ones <- 2^32 - 1
  expect_equal(philox(rep(ones, 4), c(ones, ones)), c("408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"))
  expect_equal(philox(c(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), c(0xa4093822, 0x299f31d0)),
               c("d16cfe09", "94fdcceb", "5001e420", "24126ea1"))

  # AS 241 against stats::qnorm over (1e-300, 1 - 1e-16)
  u <- c(10^-seq(300, 1, by = -0.25), seq(0.001, 0.999, by = 0.001), 0.425 + 0.5 + c(-1e-9, 1e-9),
         1 - 10^-seq(1, 16, by = 0.25))
  q <- .C("kat_qnorm", as.double(u), length(u), out = double(length(u)), PACKAGE = dll[["name"]])$out
  ref <- qnorm(u)
  rel <- abs(q - ref) / pmax(abs(ref), 1e-300)
  expect_lt(max(rel[abs(ref) > 1e-3]), 1e-14)
  expect_lt(max(abs(q - ref)[abs(ref) <= 1e-3]), 1e-17)
})

test_that("the inverse normal matches stats::qnorm in the centre and both tails", {
  # Halton points with an exactly known uniform: base 2, i = 2^40 -> u = 2^-41,
  # i = 2^52 -> 2^-53 (the far tail of AS 241), i = 2^53 - 1 -> 1 - 2^-53
  e <- gen("halton", n_ind = 1, n_draws = 2, n_lv = 1, skip = 2^40 - 1)
  expect_equal(e[1, 1, 1], qnorm(2^-41), tolerance = 1e-14)
  e <- gen("halton", n_ind = 1, n_draws = 2, n_lv = 1, skip = 2^52 - 1)
  expect_equal(e[1, 1, 1], qnorm(2^-53), tolerance = 1e-14)
  e <- gen("halton", n_ind = 1, n_draws = 2, n_lv = 1, skip = 2^53 - 3)
  expect_equal(e[1, 2, 1], qnorm(1 - 2^-53), tolerance = 1e-14)
  expect_equal(e[1, 1, 1], qnorm(0.5 - 2^-53), tolerance = 1e-14)
  # a grid of 1000 base-2 points and base-3 points
  e <- gen("halton", n_ind = 10, n_draws = 100, n_lv = 2)
  idx <- outer(0:9, 0:99, function(n, r) n * 100 + r + 1)
  for (k in 1:2) {
    exact <- array(sapply(idx, radical_inverse, b = c(2, 3)[k]), dim(idx))
    expect_equal(e[, , k], qnorm(exact), tolerance = 1e-14)
  }
})

test_that("pseudo-random draws are reproducible and depend only on (seed, n, r, k)", {
  a <- gen("pseudo", 10, 20, 3, seed = 5)
  expect_identical(a, gen("pseudo", 10, 20, 3, seed = 5))
  b <- gen("pseudo", 10, 20, 3, seed = 6)
  expect_true(all(a != b))
  big <- gen("pseudo", 100, 40, 4, seed = 5)
  expect_identical(big[1:10, 1:20, 1:3], a) # neither N, nor R, nor K changes a draw
  expect_identical(big[6, , ], gen("pseudo", 100, 40, 4, seed = 5)[6, , ])
  # seeds above 2^32 use the high key word
  expect_false(identical(gen("pseudo", 2, 5, 1, seed = 2^40), gen("pseudo", 2, 5, 1, seed = 0)))
})

test_that("MLHS puts one point in each stratum and does not depend on N", {
  R <- 37
  e <- gen("mlhs", n_ind = 8, n_draws = R, n_lv = 3, seed = 9)
  u <- pnorm(e)
  for (n in 1:8) for (k in 1:3) {
    expect_equal(sort(floor(u[n, , k] * R)), 0:(R - 1))
  }
  # the shifts differ between individuals and dimensions
  shifts <- (u * R) %% 1
  expect_gt(length(unique(round(shifts[, 1, ], 10))), 20)
  # the permutations differ too: not the same ordering for everyone
  orders <- apply(u, c(1, 3), function(x) paste(order(x), collapse = ","))
  expect_equal(length(unique(as.vector(orders))), 24)
  # individual 5 gets the same draws whether N = 10 or N = 100
  expect_identical(gen("mlhs", 10, R, 2, seed = 9)[5, , ], gen("mlhs", 100, R, 2, seed = 9)[5, , ])
  expect_identical(gen("mlhs", 10, R, 2, seed = 9)[1:8, , ], e[, , 1:2]) # nor on K
  expect_false(identical(e, gen("mlhs", 8, R, 3, seed = 10)))
  # R = 2: the smallest design still stratifies
  u2 <- pnorm(gen("mlhs", 50, 2, 1, seed = 3))
  expect_true(all(rowSums(floor(u2[, , 1] * 2)) == 1))
})

test_that("Halton draws of an individual depend on its position and on R", {
  a <- gen("halton", 10, 20, 2)
  b <- gen("halton", 100, 20, 2)
  expect_identical(a, b[1:10, , ]) # the same blocks for the first individuals
  c30 <- gen("halton", 10, 30, 2)
  expect_false(isTRUE(all.equal(a[2, , 1], c30[2, 1:20, 1])))
})

test_that("every type has mean near 0 and variance near 1", {
  N <- 50; R <- 200; K <- 2
  for (type in c("halton", "scrambled_halton", "sobol", "mlhs", "pseudo")) {
    e <- gen(type, N, R, K, seed = 3)
    expect_true(all(is.finite(e)), info = type)
    for (k in 1:K) {
      x <- as.vector(e[, , k])
      tol_m <- if (type == "pseudo") 4 / sqrt(N * R) else 0.01
      tol_v <- if (type == "pseudo") 0.06 else 0.02
      expect_lt(abs(mean(x)), tol_m, label = paste(type, "mean", k))
      expect_lt(abs(var(x) - 1), tol_v, label = paste(type, "var", k))
    }
    # the dimensions are not copies of one another
    expect_lt(abs(cor(as.vector(e[, , 1]), as.vector(e[, , 2]))), 0.05, label = paste(type, "cor"))
  }
})

test_that("draws do not depend on the number of threads", {
  lib <- dirname(find.package("iclv"))
  script <- tempfile(fileext = ".R")
  out1 <- tempfile(fileext = ".rds")
  out2 <- tempfile(fileext = ".rds")
  on.exit(unlink(c(script, out1, out2)), add = TRUE)
  writeLines(c(
    sprintf("library(iclv, lib.loc = %s)", deparse(lib)),
    "a <- commandArgs(TRUE)",
    "x <- lapply(c('halton', 'scrambled_halton', 'sobol', 'mlhs', 'pseudo'), function(t)",
    "  iclv_draws_generate(iclv_draws(t, n = 30, seed = 4), n_ind = 40, n_lv = 3))",
    "saveRDS(x, a[1])"), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  system2(rscript, c(shQuote(script), shQuote(out1)), env = "OMP_NUM_THREADS=1", stdout = FALSE, stderr = FALSE)
  system2(rscript, c(shQuote(script), shQuote(out2)), env = "OMP_NUM_THREADS=2", stdout = FALSE, stderr = FALSE)
  skip_if_not(file.exists(out1) && file.exists(out2), "could not run a child R process")
  x1 <- readRDS(out1)
  expect_identical(x1, readRDS(out2))
  # and the same as in this process
  expect_identical(x1[[5]], gen("pseudo", 40, 30, 3, seed = 4))
})

test_that("user arrays are used as is and checked against the model", {
  set.seed(1)
  x <- array(rnorm(4 * 6 * 2), c(4, 6, 2))
  d <- iclv_draws(x)
  expect_s3_class(d, "iclv_draws")
  expect_identical(d$type, "user")
  expect_identical(d$n, 6L)
  expect_identical(iclv_draws_generate(d), x)
  expect_identical(iclv_draws_generate(x, 4, 2), x)
  spec <- iclv:::.draws_spec(d, 4, 2)
  expect_identical(spec$type, 0L)
  expect_identical(spec[c("n_draws", "n_dim", "n_ind")], list(n_draws = 6L, n_dim = 2L, n_ind = 4L))
  expect_identical(spec$user, x)
  expect_error(iclv:::.draws_spec(d, 5, 2), class = "iclv_error_draws",
               regexp = "dimensions 4 x 6 x 2, but the model needs 5 x 6 x 2")
  expect_error(iclv:::.draws_spec(d, 4, 3), class = "iclv_error_draws", regexp = "4 x 6 x 3")
  # integer arrays become double
  xi <- array(1:24, c(2, 6, 2))
  expect_identical(storage.mode(iclv_draws(xi)$user), "double")
  # n, when given, must agree
  expect_error(iclv_draws(x, n = 5), class = "iclv_error_draws", regexp = "does not match")
  expect_identical(iclv_draws(x, n = 6)$n, 6L)
})

test_that("bad designs are classed errors naming the argument", {
  expect_error(iclv_draws("latin"), class = "iclv_error_draws", regexp = "'type' must be one of")
  expect_error(iclv_draws(c("halton", "sobol")), class = "iclv_error_draws")
  expect_error(iclv_draws(NA_character_), class = "iclv_error_draws")
  expect_error(iclv_draws("halton", n = 1), class = "iclv_error_draws", regexp = "too few draws")
  expect_error(iclv_draws("halton", n = 0), class = "iclv_error_draws", regexp = "'n'")
  expect_error(iclv_draws("halton", n = 10.5), class = "iclv_error_draws", regexp = "'n'")
  expect_error(iclv_draws("halton", n = NA), class = "iclv_error_draws", regexp = "'n'")
  expect_error(iclv_draws("halton", n = "100"), class = "iclv_error_draws", regexp = "'n'")
  expect_error(iclv_draws("pseudo", seed = -1), class = "iclv_error_draws", regexp = "'seed'")
  expect_error(iclv_draws("pseudo", seed = 2^53), class = "iclv_error_draws", regexp = "'seed'")
  expect_error(iclv_draws("pseudo", seed = 1.5), class = "iclv_error_draws", regexp = "'seed'")
  expect_error(iclv_draws("sobol", skip = -3), class = "iclv_error_draws", regexp = "'skip'")
  expect_error(iclv_draws("sobol", skp = 3), class = "iclv_error_draws", regexp = "unknown argument 'skp'")
  expect_error(iclv_draws("sobol", 100, 1, 0, 5), class = "iclv_error_draws", regexp = "unknown argument")
  # user arrays
  expect_error(iclv_draws(matrix(0, 3, 4)), class = "iclv_error_draws", regexp = "3-dimensional")
  expect_error(iclv_draws(array(0, c(2, 3, 4, 1))), class = "iclv_error_draws", regexp = "3-dimensional")
  expect_error(iclv_draws(array(0, c(2, 0, 1))), class = "iclv_error_draws", regexp = "zero extent")
  x <- array(0, c(2, 3, 2))
  x[2, 3, 1] <- NA
  expect_error(iclv_draws(x), class = "iclv_error_draws", regexp = "first at \\[2, 3, 1\\]")
  x[2, 3, 1] <- Inf
  expect_error(iclv_draws(x), class = "iclv_error_draws", regexp = "finite")
  expect_error(iclv_draws(array(0, c(2, 1, 2))), class = "iclv_error_draws", regexp = "too few draws")
  # limits that depend on the model
  expect_error(iclv:::.draws_spec(iclv_draws("sobol", 10), 5, 41), class = "iclv_error_draws", regexp = "at most 40")
  expect_error(iclv:::.draws_spec(iclv_draws("halton", 10), 5, 101), class = "iclv_error_draws", regexp = "at most 100")
  expect_error(iclv:::.draws_spec(iclv_draws("sobol", 10, skip = 2^32 - 20), 5, 1),
               class = "iclv_error_draws", regexp = "below 2\\^32")
  expect_error(iclv:::.draws_spec(list(type = "halton"), 5, 1), class = "iclv_error_draws")
  expect_error(iclv_draws_generate(iclv_draws("halton", 10)), class = "iclv_error_draws", regexp = "n_ind")
  expect_silent(iclv:::.draws_spec(iclv_draws("pseudo", 10), 5, 200))
})

test_that("the spec has the types and codes boundary.c reads", {
  codes <- c(halton = 1L, scrambled_halton = 2L, sobol = 3L, mlhs = 4L, pseudo = 5L)
  for (t in names(codes)) {
    s <- iclv:::.draws_spec(iclv_draws(t, n = 25, seed = 7, skip = 3), 11, 2)
    expect_identical(s$type, codes[[t]])
    expect_identical(s[c("n_draws", "n_dim", "n_ind")], list(n_draws = 25L, n_dim = 2L, n_ind = 11L))
    expect_identical(s$seed, 7)
    expect_identical(s$skip, 3)
    expect_null(s$user)
  }
  d <- iclv_draws()
  expect_identical(unclass(d)[c("type", "n", "seed", "skip")], list(type = "halton", n = 100L, seed = 1, skip = 0))
})

test_that("print describes the design", {
  expect_output(print(iclv_draws("halton", 200)), "200 Halton draws")
  expect_output(print(iclv_draws("mlhs", 50, seed = 3)), "seed 3")
  expect_output(print(iclv_draws(array(0, c(3, 4, 2)))), "3 individuals x 4 draws x 2 latent variables")
})
