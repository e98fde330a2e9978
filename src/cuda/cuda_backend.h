/*
 * cuda_backend.h -- the CUDA backend's interface, callable from C.
 * Plain C types only (no R headers); implemented in cuda_devices.cu and
 * cuda_engine.cu. Only compiled when ICLV_HAVE_CUDA is defined.
 */
#ifndef ICLV_CUDA_BACKEND_H
#define ICLV_CUDA_BACKEND_H

#include "../iclv_model.h"
#include "../engine.h"
#include "../cuda_plan.h"
#include "../backend.h" /* iclv_device_info */

#ifdef __cplusplus
extern "C" {
#endif

/* Lists CUDA devices. Returns ICLV_OK with *n_devices >= 0; when the driver
 * is missing or too old, ICLV_OK with *n_devices = 0 and `reason` set to the
 * CUDA error text (reason is "" when devices were found). */
int iclv_cuda_list_devices(iclv_device_info *info, int max_devices,
                           int *n_devices, char *reason, int reason_len);

typedef struct iclv_cuda_engine iclv_cuda_engine;

typedef struct {
  int device;                  /* CUDA device ordinal */
  double device_memory_budget; /* bytes the engine may use; <= 0: 80% of free */
} iclv_cuda_options;

/* The shape of device `device` as the planner needs it (cuda_plan.h): its
 * properties, free memory and the kernels' frames and thread limits.
 * Returns ICLV_OK or ICLV_ERR_CUDA (no such device, no driver). */
int iclv_cuda_device_shape(int device, iclv_cuda_shape *s, iclv_status *st);

/* Creates the engine on opt->device: asks the device's shape, plans with
 * iclv_cuda_plan_make and allocates exactly the plan's buffers (the
 * Hessian's when an evaluation asks for it). ICLV_ERR_MEMORY when the
 * budget does not hold one individual. */
int iclv_cuda_engine_create(const iclv_model *m, const iclv_draws *d,
                            const iclv_cuda_options *opt,
                            iclv_cuda_engine **out, iclv_status *st);
int iclv_cuda_eval(iclv_cuda_engine *e, const double *theta,
                   iclv_eval_out *out, iclv_status *st);
/* Sets (poll != NULL) or clears the interrupt poll (engine.h): with a poll
 * set, iclv_cuda_eval waits for each chunk and polls on the host before
 * queueing the next; a non-zero poll makes it return ICLV_INTERRUPTED after
 * the queued work has finished. */
void iclv_cuda_engine_set_poll(iclv_cuda_engine *e, iclv_poll_fn poll, void *ctx);
const iclv_mem_account *iclv_cuda_engine_memory(const iclv_cuda_engine *e);
/* the pinned host buffers and the host scratch */
const iclv_mem_account *iclv_cuda_engine_host_memory(const iclv_cuda_engine *e);
/* individuals per chunk and number of chunks the engine uses */
void iclv_cuda_engine_chunking(const iclv_cuda_engine *e, int *per_chunk,
                               int *n_chunks, double *dev_total,
                               double *dev_free_at_start);
/* CUDA graphs captured and instantiated, and evaluations run as a graph,
 * since creation (cuda_engine_impl.cuh: which requests run as one) */
void iclv_cuda_engine_graphs(const iclv_cuda_engine *e, double *builds, double *launches);
void iclv_cuda_engine_free(iclv_cuda_engine *e);

/* The standard normal draws of design d as the CUDA kernels make them
 * (iclv_draw_normal on the device), into out (n_ind, n_draws, n_dim)
 * column-major: iclv_draws_fill's layout, for checking the two bit for bit.
 * Returns ICLV_OK, ICLV_ERR_INPUT (a bad design) or ICLV_ERR_CUDA. */
int iclv_cuda_draws(const iclv_draws *d, int device, double *out, iclv_status *st);

#ifdef __cplusplus
}
#endif

#endif
