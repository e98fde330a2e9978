/*
 * cuda_engine.cu -- the CUDA engine's creation and memory: the device's
 * shape, the account of every buffer, the chunk buffers, the model upload,
 * release. The design of the backend and the role of each file are in
 * cuda_engine_impl.cuh; the plan it allocates from is cuda_plan.c's.
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>

#include "../numerics.h"
#include "../iclv_core.h"
#include "../model_checks.h"
#include "cuda_util.cuh"
#include "cuda_engine_impl.cuh"

/* ---- small host helpers ------------------------------------------------------ */

int ce_fail_msg(iclv_status *st, int code, const char *msg) {
  st->code = code;
  snprintf(st->msg, ICLV_MSG_LEN, "%s", msg);
  return code;
}

/* "812 bytes", "3.4 KB", "12.5 MB" or "1.07 GB" (1 KB = 1024 bytes) into buf. */
const char *ce_fmt_bytes(double b, char *buf, size_t len) {
  if (b < 1024.0) snprintf(buf, len, "%.0f bytes", b);
  else if (b < 1048576.0) snprintf(buf, len, "%.1f KB", b / 1024.0);
  else if (b < 1073741824.0) snprintf(buf, len, "%.1f MB", b / 1048576.0);
  else snprintf(buf, len, "%.2f GB", b / 1073741824.0);
  return buf;
}

/* Records a buffer in the account (bytes may be an estimate with ptr NULL). */
static int account_add(iclv_cuda_engine *e, const char *name, double bytes, void *ptr,
                       iclv_status *st) {
  if (e->acct.n >= ICLV_MAX_BUFFERS)
    return ce_fail_msg(st, ICLV_ERR_MEMORY, "the CUDA engine has more buffers than its account holds");
  int i = e->acct.n++;
  e->dbuf[i] = ptr;
  snprintf(e->acct.name[i], ICLV_BUFNAME_LEN, "%s", name);
  e->acct.bytes[i] = bytes;
  e->acct.current += bytes;
  if (e->acct.current > e->acct.peak) e->acct.peak = e->acct.current;
  return ICLV_OK;
}

/* cudaMalloc of `bytes` (nothing when 0: *out = NULL), recorded under
 * `name`. Out of device memory is ICLV_ERR_MEMORY naming the buffer;
 * another failure is ICLV_ERR_CUDA with call, file and line. */
static int dev_alloc(iclv_cuda_engine *e, const char *name, size_t bytes, void **out,
                     iclv_status *st) {
  *out = NULL;
  if (bytes == 0) return ICLV_OK;
  void *p = NULL;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    if (err == cudaErrorMemoryAllocation) {
      char b1[32], b2[32];
      (void) cudaGetLastError();
      st->code = ICLV_ERR_MEMORY;
      snprintf(st->msg, ICLV_MSG_LEN,
               "could not allocate %s of device memory for the CUDA engine's buffer '%s' "
               "(cudaMalloc at %s:%d: %s); %s were free when the engine started; lower "
               "device_memory in iclv_control() to process individuals in smaller chunks",
               ce_fmt_bytes((double) bytes, b1, sizeof b1), name, __FILE__, __LINE__,
               cudaGetErrorString(err), ce_fmt_bytes(e->dev_free, b2, sizeof b2));
      return st->code;
    }
    return iclv_cuda_fail(st, err, "cudaMalloc", __FILE__, __LINE__);
  }
  if (account_add(e, name, (double) bytes, p, st) != ICLV_OK) {
    cudaFree(p);
    return st->code;
  }
  *out = p;
  return ICLV_OK;
}

/* Records `bytes` under `name` in the host account (not device memory). */
static void host_record(iclv_cuda_engine *e, const char *name, double bytes) {
  int i = e->hacct.n++;
  snprintf(e->hacct.name[i], ICLV_BUFNAME_LEN, "%s", name);
  e->hacct.bytes[i] = bytes;
  e->hacct.current += bytes;
  e->hacct.peak = e->hacct.current;
}

/* Pinned host memory (page-locked, for asynchronous copies) for the plan's
 * host buffer `id`, sized for per_chunk individuals; recorded in the host
 * account (nothing when empty). */
static int host_alloc(iclv_cuda_engine *e, int id, void **out, iclv_status *st) {
  const iclv_cuda_buf *b = &e->plan.host[id];
  size_t bytes = (size_t) iclv_cuda_buf_bytes(b, e->per_chunk);
  *out = NULL;
  if (bytes == 0) return ICLV_OK;
  if (e->n_hbuf >= ICLV_CUDA_MAX_HOST)
    return ce_fail_msg(st, ICLV_ERR_MEMORY, "the CUDA engine has more pinned buffers than it tracks");
  void *p = NULL;
  ICLV_CUDA_TRY(st, cudaMallocHost(&p, bytes));
  e->hbuf[e->n_hbuf++] = p;
  host_record(e, b->name, (double) bytes);
  *out = p;
  return ICLV_OK;
fail:
  return st->code;
}

/* cudaMalloc of the plan's device buffer `id` for a chunk of `cap`
 * individuals (dev_alloc's rules). */
int ce_plan_alloc(iclv_cuda_engine *e, int id, int cap, void **out, iclv_status *st) {
  const iclv_cuda_buf *b = &e->plan.dev[id];
  return dev_alloc(e, b->name, (size_t) iclv_cuda_buf_bytes(b, cap), out, st);
}

/* ---- checks mirrored from engine.c (same rules, same messages) -------------- */

/* The data and theta checks and the diagnosis of a non-finite likelihood
 * are engine.c's, shared through model_checks.c (iclv_check_data,
 * iclv_check_theta, iclv_diagnose_individual), so both backends refuse the
 * same inputs with the same messages. */

/* Names the model part behind individual n's non-finite likelihood, on the
 * host with the host copies of the model and draws. */
void ce_diagnose(const iclv_cuda_engine *e, const double *theta, int n, char *buf, size_t len) {
  double *ev = e->h_ws;
  iclv_pair_ws pw;
  pw.eta = ev + e->K;
  pw.D = NULL;
  pw.D2 = NULL;
  pw.V = pw.eta + e->K;
  pw.gV = pw.V + iclv_vscratch_dim(e->hm); /* h_ws: 2K + Jv + JL (cuda_plan.c) */
  pw.HV = NULL;
  iclv_diagnose_individual(e->hm, e->hd, theta, n, ev, &pw, buf, len);
}

/* ---- model upload ------------------------------------------------------------------ */

/* Copies the parts (elements of `elem` bytes) into one host block, uploads
 * it to a device buffer named `name` and points the fields at it (NULL for
 * empty arrays, as on the host). */
static int upload_parts(iclv_cuda_engine *e, const char *name, iclv_model_part *parts, int n_parts,
                        size_t elem, void **dbuf, iclv_status *st) {
  size_t total = 0;
  char *stage = NULL;
  char *dev = NULL;
  for (int i = 0; i < n_parts; i++) total += iclv_cuda_pad32(parts[i].len);
  *dbuf = NULL;
  if (total == 0) {
    void *none = NULL;
    for (int i = 0; i < n_parts; i++) memcpy(parts[i].dst, &none, sizeof none);
    return ICLV_OK;
  }
  stage = (char *) calloc(total, elem);
  if (stage == NULL) return ce_fail_msg(st, ICLV_ERR_MEMORY, "could not allocate host staging for the model upload");
  if (dev_alloc(e, name, total * elem, dbuf, st) != ICLV_OK) goto fail;
  dev = (char *) *dbuf;
  {
    size_t off = 0;
    for (int i = 0; i < n_parts; i++) {
      void *where = NULL;
      if (parts[i].len > 0) {
        memcpy(stage + off * elem, parts[i].src, parts[i].len * elem);
        where = dev + off * elem;
      }
      memcpy(parts[i].dst, &where, sizeof where); /* the field is a const T *; no aliasing cast */
      off += iclv_cuda_pad32(parts[i].len);
    }
  }
  ICLV_CUDA_TRY(st, cudaMemcpy(dev, stage, total * elem, cudaMemcpyHostToDevice));
  free(stage);
  return ICLV_OK;
fail:
  free(stage);
  return st->code;
}

/* Builds e->dm (device view of the model) and uploads its arrays, the
 * parts and lengths of the planner (iclv_cuda_model_parts). */
static int upload_model(iclv_cuda_engine *e, iclv_status *st) {
  iclv_model_part ip[ICLV_CUDA_INT_PARTS], dp[ICLV_CUDA_DBL_PARTS];
  e->dm = *e->hm; /* dimensions; pointers replaced below */
  iclv_cuda_model_parts(e->hm, &e->dm, ip, dp);
  void *buf = NULL;
  if (upload_parts(e, e->plan.dev[ICLV_CD_MODEL_INT].name, ip, ICLV_CUDA_INT_PARTS, sizeof(int),
                   &buf, st) != ICLV_OK)
    return st->code;
  e->d_int = (int *) buf;
  if (upload_parts(e, e->plan.dev[ICLV_CD_MODEL_DBL].name, dp, ICLV_CUDA_DBL_PARTS, sizeof(double),
                   &buf, st) != ICLV_OK)
    return st->code;
  e->d_dbl = (double *) buf;
  return ICLV_OK;
}

/* ---- creation ------------------------------------------------------------------------ */

extern "C" const iclv_mem_account *iclv_cuda_engine_memory(const iclv_cuda_engine *e) {
  return &e->acct;
}

extern "C" const iclv_mem_account *iclv_cuda_engine_host_memory(const iclv_cuda_engine *e) {
  return &e->hacct;
}

extern "C" void iclv_cuda_engine_chunking(const iclv_cuda_engine *e, int *per_chunk,
                                          int *n_chunks, double *dev_total,
                                          double *dev_free_at_start) {
  *per_chunk = e->per_chunk;
  *n_chunks = e->n_chunks;
  *dev_total = e->dev_total;
  *dev_free_at_start = e->dev_free;
}

extern "C" void iclv_cuda_engine_graphs(const iclv_cuda_engine *e, double *builds, double *launches) {
  *builds = (double) e->graph_builds;
  *launches = (double) e->graph_launches;
}

extern "C" void iclv_cuda_engine_free(iclv_cuda_engine *e) {
  if (e == NULL) return;
  if (e->device >= 0) (void) cudaSetDevice(e->device);
  ce_graphs_destroy(e); /* before the buffers they name */
  if (e->have_stream) (void) cudaStreamDestroy(e->stream);
  for (int i = 0; i < e->acct.n; i++)
    if (e->dbuf[i] != NULL) (void) cudaFree(e->dbuf[i]);
  for (int i = 0; i < e->n_hbuf; i++) (void) cudaFreeHost(e->hbuf[i]);
  free(e->h_ws);
  (void) cudaGetLastError(); /* leave no error behind for the next caller */
  free(e);
}

/* Allocates one device block of head + tail bytes, recorded as two account
 * entries (`head_name`, fixed, and `tail_name`, a chunk buffer); the second
 * entry holds no pointer (the block is freed once). */
static int dev_alloc2(iclv_cuda_engine *e, const char *head_name, size_t head, const char *tail_name,
                      size_t tail, void **out, iclv_status *st) {
  if (dev_alloc(e, head_name, head + tail, out, st) != ICLV_OK) return st->code;
  e->acct.bytes[e->acct.n - 1] = (double) head;
  e->acct.current -= (double) tail;
  if (account_add(e, tail_name, (double) tail, NULL, st) != ICLV_OK) return st->code;
  return ICLV_OK;
}

/* Frees the chunk buffers (the account's entries from chunk_first on) and
 * removes them from the account (the peak keeps them). */
void ce_chunk_release(iclv_cuda_engine *e) {
  ce_graphs_destroy(e); /* they name these buffers: none may outlive them */
  if (e->chunk_first < 0) return;
  for (int i = e->acct.n - 1; i >= e->chunk_first; i--) {
    if (e->dbuf[i] != NULL) (void) cudaFree(e->dbuf[i]);
    e->dbuf[i] = NULL;
    e->acct.current -= e->acct.bytes[i];
  }
  e->acct.n = e->chunk_first;
  e->chunk_first = -1;
  e->d_out = e->d_lse = e->d_rows = e->d_part = e->d_grows = NULL;
  e->cap = 0;
}

/* Allocates the buffers of a chunk of `cap` individuals (the results block,
 * log-sum-exp, score rows, split states, global pair rows) as the last
 * entries of the account, and poisons what the kernels must overwrite (a
 * missed element is NaN, caught). On failure the caller frees the engine. */
int ce_chunk_alloc(iclv_cuda_engine *e, int cap, iclv_status *st) {
  void *p = NULL;
  const iclv_cuda_buf *pb = e->plan.dev;
  e->chunk_first = e->acct.n;
  e->cap = cap;
  {
    const size_t head = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_SUMS], cap);
    const size_t tail = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_LLSTATUS], cap);
    const size_t b_lse = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_LSE], cap);
    const size_t b_rows = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_SCORES], cap);
    const size_t b_part = (size_t) iclv_cuda_buf_bytes(&pb[ICLV_CD_PART], cap);
    if (dev_alloc2(e, pb[ICLV_CD_SUMS].name, head, pb[ICLV_CD_LLSTATUS].name, tail, &p, st) != ICLV_OK)
      goto fail;
    e->d_out = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_LSE, cap, &p, st) != ICLV_OK) goto fail;
    e->d_lse = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_SCORES, cap, &p, st) != ICLV_OK) goto fail;
    e->d_rows = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_PART, cap, &p, st) != ICLV_OK) goto fail; /* none when B == 1 */
    e->d_part = (double *) p;
    if (ce_plan_alloc(e, ICLV_CD_GROWS, cap, &p, st) != ICLV_OK) goto fail; /* none in shared memory */
    e->d_grows = (double *) p;
    /* poison what the kernels must overwrite: a missed element is NaN, caught */
    ICLV_CUDA_TRY(st, cudaMemset(e->d_out, 0xFF, head + tail));
    ICLV_CUDA_TRY(st, cudaMemset(e->d_rows, 0xFF, b_rows));
    ICLV_CUDA_TRY(st, cudaMemset(e->d_lse, 0xFF, b_lse));
    if (e->d_part) ICLV_CUDA_TRY(st, cudaMemset(e->d_part, 0xFF, b_part));
    ICLV_CUDA_TRY(st, cudaDeviceSynchronize());
  }
  return ICLV_OK;
fail:
  return st->code;
}

/* The device's shape, as the planner needs it (cuda_plan.h), for `device`
 * (made current): its properties, free memory and the kernels' attributes.
 * Returns ICLV_OK or ICLV_ERR_CUDA. */
static int device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  cudaDeviceProp prop;
  cudaFuncAttributes fa[6];
  size_t free_b = 0, total_b = 0;
  memset(s, 0, sizeof(*s));
  ICLV_CUDA_TRY(st, cudaSetDevice(device));
  ICLV_CUDA_TRY(st, cudaGetDeviceProperties(&prop, device));
  ICLV_CUDA_TRY(st, cudaMemGetInfo(&free_b, &total_b));
  ICLV_CUDA_TRY(st, cl_kernel_attributes(fa));
  snprintf(s->name, sizeof s->name, "%s", prop.name);
  s->known = 1;
  s->sms = prop.multiProcessorCount > 0 ? prop.multiProcessorCount : 1;
  s->threads_per_sm = prop.maxThreadsPerMultiProcessor;
  s->smem_optin = prop.sharedMemPerBlockOptin > prop.sharedMemPerBlock ? prop.sharedMemPerBlockOptin
                                                                       : prop.sharedMemPerBlock;
  s->local_frame = 0;
  for (int k = 0; k < 6; k++) {
    s->kernel_max_threads[k] = fa[k].maxThreadsPerBlock;
    if (fa[k].localSizeBytes > s->local_frame) s->local_frame = fa[k].localSizeBytes;
  }
  s->total_bytes = (double) total_b;
  s->free_bytes = (double) free_b;
  return ICLV_OK;
fail:
  return st->code;
}

/* ICLV_OK when device `device` exists, else ICLV_ERR_CUDA saying why. */
static int device_exists(int device, iclv_status *st) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void) cudaGetLastError();
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN,
             "no usable CUDA device: cudaGetDeviceCount failed at %s:%d: %s (%s)", __FILE__,
             __LINE__, cudaGetErrorString(err), cudaGetErrorName(err));
    return st->code;
  }
  if (count == 0) return ce_fail_msg(st, ICLV_ERR_CUDA, "no usable CUDA device: none is present");
  if (device < 0 || device >= count) {
    st->code = ICLV_ERR_CUDA;
    snprintf(st->msg, ICLV_MSG_LEN, "CUDA device %d was requested, but %d device(s) exist (ordinals 0 to %d)",
             device, count, count - 1);
    return st->code;
  }
  return ICLV_OK;
}

extern "C" int iclv_cuda_device_shape(int device, iclv_cuda_shape *s, iclv_status *st) {
  st->code = ICLV_OK;
  st->msg[0] = '\0';
  if (device_exists(device, st) != ICLV_OK) return st->code;
  return device_shape(device, s, st);
}

/* The engine's environment knobs (cuda_engine_impl.cuh): ICLV_CUDA_GRAPHS
 * (unset, "" or "1": graphs; "0": none) and the test hook
 * ICLV_CUDA_TEST_HESSIAN_CHUNK (unset or "": none; else a positive count).
 * Another value is ICLV_ERR_INPUT naming the variable. */
static int read_env_knobs(iclv_cuda_engine *e, iclv_status *st) {
  const char *g = getenv("ICLV_CUDA_GRAPHS");
  const char *h = getenv("ICLV_CUDA_TEST_HESSIAN_CHUNK");
  if (g == NULL || g[0] == '\0' || strcmp(g, "1") == 0) e->use_graphs = 1;
  else if (strcmp(g, "0") == 0) e->use_graphs = 0;
  else {
    st->code = ICLV_ERR_INPUT;
    snprintf(st->msg, ICLV_MSG_LEN, "the environment variable ICLV_CUDA_GRAPHS must be 0 or 1 (unset: 1), not '%.40s'", g);
    return st->code;
  }
  e->test_hess_chunk = 0;
  if (h != NULL && h[0] != '\0') {
    char *end = NULL;
    const long k = strtol(h, &end, 10);
    if (*end != '\0' || k < 1 || k > 1000000000L) {
      st->code = ICLV_ERR_INPUT;
      snprintf(st->msg, ICLV_MSG_LEN,
               "the environment variable ICLV_CUDA_TEST_HESSIAN_CHUNK must be a positive count, not '%.40s'", h);
      return st->code;
    }
    e->test_hess_chunk = (int) k;
  }
  return ICLV_OK;
}

extern "C" int iclv_cuda_engine_create(const iclv_model *m, const iclv_draws *d,
                                       const iclv_cuda_options *opt, iclv_cuda_engine **out,
                                       iclv_status *st) {
  iclv_cuda_engine *e = NULL;
  iclv_cuda_shape shape;
  void *p = NULL;
  *out = NULL;
  st->code = ICLV_OK;
  st->msg[0] = '\0';

  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    return ce_fail_msg(st, ICLV_ERR_INPUT, "the draw design does not match the model (individuals or LVs)");
  if (iclv_draws_check(d, st) != ICLV_OK) return st->code;
  if (iclv_check_data(m, st) != ICLV_OK) return st->code;
  /* the device: say why when there is none */
  if (device_exists(opt->device, st) != ICLV_OK) return st->code;

  e = (iclv_cuda_engine *) calloc(1, sizeof(*e));
  if (e == NULL) return ce_fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine");
  e->device = -1;
  e->chunk_first = -1;
  e->hm = m;
  e->hd = d;
  e->N = m->n_ind;
  e->P = m->n_par;
  e->K = m->n_lv;
  e->R = d->n_draws;
  e->S = m->st_ptr[m->n_lv];
  e->J = m->n_alt > 0 ? m->n_alt : 1;
  for (int t = 0; t < e->S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV) e->has_lv_src = 1;
  if (read_env_knobs(e, st) != ICLV_OK) goto fail;

  if (device_shape(opt->device, &shape, st) != ICLV_OK) goto fail;
  e->device = opt->device;
  e->dev_total = shape.total_bytes;
  e->dev_free = shape.free_bytes;
  ICLV_CUDA_TRY(st, cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
  e->have_stream = 1;

  /* the plan: launch shape, buffers and chunk (independent of the chunk
   * except the chunk buffers themselves) */
  if (iclv_cuda_plan_make(m, d, &shape, opt->device_memory_budget, &e->plan, st) != ICLV_OK) goto fail;
  {
    const int need_threads[6] = {e->plan.threads, e->plan.threads, ICLV_CUDA_AUX_BLOCK, ICLV_CUDA_AUX_BLOCK,
                                 ICLV_CUDA_HESS_BLOCK, ICLV_CUDA_AUX_BLOCK};
    for (int k = 0; k < 6; k++) {
      if (shape.kernel_max_threads[k] < need_threads[k]) {
        st->code = ICLV_ERR_CUDA;
        snprintf(st->msg, ICLV_MSG_LEN,
                 "CUDA kernel %d of the engine cannot run %d threads per block on %s (at most %d)",
                 k, need_threads[k], shape.name, shape.kernel_max_threads[k]);
        goto fail;
      }
    }
  }
  ICLV_CUDA_TRY(st, cl_kernel_optin((size_t) e->plan.smem_pairs, (size_t) e->P * sizeof(double)));
  if (e->plan.per_chunk < 1) {
    char b1[32], b2[32], b3[32], b4[32], b5[32];
    st->code = ICLV_ERR_MEMORY;
    snprintf(st->msg, ICLV_MSG_LEN,
             "the device memory budget of %s is too small for even one individual: the CUDA "
             "engine needs %s that do not depend on the chunk size (model and data, %s of user "
             "draws, %s of local scratch reserved by the driver, the Hessian's sums) plus %s per "
             "individual (R = %d draws, P = %d parameters, the Hessian's buffers included); "
             "raise device_memory in iclv_control() or use backend = \"cpu\"",
             ce_fmt_bytes(e->plan.budget, b1, sizeof b1),
             ce_fmt_bytes(e->plan.fixed_bytes + e->plan.hess_fixed_bytes, b2, sizeof b2),
             ce_fmt_bytes(e->plan.dev[ICLV_CD_USER].fixed, b3, sizeof b3), ce_fmt_bytes(e->plan.lmem, b4, sizeof b4),
             ce_fmt_bytes(e->plan.per_ind_bytes + e->plan.hess_per_ind_bytes, b5, sizeof b5), e->R, e->P);
    goto fail;
  }
  e->per_chunk = e->plan.per_chunk;
  e->n_chunks = e->plan.n_chunks;

  /* device memory, in the plan's order: the model, user draws, theta, the
   * reduction carry, the local-memory reservation (recorded, not
   * allocated), then the chunk */
  if (upload_model(e, st) != ICLV_OK) goto fail;
  e->dd = *d;
  e->dd.user = NULL;
  if (ce_plan_alloc(e, ICLV_CD_USER, 0, &p, st) != ICLV_OK) goto fail; /* none unless USER draws */
  e->d_user = (double *) p;
  if (e->d_user != NULL) {
    ICLV_CUDA_TRY(st, cudaMemcpy(e->d_user, d->user, (size_t) e->plan.dev[ICLV_CD_USER].fixed,
                                 cudaMemcpyHostToDevice));
    e->dd.user = e->d_user;
  }
  if (ce_plan_alloc(e, ICLV_CD_THETA, 0, &p, st) != ICLV_OK) goto fail;
  e->d_theta = (double *) p;
  if (ce_plan_alloc(e, ICLV_CD_CARRY, 0, &p, st) != ICLV_OK) goto fail;
  e->d_carry = (double *) p;
  if (account_add(e, e->plan.dev[ICLV_CD_LMEM].name, e->plan.lmem, NULL, st) != ICLV_OK) goto fail;
  if (ce_chunk_alloc(e, e->per_chunk, st) != ICLV_OK) goto fail;

  /* pinned host staging and host scratch */
  if (host_alloc(e, ICLV_CH_THETA, &p, st) != ICLV_OK) goto fail;
  e->h_theta = (double *) p;
  if (host_alloc(e, ICLV_CH_OUT, &p, st) != ICLV_OK) goto fail;
  e->h_out = (double *) p;
  if (host_alloc(e, ICLV_CH_ROWS, &p, st) != ICLV_OK) goto fail;
  e->h_rows = (double *) p;
  if (host_alloc(e, ICLV_CH_HESS, &p, st) != ICLV_OK) goto fail;
  e->h_hess = (double *) p;
  if (host_alloc(e, ICLV_CH_HSTATUS, &p, st) != ICLV_OK) goto fail;
  e->h_hstatus = (int *) p;
  {
    const iclv_cuda_buf *b = &e->plan.host[ICLV_CH_SCRATCH];
    e->h_ws = (double *) calloc((size_t) b->fixed, 1);
    if (e->h_ws == NULL) {
      ce_fail_msg(st, ICLV_ERR_MEMORY, "could not allocate the CUDA engine's host scratch");
      goto fail;
    }
    host_record(e, b->name, b->fixed);
  }
  *out = e;
  return ICLV_OK;

fail:
  iclv_cuda_engine_free(e);
  return st->code;
}
