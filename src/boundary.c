/*
 * boundary.c -- the only place where R objects meet the C core.
 *
 * It turns R objects into the plain C structs of iclv_model.h, calls the
 * core, and turns a non-zero iclv_status into an R error. Errors are raised
 * with a leading tag "[iclv_error_<class>]" that R/engine.R converts into a
 * classed R condition.
 *
 * Engines (of any backend: backend.h holds the table of backends and the
 * only dependence on the CUDA build) live in a tagged external pointer. The
 * pointer's `protected` slot keeps the R vectors the model points into
 * alive; its finalizer is registered before anything is allocated, is
 * idempotent and never raises.
 */
#include <R.h>
#include <Rinternals.h>
#include <string.h>
#include <math.h>
#include <stdio.h>

#include "iclv_model.h"
#include "engine.h"
#include "draws.h"
#include "linalg.h"
#include "backend.h"
#include "engine_fast.h" /* ICLV_FAST_NCNT (C_iclv_engine_paths) */

/* ---- errors ------------------------------------------------------------- */

static const char *status_class(int code) {
  switch (code) {
  case ICLV_ERR_INPUT:   return "iclv_error_input";
  case ICLV_ERR_NUMERIC: return "iclv_error_numeric";
  case ICLV_ERR_MEMORY:  return "iclv_error_memory";
  case ICLV_ERR_CUDA:    return "iclv_error_cuda";
  case ICLV_ERR_LAPACK:  return "iclv_error_lapack";
  case ICLV_INTERRUPTED: return "iclv_error_interrupted";
  case ICLV_ERR_THREADS: return "iclv_error_control";
  default:               return "iclv_error";
  }
}

static void stop_status(const iclv_status *st) {
  Rf_error("[%s] %s", status_class(st->code), st->msg);
}

static void stop_input(const char *what) {
  Rf_error("[iclv_error_input] %s", what);
}

/* Sets the names of x (length n) to the C strings f. */
static void set_names(SEXP x, const char **f, int n) {
  SEXP nm = PROTECT(Rf_allocVector(STRSXP, n));
  for (int i = 0; i < n; i++) SET_STRING_ELT(nm, i, Rf_mkChar(f[i]));
  Rf_setAttrib(x, R_NamesSymbol, nm);
  UNPROTECT(1);
}

/* ---- interrupts ---------------------------------------------------------- */

/* The engines' poll (engine.h), called on the main thread between batches of
 * individuals. R_CheckUserInterrupt() runs behind R_ToplevelExec, so a
 * pending Ctrl-C unwinds only to here (it is consumed) and the core returns
 * ICLV_INTERRUPTED normally, with nothing allocated to free; the boundary
 * then raises iclv_error_interrupted.
 *
 * Test hook (tests only; see .engine_test_interrupt() in R/engine.R): an
 * engine created with options$test_interrupt = c(after, on) reports an
 * interrupt at poll number `after` (0-based) of every evaluation of kind
 * `on` (1 any evaluation, 2 with the Hessian, 3 with scores and Hessian,
 * 4 predictions). */
typedef struct {
  int armed;     /* 1: the test hook counts this call's polls */
  int countdown; /* polls left before the hook reports an interrupt */
} poll_state;

static void check_interrupt_fn(void *dummy) {
  (void) dummy;
  R_CheckUserInterrupt();
}

static int poll_interrupt(void *ctx) {
  poll_state *ps = (poll_state *) ctx;
  if (ps != NULL && ps->armed && ps->countdown-- <= 0) return 1;
  return R_ToplevelExec(check_interrupt_fn, NULL) == FALSE;
}

enum { TEST_INT_OFF = 0, TEST_INT_ANY = 1, TEST_INT_HESS = 2, TEST_INT_FINAL = 3, TEST_INT_PREDICT = 4 };

/* ---- reading the compiled list ----------------------------------------- */

static SEXP get_elt(SEXP list, const char *name) {
  SEXP names = Rf_getAttrib(list, R_NamesSymbol);
  if (!Rf_isNewList(list) || Rf_isNull(names)) stop_input("compiled model is not a named list");
  R_xlen_t n = XLENGTH(list);
  for (R_xlen_t i = 0; i < n; i++)
    if (strcmp(CHAR(STRING_ELT(names, i)), name) == 0) return VECTOR_ELT(list, i);
  Rf_error("[iclv_error_input] compiled model lacks element '%s'", name);
  return R_NilValue; /* not reached */
}

/* Does the named list have an element `name`? */
static int has_elt(SEXP list, const char *name) {
  SEXP names = Rf_getAttrib(list, R_NamesSymbol);
  if (!Rf_isNewList(list) || Rf_isNull(names)) return 0;
  for (R_xlen_t i = 0; i < XLENGTH(list); i++)
    if (strcmp(CHAR(STRING_ELT(names, i)), name) == 0) return 1;
  return 0;
}

static int get_int(SEXP list, const char *name) {
  SEXP x = get_elt(list, name);
  if (!Rf_isInteger(x) || XLENGTH(x) != 1 || INTEGER(x)[0] == NA_INTEGER)
    Rf_error("[iclv_error_input] compiled element '%s' must be one integer", name);
  return INTEGER(x)[0];
}

/* An integer vector of exactly `len` entries (NULL pointer when len == 0). */
static const int *get_ivec(SEXP list, const char *name, R_xlen_t len) {
  SEXP x = get_elt(list, name);
  if (!Rf_isInteger(x))
    Rf_error("[iclv_error_input] compiled element '%s' must be an integer vector (is %s)",
             name, Rf_type2char(TYPEOF(x)));
  if (XLENGTH(x) != len)
    Rf_error("[iclv_error_input] compiled element '%s' must have length %lld (has %lld)",
             name, (long long) len, (long long) XLENGTH(x));
  return len > 0 ? INTEGER(x) : NULL;
}

static const double *get_dvec(SEXP list, const char *name, R_xlen_t len) {
  SEXP x = get_elt(list, name);
  if (!Rf_isReal(x))
    Rf_error("[iclv_error_input] compiled element '%s' must be a double vector (is %s)",
             name, Rf_type2char(TYPEOF(x)));
  if (XLENGTH(x) != len)
    Rf_error("[iclv_error_input] compiled element '%s' must have length %lld (has %lld)",
             name, (long long) len, (long long) XLENGTH(x));
  return len > 0 ? REAL(x) : NULL;
}

/* Checks that a CSR pointer array is non-decreasing from 0 and that every
 * index in `idx` lies in [lo, hi). */
static void check_ptr(const int *ptr, int n, const char *name) {
  if (n >= 0 && ptr[0] != 0) Rf_error("[iclv_error_input] compiled '%s' must start at 0", name);
  for (int i = 0; i < n; i++)
    if (ptr[i + 1] < ptr[i]) Rf_error("[iclv_error_input] compiled '%s' decreases at %d", name, i);
}

static void check_idx(const int *idx, int len, int lo, int hi, const char *name) {
  for (int i = 0; i < len; i++)
    if (idx[i] < lo || idx[i] >= hi)
      Rf_error("[iclv_error_input] compiled '%s'[%d] = %d is outside [%d, %d)", name, i, idx[i], lo, hi);
}

/* The utilities' tapes (src/iclv_tape.h, R/tape.R): optional ('n_tape'
 * absent or 0: none). Every program is checked to run: operands on the
 * stack for each operator, one result, a depth within tape_depth, indices
 * in range; so the engines can run them unchecked. */
static void tapes_from_R(SEXP compiled, iclv_model *m) {
  int J = m->n_alt, P = m->n_par, K = m->n_lv;
  m->n_tape = has_elt(compiled, "n_tape") ? get_int(compiled, "n_tape") : 0;
  m->tape_nv = m->tape_depth = m->n_tape_const = 0;
  m->tape_ptr = m->tape_op = m->tape_arg = m->tape_var_ptr = m->tape_var = NULL;
  m->tape_pptr = m->tape_pop = m->tape_parg = NULL;
  m->tape_nslot = 0;
  m->tape_const = NULL;
  if (m->n_tape == 0) return;
  if (m->n_tape < 0 || J < 1) stop_input("compiled 'n_tape' must be 0 without a choice model");
  m->tape_nv = get_int(compiled, "tape_nv");
  m->tape_depth = get_int(compiled, "tape_depth");
  if (m->tape_nv < 0 || m->tape_nv > ICLV_TAPE_MAX_VARS || m->tape_depth < 1 || m->tape_depth > ICLV_TAPE_MAX_DEPTH)
    stop_input("compiled 'tape_nv' or 'tape_depth' out of range");
  m->tape_ptr = get_ivec(compiled, "tape_ptr", J + 1);
  check_ptr(m->tape_ptr, J, "tape_ptr");
  int n_op = m->tape_ptr[J];
  m->tape_op = get_ivec(compiled, "tape_op", n_op);
  m->tape_arg = get_ivec(compiled, "tape_arg", n_op);
  m->n_tape_const = get_int(compiled, "n_tape_const");
  m->tape_const = get_dvec(compiled, "tape_const", m->n_tape_const);
  m->tape_var_ptr = get_ivec(compiled, "tape_var_ptr", J + 1);
  check_ptr(m->tape_var_ptr, J, "tape_var_ptr");
  m->tape_var = get_ivec(compiled, "tape_var", m->tape_var_ptr[J]);
  check_idx(m->tape_var, m->tape_var_ptr[J], 0, P + K, "tape_var");
  m->tape_nslot = get_int(compiled, "tape_nslot");
  if (m->tape_nslot < 0 || m->tape_nslot > ICLV_TAPE_MAX_DEPTH * 4)
    stop_input("compiled 'tape_nslot' out of range");
  m->tape_pptr = get_ivec(compiled, "tape_pptr", J + 1);
  check_ptr(m->tape_pptr, J, "tape_pptr");
  m->tape_pop = get_ivec(compiled, "tape_pop", m->tape_pptr[J]);
  m->tape_parg = get_ivec(compiled, "tape_parg", m->tape_pptr[J]);
  int with = 0;
  char stored[4 * ICLV_TAPE_MAX_DEPTH];
  for (int j = 0; j < J; j++) {
    int nv = m->tape_var_ptr[j + 1] - m->tape_var_ptr[j];
    if (nv > m->tape_nv) stop_input("compiled tape has more variables than 'tape_nv'");
    for (int k = 0; k < m->tape_nslot; k++) stored[k] = 0;
    for (int prog = 0; prog < 2; prog++) { /* the pair program, then the row program */
      const int *ops = prog == 0 ? m->tape_pop : m->tape_op, *args = prog == 0 ? m->tape_parg : m->tape_arg;
      int q0 = prog == 0 ? m->tape_pptr[j] : m->tape_ptr[j], q1 = prog == 0 ? m->tape_pptr[j + 1] : m->tape_ptr[j + 1];
      int sp = 0;
      for (int q = q0; q < q1; q++) {
        int op = ops[q], a = args[q], need, lim;
        switch (op) {
        case ICLV_OP_CONST: need = 0; lim = m->n_tape_const; break;
        case ICLV_OP_VAR: need = 0; lim = nv; break;
        case ICLV_OP_DATA: need = 0; lim = m->n_xcol; break;
        case ICLV_OP_ADD: case ICLV_OP_SUB: case ICLV_OP_MUL: case ICLV_OP_DIV: case ICLV_OP_POW:
          need = 2; lim = -1; break;
        case ICLV_OP_NEG: case ICLV_OP_EXP: case ICLV_OP_LOG: case ICLV_OP_SQRT: case ICLV_OP_PNORM:
          need = 1; lim = -1; break;
        case ICLV_OP_POWC: need = 1; lim = m->n_tape_const; break;
        case ICLV_OP_SEL: need = 3; lim = -1; break;
        case ICLV_OP_LT: case ICLV_OP_GT: case ICLV_OP_LE: case ICLV_OP_GE: case ICLV_OP_EQ:
        case ICLV_OP_NE: need = 2; lim = -1; break;
        case ICLV_OP_STORE: need = 1; lim = m->tape_nslot; break;
        case ICLV_OP_LOAD: need = 0; lim = m->tape_nslot; break;
        default: Rf_error("[iclv_error_input] compiled tape of alternative %d: unknown operator %d", j + 1, op);
        }
        if (lim >= 0 && (a < 0 || a >= lim))
          Rf_error("[iclv_error_input] compiled tape of alternative %d: argument %d out of range", j + 1, a);
        /* the pair program reads no data and loads nothing; the row program
         * stores nothing and loads only what the pair program stored */
        if ((prog == 0 && (op == ICLV_OP_DATA || op == ICLV_OP_LOAD)) || (prog == 1 && op == ICLV_OP_STORE) ||
            (op == ICLV_OP_LOAD && !stored[a]))
          Rf_error("[iclv_error_input] compiled tape of alternative %d: operator %d misplaced", j + 1, op);
        if (op == ICLV_OP_STORE) stored[a] = 1;
        if (sp < need) Rf_error("[iclv_error_input] compiled tape of alternative %d: stack underflow", j + 1);
        sp += op == ICLV_OP_STORE ? -1 : need == 0 ? 1 : 1 - need;
        if (sp > m->tape_depth) Rf_error("[iclv_error_input] compiled tape of alternative %d is deeper than 'tape_depth'", j + 1);
      }
      if (prog == 0 && sp != 0) Rf_error("[iclv_error_input] compiled pair program of alternative %d leaves %d values", j + 1, sp);
      if (prog == 1 && m->tape_ptr[j + 1] > m->tape_ptr[j]) {
        if (sp != 1) Rf_error("[iclv_error_input] compiled tape of alternative %d leaves %d values", j + 1, sp);
        with++;
      }
    }
  }
  if (with != m->n_tape) stop_input("compiled 'n_tape' does not count the alternatives with a tape");
}

/* Fills *m from the R list `compiled` (built by R/compile.R). The pointers
 * in *m point into `compiled`, which the caller must keep protected. Every
 * index is range-checked here, so the core may trust the struct. */
static void model_from_R(SEXP compiled, iclv_model *m) {
  memset(m, 0, sizeof(*m));
  m->n_ind = get_int(compiled, "n_ind");
  m->n_lv = get_int(compiled, "n_lv");
  m->n_par = get_int(compiled, "n_par");
  m->n_cov = get_int(compiled, "n_cov");
  m->n_indic = get_int(compiled, "n_indic");
  m->n_obs = get_int(compiled, "n_obs");
  m->n_rows = get_int(compiled, "n_rows");
  m->n_alt = get_int(compiled, "n_alt");
  m->n_xcol = get_int(compiled, "n_xcol");
  m->n_avail = get_int(compiled, "n_avail");
  m->choice_type = get_int(compiled, "choice_type");
  if (m->n_ind < 1 || m->n_lv < 0 || m->n_par < 0 || m->n_cov < 0 || m->n_indic < 0 ||
      m->n_obs < 0 || m->n_rows < 0 || m->n_alt < 0 || m->n_xcol < 0)
    stop_input("compiled model has a negative or zero dimension");
  if (m->choice_type < ICLV_CHOICE_NONE || m->choice_type > ICLV_CHOICE_ORDERED)
    stop_input("compiled model has an unknown choice_type");
  if (m->choice_type == ICLV_CHOICE_PROBIT && m->n_alt != 2)
    stop_input("a binary probit choice model needs exactly 2 alternatives");
  if (m->choice_type == ICLV_CHOICE_ORDERED && m->n_alt != 1)
    stop_input("an ordered choice model has exactly one utility (n_alt == 1)");
  if (m->n_avail != 0 && m->n_avail != m->n_rows * m->n_alt)
    stop_input("compiled 'n_avail' must be 0 or n_rows * n_alt");

  int K = m->n_lv, P = m->n_par, M = m->n_indic, N = m->n_ind, J = m->n_alt;
  m->lv_order = get_ivec(compiled, "lv_order", K);
  check_idx(m->lv_order, K, 0, K, "lv_order");
  m->st_ptr = get_ivec(compiled, "st_ptr", K + 1);
  check_ptr(m->st_ptr, K, "st_ptr");
  int n_st = m->st_ptr[K];
  m->st_par = get_ivec(compiled, "st_par", n_st);
  m->st_src_type = get_ivec(compiled, "st_src_type", n_st);
  m->st_src = get_ivec(compiled, "st_src", n_st);
  check_idx(m->st_par, n_st, 0, P, "st_par");
  check_idx(m->st_src_type, n_st, 0, ICLV_SRC_DRAW + 1, "st_src_type");
  for (int t = 0; t < n_st; t++)
    check_idx(m->st_src + t, 1, 0, m->st_src_type[t] == ICLV_SRC_COV ? m->n_cov : K, "st_src");
  /* lv_order must be a permutation in which every LV comes after the LVs it
   * depends on (the structural recursion reads them) */
  int *pos = (int *) R_alloc(K > 0 ? K : 1, sizeof(int));
  for (int k = 0; k < K; k++) pos[k] = -1;
  for (int o = 0; o < K; o++) {
    if (pos[m->lv_order[o]] >= 0) stop_input("compiled 'lv_order' is not a permutation");
    pos[m->lv_order[o]] = o;
  }
  for (int k = 0; k < K; k++)
    for (int t = m->st_ptr[k]; t < m->st_ptr[k + 1]; t++)
      if (m->st_src_type[t] == ICLV_SRC_LV && pos[m->st_src[t]] >= pos[k])
        Rf_error("[iclv_error_input] compiled 'lv_order' puts LV %d before LV %d, on which it depends",
                 k + 1, m->st_src[t] + 1);
  m->cov = get_dvec(compiled, "cov", (R_xlen_t) N * m->n_cov);

  m->ind_type = get_ivec(compiled, "ind_type", M);
  check_idx(m->ind_type, M, ICLV_IND_ORDERED_PROBIT, ICLV_IND_BINARY_LOGIT + 1, "ind_type");
  m->ind_ncat = get_ivec(compiled, "ind_ncat", M);
  m->ind_thr = get_ivec(compiled, "ind_thr", M);
  m->ind_icpt = get_ivec(compiled, "ind_icpt", M);
  m->ind_sd = get_ivec(compiled, "ind_sd", M);
  for (int i = 0; i < M; i++) {
    int ty = m->ind_type[i];
    int ordered = ty == ICLV_IND_ORDERED_PROBIT || ty == ICLV_IND_ORDERED_LOGIT;
    if (ordered) {
      if (m->ind_ncat[i] < 2 || m->ind_thr[i] < 0 || m->ind_thr[i] + m->ind_ncat[i] - 1 > P)
        Rf_error("[iclv_error_input] compiled indicator %d: bad categories/thresholds", i);
    }
    if ((ty == ICLV_IND_NORMAL || ty == ICLV_IND_BINARY_PROBIT || ty == ICLV_IND_BINARY_LOGIT))
      check_idx(m->ind_icpt + i, 1, 0, P, "ind_icpt");
    if (ty == ICLV_IND_NORMAL) check_idx(m->ind_sd + i, 1, 0, P, "ind_sd");
    /* an ordered indicator's intercept and scale are optional (-1: none) */
    if (ordered && m->ind_icpt[i] != -1) check_idx(m->ind_icpt + i, 1, 0, P, "ind_icpt");
    if (ordered && m->ind_sd[i] != -1) check_idx(m->ind_sd + i, 1, 0, P, "ind_sd");
    if (!ordered && ty != ICLV_IND_NORMAL && m->ind_sd[i] != -1)
      Rf_error("[iclv_error_input] compiled indicator %d: a binary indicator has no scale (ind_sd must be -1)", i);
  }
  m->ind_load_ptr = get_ivec(compiled, "ind_load_ptr", M + 1);
  check_ptr(m->ind_load_ptr, M, "ind_load_ptr");
  int n_load = m->ind_load_ptr[M];
  m->ind_load_lv = get_ivec(compiled, "ind_load_lv", n_load);
  m->ind_load_par = get_ivec(compiled, "ind_load_par", n_load);
  check_idx(m->ind_load_lv, n_load, 0, K, "ind_load_lv");
  check_idx(m->ind_load_par, n_load, 0, P, "ind_load_par");
  m->obs_ptr = get_ivec(compiled, "obs_ptr", N + 1);
  check_ptr(m->obs_ptr, N, "obs_ptr");
  if (m->obs_ptr[N] != m->n_obs) stop_input("compiled 'obs_ptr' does not end at n_obs");
  m->obs_ind = get_ivec(compiled, "obs_ind", m->n_obs);
  check_idx(m->obs_ind, m->n_obs, 0, M, "obs_ind");
  m->obs_val = get_dvec(compiled, "obs_val", m->n_obs);

  m->row_ptr = get_ivec(compiled, "row_ptr", N + 1);
  check_ptr(m->row_ptr, N, "row_ptr");
  if (m->row_ptr[N] != m->n_rows) stop_input("compiled 'row_ptr' does not end at n_rows");
  m->y = get_ivec(compiled, "y", m->n_rows);
  /* y: an alternative, or the category - 1 of an ordered choice (C = n_ocat) */
  m->n_ocat = 0;
  if (m->choice_type == ICLV_CHOICE_ORDERED) {
    m->n_ocat = get_int(compiled, "n_ocat");
    if (m->n_ocat < 2) stop_input("compiled 'n_ocat' must be >= 2 for an ordered choice");
  }
  check_idx(m->y, m->n_rows, 0, m->n_ocat > 0 ? m->n_ocat : J > 0 ? J : 1, "y");
  m->avail = get_ivec(compiled, "avail", m->n_avail);
  m->X = get_dvec(compiled, "X", (R_xlen_t) m->n_rows * m->n_xcol);
  m->ut_ptr = get_ivec(compiled, "ut_ptr", J + 1);
  check_ptr(m->ut_ptr, J, "ut_ptr");
  int n_ut = m->ut_ptr[J];
  m->ut_par = get_ivec(compiled, "ut_par", n_ut);
  m->ut_col = get_ivec(compiled, "ut_col", n_ut);
  m->ut_lv = get_ivec(compiled, "ut_lv", n_ut);
  check_idx(m->ut_par, n_ut, 0, P, "ut_par");
  check_idx(m->ut_col, n_ut, -1, m->n_xcol, "ut_col");
  check_idx(m->ut_lv, n_ut, -1, K, "ut_lv");
  tapes_from_R(compiled, m);
  /* optional individual weights (R/compile.R adds 'weight' only when given) */
  m->weight = NULL;
  if (has_elt(compiled, "weight")) {
    m->weight = get_dvec(compiled, "weight", N);
    for (int n = 0; n < N; n++)
      if (!isfinite(m->weight[n]) || m->weight[n] < 0.0)
        stop_input("compiled 'weight' must be finite and non-negative");
  }
  /* row multipliers (best-worst): optional, absent in lists made before them */
  m->n_mult = has_elt(compiled, "n_mult") ? get_int(compiled, "n_mult") : 0;
  if (m->n_mult != 0 && (m->n_mult != m->n_rows || m->choice_type != ICLV_CHOICE_MNL))
    stop_input("compiled 'n_mult' must be 0, or n_rows with an MNL choice model");
  if (m->n_mult > 0) {
    m->mult_sign = get_dvec(compiled, "mult_sign", m->n_mult);
    m->mult_par = get_ivec(compiled, "mult_par", m->n_mult);
    check_idx(m->mult_par, m->n_mult, -1, P, "mult_par");
    for (int t = 0; t < m->n_mult; t++)
      if (m->mult_sign[t] != 1.0 && m->mult_sign[t] != -1.0)
        Rf_error("[iclv_error_input] compiled 'mult_sign'[%d] = %g is not +1 or -1", t,
                 m->mult_sign[t]);
  }
  /* nests of a nested logit: every alternative in one nest, every nest with
   * an alternative; lambda parameters by index (or -1: lambda = 1) */
  m->n_nest = 0;
  m->nest_of = NULL;
  m->nest_par = NULL;
  if (m->choice_type == ICLV_CHOICE_NL) {
    m->n_nest = get_int(compiled, "n_nest");
    if (m->n_nest < 1 || m->n_nest > m->n_alt)
      stop_input("compiled 'n_nest' must be between 1 and n_alt for a nested logit");
    m->nest_of = get_ivec(compiled, "nest_of", m->n_alt);
    check_idx(m->nest_of, m->n_alt, 0, m->n_nest, "nest_of");
    m->nest_par = get_ivec(compiled, "nest_par", m->n_nest);
    check_idx(m->nest_par, m->n_nest, -1, P, "nest_par");
    for (int a = 0; a < m->n_nest; a++) {
      int any = 0;
      for (int j = 0; j < m->n_alt; j++) any |= m->nest_of[j] == a;
      if (!any) Rf_error("[iclv_error_input] compiled nest %d has no alternative", a + 1);
    }
  }
  /* an ordered choice: C >= 2 categories, C - 1 consecutive threshold
   * parameters, no availability and no row multipliers; y in 0..C-1 */
  m->ocat_thr = -1;
  m->ocat_logit = 0;
  if (m->choice_type == ICLV_CHOICE_ORDERED) {
    m->ocat_thr = get_int(compiled, "ocat_thr");
    m->ocat_logit = get_int(compiled, "ocat_logit");
    if (m->ocat_thr < 0 || m->ocat_thr + m->n_ocat - 1 > P)
      stop_input("compiled 'ocat_thr' does not index n_ocat - 1 parameters");
    if (m->ocat_logit != 0 && m->ocat_logit != 1) stop_input("compiled 'ocat_logit' must be 0 or 1");
    if (m->n_avail != 0 || m->n_mult != 0)
      stop_input("an ordered choice has no availability and no row multipliers");
  }
}

/* Fills *d from the R draw specification list (R/draws.R builds it):
 * list(type = int, n_draws = int, n_dim = int, n_ind = int, seed = double,
 *      skip = double, user = double array or NULL), and optionally
 * ind_offset = int (a shard's first individual in the full design,
 * R/cluster.R; 0 when absent). */
static void draws_from_R(SEXP spec, iclv_draws *d) {
  memset(d, 0, sizeof(*d));
  d->type = get_int(spec, "type");
  d->n_draws = get_int(spec, "n_draws");
  d->n_dim = get_int(spec, "n_dim");
  d->n_ind = get_int(spec, "n_ind");
  d->ind_offset = has_elt(spec, "ind_offset") ? get_int(spec, "ind_offset") : 0;
  if (d->ind_offset < 0) stop_input("draw design: 'ind_offset' must be non-negative");
  if (d->type < ICLV_DRAWS_USER || d->type > ICLV_DRAWS_PSEUDO) stop_input("unknown draw type");
  if (d->n_draws < 1 || d->n_dim < 0 || d->n_ind < 1) stop_input("draw design has a bad dimension");
  SEXP s_seed = get_elt(spec, "seed"), s_skip = get_elt(spec, "skip");
  if (!Rf_isNumeric(s_seed) || XLENGTH(s_seed) != 1 || !Rf_isNumeric(s_skip) || XLENGTH(s_skip) != 1)
    stop_input("draw seed and skip must each be one number");
  double seed = Rf_asReal(s_seed);
  double skip = Rf_asReal(s_skip);
  if (!(seed >= 0) || !(skip >= 0)) stop_input("draw seed and skip must be non-negative numbers");
  d->seed = (uint64_t) seed;
  d->skip = (int64_t) skip;
  d->user = NULL;
  if (d->type == ICLV_DRAWS_USER)
    d->user = get_dvec(spec, "user", (R_xlen_t) d->n_ind * d->n_draws * d->n_dim);
}

/* ---- devices ------------------------------------------------------------ */

SEXP C_iclv_cuda_compiled(void) {
  return Rf_ScalarLogical(iclv_backend_cuda_compiled());
}

/* list(name, total_bytes, free_bytes, major, minor, multiprocessors, reason) */
SEXP C_iclv_cuda_devices(void) {
  int nprot = 0;
  int n = 0;
  char reason[256] = "";
  iclv_device_info info[ICLV_MAX_DEVICES];
  iclv_backend_list_devices(info, ICLV_MAX_DEVICES, &n, reason, (int) sizeof(reason));
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)); nprot++;
  SEXP nm = PROTECT(Rf_allocVector(STRSXP, n)); nprot++;
  SEXP tot = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP fre = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP maj = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  SEXP min = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  SEXP smc = PROTECT(Rf_allocVector(INTSXP, n)); nprot++;
  for (int i = 0; i < n; i++) {
    SET_STRING_ELT(nm, i, Rf_mkChar(info[i].name));
    REAL(tot)[i] = info[i].total_bytes;
    REAL(fre)[i] = info[i].free_bytes;
    INTEGER(maj)[i] = info[i].major;
    INTEGER(min)[i] = info[i].minor;
    INTEGER(smc)[i] = info[i].multiprocessors;
  }
  SET_VECTOR_ELT(out, 0, nm);
  SET_VECTOR_ELT(out, 1, tot);
  SET_VECTOR_ELT(out, 2, fre);
  SET_VECTOR_ELT(out, 3, maj);
  SET_VECTOR_ELT(out, 4, min);
  SET_VECTOR_ELT(out, 5, smc);
  SET_VECTOR_ELT(out, 6, Rf_mkString(reason));
  const char *fields[7] = {"name", "total_bytes", "free_bytes", "major", "minor",
                           "multiprocessors", "reason"};
  set_names(out, fields, 7);
  UNPROTECT(nprot);
  return out;
}

/* ---- draws -------------------------------------------------------------- */

/* An (n_ind, n_draws, n_dim) double array for the draws of d, protected
 * (the caller unprotects one more). */
static SEXP draws_array(const iclv_draws *d) {
  SEXP out = PROTECT(Rf_allocVector(REALSXP, (R_xlen_t) d->n_ind * d->n_draws * d->n_dim));
  SEXP dim = PROTECT(Rf_allocVector(INTSXP, 3));
  INTEGER(dim)[0] = d->n_ind;
  INTEGER(dim)[1] = d->n_draws;
  INTEGER(dim)[2] = d->n_dim;
  Rf_setAttrib(out, R_DimSymbol, dim);
  UNPROTECT(1);
  return out;
}

/* C_iclv_draws_generate(spec): the (n_ind, n_draws, n_dim) array of standard
 * normal draws that the engines use for design `spec`. */
SEXP C_iclv_draws_generate(SEXP spec) {
  iclv_draws d;
  iclv_status st = {0, ""};
  draws_from_R(spec, &d);
  SEXP out = draws_array(&d);
  if (iclv_draws_fill(&d, REAL(out), &st) != ICLV_OK) {
    UNPROTECT(1);
    stop_status(&st);
  }
  UNPROTECT(1);
  return out;
}

/* C_iclv_cuda_draws(spec, device): C_iclv_draws_generate's array, made by
 * the CUDA kernels' draw code on `device` (for verification). */
SEXP C_iclv_cuda_draws(SEXP spec, SEXP device) {
  iclv_draws d;
  iclv_status st = {0, ""};
  draws_from_R(spec, &d);
  if (!iclv_backend_cuda_compiled()) Rf_error("[iclv_error_cuda] this build of iclv was compiled without CUDA");
  SEXP out = draws_array(&d);
  if (iclv_backend_cuda_draws(&d, Rf_asInteger(device), REAL(out), &st) != ICLV_OK) {
    UNPROTECT(1);
    stop_status(&st);
  }
  UNPROTECT(1);
  return out;
}

/* ---- engines ------------------------------------------------------------ */

typedef struct {
  iclv_model model;
  iclv_draws draws;
  iclv_engine engine; /* backend.h: the backend's engine (and a CPU one when asked for) */
  int test_after;     /* test hook: poll index that reports an interrupt, or -1 */
  int test_on;        /* test hook: TEST_INT_* kind of evaluation it applies to */
} engine_handle;

static SEXP engine_tag(void) { return Rf_install("iclv_engine"); }

static void engine_finalize(SEXP ptr) {
  engine_handle *h = (engine_handle *) R_ExternalPtrAddr(ptr);
  if (h == NULL) return;
  iclv_engine_free(&h->engine);
  free(h);
  R_ClearExternalPtr(ptr);
}

static engine_handle *engine_get(SEXP ptr) {
  if (TYPEOF(ptr) != EXTPTRSXP || R_ExternalPtrTag(ptr) != engine_tag())
    stop_input("not an iclv engine");
  engine_handle *h = (engine_handle *) R_ExternalPtrAddr(ptr);
  if (h == NULL) stop_input("this iclv engine has been released");
  return h;
}

/* One logical flag `name` of the named list `opts` (FALSE when absent). */
static int get_flag(SEXP opts, const char *name) {
  if (!has_elt(opts, name)) return 0;
  SEXP x = get_elt(opts, name);
  if (!Rf_isLogical(x) || XLENGTH(x) != 1 || LOGICAL(x)[0] == NA_LOGICAL)
    Rf_error("[iclv_error_input] option '%s' must be TRUE or FALSE", name);
  return LOGICAL(x)[0];
}

/* The engine options of R's list(n_threads = int, device = int,
 * device_memory = double bytes or <= 0 for the default, and optionally
 * test_unchecked_threads = logical: TEST-ONLY, create without refusing more
 * threads than this machine runs, for tests that only read an account). */
static void options_from_R(SEXP options, iclv_engine_options *o) {
  memset(o, 0, sizeof(*o));
  o->n_threads = Rf_asInteger(get_elt(options, "n_threads"));
  o->device = Rf_asInteger(get_elt(options, "device"));
  o->device_memory = Rf_asReal(get_elt(options, "device_memory"));
  if (o->n_threads == NA_INTEGER || o->device == NA_INTEGER || ISNAN(o->device_memory))
    stop_input("engine options n_threads, device and device_memory must be numbers");
  o->check_thread_limits = !get_flag(options, "test_unchecked_threads");
}

/* Model and draws of one engine or plan, checked against each other. */
static void model_and_draws_from_R(SEXP compiled, SEXP spec, iclv_model *m, iclv_draws *d) {
  model_from_R(compiled, m);
  draws_from_R(spec, d);
  if (d->n_ind != m->n_ind || d->n_dim != m->n_lv)
    stop_input("the draw design does not match the model (individuals or LVs)");
}

/* C_iclv_engine_new(compiled, spec, backend, options)
 *   compiled: list of iclv_model.h arrays; spec: draw design list;
 *   backend: 0 CPU, 1 CUDA (backend.h); options: options_from_R's list,
 *   plus test_interrupt = integer c(after, on): the test hook above
 *   (after < 0 is off).
 * Returns a tagged external pointer. */
SEXP C_iclv_engine_new(SEXP compiled, SEXP spec, SEXP backend, SEXP options) {
  int nprot = 0;
  iclv_status st = {0, ""};
  iclv_engine_options opt;
  int be = Rf_asInteger(backend);
  options_from_R(options, &opt);
  SEXP ti = get_elt(options, "test_interrupt");
  if (!Rf_isInteger(ti) || XLENGTH(ti) != 2) stop_input("options$test_interrupt must be 2 integers");
  /* keep the R objects the structs point into alive with the pointer */
  SEXP prot = PROTECT(Rf_list2(compiled, spec)); nprot++;
  SEXP ptr = PROTECT(R_MakeExternalPtr(NULL, engine_tag(), prot)); nprot++;
  R_RegisterCFinalizerEx(ptr, engine_finalize, TRUE);

  engine_handle *h = (engine_handle *) calloc(1, sizeof(engine_handle));
  if (h == NULL) {
    UNPROTECT(nprot);
    Rf_error("[iclv_error_memory] could not allocate the engine handle");
  }
  R_SetExternalPtrAddr(ptr, h);
  h->test_after = -1;
  if (INTEGER(ti)[0] != NA_INTEGER && INTEGER(ti)[0] >= 0 && INTEGER(ti)[1] != NA_INTEGER) {
    h->test_after = INTEGER(ti)[0];
    h->test_on = INTEGER(ti)[1];
  }
  model_and_draws_from_R(compiled, spec, &h->model, &h->draws);
  if (iclv_engine_create(be, &h->model, &h->draws, &opt, &h->engine, &st) != ICLV_OK) {
    UNPROTECT(nprot);
    stop_status(&st);
  }
  UNPROTECT(nprot);
  return ptr;
}

SEXP C_iclv_engine_release(SEXP ptr) {
  if (TYPEOF(ptr) == EXTPTRSXP && R_ExternalPtrTag(ptr) == engine_tag()) engine_finalize(ptr);
  return R_NilValue;
}

/* C_iclv_engine_eval(ptr, theta, what): what = list(gradient, scores,
 * hessian, use_cpu) of logicals; use_cpu asks the engine's CPU engine
 * (made when first asked for) instead of its backend (for checks against
 * the reference; R's default is FALSE). Returns list(loglik, loglik_i,
 * gradient, scores, hessian); the unrequested ones are NULL. */
SEXP C_iclv_engine_eval(SEXP ptr, SEXP theta, SEXP what) {
  int nprot = 0;
  engine_handle *h = engine_get(ptr);
  const iclv_model *m = &h->model;
  if (!Rf_isReal(theta) || XLENGTH(theta) != m->n_par)
    Rf_error("[iclv_error_input] params must be a double vector of length %d", m->n_par);
  for (int p = 0; p < m->n_par; p++)
    if (!R_FINITE(REAL(theta)[p])) Rf_error("[iclv_error_input] parameter %d is not finite", p + 1);
  int want_g = get_flag(what, "gradient"), want_s = get_flag(what, "scores");
  int want_h = get_flag(what, "hessian"), use_cpu = get_flag(what, "use_cpu");

  SEXP ll = PROTECT(Rf_allocVector(REALSXP, 1)); nprot++;
  SEXP lli = PROTECT(Rf_allocVector(REALSXP, m->n_ind)); nprot++;
  SEXP g = R_NilValue, s = R_NilValue, H = R_NilValue;
  if (want_g) { g = PROTECT(Rf_allocVector(REALSXP, m->n_par)); nprot++; }
  if (want_s) { s = PROTECT(Rf_allocMatrix(REALSXP, m->n_ind, m->n_par)); nprot++; }
  if (want_h) { H = PROTECT(Rf_allocMatrix(REALSXP, m->n_par, m->n_par)); nprot++; }

  iclv_eval_out out;
  out.loglik = REAL(ll);
  out.loglik_i = REAL(lli);
  out.grad = want_g ? REAL(g) : NULL;
  out.scores = want_s ? REAL(s) : NULL;
  out.hess = want_h ? REAL(H) : NULL;
  iclv_status st = {0, ""};
  poll_state ps = {0, 0};
  if (h->test_after >= 0 &&
      (h->test_on == TEST_INT_ANY || (h->test_on == TEST_INT_HESS && want_h) ||
       (h->test_on == TEST_INT_FINAL && want_h && want_s))) {
    ps.armed = 1;
    ps.countdown = h->test_after;
  }
  if (iclv_engine_eval(&h->engine, REAL(theta), use_cpu, poll_interrupt, &ps, &out, &st) != ICLV_OK) {
    UNPROTECT(nprot);
    stop_status(&st);
  }
  SEXP res = PROTECT(Rf_allocVector(VECSXP, 5)); nprot++;
  SET_VECTOR_ELT(res, 0, ll);
  SET_VECTOR_ELT(res, 1, lli);
  SET_VECTOR_ELT(res, 2, g);
  SET_VECTOR_ELT(res, 3, s);
  SET_VECTOR_ELT(res, 4, H);
  const char *f[5] = {"loglik", "loglik_i", "gradient", "scores", "hessian"};
  set_names(res, f, 5);
  UNPROTECT(nprot);
  return res;
}

/* C_iclv_engine_predict(ptr, theta): list(prob, lv_mean, lv_sd, comp_ll),
 * from the backend, or from a CPU engine made when first needed where the
 * backend has no predictions (CUDA). */
SEXP C_iclv_engine_predict(SEXP ptr, SEXP theta) {
  int nprot = 0;
  engine_handle *h = engine_get(ptr);
  const iclv_model *m = &h->model;
  if (!Rf_isReal(theta) || XLENGTH(theta) != m->n_par)
    Rf_error("[iclv_error_input] params must be a double vector of length %d", m->n_par);
  /* columns: the alternatives, or an ordered choice's categories (iclv_prob_dim) */
  int JP = m->choice_type == ICLV_CHOICE_ORDERED ? m->n_ocat : m->n_alt;
  SEXP prob = PROTECT(Rf_allocMatrix(REALSXP, m->n_rows, JP)); nprot++;
  SEXP mean = PROTECT(Rf_allocMatrix(REALSXP, m->n_ind, m->n_lv)); nprot++;
  SEXP sd = PROTECT(Rf_allocMatrix(REALSXP, m->n_ind, m->n_lv)); nprot++;
  SEXP comp = PROTECT(Rf_allocVector(REALSXP, m->n_indic + 1)); nprot++;
  iclv_status st = {0, ""};
  poll_state ps = {h->test_after >= 0 && h->test_on == TEST_INT_PREDICT, h->test_after};
  if (iclv_engine_predict(&h->engine, REAL(theta), poll_interrupt, &ps, REAL(prob), REAL(mean),
                          REAL(sd), REAL(comp), &st) != ICLV_OK) {
    UNPROTECT(nprot);
    stop_status(&st);
  }
  SEXP res = PROTECT(Rf_allocVector(VECSXP, 4)); nprot++;
  SET_VECTOR_ELT(res, 0, prob);
  SET_VECTOR_ELT(res, 1, mean);
  SET_VECTOR_ELT(res, 2, sd);
  SET_VECTOR_ELT(res, 3, comp);
  const char *f[4] = {"prob", "lv_mean", "lv_sd", "comp_ll"};
  set_names(res, f, 4);
  UNPROTECT(nprot);
  return res;
}

/* A named double vector of the account's buffers (unprotected). */
static SEXP buffers_to_R(const iclv_mem_account *a) {
  SEXP bytes = PROTECT(Rf_allocVector(REALSXP, a->n));
  SEXP names = PROTECT(Rf_allocVector(STRSXP, a->n));
  for (int i = 0; i < a->n; i++) {
    REAL(bytes)[i] = a->bytes[i];
    SET_STRING_ELT(names, i, Rf_mkChar(a->name[i]));
  }
  Rf_setAttrib(bytes, R_NamesSymbol, names);
  UNPROTECT(2);
  return bytes;
}

/* list(buffers = named bytes, current, peak) (unprotected). */
static SEXP account_to_R(const iclv_mem_account *a) {
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 3));
  SET_VECTOR_ELT(out, 0, buffers_to_R(a));
  SET_VECTOR_ELT(out, 1, Rf_ScalarReal(a->current));
  SET_VECTOR_ELT(out, 2, Rf_ScalarReal(a->peak));
  const char *f[3] = {"buffers", "current", "peak"};
  set_names(out, f, 3);
  UNPROTECT(1);
  return out;
}

/* C_iclv_engine_memory(ptr): list(host = account, device = account or NULL,
 * per_chunk, n_chunks, device_total, device_free_at_start, cuda_graphs =
 * c(built, launched): a CUDA engine's graphs captured and evaluations run
 * as one, zeros elsewhere). */
SEXP C_iclv_engine_memory(SEXP ptr) {
  int nprot = 0;
  engine_handle *h = engine_get(ptr);
  iclv_engine_memory mem;
  iclv_engine_memory_of(&h->engine, &mem);
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 7)); nprot++;
  SET_VECTOR_ELT(out, 0, account_to_R(&mem.host));
  if (mem.has_device) SET_VECTOR_ELT(out, 1, account_to_R(&mem.device));
  SET_VECTOR_ELT(out, 2, Rf_ScalarInteger(mem.per_chunk));
  SET_VECTOR_ELT(out, 3, Rf_ScalarInteger(mem.n_chunks));
  SET_VECTOR_ELT(out, 4, Rf_ScalarReal(ISNAN(mem.device_total) ? NA_REAL : mem.device_total));
  SET_VECTOR_ELT(out, 5, Rf_ScalarReal(ISNAN(mem.device_free) ? NA_REAL : mem.device_free));
  SEXP graphs = PROTECT(Rf_allocVector(REALSXP, 2)); nprot++;
  REAL(graphs)[0] = mem.graph_builds;
  REAL(graphs)[1] = mem.graph_launches;
  const char *gn[2] = {"built", "launched"};
  set_names(graphs, gn, 2);
  SET_VECTOR_ELT(out, 6, graphs);
  const char *f[7] = {"host", "device", "per_chunk", "n_chunks", "device_total", "device_free_at_start",
                      "cuda_graphs"};
  set_names(out, f, 7);
  UNPROTECT(nprot);
  return out;
}

/* Bytes of the R vectors of `compiled` (8 per double, 4 per integer): the
 * arrays the C model points into. */
static double compiled_bytes(SEXP compiled) {
  double b = 0;
  for (R_xlen_t i = 0; i < XLENGTH(compiled); i++) {
    SEXP x = VECTOR_ELT(compiled, i);
    if (Rf_isReal(x)) b += (double) sizeof(double) * (double) XLENGTH(x);
    else if (TYPEOF(x) == INTSXP) b += (double) sizeof(int) * (double) XLENGTH(x);
  }
  return b;
}

/* C_iclv_engine_plan(compiled, spec, backend, options): what
 * C_iclv_engine_new with the same arguments would allocate, without
 * allocating it (backend.h's planners; options as for C_iclv_engine_new,
 * test_interrupt not needed). Returns
 *   list(data = named bytes: compiled_model_data and, for user draws,
 *          user_draws (the R arrays the engine points into),
 *        engine = named bytes of the CPU engine's buffers in its order,
 *        outputs = named bytes of what C_iclv_engine_eval returns with
 *          everything asked for,
 *        n_threads = the CPU engine's threads,
 *        device = named device bytes at per_chunk (the Hessian's buffers
 *          included: the peak) or NULL, pinned = named host bytes of the
 *          CUDA engine or NULL, per_chunk, n_chunks, device_fixed,
 *          device_per_individual (the Hessian's included), device_budget
 *          (NA: unknown), device_total, device_free (NA without a device),
 *          device_found (logical), device_name, device_reason). */
SEXP C_iclv_engine_plan(SEXP compiled, SEXP spec, SEXP backend, SEXP options) {
  int nprot = 0;
  iclv_status st = {0, ""};
  iclv_engine_options opt;
  iclv_model m;
  iclv_draws d;
  options_from_R(options, &opt);
  model_and_draws_from_R(compiled, spec, &m, &d);
  iclv_engine_plan *pl = (iclv_engine_plan *) R_alloc(1, sizeof(iclv_engine_plan));
  if (iclv_engine_plan_make(Rf_asInteger(backend), &m, &d, &opt, pl, &st) != ICLV_OK) stop_status(&st);
  const double N = m.n_ind, P = m.n_par;
  const int user = d.type == ICLV_DRAWS_USER;
  SEXP data = PROTECT(Rf_allocVector(REALSXP, user ? 2 : 1)); nprot++;
  {
    SEXP nm = PROTECT(Rf_allocVector(STRSXP, user ? 2 : 1)); nprot++;
    REAL(data)[0] = compiled_bytes(compiled);
    SET_STRING_ELT(nm, 0, Rf_mkChar("compiled_model_data"));
    if (user) {
      REAL(data)[1] = (double) sizeof(double) * N * d.n_draws * d.n_dim;
      SET_STRING_ELT(nm, 1, Rf_mkChar("user_draws"));
    }
    Rf_setAttrib(data, R_NamesSymbol, nm);
  }
  /* the vectors C_iclv_engine_eval allocates */
  SEXP outputs = PROTECT(Rf_allocVector(REALSXP, 4)); nprot++;
  REAL(outputs)[0] = (double) sizeof(double) * N;
  REAL(outputs)[1] = (double) sizeof(double) * P;
  REAL(outputs)[2] = (double) sizeof(double) * N * P;
  REAL(outputs)[3] = (double) sizeof(double) * P * P;
  const char *fo[4] = {"output_loglik_by_individual", "output_gradient", "output_scores",
                       "output_hessian"};
  set_names(outputs, fo, 4);

  SEXP out = PROTECT(Rf_allocVector(VECSXP, 18)); nprot++;
  SET_VECTOR_ELT(out, 0, data);
  SET_VECTOR_ELT(out, 1, buffers_to_R(&pl->cpu.acct));
  SET_VECTOR_ELT(out, 2, outputs);
  SET_VECTOR_ELT(out, 3, Rf_ScalarInteger(pl->cpu.n_threads));
  const iclv_cuda_plan *c = &pl->cuda;
  int pc = pl->has_device ? c->per_chunk : m.n_ind;
  SET_VECTOR_ELT(out, 6, Rf_ScalarInteger(pc));
  SET_VECTOR_ELT(out, 7, pc > 0 ? Rf_ScalarInteger(pl->has_device ? c->n_chunks : 1) : Rf_ScalarInteger(NA_INTEGER));
  for (int i = 8; i <= 13; i++) SET_VECTOR_ELT(out, i, Rf_ScalarReal(NA_REAL));
  SET_VECTOR_ELT(out, 14, Rf_ScalarLogical(pl->has_device && pl->shape.known));
  SET_VECTOR_ELT(out, 15, Rf_mkString(pl->has_device ? pl->shape.name : ""));
  SET_VECTOR_ELT(out, 16, Rf_mkString(pl->reason));
  SET_VECTOR_ELT(out, 17, Rf_ScalarLogical(pl->has_device && !pl->shape.known));
  if (pl->has_device) {
    SET_VECTOR_ELT(out, 4, buffers_to_R(&pl->device));
    SET_VECTOR_ELT(out, 5, buffers_to_R(&pl->pinned));
    SET_VECTOR_ELT(out, 8, Rf_ScalarReal(c->fixed_bytes + c->hess_fixed_bytes));
    SET_VECTOR_ELT(out, 9, Rf_ScalarReal(c->per_ind_bytes + c->hess_per_ind_bytes));
    if (!ISNAN(c->budget)) SET_VECTOR_ELT(out, 10, Rf_ScalarReal(c->budget));
    if (pl->shape.known) {
      SET_VECTOR_ELT(out, 11, Rf_ScalarReal(pl->shape.total_bytes));
      SET_VECTOR_ELT(out, 12, Rf_ScalarReal(pl->shape.free_bytes));
    }
    SET_VECTOR_ELT(out, 13, Rf_ScalarInteger(pl->shape.sms));
  }
  const char *f[18] = {"data", "engine", "outputs", "n_threads", "device", "pinned", "per_chunk",
                       "n_chunks", "device_fixed", "device_per_individual", "device_budget",
                       "device_total", "device_free", "device_sms", "device_found", "device_name",
                       "device_reason", "device_assumed"};
  set_names(out, f, 18);
  UNPROTECT(nprot);
  return out;
}

/* C_iclv_default_threads(): the CPU engine's thread count for n_threads = 0
 * (OpenMP's default). */
SEXP C_iclv_default_threads(void) {
  return Rf_ScalarInteger(iclv_cpu_default_threads());
}

/* ---- linear algebra ----------------------------------------------------- */

static int square_dim(SEXP a) {
  SEXP dim = Rf_getAttrib(a, R_DimSymbol);
  if (!Rf_isReal(a) || Rf_length(dim) != 2 || INTEGER(dim)[0] != INTEGER(dim)[1])
    stop_input("expected a square double matrix");
  return INTEGER(dim)[0];
}

SEXP C_iclv_eigen_sym(SEXP a) {
  int nprot = 0;
  int n = square_dim(a);
  SEXP values = PROTECT(Rf_allocVector(REALSXP, n)); nprot++;
  SEXP vectors = PROTECT(Rf_allocMatrix(REALSXP, n, n)); nprot++;
  iclv_status st = {0, ""};
  if (iclv_eigen_sym(n, REAL(a), REAL(values), REAL(vectors), &st) != ICLV_OK) {
    UNPROTECT(nprot);
    stop_status(&st);
  }
  SEXP out = PROTECT(Rf_allocVector(VECSXP, 2)); nprot++;
  SET_VECTOR_ELT(out, 0, values);
  SET_VECTOR_ELT(out, 1, vectors);
  const char *f[2] = {"values", "vectors"};
  set_names(out, f, 2);
  UNPROTECT(nprot);
  return out;
}

SEXP C_iclv_inverse_spd(SEXP a) {
  int nprot = 0;
  int n = square_dim(a);
  SEXP inv = PROTECT(Rf_allocMatrix(REALSXP, n, n)); nprot++;
  iclv_status st = {0, ""};
  if (iclv_inverse_spd(n, REAL(a), REAL(inv), &st) != ICLV_OK) {
    UNPROTECT(nprot);
    stop_status(&st);
  }
  UNPROTECT(nprot);
  return inv;
}

/* C_iclv_engine_paths(ptr): the CPU engine's path counters
 * (iclv_cpu_engine_paths), a named double vector; for tests. */
SEXP C_iclv_engine_paths(SEXP ptr) {
  engine_handle *h = engine_get(ptr);
  if (h->engine.cpu == NULL) stop_input("this iclv engine has no CPU engine");
  const char *f[1 + ICLV_FAST_NCNT] = {"reference", "individuals", "hessian_individuals",
                                       "obs_vectorised", "obs_scalar", "obs_reference",
                                       "rows_vectorised", "rows_scalar", "rows_reference",
                                       "tape_rows_hoisted"};
  SEXP out = PROTECT(Rf_allocVector(REALSXP, 1 + ICLV_FAST_NCNT));
  iclv_cpu_engine_paths(h->engine.cpu, REAL(out));
  SEXP nm = PROTECT(Rf_allocVector(STRSXP, 1 + ICLV_FAST_NCNT));
  for (int i = 0; i < 1 + ICLV_FAST_NCNT; i++) SET_STRING_ELT(nm, i, Rf_mkChar(f[i]));
  Rf_setAttrib(out, R_NamesSymbol, nm);
  UNPROTECT(2);
  return out;
}
