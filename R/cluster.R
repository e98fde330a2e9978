# Scale-out: the engine of one fit sharded over the workers of an R
# `parallel` cluster (PSOCK over ssh, snow/Rmpi MPI, parallelly's clusters).
#
# The simulated log-likelihood is a sum over individuals, so a "cluster
# engine" splits the individuals into contiguous shards, ships each worker
# its shard ONCE (the compiled data of its individuals and the draw design
# with an individual offset, never generated draws), creates one ordinary
# engine per worker (.engine_new() there, kept in the worker's
# .cluster_worker_engines under a unique key), and per evaluation sends only
# the parameters and gathers each shard's part. R/engine.R dispatches
# .engine_eval(), .engine_predict(), .engine_memory() and .engine_release()
# here when the engine is a cluster engine, so every entry point (iclv(),
# iclv_loglik(), predict(), the memory plan) gets the cluster the same way.
#
# Reduction order (fixed, whatever order the answers arrive in): the answers
# are stored by shard, shard s holding individuals first_s..last_s with
# first_1 = 1 and first_{s+1} = last_s + 1, and are combined in shard order
# 1, 2, ..., S:
#   - loglik_i and scores are concatenated in shard order, which is the
#     individuals' index order; the log-likelihood and (by default) the
#     gradient are then summed over individuals in index order with plain
#     double additions starting from 0 (.sum_rows_in_order), exactly as
#     iclv_cpu_eval() sums them: both are bit-identical to the
#     single-process CPU engine. (The CUDA engine sums its individuals with
#     a fixed tree, so against one CUDA process only loglik_i and the scores
#     are bit-identical; the sums differ by rounding.)
#     Option iclv.cluster_reduce = "shard" asks each worker for its
#     gradient instead of its scores, which moves P doubles per shard
#     instead of n_s * P; the shards' gradients are then added in shard
#     order and differ from the single process by rounding, ~1e-15
#     relative.
#   - the Hessian: each shard returns its sum over its individuals (in index
#     order, engine.c); the shards' matrices are added in shard order.
#     engine.c adds the individual Hessians one after another over all
#     individuals, so this regrouping differs from the single process by
#     rounding only: about 1e-15 relative, well within the 1e-10 the tests
#     require. Shipping every individual's P x P Hessian to make it
#     bit-identical would cost n * P^2 doubles per evaluation.
#   - predictions: probabilities and posterior moments are per row and per
#     individual (concatenated, bit-identical); the component
#     log-likelihoods are sums, added in shard order (rounding only).
#
# Failures: every worker-side function returns list(ok, value | message,
# class) and never raises, so the master keeps the class of a worker's
# error. An error of the engine at given parameters (iclv_error_numeric,
# iclv_error_input: what the optimizer's line search backs off from) leaves
# every engine usable and is raised with classes c("iclv_error_cluster",
# <the worker's class>, ...), the message naming the worker and the shard.
# Anything else (a worker that died, did not answer within the timeout, lost
# its engine, or failed to set up) ends the cluster engine: the engines of
# the other workers are released and an iclv_error_cluster naming the worker
# and shard is raised. Timeouts use socketSelect() on the nodes' sockets
# (PSOCK, SOCK); for other node types (MPI) a receive waits as long as the
# transport does.

#' Running iclv on a cluster of R processes
#'
#' [iclv()], [iclv_loglik()], [predict.iclv()] and [iclv_memory_plan()]
#' take `cluster = cl`, any cluster of the `parallel` package: made by
#' [parallel::makePSOCKcluster()] (local processes, or nodes over ssh), by
#' `parallel::makeCluster(type = "MPI")` (snow and Rmpi, e.g. under Slurm) or
#' by the `parallelly` package. The simulated log-likelihood is a sum over
#' individuals, so iclv splits the individuals into contiguous shards, one
#' per worker, balanced by work (the indicator observations and choice rows
#' of each individual, times the draws), and ships each worker its shard once:
#' the compiled data of its individuals and the draw design (never generated
#' draws; a user array of draws is sliced). Each worker keeps one engine for
#' the whole fit; an evaluation sends only the parameters and gathers each
#' shard's log-likelihoods, scores and, when asked, Hessian.
#'
#' @section Workers:
#' Every worker loads iclv from the master's library (then from its own
#' library paths) and must have the same version (an `iclv_error_cluster`
#' names the worker otherwise). With `backend = "cuda"` every worker uses a
#' GPU of its host: the workers of a host, in cluster order, take devices
#' `(d + i - 1) mod n_devices` (i = 1, 2, ...; d = `iclv_control(device)`,
#' 0 by default); the engine layer also accepts one device per worker.
#' `backend = "auto"` picks CUDA only when every worker has a usable device.
#' Threads: each worker's engine uses `iclv_control(n_threads)` threads (0:
#' the worker's OpenMP default); with several workers on one host, set it so
#' that workers times threads does not exceed the host's cores.
#'
#' @section Results:
#' The results do not depend on the cluster. The log-likelihood, the
#' per-individual log-likelihoods, the gradient, the scores and the
#' predictions are bit-identical to those of one process: the draws of an
#' individual are a function of its index in the whole data (the shard
#' carries an offset), and the master adds the individuals' contributions in
#' index order as the CPU engine does (the CUDA engine adds them with a
#' fixed tree, so on GPUs the sums equal one process's up to rounding). The Hessian is the sum of the shards'
#' Hessians in shard order, equal to one process's up to rounding (about
#' 1e-15 relative). `options(iclv.cluster_reduce = "shard")` moves each
#' worker's gradient instead of its scores (P instead of n_s x P doubles per
#' evaluation, for very many individuals), at the price of rounding-level
#' differences in the gradient.
#'
#' @section Failures:
#' A worker that dies, cannot be reached, does not answer within
#' `getOption("iclv.cluster_timeout", 3600)` seconds, or fails to build its
#' engine raises an error of class `iclv_error_cluster` naming the worker,
#' its shard and its individuals; the engines of the other workers are
#' released. An error of the likelihood at given parameters on one shard
#' (e.g. a non-finite log-likelihood) is raised with both classes
#' (`iclv_error_cluster` and, e.g., `iclv_error_numeric`), naming the worker
#' and the individual by its index in the whole data; the engines stay, as
#' the optimizer's line search backs off from such points.
#'
#' @name iclv_cluster
#' @seealso [iclv()], [iclv_memory_plan()], `vignette("iclv-gpu")`
#' @examples
#' \donttest{
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 40, n_tasks = 3, seed = 1)
#' cl <- parallel::makePSOCKcluster(2)
#' one <- iclv_loglik(m, d, p, draws = iclv_draws("halton", 50))
#' two <- iclv_loglik(m, d, p, draws = iclv_draws("halton", 50), cluster = cl)
#' identical(one$loglik, two$loglik)
#' parallel::stopCluster(cl)
#' }
NULL

# ---- shards ----------------------------------------------------------------

# .cluster_shards(cc, n_workers): contiguous shards of the individuals of the
# compiled model `cc`, balanced by work. The work of individual n is taken
# as proportional to (1 + indicator observations + choice rows) of n, times
# the number of draws (the same R for everyone, so it cancels): the pair
# cost grows with the rows and observations of an individual. At most
# min(n_workers, N) shards, none empty. Returns a data.frame(shard, first,
# last (1-based, inclusive), n_ind, weight (share of the total work)).
.cluster_shards <- function(cc, n_workers) {
  N <- as.integer(cc$n_ind)
  S <- min(as.integer(n_workers), N)
  w <- 1 + as.double(diff(cc$obs_ptr)) + as.double(diff(cc$row_ptr))
  cw <- cumsum(w)
  total <- cw[N]
  last <- integer(S)
  last[S] <- N
  prev <- 0L
  for (s in seq_len(S - 1L)) {
    target <- total * s / S
    k <- findInterval(target, cw) # individuals whose cumulative work <= target
    if (k < N && abs(cw[k + 1L] - target) < abs(target - if (k > 0L) cw[k] else 0)) k <- k + 1L
    k <- max(k, prev + 1L)          # every shard non-empty ...
    k <- min(k, N - (S - s))        # ... and room left for the shards after it
    last[s] <- k
    prev <- k
  }
  first <- c(1L, last[-S] + 1L)
  wt <- (cw[last] - c(0, cw[last[-S]])) / total
  data.frame(shard = seq_len(S), first = first, last = last, n_ind = last - first + 1L,
             weight = wt)
}

# The elements of the compiled list (src/iclv_model.h) by how a shard takes
# them. .compiled_slice() refuses a list with an element not named here, so
# that an element added to the model later cannot be shipped unsliced.
.slice_model_fields <- c("n_lv", "n_par", "n_cov", "n_indic", "n_alt", "n_xcol", "choice_type",
                         "lv_order", "st_ptr", "st_par", "st_src_type", "st_src",
                         "ind_type", "ind_ncat", "ind_thr", "ind_icpt", "ind_sd",
                         "ind_load_ptr", "ind_load_lv", "ind_load_par",
                         "ut_ptr", "ut_par", "ut_col", "ut_lv", "n_nest", "nest_of", "nest_par",
                         "n_ocat", "ocat_thr", "ocat_logit",
                         "n_tape", "tape_nv", "tape_depth", "tape_ptr", "tape_op", "tape_arg",
                         "n_tape_const", "tape_const", "tape_var_ptr", "tape_var", "tape_nslot",
                         "tape_pptr", "tape_pop", "tape_parg")
.slice_data_fields <- c("n_ind", "n_obs", "n_rows", "n_avail", "cov", "obs_ptr", "obs_ind",
                        "obs_val", "row_ptr", "y", "avail", "X", "weight", "n_mult", "mult_sign", "mult_par")

# .compiled_slice(cc, first, last): the compiled model of individuals
# first..last (1-based, inclusive) of `cc`: their covariates, indicator
# observations and choice rows, with CSR pointers rebased to 0; the model
# structure unchanged. Evaluated with the draw design of
# .draws_spec_slice(), individual i of the slice is individual first - 1 + i
# of the whole, with the same data and draws.
.compiled_slice <- function(cc, first, last) {
  unknown <- setdiff(names(cc), c(.slice_model_fields, .slice_data_fields))
  if (length(unknown)) {
    iclv_abort("cluster", sprintf(
      "the compiled model has element(s) %s that R/cluster.R does not know how to split into shards",
      iclv_quote(unknown)))
  }
  a <- as.double(first) - 1 # 0-based [a, b)
  b <- as.double(last)
  o0 <- as.double(cc$obs_ptr[a + 1]); o1 <- as.double(cc$obs_ptr[b + 1])
  r0 <- as.double(cc$row_ptr[a + 1]); r1 <- as.double(cc$row_ptr[b + 1])
  span <- function(from, len) if (len > 0) from + seq_len(len) else integer(0)
  out <- cc
  out$n_ind <- as.integer(b - a)
  out$cov <- cc$cov[span(a * cc$n_cov, (b - a) * cc$n_cov)]
  out$obs_ptr <- cc$obs_ptr[(a + 1):(b + 1)] - cc$obs_ptr[a + 1]
  out$obs_ind <- cc$obs_ind[span(o0, o1 - o0)]
  out$obs_val <- cc$obs_val[span(o0, o1 - o0)]
  out$n_obs <- as.integer(o1 - o0)
  out$row_ptr <- cc$row_ptr[(a + 1):(b + 1)] - cc$row_ptr[a + 1]
  out$n_rows <- as.integer(r1 - r0)
  out$y <- cc$y[span(r0, r1 - r0)]
  out$X <- cc$X[span(r0 * cc$n_xcol, (r1 - r0) * cc$n_xcol)]
  if (!is.null(cc$weight)) out$weight <- cc$weight[(a + 1):b]
  if (cc$n_avail > 0L) {
    out$avail <- cc$avail[span(r0 * cc$n_alt, (r1 - r0) * cc$n_alt)]
    out$n_avail <- as.integer((r1 - r0) * cc$n_alt)
  }
  if ((cc$n_mult %||% 0L) > 0L) { # best-worst row multipliers (R/rank.R)
    out$mult_sign <- cc$mult_sign[span(r0, r1 - r0)]
    out$mult_par <- cc$mult_par[span(r0, r1 - r0)]
    out$n_mult <- as.integer(r1 - r0)
  }
  out
}

# .draws_spec_slice(spec, first, last): the draw design of individuals
# first..last (1-based) of `spec`: generated types keep their parameters and
# get the individual offset (src/draws.h), a user array is sliced.
.draws_spec_slice <- function(spec, first, last) {
  out <- spec
  out$n_ind <- as.integer(last - first + 1L)
  if (identical(spec$type, .draws_codes[["user"]])) {
    out$user <- spec$user[first:last, , , drop = FALSE]
    out$ind_offset <- 0L
  } else {
    out$ind_offset <- as.integer((spec$ind_offset %||% 0L) + first - 1L)
  }
  out
}

# ---- settings ----------------------------------------------------------------

# Seconds one round (setup, one evaluation, one release) may take before the
# workers that have not answered are declared lost:
# getOption("iclv.cluster_timeout"), default one hour.
.cluster_timeout <- function() {
  t <- getOption("iclv.cluster_timeout", 3600)
  if (!is.numeric(t) || length(t) != 1L || is.na(t) || t <= 0) {
    iclv_abort("control", sprintf("option 'iclv.cluster_timeout' must be one number of seconds > 0 (got %s)",
                                  paste(format(t), collapse = ", ")))
  }
  as.double(t)
}

# How the gradient is reduced: "exact" (scores, bit-identical) or "shard".
.cluster_reduce <- function() {
  r <- getOption("iclv.cluster_reduce", "exact")
  if (!is.character(r) || length(r) != 1L || !(r %in% c("exact", "shard"))) {
    iclv_abort("control", sprintf("option 'iclv.cluster_reduce' must be \"exact\" or \"shard\" (got %s)",
                                  paste(format(r), collapse = ", ")))
  }
  r
}

.check_cluster <- function(cluster) {
  if (!inherits(cluster, "cluster") || length(cluster) < 1L) {
    iclv_abort("control", paste0("'cluster' must be a cluster made by parallel::makeCluster(), ",
                                 "parallel::makePSOCKcluster(), snow or parallelly, with at least one worker"))
  }
  invisible(cluster)
}

# ---- transport -------------------------------------------------------------
# `parallel` exports no way to send one call to one node and to wait for it
# with a timeout; its internal sendCall()/recvResult() are the transport
# that clusterCall() itself uses, for every node type (PSOCK, SOCK, MPI).
.parallel_fun <- function(name) get(name, envir = asNamespace("parallel"), inherits = FALSE)

# The socket of a node, or NULL (MPI and other transports).
.node_socket <- function(node) {
  con <- if (is.list(node) || is.environment(node)) node[["con"]] else NULL
  if (inherits(con, "sockconn")) con else NULL
}

.shard_label <- function(ce, s) {
  sh <- ce$shards
  sprintf("worker %d (shard %d of %d%s%s)", sh$worker[s], s, nrow(sh),
          if (!is.null(sh$first) && !is.na(sh$first[s])) sprintf(": individuals %d-%d", sh$first[s], sh$last[s]) else "",
          if (!is.null(sh$host) && !is.na(sh$host[s])) paste0(", host ", sh$host[s]) else "")
}

# parallel's sendCall(node, fun, args, tag). For a socket node the message
# is first written, by parallel's own sendCall, into a raw connection
# standing in for the socket and then written to the socket in one call: R
# streams a serialisation to a socket in 4 KB pieces, and TCP's Nagle
# algorithm with the receiver's delayed ACK then holds every message longer
# than that for about 40 ms (measured: 45 ms per round trip with 500
# doubles, 0.8 ms in one write; bench/RESULTS.md).
.send_call <- function(node, fun, args, tag) {
  send <- .parallel_fun("sendCall")
  con <- .node_socket(node)
  if (is.null(con)) return(send(node, fun, args, tag = tag))
  buf <- rawConnection(raw(0), "wb")
  on.exit(close(buf))
  stand_in <- node
  stand_in$con <- buf
  send(stand_in, fun, args, tag = tag)
  writeBin(rawConnectionValue(buf), con)
  invisible(NULL)
}

# A function that calls iclv's internal function `name` on the worker. It
# lives in the base namespace, so that sending it costs a few hundred bytes
# (a function of iclv's namespace travels with its byte code, ~5 KB); it
# finds the function in the worker's loaded iclv.
.worker_stub <- function(name) {
  eval(bquote(function(...) get(.(name), envir = asNamespace("iclv"), inherits = FALSE)(...)), baseenv())
}

# Sends fun(args_of(s)) to the worker of each shard in `which`, tagged with
# a tag new to this round (returned); `fun` is a function or the name of a
# worker-side function of iclv. A send that fails (the worker is gone) is
# recorded in ce$lost with its message.
.cluster_send <- function(ce, which, fun, args_of) {
  if (is.character(fun)) fun <- .worker_stub(fun)
  ce$round <- (ce$round %||% 0L) + 1L
  tag <- sprintf("%s#%d", ce$key, ce$round)
  ce$sent <- rep(FALSE, nrow(ce$shards))
  for (s in which) {
    node <- ce$cl[[ce$shards$worker[s]]]
    ok <- tryCatch({
      .send_call(node, fun, args_of(s), tag)
      TRUE
    }, error = function(e) conditionMessage(e))
    if (isTRUE(ok)) {
      ce$sent[s] <- TRUE
    } else {
      ce$lost[s] <- sprintf("could not be reached (%s)", ok)
    }
  }
  tag
}

# Receives the answer to `tag` from each shard in `which` that was sent the
# call, with a common deadline. Answers with another tag are answers to
# earlier calls whose wait was interrupted (Ctrl-C, a failure elsewhere):
# they are read and dropped, so that an interrupted exchange never shifts
# the answers of the next one. Returns a list indexed by shard (NULL where
# nothing was received); a worker whose connection fails or that does not
# answer in time gets its reason in ce$lost.
.cluster_receive <- function(ce, which, timeout, tag) {
  recv <- .parallel_fun("recvData")
  out <- vector("list", nrow(ce$shards))
  wait <- which[ce$sent[which] & is.na(ce$lost[which])]
  deadline <- proc.time()[["elapsed"]] + timeout
  # reads one message of shard s; TRUE when s is done (answered or lost)
  take <- function(s) {
    node <- ce$cl[[ce$shards$worker[s]]]
    v <- tryCatch(recv(node), error = function(e) e)
    if (inherits(v, "error")) {
      ce$lost[s] <- sprintf("died or closed its connection (%s)", conditionMessage(v))
      return(TRUE)
    }
    if (!identical(v$tag, tag)) return(FALSE) # a stale answer: dropped
    out[s] <<- list(v$value)
    TRUE
  }
  # transports without a socket to watch: receive in shard order, blocking
  for (s in wait[vapply(wait, function(s) is.null(.node_socket(ce$cl[[ce$shards$worker[s]]])), NA)]) {
    while (!take(s)) NULL
  }
  wait <- wait[vapply(wait, function(s) !is.null(.node_socket(ce$cl[[ce$shards$worker[s]]])), NA)]
  while (length(wait)) {
    left <- deadline - proc.time()[["elapsed"]]
    ready <- if (left > 0) {
      socketSelect(lapply(wait, function(s) .node_socket(ce$cl[[ce$shards$worker[s]]])),
                   write = FALSE, timeout = left)
    } else {
      rep(FALSE, length(wait))
    }
    if (!any(ready)) {
      for (s in wait) {
        ce$lost[s] <- sprintf(paste0("did not answer within %g seconds (option iclv.cluster_timeout); ",
                                     "it may still be computing: stop the cluster with parallel::stopCluster() ",
                                     "before using it again"), timeout)
      }
      break
    }
    done <- vapply(wait[ready], take, NA)
    wait <- setdiff(wait, wait[ready][done])
  }
  out
}

# One round: fun(args_of(s)) on the worker of every live shard, all in
# parallel; returns the values (list by shard). Raises iclv_error_cluster
# (fatal: releases the other engines) for a lost worker or a worker-side
# failure marked fatal; re-raises an evaluation error of the engine with the
# worker's class added (not fatal), the first in shard order.
.cluster_round <- function(ce, fun, args_of) {
  if (isTRUE(ce$released)) {
    iclv_abort("cluster", "this cluster engine has been released (its workers' engines are gone)")
  }
  all <- seq_len(nrow(ce$shards))
  tag <- .cluster_send(ce, all, fun, args_of)
  res <- .cluster_receive(ce, all, ce$timeout, tag)
  lost <- which(!is.na(ce$lost))
  if (length(lost)) {
    s <- lost[1]
    .cluster_fail(ce, sprintf("%s %s", .shard_label(ce, s), ce$lost[s]), s)
  }
  for (s in all) {
    r <- res[[s]]
    if (inherits(r, "try-error") || !is.list(r) || is.null(r$ok)) {
      # an error outside iclv's worker functions (e.g. the call could not
      # be unserialised there)
      msg <- if (inherits(r, "try-error")) as.character(r) else "answered something that is not an iclv result"
      .cluster_fail(ce, sprintf("%s failed: %s", .shard_label(ce, s), trimws(msg)), s)
    }
  }
  failed <- all[!vapply(res, function(r) isTRUE(r$ok), NA)]
  if (length(failed) == length(all) && length(all) > 1L &&
      !any(vapply(res, function(r) isTRUE(r$fatal), NA)) &&
      length(unique(vapply(res, `[[`, "", "message"))) == 1L) {
    # every shard refuses alike (e.g. parameters out of range): a property
    # of the call, not of a worker; raised as one process would raise it
    .cluster_stop(res[[1]]$message, res[[1]]$class)
  }
  for (s in all) {
    r <- res[[s]]
    if (!isTRUE(r$ok)) {
      msg <- sprintf("%s: %s", .shard_label(ce, s), r$message)
      if (isTRUE(r$fatal)) .cluster_fail(ce, msg, s, class = r$class)
      .cluster_stop(msg, r$class, ce$shards$worker[s], s)
    }
  }
  lapply(res, `[[`, "value")
}

# An iclv_error_cluster that also carries the iclv class of the worker's
# error (e.g. iclv_error_numeric), with fields `worker` and `shard`.
.cluster_stop <- function(message, worker_class = NULL, worker = NA_integer_, shard = NA_integer_) {
  extra <- setdiff(grep("^iclv_error_", worker_class %||% character(), value = TRUE), "iclv_error_cluster")
  cnd <- structure(
    class = c("iclv_error_cluster", extra, "iclv_error", "error", "condition"),
    list(message = message, call = NULL, worker = as.integer(worker), shard = as.integer(shard))
  )
  stop(cnd)
}

# Ends the cluster engine after a fatal failure of shard `s`: the engines of
# the other workers are released, then the error is raised.
.cluster_fail <- function(ce, message, s, class = NULL) {
  .cluster_release(ce)
  .cluster_stop(message, class, ce$shards$worker[s], s)
}

# ---- worker side -------------------------------------------------------------
# These run on the workers (called by name through the cluster). They never
# raise: the answer is list(ok = TRUE, value) or list(ok = FALSE, message,
# class, fatal).

# The engines of this process when it serves as a cluster worker, by key.
.cluster_worker_engines <- new.env(parent = emptyenv())

.cluster_worker_answer <- function(expr, fatal = TRUE, offset = NULL) {
  tryCatch(list(ok = TRUE, value = expr),
           error = function(e) list(ok = FALSE, message = .cluster_renumber(conditionMessage(e), offset),
                                    class = class(e), fatal = fatal))
}

# The engine's messages number individuals, indicator observations and
# choice rows within the shard ("individual 5", "observation 12", "row 3");
# the master's user knows them by their index in the whole data: `offset`
# is c(individual =, observation =, row =), the shard's first of each,
# 0-based.
.cluster_renumber <- function(message, offset) {
  for (what in names(offset)) {
    if (!offset[[what]]) next
    m <- gregexpr(paste0("\\b", what, " [0-9]+"), message, perl = TRUE)
    regmatches(message, m) <- lapply(regmatches(message, m), function(x) {
      sprintf("%s %.0f", what, as.double(sub(paste0(what, " "), "", x, fixed = TRUE)) + offset[[what]])
    })
  }
  message
}

# The offsets of .cluster_renumber() for individuals first..last of `cc`.
.shard_offsets <- function(cc, first) {
  c(individual = first - 1, observation = cc$obs_ptr[first], row = cc$row_ptr[first])
}

.cluster_worker_info <- function(cuda) {
  .cluster_worker_answer({
    av <- if (isTRUE(cuda)) iclv_cuda_available() else TRUE
    list(host = Sys.info()[["nodename"]], pid = Sys.getpid(),
         n_devices = if (isTRUE(cuda)) nrow(iclv_devices()) else 0L,
         cuda_reason = if (isTRUE(av)) "" else attr(av, "reason") %||% "no usable device")
  })
}

.cluster_worker_new <- function(key, compiled, spec, backend, n_threads, device, device_memory, offset) {
  .cluster_worker_answer({
    engine <- .engine_new(compiled, spec, backend, n_threads = n_threads, device = device,
                          device_memory = device_memory)
    assign(key, list(engine = engine, offset = offset), envir = .cluster_worker_engines)
    .engine_memory(engine)
  }, offset = offset)
}

.cluster_worker_get <- function(key) {
  if (!exists(key, envir = .cluster_worker_engines, inherits = FALSE)) {
    stop(sprintf("this worker holds no engine %s (was it released, or the worker restarted?)", key))
  }
  get(key, envir = .cluster_worker_engines, inherits = FALSE)
}

# what = c(gradient, scores, hessian, use_cpu, shard_gradient)
.cluster_worker_eval <- function(key, theta, what) {
  w <- .cluster_worker_answer(.cluster_worker_get(key))
  if (!w$ok) return(w)
  w <- w$value
  .cluster_worker_answer({
    ev <- .engine_eval(w$engine, theta, gradient = what[1], scores = what[2], hessian = what[3],
                       use_cpu = what[4])
    list(loglik_i = ev$loglik_i, gradient = if (what[5]) ev$gradient, scores = ev$scores,
         hessian = ev$hessian)
  }, fatal = FALSE, offset = w$offset)
}

.cluster_worker_predict <- function(key, theta) {
  w <- .cluster_worker_answer(.cluster_worker_get(key))
  if (!w$ok) return(w)
  w <- w$value
  .cluster_worker_answer(.engine_predict(w$engine, theta), fatal = FALSE, offset = w$offset)
}

.cluster_worker_memory <- function(key) {
  .cluster_worker_answer(.engine_memory(.cluster_worker_get(key)$engine))
}

# Bootstrap refits of a batch of resamples (R/vcov.R, .bootstrap_refits).
.cluster_worker_bootstrap <- function(picks, job) {
  .cluster_worker_answer(.bootstrap_refits(picks, job))
}

# Releases the engines of `keys` that this worker holds; returns how many.
.cluster_worker_release <- function(keys) {
  .cluster_worker_answer({
    have <- intersect(keys, ls(.cluster_worker_engines, all.names = TRUE))
    for (k in have) {
      .engine_release(get(k, envir = .cluster_worker_engines)$engine)
      rm(list = k, envir = .cluster_worker_engines)
    }
    gc(verbose = FALSE)
    length(have)
  })
}

# Runs on a worker before anything of iclv is known there: loads iclv from
# the master's library (then the worker's own libraries). Its environment is
# the base namespace, so that sending it does not need iclv on the worker.
.cluster_boot <- function(lib) {
  ok <- tryCatch({
    loadNamespace("iclv", lib.loc = unique(c(lib, .libPaths())))
    TRUE
  }, error = function(e) conditionMessage(e))
  if (!isTRUE(ok)) return(list(ok = FALSE, message = paste("cannot load iclv:", ok)))
  list(ok = TRUE, version = as.character(getNamespaceVersion("iclv")),
       path = getNamespaceInfo("iclv", "path"))
}

# ---- master side -------------------------------------------------------------

# Cluster engines whose finalizer ran: their keys are released on their
# cluster the next time a cluster engine is created or released on it (a
# finalizer runs inside garbage collection, possibly in the middle of
# another exchange with the same workers, so it must not talk to them).
.cluster_release_queue <- new.env(parent = emptyenv())

.cluster_engine_finalize <- function(ce) {
  if (isTRUE(ce$released)) return(invisible(NULL))
  live <- which(is.na(ce$lost))
  if (length(live)) {
    assign(ce$key, list(cl = ce$cl, workers = ce$shards$worker[live]), envir = .cluster_release_queue)
  }
  invisible(NULL)
}

# Releases queued keys whose cluster is `cl` (same nodes).
.cluster_release_queued <- function(cl, timeout) {
  keys <- ls(.cluster_release_queue, all.names = TRUE)
  for (k in keys) {
    q <- get(k, envir = .cluster_release_queue)
    same <- length(q$cl) == length(cl) && all(vapply(seq_along(cl), function(i) identical(q$cl[[i]], cl[[i]]), logical(1)))
    if (!same) next
    rm(list = k, envir = .cluster_release_queue)
    shards <- data.frame(shard = seq_along(q$workers), worker = q$workers, first = NA_integer_,
                         last = NA_integer_)
    tmp <- new.env(parent = emptyenv())
    tmp$cl <- cl
    tmp$shards <- shards
    tmp$key <- k
    tmp$lost <- rep(NA_character_, nrow(shards))
    tag <- .cluster_send(tmp, seq_len(nrow(shards)), ".cluster_worker_release", function(s) list(k))
    .cluster_receive(tmp, seq_len(nrow(shards)), timeout, tag)
  }
  invisible(NULL)
}

.cluster_key_counter <- new.env(parent = emptyenv())

# .cluster_connect(cluster, shards, cuda): the skeleton of a cluster engine
# (an environment) over the first nrow(shards) workers (all workers when
# shards is NULL; shards: .cluster_shards()): iclv loaded
# there from the master's library (same version, checked), and per shard
# the worker's host and pid and, with cuda = TRUE, its device count and
# whether CUDA is usable there (with the reason when not). Nothing is
# allocated on the workers yet (ce$released is TRUE until engines exist).
.cluster_connect <- function(cluster, shards = NULL, cuda = FALSE) {
  .check_cluster(cluster)
  timeout <- .cluster_timeout()
  S <- if (is.null(shards)) length(cluster) else nrow(shards)
  n <- (.cluster_key_counter$n %||% 0L) + 1L
  .cluster_key_counter$n <- n
  ce <- new.env(parent = emptyenv())
  ce$cl <- cluster
  ce$shards <- data.frame(shard = seq_len(S), worker = seq_len(S), first = NA_integer_,
                          last = NA_integer_, n_ind = NA_integer_, host = NA_character_,
                          pid = NA_integer_, device = NA_integer_, stringsAsFactors = FALSE)
  ce$key <- sprintf("iclv-%s-%d-%d-%s", Sys.info()[["nodename"]], Sys.getpid(), n,
                    format(floor(as.numeric(Sys.time()) * 1e6), scientific = FALSE))
  if (!is.null(shards)) ce$shards[c("first", "last", "n_ind")] <- shards[c("first", "last", "n_ind")]
  ce$lost <- rep(NA_character_, S)
  ce$released <- TRUE
  ce$timeout <- timeout
  ce$reduce <- .cluster_reduce()
  class(ce) <- "iclv_cluster_engine"

  # every worker loads the master's iclv. Until this has succeeded nothing
  # of iclv's namespace may be sent to a worker (it could not be
  # unserialised there), so failures here only raise.
  lib <- dirname(getNamespaceInfo("iclv", "path"))
  boot <- .cluster_boot
  environment(boot) <- baseenv()
  all <- seq_len(S)
  tag <- .cluster_send(ce, all, boot, function(s) list(lib))
  res <- .cluster_receive(ce, all, timeout, tag)
  mine <- as.character(getNamespaceVersion("iclv"))
  for (s in all) {
    r <- res[[s]]
    why <- if (!is.na(ce$lost[s])) ce$lost[s] else
      if (inherits(r, "try-error")) paste("failed:", trimws(as.character(r))) else
      if (!isTRUE(r$ok)) r$message else
      if (!identical(r$version, mine))
        sprintf("has iclv %s (from %s), the master iclv %s (from %s): install the same version on every node",
                r$version, r$path, mine, getNamespaceInfo("iclv", "path"))
    if (!is.null(why)) .cluster_stop(sprintf("%s %s", .shard_label(ce, s), why), worker = s, shard = s)
  }
  ce$released <- FALSE # from here on, a failure releases what exists
  info <- .cluster_round(ce, ".cluster_worker_info", function(s) list(cuda))
  ce$shards$host <- vapply(info, `[[`, "", "host")
  ce$shards$pid <- vapply(info, function(x) as.integer(x$pid), 1L)
  ce$n_devices <- vapply(info, function(x) as.integer(x$n_devices), 1L)
  ce$cuda_reason <- vapply(info, function(x) as.character(x$cuda_reason), "")
  ce$released <- TRUE
  ce
}

# Device of each shard's worker. `device`: NULL or one ordinal d: worker i
# of a host (i counting that host's workers in cluster order, from 1) uses
# device (d + i - 1) mod (the host's device count); or one ordinal per shard.
.cluster_device_map <- function(hosts, n_devices, device) {
  S <- length(hosts)
  if (!is.null(device) && !(length(device) %in% c(1L, S))) {
    iclv_abort("control", sprintf("'device' must be one device ordinal or one per shard (%d); got %d values",
                                  S, length(device)))
  }
  if (length(device) == S && S > 1L) return(as.integer(device))
  d0 <- if (is.null(device)) 0L else as.integer(device)
  rank <- stats::ave(seq_len(S), hosts, FUN = seq_along) - 1L
  as.integer(ifelse(n_devices > 0L, (d0 + rank) %% pmax(n_devices, 1L), d0))
}

# The backend on a cluster (the master's own devices do not matter):
# "cpu"; "cuda" when every worker has a usable device (else an
# iclv_error_cluster, also of class iclv_error_cuda, naming the first worker
# without one); "auto" is "cuda" when every worker has one, else "cpu",
# saying why. The list of .resolve_backend() (device NA: one per worker).
.cluster_resolve_backend <- function(cluster, backend = "auto") {
  if (!is.character(backend) || length(backend) != 1L || is.na(backend) ||
      !(backend %in% c("auto", "cpu", "cuda"))) {
    return(.resolve_backend(backend)) # its error
  }
  if (backend == "cpu") {
    b <- .resolve_backend("cpu")
    b$reason <- sprintf("%s (on a cluster of %d workers)", b$reason, length(cluster))
    return(b)
  }
  ce <- .cluster_connect(cluster, NULL, cuda = TRUE)
  bad <- which(nzchar(ce$cuda_reason))
  if (length(bad) && backend == "cuda") {
    .cluster_stop(sprintf("%s: backend = \"cuda\" was requested, but no CUDA device is usable there: %s",
                          .shard_label(ce, bad[1]), ce$cuda_reason[bad[1]]),
                  "iclv_error_cuda", bad[1], bad[1])
  }
  if (length(bad)) {
    return(list(name = "cpu", device = NA_integer_, device_name = NA_character_, requested = "auto",
                reason = sprintf("auto: chose cpu because worker %d has no usable CUDA device (%s)",
                                 bad[1], ce$cuda_reason[bad[1]])))
  }
  list(name = "cuda", device = NA_integer_, device_name = NA_character_, requested = backend,
       reason = sprintf("%s: every one of the %d workers has a usable CUDA device (one per worker, see fit$memory$workers)",
                        if (backend == "auto") "auto: chose cuda" else "the CUDA backend was requested",
                        length(cluster)))
}

# .cluster_engine_new(): see .engine_new() and .cluster_device_map().
.cluster_engine_new <- function(compiled, draws_spec, backend, n_threads, device, device_memory,
                                cluster) {
  .check_cluster(cluster)
  .cluster_release_queued(cluster, .cluster_timeout())
  shards <- .cluster_shards(compiled, length(cluster))
  cuda <- identical(backend, "cuda")
  ce <- .cluster_connect(cluster, shards, cuda = cuda)
  if (cuda) ce$shards$device <- .cluster_device_map(ce$shards$host, ce$n_devices, device)
  ce$n_par <- as.integer(compiled$n_par)
  ce$n_ind <- as.integer(compiled$n_ind)
  ce$backend <- backend
  # each worker its shard, once; one engine each
  ce$released <- FALSE
  reg.finalizer(ce, .cluster_engine_finalize, onexit = FALSE)
  .cluster_round(ce, ".cluster_worker_new", function(s) {
    list(ce$key, .compiled_slice(compiled, shards$first[s], shards$last[s]),
         .draws_spec_slice(draws_spec, shards$first[s], shards$last[s]),
         backend, n_threads, if (cuda) ce$shards$device[s] else 0L, device_memory,
         .shard_offsets(compiled, shards$first[s]))
  })
  ce
}

# iclv_memory_plan(..., cluster =): the plan of each worker for its shard,
# made on the worker (its threads, its devices). Returns an object of class
# "iclv_memory_plan_cluster": shards (one row per worker), plans (the
# worker's "iclv_memory_plan"), master (bytes the master holds: the compiled
# data of every individual and one evaluation's gathered outputs), verdict.
.cluster_memory_plan <- function(compiled, spec, backend, n_threads, device_memory, device, cluster) {
  shards <- .cluster_shards(compiled, length(cluster))
  S <- nrow(shards)
  ce <- .cluster_connect(cluster, shards, cuda = identical(backend, "cuda"))
  devs <- .cluster_device_map(ce$shards$host, ce$n_devices, device)
  ce$released <- FALSE
  plans <- .cluster_round(ce, ".cluster_worker_plan", function(s) {
    list(.compiled_slice(compiled, shards$first[s], shards$last[s]),
         .draws_spec_slice(spec, shards$first[s], shards$last[s]),
         backend, n_threads, device_memory, devs[s])
  })
  ce$released <- TRUE
  tab <- data.frame(shard = seq_len(S), worker = seq_len(S), host = ce$shards$host,
                    first = shards$first, last = shards$last, n_ind = shards$n_ind,
                    work_share = shards$weight,
                    device = if (identical(backend, "cuda")) devs else NA_integer_,
                    n_threads = vapply(plans, function(p) as.integer(p$n_threads), 1L),
                    total_host = vapply(plans, function(p) as.double(p$total_host), 1),
                    total_device = vapply(plans, function(p) as.double(p$total_device), 1),
                    per_chunk = vapply(plans, function(p) as.integer(p$per_chunk), 1L),
                    n_chunks = vapply(plans, function(p) as.integer(p$n_chunks), 1L),
                    fits = vapply(plans, function(p) as.logical(p$fits), NA),
                    stringsAsFactors = FALSE)
  whole <- .engine_plan(compiled, spec, "cpu", n_threads = 1L)
  master <- c(whole$data, whole$outputs)
  bad <- which(!is.na(tab$fits) & !tab$fits)
  verdict <- if (length(bad)) {
    sprintf("worker %d (%s, individuals %d-%d): %s", bad[1], tab$host[bad[1]], tab$first[bad[1]],
            tab$last[bad[1]], plans[[bad[1]]]$verdict)
  } else if (anyNA(tab$fits)) {
    "unknown on some workers (see their plans)"
  } else {
    sprintf("fits on every worker (largest host total %s)",
            format(structure(max(tab$total_host), class = "object_size"), units = "auto"))
  }
  structure(list(shards = tab, plans = plans, master = master, total_master = sum(master),
                 backend = backend, n_ind = as.integer(compiled$n_ind), n_draws = spec$n_draws,
                 n_params = as.integer(compiled$n_par), verdict = verdict),
            class = "iclv_memory_plan_cluster")
}

.cluster_worker_plan <- function(compiled, spec, backend, n_threads, device_memory, device) {
  .cluster_worker_answer(.memory_plan(compiled, spec, backend, n_threads, device_memory, device))
}

#' @export
print.iclv_memory_plan_cluster <- function(x, ...) {
  fmt <- function(b) ifelse(is.na(b), "-", vapply(b, function(v) format(structure(v, class = "object_size"), units = "auto"), ""))
  cat(sprintf("iclv memory plan on a cluster: %d individuals x %d draws, %d parameters, %s backend, %d shards\n",
              x$n_ind, x$n_draws, x$n_params, x$backend, nrow(x$shards)))
  sh <- x$shards
  show <- data.frame(shard = sh$shard, worker = sh$worker, host = sh$host,
                     individuals = sprintf("%d-%d", sh$first, sh$last), n = sh$n_ind,
                     threads = sh$n_threads, host_mem = fmt(sh$total_host), stringsAsFactors = FALSE)
  if (identical(x$backend, "cuda")) {
    show$device <- sh$device
    show$device_mem <- fmt(sh$total_device)
    show$chunks <- sprintf("%d x %d", sh$n_chunks, sh$per_chunk)
  }
  show$fits <- sh$fits
  print(show, row.names = FALSE)
  cat(sprintf("master: %s (compiled data of every individual, one evaluation's gathered outputs)\n",
              fmt(x$total_master)))
  cat("verdict:", x$verdict, "\n")
  invisible(x)
}

#' @export
as.data.frame.iclv_memory_plan_cluster <- function(x, ...) x$shards

# .cluster_eval(): as .engine_eval(), the same list(loglik, loglik_i,
# gradient, scores, hessian) with the reduction order of the header.
.cluster_eval <- function(ce, theta, gradient = TRUE, scores = FALSE, hessian = FALSE,
                          use_cpu = FALSE) {
  theta <- as.double(theta)
  if (length(theta) != ce$n_par) {
    iclv_abort("input", sprintf("params must be a double vector of length %d", ce$n_par))
  }
  gradient <- isTRUE(gradient); scores <- isTRUE(scores); hessian <- isTRUE(hessian)
  exact <- identical(ce$reduce, "exact")
  what <- c(gradient && !exact, scores || (gradient && exact), hessian, isTRUE(use_cpu),
            gradient && !exact)
  res <- .cluster_round(ce, ".cluster_worker_eval", function(s) list(ce$key, theta, what))
  lli <- unlist(lapply(res, `[[`, "loglik_i"), use.names = FALSE)
  out <- list(loglik = .sum_rows_in_order(lli), loglik_i = lli, gradient = NULL, scores = NULL,
              hessian = NULL)
  S_all <- if (what[2]) do.call(rbind, lapply(res, `[[`, "scores")) else NULL
  if (gradient) {
    out["gradient"] <- list(if (exact) .sum_rows_in_order(S_all) else .add_in_order(lapply(res, `[[`, "gradient")))
  }
  if (scores) out["scores"] <- list(S_all)
  if (hessian) out["hessian"] <- list(.add_in_order(lapply(res, `[[`, "hessian")))
  out
}

# Column sums of x (a vector: its sum) in row order with plain double
# additions from 0, as iclv_cpu_eval() sums over individuals. rowsum()
# accumulates each group in row order in double precision (R's sum() and
# colSums() use long doubles, which would not reproduce the engine's bits).
.sum_rows_in_order <- function(x) {
  x <- as.matrix(x)
  if (nrow(x) == 0L) return(double(ncol(x)))
  s <- rowsum(x, rep.int(1L, nrow(x)), reorder = FALSE)
  if (ncol(s) == 1L) unname(s[1, 1]) else as.double(s[1, ])
}

# x[[1]] + x[[2]] + ... from the left (shard order).
.add_in_order <- function(x) {
  out <- x[[1]]
  for (i in seq_along(x)[-1L]) out <- out + x[[i]]
  out
}

.cluster_predict <- function(ce, theta) {
  res <- .cluster_round(ce, ".cluster_worker_predict", function(s) list(ce$key, as.double(theta)))
  cat_rows <- function(f) do.call(rbind, lapply(res, `[[`, f))
  list(prob = cat_rows("prob"), lv_mean = cat_rows("lv_mean"), lv_sd = cat_rows("lv_sd"),
       comp_ll = .add_in_order(lapply(res, `[[`, "comp_ll")))
}

# .cluster_memory(): the list of .engine_memory() for the worker with the
# largest host peak (what one node must hold), the largest chunking, and
# `workers`: one row per shard (worker, host, pid, shard, first, last,
# n_ind, device, host_peak, device_peak, per_chunk, n_chunks).
.cluster_memory <- function(ce) {
  mem <- .cluster_round(ce, ".cluster_worker_memory", function(s) list(ce$key))
  host_peak <- vapply(mem, function(m) as.double(m$host$peak), 1)
  dev_peak <- vapply(mem, function(m) if (is.null(m$device)) NA_real_ else as.double(m$device$peak), 1)
  big <- which.max(host_peak)
  out <- mem[[big]]
  out$per_chunk <- max(vapply(mem, function(m) as.integer(m$per_chunk), 1L))
  out$n_chunks <- max(vapply(mem, function(m) as.integer(m$n_chunks), 1L))
  sh <- ce$shards
  out$workers <- data.frame(worker = sh$worker, host = sh$host, pid = sh$pid, shard = sh$shard,
                            first = sh$first, last = sh$last, n_ind = sh$n_ind,
                            device = if (identical(ce$backend, "cuda")) sh$device else NA_integer_,
                            host_peak = host_peak, device_peak = dev_peak,
                            per_chunk = vapply(mem, function(m) as.integer(m$per_chunk), 1L),
                            n_chunks = vapply(mem, function(m) as.integer(m$n_chunks), 1L),
                            stringsAsFactors = FALSE)
  out
}

# Releases the engines of every reachable worker; idempotent; never raises
# (it runs in on.exit() and after failures).
.cluster_release <- function(ce) {
  if (isTRUE(ce$released)) return(invisible(NULL))
  ce$released <- TRUE
  try({
    live <- which(is.na(ce$lost))
    tag <- .cluster_send(ce, live, ".cluster_worker_release", function(s) list(ce$key))
    .cluster_receive(ce, live, ce$timeout, tag)
    .cluster_release_queued(ce$cl, ce$timeout)
  }, silent = TRUE)
  invisible(NULL)
}

#' @export
print.iclv_cluster_engine <- function(x, ...) {
  sh <- x$shards
  cat(sprintf("iclv cluster engine: %d individuals in %d shards (%s backend)%s\n", x$n_ind, nrow(sh),
              x$backend, if (isTRUE(x$released)) ", released" else ""))
  print(sh[, intersect(c("shard", "worker", "host", "pid", "first", "last", "n_ind", "device"), names(sh))],
        row.names = FALSE)
  invisible(x)
}
