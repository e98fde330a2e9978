# Memory planning: host and device bytes by buffer, predicted from the model,
# the data and the draw design BEFORE any engine exists, plus the chunking of
# individuals on the GPU. The CPU engine's sizes replicate, formula by
# formula, iclv_cpu_engine_create() in src/engine.c; tests/testthat/
# test-memory.R checks the prediction against the account of a real engine
# (.engine_memory()), so a change in engine.c that is not mirrored here fails
# there.

#' Predict the memory an estimation needs, before running it
#'
#' Compiles the model with the data and predicts, buffer by buffer, the host
#' (and for `backend = "cuda"` the device) memory that [iclv()] will use,
#' without allocating any of it: the compiled data arrays, user-supplied
#' draws (quasi-random and pseudo-random draws are made once by the CPU engine
#' and kept, `draw_cache`, when they take at most 64 MiB, and are otherwise
#' generated on the fly), every workspace of the CPU engine (one set per OpenMP
#' thread), the outputs of one evaluation (gradient, individual scores,
#' Hessian), and on the GPU the device buffers and how the individuals are
#' split into chunks that fit the device budget.
#'
#' The CPU engine is always created (predictions after estimation use it),
#' also when the likelihood is evaluated on the GPU.
#'
#' @section Threads:
#' The CPU engine allocates one workspace per OpenMP thread. With
#' `n_threads = 0` the count is the OpenMP default: the first value of the
#' environment variable `OMP_NUM_THREADS` when it was set, otherwise the
#' number of CPUs this process may run on. Note that OpenMP reads
#' `OMP_NUM_THREADS` when the package is loaded: a value set later with
#' [Sys.setenv()] is seen by this plan but not by the engine; pass
#' `n_threads` (here and in [iclv_control()]) to be exact.
#'
#' @section Device budget and chunks:
#' The GPU budget is `device_memory` when given, else 80% of the free memory
#' of the device that [iclv_devices()] reports. The buffers that do not grow
#' with the number of individuals are reserved first (the model's arrays,
#' user draws, parameters, gradient, and the local memory the driver reserves
#' for the kernels' per-thread scratch, which is estimated); what remains is
#' divided by the bytes one individual needs, giving the individuals per
#' chunk and the number of chunks. Pinned host buffers of the CUDA engine
#' appear as host buffers. Without a CUDA device the plan can still be made
#' for a given `device_memory` (it says that no device was found, and assumes
#' the shape of an H100).
#'
#' @param model An [iclv_model()].
#' @param data The data.frame that [iclv()] would get.
#' @param draws An [iclv_draws()] design or a numeric array of draws.
#' @param backend `"cpu"`, `"cuda"` or `"auto"` (as [iclv()] would resolve it).
#' @param n_threads CPU threads of the engine; 0 means the OpenMP default.
#' @param device_memory `NULL` or the bytes of device memory the CUDA backend
#'   may use (as in [iclv_control()]).
#' @param device CUDA device ordinal (as in [iclv_control()]).
#' @param cluster `NULL`, or a `parallel` cluster (see [iclv_cluster]): the
#'   plan is then made by each worker for its shard of the individuals (its
#'   threads, its devices) and returned as an object of class
#'   `"iclv_memory_plan_cluster"`: `shards` (one row per worker: `shard`,
#'   `worker`, `host`, `first`, `last`, `n_ind`, `work_share`, `device`,
#'   `n_threads`, `total_host`, `total_device`, `per_chunk`, `n_chunks`,
#'   `fits`; also what `as.data.frame()` returns), `plans` (each worker's
#'   `"iclv_memory_plan"`), `master` and `total_master` (the bytes the master
#'   holds: the compiled data of every individual and one evaluation's
#'   gathered outputs) and `verdict`. It prints one line per shard.
#' @return An object of class `"iclv_memory_plan"`: a list with
#'   `buffers` (a data.frame with columns `where` ("host" or "device"),
#'   `buffer`, `bytes`), `total_host`, `total_device` (bytes; `NA` for the
#'   CPU backend), `per_chunk` (individuals per chunk), `n_chunks`, `fits`
#'   (logical: host total within the available memory, and on the GPU at least
#'   one individual per chunk; `NA` where unknown), `device_total`,
#'   `device_free` (bytes reported by the device, `NA` without one),
#'   `device_budget`, `device_fixed` and `device_per_individual` (the
#'   device bytes that do not depend on the chunk, and those per individual of
#'   a chunk), `host_available`, `backend`, `n_threads`, `n_ind`,
#'   `n_draws`, `n_params`, `verdict` (one sentence) and `notes`.
#'   `as.data.frame()` returns `buffers`.
#' @seealso [iclv()], whose `fit$memory` reports what was actually used.
#' @examples
#' sp <- iclv_seed_problem(n = 20, n_tasks = 2)
#' plan <- iclv_memory_plan(sp$model, sp$data, iclv_draws("halton", 50), n_threads = 1)
#' plan
#' plan$total_host
#' @export
iclv_memory_plan <- function(model, data, draws = iclv_draws("halton", 100), backend = "cpu",
                             n_threads = 0, device_memory = NULL, device = 0, cluster = NULL) {
  if (!inherits(model, "iclv_model")) iclv_abort("spec", "'model' must be made by iclv_model()")
  if (!is.character(backend) || length(backend) != 1L || is.na(backend) ||
      !(backend %in% c("auto", "cpu", "cuda"))) {
    iclv_abort("control", sprintf("'backend' must be \"auto\", \"cpu\" or \"cuda\" (got %s)",
                                  paste(format(backend), collapse = ", ")))
  }
  n_threads <- .control_count(n_threads, "n_threads", min = 0)
  device <- .control_count(device, "device", min = 0)
  if (!is.null(device_memory)) device_memory <- .control_number(device_memory, "device_memory", positive = TRUE)
  if (!is.null(cluster)) .check_cluster(cluster)
  if (backend == "auto") {
    backend <- if (is.null(cluster)) .resolve_backend("auto", device)$name else
      .cluster_resolve_backend(cluster, "auto")$name
  }

  comp <- .iclv_compile(model, data)
  spec <- .draws_spec(draws, comp$c$n_ind, comp$c$n_lv)
  if (!is.null(cluster)) {
    return(.cluster_memory_plan(comp$c, spec, backend, n_threads, device_memory, device, cluster))
  }
  .memory_plan(comp$c, spec, backend, n_threads, device_memory, device)
}

# The plan of iclv_memory_plan() for a compiled model `cl` and draw spec
# (validated arguments); also made on each worker of a cluster for its shard.
.memory_plan <- function(cl, spec, backend, n_threads, device_memory, device) {
  threads <- if (n_threads > 0L) n_threads else .plan_default_threads()
  dims <- .plan_dims(cl, spec$n_draws, threads)
  notes <- character()
  if (n_threads == 0L) {
    notes <- c(notes, sprintf("CPU threads: %d (the OpenMP default%s)", threads,
                              if (nzchar(Sys.getenv("OMP_NUM_THREADS"))) ", from OMP_NUM_THREADS" else ""))
  }

  cache <- 8 * dims$N * dims$R * dims$K # generated draws made once (ICLV_DRAW_CACHE_BYTES)
  host <- c(compiled_model_data = .plan_compiled_bytes(cl),
            user_draws = if (is.null(spec$user)) 0 else 8 * length(spec$user),
            draw_cache = if (is.null(spec$user) && cache > 0 && cache <= 64 * 2^20) cache else 0,
            .plan_cpu_engine(dims),
            .plan_outputs(dims))
  if (is.null(spec$user)) host <- host[names(host) != "user_draws"]
  if (host[["draw_cache"]] == 0) host <- host[names(host) != "draw_cache"]
  bufs <- data.frame(where = "host", buffer = names(host), bytes = unname(host),
                     stringsAsFactors = FALSE)
  total_host <- sum(host)
  host_avail <- .host_available_bytes()
  fits_host <- if (is.na(host_avail)) NA else total_host <= host_avail

  N <- dims$N
  out <- list(buffers = bufs, total_host = total_host, total_device = NA_real_,
              per_chunk = N, n_chunks = 1L, fits = fits_host,
              device_total = NA_real_, device_free = NA_real_, device_budget = NA_real_,
              device_fixed = NA_real_, device_per_individual = NA_real_,
              host_available = host_avail, backend = backend, n_threads = threads,
              n_ind = N, n_draws = dims$R, n_params = dims$P, verdict = NA_character_,
              notes = notes)

  if (backend == "cuda") {
    devs <- tryCatch(iclv_devices(), iclv_error = function(e) data.frame())
    have_dev <- nrow(devs) > device
    if (have_dev) {
      out$device_total <- as.double(devs$memory_total[device + 1L])
      out$device_free <- as.double(devs$memory_free[device + 1L])
    } else {
      why <- attr(devs, "reason")
      out$notes <- c(out$notes, sprintf("no CUDA device %d was found%s; the device plan is for the given device_memory",
                                        device, if (is.null(why) || !nzchar(why)) "" else paste0(" (", why, ")")))
    }
    budget <- if (!is.null(device_memory)) device_memory else if (have_dev) 0.8 * out$device_free else NA_real_
    out$device_budget <- budget
    sms <- if (have_dev) as.double(devs$multiprocessors[device + 1L]) else NA_real_
    dev <- .plan_cuda(cl, dims, spec, budget, sms = sms)
    out$buffers <- rbind(out$buffers, data.frame(where = "device", buffer = names(dev$bytes),
                                                 bytes = unname(dev$bytes), stringsAsFactors = FALSE))
    out$total_device <- sum(dev$bytes)
    out$per_chunk <- dev$per_chunk
    out$n_chunks <- dev$n_chunks
    host_dev <- dev$host
    if (length(host_dev)) {
      out$buffers <- rbind(out$buffers, data.frame(where = "host", buffer = names(host_dev),
                                                   bytes = unname(host_dev), stringsAsFactors = FALSE))
      out$total_host <- out$total_host + sum(host_dev)
      if (!is.na(host_avail)) fits_host <- out$total_host <= host_avail
    }
    if (is.na(budget)) {
      out$fits <- NA
      out$notes <- c(out$notes, "give device_memory to plan the chunks without a device")
    } else {
      out$fits <- if (dev$per_chunk < 1L) FALSE else fits_host
    }
    out$device_fixed <- dev$fixed
    out$device_per_individual <- dev$per_individual
    out$notes <- c(out$notes, dev$note)
  }
  out$verdict <- .plan_verdict(out)
  structure(out, class = "iclv_memory_plan")
}

# ---- sizes ----------------------------------------------------------------

# Dimensions of the compiled list that the engines size their buffers by
# (the names of struct iclv_cpu_engine in src/engine.c).
.plan_dims <- function(cl, R, threads) {
  K <- as.double(cl$n_lv)
  S <- as.double(cl$st_ptr[K + 1])
  N <- as.double(cl$n_ind)
  P <- as.double(cl$n_par)
  list(N = N, P = P, K = K, R = as.double(R), S = S,
       J = max(as.double(cl$n_alt), 1), M = as.double(cl$n_indic), ext = P + K,
       n_alt = as.double(cl$n_alt), n_rows = as.double(cl$n_rows), n_obs = as.double(cl$n_obs),
       has_lv_src = any(cl$st_src_type == 1L), T = as.double(threads),
       B = .plan_hess_block(as.double(cl$n_par), threads, N),
       # the fast kernels' sizes (src/engine_fast.c iclv_fast_dims_init)
       Tmax = if (cl$choice_type == 0L || N == 0) 0 else max(diff(as.double(cl$row_ptr))),
       Omax = if (N == 0) 0 else max(diff(as.double(cl$obs_ptr))),
       Ku = if (cl$choice_type == 0L || !length(cl$ut_lv)) 0 else max(as.double(cl$ut_lv), -1) + 1,
       NU = if (cl$choice_type == 0L) 0 else as.double(length(cl$ut_par)))
}

# Bytes of the compiled model's arrays (the C structs point into them): 8 per
# double, 4 per integer.
.plan_compiled_bytes <- function(cl) {
  sum(vapply(cl, function(v) {
    if (is.double(v)) 8 * length(v) else if (is.integer(v)) 4 * length(v) else 0
  }, numeric(1)))
}

.pad8 <- function(n) ceiling(n / 8) * 8

# Individuals per Hessian block (iclv_cpu_engine_create in src/engine.c): up
# to 32 P x P slots per thread within 8 MiB, at least 4 per thread within
# 64 MiB, at least one per thread, at most N.
.plan_hess_block <- function(P, threads, N) {
  slot <- 8 * P * P
  want <- if (slot > 0) min(floor(8 * 2^20 / slot), 32 * threads) else 32 * threads
  cap <- if (slot > 0) min(floor(64 * 2^20 / slot), 4 * threads) else 4 * threads
  min(max(want, cap, threads), N)
}

# The CPU engine's buffers, in the order and with the names iclv_cpu_engine_create()
# records them (src/engine.c). sizeof(thread_ws) is 16 pointers: ten double*
# plus an iclv_pair_ws of six double*.
.plan_cpu_engine <- function(d) {
  N <- d$N; P <- d$P; K <- d$K; R <- d$R; S <- d$S; J <- d$J; M <- d$M
  ext <- d$ext; T <- d$T; B <- d$B
  zE <- .pad8(R * K); zl <- .pad8(R); zG <- .pad8(R * ext); zg <- .pad8(ext)
  zpe <- .pad8(P * K); zee <- .pad8(K * K); zlc <- .pad8(R * (M + 1)); zeta <- .pad8(K)
  zD <- .pad8(K * S); zD2 <- if (d$has_lv_src) .pad8(K * S * S) else 0
  zJ <- .pad8(J); zHV <- .pad8(J * J)
  c(scores_by_individual = 8 * N * P,
    loglik_by_individual = 8 * N,
    status_by_individual = 4 * N,
    hessian_block_slots = 8 * B * P * P,
    component_loglik_by_individual = 8 * N * (M + 1),
    thread_descriptors = 16 * .Machine$sizeof.pointer * T,
    thread_draws = 8 * T * zE,
    thread_draw_loglik = 8 * T * 2 * zl,
    thread_draw_gradients = 8 * T * zG,
    thread_gradient_scratch = 8 * T * zg,
    thread_hessian_lv_blocks = 8 * T * (zpe + zee),
    thread_component_loglik = 8 * T * (zlc + zE),
    thread_lv_jacobian = 8 * T * (zeta + zD + zD2),
    thread_choice_scratch = 8 * T * (3 * zJ + zHV),
    thread_fast_scratch = 8 * T * .plan_fast_doubles(d),
    thread_fast_descriptors = 28 * .Machine$sizeof.pointer * T)
}

# Doubles of one thread's scratch of the fast kernels: iclv_fast_ws_doubles()
# in src/engine_fast.c, piece by piece (W, L, Eu, tsafe, gV, HV, G0, G1, M0,
# M1, M2, oc, A0, A1, geta, Gst, au, Hpe, Hee, tv, and the block of
# B draws: bEta, bD, bGe, bS, bOf, bGv with bU; tl).
.plan_fast_doubles <- function(d) {
  Tm <- d$Tmax; O <- d$Omax; J <- d$J; K <- d$K; Ku <- d$Ku; P <- d$P; S <- d$S
  JJ <- J * J
  nblk <- ceiling(d$R / 32) # blocks of at most BLOCK_DRAWS = 32 draws, of equal size
  B <- if (nblk > 0) ceiling(d$R / nblk) else 1
  sum(.pad8(c(Tm * J, Tm * J * Ku, Tm * J, Tm, Tm * J, Tm * JJ, Tm * J, Tm * J * Ku,
              Tm * JJ, Tm * Ku * JJ, Tm * Ku * Ku * JJ, O * 5, O * 2, O * K,
              K, S, 5 * J + K, P * K, K * K, Tm,
              K * B, K * S * B, K * B, 8 * B, O * 3 * B, Tm * J * B + 3 * J * B,
              Tm * d$NU * 4)))
}

# The R vectors one evaluation returns (src/boundary.c C_iclv_engine_eval):
# log L_n always, the gradient, the scores and the Hessian when asked (at the
# optimum all three are).
.plan_outputs <- function(d) {
  c(output_loglik_by_individual = 8 * d$N,
    output_gradient = 8 * d$P,
    output_scores = 8 * d$N * d$P,
    output_hessian = 8 * d$P * d$P)
}

# Device buffers of the CUDA engine and its chunking, replicating
# iclv_cuda_engine_create() in src/cuda/cuda_engine.cu (buffer names as its
# account records them).
#   cl: the compiled list; d: .plan_dims(); spec: .draws_spec(); budget:
#   device bytes (NA: unknown); sms: multiprocessors of the device (NA:
#   unknown, an H100's 132 is assumed); threads_per_sm: resident threads per
#   multiprocessor (2048 on sm_80 and sm_90, the architectures iclv builds);
#   shared: shared bytes a block may use (an H100's 227 KB).
# Returns list(bytes = named device bytes, host = named pinned host bytes,
#   per_chunk, n_chunks, fixed, per_individual, note).
# The engine splits its buffers into a fixed part (the model's packed
# arrays, user draws, theta, the LL and gradient sums, the reduction carry
# and the driver's local-memory reservation) and a part for one chunk of
# individuals ("chunk:" buffers):
#   per_chunk = min(N, floor((budget - fixed) / per_individual)),
#   n_chunks  = ceiling(N / per_chunk).
# The local-memory reservation is (stack frame per thread) x threads_per_sm x
# sms, the frame being the 96 bytes ptxas (CUDA 13.0) reports for the
# largest kernel of the sm_90 build (k_hess_pairs; k_pairs has 64). The Hessian's buffers (names with "hessian")
# are in the plan, which gives the peak: the engine creates them when an
# evaluation asks for the Hessian and releases them after, but sizes the
# chunk so that they fit:
#   per_chunk = min(N, floor((budget - fixed) / per_individual)),
# fixed and per_individual including the Hessian's buffers.
.plan_cuda <- function(cl, d, spec, budget, sms = NA_real_, threads_per_sm = 2048,
                       shared = 227 * 1024) {
  N <- d$N; P <- d$P; R <- d$R; K <- d$K; S <- d$S; J <- d$J
  note <- character()
  if (is.na(sms)) {
    sms <- 132
    note <- c(note, "device shape unknown: an H100 (132 multiprocessors) is assumed")
  }
  pad32 <- function(n) ceiling(n / 32) * 32
  int_parts <- c("lv_order", "st_ptr", "st_par", "st_src_type", "st_src", "ind_type", "ind_ncat",
                 "ind_thr", "ind_icpt", "ind_sd", "ind_load_ptr", "ind_load_lv", "ind_load_par",
                 "obs_ptr", "obs_ind", "row_ptr", "y", "avail", "ut_ptr", "ut_par", "ut_col", "ut_lv")
  dbl_parts <- c("cov", "obs_val", "X")
  # launch shape (choose_split)
  target <- 4 * sms
  B <- 1
  if (N < target) B <- max(1, min(ceiling(target / N), R %/% 32))
  rb <- ceiling(R / B)
  split <- ceiling(R / rb)
  Tt <- min(ceiling(rb / 32) * 32, 128)
  # the pair rows: shared memory unless T rows do not fit a block's share
  rowlen <- bitwOr(as.integer(2 * K + K * S + 2 * J + P + K), 1L)
  rows_global <- 8 * (2 * P + Tt + 4) + 8 * Tt * rowlen > shared
  frame <- 96
  fixed <- c(model_int_arrays = 4 * sum(pad32(lengths(cl[int_parts]))),
             model_double_arrays = 8 * sum(pad32(lengths(cl[dbl_parts]))),
             user_draws = if (is.null(spec$user)) 0 else 8 * N * R * K,
             theta = 8 * P,
             reduction_carry = 8 * 32 * (1 + P),
             local_memory_reserved_estimate = frame * threads_per_sm * sms,
             loglik_gradient_sums = 8 * (1 + P))
  hess_slot <- 2 * K + K * S + (if (d$has_lv_src) K * S * S else 0) + 2 * J + J * J +
    (P + K) + P * K + K * K
  D <- min(ceiling(target * 32 / N), 32, R) # Hessian slots per individual (choose_split)
  if (P > 0 && D * 8 * N * P * P > 2^30) D <- floor(2^30 / (8 * N * P * P))
  D <- max(1, D)
  fixed <- c(fixed, hessian_sum = 8 * P * P, hessian_carry = 8 * 32 * P * P)
  fixed <- fixed[fixed > 0 | names(fixed) == "local_memory_reserved_estimate"]
  per_ind <- 8 * (3 + (1 + P) + (if (split > 1) split * (2 + P) else 0) +
                    (if (rows_global) split * Tt * rowlen else 0)) +
    8 * (R * P + D * (P * P + hess_slot)) + 4
  fixed_total <- sum(fixed)
  if (is.na(budget)) {
    per_chunk <- N
  } else {
    fit <- floor((budget - fixed_total) / per_ind)
    per_chunk <- if (fit < 1) 0 else min(N, fit, floor(.Machine$integer.max / split))
  }
  C <- max(per_chunk, 0)
  chunk <- c(`chunk:loglik_status` = 8 * 2 * C,
             `chunk:logsumexp` = 8 * C,
             `chunk:scores` = 8 * C * (1 + P),
             `chunk:draw_block_states` = if (split > 1) 8 * C * split * (2 + P) else 0,
             `chunk:pair_scratch` = if (rows_global) 8 * C * split * Tt * rowlen else 0,
             `chunk:hessian_draw_rows` = 8 * C * R * P,
             `chunk:hessian_by_individual` = 8 * C * D * P * P,
             `chunk:hessian_pair_scratch` = 8 * C * D * hess_slot,
             `chunk:hessian_status` = 4 * C)
  chunk <- chunk[chunk > 0]
  host <- c(cuda_pinned_theta = 8 * P, cuda_pinned_results = 8 * (1 + P + 2 * N),
            cuda_pinned_scores = 8 * C * (1 + P),
            cuda_pinned_hessian = 8 * P * P, cuda_pinned_hessian_status = 4 * N,
            cuda_host_scratch = 8 * (2 * K + 2 * J))
  list(bytes = c(fixed, chunk), host = host[host > 0], per_chunk = as.integer(per_chunk),
       n_chunks = if (per_chunk >= 1) as.integer(ceiling(N / per_chunk)) else NA_integer_,
       fixed = fixed_total, per_individual = per_ind,
       note = c(note, "local_memory_reserved_estimate: the driver's local-memory reservation for the pair kernels, estimated",
                "the buffers named 'hessian' exist only while the device computes an exact Hessian"))
}

# ---- a guard for iclv() and iclv_loglik() -----------------------------------

# Refuses, before anything is allocated, an engine whose planned host memory
# (the CPU engine's buffers and one evaluation's outputs) exceeds the memory
# the host has available now (MemAvailable; no check where unknown).
# compiled: the compiled list (.iclv_compile()$c); spec: .draws_spec();
# n_threads: as in iclv_control() (0: the OpenMP default).
# Returns the planned bytes invisibly; errors with iclv_error_memory.
.memory_guard <- function(compiled, spec, n_threads = 0L) {
  threads <- if (n_threads > 0L) as.integer(n_threads) else .plan_default_threads()
  # a malformed compiled list cannot be planned: the C boundary, which checks
  # every field, then refuses it with a classed error naming the field
  d <- tryCatch(.plan_dims(compiled, spec$n_draws, threads), error = function(e) NULL)
  if (is.null(d) || !length(d$P) || !length(d$N)) return(invisible(NA_real_))
  bufs <- c(.plan_cpu_engine(d), .plan_outputs(d))
  need <- sum(bufs)
  avail <- .host_available_bytes()
  if (!is.na(avail) && need > avail) {
    big <- names(which.max(bufs))
    iclv_abort("memory", sprintf(paste0(
      "the CPU engine would need %s of host memory (%.0f individuals, %.0f draws, %.0f parameters, ",
      "%d thread%s; largest buffer %s: %s), but only %s are available; use fewer draws or threads ",
      "(iclv_memory_plan() lists every buffer)"),
      .format_bytes(need), d$N, d$R, d$P, threads, if (threads == 1L) "" else "s", big,
      .format_bytes(max(bufs)), .format_bytes(avail)))
  }
  invisible(need)
}

# ---- environment ----------------------------------------------------------

# The OpenMP default team size, as omp_get_max_threads() would give it: the
# first value of OMP_NUM_THREADS when it is a positive integer, else the CPUs
# in this process's affinity mask (libgomp's rule), else detectCores(). When
# the engine exposes the value itself (.engine_default_threads in
# R/engine.R), that is used instead.
.plan_default_threads <- function() {
  f <- get0(".engine_default_threads", envir = environment(.plan_default_threads),
            mode = "function", inherits = FALSE)
  if (!is.null(f)) {
    n <- tryCatch(as.integer(f()), error = function(e) NA_integer_)
    if (length(n) == 1L && !is.na(n) && n >= 1L) return(n)
  }
  env <- Sys.getenv("OMP_NUM_THREADS")
  if (nzchar(env)) {
    first <- trimws(strsplit(env, ",", fixed = TRUE)[[1]][1])
    n <- suppressWarnings(as.integer(first))
    if (!is.na(n) && n >= 1L && grepl("^[0-9]+$", first)) return(n)
  }
  n <- .affinity_cpus()
  if (!is.na(n) && n >= 1L) return(n)
  # parallel ships with R; looked up by name so that it need not be a
  # declared dependency for this fallback (no /proc: macOS, Windows)
  n <- tryCatch(suppressWarnings(utils::getFromNamespace("detectCores", "parallel")()),
                error = function(e) NA_integer_)
  if (is.na(n) || n < 1L) 1L else as.integer(n)
}

# CPUs in the affinity mask (Cpus_allowed_list of /proc/self/status, e.g.
# "0-3,8"), NA where unavailable.
.affinity_cpus <- function() {
  x <- .proc_status_lines()
  line <- grep("^Cpus_allowed_list:", x, value = TRUE)
  if (!length(line)) return(NA_integer_)
  parts <- strsplit(trimws(sub("^Cpus_allowed_list:", "", line[1])), ",", fixed = TRUE)[[1]]
  n <- 0L
  for (p in parts) {
    ab <- suppressWarnings(as.integer(strsplit(p, "-", fixed = TRUE)[[1]]))
    if (anyNA(ab) || !length(ab)) return(NA_integer_)
    n <- n + if (length(ab) == 2L) ab[2] - ab[1] + 1L else 1L
  }
  n
}

.proc_status_lines <- function() {
  f <- "/proc/self/status"
  if (!file.exists(f)) return(character())
  tryCatch(readLines(f, warn = FALSE), error = function(e) character())
}

# Value in kB of a "Key:   123 kB" line, in bytes; NA when absent.
.proc_kb <- function(lines, key) {
  line <- grep(paste0("^", key, ":"), lines, value = TRUE)
  if (!length(line)) return(NA_real_)
  kb <- suppressWarnings(as.numeric(gsub("[^0-9]", "", line[1])))
  if (is.na(kb)) NA_real_ else kb * 1024
}

# Memory the host can still give (MemAvailable of /proc/meminfo), bytes; NA
# where unavailable.
.host_available_bytes <- function() {
  f <- "/proc/meminfo"
  if (!file.exists(f)) return(NA_real_)
  .proc_kb(tryCatch(readLines(f, warn = FALSE), error = function(e) character()), "MemAvailable")
}

# The resident memory of this R process: c(peak = VmHWM, current = VmRSS) in
# bytes, NA where /proc/self/status is not readable (macOS, Windows).
.process_peak_bytes <- function() {
  x <- .proc_status_lines()
  c(peak = .proc_kb(x, "VmHWM"), current = .proc_kb(x, "VmRSS"))
}

# ---- printing ---------------------------------------------------------------

.format_bytes <- function(x) {
  vapply(x, function(b) {
    if (is.na(b)) return("NA")
    if (b < 1024) return(sprintf("%.0f B", b))
    u <- c("KiB", "MiB", "GiB", "TiB", "PiB")
    e <- min(floor(log(b, 1024)), length(u))
    sprintf("%.1f %s", b / 1024^e, u[e])
  }, character(1))
}

.plan_verdict <- function(p) {
  if (isFALSE(p$fits)) {
    if (identical(p$backend, "cuda") && !is.na(p$per_chunk) && p$per_chunk < 1L) {
      return(sprintf("does not fit: the device budget of %s does not hold one individual",
                     .format_bytes(p$device_budget)))
    }
    return(sprintf("does not fit: the host needs %s but has %s available",
                   .format_bytes(p$total_host), .format_bytes(p$host_available)))
  }
  if (identical(p$backend, "cuda") && is.na(p$device_budget)) {
    return("device chunking unknown: no CUDA device was found and no device_memory was given")
  }
  if (p$n_chunks == 1L) return("fits in 1 chunk")
  sprintf("needs %d chunks of %d individuals", p$n_chunks, p$per_chunk)
}

#' @export
print.iclv_memory_plan <- function(x, ...) {
  cat(sprintf("iclv memory plan: backend %s, %d individuals, %d draws, %d parameters, %d CPU thread%s\n",
              x$backend, as.integer(x$n_ind), as.integer(x$n_draws), as.integer(x$n_params),
              as.integer(x$n_threads), if (x$n_threads == 1L) "" else "s"))
  b <- x$buffers
  tab <- data.frame(where = b$where, buffer = b$buffer, size = .format_bytes(b$bytes),
                    bytes = format(b$bytes, big.mark = ",", scientific = FALSE, trim = TRUE),
                    stringsAsFactors = FALSE)
  print(tab, row.names = FALSE, right = FALSE)
  cat(sprintf("host total:   %s", .format_bytes(x$total_host)))
  if (!is.na(x$host_available)) cat(sprintf(" (available now: %s)", .format_bytes(x$host_available)))
  cat("\n")
  if (identical(x$backend, "cuda")) {
    dev <- if (is.na(x$device_total)) "no device found" else
      sprintf("device memory total %s, free %s", .format_bytes(x$device_total), .format_bytes(x$device_free))
    cat(sprintf("device total: %s (budget %s; %s)\n", .format_bytes(x$total_device),
                .format_bytes(x$device_budget), dev))
    if (!is.na(x$device_fixed)) {
      cat(sprintf("device chunking: %s fixed + %s per individual\n", .format_bytes(x$device_fixed),
                  .format_bytes(x$device_per_individual)))
    }
  }
  for (n in x$notes) cat("note: ", n, "\n", sep = "")
  cat("verdict: ", x$verdict, "\n", sep = "")
  invisible(x)
}

#' @export
as.data.frame.iclv_memory_plan <- function(x, ...) x$buffers
