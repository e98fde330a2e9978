/*
 * draws.c -- host-side companions of draws.h: validation of a draw design
 * and the full (n_ind, n_draws, n_dim) array of draws.
 *
 * The draws themselves are defined in draws.h (iclv_draw_normal), the single
 * definition that the CPU engine and the CUDA backend share.
 */
#include <stdio.h>
#include <stdint.h>

#include "iclv_model.h"
#include "draws.h"

static int draws_fail(iclv_status *st, const char *msg) {
  st->code = ICLV_ERR_INPUT;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return ICLV_ERR_INPUT;
}

/* See draws.h. The limits keep every point index i = skip + n*R + r + 1 in
 * the range where the radical inverse (exact 64-bit integers) and the
 * 32-bit Sobol' points are defined. */
int iclv_draws_check(const iclv_draws *d, iclv_status *st) {
  char msg[ICLV_MSG_LEN];
  if (d == NULL) return draws_fail(st, "no draw design");
  if (d->type < ICLV_DRAWS_USER || d->type > ICLV_DRAWS_PSEUDO) {
    snprintf(msg, sizeof msg, "unknown draw type code %d", d->type);
    return draws_fail(st, msg);
  }
  if (d->n_ind < 1 || d->n_draws < 1 || d->n_dim < 0) {
    snprintf(msg, sizeof msg,
             "draw design has a bad dimension (individuals %d, draws %d, dimensions %d)",
             d->n_ind, d->n_draws, d->n_dim);
    return draws_fail(st, msg);
  }
  if (d->skip < 0) return draws_fail(st, "draw 'skip' must be non-negative");
  if (d->ind_offset < 0 || (int64_t) d->ind_offset + d->n_ind > (int64_t) 2147483647) {
    snprintf(msg, sizeof msg, "draw design: individual offset %d with %d individuals is out of range",
             d->ind_offset, d->n_ind);
    return draws_fail(st, msg);
  }
  if (d->type == ICLV_DRAWS_USER && d->ind_offset != 0)
    return draws_fail(st, "user draws: the individual offset must be 0 (a shard holds its slice of the array)");
  /* last point index, in 64 bits: (ind_offset + n_ind) * n_draws < 2^62 */
  uint64_t last = (uint64_t) d->skip +
                  ((uint64_t) d->ind_offset + (uint64_t) d->n_ind) * (uint64_t) d->n_draws;
  int overflow = (uint64_t) d->skip > ((uint64_t) 1 << 62);
  switch (d->type) {
  case ICLV_DRAWS_USER:
    if (d->user == NULL && d->n_dim > 0) return draws_fail(st, "user draws: no array supplied");
    break;
  case ICLV_DRAWS_HALTON:
  case ICLV_DRAWS_SCRAMBLED_HALTON:
    if (d->n_dim > ICLV_HALTON_MAX_DIM) {
      snprintf(msg, sizeof msg, "Halton draws support at most %d dimensions (latent variables); %d requested",
               ICLV_HALTON_MAX_DIM, d->n_dim);
      return draws_fail(st, msg);
    }
    if (overflow || last >= ((uint64_t) 1 << 53))
      return draws_fail(st, "Halton draws: skip + individuals * draws must be below 2^53");
    break;
  case ICLV_DRAWS_SOBOL:
    if (d->n_dim > ICLV_SOBOL_MAX_DIM) {
      snprintf(msg, sizeof msg, "Sobol draws support at most %d dimensions (latent variables); %d requested",
               ICLV_SOBOL_MAX_DIM, d->n_dim);
      return draws_fail(st, msg);
    }
    if (overflow || last >= ((uint64_t) 1 << 32))
      return draws_fail(st, "Sobol draws: skip + individuals * draws must be below 2^32");
    break;
  default:
    break;
  }
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  return ICLV_OK;
}

/* Fills out (n_ind, n_draws, n_dim) column-major, e[n, r, k] at
 * out[n + n_ind * (r + n_draws * k)], with iclv_draw_normal(d, n, r, k).
 * Preconditions: out holds n_ind * n_draws * n_dim doubles. Parallel over
 * the columns (r, k) with OpenMP when available, writing each column's
 * individuals contiguously; every element is a pure function of
 * (d, n, r, k), so the result does not depend on the number of threads.
 * Returns ICLV_OK, or ICLV_ERR_INPUT (from iclv_draws_check) with out
 * untouched. */
int iclv_draws_fill(const iclv_draws *d, double *out, iclv_status *st) {
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  const int N = d->n_ind, R = d->n_draws;
  const int64_t n_col = (int64_t) R * d->n_dim;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t c = 0; c < n_col; c++) {
    const int r = (int) (c % R), k = (int) (c / R);
    double *col = out + (int64_t) N * c;
    for (int n = 0; n < N; n++) col[n] = iclv_draw_normal(d, n, r, k);
  }
  return ICLV_OK;
}
