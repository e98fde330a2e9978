/*
 * numerics.h -- the scalar special functions of the ICLV likelihood, in log
 * space and with tails that stay finite, plus the first and second
 * derivatives the analytic gradient and Hessian need.
 *
 * Plain C (C99/C11) that also compiles as CUDA C++ (nvcc -std=c++17): every
 * function is `static inline` and marked ICLV_HD (__host__ __device__ under
 * nvcc). No allocation, no globals, no R headers, no I/O: only <math.h> and
 * <float.h>.
 *
 * Notation: Phi / phi are the standard normal cdf / pdf; F is the logistic
 * cdf F(x) = 1 / (1 + exp(-x)) and f = F (1 - F) its density. The inverse
 * Mills ratio is lambda(x) = phi(x) / Phi(x) = d log Phi(x) / dx.
 *
 * How the tails stay finite
 *   - Phi(x) for x < 0 is 0.5 * erfc(-x / sqrt 2), accurate in relative terms
 *     down to x = ICLV_PHI_TAIL (-35, where Phi ~ 1e-268). Below it,
 *     log Phi(x) = -x^2/2 - log sqrt(2 pi) - log c(-x) with the continued
 *     fraction c(t) = t + 1/(t + 2/(t + 3/(t + ...))) = phi(-t)/Phi(-t)
 *     (Laplace), which converges very fast for large t.
 *   - log(Phi(b) - Phi(a)) is evaluated after reflecting (a, b) -> (-b, -a)
 *     whenever a + b > 0, so that the difference is always taken where Phi is
 *     small (no 1 - 1 cancellation); a straddling interval is a sum of two
 *     erf terms (no cancellation at all); an interval deep in the tail is
 *     log Phi(b) + log1p(-Phi(a)/Phi(b)).
 *   - logistic quantities use softplus / log1mexp forms.
 */
#ifndef ICLV_NUMERICS_H
#define ICLV_NUMERICS_H

#include <math.h>
#include <float.h>

#include "iclv_hd.h"

#define ICLV_SQRT1_2       0.707106781186547524400844362105
#define ICLV_LN_SQRT_2PI   0.918938533204672741780329736406
#define ICLV_INV_SQRT_2PI  0.398942280401432677939946059934
#define ICLV_LN2           0.693147180559945309417232121458
/* below this x, Phi is evaluated through the continued fraction */
#define ICLV_PHI_TAIL      (-35.0)
/* depth of the continued fraction (exact to double precision for t >= 35) */
#define ICLV_MILLS_DEPTH   12

/* ---- normal ------------------------------------------------------------- */

/* log(1 - exp(x)) for x <= 0 (Maechler's log1mexp). */
ICLV_HD static inline double iclv_log1mexp(double x) {
  return x > -ICLV_LN2 ? log(-expm1(x)) : log1p(-exp(x));
}

/* phi(x), the standard normal density; 0 for x = +-Inf. */
ICLV_HD static inline double iclv_dnorm(double x) {
  return ICLV_INV_SQRT_2PI * exp(-0.5 * x * x);
}

/* Phi(x), the standard normal cdf (underflows to 0 below x ~ -38.5; use
 * iclv_log_pnorm there). */
ICLV_HD static inline double iclv_pnorm(double x) {
  return x < 0.0 ? 0.5 * erfc(-x * ICLV_SQRT1_2) : 1.0 - 0.5 * erfc(x * ICLV_SQRT1_2);
}

/* Remainder of the continued fraction for t >= -ICLV_PHI_TAIL:
 *   c(t) = 1 / (t + 2 / (t + 3 / (t + ...))),  so  phi(-t)/Phi(-t) = t + c(t).
 * Evaluated backwards from a fixed depth (branch-free, GPU friendly). */
ICLV_HD static inline double iclv_mills_rem(double t) {
  double f = t;
  for (int k = ICLV_MILLS_DEPTH; k >= 2; k--) f = t + (double) k / f;
  return 1.0 / f;
}

/* log Phi(x) for any x (finite for every finite x; -Inf at -Inf, 0 at +Inf). */
ICLV_HD static inline double iclv_log_pnorm(double x) {
  if (x < ICLV_PHI_TAIL) {
    double t = -x;
    return -0.5 * x * x - ICLV_LN_SQRT_2PI - log(t + iclv_mills_rem(t));
  }
  if (x < 0.0) return log(0.5 * erfc(-x * ICLV_SQRT1_2));
  return log1p(-0.5 * erfc(x * ICLV_SQRT1_2));
}

/* Inverse Mills ratio lambda(x) = phi(x) / Phi(x) = d log Phi(x) / dx,
 * finite for x << 0 (about -x there); 0 at +Inf. */
ICLV_HD static inline double iclv_inv_mills(double x) {
  if (x < ICLV_PHI_TAIL) {
    double t = -x;
    return t + iclv_mills_rem(t);
  }
  return iclv_dnorm(x) / iclv_pnorm(x);
}

/* log Phi(x), returned, and lambda(x) into *lam, from one erfc: the very
 * operations of iclv_log_pnorm(x) and iclv_inv_mills(x) (so bit-identical
 * results), without evaluating erfc twice on the same argument. */
ICLV_HD static inline double iclv_log_pnorm_mills(double x, double *lam) {
  if (x < ICLV_PHI_TAIL) {
    double t = -x;
    double f = t + iclv_mills_rem(t);
    *lam = f;
    return -0.5 * x * x - ICLV_LN_SQRT_2PI - log(f);
  }
  if (x < 0.0) {
    double ph = 0.5 * erfc(-x * ICLV_SQRT1_2);
    *lam = iclv_dnorm(x) / ph;
    return log(ph);
  }
  double q = 0.5 * erfc(x * ICLV_SQRT1_2);
  *lam = iclv_dnorm(x) / (1.0 - q);
  return log1p(-q);
}

/* d lambda(x) / dx = d^2 log Phi(x) / dx^2 = -lambda (x + lambda), with
 * x + lambda taken from the continued fraction in the far tail (where the
 * direct sum cancels). `lam` must be iclv_inv_mills(x). */
ICLV_HD static inline double iclv_inv_mills_deriv(double x, double lam) {
  if (lam == 0.0) return 0.0;
  double s = x < ICLV_PHI_TAIL ? iclv_mills_rem(-x) : x + lam;
  return -lam * s;
}

/* log(Phi(b) - Phi(a)) for a < b (a may be -Inf, b may be +Inf, not both
 * finite-equal). On return *da and *db hold its derivatives with respect to
 * a and b: -phi(a)/D and phi(b)/D, D = Phi(b) - Phi(a). */
ICLV_HD static inline double iclv_probit_logdiff(double a, double b, double *da, double *db) {
  int flip = (a + b > 0.0); /* reflect so that the difference sits where Phi is small */
  if (flip) { double t = a; a = -b; b = -t; }
  double logd, fa, fb;
  if (b > 0.0) {
    /* a < 0 < b: D = 1 - (Phi(a) + Phi(-b)), from the two tail masses
     * (accurate, and log1p keeps log D accurate when D is near 1); when the
     * tails hold most of the mass, D = (erf(b/sqrt2) + erf(-a/sqrt2)) / 2,
     * a sum of two positive terms, is accurate instead. */
    double tails = 0.5 * (erfc(-a * ICLV_SQRT1_2) + erfc(b * ICLV_SQRT1_2));
    double d;
    if (tails <= 0.75) {
      d = 1.0 - tails;
      logd = log1p(-tails);
    } else {
      d = 0.5 * (erf(b * ICLV_SQRT1_2) + erf(-a * ICLV_SQRT1_2));
      logd = log(d);
    }
    fa = -iclv_dnorm(a) / d;
    fb = iclv_dnorm(b) / d;
  } else if (b > ICLV_PHI_TAIL) {
    /* a < b <= 0: both cdfs small and accurate in relative terms */
    double d = 0.5 * (erfc(-b * ICLV_SQRT1_2) - erfc(-a * ICLV_SQRT1_2));
    logd = log(d);
    fa = -iclv_dnorm(a) / d;
    fb = iclv_dnorm(b) / d;
  } else {
    /* a < b <= -35: log Phi(b) + log(1 - Phi(a)/Phi(b)) */
    double lb = iclv_log_pnorm(b), la = iclv_log_pnorm(a);
    double r = exp(la - lb);          /* Phi(a)/Phi(b) in [0, 1) */
    double om = -expm1(la - lb);      /* 1 - r, accurate for r near 0 */
    logd = lb + iclv_log1mexp(la - lb);
    fb = iclv_inv_mills(b) / om;
    fa = r > 0.0 ? -iclv_inv_mills(a) * r / om : 0.0;
  }
  if (flip) { *da = -fb; *db = -fa; } else { *da = fa; *db = fb; }
  return logd;
}

/* ---- logistic ----------------------------------------------------------- */

/* softplus(x) = log(1 + exp(x)), overflow-free. */
ICLV_HD static inline double iclv_softplus(double x) {
  return x > 0.0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* F(x) = 1 / (1 + exp(-x)), overflow-free. */
ICLV_HD static inline double iclv_plogis(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  double z = exp(x);
  return z / (1.0 + z);
}

/* log F(x) = -softplus(-x). */
ICLV_HD static inline double iclv_log_plogis(double x) {
  return -iclv_softplus(-x);
}

/* log f(x) = log F(x) + log F(-x) = -|x| - 2 log1p(exp(-|x|)). */
ICLV_HD static inline double iclv_log_dlogis(double x) {
  double ax = fabs(x);
  return -ax - 2.0 * log1p(exp(-ax));
}

/* log(F(b) - F(a)) for a < b (a may be -Inf, b may be +Inf), using
 * F(b) - F(a) = F(b) F(-a) (1 - exp(a - b)); *da = -f(a)/D, *db = f(b)/D. */
ICLV_HD static inline double iclv_logit_logdiff(double a, double b, double *da, double *db) {
  double logd = iclv_log_plogis(b) + iclv_log_plogis(-a) + iclv_log1mexp(a - b);
  *da = -exp(iclv_log_dlogis(a) - logd);
  *db = exp(iclv_log_dlogis(b) - logd);
  return logd;
}

/* ---- second derivatives of log(F(b) - F(a)) ---------------------------- */

/* With fa = d/da and fb = d/db of log(F(b) - F(a)) and kx = d log f(x)/dx
 * (probit: -x; logit: 1 - 2F(x)):
 *   faa = ka fa - fa^2,  fbb = kb fb - fb^2,  fab = -fa fb.
 * Terms with a zero first derivative (infinite a or b) are 0. */
ICLV_HD static inline void iclv_logdiff_second(double fa, double fb, double ka, double kb,
                                              double *faa, double *fab, double *fbb) {
  *faa = fa != 0.0 ? (ka * fa - fa * fa) : 0.0;
  *fbb = fb != 0.0 ? (kb * fb - fb * fb) : 0.0;
  *fab = -fa * fb;
}

/* d log f(x) / dx: probit -x; logit 1 - 2F(x) = tanh(-x/2). */
ICLV_HD static inline double iclv_dlogpdf_probit(double x) { return -x; }
ICLV_HD static inline double iclv_dlogpdf_logit(double x) { return tanh(-0.5 * x); }

/* ---- log-sum-exp -------------------------------------------------------- */

/* log(exp(a) + exp(b)). */
ICLV_HD static inline double iclv_logaddexp(double a, double b) {
  double mx = a > b ? a : b;
  if (mx == -INFINITY) return -INFINITY;
  if (mx == INFINITY) return INFINITY;
  return mx + log(exp(a - mx) + exp(b - mx));
}

/* log sum_i exp(x[i stride]) for i = 0..n-1 (max-shifted; -Inf when every
 * term is -Inf or n == 0; NaN propagates). */
ICLV_HD static inline double iclv_logsumexp(const double *x, int n, int stride) {
  double mx = -INFINITY;
  for (int i = 0; i < n; i++) {
    double v = x[(long) i * stride];
    if (v > mx || v != v) mx = v;
    if (v != v) return v;
  }
  if (mx == -INFINITY || mx == INFINITY) return mx;
  double s = 0.0;
  for (int i = 0; i < n; i++) s += exp(x[(long) i * stride] - mx);
  return mx + log(s);
}

/* Hot kernels of the CPU engine (engine_fast.c's block kernels of the LL
 * and score pass: Phi over a block of draws, the indicators' and the choice
 * rows' blocks; the Hessian pass's block sums flush_terms and flush_rows;
 * engine.c's syrk of the Hessian's outer products) are also
 * compiled for AVX2 (vectors of 4 doubles), chosen when the library loads
 * (GCC's function multiversioning, x86-64 with ifunc). They hold no
 * vectorised reduction, and AVX2 does not enable FMA (AVX-512 would, hence
 * no AVX-512 version), so both versions perform the same IEEE operations in
 * the same order: the results do not depend on the CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    __GNUC__ >= 8 && !defined(__CUDACC__)
#define ICLV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ICLV_CLONES
#endif

#endif /* ICLV_NUMERICS_H */
