# Cost model of one (individual, draw) pair, in FP64 FMA equivalents, from a
# compiled model's dimensions (../shared/design/performance.md). Sourced by
# the benchmarks; not part of the package.
#
# Per component, LL only / LL + gradient (performance.md's measured table):
#   ordered probit indicator 215 / 275; ordered logit 60 / 70;
#   binary probit task 110 / 140; MNL task with J alternatives and A
#   attribute terms per alternative 22J + 9 / 22J + 9 + J(A + 2);
#   one LV draw generated in the kernel 85 / 85; the per-draw weighting 71 /
#   71 + one accumulator per parameter.
# Not in that table, estimated here from its per-function costs (exp ~21,
# log ~50, Phi ~106) and marked as estimates in the output:
#   normal indicator ~15 / ~25 (log sd is per evaluation, not per pair);
#   binary probit indicator = binary-probit task 110 / 140;
#   binary logit indicator ~75 / ~85 (one exp, one log1p).
# Returns c(ll, grad, estimated_share): FMA-eq per pair for the LL and for
# LL + gradient, and the share of the LL + gradient count that comes from
# estimated (not measured) components.
iclv_pair_cost <- function(cm) {
  N <- cm$n_ind
  per_ind <- function(x) x / N
  ind_counts <- tabulate(cm$obs_ind + 1L, nbins = cm$n_indic)
  type_of_obs <- rep(cm$ind_type, ind_counts)
  n_of <- function(code) per_ind(sum(type_of_obs == code))
  ll <- c(op = 215, ol = 60, nm = 15, bp = 110, bl = 75)
  gr <- c(op = 275, ol = 70, nm = 25, bp = 140, bl = 85)
  n_ind_type <- c(op = n_of(1L), ol = n_of(2L), nm = n_of(3L), bp = n_of(4L), bl = n_of(5L))
  c_ll <- sum(n_ind_type * ll)
  c_gr <- sum(n_ind_type * gr)
  est <- sum(n_ind_type[c("nm", "bp", "bl")] * gr[c("nm", "bp", "bl")])
  tasks <- per_ind(cm$n_rows)
  if (cm$choice_type == 1L) {           # MNL
    J <- cm$n_alt
    A <- if (J > 0) sum(cm$ut_col >= 0) / J else 0
    c_ll <- c_ll + tasks * (22 * J + 9)
    c_gr <- c_gr + tasks * (22 * J + 9 + J * (A + 2))
  } else if (cm$choice_type == 2L) {    # binary probit
    c_ll <- c_ll + tasks * 110
    c_gr <- c_gr + tasks * 140
  }
  K <- cm$n_lv
  c_ll <- c_ll + K * 85 + 71
  c_gr <- c_gr + K * 85 + 71 + cm$n_par
  c(ll = c_ll, grad = c_gr, estimated_share = est / c_gr)
}
