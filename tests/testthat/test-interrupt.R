# Ctrl-C inside the C engine (issue 12, "Lost work"): the engine polls for an
# interrupt on the main thread between batches of individuals, returns
# ICLV_INTERRUPTED (an iclv_error_interrupted condition in R), stays usable,
# and iclv() keeps what it has.
#
# The in-process tests use the engine's test-only hook (options(
# iclv.test_interrupt = list(after, on)), see .engine_test_interrupt() in
# R/engine.R): engines created under it report an interrupt at poll number
# `after` of each evaluation of kind `on`, exactly where a Ctrl-C would be
# seen. The last test sends a real SIGINT to an Rscript subprocess.

with_test_interrupt <- function(after, on, code) {
  old <- options(iclv.test_interrupt = list(after = after, on = on))
  on.exit(options(old))
  force(code)
}

test_that("an interrupt polled in C is a classed error and the engine stays usable", {
  skip_if_not(engine_ok())
  # 200 individuals: more than one Hessian block of 32 individuals per thread
  tm <- tiny_model(n_ind = 200L, n_draws = 7L)
  ref <- ref_loglik(tm$compiled, tm$theta, tm$draws$user)
  for (on in c("any", "hessian")) {
    e <- with_test_interrupt(1L, on, iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L))
    acct0 <- iclv:::.engine_memory(e)$host
    err <- tryCatch(iclv:::.engine_eval(e, tm$theta, gradient = TRUE, hessian = TRUE),
                    error = function(c) c)
    expect_s3_class(err, "iclv_error_interrupted")
    expect_s3_class(err, "iclv_error")
    expect_match(conditionMessage(err), "interrupted by the user after [0-9]+ of 200 individuals")
    # nothing was allocated per evaluation, nothing is left over
    acct1 <- iclv:::.engine_memory(e)$host
    expect_identical(acct1$current, acct0$current)
    expect_identical(acct1$buffers, acct0$buffers)
    if (on == "hessian") {
      # an evaluation without the Hessian is not armed: it completes, and its
      # log-likelihood is the pure-R reference's (the engine's state is sound)
      ev <- iclv:::.engine_eval(e, tm$theta, gradient = FALSE)
      expect_equal(ev$loglik, ref$loglik, tolerance = 1e-10)
      expect_equal(ev$loglik_i, ref$loglik_i, tolerance = 1e-10)
    }
    iclv:::.engine_release(e)
    expect_error(iclv:::.engine_eval(e, tm$theta), class = "iclv_error_input") # released once
  }
  # predictions poll too
  e <- with_test_interrupt(1L, "predict", iclv:::.engine_new(tm$compiled, tm$draws, n_threads = 1L))
  expect_error(iclv:::.engine_predict(e, tm$theta), class = "iclv_error_interrupted")
  expect_equal(iclv:::.engine_eval(e, tm$theta, gradient = FALSE)$loglik, ref$loglik, tolerance = 1e-10)
  iclv:::.engine_release(e)
  invisible(gc())
  # a malformed hook setting is refused
  expect_error(with_test_interrupt(1L, "sometimes", iclv:::.engine_new(tm$compiled, tm$draws)),
               class = "iclv_error_control")
})

test_that("an interrupt during the standard errors keeps the estimates (code 3, no SEs, a warning)", {
  skip_if_not(engine_ok())
  d <- iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = 150, n_tasks = 3, seed = 2)
  fit_it <- function() iclv(one_lv_mnl_model(), d, draws = iclv_draws("halton", 30, seed = 1),
                            backend = "cpu", control = iclv_control(n_threads = 1))
  full <- fit_it()
  expect_identical(full$convergence$code, 0L)
  expect_warning(fit <- with_test_interrupt(2L, "final", fit_it()), class = "iclv_warning_interrupt")
  expect_s3_class(fit, "iclv")
  expect_identical(fit$convergence$code, 3L)
  expect_identical(fit$convergence$message, "interrupted during standard errors")
  # the optimizer's work is all there: same estimates and LL as the full run
  expect_identical(fit$coefficients, full$coefficients)
  expect_identical(fit$loglik, full$loglik)
  expect_identical(fit$convergence$iterations, full$convergence$iterations)
  # no standard errors
  expect_true(all(is.na(fit$partable$se)))
  for (v in fit$vcov) expect_true(all(is.na(v)))
  expect_true(all(is.na(suppressWarnings(vcov(fit)))))
  expect_true(all(is.na(fit$loglik_components)))
})

test_that("an interrupt polled in C during optimisation returns the best point (code 3)", {
  skip_if_not(engine_ok())
  d <- iclv_simulate(one_lv_mnl_model(), one_lv_mnl_truth, n = 150, n_tasks = 3, seed = 2)
  # BFGS asks for the Hessian only to confirm its stop: the interrupt comes
  # there (inside the optimizer), and again in the final evaluation
  ws <- list()
  fit <- withCallingHandlers(
    with_test_interrupt(1L, "hessian",
      iclv(one_lv_mnl_model(), d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu",
           control = iclv_control(n_threads = 1))),
    iclv_warning_interrupt = function(w) {
      ws[[length(ws) + 1L]] <<- conditionMessage(w)
      invokeRestart("muffleWarning")
    })
  expect_length(ws, 2L)
  expect_match(ws[[1]], "estimation interrupted after [0-9]+ iteration")
  expect_identical(fit$convergence$code, 3L)
  expect_gt(fit$convergence$iterations, 0L)
  expect_true(is.finite(fit$loglik))
  ref <- iclv_loglik(one_lv_mnl_model(), d, coef(fit), draws = iclv_draws("halton", 30, seed = 1))
  expect_equal(fit$loglik, ref$loglik, tolerance = 1e-10)
  # an interrupt before the optimizer has a point is a classed error, not a crash
  expect_error(with_test_interrupt(0L, "any",
                 iclv(one_lv_mnl_model(), d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu",
                      control = iclv_control(n_threads = 1))),
               class = "iclv_error_interrupted")
})

test_that("a real SIGINT during a Hessian stops the C evaluation with the classed error", {
  skip_on_os("windows")
  skip_if_not(engine_ok())
  skip_if(!nzchar(Sys.which("kill")), "needs kill")
  lib <- dirname(find.package("iclv"))
  dir <- tempfile("iclv_sigint")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  out <- file.path(dir, "out.txt")
  script <- file.path(dir, "run.R")
  writeLines(c(
    sprintf("suppressPackageStartupMessages(library(iclv, lib.loc = %s))", deparse(lib)),
    "sp <- iclv_seed_problem(n = 200, n_tasks = 6)",
    "comp <- iclv:::.iclv_compile(sp$model, sp$data)",
    "theta <- iclv:::.params_full(sp$params, comp$partable, 'params')",
    "spec <- iclv:::.draws_spec(iclv_draws('halton', 3000), comp$n_ind, length(comp$lvs))",
    "e <- iclv:::.engine_new(comp$c, spec, 'cpu', n_threads = 1L)",
    "writeLines(c(Sys.getpid(), 'START'), 'pid.txt')",
    # Hessians one after another until the signal lands: one takes about a
    # second here, less on a faster machine, and a single one could end
    # before the signal came (CI saw this: the signal then killed the script)
    "r <- 'completed'",
    "for (k in 1:30) {",
    "  r <- tryCatch({ iclv:::.engine_eval(e, theta, hessian = TRUE); 'completed' },",
    "    iclv_error_interrupted = function(c) 'classed', interrupt = function(c) 'plain')",
    "  if (r != 'completed') break",
    "}",
    "t1 <- as.numeric(Sys.time())",
    "ll <- iclv:::.engine_eval(e, theta, gradient = FALSE)$loglik",
    "cat(r, format(t1, digits = 16), is.finite(ll), '\\n')"
  ), script)
  old_wd <- setwd(dir)
  on.exit(setwd(old_wd), add = TRUE)
  # R_TESTS (set by R CMD check) names a file the child would not find here
  system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", shQuote(script)), stdout = out,
          stderr = FALSE, wait = FALSE, env = c("R_TESTS=", "OMP_NUM_THREADS=1"))
  pid_file <- file.path(dir, "pid.txt")
  for (i in 1:600) {
    if (file.exists(pid_file) && length(readLines(pid_file, warn = FALSE)) == 2L) break
    Sys.sleep(0.1)
  }
  skip_if_not(file.exists(pid_file), "could not run a child R process")
  pid <- as.integer(readLines(pid_file)[1])
  Sys.sleep(1) # inside one of the Hessians
  t_sig <- as.numeric(Sys.time())
  system2("kill", c("-INT", pid))
  for (i in 1:300) {
    res <- if (file.exists(out)) readLines(out, warn = FALSE) else character()
    if (length(res) && grepl("(classed|plain|completed)", res[length(res)])) break
    Sys.sleep(0.1)
  }
  if (!length(res)) res <- "nothing_written_within_30_s_of_the_signal"
  line <- strsplit(trimws(res[length(res)]), " +")[[1]]
  expect_identical(line[1], "classed")
  # "classed" shows the C loop polled: before, the Hessian ran to its end and
  # the interrupt escaped as a plain one. The delay (0.05 s measured) is a
  # benchmark figure (bench/bench_interrupt.R), not a timed test.
  expect_identical(line[3], "TRUE")
})

test_that("the CUDA engine polls between chunks", {
  ok <- iclv::iclv_cuda_available()
  if (!isTRUE(ok)) skip(paste("no usable GPU:", attr(ok, "reason")))
  tm <- tiny_model(n_ind = 20L, n_draws = 9L)
  ref <- ref_loglik(tm$compiled, tm$theta, tm$draws$user)
  # a budget for 5 individuals per chunk, the Hessian's buffers included
  # (helper-gpu.R; the creation reserves them, so a budget from the LL
  # buffers alone is too small for one individual)
  e_all <- iclv:::.engine_new(tm$compiled, tm$draws, "cuda")
  budget <- budget_for(chunk_costs(e_all, tm$theta), 5L)
  iclv:::.engine_release(e_all)
  for (on in c("any", "hessian")) {
    e <- with_test_interrupt(1L, on, iclv:::.engine_new(tm$compiled, tm$draws, "cuda", n_threads = 1L,
                                                         device_memory = budget))
    expect_identical(as.integer(iclv:::.engine_memory(e)$n_chunks), 4L)
    err <- tryCatch(iclv:::.engine_eval(e, tm$theta, hessian = TRUE), error = function(c) c)
    expect_s3_class(err, "iclv_error_interrupted")
    expect_match(conditionMessage(err), "after 10 of 20 individuals") # polled after chunks 1 and 2
    if (on == "hessian") {
      ev <- iclv:::.engine_eval(e, tm$theta, gradient = FALSE)
      expect_equal(ev$loglik, ref$loglik, tolerance = 1e-10)
    }
    iclv:::.engine_release(e)
  }
})
