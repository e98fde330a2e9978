# Regenerates data/commute.rda, the simulated commuting mode choice data set
# documented in R/data.R. Run from the repository root with iclv installed:
#
#   Rscript tools/make-data.R
#
# Everything here is deterministic (fixed seeds), so the file it writes is the
# same on every run and every machine with the same version of iclv.
#
# How the data are made
#   1. The true model is written in iclv syntax (`model` below) and its true
#      parameters in natural units (`truth`: time in minutes, cost in euros).
#   2. iclv_simulate() draws the covariates (Bernoulli(0.5)), the latent
#      variables, the Likert indicators (ordered probit) and the choices. It
#      draws every attribute as uniform on (-1, 1); we call it with the
#      parameters of that standardised scale (`truth_std`, computed from
#      `truth` below).
#   3. The attributes are then re-expressed in minutes and euros by the affine
#      maps x = centre + half_width * u. For a multinomial logit with
#      alternative-specific constants on car and bus this is an exact
#      reparameterisation: every coefficient scales by 1 / half_width and the
#      centres move into the constants (the constant of the reference bike
#      utility is subtracted from every utility, which leaves the choice
#      probabilities unchanged). So `truth` are the true values of the model
#      for the shipped columns. Times are rounded to 0.1 minute and costs to
#      0.01 euro afterwards; this changes a utility by at most
#      0.08 * 0.05 + 0.5 * 0.005 = 0.0065.
#   4. Each Likert answer (per individual and indicator) is set to NA with
#      probability 0.03, independently (missing completely at random, fixed
#      seed), as in real surveys. iclv skips missing indicators.

library(iclv)

model <- iclv_model(
  measurement = "
    green   =~ grn_climate + grn_pay + grn_reduce + grn_policy
    comfort =~ cmf_relax + cmf_privacy + cmf_freedom",
  structural = "
    green   ~ age_over_50 + female + university
    comfort ~ age_over_50 + green",
  indicators = "ordered_probit",
  choice = iclv_choice("mnl", choice = "mode", utilities = list(
    car  = "asc_car + b_time * time_car + b_cost * cost_car + l_comfort_car * comfort",
    bus  = "asc_bus + b_time * time_bus + b_cost * cost_bus + l_green_bus * green",
    bike = "b_time * time_bike + l_green_bike * green")),
  id = "id", categories = 5)

# ---- true parameters, natural units (documented in R/data.R) ----------------
truth <- c(
  zeta_grn_climate = 1.3, tau_grn_climate_1 = -2.4, tau_grn_climate_2 = -1.3,
  tau_grn_climate_3 = 0.0, tau_grn_climate_4 = 1.4,
  zeta_grn_pay = 1.0, tau_grn_pay_1 = -1.5, tau_grn_pay_2 = -0.4,
  tau_grn_pay_3 = 0.8, tau_grn_pay_4 = 1.9,
  zeta_grn_reduce = 1.2, tau_grn_reduce_1 = -1.5, tau_grn_reduce_2 = -0.3,
  tau_grn_reduce_3 = 0.9, tau_grn_reduce_4 = 2.1,
  zeta_grn_policy = 0.9, tau_grn_policy_1 = -1.8, tau_grn_policy_2 = -0.8,
  tau_grn_policy_3 = 0.4, tau_grn_policy_4 = 1.5,
  zeta_cmf_relax = 1.1, tau_cmf_relax_1 = -1.9, tau_cmf_relax_2 = -0.7,
  tau_cmf_relax_3 = 0.6, tau_cmf_relax_4 = 1.8,
  zeta_cmf_privacy = 0.8, tau_cmf_privacy_1 = -2.1, tau_cmf_privacy_2 = -1.0,
  tau_cmf_privacy_3 = 0.1, tau_cmf_privacy_4 = 1.3,
  zeta_cmf_freedom = 1.4, tau_cmf_freedom_1 = -2.2, tau_cmf_freedom_2 = -0.9,
  tau_cmf_freedom_3 = 0.5, tau_cmf_freedom_4 = 1.8,
  gamma_green_age_over_50 = -0.5, gamma_green_female = 0.3, gamma_green_university = 0.6,
  gamma_comfort_age_over_50 = 0.5, gamma_comfort_green = -0.4,
  asc_car = 2.2, b_time = -0.08, b_cost = -0.5, l_comfort_car = 0.8,
  asc_bus = 1.6, l_green_bus = 0.5, l_green_bike = 0.9)
stopifnot(setequal(names(truth), model$partable$name))
truth <- truth[model$partable$name]

# ---- attribute scales: x = centre + half_width * u, u ~ uniform(-1, 1) ------
centre <- c(time_car = 20, time_bus = 35, time_bike = 25, cost_car = 4, cost_bus = 2)
half_width <- c(time_car = 10, time_bus = 10, time_bike = 10, cost_car = 1.5, cost_bus = 1.5)

# The same model on the standardised attributes u: coefficients times the
# half width; constants absorb b * centre, relative to the bike utility.
truth_std <- truth
truth_std[["b_time"]] <- truth[["b_time"]] * 10
truth_std[["b_cost"]] <- truth[["b_cost"]] * 1.5
shift <- function(alt) {
  truth[["b_time"]] * (centre[[paste0("time_", alt)]] - centre[["time_bike"]]) +
    truth[["b_cost"]] * centre[[paste0("cost_", alt)]]
}
truth_std[["asc_car"]] <- truth[["asc_car"]] + shift("car")
truth_std[["asc_bus"]] <- truth[["asc_bus"]] + shift("bus")

# ---- simulate: 500 commuters, 8 choice tasks each ----------------------------
commute <- iclv_simulate(model, truth_std, n = 500, n_tasks = 8, seed = 2026,
                         binary = c("age_over_50", "female", "university"),
                         attributes = "uniform")

for (a in names(centre)) {
  digits <- if (startsWith(a, "time")) 1 else 2
  commute[[a]] <- round(centre[[a]] + half_width[[a]] * commute[[a]], digits)
}
for (v in c("age_over_50", "female", "university")) commute[[v]] <- as.integer(commute[[v]])
for (v in model$indicators) commute[[v]] <- as.integer(commute[[v]])

# ---- Likert answers missing with probability 0.03 (per individual and indicator)
true_lv <- attr(commute, "true_lv")
set.seed(20261123)
miss <- matrix(stats::runif(500 * length(model$indicators)) < 0.03, 500, length(model$indicators),
               dimnames = list(NULL, model$indicators))
for (v in model$indicators) commute[[v]][miss[commute$id, v]] <- NA_integer_

# ---- columns in a reading order; keep the truth as attributes ----------------
commute <- commute[, c("id", "task", "age_over_50", "female", "university", model$indicators,
                       "time_car", "time_bus", "time_bike", "cost_car", "cost_bus", "mode")]
rownames(commute) <- NULL
attr(commute, "true_lv") <- true_lv
attr(commute, "true_params") <- truth

save(commute, file = "data/commute.rda", compress = "xz")
cat(sprintf("wrote data/commute.rda: %d rows, %d individuals, %d bytes\n",
            nrow(commute), length(unique(commute$id)), file.size("data/commute.rda")))
