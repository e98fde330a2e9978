# Skips a test unless a CUDA device is usable now, with the reason.
skip_if_no_gpu <- function() {
  ok <- iclv::iclv_cuda_available()
  if (!isTRUE(ok)) testthat::skip(paste("no usable GPU:", attr(ok, "reason")))
}

# Device bytes that do not depend on the chunk size, and bytes per
# individual, of the LL buffers (account names starting with "chunk:") plus
# the Hessian's, which exist only during a Hessian request: measured as the
# peak's rise over one Hessian evaluation at theta (the engine's chunk must
# hold every individual), less the fixed (P, P) sum and (32, P, P) carry.
chunk_costs <- function(e, theta) {
  mem <- iclv:::.engine_memory(e)
  b <- mem$device$buffers
  is_chunk <- startsWith(names(b), "chunk:")
  C <- mem$per_chunk
  stopifnot(mem$n_chunks == 1L)
  P <- b[["theta"]] / 8
  iclv:::.engine_eval(e, theta, gradient = TRUE, hessian = TRUE, use_cpu = FALSE)
  rise <- iclv:::.engine_memory(e)$device$peak - mem$device$current
  hess_fixed <- 8 * P * P * 33
  list(fixed = sum(b[!is_chunk]) + hess_fixed,
       per_ind = sum(b[is_chunk]) / C + (rise - hess_fixed) / C,
       per_chunk = C, n_chunks = mem$n_chunks)
}
# A budget that gives exactly `n` individuals per chunk.
budget_for <- function(costs, n) costs$fixed + (n + 0.5) * costs$per_ind
