/*
 * model_checks.h -- the checks both engines run, written once: the data
 * against the model's types (at engine creation), theta against its
 * constraints (every evaluation), and the diagnosis that names the model
 * part behind a non-finite likelihood. Plain C, callable from C and from
 * the CUDA backend's host code (extern "C").
 */
#ifndef ICLV_MODEL_CHECKS_H
#define ICLV_MODEL_CHECKS_H

#include <stddef.h>
#include "iclv_model.h"
#include "iclv_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Observed values valid for their indicator types (ordered: integer in
 * 1..C; binary: 0/1; all finite) and chosen alternatives available.
 * ICLV_OK, or ICLV_ERR_INPUT naming the observation or row (1-based). */
int iclv_check_data(const iclv_model *m, iclv_status *st);

/* theta (n_par): thresholds strictly increasing within each ordered
 * indicator and sds > 0. ICLV_OK, or ICLV_ERR_INPUT naming the parameter
 * (1-based, as in the parameter table). */
int iclv_check_theta(const iclv_model *m, const double *theta, iclv_status *st);

/* Names, in buf (len bytes), the first indicator observation or choice row
 * of individual n whose log-probability is not finite at some draw of d.
 * Scratch: e (n_lv doubles); ws->eta (n_lv), ws->V (iclv_vscratch_dim) and ws->gV
 * (iclv_link_dim).
 * Serial, allocates nothing. */
void iclv_diagnose_individual(const iclv_model *m, const iclv_draws *d, const double *theta,
                              int n, double *e, iclv_pair_ws *ws, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
