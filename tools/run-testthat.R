# Runs tests/testthat against the iclv installed in library `lib` and writes
# "passed failed skipped" (counts of expectations, as testthat reports them)
# to `counts_file`. Used by tools/run-tests.sh.
args <- commandArgs(trailingOnly = TRUE)
lib <- args[1]; counts_file <- args[2]
.libPaths(c(lib, .libPaths()))
# run the slower tests too (recovery, snapshots): they are skipped only on CRAN
Sys.setenv(NOT_CRAN = "true")
suppressPackageStartupMessages(library(testthat))
library(iclv)
cat("iclv_cuda_compiled():", iclv_cuda_compiled(), "\n")
res <- testthat::test_dir("tests/testthat", package = "iclv", load_package = "installed",
                          reporter = testthat::SummaryReporter$new(show_praise = FALSE),
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
df <- as.data.frame(res)
passed <- sum(df$passed)
failed <- sum(df$failed) + sum(df$error)
skipped <- sum(df$skipped)
writeLines(paste(passed, failed, skipped), counts_file)
