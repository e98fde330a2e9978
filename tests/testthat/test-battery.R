# A battery of malformed inputs: each must give a classed iclv error (class
# "iclv_error_<kind>", see R/conditions.R), naming the column, row, argument
# or parameter at fault where there is one, and none may crash R. Every case
# errors before any estimation starts, so the whole file runs in seconds.

# ---- fixtures ----------------------------------------------------------------
bt_utilities <- list(a = "asc_a + b_price * price_a + l_att * att",
                     b = "asc_b + b_price * price_b",
                     c = "0")
bt_choice <- function(utilities = bt_utilities, type = "mnl", available = NULL) {
  iclv_choice(type, choice = "ch", utilities = utilities, available = available)
}
bt_model <- function(measurement = "att =~ q1 + q2 + q3", structural = "att ~ age",
                     choice = bt_choice(), indicators = "ordered_probit", categories = 3) {
  iclv_model(measurement, structural = structural, choice = choice, indicators = indicators,
             id = "ID", categories = categories)
}
bt_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
              tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
              gamma_att_age = 0.5, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
bt_m <- bt_model()
bt_d <- iclv_simulate(bt_m, bt_truth, n = 20, n_tasks = 2, seed = 7)
bt_draws <- iclv_draws("halton", 5)
# with availability columns
bt_ma <- bt_model(choice = bt_choice(available = list(a = "av_a", b = "av_b", c = "av_c")))
bt_da <- transform(bt_d, av_a = 1, av_b = 1, av_c = 1)

# iclv() on modified data / model; every case below fails before the engine
fit_with <- function(data = bt_d, model = bt_m, draws = bt_draws, ...) {
  iclv(model, data, draws = draws, backend = "cpu", ...)
}
# bt_d with column `col` replaced (entirely, or in `rows`)
with_col <- function(col, value, rows = NULL, data = bt_d) {
  if (is.null(rows)) data[[col]] <- value else data[[col]][rows] <- value
  data
}

expect_iclv_error <- function(expr, class, regexp = NULL) {
  expect_error(expr, class = class, regexp = regexp)
}

# ---- data types ----------------------------------------------------------------
test_that("data of the wrong type is a data error naming the column", {
  expect_iclv_error(fit_with(with_col("q1", factor(bt_d$q1))), "iclv_error_data", "'q1'.*factor")
  expect_iclv_error(fit_with(with_col("price_a", as.character(bt_d$price_a))), "iclv_error_data",
                    "'price_a'.*character")
  expect_iclv_error(fit_with(with_col("age", as.list(bt_d$age))), "iclv_error_data", "'age'.*list")
  expect_iclv_error(fit_with(with_col("age", as.character(bt_d$age))), "iclv_error_data", "'age'")
  expect_iclv_error(fit_with(as.matrix(bt_d)), "iclv_error_data", "data.frame")
  expect_iclv_error(fit_with(NULL), "iclv_error_data", "data.frame")
  expect_iclv_error(fit_with(bt_d[0, ]), "iclv_error_data", "no rows")
  expect_iclv_error(fit_with(with_col("ID", as.list(bt_d$ID))), "iclv_error_data", "'ID'")
  expect_iclv_error(fit_with(with_col("ID", matrix(bt_d$ID, ncol = 1))), "iclv_error_data", "'ID'")
})

# ---- missing values ----------------------------------------------------------
test_that("NAs where they are not allowed are data errors naming column and row", {
  expect_iclv_error(fit_with(with_col("ch", NA, 3)), "iclv_error_data", "'ch'.*row 3")
  expect_iclv_error(fit_with(with_col("age", NA, 3)), "iclv_error_data", "'age'.*row 3")
  expect_iclv_error(fit_with(with_col("age", Inf, 1)), "iclv_error_data", "'age'.*row 1")
  expect_iclv_error(fit_with(with_col("price_a", NA, 3)), "iclv_error_data", "'price_a'.*row 3")
  expect_iclv_error(fit_with(with_col("price_a", Inf, 3)), "iclv_error_data", "'price_a'.*row 3")
  expect_iclv_error(fit_with(with_col("ID", NA, 5)), "iclv_error_data", "'ID'.*row 5")
  expect_iclv_error(fit_with(with_col("q1", NA_real_)), "iclv_error_data", "'q1'")
  expect_iclv_error(fit_with(with_col("av_b", NA, 1, data = bt_da), model = bt_ma), "iclv_error_data",
                    "'av_b'.*row 1")
})

test_that("an NA attribute of an unavailable alternative is allowed (control case)", {
  x <- bt_da
  r <- which(bt_d$ch != "a")[1]
  x$av_a[r] <- 0
  x$price_a[r] <- NA
  plan <- iclv_memory_plan(bt_ma, x, bt_draws, n_threads = 1)
  expect_s3_class(plan, "iclv_memory_plan")
})

# ---- ranges --------------------------------------------------------------------
test_that("values outside their range are data errors naming column and row", {
  expect_iclv_error(fit_with(with_col("q1", 0, 1:2)), "iclv_error_data", "'q1'.*0.*row 1")
  expect_iclv_error(fit_with(with_col("q1", 4, 1:2)), "iclv_error_data", "'q1'.*4.*row 1")
  expect_iclv_error(fit_with(with_col("q1", 1.5, 1:2)), "iclv_error_data", "'q1'.*1.5.*row 1")
  sp <- iclv_seed_problem(n = 10, n_tasks = 2)
  x <- sp$data
  x$ind01[1:2] <- 6
  expect_iclv_error(iclv(sp$model, x, draws = bt_draws, backend = "cpu"), "iclv_error_data",
                    "'ind01'.*6.*1\\.\\.5")
  mb <- bt_model("att =~ q1 + q2 + b1", indicators = list(b1 = "binary"))
  xb <- bt_d
  xb$b1 <- rep(c(0, 2), 20)
  expect_iclv_error(fit_with(xb, mb), "iclv_error_data", "'b1'.*row 2")
  expect_iclv_error(fit_with(with_col("ch", "zz", 3)), "iclv_error_data", "'zz'.*row 3")
  expect_iclv_error(fit_with(with_col("ch", 4L)), "iclv_error_data", "row 1")
  xa <- bt_da
  xa$av_a[bt_d$ch == "a"] <- 0
  expect_iclv_error(fit_with(xa, bt_ma), "iclv_error_data", "not available")
  expect_iclv_error(fit_with(with_col("av_b", 2, 1, data = bt_da), model = bt_ma), "iclv_error_data",
                    "'av_b'.*row 1")
})

# ---- ids -------------------------------------------------------------------------
test_that("id problems are data errors", {
  expect_iclv_error(fit_with(with_col("ID", NULL)), "iclv_error_data", "'ID'")
  expect_iclv_error(fit_with(bt_d[c(seq(1, 40, 2), seq(2, 40, 2)), ]), "iclv_error_data", "adjacent")
  expect_iclv_error(fit_with(with_col("age", seq_len(40))), "iclv_error_data", "'age'.*within")
  expect_iclv_error(fit_with(with_col("q2", NULL)), "iclv_error_data", "'q2'")
  expect_iclv_error(fit_with(with_col("ch", NULL)), "iclv_error_data", "'ch'")
})

# ---- utilities ---------------------------------------------------------------------
test_that("malformed utilities are spec or data errors naming the alternative", {
  u <- function(...) bt_model(choice = bt_choice(list(...)))
  expect_iclv_error(fit_with(model = u(a = "asc + b * nosuch + l * att", b = "0", c = "0")),
                    "iclv_error_data", "'nosuch'")
  expect_iclv_error(fit_with(model = u(a = "asc + l * ghost + l2 * att", b = "0", c = "0")),
                    "iclv_error_data", "'ghost'")
  # a parameter to a data power is nonlinear, read when the data come (R/tape.R)
  expect_s3_class(u(a = "asc + b ^ price_a + l * att", b = "0"), "iclv_model")
  # '-' and numbers are R expressions now (R/expr.R): the sign goes into the data;
  # the first plain name of a product is the parameter, here a column of the data
  expect_identical(u(a = "asc - b * price_a + l * att", b = "0")$choice$terms$a$col, c(NA, "-price_a", NA))
  # the data tell that price_a is a column: the term has no parameter (R/tape.R)
  expect_iclv_error(fit_with(model = u(a = "2 * price_a + l * att", b = "0", c = "0")), "iclv_error_spec",
                    "term '2 \\* price_a' has no parameter")
  expect_iclv_error(bt_choice(list()), "iclv_error_spec", "utilities")
  expect_iclv_error(bt_choice(list(a = 1, b = "0")), "iclv_error_spec", "'a'")
  expect_iclv_error(bt_choice(list("asc", "0")), "iclv_error_spec", "named")
  expect_iclv_error(bt_choice(list(a = "asc + l * att", a = "0")), "iclv_error_spec", "'a'")
  expect_iclv_error(bt_choice(list(a = "", b = "l * att")), "iclv_error_spec", "'a'")
  expect_iclv_error(bt_model("att =~ q1 + q2\n att2 =~ q3", structural = NULL,
                             choice = bt_choice(list(a = "asc + l * att * att2", b = "0"))),
                    "iclv_error_spec", "two latent variables")
  expect_iclv_error(bt_choice(list(a = "asc", b = "0", c = "0"), type = "probit"), "iclv_error_spec",
                    "2 alternatives")
  expect_iclv_error(u(a = "zeta_q1 + l * att", b = "0"), "iclv_error_spec", "'zeta_q1'")
})

# ---- specification syntax -----------------------------------------------------------
test_that("malformed specifications are spec errors", {
  expect_iclv_error(bt_model("att ~ q1 + q2"), "iclv_error_spec", "=~")
  expect_iclv_error(bt_model(""), "iclv_error_spec", "latent variable")
  expect_iclv_error(bt_model("att =~ "), "iclv_error_spec", "att")
  expect_iclv_error(iclv_model(42, id = "ID"), "iclv_error_spec", "measurement")
  expect_iclv_error(iclv_model(id = "ID"), "iclv_error_spec", "measurement")
  expect_iclv_error(bt_model(structural = "att ~ att"), "iclv_error_spec", "cycle")
  expect_iclv_error(bt_model("f1 =~ q1 + q2\n f2 =~ q3", structural = "f1 ~ f2\n f2 ~ f1", choice = NULL),
                    "iclv_error_spec", "cycle.*f1.*f2|cycle.*f2.*f1")
  expect_iclv_error(bt_model("att =~ q1 + q1 + q2"), "iclv_error_spec", "'q1' twice")
  expect_iclv_error(bt_model(indicators = "poisson"), "iclv_error_spec", "'poisson'")
  expect_iclv_error(bt_model(indicators = list(zz = "normal")), "iclv_error_spec", "'zz'")
  for (cats in list(1, "a", 2.5, -3, NA)) {
    expect_iclv_error(bt_model(categories = cats), "iclv_error_spec", "categories")
  }
  expect_iclv_error(iclv_model("att =~ q1", id = 3), "iclv_error_spec", "id")
  expect_iclv_error(fit_with(model = bt_model(structural = "att ~ age + ghost")), "iclv_error_data",
                    "'ghost'")
  expect_iclv_error(fit_with(model = list()), "iclv_error_spec", "iclv_model")
})

# ---- draws ------------------------------------------------------------------------------
test_that("malformed draw designs are draws errors", {
  expect_iclv_error(iclv_draws("halton", 0), "iclv_error_draws", "'n'")
  expect_iclv_error(iclv_draws("halton", 1.5), "iclv_error_draws", "'n'")
  expect_iclv_error(iclv_draws("halton", 1), "iclv_error_draws", "at least 2")
  expect_iclv_error(iclv_draws("halton", NA), "iclv_error_draws", "'n'")
  expect_iclv_error(iclv_draws("halton", "100"), "iclv_error_draws", "'n'")
  expect_iclv_error(iclv_draws("pseudo", 10, seed = -1), "iclv_error_draws", "'seed'")
  expect_iclv_error(iclv_draws("halton", 10, skip = -1), "iclv_error_draws", "'skip'")
  expect_iclv_error(iclv_draws("foo", 10), "iclv_error_draws", "'type'")
  expect_iclv_error(iclv_draws("halton", 10, foo = 1), "iclv_error_draws", "'foo'")
  expect_iclv_error(iclv_draws(array(c(NA, stats::rnorm(59)), c(20, 3, 1))), "iclv_error_draws",
                    "\\[1, 1, 1\\]")
  expect_iclv_error(iclv_draws(matrix(stats::rnorm(20), 4, 5)), "iclv_error_draws", "3-dimensional")
  expect_iclv_error(iclv_draws(array(stats::rnorm(60), c(20, 3, 1)), n = 4), "iclv_error_draws", "'n'")
  expect_iclv_error(fit_with(draws = iclv_draws(array(stats::rnorm(19 * 3), c(19, 3, 1)))),
                    "iclv_error_draws", "19 x 3 x 1.*20 x 3 x 1")
  expect_iclv_error(fit_with(draws = array(stats::rnorm(20 * 3 * 2), c(20, 3, 2))), "iclv_error_draws",
                    "20 x 3 x 1")
  expect_iclv_error(fit_with(draws = 100), "iclv_error_draws", "iclv_draws")
})

# ---- control values -------------------------------------------------------------------
test_that("bad control values are control errors naming the argument", {
  expect_iclv_error(iclv_control(maxit = -1), "iclv_error_control", "'maxit'")
  expect_iclv_error(iclv_control(maxit = NA), "iclv_error_control", "'maxit'")
  expect_iclv_error(iclv_control(tol = "a"), "iclv_error_control", "'tol'")
  expect_iclv_error(iclv_control(tol = -1), "iclv_error_control", "'tol'")
  expect_iclv_error(iclv_control(method = "foo"), "iclv_error_control", "'method'")
  expect_iclv_error(iclv_control(trace = NA), "iclv_error_control", "'trace'")
  expect_iclv_error(iclv_control(foo = 1), "iclv_error_control", "'foo'")
  expect_iclv_error(iclv_control(vcov = "foo"), "iclv_error_control", "'vcov'")
  expect_iclv_error(iclv_control(hessian = NA), "iclv_error_control", "'hessian'")
  expect_iclv_error(iclv_control(hessian = FALSE, vcov = "robust"), "iclv_error_control", "Hessian")
  expect_iclv_error(iclv_control(n_threads = -1), "iclv_error_control", "'n_threads'")
  expect_iclv_error(iclv_control(n_threads = 1.5), "iclv_error_control", "'n_threads'")
  expect_iclv_error(iclv_control(callback = 1), "iclv_error_control", "'callback'")
  expect_iclv_error(iclv_control(checkpoint = "/nonexistent/dir/x.rds"), "iclv_error_control", "folder")
  expect_iclv_error(iclv_control(device_memory = -5), "iclv_error_control", "'device_memory'")
  expect_iclv_error(fit_with(foo = 1), "iclv_error_control", "'foo'")
  expect_iclv_error(fit_with(control = list(maxit = 1)), "iclv_error_control", "iclv_control")
  expect_iclv_error(iclv(bt_m, bt_d, draws = bt_draws, backend = "gpu"), "iclv_error_control", "'backend'")
  expect_iclv_error(fit_with(start = c(foo = 1)), "iclv_error_input", "'foo'")
  expect_iclv_error(fit_with(fixed = c(foo = 1)), "iclv_error_input", "'foo'")
  expect_iclv_error(fit_with(start = c(asc_a = "a")), "iclv_error_input", "'start'")
  expect_iclv_error(iclv_loglik(bt_m, bt_d, bt_truth[1:3], draws = bt_draws), "iclv_error_input", "lacks")
  expect_iclv_error(iclv_loglik(bt_m, bt_d, replace(bt_truth, 1, NA), draws = bt_draws),
                    "iclv_error_input", "'zeta_q1'")
  expect_iclv_error(iclv_loglik(bt_m, bt_d, unname(bt_truth), draws = bt_draws), "iclv_error_input", "named")
  expect_iclv_error(iclv_loglik(bt_m, bt_d, replace(bt_truth, c("tau_q1_1", "tau_q1_2"), c(1, -1)),
                                draws = bt_draws), "iclv_error_input", "'tau_q1_2'")
  if (!isTRUE(iclv_cuda_available())) {
    expect_iclv_error(iclv(bt_m, bt_d, draws = bt_draws, backend = "cuda"), "iclv_error_cuda", "cuda|CUDA")
  }
})

test_that("a thread count beyond what the system can start is refused, not a crash", {
  # n_threads = 40000 once made libgomp exit the R process ("Thread creation
  # failed") and 1e5 segfaulted: iclv_control() refuses more than 1024, and the
  # engine refuses them too (and caps at OMP_THREAD_LIMIT).
  expect_iclv_error(iclv_control(n_threads = 1e5), "iclv_error_control", "'n_threads'")
  expect_iclv_error(iclv_control(n_threads = 40000), "iclv_error_control", "'n_threads'")
  comp <- iclv:::.iclv_compile(bt_m, bt_d)
  spec <- iclv:::.draws_spec(bt_draws, comp$n_ind, length(comp$lvs))
  expect_iclv_error(iclv:::.engine_new(comp$c, spec, "cpu", n_threads = 5000), "iclv_error_input", "n_threads")
})

# ---- absurd sizes -----------------------------------------------------------------------
test_that("absurd sizes are clear errors before anything is allocated", {
  expect_iclv_error(iclv_draws("halton", 1e12), "iclv_error_draws", "'n'")
  expect_iclv_error(iclv_memory_plan(bt_m, bt_d, bt_draws, backend = "cuda", device_memory = -1),
                    "iclv_error_control", "'device_memory'")
  expect_iclv_error(iclv_memory_plan(bt_m, bt_d, bt_draws, backend = "gpu"), "iclv_error_control", "'backend'")
  expect_iclv_error(iclv_memory_plan(bt_m, bt_d, bt_draws, n_threads = -2), "iclv_error_control", "'n_threads'")
  # 2^31 - 1 draws per individual: the engine would need ~0.5 TB; the plan says so
  huge <- iclv_draws("halton", 2^31 - 1)
  plan <- iclv_memory_plan(bt_m, bt_d, huge, n_threads = 1)
  expect_gt(plan$total_host, 2^38)
  if (!is.na(plan$host_available)) {
    expect_false(plan$fits)
    expect_match(plan$verdict, "^does not fit")
  }
  # and the estimation refuses with a memory error (today: calloc fails)
  expect_iclv_error(fit_with(draws = huge, control = iclv_control(n_threads = 1)), "iclv_error_memory")
})

test_that("an impossible memory need is refused before allocating, with the sizes", {
  huge <- iclv_draws("halton", 2^31 - 1)
  msg <- tryCatch(fit_with(draws = huge, control = iclv_control(n_threads = 1)),
                  iclv_error_memory = function(e) conditionMessage(e))
  expect_match(msg, "available")
  expect_match(msg, "GiB|TiB")
  expect_iclv_error(iclv_loglik(bt_m, bt_d, bt_truth, draws = huge), "iclv_error_memory", "available")
})

test_that("absurd sizes in the draw generator and the simulator are classed errors", {
  expect_iclv_error(iclv_draws_generate(iclv_draws("halton", 1e9), n_ind = 1e6, n_lv = 5),
                    "iclv_error_draws", "too large")
  expect_iclv_error(iclv_draws_generate(iclv_draws("pseudo", 2^31 - 1), n_ind = 2^31 - 1, n_lv = 3),
                    "iclv_error")
  expect_iclv_error(suppressWarnings(iclv_simulate(bt_m, bt_truth, n = 1e12)), "iclv_error_control", "'n'")
})

# ---- engine level -------------------------------------------------------------------------
test_that("the engine refuses bad parameters and released handles with input errors", {
  comp <- iclv:::.iclv_compile(bt_m, bt_d)
  spec <- iclv:::.draws_spec(bt_draws, comp$n_ind, 1L)
  e <- iclv:::.engine_new(comp$c, spec, n_threads = 1L)
  th <- comp$partable$start
  expect_true(is.finite(iclv:::.engine_eval(e, th)$loglik)) # control case
  expect_iclv_error(iclv:::.engine_eval(e, th[-1]), "iclv_error_input", "length 14")
  expect_iclv_error(iclv:::.engine_eval(e, c(th, 1)), "iclv_error_input", "length 14")
  expect_iclv_error(iclv:::.engine_eval(e, replace(th, 2, NaN)), "iclv_error_input", "parameter 2")
  expect_iclv_error(iclv:::.engine_eval(e, replace(th, 5, Inf)), "iclv_error_input", "parameter 5")
  expect_iclv_error(iclv:::.engine_eval(e, replace(th, 2:3, c(1, -1))), "iclv_error_input",
                    "strictly increasing")
  expect_iclv_error(iclv:::.engine_eval(e, replace(th, 2:3, c(0, 0))), "iclv_error_input",
                    "strictly increasing")
  expect_iclv_error(iclv:::.engine_predict(e, replace(th, 2:3, c(1, -1))), "iclv_error_input",
                    "strictly increasing")
  expect_iclv_error(iclv:::.engine_eval(list(), th), "iclv_error_input", "not an iclv engine")
  expect_iclv_error(iclv:::.engine_new(comp$c, iclv:::.draws_spec(bt_draws, 19, 1)), "iclv_error_input",
                    "draw design")
  expect_iclv_error(iclv:::.engine_new(list(a = 1), spec), "iclv_error_input", "'n_ind'")
  c2 <- comp$c
  c2$obs_ind[1] <- 99L
  expect_iclv_error(iclv:::.engine_new(c2, spec), "iclv_error_input", "obs_ind")
  c2 <- comp$c
  c2$obs_val[1] <- 7
  expect_iclv_error(iclv:::.engine_new(c2, spec), "iclv_error_input", "value 7")
  c2 <- comp$c
  c2$n_ind <- 20 # a double, not an integer
  expect_iclv_error(iclv:::.engine_new(c2, spec), "iclv_error_input", "n_ind")
  iclv:::.engine_release(e)
  expect_iclv_error(iclv:::.engine_eval(e, th), "iclv_error_input", "released")

  mn <- iclv_model("f =~ y1 + y2", id = "ID", indicators = "normal")
  dn <- iclv_simulate(mn, c(zeta_y1 = 1, alpha_y1 = 0, sigma_y1 = 1, zeta_y2 = 1, alpha_y2 = 0, sigma_y2 = 1),
                      n = 10, seed = 1)
  cn <- iclv:::.iclv_compile(mn, dn)
  en <- iclv:::.engine_new(cn$c, iclv:::.draws_spec(bt_draws, 10, 1), n_threads = 1L)
  thn <- cn$partable$start
  k <- match("sigma_y1", cn$partable$name)
  expect_iclv_error(iclv:::.engine_eval(en, replace(thn, k, -1)), "iclv_error_input", "standard deviation")
  expect_iclv_error(iclv:::.engine_eval(en, replace(thn, k, 0)), "iclv_error_input", "standard deviation")
  # a likelihood that underflows everywhere is a numeric error, not a crash
  expect_iclv_error(iclv:::.engine_eval(en, replace(thn, match("zeta_y1", cn$partable$name), 1e300)),
                    "iclv_error_numeric", "individual")
})

test_that("malformed draw specifications reaching C are classed input errors", {
  comp <- iclv:::.iclv_compile(bt_m, bt_d)
  spec <- iclv:::.draws_spec(bt_draws, comp$n_ind, 1L)
  for (field in c("seed", "skip")) {
    for (bad in list(numeric(0), c(1, 2), "a", -1, NA_real_)) {
      s2 <- spec
      s2[[field]] <- bad
      expect_iclv_error(iclv:::.engine_new(comp$c, s2), "iclv_error_input", "seed and skip")
    }
    s2 <- spec
    s2[[field]] <- NULL
    expect_iclv_error(iclv:::.engine_new(comp$c, s2), "iclv_error_input", field)
  }
  s2 <- spec
  s2$type <- 9L
  expect_iclv_error(iclv:::.engine_new(comp$c, s2), "iclv_error_input", "draw type")
  s2 <- spec
  s2$n_draws <- 0L
  expect_iclv_error(iclv:::.engine_new(comp$c, s2), "iclv_error_input", "dimension")
  # a user array of the wrong type or length
  su <- iclv:::.draws_spec(iclv_draws(array(stats::rnorm(60), c(20, 3, 1))), 20, 1L)
  su$user <- su$user[1:59]
  expect_iclv_error(iclv:::.engine_new(comp$c, su), "iclv_error_input", "'user'")
})

# ---- issue 12: silent acceptance of malformed input ---------------------------------------
# Each case below was accepted silently (or failed unclassed, or hung) before
# 0.2.0; now each is a classed error quoting the text, argument, column, id or
# row at fault.

test_that("a dangling '+' or '*' or an empty term is a spec error quoting the statement", {
  expect_iclv_error(bt_model("att =~ q1 + q2 + q3 +"), "iclv_error_spec",
                    "'att =~ q1 \\+ q2 \\+ q3 \\+' ends with a dangling '\\+'")
  # a dangling '+' before the next statement does not swallow it
  expect_iclv_error(bt_model("att =~ q1 + q2 +\n att2 =~ q3", structural = NULL), "iclv_error_spec",
                    "'att =~ q1 \\+ q2 \\+' ends with a dangling")
  expect_iclv_error(bt_model(structural = "att ~ age +"), "iclv_error_spec", "'att ~ age \\+'.*dangling")
  expect_iclv_error(bt_model(structural = "att ~ age +  # a comment"), "iclv_error_spec", "dangling")
  u <- function(a) bt_choice(list(a = a, b = "asc_b + b_price * price_b", c = "0"))
  expect_iclv_error(u("asc_a + b_price * price_a +"), "iclv_error_spec",
                    "utility of 'a' has an empty term: 'asc_a \\+ b_price \\* price_a \\+'")
  expect_iclv_error(u("asc_a + l_att *"), "iclv_error_spec", "utility of 'a': term 'l_att \\*'")
  expect_iclv_error(u("asc_a + b_price * price_a * "), "iclv_error_spec", "term 'b_price \\* price_a \\*'")
  expect_iclv_error(u("asc_a ++ l_att * att"), "iclv_error_spec", "'a' has an empty term")
  expect_iclv_error(u("+ asc_a"), "iclv_error_spec", "'a' has an empty term")
  expect_iclv_error(u("asc_a + * att"), "iclv_error_spec", "term '\\* att'")
  expect_iclv_error(u("asc_a + l_att ** att"), "iclv_error_spec", "term 'l_att \\*\\* att'")
  expect_iclv_error(u(""), "iclv_error_spec", "'a' is empty.*\"0\"")
  expect_iclv_error(u("  "), "iclv_error_spec", "'a' is empty")
  expect_iclv_error(u("0 + asc_a"), "iclv_error_spec", "'0'")
  expect_iclv_error(u("asc_a + b_price * price_a + asc_a"), "iclv_error_spec", "'a' has the term 'asc_a' twice")
  expect_iclv_error(u("b_price * price_a * att + b_price * att * price_a"), "iclv_error_spec",
                    "the term 'b_price \\* att \\* price_a' twice")
  # control: "0" is the zero utility, and a line ending in '+' continues
  expect_identical(nrow(u("0")$terms$a), 0L)
  m <- bt_model("att =~ q1 +\n q2 +\n q3")
  expect_identical(m$measurement$att, c("q1", "q2", "q3"))
})

test_that("a choice parameter named like an LV, an indicator or a data column is an error", {
  u <- function(a, ...) bt_model(choice = bt_choice(list(a = a, b = "asc_b + b_price * price_b", c = "0"), ...))
  expect_iclv_error(u("att + b_price * price_a + l_att * att"), "iclv_error_spec",
                    "parameter 'att' has the name of a latent variable")
  expect_iclv_error(u("asc_a + att * price_a"), "iclv_error_spec", "'att' has the name of a latent variable")
  expect_iclv_error(u("q1 + l_att * att"), "iclv_error_spec", "'q1' has the name of an indicator")
  expect_iclv_error(u("age + l_att * att"), "iclv_error_spec", "'age' has the name of a covariate")
  expect_iclv_error(u("ID + l_att * att"), "iclv_error_spec", "'ID' has the name of the id column")
  expect_iclv_error(u("ch + l_att * att"), "iclv_error_spec", "'ch' has the name of the choice column")
  expect_iclv_error(u("av_a + l_att * att", available = list(a = "av_a")), "iclv_error_spec",
                    "'av_a' has the name of an availability column")
  expect_iclv_error(u("price_b + b_price * price_a + l_att * att"), "iclv_error_spec",
                    "'price_b' has the name of a data column")
  # other columns are known when the model meets its data: iclv(), iclv_loglik(), plans
  x <- with_col("asc_a", 1)
  expect_iclv_error(fit_with(x), "iclv_error_data", "parameter 'asc_a'.*column of the data")
  expect_iclv_error(iclv_loglik(bt_m, x, bt_truth, draws = bt_draws), "iclv_error_data", "'asc_a'")
  expect_iclv_error(iclv_memory_plan(bt_m, x, bt_draws, n_threads = 1), "iclv_error_data", "'asc_a'")
  expect_iclv_error(bt_model(choice = NULL, structural = NULL) |> (\(m) iclv_model(
    "att =~ q1 + q2 + q3", choice = bt_choice(), id = "ID", categories = 3, data = x))(),
    "iclv_error_data", "'asc_a'")
})

test_that("the id and the choice column cannot play another role", {
  expect_iclv_error(bt_model("att =~ q1 + q2 + ID"), "iclv_error_spec", "id column 'ID' cannot also be an indicator")
  expect_iclv_error(bt_model(structural = "att ~ age + ID"), "iclv_error_spec", "'ID' cannot also be a covariate")
  expect_iclv_error(bt_model(choice = bt_choice(list(a = "asc + b * ID + l * att", b = "0"))),
                    "iclv_error_spec", "'ID' cannot also be a data column")
  expect_iclv_error(bt_model("ID =~ q1 + q2 + q3", structural = NULL,
                             choice = bt_choice(list(a = "asc + l * ID", b = "0"))),
                    "iclv_error_spec", "'ID' cannot also be a latent variable")
  expect_iclv_error(bt_model(structural = "att ~ age + ch"), "iclv_error_spec", "choice column 'ch' cannot also be a covariate")
  expect_iclv_error(bt_model(choice = bt_choice(available = list(a = "ch"))), "iclv_error_spec",
                    "'ch' cannot also be an availability column")
})

test_that("a parameter in both 'fixed' and 'start' is an error; so is a name given twice", {
  expect_iclv_error(bt_m |> (\(m) iclv_model("att =~ q1 + q2 + q3", choice = bt_choice(), id = "ID",
                                             categories = 3, fixed = c(asc_a = 0), start = c(asc_a = 1)))(),
                    "iclv_error_spec", "'asc_a' is named in both 'fixed' and 'start'")
  expect_iclv_error(fit_with(start = c(asc_a = 1), fixed = c(asc_a = 0)), "iclv_error_input",
                    "'asc_a' is named in both 'fixed' and 'start'")
  expect_iclv_error(fit_with(start = c(b_price = -1, asc_a = 1), fixed = c(asc_a = 0, l_att = 0)),
                    "iclv_error_input", "'asc_a'")
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", start = c(zeta_q1 = 1, zeta_q1 = 2)),
                    "iclv_error_spec", "'start' names 'zeta_q1' twice")
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", fixed = c(zeta_q1 = 1, zeta_q1 = 2)),
                    "iclv_error_spec", "'fixed' names 'zeta_q1' twice")
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", start = stats::setNames(1, NA)),
                    "iclv_error_spec", "'start'")
  expect_iclv_error(fit_with(start = c(asc_a = 1, asc_a = 2)), "iclv_error_input", "'start' names 'asc_a' twice")
  expect_iclv_error(fit_with(fixed = c(asc_a = 1, asc_a = 2)), "iclv_error_input", "'fixed' names 'asc_a' twice")
  # control: a fit (or a list with $coefficients) as start gives every coefficient; those in
  # `fixed` take the fixed value
  f <- suppressWarnings(fit_with(start = list(coefficients = bt_truth), fixed = c(asc_a = 0),
                                 control = iclv_control(maxit = 0, hessian = FALSE, vcov = "bhhh", n_threads = 1)))
  expect_identical(f$coefficients[["asc_a"]], 0)
  expect_identical(f$coefficients[["b_price"]], -1)
  expect_identical(f$n_params, 13L)
})

test_that("an indicator named twice in 'indicators', 'indicator_level' or 'categories' is an error", {
  expect_iclv_error(bt_model(indicators = list(q1 = "ordered_probit", q1 = "normal")), "iclv_error_spec",
                    "'indicators' names 'q1' twice")
  expect_iclv_error(bt_model(indicators = c(q2 = "normal", q2 = "normal")), "iclv_error_spec",
                    "'indicators' names 'q2' twice")
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", indicator_level = c(q1 = "row", q1 = "individual")),
                    "iclv_error_spec", "'indicator_level' names 'q1' twice")
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", categories = list(q1 = 3, q1 = 4)),
                    "iclv_error_spec", "'categories' names 'q1' twice")
  expect_iclv_error(bt_model("att =~ q1 + q2 + q1"), "iclv_error_spec", "'q1' twice")
  expect_iclv_error(bt_model("att =~ q1 + q2\n att =~ q1 + q3"), "iclv_error_spec", "'q1' appears twice")
})

test_that("duplicated column names in the data are a data error naming them", {
  expect_iclv_error(fit_with(cbind(bt_d, q1 = 1)), "iclv_error_data",
                    "two columns named 'q1' \\(columns 4 and 10\\)")
  expect_iclv_error(fit_with(cbind(bt_d, task = 1)), "iclv_error_data", "two columns named 'task'")
  expect_iclv_error(iclv_loglik(bt_m, cbind(bt_d, price_a = 0), bt_truth, draws = bt_draws),
                    "iclv_error_data", "'price_a'")
  expect_iclv_error(iclv_memory_plan(bt_m, cbind(bt_d, ID = 1), bt_draws), "iclv_error_data", "'ID'")
})

test_that("indicator values far outside any category name the indicator, the id and the row", {
  # rows 5 and 6 are individual 3
  for (v in c(1e10, -1e10, 2^31, 0, 4)) {
    expect_iclv_error(fit_with(with_col("q2", v, 5:6)), "iclv_error_data",
                      "ordered indicator 'q2' has the value .* in row 5 \\(id '3'\\), outside its declared categories 1..3")
  }
  expect_iclv_error(fit_with(with_col("q2", 2.5, 5:6)), "iclv_error_data",
                    "'q2' has the value 2.5 in row 5 \\(id '3'\\), which is not a whole number")
  expect_iclv_error(fit_with(with_col("q2", NaN, 5:6)), "iclv_error_data", "'q2' is not finite \\(NaN\\) in row 5 \\(id '3'\\)")
  expect_iclv_error(fit_with(with_col("q2", Inf, 5:6)), "iclv_error_data", "'q2' is not finite \\(Inf\\) in row 5 \\(id '3'\\)")
  expect_iclv_error(fit_with(with_col("q2", -Inf, 5:6)), "iclv_error_data", "'q2' is not finite \\(-Inf\\) in row 5")
  # categories read from the data: no integer conversion of 1e10 (it was an unclassed error)
  mu <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = bt_choice(), id = "ID")
  for (v in c(1e10, 1e6, 101, -1e10)) {
    expect_iclv_error(fit_with(with_col("q2", v, 5:6), model = mu), "iclv_error_data",
                      "'q2' has the value .* in row 5 \\(id '3'\\).*at most 100")
  }
  xb <- with_col("q2", replace(as.numeric(bt_d$q2 > 1), 5:6, 1e10))
  expect_iclv_error(fit_with(xb, model = bt_model(indicators = list(q2 = "binary"))),
                    "iclv_error_data", "binary indicator 'q2'.*1e\\+10 in row 5 \\(id '3'\\)")
  # undeclared categories with a gap name the missing category
  expect_iclv_error(fit_with(with_col("q2", 5, 5:6), model = mu), "iclv_error_data", "'q2' has the values 1, 2, 3, 5 but never 4")
})

test_that("integer controls beyond R's integer range, non-finite or non-integer are control errors", {
  for (arg in c("maxit", "trace", "checkpoint_every", "n_threads", "device")) {
    for (v in list(1e10, 2^31, -2^31, Inf, -Inf, NaN, NA_real_, 2.5, "1", NULL, c(1, 2), factor(1), list(1))) {
      expect_iclv_error(do.call(iclv_control, stats::setNames(list(v), arg)), "iclv_error_control",
                        sprintf("'%s'", arg))
    }
  }
  expect_identical(iclv_control(maxit = 2^31 - 1)$maxit, .Machine$integer.max)
  expect_iclv_error(iclv_control(maxit = -1), "iclv_error_control", "'maxit'")
  expect_iclv_error(iclv_control(checkpoint_every = 0), "iclv_error_control", "'checkpoint_every'")
  expect_iclv_error(iclv_memory_plan(bt_m, bt_d, bt_draws, n_threads = 1e10), "iclv_error_control", "'n_threads'")
  expect_iclv_error(iclv_memory_plan(bt_m, bt_d, bt_draws, device = 2^31), "iclv_error_control", "'device'")
  for (arg in c("n", "seed", "skip")) {
    for (v in list(2^53, Inf, NaN, NA, -1, 2.5, "1", TRUE, NULL, c(1, 2))) {
      expect_iclv_error(do.call(iclv_draws, c(list("pseudo"), stats::setNames(list(v), arg))),
                        "iclv_error_draws", sprintf("'%s'", arg))
    }
  }
  expect_iclv_error(iclv_draws("halton", 2^31), "iclv_error_draws", "'n'")
  # a design edited by hand is validated again where it is used (as.integer(1e10) was NA)
  for (edit in list(list(n = 1e10), list(n = NULL), list(seed = -1), list(skip = NA), list(type = "foo"),
                    list(type = "user"))) {
    bad <- utils::modifyList(unclass(bt_draws), edit)
    class(bad) <- "iclv_draws"
    expect_iclv_error(fit_with(draws = bad), "iclv_error_draws")
  }
  expect_iclv_error(iclv_draws_generate(bt_draws, n_ind = 2^31, n_lv = 1), "iclv_error_draws", "'n_ind'")
  expect_iclv_error(iclv_draws_generate(list(), 2, 1), "iclv_error_draws", "iclv_draws")
  # 2^31 - 1 draws ran for over 6 minutes in C (uninterruptible); now refused at once
  expect_iclv_error(iclv_draws_generate(iclv_draws("halton", 2^31 - 1), 1, 1), "iclv_error_draws", "2\\^28")
  expect_iclv_error(iclv_draws_generate(iclv_draws("halton", 2^14), 2^14 + 1, 1), "iclv_error_draws", "too large")
  # iclv_simulate(): its seed goes to set.seed() (an R integer), its rows to a data.frame
  for (v in list(2^31, 1e10, Inf, 1.5, NA, "1")) {
    expect_iclv_error(iclv_simulate(bt_m, bt_truth, n = 2, seed = v), "iclv_error_control", "'seed'")
  }
  expect_iclv_error(iclv_simulate(bt_m, bt_truth, n = 1e7, n_tasks = 1e4), "iclv_error_control", "'n_tasks'")
  # 2^31 - 1 rows: about 300 GiB, refused before allocating (was "cannot allocate vector")
  avail <- iclv:::.host_available_bytes()
  if (!is.na(avail) && avail < 2^38) {
    expect_iclv_error(iclv_simulate(bt_m, bt_truth, n = 2^31 - 1), "iclv_error_memory", "available")
  }
})

test_that("absurdly many categories are refused at once, and the parameter table is linear in them", {
  setTimeLimit(elapsed = 30, transient = TRUE) # the old code spent minutes here
  on.exit(setTimeLimit(elapsed = Inf), add = TRUE)
  for (cats in list(1e6, 101, 2^31, 1e300, list(q1 = 1e6))) {
    expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", categories = cats), "iclv_error_spec",
                      "'categories'.*at most 100")
  }
  expect_iclv_error(iclv_model("att =~ q1 + q2", id = "ID", categories = Inf), "iclv_error_spec", "'categories'")
  m <- iclv_model("att =~ q1 + q2", id = "ID", categories = 100)
  expect_identical(sum(m$partable$role == "threshold"), 198L)
  expect_identical(m$partable$name[2:4], c("tau_q1_1", "tau_q1_2", "tau_q1_3"))
  # the thresholds are built in one vectorised step: 2 x 1e5 take well under a second
  # (the old per-threshold loop took about 10 s for 2 x 1.6e5)
  el <- system.time(pt <- iclv:::.iclv_partable(m, c(q1 = 1e5, q2 = 1e5)))[["elapsed"]]
  expect_identical(nrow(pt), 2L * 1e5L)
  expect_lt(el, 5)
})

test_that("a catalogue of other hostile inputs ends in classed errors", {
  u <- function(...) bt_choice(list(...))
  m_mo <- iclv_model("att =~ q1 + q2 + q3", id = "ID", categories = 3)
  cases <- list(
    # model specification
    spec = quote(iclv_model(NA_character_, id = "ID")),
    spec = quote(iclv_model(list("att =~ q1"), id = "ID")),
    spec = quote(iclv_model("att =~ q1", id = NA)),
    spec = quote(iclv_model("att =~ q1", id = c("a", "b"))),
    spec = quote(iclv_model("att =~ q 1 + q2", id = "ID")),
    spec = quote(iclv_model("my att =~ q1 + q2", id = "ID")),
    spec = quote(iclv_model("`att` =~ q1 + q2", id = "ID")),
    spec = quote(iclv_model("att =~ q1 =~ q2", id = "ID")),
    spec = quote(iclv_model("att =~ q1 + q2", structural = 3, id = "ID")),
    spec = quote(iclv_model("att =~ q1 + q2", structural = factor("att ~ x"), id = "ID")),
    spec = quote(bt_model(indicators = 3)),
    spec = quote(bt_model(indicators = NA_character_)),
    spec = quote(bt_model(indicators = list(q1 = NULL))),
    spec = quote(iclv_model("att =~ q1", id = "ID", indicator_level = NA_character_)),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", fixed = c(zeta_q1 = "1"))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", fixed = c(zeta_q1 = Inf))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", fixed = 1)),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", start = list(zeta_q1 = 1, zeta_q2 = "x"))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", choice = list(type = "mnl"))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", foo = 1)),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", categories = factor(3))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", categories = list(q1 = NULL))),
    spec = quote(iclv_model("att =~ q1 + q2", id = "ID", categories = c(3, 4))),
    data = quote(iclv_model("att =~ q1 + q2 + q3", id = "ID", data = 1:3)),
    # choice part
    spec = quote(iclv_choice(NA_character_, "ch", bt_utilities)),
    spec = quote(iclv_choice("mnl", NA_character_, bt_utilities)),
    spec = quote(iclv_choice("mnl", "ch", NULL)),
    spec = quote(u(a = c("asc", "b"), b = "0")),
    spec = quote(u(a = NULL, b = "asc")),
    spec = quote(iclv_choice("mnl", "ch", c(a = NA, b = "asc"))),
    spec = quote(iclv_choice("mnl", "ch", stats::setNames(list("asc", "0"), c("a", NA)))),
    spec = quote(iclv_choice("mnl", "ch", bt_utilities, available = list(a = NA_character_))),
    spec = quote(iclv_choice("mnl", "ch", bt_utilities, available = list(a = 1))),
    spec = quote(u(a = "2 * 3", b = "0")), # (b * 2 and b * (x) are expressions now: R/expr.R)
    spec = quote(u(a = "b * (x", b = "0")),
    spec = quote(u(a = "1e5", b = "asc")),
    spec = quote(u(a = "b * foo(x)", b = "asc")),
    spec = quote(u(a = "a * b * c * d", b = "0")),
    # data
    data = quote(fit_with(bt_d[1, ])),
    data = quote(fit_with(with_col("ID", factor(replace(bt_d$ID, 3, NA))))),
    data = quote(fit_with(with_col("ID", NaN, 1:2))),
    data = quote(fit_with(with_col("q2", factor(bt_d$q2, ordered = TRUE)))),
    data = quote(fit_with(with_col("q2", as.character(bt_d$q2)))),
    data = quote(fit_with(with_col("price_a", as.Date("2020-01-01") + 1:40))),
    data = quote(fit_with(with_col("price_a", complex(real = bt_d$price_a)))),
    data = quote(fit_with(with_col("price_a", cbind(bt_d$price_a, 1)))),
    data = quote(fit_with(with_col("price_a", replace(as.integer(round(bt_d$price_a)), 4, NA_integer_)))),
    data = quote(fit_with(with_col("ch", factor(replace(bt_d$ch, 5, NA))))),
    data = quote(fit_with(with_col("ch", c(NaN, match(bt_d$ch, c("a", "b", "c"))[-1])))),
    data = quote(fit_with(with_col("ch", bt_d$ch == "a"))),
    data = quote(fit_with(with_col("ch", match(bt_d$ch, c("a", "b", "c")) - 1))),
    data = quote(fit_with(as.list(bt_d))),
    data = quote(iclv_model("att =~ q1 + q2 + q3", id = "ID", data = cbind(bt_d, q1 = 1))),
    # draws
    draws = quote(iclv_draws(NULL)),
    draws = quote(iclv_draws(list(1))),
    draws = quote(iclv_draws(array(TRUE, c(2, 3, 1)))),
    draws = quote(iclv_draws(array(0, c(2, 3, 1, 1)))),
    draws = quote(fit_with(draws = NULL)),
    draws = quote(fit_with(draws = "halton")),
    draws = quote(fit_with(draws = iclv_draws("sobol", 5, skip = 2^33))),
    draws = quote(iclv_draws_generate(bt_draws, n_ind = -1, n_lv = 1)),
    draws = quote(iclv_draws_generate(bt_draws, n_ind = 2, n_lv = 1.5)),
    draws = quote(iclv_draws_generate(bt_draws, n_ind = "a", n_lv = 1)),
    # controls and iclv() arguments
    control = quote(iclv_control(tol = Inf)),
    control = quote(iclv_control(reltol = 0)),
    control = quote(iclv_control(method = NA)),
    control = quote(iclv_control(checkpoint = 3)),
    control = quote(iclv_control(checkpoint = NA_character_)),
    control = quote(iclv_control(device_memory = Inf)),
    control = quote(iclv_control(callback = list())),
    control = quote(iclv_control(start_search = "yes")),
    spec = quote(iclv(NULL, bt_d)),
    control = quote(iclv(bt_m, bt_d, backend = NA)),
    control = quote(iclv(bt_m, bt_d, backend = c("cpu", "cuda"))),
    input = quote(fit_with(start = c(asc_a = Inf))),
    input = quote(fit_with(start = c(asc_a = NA_real_))),
    input = quote(fit_with(fixed = c(asc_a = NA_real_))),
    input = quote(fit_with(start = c(`asc a` = 1))),
    input = quote(fit_with(start = list(asc_a = 1))),
    input = quote(fit_with(start = "asc_a")),
    input = quote(fit_with(fixed = c(tau_q1_1 = 1, tau_q1_2 = 0))),
    control = quote(fit_with(resume = "/nonexistent/checkpoint.rds")),
    control = quote(fit_with(resume = NA)),
    # iclv_loglik()
    input = quote(iclv_loglik(bt_m, bt_d, replace(bt_truth, "asc_a", Inf), draws = bt_draws)),
    input = quote(iclv_loglik(bt_m, bt_d, as.list(bt_truth), draws = bt_draws)),
    input = quote(iclv_loglik(bt_m, bt_d, c(bt_truth, foo = 1), draws = bt_draws)),
    control = quote(iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws, gradient = NA)),
    control = quote(iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws, backend = "gpu")),
    data = quote(iclv_loglik(bt_m, as.matrix(bt_d), bt_truth, draws = bt_draws)),
    numeric = quote(iclv_loglik(bt_m, bt_d, replace(bt_truth, "zeta_q1", 1e200), draws = bt_draws)),
    input = quote(iclv_loglik(m_mo, bt_d, bt_truth, draws = bt_draws)),
    # iclv_simulate()
    control = quote(iclv_simulate(bt_m, bt_truth, n = 0)),
    control = quote(iclv_simulate(bt_m, bt_truth, n = NA)),
    control = quote(iclv_simulate(bt_m, bt_truth, n = "a")),
    input = quote(iclv_simulate(bt_m, bt_truth[-1], n = 2)),
    input = quote(iclv_simulate(bt_m, replace(bt_truth, 1, NA), n = 2)),
    input = quote(iclv_simulate(bt_m, unname(bt_truth), n = 2)),
    input = quote(iclv_simulate(bt_m, as.list(bt_truth), n = 2)),
    input = quote(iclv_simulate(bt_m, replace(bt_truth, c("tau_q1_1", "tau_q1_2"), c(1, 0)), n = 2)),
    control = quote(iclv_simulate(bt_m, bt_truth, n = 2, attributes = NA)),
    spec = quote(iclv_simulate(bt_m, bt_truth, n = 2, binary = "q1")),
    spec = quote(iclv_simulate(NULL, bt_truth, n = 2)),
    # memory plan
    spec = quote(iclv_memory_plan(list(), bt_d)),
    control = quote(iclv_memory_plan(bt_m, bt_d, bt_draws, device = -1))
  )
  for (k in seq_along(cases)) {
    cls <- paste0("iclv_error_", names(cases)[k])
    got <- tryCatch({ eval(cases[[k]]); "no error" },
                    iclv_error = function(e) class(e)[1],
                    error = function(e) paste("unclassed:", conditionMessage(e)),
                    warning = function(w) paste("warning:", conditionMessage(w)))
    expect_identical(got, cls, label = deparse(cases[[k]], width.cutoff = 500L)[1])
  }
})

test_that("hostile inputs that are legal give correct results (control cases)", {
  ctl <- iclv_control(maxit = 0, hessian = FALSE, vcov = "bhhh", n_threads = 1)
  ll0 <- iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws)$loglik
  # a character id, CRLF line ends, an integer draws array: the same model and numbers
  expect_equal(iclv_loglik(bt_m, with_col("ID", paste0("p", bt_d$ID)), bt_truth, draws = bt_draws)$loglik, ll0)
  m_crlf <- iclv_model("att =~ q1 +\r\n q2 + q3\r\n", structural = "att ~ age\r\n", choice = bt_choice(),
                       id = "ID", categories = 3)
  expect_equal(iclv_loglik(m_crlf, bt_d, bt_truth, draws = bt_draws)$loglik, ll0)
  e <- iclv_draws_generate(bt_draws, n_ind = 20, n_lv = 1)
  expect_equal(iclv_loglik(bt_m, bt_d, bt_truth, draws = e)$loglik, ll0)
  # a logical availability column reads as 0/1
  ma <- bt_model(choice = bt_choice(available = list(a = "av")))
  expect_equal(iclv_loglik(ma, transform(bt_d, av = TRUE), bt_truth, draws = bt_draws)$loglik, ll0)
  # unused columns with empty or NA names are not the model's business
  x <- bt_d
  names(x)[2] <- ""
  expect_equal(iclv_loglik(bt_m, x, bt_truth, draws = bt_draws)$loglik, ll0)
  # a seed at the edge of set.seed()'s range, and a negative one, are legal
  expect_identical(nrow(iclv_simulate(bt_m, bt_truth, n = 2, seed = -(2^31 - 1))), 2L)
  expect_identical(nrow(iclv_simulate(bt_m, bt_truth, n = 2, seed = 2^31 - 1)), 2L)
  # the largest integer controls are legal
  expect_identical(iclv_control(checkpoint_every = 2^31 - 1, trace = 2^31 - 1)$trace, .Machine$integer.max)
})

# ---- hostile inputs found by review --------------------------------------------
# a second, independent battery (issue 12): each case below ended in an
# unclassed error or was accepted silently before
bt_review_fit <- fit_with(start = bt_truth, control = iclv_control(maxit = 50, n_threads = 1))

test_that("hostile inputs found by review: fits edited by hand are input errors in every method", {
  fit <- bt_review_fit
  expect_identical(nrow(confint(fit)), 14L) # control case
  edits <- list(
    function(f) { f$coefficients <- NULL; f },
    function(f) { f$coefficients <- f$coefficients[-1]; f },
    function(f) { f$vcov <- NULL; f },
    function(f) { f$vcov$robust <- matrix(1, 2, 2); f },
    function(f) { f$convergence <- NULL; f },
    function(f) { f$partable <- NULL; f },
    function(f) { f$n_params <- NULL; f },
    function(f) { f$loglik <- "a"; f })
  for (k in seq_along(edits)) {
    f <- edits[[k]](fit)
    for (method in list(vcov, summary, confint, tidy, glance, logLik, predict, fitted)) {
      expect_iclv_error(method(f), "iclv_error_input", "modified by hand")
    }
  }
  f <- fit
  f$compiled <- NULL
  expect_iclv_error(predict(f), "iclv_error_input", "'compiled'")
  expect_iclv_error(fitted(f), "iclv_error_input", "'compiled'")
  expect_iclv_error(iclv:::vcov.iclv(list()), "iclv_error_input", "class")
})

test_that("hostile inputs found by review: confint() and tidy() arguments", {
  fit <- bt_review_fit
  expect_identical(rownames(confint(fit, 2)), "tau_q1_1") # control case
  for (parm in list(0, -1, 15, 1.5, NA, list("asc_a"), factor("asc_a"))) {
    expect_iclv_error(confint(fit, parm = parm), "iclv_error_input", "'parm'")
  }
  expect_iclv_error(confint(fit, level = NA_real_), "iclv_error_control", "'level'")
  expect_iclv_error(tidy(fit, conf.int = TRUE, conf.level = 2), "iclv_error_control", "'conf.level'")
  expect_iclv_error(tidy(fit, conf.int = TRUE, conf.level = NA), "iclv_error_control", "'conf.level'")
  expect_iclv_error(tidy(fit, conf.int = "yes"), "iclv_error_control", "'conf.int'")
})

test_that("hostile inputs found by review: ids, controls, callbacks and models edited by hand", {
  expect_iclv_error(fit_with(with_col("ID", complex(real = bt_d$ID))), "iclv_error_data", "'ID'.*complex")
  expect_iclv_error(fit_with(with_col("ID", as.raw(bt_d$ID))), "iclv_error_data", "'ID'.*raw")
  expect_iclv_error(fit_with(with_col("ID", Inf, 1:2)), "iclv_error_data", "'ID' is not finite \\(Inf\\) in row 1")
  bad_ctl <- structure(list(maxit = "a"), class = "iclv_control")
  expect_iclv_error(fit_with(control = bad_ctl), "iclv_error_control", "'maxit'")
  ctl <- iclv_control(n_threads = 1)
  ctl$foo <- 1
  expect_iclv_error(fit_with(control = ctl), "iclv_error_control", "'foo'")
  expect_iclv_error(iclv_control(callback = function() NULL), "iclv_error_control", "three arguments")
  expect_iclv_error(iclv_control(callback = function(a, b) NULL), "iclv_error_control", "three arguments")
  expect_s3_class(iclv_control(callback = function(...) NULL), "iclv_control")
  expect_iclv_error(fit_with(control = iclv_control(maxit = 3, n_threads = 1, callback = function(...) stop("boom"))),
                    "iclv_error_control", "callback.*iteration 1.*boom")
  edits <- list(id = function(m) { m$id <- NULL; m },
                indicators = function(m) { m$indicators <- c(m$indicators, "zz"); m },
                lvs = function(m) { m$lvs <- character(0); m },
                choice = function(m) { m$choice <- "x"; m },
                ind_type = function(m) { m$ind_type[1] <- "poisson"; m })
  for (k in names(edits)) {
    m <- edits[[k]](bt_m)
    expect_iclv_error(iclv_loglik(m, bt_d, bt_truth, draws = bt_draws), "iclv_error_spec", "edited by hand")
  }
})

test_that("hostile inputs found by review: user draws are matched to the latent variables by name", {
  m2 <- iclv_model("f1 =~ q1 + q2\n f2 =~ q3", id = "ID", categories = 3)
  p2 <- bt_truth[1:9]
  set.seed(3)
  a <- array(stats::rnorm(20 * 4 * 2), c(20, 4, 2), dimnames = list(NULL, NULL, c("f1", "f2")))
  b <- a[, , 2:1] # the same draws, slices in the other order, named
  ll_a <- iclv_loglik(m2, bt_d, p2, draws = a)$loglik
  expect_identical(iclv_loglik(m2, bt_d, p2, draws = b)$loglik, ll_a)
  expect_identical(iclv_loglik(m2, bt_d, p2, draws = iclv_draws(b))$loglik, ll_a)
  # unnamed slices are taken in position order: a different log-likelihood
  expect_false(iclv_loglik(m2, bt_d, p2, draws = unname(b))$loglik == ll_a)
  named <- function(nm) array(stats::rnorm(60), c(20, 3, 1), dimnames = list(NULL, NULL, nm))
  expect_iclv_error(iclv_loglik(bt_m, bt_d, bt_truth, draws = named("zz")), "iclv_error_draws", "'zz'.*'att'")
  expect_iclv_error(fit_with(draws = iclv_draws(named("zz"))), "iclv_error_draws", "'zz'")
  expect_iclv_error(iclv_draws(array(0, c(20, 3, 2), dimnames = list(NULL, NULL, c("f", "f")))), "iclv_error_draws", "distinct")
  expect_iclv_error(iclv_draws_generate(bt_draws, n_ind = 2, n_lv = 0), "iclv_error_draws", "'n_lv'")
})

test_that("hostile inputs found by review: names that mean two things are data errors", {
  # alternatives named "2", "1", "3": a numeric choice 1 is position 1 ("2") or "1"?
  u <- list(`2` = "asc_2 + b_price * price_b", `1` = "asc_1 + b_price * price_a + l_att * att", `3` = "0")
  m <- bt_model(choice = bt_choice(u))
  p <- c(bt_truth[1:10], asc_1 = 0.2, asc_2 = -0.3, b_price = -1, l_att = 0.7)
  d_num <- transform(bt_d, ch = match(ch, c("a", "b", "c")))
  expect_iclv_error(iclv_loglik(m, d_num, p, draws = bt_draws), "iclv_error_data", "position 1 is '2'")
  # the same choices as names give the model's log-likelihood (control case)
  expect_equal(iclv_loglik(m, transform(d_num, ch = as.character(ch)), p, draws = bt_draws)$loglik,
               iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws)$loglik)
  # alternatives named 1..J in order are unambiguous
  m_ok <- bt_model(choice = bt_choice(stats::setNames(unname(bt_utilities), c("1", "2", "3"))))
  expect_equal(iclv_loglik(m_ok, d_num, bt_truth, draws = bt_draws)$loglik,
               iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws)$loglik)
  # a latent variable spelled like a column of the data
  m_lv <- iclv_model("price_a =~ q1 + q2 + q3", id = "ID", categories = 3,
                     choice = bt_choice(list(a = "asc_a + b * price_a", b = "0", c = "0")))
  expect_iclv_error(iclv_loglik(m_lv, bt_d, c(bt_truth[1:9], asc_a = 0, b = 1), draws = bt_draws),
                    "iclv_error_data", "latent variable 'price_a' is also the name of a column")
})

test_that("hostile inputs found by review: R's reserved words are not names", {
  u <- function(a) bt_choice(list(a = a, b = "asc_b + b_price * price_b", c = "0"))
  # "Inf", "NA", "TRUE" ... became parameters or columns of those names
  for (w in c("Inf", "NA", "NaN", "NULL", "TRUE", "if", "...", "..1")) {
    expect_iclv_error(u(w), "iclv_error_spec", "utility of 'a'")
    expect_iclv_error(u(sprintf("asc_a + b * %s", w)), "iclv_error_spec", "not a name")
  }
  expect_iclv_error(iclv_model("NA =~ q1 + q2", id = "ID"), "iclv_error_spec", "'NA' is not a name")
  expect_iclv_error(iclv_model("function =~ q1 + q2", id = "ID"), "iclv_error_spec", "'function'")
  expect_iclv_error(iclv_model("att =~ TRUE + q2", id = "ID"), "iclv_error_spec", "'TRUE'")
  expect_iclv_error(bt_model(structural = "att ~ age + NA"), "iclv_error_spec", "'NA'")
  # names that merely contain them, and '.', are names (control cases)
  expect_identical(u("NA_asc + b_price * price_a")$terms$a$param, c("NA_asc", "b_price"))
  expect_identical(u(".")$terms$a$param, ".")
})

test_that("hostile inputs found by review: iclv_loglik() evaluates one individual with declared categories", {
  # one individual shows one category of each indicator: an evaluation at
  # given parameters needs no more (estimation still does)
  full <- iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws)
  one <- bt_d[bt_d$ID == bt_d$ID[1], ]
  got <- iclv_loglik(bt_m, one, bt_truth, draws = bt_draws, scores = TRUE)
  # an individual's draws do not depend on the others: its term of the full log-likelihood
  expect_equal(got$loglik, full$loglik_i[[1]], tolerance = 1e-12)
  expect_equal(unname(got$scores[1, ]), unname(iclv_loglik(bt_m, bt_d, bt_truth, draws = bt_draws,
                                                           scores = TRUE)$scores[1, ]), tolerance = 1e-12)
  expect_iclv_error(fit_with(one), "iclv_error_data", "fewer than 2 observed categories")
  # undeclared categories are read from the data: one value is too few
  mu <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", choice = bt_choice(), id = "ID")
  expect_iclv_error(iclv_loglik(mu, one, bt_truth, draws = bt_draws), "iclv_error_data")
})

test_that("hostile inputs found by review: print digits", {
  fit <- bt_review_fit
  for (d in list(NA, "a", -5, 0, 2.5, c(3, 4))) {
    expect_iclv_error(print(fit, digits = d), "iclv_error_control", "'digits'")
    expect_iclv_error(print(summary(fit), digits = d), "iclv_error_control", "'digits'")
  }
  # large values print (capped at what format() allows), also as the default
  expect_output(print(fit, digits = 100), "Log-likelihood")
  op <- options(digits = 22)
  expect_output(print(fit), "Log-likelihood")
  expect_output(print(summary(fit)), "Log-likelihood")
  options(op)
})
