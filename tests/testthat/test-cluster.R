# The cluster engine (R/cluster.R): shards, slices and draw offsets without a
# cluster; then a 2-worker PSOCK cluster on localhost against one process.

# ---- without a cluster ------------------------------------------------------

test_that("a shard's draws are the whole design's draws of its individuals, for every type", {
  for (ty in c("halton", "scrambled_halton", "sobol", "mlhs", "pseudo")) {
    spec <- iclv:::.draws_spec(iclv_draws(ty, n = 7, seed = 3, skip = 2), 10, 3)
    full <- iclv:::.draws_generate(spec)
    part <- iclv:::.draws_generate(iclv:::.draws_spec_slice(spec, 6L, 9L))
    expect_identical(part, full[6:9, , , drop = FALSE], info = ty)
    # and differ from the first individuals' draws (the offset is used)
    expect_false(isTRUE(all.equal(part, full[1:4, , , drop = FALSE])), info = ty)
  }
  u <- array(stats::rnorm(10 * 4 * 2), c(10, 4, 2))
  spec <- iclv:::.draws_spec(iclv_draws(u), 10, 2)
  sl <- iclv:::.draws_spec_slice(spec, 3L, 5L)
  expect_identical(iclv:::.draws_generate(sl), u[3:5, , , drop = FALSE])
  # a user design with an offset is refused by the C check
  sl$ind_offset <- 2L
  expect_error(iclv:::.draws_generate(sl), class = "iclv_error_input")
  bad <- iclv:::.draws_spec(iclv_draws("halton", 5), 10, 1)
  bad$ind_offset <- -1L
  expect_error(iclv:::.draws_generate(bad), class = "iclv_error_input")
})

test_that("shards are contiguous, non-empty, cover every individual and balance the work", {
  cc <- list(n_ind = 10L, obs_ptr = c(0L, cumsum(rep(2L, 10))),
             row_ptr = c(0L, cumsum(c(10L, rep(1L, 9)))))
  sh <- iclv:::.cluster_shards(cc, 2)
  # work per individual: 1 + 2 observations + rows = 13, then 4 each (total
  # 49): the first shard is individuals 1-4 (work 25, the cumulative sum
  # nearest to half; 1-3 would be 21), not half of the individuals
  expect_equal(sh$first, c(1L, 5L))
  expect_equal(sh$last, c(4L, 10L))
  expect_equal(sum(sh$weight), 1)
  for (S in c(1, 3, 7, 10, 25)) {
    sh <- iclv:::.cluster_shards(cc, S)
    expect_equal(nrow(sh), min(S, 10))
    expect_equal(sh$first, c(1L, utils::head(sh$last, -1) + 1L))
    expect_equal(utils::tail(sh$last, 1), 10L)
    expect_true(all(sh$n_ind >= 1L))
  }
})

# Engines on slices [a, b) reproduce the whole engine's per-individual
# results bit for bit (data and draws of each individual are the same).
slice_matches <- function(cc, spec, theta, cuts) {
  whole <- iclv:::.engine_new(cc, spec, "cpu", n_threads = 1)
  on.exit(iclv:::.engine_release(whole), add = TRUE)
  ref <- iclv:::.engine_eval(whole, theta, gradient = TRUE, scores = TRUE)
  pref <- iclv:::.engine_predict(whole, theta)
  first <- c(1L, utils::head(cuts, -1) + 1L)
  for (i in seq_along(cuts)) {
    a <- first[i]; b <- cuts[i]
    e <- iclv:::.engine_new(iclv:::.compiled_slice(cc, a, b), iclv:::.draws_spec_slice(spec, a, b),
                            "cpu", n_threads = 1)
    ev <- iclv:::.engine_eval(e, theta, gradient = TRUE, scores = TRUE)
    expect_identical(ev$loglik_i, ref$loglik_i[a:b])
    expect_identical(ev$scores, ref$scores[a:b, , drop = FALSE])
    pr <- iclv:::.engine_predict(e, theta)
    expect_identical(pr$lv_mean, pref$lv_mean[a:b, , drop = FALSE])
    if (cc$n_rows > 0L) {
      rows <- (cc$row_ptr[a] + 1L):cc$row_ptr[b + 1L]
      expect_identical(pr$prob, pref$prob[rows, , drop = FALSE])
    }
    iclv:::.engine_release(e)
  }
}

test_that("a compiled slice with the offset draws reproduces the whole engine's individuals", {
  for (ch in c("mnl", "probit", "none")) {
    tm <- tiny_model(ind_type = c("ordered_probit", "normal", "binary_logit", "ordered_logit"),
                     choice = ch, n_ind = 9L, n_draws = 6L)
    # the model's own user draws are sliced; generated designs get the offset
    slice_matches(tm$compiled, tm$draws, tm$theta, c(2L, 7L, 9L))
    for (ty in c("halton", "mlhs", "pseudo")) {
      spec <- iclv:::.draws_spec(iclv_draws(ty, n = 6, seed = 5), 9L, tm$compiled$n_lv)
      slice_matches(tm$compiled, spec, tm$theta, c(4L, 5L, 9L))
    }
  }
})

test_that("a compiled element the slicer does not know is refused, not shipped whole", {
  tm <- tiny_model(n_ind = 4L)
  cc <- tm$compiled
  cc$weights <- rep(1, 4)
  expect_error(iclv:::.compiled_slice(cc, 1L, 2L), class = "iclv_error_cluster", regexp = "weights")
})

test_that("sums over individuals are taken in index order in double precision", {
  set.seed(3)
  x <- stats::rnorm(2000) * 10^stats::runif(2000, -8, 8)
  s <- 0
  for (v in x) s <- s + v
  expect_identical(iclv:::.sum_rows_in_order(x), s)
  m <- matrix(x, 500, 4)
  g <- rep(0, 4)
  for (i in 1:500) g <- g + m[i, ]
  expect_identical(iclv:::.sum_rows_in_order(m), g)
})

test_that("engine messages are renumbered to the whole data", {
  msg <- "the simulated log-likelihood of individual 5 is not finite (measurement model: indicator 1, observation 12, draw 3)"
  out <- iclv:::.cluster_renumber(msg, c(individual = 30, observation = 100, row = 7))
  expect_identical(out, "the simulated log-likelihood of individual 35 is not finite (measurement model: indicator 1, observation 112, draw 3)")
})

test_that("workers of a host take its devices in turn; one device per worker overrides", {
  map <- iclv:::.cluster_device_map
  # two hosts with 2 and 1 devices, workers interleaved in cluster order
  expect_identical(map(c("a", "b", "a", "b"), c(2L, 1L, 2L, 1L), NULL), c(0L, 0L, 1L, 0L))
  expect_identical(map(c("a", "a", "a", "b"), c(2L, 2L, 2L, 1L), 0L), c(0L, 1L, 0L, 0L))
  # d shifts the start of every host's turn
  expect_identical(map(c("a", "a", "b"), c(2L, 2L, 2L), 1L), c(1L, 0L, 1L))
  # one ordinal per worker is taken as is
  expect_identical(map(c("a", "a"), c(1L, 1L), c(0L, 0L)), c(0L, 0L))
  expect_error(map(c("a", "a", "a"), c(1L, 1L, 1L), c(0L, 1L)), class = "iclv_error_control")
})

test_that("'cluster' must be a parallel cluster", {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = 10, n_tasks = 2, seed = 1)
  expect_error(iclv_loglik(m, d, one_lv_mnl_truth, draws = iclv_draws("halton", 5), cluster = "node1"),
               class = "iclv_error_control")
  expect_error(iclv_memory_plan(m, d, iclv_draws("halton", 5), cluster = list()),
               class = "iclv_error_control")
})

# ---- a 2-worker PSOCK cluster on localhost -----------------------------------

local_cluster <- function(n = 2L) {
  cl <- tryCatch(parallel::makePSOCKcluster(n), error = function(e) e)
  if (inherits(cl, "error")) {
    skip(paste("parallel cannot make a local PSOCK cluster here:", conditionMessage(cl)))
  }
  # the workers load the iclv the tests use (iclv loads it from the master's library)
  cl
}

# stopCluster() stops at a dead worker; close every connection anyway
stop_cluster <- function(cl) {
  try(parallel::stopCluster(cl), silent = TRUE)
  for (node in cl) try(close(node$con), silent = TRUE)
}

worker_keys <- function(cl) {
  unlist(parallel::clusterCall(cl, function() ls(get(".cluster_worker_engines", envir = asNamespace("iclv")))))
}

cluster_problem <- function(n = 60, n_tasks = 3, seed = 11) {
  m <- one_lv_mnl_model()
  d <- iclv_simulate(m, one_lv_mnl_truth, n = n, n_tasks = n_tasks, seed = seed)
  comp <- iclv:::.iclv_compile(m, d)
  list(m = m, d = d, comp = comp, theta = stats::setNames(comp$partable$start, comp$partable$name))
}

test_that("a 2-worker cluster gives the single-process LL, gradient, scores (identical) and Hessian", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem()
  theta <- pb$theta + 0.05
  u <- array(stats::rnorm(pb$comp$n_ind * 15), c(pb$comp$n_ind, 15, 1))
  for (dr in list(iclv_draws("halton", 15), iclv_draws("mlhs", 15, seed = 4), iclv_draws(u))) {
    spec <- iclv:::.draws_spec(dr, pb$comp$n_ind, 1L)
    one <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1)
    ref <- iclv:::.engine_eval(one, theta, gradient = TRUE, scores = TRUE, hessian = TRUE)
    pref <- iclv:::.engine_predict(one, theta)
    iclv:::.engine_release(one)
    ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
    expect_s3_class(ce, "iclv_cluster_engine")
    expect_equal(nrow(ce$shards), 2L)
    ev <- iclv:::.engine_eval(ce, theta, gradient = TRUE, scores = TRUE, hessian = TRUE)
    expect_identical(names(ev), names(ref))
    expect_identical(ev$loglik, ref$loglik)
    expect_identical(ev$loglik_i, ref$loglik_i)
    expect_identical(ev$gradient, ref$gradient)
    expect_identical(ev$scores, ref$scores)
    # the Hessian is added in shard order: rounding only
    expect_lt(max(abs(ev$hessian - ref$hessian)) / max(abs(ref$hessian)), 1e-10)
    expect_identical(ev$hessian, t(ev$hessian))
    # unrequested parts are NULL, as from one engine
    ll <- iclv:::.engine_eval(ce, theta, gradient = FALSE)
    expect_identical(ll$loglik, ref$loglik)
    expect_null(ll$gradient)
    expect_null(ll$scores)
    expect_null(ll$hessian)
    pr <- iclv:::.engine_predict(ce, theta)
    expect_identical(pr$prob, pref$prob)
    expect_identical(pr$lv_mean, pref$lv_mean)
    expect_identical(pr$lv_sd, pref$lv_sd)
    expect_equal(pr$comp_ll, pref$comp_ll, tolerance = 1e-12)
    mem <- iclv:::.engine_memory(ce)
    expect_equal(nrow(mem$workers), 2L)
    expect_equal(sum(mem$workers$n_ind), pb$comp$n_ind)
    expect_length(worker_keys(cl), 2L)
    iclv:::.engine_release(ce)
    expect_length(worker_keys(cl), 0L)
    expect_error(iclv:::.engine_eval(ce, theta), class = "iclv_error_cluster")
  }
  # the "shard" reduction: P doubles per worker, rounding-level differences
  old <- options(iclv.cluster_reduce = "shard")
  on.exit(options(old), add = TRUE)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 15), pb$comp$n_ind, 1L)
  one <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1)
  ref <- iclv:::.engine_eval(one, theta)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  ev <- iclv:::.engine_eval(ce, theta)
  expect_identical(ev$loglik, ref$loglik)
  expect_equal(ev$gradient, ref$gradient, tolerance = 1e-12)
  iclv:::.engine_release(ce)
})

test_that("iclv(), iclv_loglik(), predict() and the memory plan take a cluster", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 200, n_tasks = 4, seed = 1) # converges (test-estimate.R)
  dr <- iclv_draws("halton", 50, seed = 1)
  l1 <- iclv_loglik(pb$m, pb$d, one_lv_mnl_truth, draws = dr, scores = TRUE, hessian = TRUE)
  l2 <- iclv_loglik(pb$m, pb$d, one_lv_mnl_truth, draws = dr, scores = TRUE, hessian = TRUE, cluster = cl)
  expect_identical(l2$loglik, l1$loglik)
  expect_identical(l2$gradient, l1$gradient)
  expect_identical(l2$scores, l1$scores)
  expect_equal(l2$hessian, l1$hessian, tolerance = 1e-10)
  expect_length(worker_keys(cl), 0L) # released on exit

  ctrl <- iclv_control(n_threads = 1)
  f1 <- iclv(pb$m, pb$d, draws = dr, backend = "cpu", control = ctrl)
  f2 <- iclv(pb$m, pb$d, draws = dr, backend = "cpu", control = ctrl, cluster = cl)
  expect_equal(f2$convergence$code, 0L)
  expect_equal(coef(f2), coef(f1), tolerance = 1e-10)
  expect_identical(f2$loglik, f1$loglik)
  expect_equal(vcov(f2), vcov(f1), tolerance = 1e-8)
  expect_equal(f2$loglik_components, f1$loglik_components, tolerance = 1e-12)
  expect_equal(nrow(f2$memory$workers), 2L)
  expect_null(f1$memory$workers)
  expect_length(worker_keys(cl), 0L)

  expect_identical(predict(f2, cluster = cl), predict(f1))
  expect_identical(predict(f2, type = "lv", cluster = cl), predict(f1, type = "lv"))

  plan <- iclv_memory_plan(pb$m, pb$d, dr, n_threads = 1, cluster = cl)
  expect_s3_class(plan, "iclv_memory_plan_cluster")
  expect_equal(nrow(plan$shards), 2L)
  expect_equal(sum(plan$shards$n_ind), 200L)
  # each worker's plan is the plan of its shard, as an engine there reports it
  for (s in 1:2) {
    sl <- iclv:::.compiled_slice(pb$comp$c, plan$shards$first[s], plan$shards$last[s])
    sp <- iclv:::.draws_spec_slice(iclv:::.draws_spec(dr, 200L, 1L), plan$shards$first[s], plan$shards$last[s])
    e <- iclv:::.engine_new(sl, sp, "cpu", n_threads = 1)
    acct <- iclv:::.engine_memory(e)$host$buffers
    iclv:::.engine_release(e)
    pl <- plan$plans[[s]]$buffers
    pl <- pl[pl$where == "host" & pl$buffer %in% names(acct), ]
    expect_equal(pl$bytes, unname(acct[pl$buffer]))
  }
  expect_output(print(plan), "shard")
  expect_output(print(plan), "200 individuals")

  # iclv_objective(): one engine per worker for the objective's life
  o1 <- iclv_objective(pb$m, pb$d, draws = dr)
  o2 <- iclv_objective(pb$m, pb$d, draws = dr, cluster = cl)
  expect_s3_class(o2$engine$engine, "iclv_cluster_engine")
  p <- o1$par + 0.03
  expect_identical(o2$fn(p), o1$fn(p))
  expect_identical(o2$gr(p), o1$gr(p))
  expect_identical(o2$scores(p), o1$scores(p))
  expect_equal(o2$he(p), o1$he(p), tolerance = 1e-10)
  expect_length(worker_keys(cl), 2L) # kept alive between calls: one key per worker
  expect_identical(o2$fn(o1$par), o1$fn(o1$par))
})

test_that("an engine error on one shard names the worker, the shard and the individual", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 60)
  d <- pb$d
  last_id <- d$ID[nrow(d)]
  d$age[d$ID == last_id] <- 1e300 # only the last individual's likelihood overflows
  d$q1[d$ID == last_id] <- 1
  dr <- iclv_draws("halton", 10)
  one <- tryCatch(iclv_loglik(pb$m, d, one_lv_mnl_truth, draws = dr), error = function(e) e)
  expect_s3_class(one, "iclv_error_numeric")
  e <- tryCatch(iclv_loglik(pb$m, d, one_lv_mnl_truth, draws = dr, cluster = cl), error = function(e) e)
  expect_s3_class(e, "iclv_error_cluster")
  expect_s3_class(e, "iclv_error_numeric") # the line search backs off from it
  expect_identical(e$worker, 2L)
  expect_identical(e$shard, 2L)
  expect_match(conditionMessage(e), "worker 2 (shard 2 of 2", fixed = TRUE)
  # the same individual and observation as one process reports
  expect_true(endsWith(conditionMessage(e), conditionMessage(one)))
  expect_length(worker_keys(cl), 0L)
  # parameters every shard refuses alike: the error of one process, classed
  th <- pb$theta
  th[["tau_q1_2"]] <- -5 # thresholds out of order
  spec <- iclv:::.draws_spec(dr, pb$comp$n_ind, 1L)
  e1 <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1)
  one <- tryCatch(iclv:::.engine_eval(e1, th), error = function(e) e)
  iclv:::.engine_release(e1)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  e <- tryCatch(iclv:::.engine_eval(ce, th), error = function(e) e)
  expect_s3_class(one, "iclv_error_input")
  expect_s3_class(e, "iclv_error_input")
  expect_s3_class(e, "iclv_error_cluster")
  expect_identical(conditionMessage(e), conditionMessage(one))
  # the engines stay usable after an evaluation error
  expect_identical(iclv:::.engine_eval(ce, pb$theta)$loglik,
                   iclv_loglik(pb$m, pb$d, pb$theta, draws = dr)$loglik)
  iclv:::.engine_release(ce)
})

test_that("a killed worker gives iclv_error_cluster within the timeout; the other engine is released", {
  skip_on_cran()
  skip_on_os("windows")
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 40)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 10), pb$comp$n_ind, 1L)
  old <- options(iclv.cluster_timeout = 20)
  on.exit(options(old), add = TRUE)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  pids <- unlist(parallel::clusterCall(cl, Sys.getpid))
  expect_identical(ce$shards$pid, pids)
  tools::pskill(pids[2])
  Sys.sleep(0.5)
  t0 <- proc.time()[["elapsed"]]
  e <- tryCatch(iclv:::.engine_eval(ce, pb$theta), error = function(e) e)
  expect_lt(proc.time()[["elapsed"]] - t0, 20)
  expect_s3_class(e, "iclv_error_cluster")
  expect_identical(e$worker, 2L)
  expect_match(conditionMessage(e), "worker 2 (shard 2 of 2: individuals", fixed = TRUE)
  expect_true(isTRUE(ce$released))
  expect_length(worker_keys(cl[1]), 0L)
  expect_error(iclv:::.engine_eval(ce, pb$theta), class = "iclv_error_cluster")
})

test_that("a worker that does not answer gives iclv_error_cluster after the timeout", {
  skip_on_cran()
  skip_on_os("windows")
  cl <- local_cluster()
  pids <- unlist(parallel::clusterCall(cl, Sys.getpid))
  on.exit({
    tools::pskill(pids[2], tools::SIGCONT)
    stop_cluster(cl)
  }, add = TRUE)
  pb <- cluster_problem(n = 40)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 10), pb$comp$n_ind, 1L)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  old <- options(iclv.cluster_timeout = 2)
  on.exit(options(old), add = TRUE)
  ce$timeout <- 2
  tools::pskill(pids[2], tools::SIGSTOP) # alive, but silent
  t0 <- proc.time()[["elapsed"]]
  e <- tryCatch(iclv:::.engine_eval(ce, pb$theta), error = function(e) e)
  el <- proc.time()[["elapsed"]] - t0
  expect_s3_class(e, "iclv_error_cluster")
  expect_match(conditionMessage(e), "worker 2 (shard 2 of 2", fixed = TRUE)
  expect_match(conditionMessage(e), "did not answer within 2 seconds", fixed = TRUE)
  expect_gte(el, 1.9)
  expect_lt(el, 10)
  expect_length(worker_keys(cl[1]), 0L) # the answering worker's engine is gone
})

test_that("an engine dropped without release is released at the next use of its cluster", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 20)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 5), pb$comp$n_ind, 1L)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  k1 <- ce$key
  expect_true(k1 %in% worker_keys(cl))
  rm(ce)
  gc()
  ce2 <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  expect_setequal(worker_keys(cl), ce2$key)
  iclv:::.engine_release(ce2)
})

test_that("a worker with another iclv version is refused, naming the worker", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  lib <- dirname(getNamespaceInfo("iclv", "path"))
  # worker 2 pretends to hold another version of iclv
  ok <- tryCatch(parallel::clusterCall(cl[2], function(lib) {
    loadNamespace("iclv", lib.loc = lib)
    assign("spec", c(name = "iclv", version = "0.0.0.9"), envir = asNamespace("iclv")[[".__NAMESPACE__."]])
    as.character(getNamespaceVersion("iclv"))
  }, lib)[[1]], error = function(e) NA)
  skip_if_not(identical(ok, "0.0.0.9"), "cannot fake another version on the worker")
  pb <- cluster_problem(n = 20)
  e <- tryCatch(iclv_loglik(pb$m, pb$d, one_lv_mnl_truth, draws = iclv_draws("halton", 5), cluster = cl),
                error = function(e) e)
  expect_s3_class(e, "iclv_error_cluster")
  expect_identical(e$worker, 2L)
  expect_match(conditionMessage(e), "worker 2 (shard 2 of 2: individuals", fixed = TRUE)
  expect_match(conditionMessage(e), "has iclv 0.0.0.9", fixed = TRUE)
  expect_length(worker_keys(cl[1]), 0L)
})

test_that("two workers on CUDA device 0 give one process's CUDA results and the CPU's", {
  skip_on_cran()
  av <- iclv_cuda_available()
  skip_if_not(isTRUE(av), paste("no usable GPU:", attr(av, "reason")))
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 40)
  theta <- pb$theta + 0.03
  spec <- iclv:::.draws_spec(iclv_draws("pseudo", 12, seed = 3), pb$comp$n_ind, 1L)
  cpu <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1)
  ref <- iclv:::.engine_eval(cpu, theta, gradient = TRUE, scores = TRUE, hessian = TRUE)
  gpu <- iclv:::.engine_new(pb$comp$c, spec, "cuda", n_threads = 1)
  one <- iclv:::.engine_eval(gpu, theta, gradient = TRUE, scores = TRUE, hessian = TRUE)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cuda", n_threads = 1, device = c(0L, 0L), cluster = cl)
  expect_identical(ce$shards$device, c(0L, 0L))
  ev <- iclv:::.engine_eval(ce, theta, gradient = TRUE, scores = TRUE, hessian = TRUE)
  # against one process on the same backend: the per-individual parts are
  # bit-identical; the sums are not, since the CUDA engine adds its
  # individuals with a fixed tree (src/cuda) and the cluster in index order
  expect_identical(ev$loglik_i, one$loglik_i)
  expect_identical(ev$scores, one$scores)
  expect_lt(abs(ev$loglik - one$loglik) / abs(one$loglik), 1e-13)
  expect_lt(max(abs(ev$gradient - one$gradient)) / max(abs(one$gradient)), 1e-13)
  # ...and the cluster's sums are exactly the index-order sums of those parts
  expect_identical(ev$loglik, iclv:::.sum_rows_in_order(one$loglik_i))
  expect_identical(unname(ev$gradient), iclv:::.sum_rows_in_order(one$scores))
  expect_lt(max(abs(ev$hessian - one$hessian)) / max(abs(one$hessian)), 1e-10)
  # against the CPU reference (the GPU's own tolerance, test-cuda.R)
  expect_lt(abs(ev$loglik - ref$loglik) / abs(ref$loglik), 1e-12)
  expect_lt(max(abs(ev$gradient - ref$gradient)) / max(abs(ref$gradient)), 1e-10)
  expect_lt(max(abs(ev$hessian - ref$hessian)) / max(abs(ref$hessian)), 1e-10)
  mem <- iclv:::.engine_memory(ce)$workers
  expect_identical(mem$device, c(0L, 0L))
  expect_true(all(mem$device_peak > 0))
  iclv:::.engine_release(ce)
})

test_that("answers to an interrupted exchange are dropped, not taken for the next one", {
  skip_on_cran()
  cl <- local_cluster()
  on.exit(stop_cluster(cl), add = TRUE)
  pb <- cluster_problem(n = 30)
  spec <- iclv:::.draws_spec(iclv_draws("halton", 8), pb$comp$n_ind, 1L)
  one <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1)
  ref <- iclv:::.engine_eval(one, pb$theta)
  ce <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  ce2 <- iclv:::.engine_new(pb$comp$c, spec, "cpu", n_threads = 1, cluster = cl)
  # an evaluation of one engine at other parameters whose answers are never
  # read (as after Ctrl-C); the other engine on the same workers comes next
  stale <- function() {
    iclv:::.cluster_send(ce, 1:2, ".cluster_worker_eval",
                         function(s) list(ce$key, pb$theta + 0.1, c(FALSE, TRUE, FALSE, FALSE, FALSE)))
  }
  stale()
  ev <- iclv:::.engine_eval(ce2, pb$theta)
  expect_identical(ev$loglik, ref$loglik)
  expect_identical(ev$gradient, ref$gradient)
  stale()
  ev <- iclv:::.engine_eval(ce, pb$theta)
  expect_identical(ev$loglik, ref$loglik)
  iclv:::.engine_release(ce2)
  stale()
  iclv:::.engine_release(ce)
  expect_length(worker_keys(cl), 0L)
  # and the cluster is in step for the user's own calls
  expect_identical(unlist(parallel::clusterCall(cl, function() 42)), c(42, 42))
})
