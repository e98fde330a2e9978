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

# The CUDA engine's LL, log L_n, scores, gradient and Hessian at th equal the
# CPU engine's (relative 1e-12; the Hessian `hess_tol` of its largest entry).
expect_cuda_equals_cpu <- function(comp, spec, th, label, hess_tol = 1e-11) {
  c_out <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, "cpu", n_threads = 1L), th,
                               gradient = TRUE, scores = TRUE, hessian = TRUE)
  g_out <- iclv:::.engine_eval(iclv:::.engine_new(comp$c, spec, "cuda"), th,
                               gradient = TRUE, scores = TRUE, hessian = TRUE, use_cpu = FALSE)
  testthat::expect_lt(abs(g_out$loglik - c_out$loglik) / abs(c_out$loglik), 1e-12, label = paste(label, "LL"))
  testthat::expect_lt(max(abs(g_out$loglik_i - c_out$loglik_i) / abs(c_out$loglik_i)), 1e-12,
                      label = paste(label, "LL_i"))
  sc <- rep(apply(abs(c_out$scores), 2, max), each = nrow(c_out$scores))
  testthat::expect_lt(max(abs(g_out$scores - c_out$scores) / pmax(sc, 1e-300)), 1e-12,
                      label = paste(label, "scores"))
  testthat::expect_lt(max(abs(g_out$gradient - c_out$gradient) / colSums(abs(c_out$scores))), 1e-12,
                      label = paste(label, "gradient"))
  testthat::expect_lt(max(abs(g_out$hessian - c_out$hessian)) / max(abs(c_out$hessian)), hess_tol,
                      label = paste(label, "Hessian"))
}

# iclv_memory_plan(backend = "cuda") equals the CUDA engine's account byte
# for byte: the buffers held between evaluations, and the peak of a Hessian
# request (the Hessian's buffers exist only then) at th.
expect_cuda_plan_is_account <- function(m, d, dr, th_of) {
  comp <- iclv:::.iclv_compile(m, d)
  e <- iclv:::.engine_new(comp$c, iclv:::.draws_spec(dr, comp$n_ind, length(comp$lvs)), backend = "cuda")
  on.exit(iclv:::.engine_release(e))
  plan <- iclv_memory_plan(m, d, dr, backend = "cuda")
  b <- plan$buffers[plan$buffers$where == "device", ]
  planned <- stats::setNames(b$bytes, b$buffer)
  acct <- iclv:::.engine_memory(e)$device$buffers
  held <- planned[!grepl("hessian", names(planned))]
  testthat::expect_identical(names(acct), names(held))
  testthat::expect_identical(acct, held)
  iclv:::.engine_eval(e, th_of(comp), gradient = TRUE, hessian = TRUE)
  testthat::expect_identical(iclv:::.engine_memory(e)$device$peak, sum(planned))
}
