/*
 * backend.h -- the engines behind one interface: a small table of
 * operations (create, evaluate, predict, memory, free) per backend, chosen
 * once when an engine is created, and each backend's planner. backend.c
 * holds the table and the only #ifdef ICLV_HAVE_CUDA of the C boundary, so
 * boundary.c converts between R and C and nothing else. Plain C types only.
 */
#ifndef ICLV_BACKEND_H
#define ICLV_BACKEND_H

#include "iclv_model.h"
#include "engine.h"
#include "cuda_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { ICLV_BACKEND_CPU = 0, ICLV_BACKEND_CUDA = 1 };

/* How an engine is made (R's options list, converted by the boundary). */
typedef struct {
  int n_threads;           /* CPU threads; <= 0: the OpenMP default */
  int check_thread_limits; /* 1, except tests that only read an engine's account */
  int device;              /* CUDA device ordinal */
  double device_memory;    /* bytes the CUDA engine may use; <= 0: 80% of the free memory */
} iclv_engine_options;

/* What an engine holds now. */
typedef struct {
  iclv_mem_account host;   /* host buffers (a CUDA engine's pinned buffers, then those of
                              its CPU engine once one was made) */
  iclv_mem_account device; /* device buffers (n = 0 without a device) */
  int has_device;          /* 1 for a CUDA engine */
  int per_chunk, n_chunks; /* individuals per chunk and chunks (N and 1 on the CPU) */
  double device_total;     /* bytes of the device (NaN without one) */
  double device_free;      /* free bytes when the engine was made (NaN without one) */
  double graph_builds;     /* CUDA graphs captured so far (0 without a device) */
  double graph_launches;   /* evaluations run as a CUDA graph so far (0 without a device) */
} iclv_engine_memory;

/* One backend: its operations on an engine `e` of its own type. predict
 * NULL: predictions are made by a CPU engine that the handle creates when
 * first needed. */
typedef struct {
  const char *name;
  int (*create)(const iclv_model *m, const iclv_draws *d, const iclv_engine_options *opt,
                void **e, iclv_status *st);
  int (*eval)(void *e, const double *theta, iclv_eval_out *out, iclv_status *st);
  int (*predict)(void *e, const double *theta, double *prob, double *lv_mean, double *lv_sd,
                 double *comp_ll, iclv_status *st);
  void (*set_poll)(void *e, iclv_poll_fn poll, void *ctx);
  void (*memory)(const void *e, iclv_engine_memory *out);
  void (*free)(void *e);
} iclv_backend_ops;

/* An engine of any backend. `m`, `d` must outlive it. */
typedef struct {
  const iclv_backend_ops *ops; /* the backend, chosen at creation */
  void *impl;                  /* its engine */
  iclv_cpu_engine *cpu;        /* a CPU engine: impl itself on the CPU backend; on another
                                  backend made only when asked for (predictions, use_cpu) */
  const iclv_model *m;
  const iclv_draws *d;
  iclv_engine_options opt;
} iclv_engine;

/* Creates h for `backend` (ICLV_BACKEND_*). Returns ICLV_OK, or the
 * backend's error (ICLV_ERR_CUDA when CUDA is not compiled in or no device
 * answers); on failure nothing is held. */
int iclv_engine_create(int backend, const iclv_model *m, const iclv_draws *d,
                       const iclv_engine_options *opt, iclv_engine *h, iclv_status *st);

/* One evaluation (engine.h's iclv_cpu_eval contract) with `poll` set for
 * its duration; use_cpu asks h's CPU engine (made now if needed) instead of
 * the backend's. */
int iclv_engine_eval(iclv_engine *h, const double *theta, int use_cpu, iclv_poll_fn poll,
                     void *ctx, iclv_eval_out *out, iclv_status *st);

/* Predictions (iclv_cpu_predict's contract) by the backend, or by h's CPU
 * engine (made now if needed) where the backend has none. */
int iclv_engine_predict(iclv_engine *h, const double *theta, iclv_poll_fn poll, void *ctx,
                        double *prob, double *lv_mean, double *lv_sd, double *comp_ll,
                        iclv_status *st);

void iclv_engine_memory_of(const iclv_engine *h, iclv_engine_memory *out);

/* Frees what h holds; safe to repeat. */
void iclv_engine_free(iclv_engine *h);

/* ---- plans ----------------------------------------------------------------- */

/* What iclv_engine_create(backend, m, d, opt) would allocate: the CPU
 * engine's plan (on the CUDA backend: the CPU engine made after estimation
 * for the predictions) and, for CUDA, the device plan on the device
 * opt->device when it answers (its exact shape), else on the assumed shape
 * (shape.known = 0, `reason` says why). */
typedef struct {
  iclv_cpu_plan_info cpu;
  int has_device;          /* 1 for backend CUDA */
  iclv_cuda_shape shape;   /* the device's shape, or the assumed one */
  iclv_cuda_plan cuda;     /* the CUDA engine's plan (has_device) */
  iclv_mem_account device; /* its device buffers at per_chunk, the Hessian's included (the peak) */
  iclv_mem_account pinned; /* its host buffers */
  char reason[ICLV_MSG_LEN]; /* why the shape is assumed ("" when known) */
} iclv_engine_plan;

int iclv_engine_plan_make(int backend, const iclv_model *m, const iclv_draws *d,
                          const iclv_engine_options *opt, iclv_engine_plan *out, iclv_status *st);

/* ---- CUDA facts, in every build ---------------------------------------------- */

#define ICLV_MAX_DEVICES 16
typedef struct {
  char name[256];
  double total_bytes;
  double free_bytes;
  int major, minor;
  int multiprocessors;
} iclv_device_info;

/* 1 when the CUDA backend is compiled in. */
int iclv_backend_cuda_compiled(void);

/* Lists CUDA devices: ICLV_OK with *n_devices >= 0; none (with `reason`)
 * when the driver is missing or CUDA is not compiled in. */
int iclv_backend_list_devices(iclv_device_info *info, int max_devices, int *n_devices,
                              char *reason, int reason_len);

/* The draws of d as the CUDA kernels make them (cuda_backend.h's
 * iclv_cuda_draws), or ICLV_ERR_CUDA without CUDA. */
int iclv_backend_cuda_draws(const iclv_draws *d, int device, double *out, iclv_status *st);

#ifdef __cplusplus
}
#endif

#endif /* ICLV_BACKEND_H */
