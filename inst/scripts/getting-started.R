# Getting started with iclv: estimate a hybrid choice (ICLV) model on the
# simulated `commute` data shipped with the package and print its summary.
#
#   Rscript inst/scripts/getting-started.R      (from the source tree), or
#   source(system.file("scripts", "getting-started.R", package = "iclv"))
#
# Takes a few seconds on 2 CPU cores. The model and the data are explained in
# vignette("iclv-intro", package = "iclv") and ?commute.

library(iclv)
data(commute)

model <- iclv_model(
  measurement = "
    green   =~ grn_climate + grn_pay + grn_reduce + grn_policy   # environmental attitude
    comfort =~ cmf_relax + cmf_privacy + cmf_freedom             # car comfort affinity
  ",
  structural = "
    green   ~ age_over_50 + female + university
    comfort ~ age_over_50 + green                                # an LV on another LV
  ",
  indicators = "ordered_probit",                                 # five-point Likert items
  choice = iclv_choice(
    type = "mnl", choice = "mode",
    utilities = list(
      car  = "asc_car + b_time * time_car + b_cost * cost_car + l_comfort_car * comfort",
      bus  = "asc_bus + b_time * time_bus + b_cost * cost_bus + l_green_bus * green",
      bike = "b_time * time_bike + l_green_bike * green")),
  id = "id")

fit <- iclv(model, data = commute,
            draws   = iclv_draws("halton", n = 100),
            backend = "auto",        # the GPU when one is usable, else the CPU (printed below)
            control = iclv_control(trace = 1))

print(summary(fit))

# The data were simulated: compare the estimates with the true values.
truth <- attr(commute, "true_params")
est <- coef(fit)
cat("\nEstimates against the true values of the simulation (choice and structural parameters):\n")
keep <- fit$partable$block != "measurement"
print(round(cbind(true = truth[names(est)], estimate = est,
                  std.error = sqrt(diag(vcov(fit))))[keep, ], 3))
