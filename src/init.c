/*
 * init.c -- registers every .Call routine of iclv with its exact argument
 * count, disables dynamic symbol lookup and forces R code to use the
 * registered symbols (R/engine.R calls them as C_<name>).
 * Nothing here touches CUDA: loading the package never initialises a device.
 */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

SEXP C_iclv_cuda_compiled(void);
SEXP C_iclv_cuda_devices(void);
SEXP C_iclv_draws_generate(SEXP spec);
SEXP C_iclv_cuda_draws(SEXP spec, SEXP device);
SEXP C_iclv_engine_new(SEXP compiled, SEXP spec, SEXP backend, SEXP options);
SEXP C_iclv_engine_release(SEXP ptr);
SEXP C_iclv_engine_eval(SEXP ptr, SEXP theta, SEXP what);
SEXP C_iclv_engine_predict(SEXP ptr, SEXP theta);
SEXP C_iclv_engine_memory(SEXP ptr);
SEXP C_iclv_engine_plan(SEXP compiled, SEXP spec, SEXP backend, SEXP options);
SEXP C_iclv_default_threads(void);
SEXP C_iclv_engine_paths(SEXP ptr);
SEXP C_iclv_eigen_sym(SEXP a);
SEXP C_iclv_inverse_spd(SEXP a);

static const R_CallMethodDef call_methods[] = {
  {"C_iclv_cuda_compiled",  (DL_FUNC) &C_iclv_cuda_compiled,  0},
  {"C_iclv_cuda_devices",   (DL_FUNC) &C_iclv_cuda_devices,   0},
  {"C_iclv_draws_generate", (DL_FUNC) &C_iclv_draws_generate, 1},
  {"C_iclv_cuda_draws", (DL_FUNC) &C_iclv_cuda_draws, 2},
  {"C_iclv_engine_new",     (DL_FUNC) &C_iclv_engine_new,     4},
  {"C_iclv_engine_release", (DL_FUNC) &C_iclv_engine_release, 1},
  {"C_iclv_engine_eval",    (DL_FUNC) &C_iclv_engine_eval,    3},
  {"C_iclv_engine_predict", (DL_FUNC) &C_iclv_engine_predict, 2},
  {"C_iclv_engine_memory",  (DL_FUNC) &C_iclv_engine_memory,  1},
  {"C_iclv_engine_plan",    (DL_FUNC) &C_iclv_engine_plan,    4},
  {"C_iclv_default_threads", (DL_FUNC) &C_iclv_default_threads, 0},
  {"C_iclv_engine_paths",   (DL_FUNC) &C_iclv_engine_paths,   1},
  {"C_iclv_eigen_sym",      (DL_FUNC) &C_iclv_eigen_sym,      1},
  {"C_iclv_inverse_spd",    (DL_FUNC) &C_iclv_inverse_spd,    1},
  {NULL, NULL, 0}
};

void R_init_iclv(DllInfo *dll) {
  R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
  R_useDynamicSymbols(dll, FALSE);
  R_forceSymbols(dll, TRUE);
}
