#' The reference ICLV problem ("seed problem")
#'
#' Builds the workload that motivated the package (see the package's
#' problem statement): 5 latent variables (`lv1`..`lv4` exogenous and
#' standard normal, `lv5` endogenous on `lv1`..`lv4` and the covariates
#' `x1`, `x2` (standard normal) and `x3` (binary)), 38 five-point Likert
#' indicators `ind01`..`ind38` (ordered probit, each loading on one LV: 8,
#' 8, 8, 7 and 7 indicators), and a binary probit choice between `"yes"`
#' (utility `asc + b1 * a1 + b2 * a2 + b3 * a3 + lambda * lv5`) and `"no"`
#' (utility 0), repeated in `n_tasks` tasks per individual.
#'
#' The model has 202 free parameters: 190 in the measurement model (38
#' loadings and 152 thresholds), 7 structural and 5 choice parameters. The
#' data are simulated by [iclv_simulate()] from the true values returned in
#' `params`.
#'
#' @param n Number of individuals (respondents).
#' @param n_tasks Choice tasks per individual.
#' @param seed Seed for [iclv_simulate()].
#' @param p_missing Share of indicator values (per individual and
#'   indicator) set to `NA`, to exercise missing indicators; 0 by default.
#' @return A list with `model` (an [iclv_model()]), `data` (a data.frame
#'   with `n * n_tasks` rows, id column `ID`) and `params` (the named true
#'   parameter values, in the order of `model$partable`).
#' @examples
#' sp <- iclv_seed_problem(n = 20, n_tasks = 2)
#' table(sp$model$partable$block)
#' dim(sp$data)
#' @export
iclv_seed_problem <- function(n = 326, n_tasks = 18, seed = 1, p_missing = 0) {
  if (!is.numeric(p_missing) || length(p_missing) != 1L || is.na(p_missing) || p_missing < 0 || p_missing >= 1) {
    iclv_abort("control", "'p_missing' must be one number in [0, 1)")
  }
  n_per <- c(8L, 8L, 8L, 7L, 7L)
  lvs <- paste0("lv", 1:5)
  inds <- sprintf("ind%02d", seq_len(sum(n_per)))
  ind_lv <- rep(lvs, n_per)
  measurement <- paste(vapply(lvs, function(l) sprintf("%s =~ %s", l, paste(inds[ind_lv == l], collapse = " + ")),
                              character(1)), collapse = "\n")
  model <- iclv_model(
    measurement = measurement,
    structural = "lv5 ~ lv1 + lv2 + lv3 + lv4 + x1 + x2 + x3",
    indicators = "ordered_probit",
    choice = iclv_choice("probit", choice = "choice",
                         utilities = list(yes = "asc + b1 * a1 + b2 * a2 + b3 * a3 + lambda * lv5",
                                          no = "0")),
    id = "ID", categories = 5)

  # true values
  gamma <- c(lv1 = 0.5, lv2 = -0.3, lv3 = 0.4, lv4 = 0.2, x1 = 0.3, x2 = -0.25, x3 = 0.4)
  var_lv <- c(lv1 = 1, lv2 = 1, lv3 = 1, lv4 = 1,
              lv5 = 1 + sum(gamma[1:6]^2) + gamma[["x3"]]^2 * 0.25)
  i <- seq_along(inds)
  zeta <- round(0.8 + 0.7 * ((i * 7) %% 10) / 10, 2)
  scale <- sqrt(1 + zeta^2 * var_lv[ind_lv])
  shift <- round(0.3 * sin(i), 2)
  p <- numeric()
  for (k in i) {
    p[sprintf("zeta_%s", inds[k])] <- zeta[k]
    p[sprintf("tau_%s_%d", inds[k], 1:4)] <- round((c(-1.6, -0.6, 0.4, 1.4) + shift[k]) * scale[k], 3)
  }
  p[sprintf("gamma_lv5_%s", names(gamma))] <- gamma
  p[c("asc", "b1", "b2", "b3", "lambda")] <- c(0.3, -0.8, 0.6, 0.4, 0.7)
  p <- p[model$partable$name]

  data <- iclv_simulate(model, p, n = n, n_tasks = n_tasks, seed = seed, binary = "x3")
  if (p_missing > 0) {
    tl <- attr(data, "true_lv")
    # the same individuals and indicators whatever the caller's RNG state
    restore <- .rng_keep() # (R/draws.R)
    on.exit(restore(), add = TRUE)
    set.seed(seed + 1L)
    miss <- matrix(stats::runif(n * length(inds)) < p_missing, n, length(inds))
    rid <- data$ID
    for (k in seq_along(inds)) data[[inds[k]]][miss[rid, k]] <- NA_integer_
    attr(data, "true_lv") <- tl
  }
  list(model = model, data = data, params = p)
}
