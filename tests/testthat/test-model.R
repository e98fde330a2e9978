# iclv_model() and iclv_choice(): parsing, naming, the parameter table.

test_that("measurement syntax: comments, several lines, continuation, cross-loading", {
  m <- iclv_model(
    measurement = "
      # a comment line
      a =~ y1 + y2   # trailing comment
      b =~ y3 +
           y2
      a =~ y4; c =~ y5 + y6",
    id = "ID", categories = 4)
  expect_equal(m$lvs, c("a", "b", "c"))
  expect_equal(m$indicators, c("y1", "y2", "y4", "y3", "y5", "y6"))
  expect_equal(m$loads$y2, c("a", "b"))
  pt <- m$partable
  expect_true(all(c("zeta_a_y2", "zeta_b_y2", "zeta_y1", "zeta_y3") %in% pt$name))
  expect_false("zeta_y2" %in% pt$name)
  expect_equal(pt$name[1:9], c("zeta_y1", "tau_y1_1", "tau_y1_2", "tau_y1_3",
                               "zeta_a_y2", "zeta_b_y2", "tau_y2_1", "tau_y2_2", "tau_y2_3"))
  expect_equal(nrow(pt), 6 * 3 + 7)  # 6 x 3 thresholds, 7 loadings
  expect_equal(names(pt), c("name", "block", "lhs", "op", "rhs", "free", "start", "role", "label", "defined"))
  expect_equal(pt$op[pt$name == "zeta_b_y2"], "=~")
  expect_equal(pt$lhs[pt$name == "zeta_b_y2"], "b")
  expect_equal(pt$op[pt$name == "tau_y1_2"], "|")
  expect_equal(pt$rhs[pt$name == "tau_y1_2"], "t2")
})

test_that("parameter names and table order for every indicator type and block", {
  m <- iclv_model(
    measurement = "f =~ o1 + n1 + b1 + b2 + l1",
    structural = "f ~ x1 + x2",
    indicators = list(n1 = "normal", b1 = "binary", b2 = "binary_logit", l1 = "ordered_logit"),
    choice = iclv_choice("mnl", choice = "ch",
                         utilities = list(A = "asc_a + bp * pa + lam * f", B = "bp * pb", C = "0")),
    id = "ID", categories = list(o1 = 3, l1 = 2))
  pt <- m$partable
  expect_equal(pt$name, c("zeta_o1", "tau_o1_1", "tau_o1_2",
                          "zeta_n1", "alpha_n1", "sigma_n1",
                          "zeta_b1", "alpha_b1",
                          "zeta_b2", "alpha_b2",
                          "zeta_l1", "tau_l1_1",
                          "gamma_f_x1", "gamma_f_x2",
                          "asc_a", "bp", "lam"))
  expect_equal(pt$role, c("loading", "threshold", "threshold", "loading", "intercept", "sd",
                          "loading", "intercept", "loading", "intercept", "loading", "threshold",
                          "structural", "structural", "choice", "choice", "choice"))
  expect_equal(pt$op, c("=~", "|", "|", "=~", "~1", "~~", "=~", "~1", "=~", "~1", "=~", "|",
                        "~", "~", ":=", ":=", ":="))
  expect_equal(pt$block, rep(c("measurement", "structural", "choice"), c(12, 2, 3)))
  expect_equal(unname(m$ind_type), c("ordered_probit", "normal", "binary_probit", "binary_logit", "ordered_logit"))
  expect_equal(pt$lhs[pt$name == "bp"], "A,B")
  expect_equal(pt$rhs[pt$name == "bp"], "pa,pb")
  expect_equal(pt$rhs[pt$name == "lam"], "f")
  expect_true(all(pt$free))
  expect_equal(pt$start[pt$role %in% c("structural", "choice")], rep(0, 5))
})

test_that("structural model: LV sources, topological order, cycles", {
  m <- iclv_model(
    measurement = "a =~ y1\n b =~ y2\n c =~ y3",
    structural = "a ~ b + x\n b ~ c",
    id = "ID", categories = 3)
  expect_equal(m$lv_order, c("c", "b", "a"))
  expect_equal(m$covariates, "x")
  expect_equal(m$partable$name[m$partable$block == "structural"], c("gamma_a_b", "gamma_a_x", "gamma_b_c"))
  err <- expect_error(
    iclv_model("a =~ y1\n b =~ y2\n c =~ y3", structural = "a ~ b\n b ~ c\n c ~ a", id = "ID"),
    class = "iclv_error_spec")
  expect_match(conditionMessage(err), "cycle")
  expect_match(conditionMessage(err), "'a'.*'b'.*'c'|'a'.*'c'.*'b'")
  expect_error(iclv_model("a =~ y1", structural = "a ~ a", id = "ID"), "cycle", class = "iclv_error_spec")
})

test_that("fixed and start set free and start; unknown names are errors", {
  m <- iclv_model("f =~ y1 + y2", structural = "f ~ x",
                  choice = iclv_choice("probit", "ch", list(yes = "asc + lam * f", no = "0")),
                  id = "ID", categories = 3,
                  fixed = c(asc = 0.25), start = c(zeta_y1 = 2, tau_y2_1 = -0.5))
  pt <- m$partable
  expect_false(pt$free[pt$name == "asc"])
  expect_equal(pt$start[pt$name == "asc"], 0.25)
  expect_equal(pt$start[pt$name == "zeta_y1"], 2)
  expect_equal(pt$start[pt$name == "tau_y2_1"], -0.5)
  expect_equal(sum(!pt$free), 1)
  # a choice parameter in no term (only reachable through start/fixed names)
  expect_error(iclv_model("f =~ y1", choice = iclv_choice("probit", "ch", list(yes = "asc + lam * f", no = "0")),
                          id = "ID", fixed = c(b_cost = 1)), "b_cost", class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", id = "ID", start = c(zeta_y9 = 1)), "zeta_y9", class = "iclv_error_spec")
  # undeclared categories: threshold names are accepted now, checked with the data
  m2 <- iclv_model("f =~ y1", id = "ID", start = c(tau_y1_1 = -1))
  expect_equal(m2$start, c(tau_y1_1 = -1))
})

test_that("indicator types, aliases and categories are validated", {
  m <- iclv_model("f =~ y1 + y2", indicators = c(y2 = "binary"), id = "ID")
  expect_equal(unname(m$ind_type), c("ordered_probit", "binary_probit"))
  expect_error(iclv_model("f =~ y1", indicators = "poisson", id = "ID"), "poisson", class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", indicators = c(y7 = "normal"), id = "ID"), "y7", class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", id = "ID", categories = 2.5), class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", id = "ID", indicator_level = "task"), class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", id = "ID", colour = "red"), "colour", class = "iclv_error_spec")
  # lavaan's fixed-value modifier (test-syntax-modifiers.R): a fixed loading
  m1 <- iclv_model("f =~ 1*y1", id = "ID")
  expect_false(m1$partable$free[m1$partable$name == "zeta_y1"])
  expect_error(iclv_model("f =~ 1*y1 + 1 * y1", id = "ID"), class = "iclv_error_spec")
  expect_error(iclv_model("f ~ y1", id = "ID"), class = "iclv_error_spec")
})

test_that("an LV without indicators is an error", {
  expect_error(iclv_model("f =~ y1", structural = "g ~ f", id = "ID"), "'g'.*no indicators",
               class = "iclv_error_spec")
})

test_that("iclv_choice parses utilities and rejects what it cannot represent", {
  ch <- iclv_choice("mnl", "best", list(a = "asc + b * x1 + c * x2 * lv", b = "b * x3", c = "0"))
  expect_equal(ch$terms$a$param, c("asc", "b", "c"))
  expect_equal(ch$terms$a$f1, c(NA, "x1", "x2"))
  expect_equal(nrow(ch$terms$c), 0L)
  # '-' and numbers make a utility an R expression (R/expr.R): the sign and the
  # number go into the term's data expression; the first plain name is the parameter
  ex <- iclv_choice("mnl", "best", list(a = "asc - b * x", b = "0"))
  expect_equal(ex$terms$a$param, c("asc", "b"))
  expect_equal(ex$terms$a$f1, c(NA, "-x"))
  ex <- iclv_choice("mnl", "best", list(a = "2 * x", b = "0"))
  expect_equal(ex$terms$a$param, "x")
  expect_equal(ex$terms$a$f1, "2")
  expect_error(iclv_choice("mnl", "best", list(a = "2 * 3", b = "0")), "has no parameter", class = "iclv_error_spec")
  expect_error(iclv_choice("probit", "best", list(a = "x", b = "0", c = "0")), "exactly 2", class = "iclv_error_spec")
  expect_error(iclv_choice("mnl", "best", list(a = "asc")), class = "iclv_error_spec")
  expect_error(iclv_choice("mnl", "best", list(a = "asc", b = "0"), avail = "x"), class = "iclv_error_spec")
  expect_error(iclv_choice("mnl", "best", list(a = "asc", b = "0"), available = list(z = "av")), "'z'",
               class = "iclv_error_spec")
  expect_error(iclv_choice("logit", "best", list(a = "asc", b = "0")), class = "iclv_error_spec")
  expect_output(print(ch), "Multinomial logit")
})

test_that("utility factors: LVs decided by the model, either order, undefined LVs", {
  m <- iclv_model("f =~ y1", choice = iclv_choice("mnl", "ch", list(
    A = "b1 * f * x", B = "b1 * x2 * f + b2 * f"), available = list(B = "avB")), id = "ID")
  tm <- m$choice$terms
  expect_equal(tm$A$col, "x")
  expect_equal(tm$A$lv, "f")
  expect_equal(tm$B$col, c("x2", NA))
  expect_equal(tm$B$lv, c("f", "f"))
  # 'g' is neither an LV nor a column: read as a parameter only in a product
  # with b1, which the data cannot identify (R/tape.R)
  expect_warning(mg <- iclv_model("f =~ y1", choice = iclv_choice("mnl", "ch", list(A = "b1 * x * g", B = "0")), id = "ID"),
                 "'f' enters neither the choice model")
  dg <- data.frame(ID = 1:4, y1 = c(1, 2, 1, 2), ch = c("A", "B", "A", "B"), x = 1:4)
  expect_error(iclv:::.iclv_compile(mg, dg), "'g'.*latent variable the model does not define", class = "iclv_error_data")
  expect_error(iclv_model("f =~ y1 \n g =~ y2", choice = iclv_choice("mnl", "ch", list(A = "b1 * f * g", B = "0")), id = "ID"),
               class = "iclv_error_spec")
})

test_that("a choice parameter named like a generated parameter is an error", {
  expect_error(iclv_model("f =~ y1", choice = iclv_choice("mnl", "ch", list(A = "zeta_y1 * x", B = "0")), id = "ID"),
               "zeta_y1", class = "iclv_error_spec")
  expect_error(iclv_model("f =~ y1", choice = iclv_choice("mnl", "ch", list(A = "tau_y1_2 * x", B = "0")), id = "ID"),
               "tau_y1_2", class = "iclv_error_spec")
})

test_that("an LV that enters neither the choice nor another equation warns", {
  ch <- iclv_choice("mnl", "ch", list(A = "asc + lam * f", B = "0"))
  expect_warning(iclv_model("f =~ y1\n g =~ y2", choice = ch, id = "ID"), "'g'", class = "iclv_warning_spec")
  expect_no_warning(iclv_model("f =~ y1\n g =~ y2", structural = "f ~ g", choice = ch, id = "ID"))
})

test_that("print and summary show the table and the counts per block", {
  sp <- iclv_seed_problem(n = 10, n_tasks = 2)
  expect_output(print(sp$model), "5 latent variables")
  expect_output(print(sp$model), "tau_ind38_4")
  s <- summary(sp$model)
  expect_s3_class(s, "summary.iclv_model")
  expect_equal(s$counts$free, c(190L, 7L, 5L, 202L))
  expect_output(print(s), "measurement +190")
  m <- iclv_model("f =~ y1", id = "ID")
  expect_output(print(m), "added from the data")
})

test_that("the seed problem has 202 free parameters: 190 / 7 / 5", {
  sp <- iclv_seed_problem(n = 30, n_tasks = 3, seed = 2)
  pt <- sp$model$partable
  expect_equal(sum(pt$free), 202L)
  expect_equal(as.vector(table(factor(pt$block[pt$free], c("measurement", "structural", "choice")))),
               c(190L, 7L, 5L))
  expect_equal(sum(pt$role == "loading"), 38L)
  expect_equal(sum(pt$role == "threshold"), 152L)
  expect_equal(length(sp$model$indicators), 38L)
  expect_equal(as.vector(table(unlist(sp$model$loads))), c(8L, 8L, 8L, 7L, 7L))
  expect_equal(sp$model$lv_order[5], "lv5")
  expect_equal(names(sp$params), pt$name)
  expect_equal(nrow(sp$data), 90L)
  expect_equal(sp$model$choice$type, "probit")
  expect_equal(sp$model$choice$alternatives, c("yes", "no"))
  cmp <- iclv:::.iclv_compile(sp$model, sp$data)
  expect_equal(cmp$c$n_par, 202L)
  expect_equal(cmp$c$n_rows, 90L)
  expect_equal(cmp$c$n_obs, 30L * 38L)
})

test_that("iclv_model(data = ) checks the data and completes the thresholds", {
  d <- data.frame(ID = 1:6, y1 = c(1, 2, 3, 1, 2, 3), y2 = c(1, 2, 1, 2, 1, 2))
  m <- iclv_model("f =~ y1 + y2", id = "ID", data = d)
  expect_equal(m$categories, c(y1 = 3L, y2 = 2L))
  expect_equal(sum(m$partable$role == "threshold"), 3L)
  expect_error(iclv_model("f =~ y1 + y3", id = "ID", data = d), "y3", class = "iclv_error_data")
})
