# A small model shared by the estimation, methods and memory tests: one LV
# (three 3-category ordered-probit indicators, a structural covariate) and an
# MNL with three alternatives and an LV effect; and its true parameters.
one_lv_mnl_model <- function(fixed = NULL) {
  iclv_model("att =~ q1 + q2 + q3",
    structural = "att ~ age",
    choice = iclv_choice("mnl", choice = "ch", utilities = list(
      a = "asc_a + b_price * price_a + l_att * att",
      b = "asc_b + b_price * price_b",
      c = "0")),
    id = "ID", categories = 3, fixed = fixed)
}
one_lv_mnl_truth <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
                      tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
                      gamma_att_age = 0.5, asc_a = 0.2, b_price = -1, l_att = 0.7, asc_b = -0.3)
