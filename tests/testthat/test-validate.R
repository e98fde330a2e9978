# Validation: every bad input is a classed error naming what is at fault.

val_model <- function(...) {
  iclv_model(
    measurement = "f =~ q1 + q2 + b1
                   g =~ n1",
    structural = "f ~ x + g",
    indicators = list(b1 = "binary", n1 = "normal"),
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      A = "asc_A + b_p * pA + l_f * f",
      B = "b_p * pB",
      C = "asc_C + b_p * pC"), available = list(C = "avC")),
    id = "ID", categories = list(q1 = 5), ...)
}
val_data <- function() {
  data.frame(
    ID = rep(1:3, each = 2),
    q1 = c(1, 1, 5, 5, 3, 3),
    q2 = c(1, 1, 2, 2, NA, NA),
    b1 = c(0, 0, 1, 1, 0, 0),
    n1 = c(0.3, 0.3, -1, -1, 2, 2),
    x = c(1, 1, 0, 0, 1, 1),
    pA = c(1, 2, 3, 4, 5, 6), pB = c(6, 5, 4, 3, 2, 1), pC = c(1, 1, 2, 2, 3, 3),
    avC = c(1, 1, 1, 0, 1, 1),
    ch = c("A", "B", "C", "A", "B", "C"),
    stringsAsFactors = FALSE)
}
compile <- function(d, m = val_model()) iclv:::.iclv_compile(m, d)
edit <- function(col, rows, value) {
  d <- val_data()
  d[[col]][rows] <- value
  d
}

test_that("the reference data compile", {
  expect_s3_class(compile(val_data()), "iclv_compiled")
})

test_that("data must be a data.frame with the id column", {
  expect_error(compile(as.matrix(val_data())), "data.frame", class = "iclv_error_data")
  expect_error(compile(list(a = 1)), "data.frame", class = "iclv_error_data")
  d <- val_data(); d$ID <- NULL
  expect_error(compile(d), "'ID'", class = "iclv_error_data")
  expect_error(compile(edit("ID", 3, NA)), "row 3", class = "iclv_error_data")
})

test_that("unknown columns in utilities, measurement, structural and availability", {
  d <- val_data(); d$pB <- NULL
  expect_error(compile(d), "'pB'", class = "iclv_error_data")
  d <- val_data(); d$q2 <- NULL
  expect_error(compile(d), "indicator 'q2'", class = "iclv_error_data")
  d <- val_data(); d$x <- NULL
  expect_error(compile(d), "covariate 'x'", class = "iclv_error_data")
  d <- val_data(); d$avC <- NULL
  expect_error(compile(d), "availability column 'avC'", class = "iclv_error_data")
  d <- val_data(); d$ch <- NULL
  expect_error(compile(d), "choice column 'ch'", class = "iclv_error_data")
})

test_that("non-numeric attributes, indicators and covariates are errors; the choice may be character", {
  expect_error(compile(edit("pA", 1:6, letters[1:6])), "attribute column 'pA'", class = "iclv_error_data")
  d <- val_data(); d$q1 <- factor(d$q1)
  expect_error(compile(d), "indicator 'q1' must be numeric", class = "iclv_error_data")
  expect_error(compile(edit("x", 1:6, "yes")), "covariate 'x' must be numeric", class = "iclv_error_data")
  d <- val_data(); d$ch <- factor(d$ch)
  expect_s3_class(compile(d), "iclv_compiled")
})

test_that("choices: missing, unavailable, unknown", {
  expect_error(compile(edit("ch", 4, NA)), "row 4", class = "iclv_error_data")
  # row 4 has C unavailable
  expect_error(compile(edit("ch", 4, "C")), "row 4.*not available", class = "iclv_error_data")
  expect_error(compile(edit("ch", 2, "D")), "'D' in row 2", class = "iclv_error_data")
  d <- val_data(); d$ch <- c(1, 2, 3, 1, 4, 3)
  expect_error(compile(d), "row 5", class = "iclv_error_data")
  d$ch <- c(1, 2, 3, 1, 2.5, 3)
  expect_error(compile(d), "row 5", class = "iclv_error_data")
  d$ch <- c(1, 2, 3, 1, 2, 3)
  expect_identical(compile(d)$c$y, c(0L, 1L, 2L, 0L, 1L, 2L))
  expect_error(compile(edit("avC", 2, 2)), "avC.*row 2", class = "iclv_error_data")
})

test_that("ordered indicators: declared categories, integers, observed categories", {
  expect_error(compile(edit("q1", 3:4, 6)), "'q1'.*row 3.*1..5", class = "iclv_error_data")
  expect_error(compile(edit("q1", 3:4, 0)), "'q1'.*row 3", class = "iclv_error_data")
  expect_error(compile(edit("q1", 1:2, 1.5)), "1.5 in row 1 \\(id '1'\\), which is not a whole number", class = "iclv_error_data")
  # undeclared categories must be 1..C
  expect_error(compile(edit("q2", 1:2, 3)), "'q2' has the values 2, 3", class = "iclv_error_data")
  # fewer than 2 observed categories
  expect_error(compile(edit("q2", 3:4, 1)), "fewer than 2", class = "iclv_error_data")
  expect_error(compile(edit("q1", 1:6, 2)), "'q1' has fewer than 2", class = "iclv_error_data")
})

test_that("binary indicators must be 0/1", {
  expect_error(compile(edit("b1", 5:6, 2)), "'b1'.*row 5", class = "iclv_error_data")
  d <- val_data(); d$b1 <- d$b1 == 1
  expect_s3_class(compile(d), "iclv_compiled")
})

test_that("ids must be adjacent", {
  d <- val_data()[c(1, 3, 2, 4, 5, 6), ]
  err <- expect_error(compile(d), class = "iclv_error_data")
  expect_match(conditionMessage(err), "id '1'")
  expect_match(conditionMessage(err), "row 3")
})

test_that("indicators and covariates must not vary within an id", {
  expect_error(compile(edit("q1", 2, 2)), "'q1' varies within id '1'", class = "iclv_error_data")
  expect_error(compile(edit("n1", 6, 0)), "'n1' varies within id '3'", class = "iclv_error_data")
  expect_error(compile(edit("x", 4, 1)), "covariate 'x' varies within id '2'", class = "iclv_error_data")
  # with indicator_level = "row" a varying indicator is fine
  m <- val_model(indicator_level = c(q1 = "row"))
  expect_s3_class(compile(edit("q1", 2, 2), m), "iclv_compiled")
})

test_that("NA: attributes of available alternatives and covariates are errors, indicators are not", {
  expect_error(compile(edit("pB", 5, NA)), "'pB'.*row 5", class = "iclv_error_data")
  # pC is NA in row 4, where C is unavailable: fine, enters X as 0
  cmp <- compile(edit("pC", 4, NA))
  expect_equal(cmp$c$X[(4 - 1) * 3 + 3], 0)
  expect_error(compile(edit("pC", 3, NA)), "'pC'.*row 3", class = "iclv_error_data")
  expect_error(compile(edit("x", 1, NA)), "covariate 'x'.*row 1", class = "iclv_error_data")
  # missing indicator values are skipped and counted
  cmp <- compile(edit("q1", 1:2, NA))
  expect_equal(cmp$n_missing[["q1"]], 1L)
  expect_equal(cmp$n_missing[["q2"]], 1L)
  expect_equal(cmp$c$n_obs, 4L * 3L - 2L)
  # NA on one row of an individual-level indicator: the other row holds the value
  cmp <- compile(edit("q1", 1, NA))
  expect_equal(cmp$n_missing[["q1"]], 0L)
  expect_equal(cmp$c$obs_val[1], 1)
})

test_that("an LV whose indicators are all missing, and an indicator missing everywhere, are errors", {
  expect_error(compile(edit("n1", 1:6, NA)), "'g'", class = "iclv_error_data")
})

test_that("an LV used in utilities must be defined", {
  m <- iclv_model("f =~ q1", id = "ID", categories = 5,
                  choice = iclv_choice("mnl", "ch", list(A = "asc + l * h + k * f", B = "0", C = "0")))
  # 'h' is neither an LV nor a column
  expect_error(iclv:::.iclv_compile(m, val_data()), "'h'.*latent variable", class = "iclv_error_data")
  # with a column between them, 'h' reads as a parameter found only in a product
  m2 <- iclv_model("f =~ q1", id = "ID", categories = 5,
                   choice = iclv_choice("mnl", "ch", list(A = "asc + l * pA * h + k * f", B = "0", C = "0")))
  expect_error(iclv:::.iclv_compile(m2, val_data()), "'h'.*latent variable the model does not define",
               class = "iclv_error_data")
})

test_that("structural cycles and LVs without indicators are specification errors", {
  expect_error(iclv_model("f =~ q1\n g =~ q2", structural = "f ~ g\n g ~ f", id = "ID"),
               "'f', 'g'|'g', 'f'", class = "iclv_error_spec")
  expect_error(iclv_model("f =~ q1", structural = "f ~ h\n h ~ x", id = "ID"), "'h'", class = "iclv_error_spec")
})

test_that("parameters that appear in no term are errors; unused LVs warn", {
  expect_error(val_model(fixed = c(b_q = 1)), "'b_q'", class = "iclv_error_spec")
  expect_error(val_model(start = c(asc_B = 0.1)), "'asc_B'", class = "iclv_error_spec")
  expect_error(val_model(start = c(sigma_n1 = -1)), "sigma_n1", class = "iclv_error_spec")
  expect_warning(
    iclv_model("f =~ q1\n g =~ n1", choice = iclv_choice("mnl", "ch", list(A = "l * f", B = "0")), id = "ID"),
    "'g'", class = "iclv_warning_spec")
})
