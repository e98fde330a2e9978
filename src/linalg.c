/*
 * linalg.c -- the dense linear algebra iclv needs after an evaluation,
 * through LAPACKE: the symmetric eigendecomposition used by the
 * identification diagnostics, and the Cholesky inverse used for
 * covariance matrices. Inputs are column-major and are not modified.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <lapacke.h>

#include "linalg.h"

/* values (n) ascending, vectors (n x n) column-major, eigenvectors in columns */
int iclv_eigen_sym(int n, const double *a, double *values, double *vectors,
                   iclv_status *st) {
  if (n == 0) return ICLV_OK;
  memcpy(vectors, a, sizeof(double) * (size_t) n * (size_t) n);
  lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', n, vectors, n, values);
  if (info != 0) {
    st->code = ICLV_ERR_LAPACK;
    snprintf(st->msg, ICLV_MSG_LEN, "LAPACKE_dsyev failed (info = %d)", (int) info);
    return st->code;
  }
  return ICLV_OK;
}

/* inv (n x n) = a^{-1} for symmetric positive definite a (Cholesky). */
int iclv_inverse_spd(int n, const double *a, double *inv, iclv_status *st) {
  if (n == 0) return ICLV_OK;
  memcpy(inv, a, sizeof(double) * (size_t) n * (size_t) n);
  lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, inv, n);
  if (info == 0) info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, inv, n);
  if (info != 0) {
    st->code = ICLV_ERR_LAPACK;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the matrix is not positive definite (Cholesky failed at column %d)", (int) info);
    return st->code;
  }
  for (int j = 0; j < n; j++)          /* copy the lower triangle to the upper */
    for (int i = j + 1; i < n; i++) inv[(size_t) j + (size_t) i * n] = inv[(size_t) i + (size_t) j * n];
  return ICLV_OK;
}
