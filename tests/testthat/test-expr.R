# Utilities written as R expressions (R/expr.R): data-only subexpressions
# become X columns at compile time, so a linear-in-parameters expression
# utility must give exactly the likelihood of the same model written with
# hand-made columns.

skip_if_not(engine_ok(), "the compiled iclv engine is not loadable")

drug_path <- "/work/shared/data/drugchoice.csv"

test_that("Apollo's example 24 with factor comparisons on the raw drug-choice columns equals the dummy-column version", {
  skip_if_not(file.exists(drug_path), "the shared drug-choice data are not here")
  d <- utils::read.csv(drug_path, stringsAsFactors = FALSE)
  d <- d[d$ID %in% unique(d$ID)[1:40], ]
  d$brand_2 <- factor(d$brand_2) # a factor column compares by its labels
  # Apollo's utilities (apollo_example_24), the base levels' coefficients fixed at 0
  branded <- function(i) gsub("#", i, paste(
    "b_brand_Artemis * (brand_# == 'Artemis') + b_brand_Novum * (brand_# == 'Novum') +",
    "b_country_CH * (country_# == 'Switzerland') + b_country_DK * (country_# == 'Denmark') +",
    "b_country_USA * (country_# == 'USA') + b_char_standard * (char_# == 'standard') +",
    "b_char_fast * (char_# == 'fast acting') + b_char_double * (char_# == 'double strength') +",
    "b_risk * side_effects_# + b_price * price_# + lambda * LV"))
  generic <- function(i) gsub("#", i, paste(
    "b_brand_BestValue * (brand_# == 'BestValue') + b_brand_Supermarket * (brand_# == 'Supermarket') +",
    "b_brand_PainAway * (brand_# == 'PainAway') + b_country_USA * (country_# == 'USA') +",
    "b_country_IND * (country_# == 'India') + b_country_RUS * (country_# == 'Russia') +",
    "b_country_BRA * (country_# == 'Brazil') + b_char_standard * (char_# == 'standard') +",
    "b_char_fast * (char_# == 'fast acting') + b_risk * side_effects_# + b_price * price_#"))
  # the same with hand-made 0/1 columns, the base levels left out
  dd <- d
  dummies <- list(brand = c("Novum", "BestValue", "Supermarket", "PainAway"),
                  country = c("Switzerland", "Denmark", "India", "Russia", "Brazil"),
                  char = c("fast acting", "double strength"))
  for (i in 1:4) for (v in names(dummies)) for (lev in dummies[[v]]) {
    dd[[sprintf("%s_%s_%d", v, make.names(lev), i)]] <- as.numeric(as.character(d[[sprintf("%s_%d", v, i)]]) == lev)
  }
  branded_d <- function(i) gsub("#", i, paste(
    "b_brand_Novum * brand_Novum_# + b_country_CH * country_Switzerland_# + b_country_DK * country_Denmark_# +",
    "b_char_fast * char_fast.acting_# + b_char_double * char_double.strength_# +",
    "b_risk * side_effects_# + b_price * price_# + lambda * LV"))
  generic_d <- function(i) gsub("#", i, paste(
    "b_brand_BestValue * brand_BestValue_# + b_brand_Supermarket * brand_Supermarket_# +",
    "b_brand_PainAway * brand_PainAway_# + b_country_IND * country_India_# + b_country_RUS * country_Russia_# +",
    "b_country_BRA * country_Brazil_# + b_char_fast * char_fast.acting_# + b_risk * side_effects_# + b_price * price_#"))
  mk <- function(u, fixed = NULL) {
    iclv_model("LV =~ attitude_quality + attitude_ingredients + attitude_patent + attitude_dominance",
               structural = "LV ~ regular_user + university_educated + over_50",
               indicators = "ordered_logit",
               choice = iclv_choice("mnl", choice = "best", utilities = u),
               id = "ID", categories = 5, fixed = fixed)
  }
  base0 <- c(b_brand_Artemis = 0, b_country_USA = 0, b_char_standard = 0)
  m_expr <- mk(list(alt1 = branded(1), alt2 = branded(2), alt3 = generic(3), alt4 = generic(4)), fixed = base0)
  m_dum <- mk(list(alt1 = branded_d(1), alt2 = branded_d(2), alt3 = generic_d(3), alt4 = generic_d(4)))
  # Apollo example 24's estimates, rounded
  p <- c(b_brand_Novum = 0.05, b_brand_BestValue = -0.3, b_brand_Supermarket = -0.5, b_brand_PainAway = -0.9,
         b_country_CH = 0.6, b_country_DK = 0.25, b_country_IND = -0.6, b_country_RUS = -0.5,
         b_country_BRA = -0.3, b_char_fast = 0.1, b_char_double = 0.4, b_risk = -0.06, b_price = -0.9,
         lambda = 0.8, gamma_LV_regular_user = 0.3, gamma_LV_university_educated = -0.3,
         gamma_LV_over_50 = 0.7)
  for (ind in c("quality", "ingredients", "patent", "dominance")) {
    p[paste0("zeta_attitude_", ind)] <- 1.2
    p[paste0("tau_attitude_", ind, "_", 1:4)] <- c(-2, -1, 1, 2.5)
  }
  set.seed(24)
  user <- array(rnorm(40 * 25), c(40, 25, 1))
  le <- iclv_loglik(m_expr, d, p, draws = user)
  ld <- iclv_loglik(m_dum, dd, p, draws = user)
  expect_lt(abs(le$loglik - ld$loglik), 1e-10)
  expect_lt(abs(le$loglik - ld$loglik) / abs(ld$loglik), 1e-12)
  expect_equal(le$gradient[names(ld$gradient)], ld$gradient, tolerance = 1e-10)
  # the comparisons made exactly the dummy columns (data-only work done once, in R)
  ce <- iclv:::.iclv_compile(m_expr, d)
  Xe <- matrix(ce$c$X, nrow = ce$c$n_xcol, dimnames = list(ce$xcols, NULL))
  expect_identical(Xe["(brand_2 == \"Novum\")", ], dd$brand_Novum_2)
  expect_identical(Xe["(char_3 == \"fast acting\")", ], dd$char_fast.acting_3)
})

# A small model written with expressions, and the same with columns made by hand.
expr_pair <- function(n = 60, seed = 7) {
  m_expr <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a - b_cost * cost_a / (1 + income^2) + l_att * att * (kind == 'premium')",
      b = "asc_b - b_cost * cost_b / (1 + income^2) + b_sq * sqrt(1 + time_b^2) + b_log * log(2 + time_b)",
      c = "ifelse(income > 0.5, b_hi, b_lo) * exp(-time_b / 2)")),
    id = "ID", categories = 3)
  p <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
         zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5, gamma_att_age = 0.5, asc_a = 0.2, b_cost = 0.8,
         l_att = 0.9, asc_b = -0.3, b_sq = 0.4, b_log = -0.3, b_hi = 1, b_lo = -0.5)
  d <- iclv_simulate(m_expr, p, n = n, n_tasks = 4, seed = seed, attributes = "uniform")
  hand <- d
  hand$x_a <- -(hand$cost_a / (1 + hand$income^2))
  hand$x_b <- -(hand$cost_b / (1 + hand$income^2))
  hand$prem <- as.numeric(hand$kind == "premium")
  hand$sq <- sqrt(1 + hand$time_b^2)
  hand$lg <- log(2 + hand$time_b)
  hand$hi <- exp(-hand$time_b / 2) * (hand$income > 0.5)
  hand$lo <- exp(-hand$time_b / 2) * !(hand$income > 0.5)
  m_hand <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_cost * x_a + l_att * att * prem",
      b = "asc_b + b_cost * x_b + b_sq * sq + b_log * lg",
      c = "b_hi * hi + b_lo * lo")),
    id = "ID", categories = 3)
  list(m_expr = m_expr, m_hand = m_hand, d = d, hand = hand, p = p)
}

test_that("arithmetic, exp/log/sqrt, comparisons and ifelse give the likelihood of hand-made columns", {
  x <- expr_pair()
  expect_true(is.character(x$d$kind) && all(x$d$kind %in% c("premium", "other")))
  dr <- iclv_draws("halton", 30, seed = 1)
  le <- iclv_loglik(x$m_expr, x$d, x$p, draws = dr, hessian = TRUE)
  lh <- iclv_loglik(x$m_hand, x$hand, x$p, draws = dr, hessian = TRUE)
  expect_lt(abs(le$loglik - lh$loglik) / abs(lh$loglik), 1e-12)
  expect_equal(le$gradient[names(lh$gradient)], lh$gradient, tolerance = 1e-10)
  expect_equal(le$hessian[names(lh$gradient), names(lh$gradient)], lh$hessian, tolerance = 1e-10)
  # the pure-R reference on the compiled expression model
  ce <- iclv:::.iclv_compile(x$m_expr, x$d)
  set.seed(3)
  user <- array(rnorm(ce$n_ind * 8), c(ce$n_ind, 8, 1))
  th <- x$p[ce$partable$name]
  expect_lt(abs(iclv_loglik(x$m_expr, x$d, x$p, draws = user)$loglik - ref_loglik(ce$c, th, user)$loglik), 1e-10)
})

test_that("predict() and iclv_simulate() work with expression utilities", {
  x <- expr_pair(n = 80, seed = 11)
  dr <- iclv_draws("halton", 25, seed = 2)
  ctl <- iclv_control(trace = 0)
  fe <- iclv(x$m_expr, x$d, draws = dr, backend = "cpu", control = ctl, start = x$p)
  fh <- iclv(x$m_hand, x$hand, draws = dr, backend = "cpu", control = ctl, start = x$p)
  expect_equal(fe$loglik, fh$loglik, tolerance = 1e-10)
  expect_equal(coef(fe)[names(coef(fh))], coef(fh), tolerance = 1e-6)
  pe <- predict(fe, newdata = x$d[1:12, ], type = "prob")
  ph <- predict(fh, newdata = x$hand[1:12, ], type = "prob")
  expect_equal(unname(as.matrix(pe)), unname(as.matrix(ph)), tolerance = 1e-6)
  expect_equal(predict(fe, type = "lv"), predict(fh, type = "lv"), tolerance = 1e-6)
  # simulation draws the compared column from its strings and evaluates the expressions
  s1 <- iclv_simulate(x$m_expr, x$p, n = 30, n_tasks = 2, seed = 5, attributes = "uniform")
  s2 <- iclv_simulate(x$m_expr, x$p, n = 30, n_tasks = 2, seed = 5, attributes = "uniform")
  expect_equal(iclv_loglik(x$m_expr, s1, x$p, draws = dr)$loglik,
               iclv_loglik(x$m_hand, transform(s1, x_a = -(cost_a / (1 + income^2)), x_b = -(cost_b / (1 + income^2)),
                                              prem = as.numeric(kind == "premium"), sq = sqrt(1 + time_b^2),
                                              lg = log(2 + time_b), hi = exp(-time_b / 2) * (income > 0.5),
                                              lo = exp(-time_b / 2) * !(income > 0.5)),
                           x$p, draws = dr)$loglik, tolerance = 1e-12)
  # normal attributes make log(2 + time_b) undefined somewhere: a classed error naming it
  expect_error(iclv_simulate(x$m_expr, x$p, n = 200, n_tasks = 2, seed = 5), class = "iclv_error_data",
               regexp = "'log\\(2 \\+ time_b\\)' of the utility of 'b'")
  expect_identical(s1, s2)
  expect_setequal(unique(s1$kind), c("premium", "other"))
  expect_true(all(c("cost_a", "cost_b", "income", "time_b") %in% names(s1)))
})

test_that("expression utilities: names resolve by position, and what is not supported is a classed error", {
  lvm <- function(u, data = NULL) {
    iclv_model("att =~ q1 + q2 + q3",
      choice = iclv_choice("mnl", choice = "ch", utilities = c(list(a = u), b = "asc_b + l_b * att")),
      id = "ID", categories = 3)
  }
  # the first plain name of a product is the parameter, wherever the LV is
  m <- lvm("att * l_att * (x > 1) - 0.5 * b * x")
  expect_identical(m$choice$terms$a$param, c("l_att", "b"))
  expect_identical(m$choice$terms$a$lv, c("att", NA))
  expect_identical(m$choice$terms$a$col, c("(x > 1)", "-(0.5 * x)"))
  m <- lvm("(b) * x - (-(c2 * x / 4))")
  expect_identical(m$choice$terms$a$param, c("b", "c2"))
  expect_identical(m$choice$terms$a$col, c("x", "x/4"))
  expect_error(lvm("b * (x"), class = "iclv_error_spec", regexp = "not a valid expression")
  expect_error(lvm("b * foo(x)"), class = "iclv_error_spec", regexp = "'foo' is not supported")
  # beyond the linear reading: resolved by the data (R/tape.R, test-tape.R)
  for (u in c("exp(b) + 2 * x", "b * exp(att)", "b * x / att", "b * att * att * (x > 0)",
              "b * (x > 0) + b * (x > 0)")) {
    expect_s3_class(lvm(u), "iclv_model")
  }
  expect_error(lvm("b * Inf * x"), class = "iclv_error_spec", regexp = "'Inf'.*not a name")
  expect_error(lvm("b * ifelse(x > 1, 2)"), class = "iclv_error_spec", regexp = "three arguments")
  # at compile time: data the expressions cannot use
  d <- data.frame(ID = rep(1:4, each = 2), q1 = rep(c(1, 2, 3, 1), each = 2), q2 = rep(c(2, 3, 1, 2), each = 2),
                  q3 = rep(c(3, 1, 2, 3), each = 2), ch = rep(c("a", "b"), 4), x = c(1, 2, 0, 1, 2, 3, 1, 2),
                  s = rep(c("u", "v"), 4), stringsAsFactors = FALSE)
  p <- function(m) {
    v <- stats::setNames(rep(0.1, nrow(m$partable)), m$partable$name)
    v[grepl("^zeta", names(v))] <- 1
    v[grepl("_1$", names(v)) & grepl("^tau", names(v))] <- -1
    v[grepl("_2$", names(v)) & grepl("^tau", names(v))] <- 1
    v
  }
  ll <- function(u, data = d) {
    m <- lvm(u)
    iclv_loglik(m, data, p(m), draws = iclv_draws("halton", 5))
  }
  # what the data resolve: a term of data only, a term twice; nonlinear terms evaluate
  expect_error(ll("exp(b) + 2 * x"), class = "iclv_error_spec", regexp = "term '2 \\* x' has no parameter")
  expect_error(ll("b * (x > 0) + b * (x > 0)"), class = "iclv_error_spec", regexp = "twice")
  ll2 <- function(u) {
    m <- iclv:::.iclv_compile(lvm(u), d)$model
    iclv_loglik(m, d, p(m), draws = iclv_draws("halton", 5))$loglik
  }
  # 'b' a parameter (not a column) compared with a number: no derivative
  expect_error(ll("b * x + c0 * (b > 1)"), class = "iclv_error_spec", regexp = "no derivative")
  for (u in c("mu * (asc + b * x)", "b * exp(att)", "b * x / (att + 3)", "b * att * att * (x > 0)")) {
    expect_true(is.finite(ll2(u)), label = u)
  }
  expect_error(ll("b * (s + 1)"), class = "iclv_error_data", regexp = "cannot be evaluated")
  expect_error(ll("b * log(x)"), class = "iclv_error_data", regexp = "not finite \\(-Inf\\) in row 3")
  expect_error(ll("b * (x > 1) * zz"), class = "iclv_error_data", regexp = "'zz'")
  d2 <- d; d2$x[4] <- NA
  expect_error(ll("b * (x > 1)", d2), class = "iclv_error_data", regexp = "missing \\(NA\\) in row 4")
  d3 <- d; d3$f <- factor(d$s)
  expect_error(ll("b * (f * 2)", d3), class = "iclv_error_data", regexp = "cannot be evaluated")
  # control: these evaluate, and a comparison with a string gives 0/1
  expect_true(is.finite(ll("b * (s == 'u') + c1 * x^2")$loglik))
  ce <- iclv:::.iclv_compile(lvm("b * (s == 'u')"), d)
  expect_identical(ce$c$X, as.double(d$s == "u"))
})
