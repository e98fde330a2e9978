# Thread counts the system refuses (issue 12, "Lost work"): libgomp ends the
# process ("libgomp: Thread creation failed") when it cannot start a team's
# thread. The engine refuses more than 4 threads per processor, and probes
# that the system starts the threads before any parallel region, so both end
# in a classed iclv_error_control. Run in a subprocess under an address-space
# limit (ulimit -v) with large thread stacks (ulimit -s), so that the
# threads cannot all be started.

test_that("thread counts the OS refuses are a classed error, never an abort", {
  skip_on_os(c("windows", "mac"))
  skip_if_not(engine_ok())
  skip_if(!nzchar(Sys.which("bash")), "needs bash")
  rscript <- file.path(R.home("bin"), "Rscript")
  lib <- dirname(find.package("iclv"))
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  writeLines(c(
    sprintf("suppressPackageStartupMessages(library(iclv, lib.loc = %s))", deparse(lib)),
    "m <- iclv_model('att =~ q1 + q2 + q3', id = 'ID', categories = 3)",
    "p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2, tau_q1_1 = -1, tau_q1_2 = 1,",
    "       tau_q2_1 = -0.5, tau_q2_2 = 0.8, tau_q3_1 = -1, tau_q3_2 = 0.5)",
    "d <- iclv_simulate(m, p, n = 40, seed = 1)",
    "nt <- as.integer(commandArgs(TRUE)[1])",
    "r <- tryCatch(iclv(m, d, draws = iclv_draws('halton', 10), backend = 'cpu',",
    "                   control = iclv_control(n_threads = nt, maxit = 1)),",
    "              error = function(e) e, warning = function(w) 'fit')",
    "cat(if (inherits(r, 'error')) paste('ERROR', class(r)[1], conditionMessage(r)) else 'FIT', '\\n')"
  ), script)
  run <- function(nt) {
    # 7 or 511 extra threads of 400 MB stack each cannot fit in 2 GB
    cmd <- sprintf("export R_TESTS= && ulimit -v 2000000 && ulimit -s 400000 && %s --vanilla %s %d 2>&1",
                   shQuote(rscript), shQuote(script), nt)
    out <- suppressWarnings(system2("bash", c("-c", shQuote(cmd)), stdout = TRUE, stderr = TRUE))
    st <- attr(out, "status")
    list(status = if (is.null(st)) 0L else st, out = paste(out, collapse = "\n"))
  }
  for (nt in c(512L, 8L)) {
    r <- run(nt)
    info <- sprintf("n_threads = %d: %s", nt, r$out)
    expect_identical(as.integer(r$status), 0L, info = info)
    expect_false(grepl("libgomp", r$out), info = info)
    expect_match(r$out, "ERROR iclv_error_control 'n_threads' = [0-9]+", info = info)
  }
  # a count the system grants still works under the same limits
  r <- run(1L)
  expect_match(r$out, "FIT", info = r$out)
})
