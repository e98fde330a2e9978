/*
 * iclv_tape.h -- the nonlinear part of a utility: a small expression program
 * ("tape") run per (choice row, draw) with exact first and second
 * derivatives. Included by iclv_core.h; plain C that also compiles as CUDA
 * C++ (ICLV_HD, no allocation).
 *
 * What goes on a tape (R/tape.R builds it)
 *   A utility V_j = (terms linear in the parameters: ut_par/ut_col/ut_lv)
 *                 + N_j(theta, eta, x_t),
 *   where N_j is the sum of the utility's additive terms that are not
 *   "parameter * data * at most one LV" (a scale parameter on a sum, a
 *   lognormal coefficient exp(mu + s * xi), a Box-Cox power (x / y) ^ lambda).
 *   Every subexpression of data only was evaluated once in R into a column
 *   of X, so a tape reads data as X[t, col] and never computes on data
 *   alone. Comparisons and ifelse() conditions are data: ifelse(cond, a, b)
 *   with parameters in a or b is SEL(cond column, a, b).
 *
 * The program: a postfix sequence for a stack machine (tape_op/tape_arg over
 * tape_ptr[j]..tape_ptr[j+1]), its leaves
 *   CONST (tape_const[arg]), VAR (the tape's variable arg: local index into
 *   tape_var[tape_var_ptr[j] + arg], an extended coordinate: a parameter
 *   p < P, or an LV / random term P + k, value theta[p] or eta[k]),
 *   DATA (X[t, arg]),
 * and its operators ADD SUB MUL DIV POW (binary: b on top of a), NEG EXP LOG
 * SQRT POWC PNORM (unary; POWC: u ^ tape_const[arg]), SEL (c a b -> c != 0 ?
 * a : b) and the comparisons LT GT LE GE EQ NE (1 or 0; their operands hold
 * no parameter, so they carry no derivative: a condition on data or on a
 * random term, e.g. the two halves of a triangular distribution).
 *
 * Derivatives: forward mode over the tape's own variables (nv of them, at most
 * tape_nv over all tapes). A stack entry is E = 1 + nv + nv (nv + 1) / 2
 * doubles: the value, the gradient, and the lower triangle of the Hessian
 * packed by rows ((i, k), i >= k, at i (i + 1) / 2 + k). Every operator is a
 * scalar function f of one or two entries, and the entry of the result is
 *   g = f_a g_a + f_b g_b,
 *   H = f_a H_a + f_b H_b + f_aa g_a g_a' + f_ab (g_a g_b' + g_b g_a') + f_bb g_b g_b',
 * with the partial derivatives of f:
 *   MUL: f_a = b, f_b = a, f_ab = 1;   DIV: f_a = 1/b, f_b = -a/b^2, f_ab = -1/b^2, f_bb = 2a/b^3;
 *   POW (a > 0): f_a = b a^(b-1), f_b = v log a, f_aa = b (b-1) a^(b-2),
 *       f_ab = a^(b-1) (1 + b log a), f_bb = v (log a)^2;
 *   EXP: f' = f'' = v;  LOG: 1/a, -1/a^2;  SQRT: 1/(2v), -1/(4 v a);
 *   POWC: c a^(c-1), c (c-1) a^(c-2);  PNORM: phi(a), -a phi(a);
 *   comparisons: all zero.
 * Order 0 computes values only, 1 adds gradients, 2 the Hessians. The result
 * of alternative j's tape (one entry) is kept in a per-row cache that the
 * utility helpers of iclv_core.h read: its value adds to V_j, its gradient
 * and Hessian to dV_j and d2V_j at the tape's extended coordinates.
 *
 * Work the rows do not change is done once per draw: every subtree without
 * data (e.g. exp(mu + s * xi) of a lognormal coefficient) is moved by R into
 * the tape's PAIR PROGRAM (tape_pptr/tape_pop/tape_parg), which ends each
 * subtree with STORE k (the top entry into slot k); the row program reads it
 * with LOAD k. A tape's slots live in its "pair area" with the order they
 * were computed to and a snapshot of the tape's variables (theta and eta
 * values): the pair program runs again exactly when a variable's value
 * changed or a higher order is asked for, so a caller that goes through the
 * rows of one draw runs it once, and nothing a caller does can read stale
 * slots. iclv_tapes_invalidate() marks every area empty (callers do it at
 * each draw, so that scratch memory never passes for a valid area).
 *
 * Scratch: after the utilities' own scratch in iclv_pair_ws.V
 * (iclv_vscratch_base), J entries of cache, tape_depth entries of stack,
 * and J pair areas of 1 + tape_nv + tape_nslot E doubles (iclv_tape_scratch).
 */
#ifndef ICLV_TAPE_H
#define ICLV_TAPE_H

#include <math.h>

#include "iclv_hd.h"
#include "numerics.h"
#include "iclv_model.h"

/* Limits the boundary enforces (boundary.c, R/tape.R): variables of one
 * tape (a stack entry is then at most 1 + 32 + 528 doubles) and stack depth. */
#define ICLV_TAPE_MAX_VARS 32
#define ICLV_TAPE_MAX_DEPTH 64

/* tape operators (tape_op) */
enum {
  ICLV_OP_CONST = 1,
  ICLV_OP_VAR   = 2,
  ICLV_OP_DATA  = 3,
  ICLV_OP_ADD   = 4,
  ICLV_OP_SUB   = 5,
  ICLV_OP_MUL   = 6,
  ICLV_OP_DIV   = 7,
  ICLV_OP_POW   = 8,
  ICLV_OP_NEG   = 9,
  ICLV_OP_EXP   = 10,
  ICLV_OP_LOG   = 11,
  ICLV_OP_SQRT  = 12,
  ICLV_OP_POWC  = 13,
  ICLV_OP_SEL   = 14,
  ICLV_OP_PNORM = 15, /* unary: Phi(u) */
  ICLV_OP_LT    = 16, /* comparisons a OP b: 1 or 0, no derivatives (their operands */
  ICLV_OP_GT    = 17, /* hold no parameter: data, random terms, constants; R/tape.R) */
  ICLV_OP_LE    = 18,
  ICLV_OP_GE    = 19,
  ICLV_OP_EQ    = 20,
  ICLV_OP_NE    = 21,
  ICLV_OP_STORE = 22, /* pair program: pop the top entry into slot arg */
  ICLV_OP_LOAD  = 23  /* row program: push slot arg */
};

/* Doubles of one stack entry (value, gradient, packed Hessian). */
ICLV_HD static inline int iclv_tape_entry(const iclv_model *m) {
  int nv = m->tape_nv;
  return 1 + nv + nv * (nv + 1) / 2;
}

/* Doubles of one alternative's pair area: the order computed (or -1),
 * the snapshot of the tape's variables, the slots; 0 without slots. */
ICLV_HD static inline int iclv_tape_area(const iclv_model *m) {
  return m->tape_nslot > 0 ? 1 + m->tape_nv + m->tape_nslot * iclv_tape_entry(m) : 0;
}

/* Doubles of the tape scratch: the per-row cache (one entry per
 * alternative), the stack and the pair areas; 0 without tapes. */
ICLV_HD static inline int iclv_tape_scratch(const iclv_model *m) {
  if (m->n_tape == 0) return 0;
  int J = m->n_alt > 0 ? m->n_alt : 1;
  return (J + m->tape_depth) * iclv_tape_entry(m) + J * iclv_tape_area(m);
}

/* out := the entry of f(a, b) from the entries a and b (out may be a or b):
 * v the value, the partial derivatives fa .. fbb; nv variables (of this
 * tape), the Hessian at offset hoff = 1 + tape_nv of an entry; order as
 * above. b may be NULL for a unary f (fb = fab = fbb = 0). */
ICLV_HD static inline void iclv_tape_chain(int nv, int hoff, int order, double v, double fa,
                                           double fb, double faa, double fab, double fbb,
                                           const double *a, const double *b, double *out) {
  if (order >= 2) { /* the Hessian first: it reads the operands' gradients */
    const double *ga = a + 1, *gb = b ? b + 1 : a + 1;
    const double *Ha = a + hoff, *Hb = b ? b + hoff : a + hoff;
    double *Ho = out + hoff;
    for (int i = 0, q = 0; i < nv; i++)
      for (int k = 0; k <= i; k++, q++) {
        double h = fa * Ha[q] + faa * ga[i] * ga[k];
        if (b) h += fb * Hb[q] + fab * (ga[i] * gb[k] + gb[i] * ga[k]) + fbb * gb[i] * gb[k];
        Ho[q] = h;
      }
  }
  if (order >= 1)
    for (int i = 0; i < nv; i++) out[1 + i] = fa * a[1 + i] + (b ? fb * b[1 + i] : 0.0);
  out[0] = v;
}

/* Runs a program (ops/args [q0, q1)) of alternative j's tape for row t
 * (t < 0: the pair program, which reads no data), using `stack`
 * (tape_depth entries) and the slots of its pair area (STORE writes them,
 * LOAD reads them; NULL without slots). Leaves the stack depth in *sp. */
ICLV_HD_OUTLINE void iclv_tape_exec(const iclv_model *m, const double *theta,
                                          const double *eta, int t, int j, int order,
                                          const int *ops, const int *args, int q0, int q1,
                                          double *stack, double *slots, int *sp_out) {
  const int E = iclv_tape_entry(m), P = m->n_par;
  const int v0 = m->tape_var_ptr[j], nv = m->tape_var_ptr[j + 1] - v0;
  const double *xr = t >= 0 ? m->X + (long) t * m->n_xcol : (const double *) 0;
  /* the entries' used part: value, gradient, Hessian to the order asked */
  const int used = order >= 2 ? E : order == 1 ? 1 + nv : 1;
  int sp = 0; /* entries on the stack */
  for (int q = q0; q < q1; q++) {
    int op = ops[q], arg = args[q];
    if (op == ICLV_OP_CONST || op == ICLV_OP_VAR || op == ICLV_OP_DATA) {
      double *s = stack + (long) sp * E;
      for (int i = 1; i < used; i++) s[i] = 0.0;
      if (op == ICLV_OP_CONST) s[0] = m->tape_const[arg];
      else if (op == ICLV_OP_DATA) s[0] = xr[arg];
      else {
        int c = m->tape_var[v0 + arg];
        s[0] = c < P ? theta[c] : eta[c - P];
        if (order >= 1) s[1 + arg] = 1.0;
      }
      sp++;
      continue;
    }
    if (op == ICLV_OP_LOAD) {
      const double *src = slots + (long) arg * E;
      double *s = stack + (long) sp * E;
      for (int i = 0; i < used; i++) s[i] = src[i];
      sp++;
      continue;
    }
    if (op == ICLV_OP_STORE) {
      const double *src = stack + (long) (sp - 1) * E;
      double *d = slots + (long) arg * E;
      for (int i = 0; i < E; i++) d[i] = src[i];
      sp--;
      continue;
    }
    if (op == ICLV_OP_SEL) { /* c a b -> c != 0 ? a : b */
      double *c = stack + (long) (sp - 3) * E, *a = c + E, *b = a + E;
      const double *src = c[0] != 0.0 ? a : b;
      for (int i = 0; i < E; i++) c[i] = src[i];
      sp -= 2;
      continue;
    }
    if (op >= ICLV_OP_LT) { /* comparisons: a value, no derivatives */
      double *a = stack + (long) (sp - 2) * E, *b = a + E;
      double x = a[0], y = b[0];
      int r;
      switch (op) {
      case ICLV_OP_LT: r = x < y; break;
      case ICLV_OP_GT: r = x > y; break;
      case ICLV_OP_LE: r = x <= y; break;
      case ICLV_OP_GE: r = x >= y; break;
      case ICLV_OP_EQ: r = x == y; break;
      default: r = x != y;
      }
      for (int i = 1; i < E; i++) a[i] = 0.0;
      a[0] = r ? 1.0 : 0.0;
      sp--;
      continue;
    }
    if (op >= ICLV_OP_NEG) { /* unary, in place */
      double *a = stack + (long) (sp - 1) * E;
      double x = a[0], v, f1, f2;
      switch (op) {
      case ICLV_OP_NEG: v = -x; f1 = -1.0; f2 = 0.0; break;
      case ICLV_OP_EXP: v = exp(x); f1 = v; f2 = v; break;
      case ICLV_OP_LOG: v = log(x); f1 = 1.0 / x; f2 = -f1 * f1; break;
      case ICLV_OP_SQRT: v = sqrt(x); f1 = 0.5 / v; f2 = -0.25 / (v * x); break;
      case ICLV_OP_PNORM: v = iclv_pnorm(x); f1 = iclv_dnorm(x); f2 = -x * f1; break;
      default: { /* POWC */
        double c = m->tape_const[arg];
        v = pow(x, c);
        f1 = c * pow(x, c - 1.0);
        f2 = c * (c - 1.0) * pow(x, c - 2.0);
      }
      }
      iclv_tape_chain(nv, 1 + m->tape_nv, order, v, f1, 0.0, f2, 0.0, 0.0, a, (const double *) 0, a);
      continue;
    }
    { /* binary: a below b; the result replaces a */
      double *a = stack + (long) (sp - 2) * E, *b = a + E;
      double x = a[0], y = b[0], v, fa, fb, faa = 0.0, fab = 0.0, fbb = 0.0;
      switch (op) {
      case ICLV_OP_ADD: v = x + y; fa = 1.0; fb = 1.0; break;
      case ICLV_OP_SUB: v = x - y; fa = 1.0; fb = -1.0; break;
      case ICLV_OP_MUL: v = x * y; fa = y; fb = x; fab = 1.0; break;
      case ICLV_OP_DIV: v = x / y; fa = 1.0 / y; fb = -v / y; fab = -fa * fa; fbb = 2.0 * v / (y * y); break;
      default: { /* POW */
        double lx = log(x);
        v = pow(x, y);
        double p1 = pow(x, y - 1.0);
        fa = y * p1;
        fb = v * lx;
        faa = y * (y - 1.0) * pow(x, y - 2.0);
        fab = p1 * (1.0 + y * lx);
        fbb = v * lx * lx;
      }
      }
      iclv_tape_chain(nv, 1 + m->tape_nv, order, v, fa, fb, faa, fab, fbb, a, b, a);
      sp--;
    }
  }
  *sp_out = sp;
}

/* Makes alternative j's pair area hold its pair program's slots for the
 * current variable values at `order` or more: runs the program unless the
 * area's snapshot equals the variables and its order suffices. */
ICLV_HD static inline void iclv_tape_pair(const iclv_model *m, const double *theta,
                                          const double *eta, int j, int order,
                                          double *stack, double *area) {
  const int P = m->n_par, v0 = m->tape_var_ptr[j], nv = m->tape_var_ptr[j + 1] - v0;
  int fresh = area[0] >= (double) order;
  for (int i = 0; i < nv && fresh; i++) {
    int c = m->tape_var[v0 + i];
    fresh = area[1 + i] == (c < P ? theta[c] : eta[c - P]);
  }
  if (fresh) return;
  int sp;
  iclv_tape_exec(m, theta, eta, -1, j, order, m->tape_pop, m->tape_parg, m->tape_pptr[j],
                 m->tape_pptr[j + 1], stack, area + 1 + m->tape_nv, &sp);
  for (int i = 0; i < nv; i++) {
    int c = m->tape_var[v0 + i];
    area[1 + i] = c < P ? theta[c] : eta[c - P];
  }
  area[0] = (double) order;
}

/* Runs the tape of alternative j for row t into the entry `out` (E doubles;
 * zero when j has no tape), using `stack` (tape_depth entries) and its pair
 * area (NULL without slots; made current here). */
ICLV_HD static inline void iclv_tape_run(const iclv_model *m, const double *theta,
                                         const double *eta, int t, int j, int order,
                                         double *stack, double *area, double *out) {
  const int E = iclv_tape_entry(m);
  double *slots = (double *) 0;
  if (area && m->tape_pptr[j + 1] > m->tape_pptr[j]) {
    iclv_tape_pair(m, theta, eta, j, order, stack, area);
    slots = area + 1 + m->tape_nv;
  }
  int sp;
  iclv_tape_exec(m, theta, eta, t, j, order, m->tape_op, m->tape_arg, m->tape_ptr[j],
                 m->tape_ptr[j + 1], stack, slots, &sp);
  if (sp == 1) {
    for (int i = 0; i < E; i++) out[i] = stack[i];
  } else {
    for (int i = 0; i < E; i++) out[i] = 0.0;
  }
}

#endif /* ICLV_TAPE_H */
