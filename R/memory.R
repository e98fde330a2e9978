# Memory planning: host and device bytes by buffer, predicted from the model,
# the data and the draw design BEFORE any engine exists, plus the chunking of
# individuals on the GPU. The sizes are the engines' own: C plans them
# (.engine_plan() in R/engine.R: the planners that iclv_cpu_engine_create()
# and iclv_cuda_engine_create() allocate from) and this file only formats
# the table and the verdict.

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
#' With `backend = "cuda"` the plan also lists the CPU engine's buffers:
#' [iclv()] creates a CPU engine after the estimation for the predictions
#' (component log-likelihoods), which the GPU does not compute.
#'
#' @section Threads:
#' The CPU engine allocates one workspace per OpenMP thread. With
#' `n_threads = 0` the count is the OpenMP default, as the engine asks
#' OpenMP for it (`omp_get_max_threads()`: the first value of
#' `OMP_NUM_THREADS` when it was set before OpenMP started, otherwise the
#' number of CPUs this process may run on; capped at `OMP_THREAD_LIMIT`).
#'
#' @section Device budget and chunks:
#' The GPU budget is `device_memory` when given, else 80% of the free memory
#' of the device that [iclv_devices()] reports. The buffers that do not grow
#' with the number of individuals are reserved first (the model's arrays,
#' user draws, parameters, gradient, and the local memory the driver reserves
#' for the kernels' per-thread scratch); what remains is divided by the
#' bytes one individual needs, giving the individuals per chunk and the number
#' of chunks. Pinned host buffers of the CUDA engine appear as host buffers.
#' With a usable device the plan reads its shape (multiprocessors, shared
#' memory, the kernels' local-memory frames) as the engine does. Without a
#' CUDA device the plan can still be made for a given `device_memory` (it
#' says that no device was found, and assumes the shape of an H100).
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

  prob <- .iclv_problem(model, data, draws) # R/problem.R
  if (!is.null(cluster)) {
    return(.cluster_memory_plan(prob$comp$c, prob$spec, backend, n_threads, device_memory, device, cluster))
  }
  .memory_plan(prob$comp$c, prob$spec, backend, n_threads, device_memory, device)
}

# The plan of iclv_memory_plan() for a compiled model `cl` and draw spec
# (validated arguments); also made on each worker of a cluster for its shard.
# Every size comes from C (.engine_plan()); this formats them.
.memory_plan <- function(cl, spec, backend, n_threads, device_memory, device) {
  pl <- .engine_plan(cl, spec, backend, n_threads = n_threads, device = device,
                     device_memory = if (is.null(device_memory)) 0 else device_memory)
  threads <- pl$n_threads
  notes <- character()
  if (n_threads == 0L) {
    notes <- c(notes, sprintf("CPU threads: %d (the OpenMP default%s)", threads,
                              if (nzchar(Sys.getenv("OMP_NUM_THREADS"))) ", from OMP_NUM_THREADS" else ""))
  }
  rows <- function(where, b) {
    data.frame(where = rep(where, length(b)), buffer = as.character(names(b)),
               bytes = as.double(unname(b)), stringsAsFactors = FALSE)
  }
  host <- c(pl$data, pl$engine, pl$outputs)
  bufs <- rows("host", host)
  total_host <- sum(host)
  host_avail <- .host_available_bytes()
  N <- as.integer(cl$n_ind)
  out <- list(buffers = bufs, total_host = total_host, total_device = NA_real_,
              per_chunk = N, n_chunks = 1L, fits = NA,
              device_total = NA_real_, device_free = NA_real_, device_budget = NA_real_,
              device_fixed = NA_real_, device_per_individual = NA_real_,
              host_available = host_avail, backend = backend, n_threads = threads,
              n_ind = N, n_draws = spec$n_draws, n_params = as.integer(cl$n_par),
              verdict = NA_character_, notes = notes)
  if (backend == "cuda") {
    if (!pl$device_found) {
      why <- pl$device_reason
      out$notes <- c(out$notes, sprintf("no CUDA device %d was found%s; the device plan is for the given device_memory",
                                        device, if (nzchar(why)) paste0(" (", why, ")") else ""))
    }
    if (pl$device_assumed) {
      out$notes <- c(out$notes, sprintf("device shape unknown: an H100 (%d multiprocessors) is assumed",
                                        pl$device_sms))
    }
    out$buffers <- rbind(out$buffers, rows("device", pl$device), rows("host", pl$pinned))
    out$total_host <- total_host + sum(pl$pinned)
    out$total_device <- sum(pl$device)
    out$per_chunk <- pl$per_chunk
    out$n_chunks <- pl$n_chunks
    out$device_total <- pl$device_total
    out$device_free <- pl$device_free
    out$device_budget <- pl$device_budget
    out$device_fixed <- pl$device_fixed
    out$device_per_individual <- pl$device_per_individual
    if (is.na(out$device_budget)) {
      out$notes <- c(out$notes, "give device_memory to plan the chunks without a device")
    } else if (pl$per_chunk < 1L) {
      out$fits <- FALSE
    }
    out$notes <- c(out$notes,
                   "local_memory_reserved_estimate: the driver's local-memory reservation for the pair kernels, estimated",
                   "the buffers named 'hessian' exist only while the device computes an exact Hessian")
  }
  if (is.na(out$fits) && !(backend == "cuda" && is.na(out$device_budget))) {
    out$fits <- if (is.na(host_avail)) NA else out$total_host <= host_avail
  }
  out$verdict <- .plan_verdict(out)
  structure(out, class = "iclv_memory_plan")
}

# ---- a guard for iclv() and iclv_loglik() -----------------------------------

# Refuses, before anything is allocated, an engine whose planned host memory
# (the CPU engine's buffers and one evaluation's outputs) exceeds the memory
# the host has available now (MemAvailable; no check where unknown).
# compiled: the compiled list (.iclv_compile()$c); spec: .draws_spec();
# n_threads: as in iclv_control() (0: the OpenMP default).
# Returns the planned bytes invisibly; errors with iclv_error_memory (and
# with the C boundary's classed error for a malformed compiled list).
.memory_guard <- function(compiled, spec, n_threads = 0L) {
  avail <- .host_available_bytes()
  if (is.na(avail)) return(invisible(NA_real_))
  pl <- .engine_plan(compiled, spec, "cpu", n_threads = n_threads)
  bufs <- c(pl$engine, pl$outputs)
  need <- sum(bufs)
  if (need > avail) {
    big <- names(which.max(bufs))
    threads <- pl$n_threads
    iclv_abort("memory", sprintf(paste0(
      "the CPU engine would need %s of host memory (%d individuals, %d draws, %d parameters, ",
      "%d thread%s; largest buffer %s: %s), but only %s are available; use fewer draws or threads ",
      "(iclv_memory_plan() lists every buffer)"),
      .format_bytes(need), as.integer(compiled$n_ind), as.integer(spec$n_draws),
      as.integer(compiled$n_par), threads, if (threads == 1L) "" else "s", big,
      .format_bytes(max(bufs)), .format_bytes(avail)))
  }
  invisible(need)
}

# ---- environment ----------------------------------------------------------

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
