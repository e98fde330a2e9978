/*
 * linalg.h -- the dense linear algebra iclv needs after an evaluation
 * (linalg.c, through LAPACKE). Plain C types only.
 */
#ifndef ICLV_LINALG_H
#define ICLV_LINALG_H

#include "iclv_model.h"

/* Symmetric eigendecomposition of a (n x n) column-major; values (n)
 * ascending, vectors (n x n) column-major with the eigenvectors in columns.
 * Returns ICLV_OK or ICLV_ERR_LAPACK. */
int iclv_eigen_sym(int n, const double *a, double *values, double *vectors,
                   iclv_status *st);

/* Inverse (n x n) of a symmetric positive definite matrix via Cholesky;
 * ICLV_ERR_LAPACK when it is not positive definite. */
int iclv_inverse_spd(int n, const double *a, double *inv, iclv_status *st);

#endif /* ICLV_LINALG_H */
