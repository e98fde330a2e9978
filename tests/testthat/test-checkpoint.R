# Checkpoints and resume (issue 12, "Lost work"): the checkpoint path is
# checked at the start, a failed write later warns and the fit goes on, a
# tampered optimizer state is a classed error, and maxit counts the
# iterations of this call.

ck_data <- function() iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = 150, n_tasks = 3, seed = 2)
ck_fit <- function(d, ...) {
  iclv(one_lv_mnl_model(), d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu", ...)
}

test_that("a checkpoint path that cannot be written is refused at the start", {
  d <- ck_data()
  calls <- 0L
  cb <- function(iteration, loglik, params) calls <<- calls + 1L
  # the folder existed when the control was made, and is gone when iclv() starts
  dir <- tempfile("ckdir")
  dir.create(dir)
  path <- file.path(dir, "cp.rds")
  ctl <- iclv_control(checkpoint = path, checkpoint_every = 1, callback = cb)
  unlink(dir, recursive = TRUE)
  err <- tryCatch(ck_fit(d, control = ctl), error = function(e) e)
  expect_s3_class(err, "iclv_error_control")
  expect_match(conditionMessage(err), path, fixed = TRUE)
  expect_match(conditionMessage(err), "does not exist")
  expect_identical(calls, 0L) # nothing was run
  # a path that is a folder
  folder <- tempfile("ckfolder")
  dir.create(folder)
  on.exit(unlink(folder, recursive = TRUE), add = TRUE)
  err <- tryCatch(ck_fit(d, control = iclv_control(checkpoint = folder, callback = cb)), error = function(e) e)
  expect_s3_class(err, "iclv_error_control")
  expect_match(conditionMessage(err), "is a folder")
  expect_identical(calls, 0L)
  # a folder that is not writable (root writes anyway: only checked as a user)
  ro <- tempfile("ckro")
  dir.create(ro)
  on.exit(unlink(ro, recursive = TRUE), add = TRUE)
  Sys.chmod(ro, "0555")
  if (file.access(ro, 2) != 0) {
    err <- tryCatch(ck_fit(d, control = iclv_control(checkpoint = file.path(ro, "cp.rds"), callback = cb)),
                    error = function(e) e)
    expect_s3_class(err, "iclv_error_control")
    expect_match(conditionMessage(err), "not writable")
    expect_identical(calls, 0L)
  }
  Sys.chmod(ro, "0755")
})

test_that("a checkpoint write that fails later warns once and the fit goes on", {
  d <- ck_data()
  plain <- ck_fit(d)
  for (how in c("removed", "file")) {
    dir <- tempfile("ckdir")
    dir.create(dir)
    path <- file.path(dir, "cp.rds")
    cb <- function(iteration, loglik, params) {
      if (iteration == 2L) {
        unlink(dir, recursive = TRUE)
        if (how == "file") writeLines("not a folder", dir) # the folder's name is now a file
      }
      TRUE
    }
    ws <- character()
    fit <- withCallingHandlers(
      ck_fit(d, control = iclv_control(checkpoint = path, checkpoint_every = 1, callback = cb)),
      warning = function(w) {
        ws <<- c(ws, class(w)[1])
        if (inherits(w, "iclv_warning_checkpoint")) expect_match(conditionMessage(w), "iteration 3")
        invokeRestart("muffleWarning")
      })
    unlink(dir, recursive = TRUE)
    expect_identical(ws, "iclv_warning_checkpoint", info = how)
    # the estimation is the one without a checkpoint
    expect_identical(fit$convergence$code, 0L)
    expect_identical(coef(fit), coef(plain))
    expect_identical(fit$convergence$iterations, plain$convergence$iterations)
  }
})

test_that("a tampered or foreign resume state is a classed error naming the field", {
  d <- ck_data()
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  suppressWarnings(ck_fit(d, control = iclv_control(maxit = 3, checkpoint = path, checkpoint_every = 1)))
  ck <- readRDS(path)
  n <- length(ck$state$x)
  expect_identical(n, 14L)
  tampered <- list(
    x_short = function(s) { s$x <- s$x[-1]; s },
    x_nan = function(s) { s$x[3] <- NaN; s },
    x_character = function(s) { s$x <- as.character(s$x); s },
    x_renamed = function(s) { names(s$x)[1] <- "not_a_parameter"; s },
    gradient_long = function(s) { s$cur$gradient <- c(s$cur$gradient, 1); s },
    loglik_inf = function(s) { s$cur$loglik <- -Inf; s },
    hinv_dim = function(s) { s$Hinv <- diag(n - 1); s },
    hinv_na = function(s) { s$Hinv <- diag(n); s$Hinv[2, 2] <- NA; s },
    scores_cols = function(s) { s$cur$scores <- matrix(1, 5, n + 2); s },
    best_missing = function(s) { s$best <- NULL; s },
    hist_missing = function(s) { s[["hist"]] <- NULL; s },
    hist_ragged = function(s) { s$hist$loglik <- s$hist$loglik[-1]; s },
    iter_negative = function(s) { s$iter <- -1L; s },
    iter_text = function(s) { s$iter <- "3"; s },
    method_unknown = function(s) { s$method <- "simplex"; s },
    fresh_na = function(s) { s$bfgs_fresh <- NA; s },
    not_a_list = function(s) 42
  )
  for (nm in names(tampered)) {
    bad <- ck
    bad$state <- tampered[[nm]](ck$state)
    p <- tempfile(fileext = ".rds")
    saveRDS(bad, p)
    err <- tryCatch(ck_fit(d, resume = p), error = function(e) e, warning = function(w) w)
    unlink(p)
    expect_s3_class(err, "iclv_error_control")
    expect_match(conditionMessage(err), "'resume'", info = nm)
  }
  # files that are no checkpoint at all
  rnd <- tempfile(fileext = ".rds")
  saveRDS(data.frame(a = stats::runif(5)), rnd)
  expect_error(ck_fit(d, resume = rnd), class = "iclv_error_control")
  trunc <- tempfile(fileext = ".rds")
  raw <- readBin(path, "raw", file.size(path))
  writeBin(raw[seq_len(length(raw) %/% 2)], trunc)
  expect_error(ck_fit(d, resume = trunc), class = "iclv_error_control")
  unlink(c(rnd, trunc))
  # the untouched checkpoint still resumes
  expect_s3_class(ck_fit(d, resume = path), "iclv")
})

test_that("maxit counts the iterations of this call when resuming", {
  d <- ck_data()
  for (method in c("bfgs", "newton")) {
    path <- tempfile(fileext = ".rds")
    expect_warning(first <- ck_fit(d, control = iclv_control(method = method, maxit = 3, checkpoint = path,
                                                             checkpoint_every = 1)),
                   class = "iclv_warning_convergence")
    expect_identical(first$convergence$iterations, 3L)
    # 3 more iterations: 6 in all (the full run needs more than 6)
    expect_warning(second <- ck_fit(d, control = iclv_control(method = method, maxit = 3, checkpoint = path,
                                                              checkpoint_every = 1), resume = path),
                   class = "iclv_warning_convergence")
    expect_identical(second$convergence$iterations, 6L, info = method)
    expect_identical(second$convergence$code, 1L)
    expect_identical(nrow(second$history), 7L) # the start and 6 iterations
    # the same 6 iterations as one run with maxit = 6
    six <- suppressWarnings(ck_fit(d, control = iclv_control(method = method, maxit = 6)))
    expect_equal(coef(second), coef(six), tolerance = 1e-10, info = method)
    expect_identical(readRDS(path)$iteration, 6L)
    unlink(path)
  }
})

test_that("a checkpoint whose history has no scaled gradient (written before issue 19) still resumes", {
  d <- ck_data()
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  first <- suppressWarnings(ck_fit(d, control = iclv_control(maxit = 3, checkpoint = path, checkpoint_every = 1)))
  ck <- readRDS(path)
  expect_length(ck$state$hist$scaled_gradient, 4L) # the start and 3 iterations
  old <- ck
  old$state$hist$scaled_gradient <- NULL
  saveRDS(old, path)
  resumed <- suppressWarnings(ck_fit(d, control = iclv_control(maxit = 3), resume = path))
  six <- suppressWarnings(ck_fit(d, control = iclv_control(maxit = 6)))
  expect_identical(coef(resumed), coef(six))
  h <- resumed$history
  expect_identical(h$loglik, six$history$loglik)
  # the rows written before are NA (unknown), the later ones as in one run
  expect_true(all(is.na(h$scaled_gradient[1:3])))
  expect_identical(h$scaled_gradient[4:7], six$history$scaled_gradient[4:7])
  # a scaled gradient of the wrong length is a damaged state
  bad <- ck
  bad$state$hist$scaled_gradient <- 1
  saveRDS(bad, path)
  expect_error(ck_fit(d, resume = path), "scaled_gradient", class = "iclv_error_control")
})
