# The CUDA engine's graphs (src/cuda/cuda_eval.cu, design in
# cuda_engine_impl.cuh): a one-chunk LL or LL + gradient request without
# scores or Hessian is captured once per kind and then replayed. Checked
# here: the replay equals the calls queued one by one (ICLV_CUDA_GRAPHS=0)
# bit for bit, each launch uses its own request's theta, graphs are
# destroyed with the chunk buffers and rebuilt after them, and failures are
# iclv_error_cuda. The counters come from .engine_memory()$cuda_graphs.
# Everything needs a usable GPU (or the emulator, lab/cuda_emu) and is
# skipped, with the reason, elsewhere.

# A CUDA engine created with the environment variables `env` set (the
# engine reads them at creation), restored afterwards.
gpu_engine_env <- function(compiled, draws, env) {
  old <- Sys.getenv(names(env), unset = NA, names = TRUE)
  on.exit(for (k in names(env)) {
    if (is.na(old[[k]])) Sys.unsetenv(k) else do.call(Sys.setenv, stats::setNames(list(old[[k]]), k))
  })
  do.call(Sys.setenv, as.list(env))
  iclv:::.engine_new(compiled, draws, "cuda")
}
graph_engine <- function(tm, ...) gpu_engine_env(tm$compiled, tm$draws, c(ICLV_CUDA_GRAPHS = "1", ...))
queued_engine <- function(tm) gpu_engine_env(tm$compiled, tm$draws, c(ICLV_CUDA_GRAPHS = "0"))
graph_counts <- function(e) iclv:::.engine_memory(e)$cuda_graphs
ll_req <- function(e, th, gradient) iclv:::.engine_eval(e, th, gradient = gradient, use_cpu = FALSE)
counts <- function(built, launched) c(built = built, launched = launched)

test_that("one-chunk LL and LL + gradient requests run as a graph, bit-identical to the queued calls", {
  skip_if_no_gpu()
  cases <- list(list(n_ind = 6L, R = 5L, weighted = FALSE),
                list(n_ind = 6L, R = 100L, weighted = FALSE), # each individual split over blocks: k_merge_split
                list(n_ind = 40L, R = 20L, weighted = TRUE))  # two reduction groups, weights
  for (k in seq_along(cases)) {
    cs <- cases[[k]]
    tm <- tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_logit"), "mnl",
                     n_ind = cs$n_ind, n_draws = cs$R, seed = 400 + k)
    if (cs$weighted) tm$compiled$weight <- round(seq(0.2, 3, length.out = cs$n_ind), 2)
    label <- sprintf("N = %d, R = %d%s", cs$n_ind, cs$R, if (cs$weighted) ", weighted" else "")
    eg <- graph_engine(tm)
    eq <- queued_engine(tm)
    expect_identical(iclv:::.engine_memory(eg)$n_chunks, 1L)
    expect_identical(graph_counts(eg), counts(0, 0), label = label)
    for (i in 1:3) {
      th <- jitter_theta(tm)
      for (g in c(FALSE, TRUE)) {
        r <- ll_req(eg, th, g)
        expect_true(is.finite(r$loglik) && all(is.finite(r$loglik_i)), label = label)
        expect_identical(r, ll_req(eq, th, g), label = sprintf("%s, theta %d, gradient %s", label, i, g))
      }
    }
    # one graph per kind of request, replayed thereafter; none for the queued engine
    expect_identical(graph_counts(eg), counts(2, 6), label = label)
    expect_identical(graph_counts(eq), counts(0, 0), label = label)
    # a request with scores is queued call by call, and gives the same numbers
    th <- jitter_theta(tm)
    full <- iclv:::.engine_eval(eg, th, gradient = TRUE, scores = TRUE, use_cpu = FALSE)
    expect_identical(graph_counts(eg), counts(2, 6), label = label)
    parts <- c("loglik", "loglik_i", "gradient")
    expect_identical(ll_req(eg, th, TRUE)[parts], full[parts], label = label)
    expect_identical(graph_counts(eg), counts(2, 7), label = label)
  }
})

test_that("each graph launch uses the theta of its own request", {
  skip_if_no_gpu()
  tm <- tiny_model(c("ordered_probit", "binary_probit", "normal", "ordered_logit"), "mnl",
                   n_ind = 9L, n_draws = 30L, seed = 411)
  eg <- graph_engine(tm)
  ec <- iclv:::.engine_new(tm$compiled, tm$draws, "cpu", n_threads = 1L)
  ths <- list(jitter_theta(tm), jitter_theta(tm), jitter_theta(tm))
  order <- c(1, 2, 1, 3, 3, 2)
  res <- lapply(order, function(i) ll_req(eg, ths[[i]], TRUE))
  expect_identical(graph_counts(eg), counts(1, 6))
  # the results change with theta (so a graph holding a stale theta fails here) ...
  expect_false(identical(res[[1]]$loglik, res[[2]]$loglik))
  expect_false(identical(res[[2]]$gradient, res[[4]]$gradient))
  # ... and repeat with it
  expect_identical(res[[3]], res[[1]])
  expect_identical(res[[5]], res[[4]])
  expect_identical(res[[6]], res[[2]])
  # and they are the CPU engine's at that theta
  for (j in seq_along(order)) {
    c <- ll_req(ec, ths[[order[j]]], TRUE)
    expect_lt(abs(res[[j]]$loglik - c$loglik) / abs(c$loglik), 1e-12)
    expect_lt(max(abs(res[[j]]$loglik_i - c$loglik_i) / abs(c$loglik_i)), 1e-12)
    expect_lt(max(abs(res[[j]]$gradient - c$gradient)) / max(abs(c$gradient)), 1e-11)
  }
  # LL-only and LL + gradient graphs interleaved, each at its own theta
  a <- ll_req(eg, ths[[1]], FALSE)
  b <- ll_req(eg, ths[[2]], TRUE)
  a2 <- ll_req(eg, ths[[3]], FALSE)
  expect_identical(graph_counts(eg), counts(2, 9))
  expect_identical(a$loglik, res[[1]]$loglik)
  expect_identical(b, res[[2]])
  expect_identical(a2$loglik_i, res[[4]]$loglik_i)
})

test_that("graphs are destroyed with the chunk buffers and rebuilt on the new ones", {
  skip_if_no_gpu()
  # ICLV_CUDA_TEST_HESSIAN_CHUNK = 4: the Hessian request re-makes the chunk
  # buffers for 4 of the 9 individuals, then for 9 again (hess_create's guard)
  tm <- tiny_model(c("ordered_probit", "normal", "binary_logit", "ordered_probit"), "mnl",
                   n_ind = 9L, n_draws = 40L, seed = 421)
  eh <- graph_engine(tm, ICLV_CUDA_TEST_HESSIAN_CHUNK = "4")
  eq <- queued_engine(tm)
  th <- list(jitter_theta(tm), jitter_theta(tm), jitter_theta(tm))
  b0 <- iclv:::.engine_memory(eh)$device
  for (g in c(TRUE, FALSE)) expect_identical(ll_req(eh, th[[1]], g), ll_req(eq, th[[1]], g))
  expect_identical(graph_counts(eh), counts(2, 2))
  hess_req <- function(e, x) iclv:::.engine_eval(e, x, gradient = TRUE, scores = TRUE, hessian = TRUE, use_cpu = FALSE)
  h <- hess_req(eh, th[[2]])
  # chunks of 4 change no bit (the documented chunk independence)
  expect_identical(h, hess_req(eq, th[[2]]))
  # the request ran on chunk buffers re-made for 4 individuals: its peak
  # (LL and Hessian buffers for 4) is under the 9-individual request's
  m1 <- iclv:::.engine_memory(eh)$device
  expect_lt(m1$peak, iclv:::.engine_memory(eq)$device$peak)
  expect_identical(m1$buffers, b0$buffers) # and restored for 9
  expect_identical(m1$current, b0$current)
  expect_identical(graph_counts(eh), counts(2, 2))
  # the old graphs named the freed buffers: new ones are captured, and right
  for (g in c(TRUE, FALSE)) expect_identical(ll_req(eh, th[[3]], g), ll_req(eq, th[[3]], g))
  expect_identical(graph_counts(eh), counts(4, 4))
  expect_identical(ll_req(eh, th[[1]], TRUE), ll_req(eq, th[[1]], TRUE))
  expect_identical(graph_counts(eh), counts(4, 5))
  iclv:::.engine_release(eh)
})

test_that("a failed capture, instantiation or launch is an iclv_error_cuda naming the call; the engine recovers", {
  skip_if_no_gpu()
  skip_if_not(grepl("^emulated device", iclv_devices()$name[1]),
              "needs the emulator's fault injection (EMU_FAIL, lab/cuda_emu)")
  tm <- tiny_model(c("ordered_probit", "normal"), "mnl", n_ind = 7L, n_draws = 20L, seed = 431)
  th <- jitter_theta(tm)
  ref <- ll_req(queued_engine(tm), th, TRUE)
  old <- Sys.getenv("EMU_FAIL", NA)
  on.exit(if (is.na(old)) Sys.unsetenv("EMU_FAIL") else Sys.setenv(EMU_FAIL = old))
  for (call in c("cudaStreamBeginCapture", "cudaStreamEndCapture", "cudaGraphInstantiate", "cudaGraphLaunch")) {
    e <- graph_engine(tm)
    Sys.setenv(EMU_FAIL = call)
    err <- tryCatch(ll_req(e, th, TRUE), error = function(cnd) cnd)
    Sys.unsetenv("EMU_FAIL")
    expect_s3_class(err, "iclv_error_cuda")
    expect_match(conditionMessage(err), paste0("CUDA call ", call, "("), fixed = TRUE)
    expect_identical(graph_counts(e)[["launched"]], 0)
    # nothing was left capturing or half-built: the next request builds and runs a graph
    expect_identical(ll_req(e, th, TRUE), ref, label = call)
    expect_identical(graph_counts(e), counts(1, 1), label = call)
    iclv:::.engine_release(e)
  }
})

test_that("ICLV_CUDA_GRAPHS and ICLV_CUDA_TEST_HESSIAN_CHUNK accept only what they document", {
  skip_if_no_gpu()
  tm <- tiny_model("ordered_probit", "mnl", n_ind = 5L, n_draws = 8L, seed = 441)
  expect_error(gpu_engine_env(tm$compiled, tm$draws, c(ICLV_CUDA_GRAPHS = "yes")),
               "ICLV_CUDA_GRAPHS must be 0 or 1", class = "iclv_error_input")
  expect_error(gpu_engine_env(tm$compiled, tm$draws, c(ICLV_CUDA_TEST_HESSIAN_CHUNK = "0")),
               "ICLV_CUDA_TEST_HESSIAN_CHUNK must be a positive count", class = "iclv_error_input")
  # unset means graphs
  e <- gpu_engine_env(tm$compiled, tm$draws, c(ICLV_CUDA_GRAPHS = ""))
  ll_req(e, tm$theta, TRUE)
  expect_identical(graph_counts(e), counts(1, 1))
})
