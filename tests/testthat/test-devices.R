test_that("iclv_cuda_compiled() reports the configure decision", {
  x <- iclv_cuda_compiled()
  expect_type(x, "logical")
  expect_length(x, 1L)
  expect_false(is.na(x))
  # the build log of tools/run-tests.sh sets ICLV_CUDA for each configuration
  want <- Sys.getenv("ICLV_TEST_EXPECT_CUDA", "")
  if (want %in% c("yes", "no")) expect_identical(x, want == "yes")
})

test_that("iclv_devices() has the documented columns and agrees with iclv_cuda_available()", {
  d <- iclv_devices()
  expect_s3_class(d, "data.frame")
  expect_named(d, c("device", "name", "memory_total", "memory_free",
                    "compute_capability", "multiprocessors"))
  avail <- iclv_cuda_available()
  expect_type(avail, "logical")
  if (nrow(d) == 0L) {
    expect_false(avail)
    expect_true(nzchar(attr(d, "reason")))
    expect_true(nzchar(attr(avail, "reason")))
  } else {
    expect_true(avail)
    expect_true(all(d$memory_total > 2^30))
    expect_true(all(d$memory_free <= d$memory_total))
    expect_match(d$compute_capability, "^[0-9]+\\.[0-9]+$")
  }
})

test_that("without CUDA compiled in, no devices and a reason", {
  skip_if(iclv_cuda_compiled(), "this build has CUDA compiled in")
  expect_identical(nrow(iclv_devices()), 0L)
  expect_match(attr(iclv_cuda_available(), "reason"), "without CUDA")
})

test_that("a CUDA build on a machine with a GPU lists it", {
  skip_if_not(iclv_cuda_compiled(), "CUDA not compiled in")
  skip_if_no_gpu()
  d <- iclv_devices()
  expect_gte(nrow(d), 1L)
  expect_true(all(d$multiprocessors > 0L))
})
