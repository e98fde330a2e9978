/*
 * backend.c -- the backend table (backend.h): one iclv_backend_ops per
 * backend, chosen once by iclv_engine_create, and the plans. The CUDA
 * backend's entries are the only code of the C boundary that depends on
 * ICLV_HAVE_CUDA; without it the CUDA slot of the table is empty and its
 * functions answer "not compiled in".
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "iclv_model.h"
#include "engine.h"
#include "cuda_plan.h"
#include "backend.h"

static int backend_fail(iclv_status *st, int code, const char *msg) {
  st->code = code;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return code;
}

/* Clears *st; ICLV_ERR_INPUT unless backend is an ICLV_BACKEND_* code. */
static int known_backend(int backend, iclv_status *st) {
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (backend != ICLV_BACKEND_CPU && backend != ICLV_BACKEND_CUDA)
    return backend_fail(st, ICLV_ERR_INPUT, "unknown backend");
  return ICLV_OK;
}

/* ---- the CPU backend --------------------------------------------------------- */

static int cpu_create(const iclv_model *m, const iclv_draws *d, const iclv_engine_options *opt,
                      void **e, iclv_status *st) {
  iclv_cpu_engine *c = NULL;
  int rc = iclv_cpu_engine_create(m, d, opt->n_threads, opt->check_thread_limits, &c, st);
  *e = c;
  return rc;
}
static int cpu_eval(void *e, const double *theta, iclv_eval_out *out, iclv_status *st) {
  return iclv_cpu_eval((iclv_cpu_engine *) e, theta, out, st);
}
static int cpu_predict(void *e, const double *theta, double *prob, double *lv_mean, double *lv_sd,
                       double *comp_ll, iclv_status *st) {
  return iclv_cpu_predict((iclv_cpu_engine *) e, theta, prob, lv_mean, lv_sd, comp_ll, st);
}
static void cpu_set_poll(void *e, iclv_poll_fn poll, void *ctx) {
  iclv_cpu_engine_set_poll((iclv_cpu_engine *) e, poll, ctx);
}
static void cpu_memory(const void *e, iclv_engine_memory *out) {
  out->host = *iclv_cpu_engine_memory((const iclv_cpu_engine *) e);
}
static void cpu_free(void *e) { iclv_cpu_engine_free((iclv_cpu_engine *) e); }

static const iclv_backend_ops cpu_ops = {"cpu", cpu_create, cpu_eval, cpu_predict,
                                         cpu_set_poll, cpu_memory, cpu_free};

/* ---- the CUDA backend -------------------------------------------------------- */

#ifdef ICLV_HAVE_CUDA
#include "cuda/cuda_backend.h"

static int cuda_create(const iclv_model *m, const iclv_draws *d, const iclv_engine_options *opt,
                       void **e, iclv_status *st) {
  iclv_cuda_engine *g = NULL;
  iclv_cuda_options co;
  co.device = opt->device;
  co.device_memory_budget = opt->device_memory;
  int rc = iclv_cuda_engine_create(m, d, &co, &g, st);
  *e = g;
  return rc;
}
static int cuda_eval(void *e, const double *theta, iclv_eval_out *out, iclv_status *st) {
  return iclv_cuda_eval((iclv_cuda_engine *) e, theta, out, st);
}
static void cuda_set_poll(void *e, iclv_poll_fn poll, void *ctx) {
  iclv_cuda_engine_set_poll((iclv_cuda_engine *) e, poll, ctx);
}
static void cuda_memory(const void *e, iclv_engine_memory *out) {
  const iclv_cuda_engine *g = (const iclv_cuda_engine *) e;
  out->host = *iclv_cuda_engine_host_memory(g);
  out->device = *iclv_cuda_engine_memory(g);
  out->has_device = 1;
  iclv_cuda_engine_chunking(g, &out->per_chunk, &out->n_chunks, &out->device_total,
                            &out->device_free);
  iclv_cuda_engine_graphs(g, &out->graph_builds, &out->graph_launches);
}
static void cuda_free(void *e) { iclv_cuda_engine_free((iclv_cuda_engine *) e); }

/* no predict kernels: predictions use a CPU engine */
static const iclv_backend_ops cuda_ops = {"cuda", cuda_create, cuda_eval, NULL,
                                          cuda_set_poll, cuda_memory, cuda_free};
#define ICLV_CUDA_OPS (&cuda_ops)

int iclv_backend_cuda_compiled(void) { return 1; }

int iclv_backend_list_devices(iclv_device_info *info, int max_devices, int *n_devices,
                              char *reason, int reason_len) {
  reason[0] = '\0';
  return iclv_cuda_list_devices(info, max_devices, n_devices, reason, reason_len);
}

int iclv_backend_cuda_draws(const iclv_draws *d, int device, double *out, iclv_status *st) {
  return iclv_cuda_draws(d, device, out, st);
}

static int device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  return iclv_cuda_device_shape(device, s, st);
}
#else
#define ICLV_CUDA_OPS NULL
static const char no_cuda[] = "CUDA support was not compiled into this build of iclv";

int iclv_backend_cuda_compiled(void) { return 0; }

int iclv_backend_list_devices(iclv_device_info *info, int max_devices, int *n_devices,
                              char *reason, int reason_len) {
  (void) info;
  (void) max_devices;
  *n_devices = 0;
  snprintf(reason, (size_t) reason_len, "%s", no_cuda);
  return ICLV_OK;
}

int iclv_backend_cuda_draws(const iclv_draws *d, int device, double *out, iclv_status *st) {
  (void) d;
  (void) device;
  (void) out;
  return backend_fail(st, ICLV_ERR_CUDA, "this build of iclv was compiled without CUDA");
}

static int device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  (void) device;
  (void) s;
  return backend_fail(st, ICLV_ERR_CUDA, no_cuda);
}
#endif

/* ---- engines of any backend --------------------------------------------------- */

/* The table, indexed by ICLV_BACKEND_*; NULL: not compiled in. */
static const iclv_backend_ops *backend_ops(int backend) {
  if (backend == ICLV_BACKEND_CPU) return &cpu_ops;
  if (backend == ICLV_BACKEND_CUDA) return ICLV_CUDA_OPS;
  return NULL;
}

int iclv_engine_create(int backend, const iclv_model *m, const iclv_draws *d,
                       const iclv_engine_options *opt, iclv_engine *h, iclv_status *st) {
  memset(h, 0, sizeof(*h));
  if (known_backend(backend, st) != ICLV_OK) return st->code;
  const iclv_backend_ops *ops = backend_ops(backend);
  if (ops == NULL)
    return backend_fail(st, ICLV_ERR_CUDA, "backend = \"cuda\" was requested, but this build of "
                                           "iclv was compiled without CUDA");
  h->m = m;
  h->d = d;
  h->opt = *opt;
  if (ops->create(m, d, opt, &h->impl, st) != ICLV_OK) {
    h->impl = NULL;
    return st->code;
  }
  h->ops = ops;
  if (ops == &cpu_ops) h->cpu = (iclv_cpu_engine *) h->impl;
  return ICLV_OK;
}

/* h's CPU engine, made now when h has none. */
static int need_cpu(iclv_engine *h, iclv_status *st) {
  if (h->cpu != NULL) return ICLV_OK;
  return iclv_cpu_engine_create(h->m, h->d, h->opt.n_threads, h->opt.check_thread_limits, &h->cpu,
                                st);
}

int iclv_engine_eval(iclv_engine *h, const double *theta, int use_cpu, iclv_poll_fn poll,
                     void *ctx, iclv_eval_out *out, iclv_status *st) {
  int rc;
  if (use_cpu && h->ops != &cpu_ops) {
    if (need_cpu(h, st) != ICLV_OK) return st->code;
    iclv_cpu_engine_set_poll(h->cpu, poll, ctx);
    rc = iclv_cpu_eval(h->cpu, theta, out, st);
    iclv_cpu_engine_set_poll(h->cpu, NULL, NULL);
    return rc;
  }
  h->ops->set_poll(h->impl, poll, ctx);
  rc = h->ops->eval(h->impl, theta, out, st);
  h->ops->set_poll(h->impl, NULL, NULL);
  return rc;
}

int iclv_engine_predict(iclv_engine *h, const double *theta, iclv_poll_fn poll, void *ctx,
                        double *prob, double *lv_mean, double *lv_sd, double *comp_ll,
                        iclv_status *st) {
  int rc;
  if (h->ops->predict != NULL) {
    h->ops->set_poll(h->impl, poll, ctx);
    rc = h->ops->predict(h->impl, theta, prob, lv_mean, lv_sd, comp_ll, st);
    h->ops->set_poll(h->impl, NULL, NULL);
    return rc;
  }
  if (need_cpu(h, st) != ICLV_OK) return st->code;
  iclv_cpu_engine_set_poll(h->cpu, poll, ctx);
  rc = iclv_cpu_predict(h->cpu, theta, prob, lv_mean, lv_sd, comp_ll, st);
  iclv_cpu_engine_set_poll(h->cpu, NULL, NULL);
  return rc;
}

void iclv_engine_memory_of(const iclv_engine *h, iclv_engine_memory *out) {
  memset(out, 0, sizeof(*out));
  out->per_chunk = h->m->n_ind;
  out->n_chunks = 1;
  out->device_total = NAN;
  out->device_free = NAN;
  h->ops->memory(h->impl, out);
  if (h->cpu != NULL && h->ops != &cpu_ops) {
    /* the CPU engine made for predictions: its buffers after the backend's */
    const iclv_mem_account *c = iclv_cpu_engine_memory(h->cpu);
    iclv_mem_account *a = &out->host;
    for (int i = 0; i < c->n && a->n < ICLV_MAX_BUFFERS; i++) {
      a->bytes[a->n] = c->bytes[i];
      memcpy(a->name[a->n], c->name[i], ICLV_BUFNAME_LEN);
      a->n++;
    }
    a->current += c->current;
    a->peak += c->peak;
  }
}

void iclv_engine_free(iclv_engine *h) {
  if (h->cpu != NULL && h->cpu != h->impl) iclv_cpu_engine_free(h->cpu);
  if (h->ops != NULL && h->impl != NULL) h->ops->free(h->impl);
  h->cpu = NULL;
  h->impl = NULL;
  h->ops = NULL;
}

/* ---- plans ----------------------------------------------------------------- */

int iclv_engine_plan_make(int backend, const iclv_model *m, const iclv_draws *d,
                          const iclv_engine_options *opt, iclv_engine_plan *out, iclv_status *st) {
  memset(out, 0, sizeof(*out));
  if (known_backend(backend, st) != ICLV_OK) return st->code;
  if (iclv_cpu_plan(m, d, opt->n_threads, &out->cpu, st) != ICLV_OK) return st->code;
  if (backend != ICLV_BACKEND_CUDA) return ICLV_OK;
  out->has_device = 1;
  {
    iclv_status why = {0, ""};
    if (device_shape(opt->device, &out->shape, &why) != ICLV_OK) {
      iclv_cuda_shape_assumed(&out->shape);
      snprintf(out->reason, sizeof out->reason, "%s", why.msg);
    }
  }
  if (iclv_cuda_plan_make(m, d, &out->shape, opt->device_memory, &out->cuda, st) != ICLV_OK)
    return st->code;
  iclv_cuda_plan_accounts(&out->cuda, out->cuda.per_chunk, 1, &out->device, &out->pinned);
  return ICLV_OK;
}
