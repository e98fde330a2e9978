#' Commuting mode choice with environmental and comfort attitudes (simulated)
#'
#' A simulated stated-preference survey of 500 commuters. Each answered seven
#' five-point Likert statements once and then chose between car, bus and bike
#' in 8 choice situations that varied travel times and costs. The data were
#' simulated by [iclv_simulate()] from the ICLV model and the true parameter
#' values given below (script `tools/make-data.R` in the package sources), so
#' an estimate can be compared with the truth. The data frame carries the
#' truth in two attributes: `attr(commute, "true_params")` (the named true
#' parameters, in the order of the model's parameter table) and
#' `attr(commute, "true_lv")` (a 500 x 2 matrix with the simulated latent
#' variables `green` and `comfort` of each commuter, in the order of `id`).
#'
#' @format A data frame with 4000 rows (500 commuters x 8 choice tasks, the
#'   rows of one commuter adjacent) and 18 columns:
#' \describe{
#'   \item{`id`}{commuter, 1 to 500.}
#'   \item{`task`}{choice situation of the commuter, 1 to 8.}
#'   \item{`age_over_50`}{1 if the commuter is older than 50, else 0.}
#'   \item{`female`}{1 if female, else 0.}
#'   \item{`university`}{1 with a university degree, else 0.}
#'   \item{`grn_climate`}{"I am worried about climate change" (1 = strongly
#'     disagree, ..., 5 = strongly agree); indicator of `green`.}
#'   \item{`grn_pay`}{"I would pay more for environmentally friendly
#'     products" (1-5); indicator of `green`.}
#'   \item{`grn_reduce`}{"I try to reduce my use of the car for the
#'     environment" (1-5); indicator of `green`.}
#'   \item{`grn_policy`}{"Cities should give more road space to buses and
#'     bikes" (1-5); indicator of `green`.}
#'   \item{`cmf_relax`}{"Driving is relaxing for me" (1-5); indicator of
#'     `comfort`.}
#'   \item{`cmf_privacy`}{"I value travelling in my own private space" (1-5);
#'     indicator of `comfort`.}
#'   \item{`cmf_freedom`}{"A car gives me the freedom to go where I want"
#'     (1-5); indicator of `comfort`.}
#'   \item{`time_car`}{door-to-door travel time by car, minutes (10-30).}
#'   \item{`time_bus`}{travel time by bus including access and waiting,
#'     minutes (25-45).}
#'   \item{`time_bike`}{travel time by bike, minutes (15-35).}
#'   \item{`cost_car`}{cost of the trip by car (fuel and parking), euros
#'     (2.50-5.50).}
#'   \item{`cost_bus`}{bus fare, euros (0.50-3.50).}
#'   \item{`mode`}{the chosen mode: `"car"`, `"bus"` or `"bike"`.}
#' }
#' The Likert answers are the same on every row of a commuter (they were
#' asked once; `indicator_level = "individual"` in [iclv_model()]). 91 of the
#' 3500 answers (2.6%) are missing (`NA` on all rows of the commuter),
#' completely at random; iclv skips missing indicators. Every mode is
#' available in every task.
#'
#' @section The true model:
#' Two latent variables: `green` (environmental attitude) and `comfort`
#' (affinity for the comfort of the car). Their structural equations, with
#' standard normal errors and no intercepts (the normalisation of
#' [iclv_model()]):
#' \preformatted{
#'   green   = -0.5 age_over_50 + 0.3 female + 0.6 university + e1
#'   comfort =  0.5 age_over_50 - 0.4 green + e2
#' }
#' so a greener commuter has less affinity for the car. Each Likert answer
#' `y` of an indicator loading on latent variable `lv` is ordered probit:
#' `y = c` when `tau_(c-1) < zeta * lv + e <= tau_c`, `e ~ N(0, 1)`
#' (`tau_0 = -Inf`, `tau_5 = Inf`). The choice is multinomial logit with
#' \preformatted{
#'   V_car  = asc_car + b_time * time_car + b_cost * cost_car + l_comfort_car * comfort
#'   V_bus  = asc_bus + b_time * time_bus + b_cost * cost_bus + l_green_bus * green
#'   V_bike =           b_time * time_bike                     + l_green_bike * green
#' }
#' (a value of travel time of 0.08 / 0.5 * 60 = 9.6 euros per hour). The
#' model in iclv syntax is the one of `vignette("iclv-intro", package =
#' "iclv")`.
#'
#' True values:
#' \tabular{lrl}{
#'   **parameter** \tab **value** \tab **meaning**\cr
#'   `zeta_grn_climate` \tab 1.3 \tab loading of `grn_climate` on `green`\cr
#'   `tau_grn_climate_1..4` \tab -2.4, -1.3, 0.0, 1.4 \tab its thresholds\cr
#'   `zeta_grn_pay` \tab 1.0 \tab loading of `grn_pay`\cr
#'   `tau_grn_pay_1..4` \tab -1.5, -0.4, 0.8, 1.9 \tab its thresholds\cr
#'   `zeta_grn_reduce` \tab 1.2 \tab loading of `grn_reduce`\cr
#'   `tau_grn_reduce_1..4` \tab -1.5, -0.3, 0.9, 2.1 \tab its thresholds\cr
#'   `zeta_grn_policy` \tab 0.9 \tab loading of `grn_policy`\cr
#'   `tau_grn_policy_1..4` \tab -1.8, -0.8, 0.4, 1.5 \tab its thresholds\cr
#'   `zeta_cmf_relax` \tab 1.1 \tab loading of `cmf_relax` on `comfort`\cr
#'   `tau_cmf_relax_1..4` \tab -1.9, -0.7, 0.6, 1.8 \tab its thresholds\cr
#'   `zeta_cmf_privacy` \tab 0.8 \tab loading of `cmf_privacy`\cr
#'   `tau_cmf_privacy_1..4` \tab -2.1, -1.0, 0.1, 1.3 \tab its thresholds\cr
#'   `zeta_cmf_freedom` \tab 1.4 \tab loading of `cmf_freedom`\cr
#'   `tau_cmf_freedom_1..4` \tab -2.2, -0.9, 0.5, 1.8 \tab its thresholds\cr
#'   `gamma_green_age_over_50` \tab -0.5 \tab effect of age over 50 on `green`\cr
#'   `gamma_green_female` \tab 0.3 \tab effect of being female on `green`\cr
#'   `gamma_green_university` \tab 0.6 \tab effect of a degree on `green`\cr
#'   `gamma_comfort_age_over_50` \tab 0.5 \tab effect of age over 50 on `comfort`\cr
#'   `gamma_comfort_green` \tab -0.4 \tab effect of `green` on `comfort`\cr
#'   `asc_car` \tab 2.2 \tab constant of car (bike is the reference)\cr
#'   `asc_bus` \tab 1.6 \tab constant of bus\cr
#'   `b_time` \tab -0.08 \tab per minute of travel time, all modes\cr
#'   `b_cost` \tab -0.5 \tab per euro of cost, car and bus\cr
#'   `l_comfort_car` \tab 0.8 \tab effect of `comfort` on the car utility\cr
#'   `l_green_bus` \tab 0.5 \tab effect of `green` on the bus utility\cr
#'   `l_green_bike` \tab 0.9 \tab effect of `green` on the bike utility
#' }
#'
#' @section How it was simulated:
#' [iclv_simulate()] (seed 2026, 500 individuals, 8 tasks, covariates
#' Bernoulli(0.5)) draws the attributes as uniform on (-1, 1). The script
#' simulates with the equivalent parameters on that standardised scale and
#' then maps each attribute to minutes or euros, `x = centre + half_width * u`
#' (centres 20, 35, 25 minutes for car, bus, bike with half width 10; 4 and 2
#' euros for car and bus with half width 1.5). For this multinomial logit
#' with constants on car and bus this is an exact reparameterisation, so the
#' values above are the true parameters of the shipped columns. Times were
#' then rounded to 0.1 minute and costs to 0.01 euro (a utility changes by at
#' most 0.0065). Finally each Likert answer was set to `NA` with probability
#' 0.03, independently (seed 20261123). Observed shares: car 47%, bus 22%,
#' bike 31%.
#'
#' @source Simulated by `tools/make-data.R` in the package sources (run from
#'   the source tree's root with the package installed); no real survey.
#' @seealso `vignette("iclv-intro", package = "iclv")`, [iclv_simulate()]
#' @examples
#' head(commute)
#' table(commute$mode)
#' attr(commute, "true_params")[c("b_time", "b_cost")]
#' # one row per commuter: the Likert answers
#' first <- commute[!duplicated(commute$id), ]
#' table(first$grn_climate, useNA = "ifany")
"commute"
