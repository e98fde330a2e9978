# Skips a test unless a CUDA device is usable now, with the reason.
skip_if_no_gpu <- function() {
  ok <- iclv::iclv_cuda_available()
  if (!isTRUE(ok)) testthat::skip(paste("no usable GPU:", attr(ok, "reason")))
}
