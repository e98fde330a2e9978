# The categories of ordered indicators are part of a fitted model: predict()
# on new data uses the fit's categories (read from the estimation data when
# not declared) and checks the new values against them, never re-reading
# them from the new data.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

# The one-LV MNL model with undeclared categories (read from the data).
undeclared_model <- function() {
  iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = one_lv_mnl_model()$choice,
             id = "ID")
}

# Fits the model on d with the individuals for which `lacking(rows)` is TRUE
# moved first (their draws are then the same in the estimation data and in
# new data holding only them); returns the fit, the sorted data and those
# individuals' ids.
fit_sorted <- function(d, lacking) {
  first <- tapply(seq_len(nrow(d)), d$ID, function(r) lacking(d[r, ]))
  ids <- c(names(first)[first], names(first)[!first])
  d <- d[order(match(as.character(d$ID), ids), d$task), ]
  rownames(d) <- NULL
  fit <- iclv(undeclared_model(), d, draws = iclv_draws("halton", 40, seed = 3), backend = "cpu")
  list(fit = fit, data = d, ids = names(first)[first])
}

check_newdata <- function(s) {
  nd <- s$data[as.character(s$data$ID) %in% s$ids, ]
  rows <- seq_len(nrow(nd))
  expect_identical(nd$ID, s$data$ID[rows])
  lv_new <- predict(s$fit, newdata = nd, type = "lv")
  lv_all <- predict(s$fit, type = "lv")
  expect_equal(lv_new, lv_all[seq_along(s$ids), ], tolerance = 1e-12, ignore_attr = TRUE)
  pr_new <- predict(s$fit, newdata = nd, type = "prob")
  pr_all <- predict(s$fit, type = "prob")
  expect_equal(unname(pr_new), unname(pr_all[rows, ]), tolerance = 1e-12)
}

truth <- one_lv_mnl_truth

test_that("new data lacking the top category: posterior LVs as on the estimation data", {
  d <- iclv_simulate(undeclared_model(), truth, n = 150, n_tasks = 2, seed = 21)
  s <- fit_sorted(d, function(r) all(r$q1 != 3))
  expect_equal(s$fit$compiled$categories, c(q1 = 3L, q2 = 3L, q3 = 3L))
  expect_gt(length(s$ids), 20)
  check_newdata(s)
})

test_that("new data lacking a middle category, or with one individual, predict as on the estimation data", {
  d <- iclv_simulate(undeclared_model(), truth, n = 150, n_tasks = 2, seed = 22)
  s <- fit_sorted(d, function(r) all(r$q2 != 2))
  expect_gt(length(s$ids), 20)
  check_newdata(s)
  # one individual: one observed category per indicator
  s1 <- s
  s1$ids <- s$ids[1]
  check_newdata(s1)
})

test_that("a new value outside the fitted categories is a data error naming indicator, row, id and value", {
  d <- iclv_simulate(undeclared_model(), truth, n = 80, n_tasks = 2, seed = 23)
  fit <- iclv(undeclared_model(), d, draws = iclv_draws("halton", 20, seed = 3), backend = "cpu")
  nd <- d[d$ID %in% 5:8, ]
  for (v in c(4, 0, 2.5, -7)) {
    bad <- nd
    bad$q3[bad$ID == nd$ID[3]] <- v # id 6: rows 3 and 4
    expect_error(predict(fit, newdata = bad, type = "lv"),
                 sprintf("'q3' has the value %s in row 3 \\(id %d\\).*categories 1\\.\\.3", format(v), nd$ID[3]),
                 class = "iclv_error_data")
  }
  # declared categories are checked the same way
  md <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = one_lv_mnl_model()$choice,
                   id = "ID", categories = list(q1 = 4))
  fd <- iclv(md, d, draws = iclv_draws("halton", 20, seed = 3), backend = "cpu")
  expect_identical(fd$compiled$categories, c(q1 = 4L, q2 = 3L, q3 = 3L))
  bad <- nd
  bad$q1[1:2] <- 5 # id 5
  expect_error(predict(fd, newdata = bad), "'q1' has the value 5 in row 1 \\(id 5\\).*1\\.\\.4",
               class = "iclv_error_data")
  bad$q1[1:2] <- 4 # a declared category that the estimation data never showed
  expect_silent(predict(fd, newdata = bad))
})
