# The one file that touches C: every .Call of the package is here.
#
# C errors arrive as "[iclv_error_<kind>] message"; .iclv_call() turns them
# into classed R conditions (see conditions.R).

.iclv_call <- function(fun, ...) {
  tryCatch(
    .Call(fun, ...),
    error = function(e) {
      msg <- conditionMessage(e)
      m <- regmatches(msg, regexec("^\\[iclv_error_([a-z_]+)\\] (.*)$", msg))[[1]]
      if (length(m) == 3L) iclv_abort(m[2], m[3])
      stop(e)
    }
  )
}

#' Is CUDA support compiled in, and is a GPU usable now?
#'
#' `iclv_cuda_compiled()` says whether this build of iclv contains the CUDA
#' backend (decided by `configure` when the package was installed).
#' `iclv_cuda_available()` says whether that backend can run now: CUDA is
#' compiled in and at least one device answers. These are two different
#' questions: a CUDA build on a machine without a GPU or driver loads fine and
#' reports `FALSE` here.
#'
#' @return A single logical. `iclv_cuda_available()` carries an attribute
#'   `reason` saying why it is `FALSE`.
#' @examples
#' iclv_cuda_compiled()
#' iclv_cuda_available()
#' @export
iclv_cuda_compiled <- function() {
  .iclv_call(C_iclv_cuda_compiled)
}

#' @rdname iclv_cuda_compiled
#' @export
iclv_cuda_available <- function() {
  if (!iclv_cuda_compiled()) {
    return(structure(FALSE, reason = "iclv was built without CUDA (see the README: how the CUDA build is chosen)"))
  }
  d <- .iclv_call(C_iclv_cuda_devices)
  if (length(d$name) == 0L) return(structure(FALSE, reason = d$reason))
  TRUE
}

#' CUDA devices visible to iclv
#'
#' Queries the CUDA runtime (cudaGetDeviceCount, cudaGetDeviceProperties,
#' cudaMemGetInfo). Nothing touches CUDA until this or an estimation on the
#' GPU is called.
#'
#' @return A data.frame with one row per device: `device` (ordinal), `name`,
#'   `memory_total` and `memory_free` (bytes), `compute_capability` (e.g.
#'   "9.0") and `multiprocessors`. Zero rows without a GPU, without a driver,
#'   or in a build without CUDA; the attribute `reason` then says why.
#' @examples
#' iclv_devices()
#' @export
iclv_devices <- function() {
  d <- .iclv_call(C_iclv_cuda_devices)
  n <- length(d$name)
  out <- data.frame(
    device = seq_len(n) - 1L,
    name = d$name,
    memory_total = d$total_bytes,
    memory_free = d$free_bytes,
    compute_capability = if (n) paste0(d$major, ".", d$minor) else character(),
    multiprocessors = d$multiprocessors,
    stringsAsFactors = FALSE
  )
  if (n == 0L) attr(out, "reason") <- d$reason
  out
}

# ---- engines ---------------------------------------------------------------
# An engine holds the compiled model, the draw design and every workspace of
# one fit; it is created once and evaluated many times.

.iclv_backend_code <- function(backend) {
  switch(backend, cpu = 0L, cuda = 1L,
         iclv_abort("control", sprintf("unknown backend %s", iclv_quote(backend))))
}

# cluster: NULL, or a `parallel` cluster: the individuals are sharded over its
# workers, one engine each (R/cluster.R); the result is then an
# "iclv_cluster_engine" that every .engine_* function below accepts.
# test_unchecked_threads: TEST-ONLY (never for users): create the engine
# without refusing more threads than this machine runs, so that a test can
# read the account of an engine it never evaluates.
.engine_new <- function(compiled, draws_spec, backend = "cpu",
                        n_threads = 0L, device = 0L, device_memory = 0, cluster = NULL,
                        test_unchecked_threads = FALSE) {
  if (!is.null(cluster)) {
    return(.cluster_engine_new(compiled, draws_spec, backend, n_threads, device, device_memory, cluster))
  }
  # refuse, with the sizes, an engine that cannot fit in memory before C allocates
  .memory_guard(compiled, draws_spec, n_threads)
  .iclv_call(C_iclv_engine_new, compiled, draws_spec, .iclv_backend_code(backend),
             c(.engine_options(n_threads, device, device_memory),
               list(test_interrupt = .engine_test_interrupt(),
                    test_unchecked_threads = isTRUE(test_unchecked_threads))))
}

# The options list C reads (src/boundary.c options_from_R).
.engine_options <- function(n_threads = 0L, device = 0L, device_memory = 0) {
  list(n_threads = as.integer(n_threads), device = as.integer(device),
       device_memory = as.double(device_memory))
}

# What .engine_new() with the same arguments would allocate, planned in C by
# the engines' own planners without allocating it (src/boundary.c
# C_iclv_engine_plan documents the list); R/memory.R formats it.
.engine_plan <- function(compiled, draws_spec, backend = "cpu", n_threads = 0L, device = 0L,
                         device_memory = 0) {
  .iclv_call(C_iclv_engine_plan, compiled, draws_spec, .iclv_backend_code(backend),
             .engine_options(n_threads, device, device_memory))
}

# The CPU engine's thread count for n_threads = 0: OpenMP's default
# (omp_get_max_threads(), capped at OMP_THREAD_LIMIT), asked of C.
.engine_default_threads <- function() {
  .iclv_call(C_iclv_default_threads)
}

# TEST-ONLY hook (never for users): options(iclv.test_interrupt = list(after = k,
# on = "any" | "hessian" | "final" | "predict")) makes engines created while it
# is set report an interrupt, as Ctrl-C would, at the k-th poll between batches
# of individuals (0-based) of every evaluation of that kind ("final": with
# scores and Hessian, as iclv()'s evaluation for the standard errors). It lets
# tests reach the C interrupt path without sending a signal. Off: c(-1, 0).
.engine_test_interrupt <- function() {
  ti <- getOption("iclv.test_interrupt")
  if (is.null(ti)) return(c(-1L, 0L))
  on <- match(ti$on, c("any", "hessian", "final", "predict"))
  if (!is.numeric(ti$after) || length(ti$after) != 1L || is.na(ti$after) || is.na(on[1])) {
    iclv_abort("control", "option 'iclv.test_interrupt' must be list(after = <count>, on = \"any\", \"hessian\", \"final\" or \"predict\")")
  }
  c(as.integer(ti$after), on[1])
}

# use_cpu: evaluate with a CPU engine even when the engine's backend is
# CUDA (made on first use; every request, the Hessian included, is computed
# on the device otherwise). Ignored by CPU engines.
.engine_eval <- function(engine, theta, gradient = TRUE, scores = FALSE, hessian = FALSE,
                         use_cpu = FALSE) {
  if (inherits(engine, "iclv_cluster_engine")) return(.cluster_eval(engine, theta, gradient, scores, hessian, use_cpu))
  .iclv_call(C_iclv_engine_eval, engine, as.double(theta),
             list(gradient = isTRUE(gradient), scores = isTRUE(scores), hessian = isTRUE(hessian),
                  use_cpu = isTRUE(use_cpu)))
}

.engine_predict <- function(engine, theta) {
  if (inherits(engine, "iclv_cluster_engine")) return(.cluster_predict(engine, theta))
  .iclv_call(C_iclv_engine_predict, engine, as.double(theta))
}

.engine_memory <- function(engine) {
  if (inherits(engine, "iclv_cluster_engine")) return(.cluster_memory(engine))
  .iclv_call(C_iclv_engine_memory, engine)
}

# TEST-ONLY: which path a CPU engine's evaluations took (src/engine_fast.h,
# ICLV_FAST_CNT_*): reference = 1 on the per-pair reference path, then
# cumulative counts of individuals and of (observation or row, draw) terms
# by the fast kernels' vectorised / scalar forms and the reference links.
.engine_paths <- function(engine) {
  .iclv_call(C_iclv_engine_paths, engine)
}

.engine_release <- function(engine) {
  if (inherits(engine, "iclv_cluster_engine")) return(.cluster_release(engine))
  invisible(.iclv_call(C_iclv_engine_release, engine))
}

.draws_generate <- function(draws_spec) {
  .iclv_call(C_iclv_draws_generate, draws_spec)
}

# The draws of `draws_spec` as the CUDA kernels make them on `device`
# (an (N, R, K) array, .draws_generate()'s layout), to check them against
# the CPU's bit for bit. Internal.
.draws_generate_cuda <- function(draws_spec, device = 0L) {
  .iclv_call(C_iclv_cuda_draws, draws_spec, as.integer(device))
}

.eigen_sym <- function(a) {
  storage.mode(a) <- "double"
  .iclv_call(C_iclv_eigen_sym, a)
}

.inverse_spd <- function(a) {
  storage.mode(a) <- "double"
  .iclv_call(C_iclv_inverse_spd, a)
}
