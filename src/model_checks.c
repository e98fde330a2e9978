/*
 * model_checks.c -- checks shared by the CPU engine and the CUDA backend
 * (see model_checks.h for the contracts).
 */
#include <math.h>
#include <stdio.h>

#include "model_checks.h"
#include "draws.h"

static int fail(iclv_status *st, int code, const char *msg) {
  st->code = code;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return code;
}

int iclv_check_data(const iclv_model *m, iclv_status *st) {
  char buf[ICLV_MSG_LEN];
  for (int n = 0; n < m->n_ind; n++) {
    for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++) {
      int ind = m->obs_ind[o], ty = m->ind_type[ind];
      double y = m->obs_val[o];
      int ok = isfinite(y);
      if (ty == ICLV_IND_ORDERED_PROBIT || ty == ICLV_IND_ORDERED_LOGIT)
        ok = ok && y == floor(y) && y >= 1 && y <= m->ind_ncat[ind];
      else if (ty == ICLV_IND_BINARY_PROBIT || ty == ICLV_IND_BINARY_LOGIT)
        ok = ok && (y == 0 || y == 1);
      if (!ok) {
        snprintf(buf, sizeof buf,
                 "indicator observation %d (individual %d, indicator %d) has value %g, "
                 "which is not valid for its indicator type", o + 1, n + 1, ind + 1, y);
        return fail(st, ICLV_ERR_INPUT, buf);
      }
    }
  }
  if (m->choice_type == ICLV_CHOICE_MNL && m->n_alt < 1)
    return fail(st, ICLV_ERR_INPUT, "an MNL choice model needs at least one alternative");
  if (m->choice_type == ICLV_CHOICE_PROBIT && m->n_alt != 2)
    return fail(st, ICLV_ERR_INPUT, "a binary probit choice model needs exactly 2 alternatives");
  if (m->choice_type == ICLV_CHOICE_ORDERED) {
    for (int t = 0; t < m->n_rows; t++)
      if (m->y[t] < 0 || m->y[t] >= m->n_ocat) {
        snprintf(buf, sizeof buf, "choice row %d: the category %d is not one of 1..%d", t + 1,
                 m->y[t] + 1, m->n_ocat);
        return fail(st, ICLV_ERR_INPUT, buf);
      }
  } else if (m->choice_type != ICLV_CHOICE_NONE) {
    for (int t = 0; t < m->n_rows; t++) {
      if (m->y[t] < 0 || m->y[t] >= m->n_alt || !iclv_available(m, t, m->y[t])) {
        snprintf(buf, sizeof buf, "choice row %d: the chosen alternative %d is not available",
                 t + 1, m->y[t] + 1);
        return fail(st, ICLV_ERR_INPUT, buf);
      }
    }
  }
  return ICLV_OK;
}

int iclv_check_theta(const iclv_model *m, const double *theta, iclv_status *st) {
  for (int a = 0; a < m->n_nest; a++) {
    int p = m->nest_par[a];
    if (p >= 0 && !(theta[p] > 0)) {
      st->code = ICLV_ERR_INPUT;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the nesting parameter of nest %d (parameter %d) must be > 0, not %g", a + 1, p + 1,
               theta[p]);
      return st->code;
    }
  }
  for (int c = 1; c < m->n_ocat - 1; c++) {
    int thr = m->ocat_thr;
    if (!(theta[thr + c] > theta[thr + c - 1])) {
      st->code = ICLV_ERR_INPUT;
      snprintf(st->msg, ICLV_MSG_LEN,
               "thresholds of the ordered choice must be strictly increasing: parameter %d (%g) "
               "is not greater than parameter %d (%g)",
               thr + c + 1, theta[thr + c], thr + c, theta[thr + c - 1]);
      return st->code;
    }
  }
  for (int t = 0; t < m->n_mult; t++) {
    int p = m->mult_par[t];
    if (p >= 0 && !(theta[p] > 0)) {
      st->code = ICLV_ERR_INPUT;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the scale of choice row %d (parameter %d) must be > 0, not %g", t + 1, p + 1,
               theta[p]);
      return st->code;
    }
  }
  for (int i = 0; i < m->n_indic; i++) {
    int ty = m->ind_type[i];
    if (ty == ICLV_IND_ORDERED_PROBIT || ty == ICLV_IND_ORDERED_LOGIT) {
      int thr = m->ind_thr[i];
      for (int c = 1; c < m->ind_ncat[i] - 1; c++) {
        if (!(theta[thr + c] > theta[thr + c - 1])) {
          st->code = ICLV_ERR_INPUT;
          snprintf(st->msg, ICLV_MSG_LEN,
                   "thresholds of indicator %d must be strictly increasing: parameter %d (%g) "
                   "is not greater than parameter %d (%g)",
                   i + 1, thr + c + 1, theta[thr + c], thr + c, theta[thr + c - 1]);
          return st->code;
        }
      }
      int js = m->ind_sd[i];
      if (js >= 0 && !(theta[js] > 0)) {
        st->code = ICLV_ERR_INPUT;
        snprintf(st->msg, ICLV_MSG_LEN,
                 "the scale of ordered indicator %d (parameter %d) must be > 0, not %g", i + 1,
                 js + 1, theta[js]);
        return st->code;
      }
    } else if (ty == ICLV_IND_NORMAL) {
      int js = m->ind_sd[i];
      if (!(theta[js] > 0)) {
        st->code = ICLV_ERR_INPUT;
        snprintf(st->msg, ICLV_MSG_LEN,
                 "the standard deviation of indicator %d (parameter %d) must be > 0, not %g",
                 i + 1, js + 1, theta[js]);
        return st->code;
      }
    }
  }
  return ICLV_OK;
}

void iclv_diagnose_individual(const iclv_model *m, const iclv_draws *d, const double *theta,
                              int n, double *e, iclv_pair_ws *ws, char *buf, size_t len) {
  for (int r = 0; r < d->n_draws; r++) {
    for (int k = 0; k < m->n_lv; k++) e[k] = iclv_draw_normal(d, n, r, k);
    iclv_structural(m, theta, n, e, ws->eta, NULL, NULL);
    if (m->choice_type != ICLV_CHOICE_NONE) iclv_tapes_invalidate(m, ws->V);
    for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++) {
      double v = iclv_indicator_atom(m, theta, ws->eta, o, NULL, NULL);
      if (!isfinite(v)) {
        snprintf(buf, len, "measurement model: indicator %d, observation %d, draw %d",
                 m->obs_ind[o] + 1, o + 1, r + 1);
        return;
      }
    }
    if (m->choice_type != ICLV_CHOICE_NONE)
      for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++) {
        double v = iclv_choice_atom(m, theta, ws->eta, t, ws, NULL, NULL);
        if (!isfinite(v)) {
          snprintf(buf, len, "choice model: row %d, draw %d", t + 1, r + 1);
          return;
        }
      }
  }
  snprintf(buf, len, "every part is finite at every draw; the sum over draws is not");
}
