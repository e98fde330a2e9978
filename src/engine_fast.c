/*
 * engine_fast.c -- the CPU engine's fast per-individual kernels; see
 * engine_fast.h for what is hoisted and why. The readable per-pair reference
 * is iclv_core.h (the CUDA engine mirrors it); tests compare the two
 * (tests/testthat/test-engine-fast.R).
 */
/* GCC will not vectorise a loop with a branch (a ternary included) on a
 * floating-point value while it must keep floating-point exceptions
 * exactly where the source has them (-ftrapping-math, its default): the
 * draw loops of the kernels below all have such branches (tails, skipped
 * draws, chosen alternatives). The engine never reads the exception flags,
 * so this file compiles without that guarantee. It changes no result: no
 * reassociation, no contraction, the same IEEE operations on each value.
 * (Clang ignores floating-point exceptions by default.) Before the headers,
 * so that every function of this translation unit, the inline ones of the
 * headers included, has the same options and inlines. */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine_fast.h"
#include "numerics.h"
#include "iclv_core.h"

/* Loops over the draws of a block (and over rows) are marked for SIMD
 * vectorisation (OpenMP 4 simd: the build compiles with OpenMP; without it
 * the marks are ignored and the loops stay scalar). A reduction lets the
 * compiler reorder the sum across lanes, the same way on every call, so the
 * results still do not depend on the number of threads. */
#ifdef _OPENMP
#define ICLV_PRAGMA(x) _Pragma(#x)
#define ICLV_SIMD _Pragma("omp simd")
#define ICLV_SIMD_SUM(v) ICLV_PRAGMA(omp simd reduction(+ : v))
#define ICLV_SIMD_AND(v) ICLV_PRAGMA(omp simd reduction(& : v))
#define ICLV_SIMD_MIN(v) ICLV_PRAGMA(omp simd reduction(min : v))
#else
#define ICLV_SIMD
#define ICLV_SIMD_SUM(v)
#define ICLV_SIMD_AND(v)
#define ICLV_SIMD_MIN(v)
#endif

/* Rescales the running products pr (with their power-of-2 counts sc) of a
 * block that fell below PROD_FLOOR (defined below): the common case, none,
 * costs one vectorised minimum (exact in any order). */
#define ICLV_RESCALE_PRODUCTS(pr, sc, nb)                                         \
  do {                                                                            \
    double pmin_ = INFINITY;                                                      \
    ICLV_SIMD_MIN(pmin_)                                                          \
    for (int b_ = 0; b_ < (nb); b_++) pmin_ = (pr)[b_] < pmin_ ? (pr)[b_] : pmin_; \
    if (pmin_ < PROD_FLOOR)                                                       \
      for (int b_ = 0; b_ < (nb); b_++)                                           \
        while ((pr)[b_] < PROD_FLOOR && (pr)[b_] > 0.0) {                         \
          (pr)[b_] *= PROD_SCALE;                                                 \
          (sc)[b_] += 1.0;                                                        \
        }                                                                         \
  } while (0)

/* Exponents beyond these leave a task / observation to the reference links:
 * with |W - max W| <= 200 and max a - min a <= 200 an MNL term E u is at
 * least e^-400 and a task probability at least e^-400 / J; with |s|, |tau|
 * <= 150 an ordered-logit factor 1 / ((1 + Ea)(1 + Eb)) is at least e^-301.
 * A running product kept in [2^-256, 1] therefore never underflows. */
#define FAST_MNL_RANGE 200.0
#define FAST_LOGIT_RANGE 150.0
#define PROD_FLOOR 0x1p-256
#define PROD_SCALE 0x1p256
#define PROD_LN_SCALE (256.0 * ICLV_LN2)
/* An ordered-logit factor F(b) F(-a) = 1 / (1 + x) with x below this goes
 * into the log terms as -log1p(x) instead of into the product, whose log
 * would round a log-likelihood this close to 0 (x < 2.4e-4: within 1e-12 of
 * the term in relative terms). */
#define LOGIT_NEAR1 0x1p-12
/* fct = 1 / (1 + x) <= FCT_NEAR1 implies x >= LOGIT_NEAR1 with a wide
 * margin for rounding: 1 / (1 + 2^-12) = 0.99975..., the bound 0.9995 */
#define FCT_NEAR1 0.9995
/* A probit probability below this goes into the log terms as log(D), not into
 * the product (a factor must stay above about 2^-760 for the product not
 * to underflow below its floor; see PROD_FLOOR). */
#define PROBIT_PROD_MIN 0x1p-600
/* The kernels of loops that should vectorise are inlined even when large. */
#if defined(__GNUC__)
#define ICLV_FORCE_INLINE __attribute__((always_inline)) inline
#else
#define ICLV_FORCE_INLINE inline
#endif
#define NPIECE 37
/* At most this many draws processed together (the LL and score pass, the
 * Hessian pass's block sums): fewer, longer vector loops. 128 took the
 * fewest instructions and the least time of 32, 64 and 128 on the drug and
 * seed benchmarks (bench/RESULTS.md, issue 17). */
#define BLOCK_DRAWS 128
/* At most this many doubles per thread hold the LL pass's gV of every
 * explicit MNL row and draw for the Hessian pass (fd->exblk, Tmax J R):
 * beyond (a long panel with many draws), the Hessian pass takes those rows
 * draw by draw (draw_choice), without the copy. */
#define EXBLK_MAX_DOUBLES ((double) (1 << 20))

static size_t pad8(size_t n) { return (n + 7) / 8 * 8; }

/* 2^(j / 32), j = 0..31, correctly rounded (fast_exp's table). */
static const double EXP2_32[32] = {
    1.0, 1.0218971486541166, 1.0442737824274138, 1.0671404006768237,
    1.0905077326652577, 1.1143867425958924, 1.1387886347566916, 1.1637248587775775,
    1.189207115002721, 1.215247359980469, 1.241857812073484, 1.2690509571917332,
    1.2968395546510096, 1.3252366431597413, 1.3542555469368927, 1.383909881963832,
    1.4142135623730951, 1.4451808069770467, 1.4768261459394993, 1.5091644275934228,
    1.5422108254079407, 1.5759808451078865, 1.6104903319492543, 1.645755478153965,
    1.681792830507429, 1.718619298122478, 1.7562521603732995, 1.7947090750031072,
    1.8340080864093424, 1.8741676341103, 1.9152065613971474, 1.9571441241754002};

/* e^x within about 1 ulp of exp() for -708 <= x <= 708 (the callers' range;
 * outside it, and for NaN, exp() itself is called):
 * x = (32 k + j) ln2 / 32 + r with |r| <= ln2 / 64 (ln2 / 32 in two parts,
 * the first with 33 significant bits, so k ln2_hi is exact), e^r by its
 * Taylor polynomial to r^6 / 6! (remainder below 4e-18) in Estrin's
 * scheme (a short dependency chain), times 2^(j/32) from EXP2_32 and 2^k
 * built in the exponent bits. Inline and branch-free in the range: several
 * times cheaper than a call to libm's exp. */
static ICLV_FORCE_INLINE double fast_exp_core(double x);
static inline double fast_exp(double x) {
  if (!(x >= -708.0 && x <= 708.0)) return exp(x);
  return fast_exp_core(x);
}

/* fast_exp's arithmetic for -708 <= x <= 708 without the test (loops
 * whose arguments are in range by construction vectorise) */
static ICLV_FORCE_INLINE double fast_exp_core(double x) {
  const double shift = 0x1.8p52;
  double kd = x * 0x1.71547652b82fep+5 + shift;
  int64_t kb;
  memcpy(&kb, &kd, sizeof kb);
  kd -= shift;
  int64_t k = kb - (int64_t) 0x4338000000000000LL; /* round(32 x / ln 2) */
  double r = (x - kd * 0x1.62e42fef00000p-6) - kd * 0x1.473de6af278edp-39;
  double r2 = r * r;
  double p = (1.0 + r) + r2 * ((0.5 + r * (1.0 / 6.0)) +
                               r2 * ((1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0)));
  uint64_t sb = (uint64_t) ((k >> 5) + 1023) << 52;
  double sc;
  memcpy(&sc, &sb, sizeof sc);
  return EXP2_32[k & 31] * p * sc;
}

/* log x for positive, finite, normal x (the callers' sums of shifted
 * exponentials, 1 <= x <= J), within about 1 ulp of log(): x = 2^e m with
 * sqrt(1/2) < m <= sqrt(2), log m = 2 atanh(f), f = (m - 1) / (m + 1)
 * (|f| <= 0.1716; m - 1 exact), by the series 2 f sum_i f^(2i) / (2i + 1)
 * to f^22 (remainder below 1e-18 relative) in Estrin's scheme, plus e ln2
 * in two parts (ln2_hi with 32 significant bits: e ln2_hi exact). e comes
 * from the exponent bits through 2^52 + e's bits as a double (no integer
 * conversion) and the selection of m is a ternary: branch-free, so that
 * loops over draws vectorise. NaN or infinite x gives NaN (x - x). */
static ICLV_FORCE_INLINE double fast_log(double x) {
  uint64_t xb;
  memcpy(&xb, &x, sizeof xb);
  uint64_t eb = (xb >> 52) | 0x4330000000000000ULL, mb = (xb & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
  double ed, m;
  memcpy(&ed, &eb, sizeof ed);
  memcpy(&m, &mb, sizeof m);
  ed -= 0x1p52 + 1023.0; /* the unbiased exponent */
  const int up = m > 1.4142135623730951;
  m = up ? 0.5 * m : m;
  ed = up ? ed + 1.0 : ed;
  const double f = (m - 1.0) / (m + 1.0), z = f * f, z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
  const double q0 = (1.0 + z * (1.0 / 3.0)) + z2 * (1.0 / 5.0 + z * (1.0 / 7.0));
  const double q1 = (1.0 / 9.0 + z * (1.0 / 11.0)) + z2 * (1.0 / 13.0 + z * (1.0 / 15.0));
  const double q2 = (1.0 / 17.0 + z * (1.0 / 19.0)) + z2 * (1.0 / 21.0 + z * (1.0 / 23.0));
  const double lm = (f + f) * ((q0 + z4 * q1) + z8 * q2);
  return ed * 6.93147180369123816490e-01 + (lm + ed * 1.90821492927058770002e-10) + (x - x);
}

/* e^x for |x| <= 0.36 (the callers' range) by its Taylor polynomial to
 * x^13 / 13! (remainder below 1e-17 relative) in Estrin's scheme:
 * branch-free, no table, so that loops over draws vectorise. */
static ICLV_FORCE_INLINE double exp_small(double x) {
  double x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
  double q0 = (1.0 + x) + x2 * (0.5 + x * (1.0 / 6.0));
  double q1 = (1.0 / 24.0 + x * (1.0 / 120.0)) + x2 * (1.0 / 720.0 + x * (1.0 / 5040.0));
  double q2 = (1.0 / 40320.0 + x * (1.0 / 362880.0)) +
              x2 * (1.0 / 3628800.0 + x * (1.0 / 39916800.0));
  double q3 = 1.0 / 479001600.0 + x * (1.0 / 6227020800.0);
  return (q0 + x4 * q1) + x8 * (q2 + x4 * q3);
}

/* e^(-y^2 / 2) for 0 <= y <= 37.5 without rounding y^2: with yq = y rounded
 * down to 1/16, -y^2 / 2 = hi + lo, hi = -yq^2 / 2 (exact) and lo =
 * -(y - yq)(y + yq) / 2 (|lo| < 2.4, exact to its own rounding); e^(hi + lo)
 * = 2^k e^r with k = round((hi + lo) / ln 2) and r = (hi - k ln2_hi) + lo -
 * k ln2_lo (the first difference exact: fdlibm's ln2_hi has 32 bits, hi
 * at most 19), |r| <= ln2 / 2 + rounding; 2^k built in the exponent bits.
 * Branch-free, no table (vectorises). */
static ICLV_FORCE_INLINE double exp_mhalfsq(double y) {
  double yq = (double) (int) (16.0 * y) * 0.0625;
  double hi = -0.5 * yq * yq, lo = -0.5 * (y - yq) * (y + yq);
  const double shift = 0x1.8p52;
  double kd = (hi + lo) * 0x1.71547652b82fep0 + shift;
  uint64_t kb;
  memcpy(&kb, &kd, sizeof kb);
  kd -= shift;
  double r = ((hi - kd * 6.93147180369123816490e-01) + lo) - kd * 1.90821492927058770002e-10;
  uint64_t sb = (kb + 1023) << 52; /* (k + 1023) << 52: the shift's bits fall off */
  double sc;
  memcpy(&sc, &sb, sizeof sc);
  return exp_small(r) * sc;
}

/* The largest y that pnorm_tail_bf takes: sqrt(32), the end of Cody's
 * second range. */
#define PNORM_BF_MAX 5.656854249492380195206754896838

/* Phi(-y), returned, and phi(y) into *dens for 0 <= y <= PNORM_BF_MAX (the
 * callers clamp; NaN must not reach it): W. J. Cody's rational Chebyshev
 * approximations (Math. Comp. 23, 1969; the algorithm of R's pnorm),
 * relative error near 1e-16: Phi(-y) = 1/2 - y R1(y^2) for y <= 0.67448975,
 * e^(-y^2/2) R2(y) above, the density from the same exponential. Both
 * rationals are formed and one selected by the 0/1 factor m1 (1 when y <=
 * 0.67448975; exact: one of the two products is 0), one division, no
 * branch: loops over draws vectorise. m1 comes from the caller (from memory
 * in pnorm_tail_block: formed here, GCC turns the selection back into a
 * branch, and the loop no longer vectorises). */
static ICLV_FORCE_INLINE double pnorm_tail_bf(double y, double m1, double *dens) {
  double z = y * y;
  double n1 = ((((0.065682337918207449113 * z + 2.2352520354606839287) * z +
                 161.02823106855587881) * z + 1067.6894854603709582) * z +
               18154.981253343561249) * y;
  double d1 = (((z + 47.20258190468824187) * z + 976.09855173777669322) * z +
               10260.932208618978205) * z + 45507.789335026729956;
  double n2 = 1.0765576773720192317e-8 * y, d2 = y;
  n2 = (n2 + 0.39894151208813466764) * y;
  d2 = (d2 + 22.266688044328115691) * y;
  n2 = (n2 + 8.8831497943883759412) * y;
  d2 = (d2 + 235.38790178262499861) * y;
  n2 = (n2 + 93.506656132177855979) * y;
  d2 = (d2 + 1519.377599407554805) * y;
  n2 = (n2 + 597.27027639480026226) * y;
  d2 = (d2 + 6485.558298266760755) * y;
  n2 = (n2 + 2494.5375852903726711) * y;
  d2 = (d2 + 18615.571640885098091) * y;
  n2 = (n2 + 6848.1904505362823326) * y;
  d2 = (d2 + 34900.952721145977266) * y;
  n2 = (n2 + 11602.651437647350124) * y;
  d2 = (d2 + 38912.003286093271411) * y;
  n2 += 9842.7148383839780218;
  d2 += 19685.429676859990727;
  double m2 = 1.0 - m1;
  double rat = (m1 * n1 + m2 * n2) / (m1 * d1 + m2 * d2);
  double e = exp_mhalfsq(y);
  *dens = ICLV_INV_SQRT_2PI * e;
  return m1 * (0.5 - rat) + m2 * (e * rat);
}

/* Phi(-y) for any y >= 0, returned, and phi(y) into *dens: pnorm_tail_bf
 * up to sqrt(32), Cody's third range (a rational in 1/y^2) up to 37.5;
 * beyond (and for NaN) 0 and 0 (Phi(-37.5) is about 5e-309; callers hand
 * such arguments to the reference). */
static inline double fast_pnorm_tail(double y, double *dens) {
  if (y <= PNORM_BF_MAX) return pnorm_tail_bf(y, y <= 0.67448975 ? 1.0 : 0.0, dens);
  if (!(y <= 37.5)) {
    *dens = 0.0;
    return 0.0;
  }
  double z = 1.0 / (y * y);
  double num = 0.02307344176494017303 * z, den = z;
  num = (num + 0.21589853405795699) * z;
  den = (den + 1.28426009614491121) * z;
  num = (num + 0.1274011611602473639) * z;
  den = (den + 0.468238212480865118) * z;
  num = (num + 0.022235277870649807) * z;
  den = (den + 0.0659881378689285515) * z;
  num = (num + 0.001421619193227893466) * z;
  den = (den + 0.00378239633202758244) * z;
  double rat = z * (num + 2.9112874951168792e-5) / (den + 7.29751555083966205e-5);
  rat = (ICLV_INV_SQRT_2PI - rat) / y;
  double e = exp_mhalfsq(y);
  *dens = ICLV_INV_SQRT_2PI * e;
  return e * rat;
}

/* q[b] = Phi(-y[b]) and dn[b] = phi(y[b]) for y[b] >= 0 (any value, +Inf
 * and NaN included: NaN gives 0, 0), b < nb: the branch-free kernel over
 * the draws, then fast_pnorm_tail for the few beyond its range. */
ICLV_CLONES static void pnorm_tail_block(const double *restrict y, double *restrict q,
                                         double *restrict dn, int nb) {
  /* clamped arguments (in dn) and range factors (in q) first: two simple
   * loops, so that the kernel's loop vectorises */
  ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    dn[b] = y[b] <= PNORM_BF_MAX ? y[b] : PNORM_BF_MAX;
    q[b] = y[b] <= 0.67448975 ? 1.0 : 0.0;
  }
  ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    double d;
    q[b] = pnorm_tail_bf(dn[b], q[b], &d);
    dn[b] = d;
  }
  for (int b = 0; b < nb; b++)
    if (!(y[b] <= PNORM_BF_MAX)) q[b] = fast_pnorm_tail(y[b], dn + b);
}

/* log(Phi(b) - Phi(a)) of an ordered-probit observation (a < b, either may
 * be infinite) in the fast forms, following iclv_probit_logdiff's cases
 * (reflection so that a + b <= 0, a straddling interval from its two tail
 * masses). Sets *d1, *d2 (derivatives by a and b) and returns how the
 * probability enters l: 1 = multiply the returned probability into the
 * product, 2 = add the returned log (log1p(-tails) of a probability within
 * 2^-12 of 1, or log D of a very small D), 0 = not handled here (deep tail
 * b <= -35, tails > 0.75, NaN): the caller takes the reference link. */
static inline int probit_fast(double a, double b, double *val, double *d1, double *d2) {
  int flip = a + b > 0.0;
  if (flip) { double t = a; a = -b; b = -t; }
  double pa, fa, fb, pd_a, pd_b, D;
  int how = 1;
  if (b > 0.0) {
    pa = fast_pnorm_tail(-a, &pd_a);
    double q = fast_pnorm_tail(b, &pd_b), tails = pa + q;
    if (!(tails <= 0.75)) return 0;
    D = 1.0 - tails;
    if (tails < LOGIT_NEAR1) {
      how = 2;
      *val = log1p(-tails);
    }
  } else if (b > ICLV_PHI_TAIL) {
    pa = fast_pnorm_tail(-a, &pd_a);
    D = fast_pnorm_tail(-b, &pd_b) - pa;
    if (!(D >= PROBIT_PROD_MIN)) {
      if (!(D > 0.0)) return 0;
      how = 2;
      *val = log(D);
    }
  } else {
    return 0;
  }
  if (how == 1) *val = D;
  fa = -pd_a / D;
  fb = pd_b / D;
  if (flip) { *d1 = -fb; *d2 = -fa; } else { *d1 = fa; *d2 = fb; }
  return how;
}

/* log Phi(x) of a binary-probit choice row in the fast forms, with
 * lambda = phi(x) / Phi(x) into *lam (as iclv_log_pnorm_mills). Returns how
 * Phi(x) enters l: 1 = multiply *val = Phi(x) into the product, 2 = add the
 * log *val (log1p(-Phi(-x)) within 2^-12 of 1, log Phi(x) when very small),
 * 0 = not handled (x <= -35 or NaN): the caller takes the reference. */
static inline int probit_cdf_fast(double x, double *val, double *lam) {
  double dens, q;
  if (x <= 0.0) {
    if (!(x > ICLV_PHI_TAIL)) return 0;
    q = fast_pnorm_tail(-x, &dens);
    *lam = dens / q;
    if (q >= PROBIT_PROD_MIN) {
      *val = q;
      return 1;
    }
    *val = log(q);
    return 2;
  }
  if (x != x) return 0;
  q = fast_pnorm_tail(x, &dens);
  double p = 1.0 - q;
  *lam = dens / p;
  if (q < LOGIT_NEAR1) {
    *val = log1p(-q);
    return 2;
  }
  *val = p;
  return 1;
}

void iclv_fast_dims_init(const iclv_model *m, int R, iclv_fast_dims *fd) {
  int K = m->n_lv;
  fd->P = m->n_par;
  fd->K = K;
  fd->S = m->st_ptr[K];
  fd->J = m->n_alt > 0 ? m->n_alt : 1;
  fd->R = R;
  {
    /* blocks of equal size, at most BLOCK_DRAWS draws; ceilings written without R + d - 1,
       which overflows int when a plan is asked for R near INT_MAX */
    int nblk = R / BLOCK_DRAWS + (R % BLOCK_DRAWS != 0);
    fd->B = nblk > 0 ? R / nblk + (R % nblk != 0) : 1;
  }
  fd->Tmax = 0;
  fd->Omax = 0;
  for (int n = 0; n < m->n_ind; n++) {
    int T = m->row_ptr[n + 1] - m->row_ptr[n], O = m->obs_ptr[n + 1] - m->obs_ptr[n];
    if (T > fd->Tmax) fd->Tmax = T;
    if (O > fd->Omax) fd->Omax = O;
  }
  if (m->choice_type == ICLV_CHOICE_NONE) fd->Tmax = 0;
  fd->Ku = 0;
  fd->NU = m->choice_type != ICLV_CHOICE_NONE ? m->ut_ptr[m->n_alt] : 0;
  fd->lv_rowinv = m->choice_type == ICLV_CHOICE_MNL;
  if (m->choice_type != ICLV_CHOICE_NONE)
    for (int u = 0; u < m->ut_ptr[m->n_alt]; u++)
      if (m->ut_lv[u] >= 0) {
        if (m->ut_lv[u] + 1 > fd->Ku) fd->Ku = m->ut_lv[u] + 1;
        if (m->ut_col[u] >= 0) fd->lv_rowinv = 0;
      }
  /* the distinct parameters of the utility terms without an LV */
  fd->NUP = 0;
  for (int u = 0; u < fd->NU; u++) {
    if (m->ut_lv[u] >= 0) continue;
    int seen = 0;
    for (int u2 = 0; u2 < u && !seen; u2++) seen = m->ut_lv[u2] < 0 && m->ut_par[u2] == m->ut_par[u];
    fd->NUP += !seen;
  }
  fd->row_mult = m->choice_type != ICLV_CHOICE_NONE && m->n_mult > 0;
  fd->NTE = fd->NU;
  fd->nested = m->choice_type == ICLV_CHOICE_NL;
  fd->ordered = m->choice_type == ICLV_CHOICE_ORDERED;
  fd->tapes = m->choice_type != ICLV_CHOICE_NONE && m->n_tape > 0;
  fd->tapes_fixed = fd->tapes;
  if (fd->tapes)
    for (int v = 0; v < m->tape_var_ptr[m->n_alt]; v++)
      if (m->tape_var[v] >= m->n_par) fd->tapes_fixed = 0;
  fd->tape_w = m->choice_type == ICLV_CHOICE_MNL && fd->tapes_fixed && !fd->row_mult;
  fd->ref_choice = fd->nested || fd->ordered || (fd->tapes && !fd->tape_w);
  if (fd->tape_w) {
    /* the Hessian pass's pseudo-terms of the tapes' parameters: their
     * gradients, NTV per row, and those parameters in the dense design */
    fd->NTE = fd->NU + m->tape_var_ptr[m->n_alt];
    for (int v = 0; v < m->tape_var_ptr[m->n_alt]; v++) {
      const int pv = m->tape_var[v];
      int seen = 0;
      for (int v2 = 0; v2 < v && !seen; v2++) seen = m->tape_var[v2] == pv;
      for (int u = 0; u < fd->NU && !seen; u++) seen = m->ut_lv[u] < 0 && m->ut_par[u] == pv;
      fd->NUP += !seen;
    }
  }
  if (fd->row_mult && !fd->ref_choice) {
    /* the Hessian pass's pseudo-terms of the row multipliers: J (1 + Ku)
     * per row, and their parameters in the dense design (NUP) */
    fd->NTE = fd->NU + fd->J * (1 + fd->Ku);
    for (int t = 0; t < m->n_rows; t++) {
      const int pm = m->mult_par[t];
      if (pm < 0) continue;
      int seen = 0;
      for (int t2 = 0; t2 < t && !seen; t2++) seen = m->mult_par[t2] == pm;
      for (int u = 0; u < fd->NU && !seen; u++) seen = m->ut_lv[u] < 0 && m->ut_par[u] == pm;
      fd->NUP += !seen;
    }
  }
  fd->link_rows = fd->ref_choice && m->n_mult == 0;
  fd->nl_block = fd->link_rows && m->choice_type == ICLV_CHOICE_NL && (!fd->tapes || fd->tapes_fixed)
                     ? 2 * fd->J + 3 * m->n_nest + 3 + fd->K : 0;
  fd->nl_nests = fd->nl_block ? m->n_nest : 0;
  fd->ord_block = fd->link_rows && m->choice_type == ICLV_CHOICE_ORDERED && m->n_alt == 1 &&
                          (!fd->tapes || fd->tapes_fixed)
                      ? 4 + fd->K : 0;
  fd->Lc = m->choice_type != ICLV_CHOICE_NONE ? iclv_outer_dim(m) : fd->J;
  fd->NTV = fd->tapes ? m->tape_var_ptr[m->n_alt] : 0;
  fd->tape_E = fd->tapes ? iclv_tape_entry(m) : 0;
  fd->atoms_affine = !fd->tapes || fd->tapes_fixed;
  fd->hess_ok = 1; /* d eta / d phi the same for every draw: covariate sources only */
  /* d2 eta / d phi d phi' = 0 when every LV source of a structural term is
   * an LV without structural terms of its own (iclv_structural's D2) */
  fd->d2_zero = 1;
  for (int t = 0; t < fd->S; t++)
    if (m->st_src_type[t] == ICLV_SRC_LV && m->st_ptr[m->st_src[t] + 1] > m->st_ptr[m->st_src[t]])
      fd->d2_zero = 0;
  for (int t = 0; t < fd->S; t++)
    if (m->st_src_type[t] != ICLV_SRC_COV) fd->hess_ok = 0;
  fd->pblk = m->choice_type == ICLV_CHOICE_PROBIT && !fd->ref_choice && !fd->row_mult;
  fd->exblk = m->choice_type == ICLV_CHOICE_MNL && !fd->ref_choice && (!fd->lv_rowinv || fd->row_mult) &&
              (double) fd->Tmax * fd->J * R <= EXBLK_MAX_DOUBLES;
  /* hess_rows' count, without removing repeats (a bound) */
  fd->nhr = 0;
  if (!fd->hess_ok)
    for (int k = 0; k < K; k++) {
      if (m->st_ptr[k + 1] == m->st_ptr[k]) continue;
      for (int ind = 0; ind < m->n_indic; ind++) {
        int on = 0;
        for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++) on |= m->ind_load_lv[q] == k;
        if (!on) continue;
        fd->nhr += m->ind_load_ptr[ind + 1] - m->ind_load_ptr[ind] + 2;
        if (m->ind_thr[ind] >= 0) fd->nhr += m->ind_ncat[ind] - 1;
      }
    }
}

/* The Hessian pass's scratch in ws->dX (engine_fast.h), laid out here
 * only: ws_sizes takes its size from the same counts. Doubles first (rows
 * of dX, dZ, dH, dE padded to whole vectors of 4 columns), then ints. */
typedef struct {
  double *dX, *dZ, *dH, *dE, *ML, *gib, *HD, *hb, *hlb, *hvb, *heeb;
  int *cmap, *cpar, *ob, *kc, *hr_ptr, *hr_idx, *mark, *nz, *dz;
} hess_scratch;

/* Points h into base (when non-NULL); returns the doubles the whole takes. */
static size_t hess_layout(const iclv_fast_dims *fd, double *base, hess_scratch *h) {
  const size_t J = (size_t) fd->J, K = (size_t) fd->K, Ku = (size_t) fd->Ku, S = (size_t) fd->S;
  const size_t P = (size_t) fd->P, B = (size_t) fd->B, O = (size_t) fd->Omax;
  const size_t U = (size_t) fd->NUP, U4 = (U + 3) / 4 * 4;
  /* with LV-on-LV terms only (dv): a block of draws' LV-block rows and the
   * choice rows' HV L (fold_block) */
  const size_t dv = fd->hess_ok ? 0 : 1, T = (size_t) fd->Tmax;
  const size_t pb = fd->pblk || fd->exblk ? 1 : 0;
  /* dX, dZ (J, U4); dH (U, U4); dE (Ku, U4); ML (J, Ku); gib (K, B); HD (K,
   * S); hb (nhr, B); hlb (Ku, J, Tmax, B); with pblk or exblk
   * (hess_block_probit, hess_block_mnl) hvb (Tmax, B), heeb (Ku, Ku, B) */
  const size_t nd[11] = {J * U4, J * U4, U * U4, Ku * U4, J * Ku, K * B, K * S,
                         dv * (size_t) fd->nhr * B, dv * Ku * J * T * B, pb * T * B,
                         pb * Ku * Ku * B};
  /* cmap (P), cpar (U), ob (O, 5), kc (K), hr_ptr (K + 1), hr_idx (P K),
   * mark (P), nz (K S + S), dz (K S) */
  const size_t ni[9] = {P, U, 5 * O, K, K + 1, P * K, P, K * S + S, K * S};
  size_t td = 0, ti = 0;
  for (int i = 0; i < 11; i++) td += nd[i];
  for (int i = 0; i < 9; i++) ti += ni[i];
  if (base != NULL && h != NULL) {
    double **d[11] = {&h->dX, &h->dZ, &h->dH, &h->dE, &h->ML, &h->gib, &h->HD, &h->hb, &h->hlb,
                      &h->hvb, &h->heeb};
    int **q[9] = {&h->cmap, &h->cpar, &h->ob, &h->kc, &h->hr_ptr, &h->hr_idx, &h->mark, &h->nz, &h->dz};
    double *b = base;
    for (int i = 0; i < 11; i++) {
      *d[i] = b;
      b += nd[i];
    }
    int *c = (int *) b;
    for (int i = 0; i < 9; i++) {
      *q[i] = c;
      c += ni[i];
    }
  }
  return td + (ti + 1) / 2;
}

/* ws->hU's parts: u (J, R), then hI (Tmax, R) and hF (R). */
static void hu_parts(const iclv_fast_dims *fd, double *hU, double **hI, double **hF) {
  *hI = hU + (size_t) fd->J * fd->R;
  *hF = *hI + (size_t) fd->Tmax * fd->R;
}

/* ws->hU's further parts: with fd->pblk hPg (Tmax, R), hEta (K, R); with
 * fd->exblk hGv (Tmax, J, R) in hPg's place. */
static void hp_parts(const iclv_fast_dims *fd, double *hU, double **hPg, double **hEta) {
  *hPg = hU + (size_t) (fd->J + fd->Tmax + 1) * fd->R;
  *hEta = *hPg + (size_t) fd->Tmax * fd->R;
}

/* ws->rc, laid out here only (ws_sizes takes its size from the same
 * counts): the choice rows through the atoms (fd->ref_choice: the LL and
 * score pass and the Hessian pass). */
typedef struct {
  double *g;  /* (P + K) one draw's gradient from the atoms */
  double *gb; /* (P, B) its entries at the choice parameters (crow), draws innermost */
  double *gc; /* (P) their weighted sums */
  double *C;  /* (Lc, Lc) one row's coefficients of dV_j dV_j2' (iclv_hess.C) */
  double *gf; /* (P + K) dV_j of one alternative, zero between uses */
  double *DV; /* (Lc, P + K) the row's dV at the coordinates (coord), then the unit
                 rows of C's extra parameters (iclv_hess.Cp) */
  double *Y;  /* (Lc, P + K) C DV */
  double *Hc; /* (P + K, P + K) row-major, the weighted sums of DV' C DV (lower triangle) */
  double *tcb; /* (Tmax, J, tape_E) with tapes_fixed: each row's tape cache, once per
                  individual (hoist_tapes) */
  double *S;   /* (Tmax, 1 + Ku + Ku^2, Lc, Lc) with atoms_affine: each row's weighted
                  sums of C, eta_k C, eta_k eta_l C over the draws (affine_sums) */
  double *DK;  /* (Ku, Lc, P + K) with atoms_affine: d DV / d eta_k (affine_outer) */
  int *crow;  /* (P) the parameters the atoms can touch (choice_params) */
  int *coord; /* (P + K) the LVs' coordinates P + k, then crow */
  int *cinv;  /* (P + K) the index in coord of each coordinate, or -1 */
  int *Cp;    /* (Lc) iclv_hess.Cp */
  int *tq;    /* (NTV) link_rows with tapes: each tape variable's row q of gb (a
                 parameter), or -1 - k for LV / random term k */
} rc_scratch;

/* Points r into base (when non-NULL); returns the doubles the whole takes
 * (0 when no choice row goes through the atoms and no tape joins W). */
static size_t rc_layout(const iclv_fast_dims *fd, double *base, rc_scratch *r) {
  if (!fd->ref_choice && !fd->tape_w) return 0;
  const size_t P = (size_t) fd->P, K = (size_t) fd->K, J = (size_t) fd->J, B = (size_t) fd->B;
  const size_t TE = fd->tapes_fixed ? (size_t) fd->Tmax * J * (size_t) fd->tape_E : 0;
  const size_t Lc = (size_t) fd->Lc;
  const size_t Ku = (size_t) fd->Ku, aff = fd->atoms_affine ? 1 : 0;
  const size_t nd[11] = {P + K, P * B, P, Lc * Lc, P + K, Lc * (P + K), Lc * (P + K), (P + K) * (P + K), TE,
                         aff * (size_t) fd->Tmax * (1 + Ku + Ku * Ku) * Lc * Lc, aff * Ku * Lc * (P + K)};
  size_t td = 0;
  for (int i = 0; i < 11; i++) td += nd[i];
  const size_t ti = P + 2 * (P + K) + Lc + (size_t) fd->NTV;
  if (base != NULL && r != NULL) {
    double **d[11] = {&r->g, &r->gb, &r->gc, &r->C, &r->gf, &r->DV, &r->Y, &r->Hc, &r->tcb, &r->S, &r->DK};
    double *b = base;
    for (int i = 0; i < 11; i++) {
      *d[i] = b;
      b += nd[i];
    }
    r->crow = (int *) b;
    r->coord = r->crow + P;
    r->cinv = r->coord + P + K;
    r->Cp = r->cinv + P + K;
    r->tq = r->Cp + Lc;
  }
  return td + (ti + 1) / 2;
}

/* sizes of the pieces, in the order they are laid out */
static void ws_sizes(const iclv_fast_dims *fd, size_t z[NPIECE]) {
  size_t T = (size_t) fd->Tmax, O = (size_t) fd->Omax, J = (size_t) fd->J, K = (size_t) fd->K;
  size_t Ku = (size_t) fd->Ku, P = (size_t) fd->P, S = (size_t) fd->S, JJ = J * J;
  z[0] = pad8(T * J);            /* W */
  z[1] = pad8(T * J * Ku);       /* L */
  z[2] = pad8(T * J);            /* Eu */
  z[3] = pad8(T);                /* tsafe */
  z[4] = pad8(T * J);            /* gV */
  z[5] = pad8(T * JJ);           /* HV */
  z[6] = pad8(T * J);            /* G0 */
  z[7] = pad8(T * J * Ku);       /* G1 */
  z[8] = pad8(T * JJ);           /* M0 */
  z[9] = pad8(T * Ku * JJ);      /* M1 */
  z[10] = pad8(T * Ku * Ku * JJ);/* M2 */
  z[11] = pad8(O * 5);           /* oc */
  z[12] = pad8(O * 2);           /* A0 */
  z[13] = pad8(O * K);           /* A1 */
  z[14] = pad8(K);               /* geta */
  z[15] = pad8(S);               /* Gst */
  z[16] = pad8(5 * J + K);       /* au */
  z[17] = pad8(P * K);           /* Hpe */
  z[18] = pad8(K * K);           /* Hee */
  z[19] = pad8(T);               /* tv */
  size_t B = (size_t) fd->B;
  z[20] = pad8(K * B);           /* bEta */
  z[21] = pad8(K * S * B);       /* bD */
  z[22] = pad8(K * B);           /* bGe */
  z[23] = pad8(16 * B);          /* bS */
  z[24] = pad8(O * 3 * B);       /* bOf */
  z[25] = pad8(T * J * B + 3 * J * B + (size_t) (fd->nl_block + fd->ord_block) * B +
               (fd->nl_block ? (size_t) fd->nl_nests + J : 0));
                                 /* bGv, then bU, bN */
  z[26] = pad8(T * (size_t) fd->NTE * 8 + P + 1 + (T * (2 * J + 1) + 1) / 2 + 1); /* tl */
  z[27] = pad8(ICLV_FAST_NCNT);  /* cnt */
  z[28] = pad8(P * S);           /* HpS */
  z[29] = pad8(O * 2 * (size_t) fd->R); /* Fst */
  z[30] = pad8((J + J * (J - 1) / 2 + 1 + Ku + Ku * Ku) * B + J); /* fr */
  z[31] = pad8(3 * K);           /* cst */
  z[32] = pad8(J * B + J + B + J); /* bZ */
  z[33] = pad8(2 * J);           /* usame, then altlv */
  z[34] = pad8(hess_layout(fd, (double *) 0, (hess_scratch *) 0)); /* dX: hess_scratch */
  z[35] = pad8((J + T + 1 + (fd->pblk ? T + K : 0) + (fd->exblk ? T * J : 0)) * (size_t) fd->R);
                                 /* hU, hI, hF; hPg, hEta or hGv */
  z[36] = pad8(rc_layout(fd, (double *) 0, (rc_scratch *) 0)); /* rc: rc_scratch */
}

size_t iclv_fast_ws_doubles(const iclv_fast_dims *fd) {
  size_t z[NPIECE], tot = 0;
  ws_sizes(fd, z);
  for (int i = 0; i < NPIECE; i++) tot += z[i];
  return tot;
}

void iclv_fast_ws_bind(const iclv_fast_dims *fd, double *b, iclv_fast_ws *ws) {
  size_t z[NPIECE];
  ws_sizes(fd, z);
  double **dst[NPIECE] = {&ws->W, &ws->L, &ws->Eu, &ws->tsafe, &ws->gV, &ws->HV, &ws->G0,
                          &ws->G1, &ws->M0, &ws->M1, &ws->M2, &ws->oc, &ws->A0,
                          &ws->A1, &ws->geta, &ws->Gst, &ws->au, &ws->Hpe, &ws->Hee, &ws->tv,
                          &ws->bEta, &ws->bD, &ws->bGe, &ws->bS, &ws->bOf, &ws->bGv,
                          &ws->tl, &ws->cnt, &ws->HpS, &ws->Fst, &ws->fr, &ws->cst, &ws->bZ, &ws->usame, &ws->dX, &ws->hU, &ws->rc};
  for (int i = 0; i < NPIECE; i++) {
    *dst[i] = b;
    b += z[i];
  }
  for (int i = 0; i < ICLV_FAST_NCNT; i++) ws->cnt[i] = 0.0;
  ws->bU = ws->bGv + (size_t) fd->Tmax * fd->J * fd->B;
  ws->bN = ws->bU + (size_t) 3 * fd->J * fd->B;
  ws->nrc = 0;
}

static void zero(double *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = 0.0;
}

/* ---- per-individual setup ------------------------------------------------- */

/* W, L (Ku LVs), Eu and tsafe of every choice row of individual n. */
static void setup_choice(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                         int n, iclv_fast_ws *ws) {
  int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  const double *tcb = (const double *) 0;
  if (fd->tape_w) {
    rc_scratch rs;
    rc_layout(fd, ws->rc, &rs);
    tcb = rs.tcb;
  }
  /* row multipliers s_t (iclv_model.h): W and L below are s_t times the
   * utility's parts, so the kernels see U = s_t V; the LVs' coefficients
   * stay row-invariant only when every row of n has the same multiplier */
  ws->rowinv = fd->lv_rowinv;
  if (m->n_mult > 0)
    for (int i = 1; i < T && ws->rowinv; i++)
      if (m->mult_sign[t0 + i] != m->mult_sign[t0] || m->mult_par[t0 + i] != m->mult_par[t0])
        ws->rowinv = 0;
  /* which alternatives have an LV term (their column sums feed d l / d eta) */
  for (int j = 0; j < J; j++) {
    double has = 0.0;
    for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++)
      if (m->ut_lv[u] >= 0) has = 1.0;
    ws->usame[J + j] = has;
  }
  for (int i = 0; i < T; i++) {
    int t = t0 + i;
    const double *xr = m->X + (long) t * m->n_xcol;
    double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    for (int j = 0; j < J; j++) {
      double wj = 0.0;
      for (int k = 0; k < Ku; k++) L[j * Ku + k] = 0.0;
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        double c = theta[m->ut_par[u]] * x;
        if (m->ut_lv[u] < 0) wj += c;
        else L[j * Ku + m->ut_lv[u]] += c;
      }
      /* (tape_w: the tape's value, hoisted by hoist_tapes) */
      if (tcb) wj += tcb[((size_t) i * m->n_alt + j) * fd->tape_E];
      W[j] = wj;
    }
    if (m->n_mult > 0) {
      const double st = iclv_row_mult(m, theta, t);
      for (int j = 0; j < J; j++) {
        W[j] *= st;
        for (int k = 0; k < Ku; k++) L[j * Ku + k] *= st;
      }
    }
    ws->tsafe[i] = 0.0;
    if (!ws->rowinv) continue;
    double mx = -INFINITY;
    for (int j = 0; j < J; j++)
      if (iclv_available(m, t, j) && W[j] > mx) mx = W[j];
    int safe = mx > -INFINITY && mx < INFINITY;
    double *Eu = ws->Eu + i; /* column-major (J, Tm) */
    for (int j = 0; j < J; j++) {
      if (!iclv_available(m, t, j)) { Eu[(size_t) j * Tm] = 0.0; continue; }
      double dlt = W[j] - mx;
      if (!(dlt >= -FAST_MNL_RANGE)) safe = 0; /* also NaN */
      Eu[(size_t) j * Tm] = exp(dlt);
    }
    /* an unsafe row takes the reference link; harmless values meanwhile */
    if (!safe)
      for (int j = 0; j < J; j++) Eu[(size_t) j * Tm] = 1.0;
    ws->tsafe[i] = safe ? 1.0 : 0.0;
  }
}

/* Thresholds of observation o: parameter indices (or -1) and values. */
static void obs_thresholds(const iclv_model *m, const double *theta, int o, int *j_lo, int *j_hi) {
  int ind = m->obs_ind[o], C = m->ind_ncat[ind], c = (int) m->obs_val[o], thr = m->ind_thr[ind];
  *j_lo = c > 1 ? thr + c - 2 : -1;
  *j_hi = c < C ? thr + c - 1 : -1;
  (void) theta;
}

/* Does ordered indicator ind have an intercept or a scale (iclv_model.h)?
 * Its observations take the reference link (no product form, no hoisted
 * thresholds): a = (tau_{y-1} - alpha - s) / sigma, b likewise. */
static inline int ordered_scaled(const iclv_model *m, int ind) {
  return m->ind_icpt[ind] >= 0 || m->ind_sd[ind] >= 0;
}

/* Per-observation constants oc (5 per observation) of individual n:
 *   ordered logit: exp(tau_lo) (0 without), exp(-tau_hi) (0 without),
 *     q = 1 / expm1(tau_hi - tau_lo) (0 unless both), log(1 - exp(tau_lo -
 *     tau_hi)) (0 unless both), 1 when the product form may be used;
 *   ordered probit: tau_lo (-Inf without), tau_hi (+Inf without), 0, 0, 1;
 *   normal: -log sqrt(2 pi) - log(sd). */
static void setup_indicators(const iclv_model *m, const double *theta, int n, iclv_fast_ws *ws) {
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    double *c = ws->oc + (size_t) i * 5;
    c[0] = c[1] = c[2] = c[3] = c[4] = 0.0;
    if (type == ICLV_IND_ORDERED_LOGIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      int ok = 1;
      if (j_lo >= 0) {
        ok &= fabs(theta[j_lo]) <= FAST_LOGIT_RANGE;
        c[0] = exp(theta[j_lo]);
      }
      if (j_hi >= 0) {
        ok &= fabs(theta[j_hi]) <= FAST_LOGIT_RANGE;
        c[1] = exp(-theta[j_hi]);
      }
      if (j_lo >= 0 && j_hi >= 0) {
        c[2] = 1.0 / expm1(theta[j_hi] - theta[j_lo]);
        c[3] = iclv_log1mexp(theta[j_lo] - theta[j_hi]);
      }
      c[4] = ok && !ordered_scaled(m, ind) ? 1.0 : 0.0; /* 0: the reference link */
    } else if (type == ICLV_IND_ORDERED_PROBIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      c[0] = j_lo >= 0 ? theta[j_lo] : -INFINITY;
      c[1] = j_hi >= 0 ? theta[j_hi] : INFINITY;
      c[4] = ordered_scaled(m, ind) ? 0.0 : 1.0; /* 0: the reference link */
    } else if (type == ICLV_IND_NORMAL) {
      c[0] = -ICLV_LN_SQRT_2PI - log(theta[m->ind_sd[ind]]);
    }
  }
}

/* ---- one draw --------------------------------------------------------------- */

/* Multiplies the running product by f, keeping it in [2^-256, 1]. */
static inline void prod_mul(double *prod, int *sc, double f) {
  double p = *prod * f;
  while (p < PROD_FLOOR && p > 0.0) {
    p *= PROD_SCALE;
    (*sc)++;
  }
  *prod = p;
}

/* Choice rows of individual n at one draw eta (the Hessian pass): gV
 * (column-major (J, Tm)) of every row, HV ((Tm, J, J)) of the rows that take
 * the reference link (the others, "fast rows", are those with *fast_out and
 * tsafe: their HV is -(diag p - p p')); adds d l / d eta to ws->geta (Ku
 * entries; for row-invariant L through the column sums cs_j = sum_t gV_tj);
 * multiplies fast rows' probabilities into the product; returns the sum of
 * the log probabilities of the rows through iclv_choice_link (binary-probit
 * rows through Cody's Phi and explicit MNL rows through fast_exp add
 * nothing: the Hessian pass reads no log). */
static double draw_choice(const iclv_model *m, const iclv_fast_dims *fd, int n, const double *eta,
                          const int *kc, int nkc, iclv_fast_ws *ws, int *fast_out, double *prod,
                          int *sc) {
  int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  double lsum = 0.0;
  double *a = ws->au, *u = ws->au + J, *V = ws->au + 2 * J, *gt = ws->au + 3 * J;
  double *cs = ws->au + 4 * J;
  double *restrict gV = ws->gV;
  int fastd = 0;
  if (ws->rowinv && T > 0) {
    double amax = -INFINITY, amin = INFINITY;
    for (int j = 0; j < J; j++) {
      double s = 0.0;
      for (int k = 0; k < Ku; k++) s += ws->L[j * Ku + k] * eta[k];
      a[j] = s;
      if (s > amax) amax = s;
      if (s < amin) amin = s;
    }
    if (amax - amin <= FAST_MNL_RANGE) {
      fastd = 1;
      for (int j = 0; j < J; j++)
        u[j] = (j > 0 && a[j] == a[j - 1]) ? u[j - 1] : fast_exp(a[j] - amax);
    }
  }
  if (fastd) {
    /* P_tj = E_tj u_j / sum_j E_tj u_j for every row at once */
    double *restrict inv = ws->tv;
    const double *restrict Eu = ws->Eu;
    for (int i = 0; i < T; i++) inv[i] = 0.0;
    for (int j = 0; j < J; j++) {
      double uj = u[j];
      const double *restrict E = Eu + (size_t) j * Tm;
      double *restrict g = gV + (size_t) j * Tm;
ICLV_SIMD
      for (int i = 0; i < T; i++) {
        double v = E[i] * uj;
        g[i] = v;
        inv[i] += v;
      }
    }
ICLV_SIMD
    for (int i = 0; i < T; i++) inv[i] = 1.0 / inv[i];
    for (int j = 0; j < J; j++) {
      double *restrict g = gV + (size_t) j * Tm;
ICLV_SIMD
      for (int i = 0; i < T; i++) g[i] *= -inv[i]; /* -P_tj */
    }
    double p = *prod;
    int c = *sc;
    for (int i = 0; i < T; i++) {
      double *gy = gV + (size_t) m->y[t0 + i] * Tm + i;
      double py = -*gy;
      *gy += 1.0;
      if (ws->tsafe[i] != 0.0) prod_mul(&p, &c, py);
    }
    *prod = p;
    *sc = c;
  }
  for (int i = 0; i < T; i++) {
    int t = t0 + i;
    double *HV = ws->HV + (size_t) i * J * J;
    if (fastd && ws->tsafe[i] != 0.0) continue;
    const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    for (int j = 0; j < J; j++) {
      double v = W[j];
      for (int a = 0; a < nkc; a++) v += L[j * Ku + kc[a]] * eta[kc[a]];
      V[j] = v;
    }
    double val, lam;
    if (m->choice_type == ICLV_CHOICE_PROBIT && iclv_available(m, t, 0) &&
        iclv_available(m, t, 1) && probit_cdf_fast((m->y[t] == 0 ? 1.0 : -1.0) * (V[0] - V[1]),
                                                   &val, &lam) != 0) {
      /* Cody's Phi; the row's log is not needed by the Hessian pass */
      double sg = m->y[t] == 0 ? 1.0 : -1.0, x = sg * (V[0] - V[1]);
      double f2 = iclv_inv_mills_deriv(x, lam);
      gt[0] = sg * lam;
      gt[1] = -sg * lam;
      HV[0] = f2; HV[1] = -f2; HV[2] = -f2; HV[3] = f2;
    } else if (m->choice_type == ICLV_CHOICE_MNL) {
      /* iclv_choice_link's P_j, gV and HV with fast_exp and without the
       * row's log (the Hessian pass does not read it) */
      double mx = -INFINITY, sum = 0.0;
      for (int j = 0; j < J; j++)
        if (iclv_available(m, t, j) && V[j] > mx) mx = V[j];
      for (int j = 0; j < J; j++) {
        gt[j] = iclv_available(m, t, j) ? fast_exp(V[j] - mx) : 0.0;
        sum += gt[j];
      }
      for (int j = 0; j < J; j++) gt[j] /= sum;
      for (int j = 0; j < J; j++)
        for (int j2 = 0; j2 < J; j2++) HV[j * J + j2] = (j == j2 ? -gt[j] : 0.0) + gt[j] * gt[j2];
      for (int j = 0; j < J; j++) gt[j] = (j == m->y[t] ? 1.0 : 0.0) - gt[j];
    } else {
      lsum += iclv_choice_link(m, t, V, gt, HV);
    }
    for (int j = 0; j < J; j++) gV[(size_t) j * Tm + i] = gt[j];
  }
  if (ws->rowinv) {
    for (int j = 0; j < J; j++) {
      const double *g = gV + (size_t) j * Tm;
      double c = 0.0;
      for (int i = 0; i < T; i++) c += g[i];
      cs[j] = c;
      for (int a = 0; a < nkc; a++) ws->geta[kc[a]] += c * ws->L[j * Ku + kc[a]];
    }
  } else {
    for (int i = 0; i < T; i++) {
      const double *L = ws->L + (size_t) i * J * Ku;
      for (int j = 0; j < J; j++) {
        double g = gV[(size_t) j * Tm + i];
        for (int a = 0; a < nkc; a++) ws->geta[kc[a]] += g * L[j * Ku + kc[a]];
      }
    }
  }
  *fast_out = fastd;
  return lsum;
}

/* An ordered-logit observation's derivatives from F(a) and F(-b) (fa, fnb:
 * logit_fast's, or the LL pass's same values kept in Fst): d1, d2 of
 * log(F(b) - F(a)) by a and b, and ka, kb (d log f / dx at a and b). */
static inline void logit_from_F(const double *c, double fa, double fnb, double *d1, double *d2,
                                double *ka, double *kb) {
  *d1 = -fa - c[2];
  *d2 = fnb + c[2];
  *ka = 1.0 - 2.0 * fa;
  *kb = 2.0 * fnb - 1.0;
}

/* An ordered-logit observation in product form (constants c of oc, index s
 * with |s| <= FAST_LOGIT_RANGE): F(b) - F(a) = F(b) F(-a) (1 - e^(a-b))
 * with e^a = c0 / e^s, e^-b = c1 e^s. Returns F(b) F(-a); sets d1, d2 (the
 * derivatives of log(F(b) - F(a)) by a and b: -F(a) - q and F(-b) + q) and
 * ka, kb (d log f / dx at a and b: 1 - 2 F(a), 2 F(-b) - 1). One division. */
static inline double logit_fast(const double *c, double s, double *d1, double *d2, double *ka,
                                double *kb, double *Fa, double *Fnb) {
  double es = fast_exp(s);
  double e0 = es + c[0];       /* e^s (1 + e^a) */
  double e1 = 1.0 + c[1] * es; /* 1 + e^-b */
  double r = 1.0 / (e0 * e1);
  double fa = c[0] * r * e1;       /* F(a) */
  double fnb = c[1] * es * r * e0; /* F(-b) */
  logit_from_F(c, fa, fnb, d1, d2, ka, kb);
  *Fa = fa;
  *Fnb = fnb;
  return es * r;
}

/* ---- LL and score ------------------------------------------------------------ */

/* Multiplies every gradient accumulator of the individual by f. */
static void scale_acc(const iclv_fast_dims *fd, int T, int O, iclv_fast_ws *ws, double f) {
  size_t J = (size_t) fd->J, Ku = (size_t) fd->Ku, K = (size_t) fd->K;
  for (size_t i = 0; i < (size_t) fd->Tmax * J; i++) ws->G0[i] *= f;
  for (size_t i = 0; i < (size_t) T * J * Ku; i++) ws->G1[i] *= f;
  for (size_t i = 0; i < (size_t) O * 2; i++) ws->A0[i] *= f;
  for (size_t i = 0; i < (size_t) O * K; i++) ws->A1[i] *= f;
  for (int t = 0; t < fd->S; t++) ws->Gst[t] *= f;
  if (fd->ref_choice) {
    rc_scratch rs;
    rc_layout(fd, ws->rc, &rs);
    for (int q = 0; q < ws->nrc; q++) rs.gc[q] *= f;
  }
}

/* ---- choice rows through the atoms (fd->ref_choice) ------------------------ */

/* The parameters whose entries of a draw's gradient the choice atoms can
 * write (iclv_core.h): the utility terms', the tapes' variables below P,
 * the nests' lambdas, the ordered choice's thresholds and the row
 * multipliers' scales; into crow (increasing), their count into ws->nrc. */
static int *choice_params(const iclv_model *m, const iclv_fast_dims *fd, iclv_fast_ws *ws) {
  const int P = fd->P;
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  double *gc = rs.gc;
  int *crow = rs.crow;
  /* a marker per parameter in gc (zeroed after: the sums start at 0) */
  for (int p = 0; p < P; p++) gc[p] = 0.0;
  for (int u = 0; u < m->ut_ptr[m->n_alt]; u++) gc[m->ut_par[u]] = 1.0;
  if (m->n_tape > 0)
    for (int v = 0; v < m->tape_var_ptr[m->n_alt]; v++)
      if (m->tape_var[v] < P) gc[m->tape_var[v]] = 1.0;
  for (int a = 0; a < m->n_nest; a++)
    if (m->nest_par[a] >= 0) gc[m->nest_par[a]] = 1.0;
  if (m->choice_type == ICLV_CHOICE_ORDERED && m->ocat_thr >= 0)
    for (int c = 0; c < m->n_ocat - 1; c++) gc[m->ocat_thr + c] = 1.0;
  for (int t = 0; t < m->n_mult; t++)
    if (m->mult_par[t] >= 0) gc[m->mult_par[t]] = 1.0;
  int nc = 0;
  for (int p = 0; p < P; p++)
    if (gc[p] != 0.0) {
      crow[nc++] = p;
      gc[p] = 0.0;
    }
  ws->nrc = nc;
  return crow;
}

/* With link_rows: the parameters of the link's own derivatives (a nested
 * logit's lambdas in nest order, those with a parameter; an ordered
 * choice's thresholds, tau_c at q = c - 1), then the tapes' parameters
 * (tape variable v's at tq[v]) into crow, their count into ws->nrc; the LL
 * and score pass sums them as it sums the atoms' rows (gb, gc). */
static int *link_params(const iclv_model *m, const iclv_fast_dims *fd, iclv_fast_ws *ws) {
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  int nc = 0;
  if (m->choice_type == ICLV_CHOICE_NL) {
    for (int a = 0; a < m->n_nest; a++)
      if (m->nest_par[a] >= 0) rs.crow[nc++] = m->nest_par[a];
  } else if (m->choice_type == ICLV_CHOICE_ORDERED && m->ocat_thr >= 0) {
    for (int c = 0; c < m->n_ocat - 1; c++) rs.crow[nc++] = m->ocat_thr + c;
  }
  /* the tapes' parameters, each once, after them */
  const int ne = nc;
  for (int v = 0; v < fd->NTV; v++) {
    const int p = m->tape_var[v];
    if (p >= fd->P) {
      rs.tq[v] = -1 - (p - fd->P);
      continue;
    }
    int q = ne;
    while (q < nc && rs.crow[q] != p) q++;
    if (q == nc) rs.crow[nc++] = p;
    rs.tq[v] = q;
  }
  for (int q = 0; q < nc; q++) rs.gc[q] = 0.0;
  ws->nrc = nc;
  return rs.crow;
}

/* With tapes_fixed: the tapes of every choice row of individual n at order
 * `order` (iclv_row_tapes: 0 values, 1 and gradients, 2 and Hessians), once
 * for all draws, into rs->tcb (row i's cache at i J tape_E). */
static void hoist_tapes(const iclv_model *m, const iclv_fast_dims *fd, const double *theta, int n,
                        iclv_pair_ws *pws, rc_scratch *rs, iclv_fast_ws *ws, int order) {
  const int t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  const size_t JE = (size_t) m->n_alt * fd->tape_E;
  iclv_tapes_invalidate(m, pws->V);
  for (int i = 0; i < T; i++) {
    /* (no tape reads eta: pws->eta's contents do not matter) */
    const double *tc = iclv_row_tapes(m, theta, pws->eta, t0 + i, pws->V, order);
    memcpy(rs->tcb + (size_t) i * JE, tc, sizeof(double) * JE);
  }
  ws->cnt[ICLV_FAST_CNT_TAPE_HOIST] += (double) T;
}

/* The row's tape cache for the atoms: hoisted (tapes_fixed), else run now
 * for this draw (NULL without tapes). */
static inline const double *row_tapes(const iclv_model *m, const iclv_fast_dims *fd,
                                      const double *theta, const double *eta, int i, int t,
                                      iclv_pair_ws *pws, const rc_scratch *rs, int order) {
  if (fd->tapes_fixed) return rs->tcb + (size_t) i * m->n_alt * fd->tape_E;
  return iclv_row_tapes(m, theta, eta, t, pws->V, order);
}

/* An ordered-logit outcome of nb draws in the product form, with every
 * index in range (|sv| <= FAST_LOGIT_RANGE) and the thresholds hoisted into
 * c (setup_indicators' oc, c[4] != 0): its log terms added to ls, its factor
 * multiplied into the running products pr (power-of-2 scales sc), d l /
 * d(a, b) into f0, f1 and d l / d s into fc; F(a), F(-b) of each draw into
 * Fa, Fnb (the Hessian pass's, logit_from_F). Scratch: bS's slots 6, 7 (B
 * doubles each). Shared by the indicators and the ordered choice rows. */
static ICLV_FORCE_INLINE void ordered_logit_block(const double *c, const double *restrict sv, int nb,
                                                  double *restrict ls, double *restrict pr,
                                                  double *restrict sc, double *restrict f0,
                                                  double *restrict f1, double *restrict fc,
                                                  double *restrict Fa, double *restrict Fnb,
                                                  double *bS, int B, double *cnt) {
  cnt[ICLV_FAST_CNT_OBS_VEC] += nb;
  double c0 = c[0], c1 = c[1], c2 = c[2];
  /* the factor F(b) F(-a) = 1 / (1 + x) and x of each draw (bS slots 6, 7) */
  double *restrict fct = bS + 6 * B, *restrict fx = bS + 7 * B;
ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    double es = fast_exp_core(sv[b]); /* |s| <= FAST_LOGIT_RANGE (allfast) */
    double e0 = es + c0, e1 = 1.0 + c1 * es;
    double r = 1.0 / (e0 * e1);
    double fa = c0 * r * e1, fnb = c1 * es * r * e0;
    double d1 = -fa - c2, d2 = fnb + c2;
    Fa[b] = fa;
    Fnb[b] = fnb;
    f0[b] = d1;
    f1[b] = d2;
    fc[b] = -(d1 + d2);
    fx[b] = es; /* x = e^-s c0 + c1 e^s + c0 c1 below, only where it may be small */
    fct[b] = es * r;
    ls[b] += c[3];
  }
  /* x = 1 / fct - 1: x < LOGIT_NEAR1 needs fct > 1 / (1 + LOGIT_NEAR1);
   * at or below a bound safely under that (FCT_NEAR1) x is not small:
   * the factor multiplies the product without x's division (the same
   * branch as x's test) */
  int near1 = 0;
  ICLV_SIMD_SUM(near1)
  for (int b = 0; b < nb; b++) near1 += fct[b] > FCT_NEAR1;
  if (near1 == 0) {
    ICLV_SIMD
    for (int b = 0; b < nb; b++) pr[b] *= fct[b];
  } else {
    for (int b = 0; b < nb; b++) {
      double x = fct[b] > FCT_NEAR1 ? c0 / fx[b] + c1 * fx[b] + c0 * c1 : 1.0;
      if (x < LOGIT_NEAR1) ls[b] -= log1p(x);
      else pr[b] *= fct[b];
    }
  }
  ICLV_RESCALE_PRODUCTS(pr, sc, nb);
}

/* An ordered-probit outcome of nb draws with thresholds tlo < thi (either
 * infinite) and index sv: as ordered_logit_block, the fast forms where they
 * hold, each other draw by probit_fast or the reference link. Scratch: bS's
 * slots 8 .. 15. */
static ICLV_FORCE_INLINE void ordered_probit_block(double tlo, double thi, const double *restrict sv,
                                                   int nb, double *restrict ls, double *restrict pr,
                                                   double *restrict sc, double *restrict f0,
                                                   double *restrict f1, double *restrict fc,
                                                   double *bS, int B, double *cnt) {
  /* thresholds hoisted (oc); Cody's Phi over the block's draws
   * (pnorm_tail_block), after the reflection of iclv_probit_logdiff
   * (lo + hi <= 0): D = Phi(hi) - Phi(lo) = Q(|hi|) - Q(-lo) when
   * hi <= 0, 1 - Q(-lo) - Q(hi) when the interval straddles 0, Q(y) =
   * Phi(-y). Draws outside the product form's conditions (probit_fast's)
   * are redone one by one: probit_fast, or the reference link. */
  double *restrict yl = bS + 8 * B, *restrict yh = bS + 9 * B;
  double *restrict ql = bS + 10 * B, *restrict qh = bS + 11 * B;
  double *restrict dl = bS + 12 * B, *restrict dh = bS + 13 * B;
  double *restrict fl = bS + 14 * B, *restrict ok = bS + 15 * B;
  ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    double a = tlo - sv[b], bb = thi - sv[b];
    int f = a + bb > 0.0;
    double lo = f ? -bb : a, hi = f ? -a : bb;
    fl[b] = f ? 1.0 : 0.0;
    yl[b] = -lo;
    yh[b] = hi; /* signed for now */
  }
  ICLV_SIMD
  for (int b = 0; b < nb; b++) ok[b] = fabs(yh[b]);
  if (tlo == -INFINITY || thi == INFINITY) {
    /* an end category: after the reflection lo = -Inf for every draw (NaN
     * where the index is), whose Q and density pnorm_tail_block gives as 0
     * and 0: written as such */
    for (int b = 0; b < nb; b++) ql[b] = dl[b] = 0.0;
  } else {
    pnorm_tail_block(yl, ql, dl, nb);
  }
  pnorm_tail_block(ok, qh, dh, nb);
  ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    double hi = yh[b], tails = ql[b] + qh[b];
    int hp = hi > 0.0;
    double D = hp ? 1.0 - tails : qh[b] - ql[b];
    int good = hp ? (tails <= 0.75 && tails >= LOGIT_NEAR1)
                  : (hi > ICLV_PHI_TAIL && D >= PROBIT_PROD_MIN);
    double inv = 1.0 / D;
    double fa = -dl[b] * inv, fb = dh[b] * inv;
    double d1 = fl[b] != 0.0 ? -fb : fa, d2 = fl[b] != 0.0 ? -fa : fb;
    f0[b] = d1;
    f1[b] = d2;
    fc[b] = -(d1 + d2);
    pr[b] *= good ? D : 1.0;
    ok[b] = good ? 1.0 : 0.0;
  }
  int nsc = 0, nref = 0;
  for (int b = 0; b < nb; b++) {
    if (ok[b] == 0.0) {
      double d1, d2, v, a = tlo - sv[b], bb = thi - sv[b];
      int how = probit_fast(a, bb, &v, &d1, &d2);
      nsc += how != 0;
      nref += how == 0;
      if (how == 1) pr[b] *= v;
      else if (how == 2) ls[b] += v;
      else ls[b] += iclv_probit_logdiff(a, bb, &d1, &d2);
      f0[b] = d1;
      f1[b] = d2;
      fc[b] = -(d1 + d2);
    }
    while (pr[b] < PROD_FLOOR && pr[b] > 0.0) {
      pr[b] *= PROD_SCALE;
      sc[b] += 1.0;
    }
  }
  cnt[ICLV_FAST_CNT_OBS_VEC] += nb - nsc - nref;
  cnt[ICLV_FAST_CNT_OBS_SCALAR] += nsc;
  cnt[ICLV_FAST_CNT_OBS_REF] += nref;
}

/* The rows of a nested logit (fd->nl_block) for the nb draws of a block of
 * individual n, draws innermost: what block_link_rows gets from
 * iclv_nl_link for each (row, draw) -- the log-likelihood into ls; with
 * want_g d l / d V into bGv, the lambdas' derivatives into rc's rows gb,
 * sum_j gV_j L_jk into bGe and the fixed tapes' gV_j dN_j -- by the same
 * formulas in the same order (iclv_core.h), with fast_exp_core and fast_log
 * in place of exp and log, so that the loops over draws vectorise (their
 * arguments: shifted exponents in [-708, 0], clamped below; sums in [1, J]).
 * Nests whose lambdas are all 1 take the same general formulas (the
 * reference takes the MNL's there: equal to rounding). Scratch bN (after
 * nl_block B doubles: the M lambdas, then a nest's members as J ints). */
ICLV_CLONES static void block_nl_rows(const iclv_model *m, const iclv_fast_dims *fd,
                                      const double *theta, int n, int nb, iclv_fast_ws *ws,
                                      int want_g, double *ls) {
  const int J = fd->J, K = fd->K, Ku = fd->Ku, B = fd->B, t0 = m->row_ptr[n];
  const int T = m->row_ptr[n + 1] - t0, M = m->n_nest, E = fd->tape_E;
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  const double *restrict eb = ws->bEta;
  double *restrict Vb = ws->bN, *restrict pb = Vb + (size_t) J * B, *restrict Ib = pb + (size_t) J * B;
  double *restrict zb = Ib + (size_t) M * B, *restrict Qb = zb + (size_t) M * B;
  double *restrict mx = Qb + (size_t) M * B, *restrict sw = mx + B, *restrict lb = sw + B;
  double *restrict ge = lb + B, *restrict lam = ge + (size_t) K * B;
  int *mem = (int *) (lam + M); /* (J) */
  for (int a = 0; a < M; a++) lam[a] = iclv_nest_lambda(m, theta, a);
  for (int b = 0; b < nb; b++) lb[b] = 0.0;
  if (want_g) {
    for (size_t c = 0; c < (size_t) K * B; c++) ge[c] = 0.0;
    for (int q = 0; q < ws->nrc; q++)
      for (int b = 0; b < nb; b++) rs.gb[(size_t) q * B + b] = 0.0;
  }
  for (int i = 0; i < T; i++) {
    const int t = t0 + i, y = m->y[t], bn = m->nest_of[y];
    const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    const double *tc = fd->tapes ? rs.tcb + (size_t) i * J * E : (const double *) 0;
    for (int j = 0; j < J; j++) {
      double *restrict v = Vb + (size_t) j * B;
      for (int b = 0; b < nb; b++) v[b] = W[j];
      for (int k = 0; k < Ku; k++) {
        const double c = L[j * Ku + k], *restrict e = eb + (size_t) k * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) v[b] += c * e[b];
      }
      if (tc)
        for (int b = 0; b < nb; b++) v[b] += tc[(size_t) j * E];
      for (int b = 0; b < nb; b++) pb[(size_t) j * B + b] = 0.0;
    }
    /* each nest: its alternatives' V / lambda (in place of V: the rest
     * reads only the scaled values), their max, the shifted exponentials p,
     * their sum (in I), I = max + log sum, p / sum, zbar = sum p V / lambda */
    for (int a = 0; a < M; a++) {
      const double la = lam[a];
      double *restrict I = Ib + (size_t) a * B, *restrict z = zb + (size_t) a * B;
      /* the nest's available alternatives */
      int nm = 0;
      for (int k = 0; k < J; k++)
        if (m->nest_of[k] == a && iclv_available(m, t, k)) mem[nm++] = k;
      for (int b = 0; b < nb; b++) mx[b] = -INFINITY;
      for (int q = 0; q < nm; q++) {
        double *restrict v = Vb + (size_t) mem[q] * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) v[b] /= la;
ICLV_SIMD
        for (int b = 0; b < nb; b++) mx[b] = v[b] > mx[b] ? v[b] : mx[b];
      }
      for (int b = 0; b < nb; b++) z[b] = 0.0;
      if (nm == 0) { /* no available alternative: the nest drops out */
        for (int b = 0; b < nb; b++) I[b] = -INFINITY;
        continue;
      }
      for (int b = 0; b < nb; b++) I[b] = 0.0;
      for (int q = 0; q < nm; q++) {
        const double *restrict v = Vb + (size_t) mem[q] * B;
        double *restrict p = pb + (size_t) mem[q] * B;
        /* (the clamp in a loop of its own: GCC 12 does not vectorise the
         * exponential after a select in the same loop) */
ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          const double x = v[b] - mx[b];
          p[b] = x < -708.0 ? -708.0 : x;
        }
ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          p[b] = fast_exp_core(p[b]);
          I[b] += p[b];
        }
      }
      for (int q = 0; q < nm; q++) {
        const double *restrict v = Vb + (size_t) mem[q] * B;
        double *restrict p = pb + (size_t) mem[q] * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          p[b] /= I[b];
          z[b] += p[b] * v[b];
        }
      }
ICLV_SIMD
      for (int b = 0; b < nb; b++) I[b] = mx[b] + fast_log(I[b]);
    }
    /* the nests' shares Q and their log-sum lsw = max + log sum (in mx) */
    for (int b = 0; b < nb; b++) mx[b] = -INFINITY;
    for (int a = 0; a < M; a++) {
      const double la = lam[a], *restrict I = Ib + (size_t) a * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) mx[b] = la * I[b] > mx[b] ? la * I[b] : mx[b];
    }
    for (int b = 0; b < nb; b++) sw[b] = 0.0;
    for (int a = 0; a < M; a++) {
      const double la = lam[a], *restrict I = Ib + (size_t) a * B;
      double *restrict Q = Qb + (size_t) a * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        const double x = la * I[b] - mx[b];
        Q[b] = x < -708.0 ? -708.0 : x;
      }
ICLV_SIMD
      for (int b = 0; b < nb; b++) Q[b] = fast_exp_core(Q[b]);
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        Q[b] = I[b] == -INFINITY ? 0.0 : Q[b];
        sw[b] += Q[b];
      }
    }
    for (int a = 0; a < M; a++) {
      double *restrict Q = Qb + (size_t) a * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) Q[b] /= sw[b];
    }
    const double ly = lam[bn];
    const double *restrict vy = Vb + (size_t) y * B, *restrict Iy = Ib + (size_t) bn * B;
ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      mx[b] += fast_log(sw[b]); /* lsw */
      lb[b] += vy[b] + (ly - 1.0) * Iy[b] - mx[b]; /* (vy: V_y / lambda_y) */
    }
    if (!want_g) continue;
    /* d l / d lambda_c of the nests with a parameter (iclv_nl_link's gV[J + c]) */
    for (int c = 0, q = 0; c < M; c++) {
      if (m->nest_par[c] < 0) continue;
      const double *restrict Q = Qb + (size_t) c * B, *restrict I = Ib + (size_t) c * B;
      const double *restrict z = zb + (size_t) c * B;
      double *restrict g = rs.gb + (size_t) q++ * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        const double wc = Q[b] != 0.0 ? I[b] - z[b] : 0.0;
        double gc = -Q[b] * wc;
        if (c == bn) gc += -vy[b] / ly + I[b] - (ly - 1.0) * z[b] / ly;
        g[b] += gc;
      }
    }
    /* d l / d V_k, then its parts by eta and the tapes' parameters */
    for (int k = 0; k < J; k++) {
      const int a = m->nest_of[k];
      const double *restrict Q = Qb + (size_t) a * B, *restrict p = pb + (size_t) k * B;
      double *restrict gv = ws->bGv + ((size_t) i * J + k) * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        double gk = -Q[b] * p[b];
        if (a == bn) gk += (ly - 1.0) * p[b] / ly;
        if (k == y) gk += 1.0 / ly;
        gv[b] = gk;
      }
      for (int kk = 0; kk < Ku; kk++) {
        const double c = L[k * Ku + kk];
        double *restrict g = ge + (size_t) kk * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) g[b] += gv[b] * c;
      }
      if (!tc) continue;
      const double *te = tc + (size_t) k * E + 1;
      for (int v = m->tape_var_ptr[k]; v < m->tape_var_ptr[k + 1]; v++) {
        const double d = te[v - m->tape_var_ptr[k]];
        const int q = rs.tq[v];
        double *restrict g = q >= 0 ? rs.gb + (size_t) q * B : ge + (size_t) (-1 - q) * B;
        /* (an unavailable alternative's tape may not be finite: gV 0 adds nothing) */
        for (int b = 0; b < nb; b++)
          if (gv[b] != 0.0) g[b] += gv[b] * d;
      }
    }
  }
  for (int b = 0; b < nb; b++) {
    ls[b] += lb[b];
    if (!want_g) continue;
    if (lb[b] > -INFINITY) {
      for (int k = 0; k < K; k++) ws->bGe[(size_t) k * B + b] += ge[(size_t) k * B + b];
    } else { /* weight 0: no derivative (they may not be finite) */
      for (size_t c = 0; c < (size_t) T * J; c++) ws->bGv[c * B + b] = 0.0;
      for (int q = 0; q < ws->nrc; q++) rs.gb[(size_t) q * B + b] = 0.0;
    }
  }
  ws->cnt[ICLV_FAST_CNT_ROW_REF] += (double) T * nb;
}

/* The rows of an ordered choice (fd->ord_block: one index, V_0 = W + L eta
 * plus a fixed tape's value) for the nb draws of a block of individual n:
 * what block_link_rows gets from iclv_ordered_link for each (row, draw) --
 * with want_g d l / d V_0 into bGv, the thresholds' derivatives into rc's
 * rows gb, d l / d V_0 L_0k into bGe and the fixed tape's gV dN -- through
 * the ordered indicators' block kernels (ordered_probit_block,
 * ordered_logit_block: the row's thresholds hoisted, the probabilities
 * into bS's running products and log terms as an indicator's), the logit's
 * draws outside its fast range through the reference link. A draw whose
 * log-likelihood is -Inf or NaN after the rows (weight 0, or the
 * evaluation fails) keeps no choice derivative, as in block_link_rows.
 * Scratch bN: the index, d l / d(a, b, V_0) (B each), d l / d eta (K, B). */
ICLV_CLONES static void block_ord_rows(const iclv_model *m, const iclv_fast_dims *fd,
                                       const double *theta, int n, int nb, iclv_fast_ws *ws,
                                       int want_g) {
  const int K = fd->K, Ku = fd->Ku, B = fd->B, t0 = m->row_ptr[n];
  const int T = m->row_ptr[n + 1] - t0, E = fd->tape_E, C = m->n_ocat, thr = m->ocat_thr;
  const int logit = m->ocat_logit;
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  double *restrict ls = ws->bS, *restrict pr = ws->bS + B, *restrict sc = ws->bS + 2 * B;
  double *restrict sv = ws->bN, *restrict f0 = sv + B, *restrict f1 = f0 + B, *restrict fc = f1 + B;
  double *restrict ge = fc + B;
  const double *restrict eb = ws->bEta;
  /* (the kernels count indicator terms: the rows are counted below) */
  double cnt[ICLV_FAST_NCNT];
  if (want_g) {
    for (size_t c = 0; c < (size_t) K * B; c++) ge[c] = 0.0;
    for (int q = 0; q < ws->nrc; q++)
      for (int b = 0; b < nb; b++) rs.gb[(size_t) q * B + b] = 0.0;
  }
  for (int i = 0; i < T; i++) {
    const int t = t0 + i, cat = m->y[t] + 1;
    const double *L = ws->L + (size_t) i * Ku;
    const double *tc = fd->tapes ? rs.tcb + (size_t) i * E : (const double *) 0;
    for (int b = 0; b < nb; b++) sv[b] = ws->W[i];
    for (int k = 0; k < Ku; k++) {
      const double c = L[k], *restrict e = eb + (size_t) k * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) sv[b] += c * e[b];
    }
    if (tc)
      for (int b = 0; b < nb; b++) sv[b] += tc[0];
    const double lo = cat > 1 ? theta[thr + cat - 2] : -INFINITY;
    const double hi = cat < C ? theta[thr + cat - 1] : INFINITY;
    int fast = 1;
    double oc[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    if (logit) {
      /* setup_indicators' constants of an ordered-logit observation */
      fast = (lo == -INFINITY || fabs(lo) <= FAST_LOGIT_RANGE) && (hi == INFINITY || fabs(hi) <= FAST_LOGIT_RANGE);
      if (lo > -INFINITY) oc[0] = exp(lo);
      if (hi < INFINITY) oc[1] = exp(-hi);
      if (lo > -INFINITY && hi < INFINITY) {
        oc[2] = 1.0 / expm1(hi - lo);
        oc[3] = iclv_log1mexp(lo - hi);
      }
      int ok = 1; /* NaN fails the test, as it must */
      ICLV_SIMD_AND(ok)
      for (int b = 0; b < nb; b++) ok &= fabs(sv[b]) <= FAST_LOGIT_RANGE;
      fast = fast && ok;
    }
    if (!logit) {
      ordered_probit_block(lo, hi, sv, nb, ls, pr, sc, f0, f1, fc, ws->bS, B, cnt);
    } else if (fast) {
      ordered_logit_block(oc, sv, nb, ls, pr, sc, f0, f1, fc, ws->bS + 8 * B, ws->bS + 9 * B, ws->bS, B,
                          cnt);
    } else {
      for (int b = 0; b < nb; b++) {
        double d1, d2, f2;
        ls[b] += iclv_ordered_link(0, lo - sv[b], hi - sv[b], 0, &d1, &d2, &f2, &f2, &f2);
        f0[b] = d1;
        f1[b] = d2;
        fc[b] = -(d1 + d2);
      }
    }
    if (!want_g) continue;
    double *restrict gv = ws->bGv + (size_t) i * B;
    for (int b = 0; b < nb; b++) gv[b] = fc[b];
    if (cat > 1) {
      double *restrict g = rs.gb + (size_t) (cat - 2) * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) g[b] += f0[b];
    }
    if (cat < C) {
      double *restrict g = rs.gb + (size_t) (cat - 1) * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) g[b] += f1[b];
    }
    for (int k = 0; k < Ku; k++) {
      const double c = L[k];
      double *restrict g = ge + (size_t) k * B;
ICLV_SIMD
      for (int b = 0; b < nb; b++) g[b] += gv[b] * c;
    }
    if (!tc) continue;
    for (int v = m->tape_var_ptr[0]; v < m->tape_var_ptr[1]; v++) {
      const double d = tc[1 + v - m->tape_var_ptr[0]];
      const int q = rs.tq[v];
      double *restrict g = q >= 0 ? rs.gb + (size_t) q * B : ge + (size_t) (-1 - q) * B;
      for (int b = 0; b < nb; b++)
        if (gv[b] != 0.0) g[b] += gv[b] * d;
    }
  }
  ws->cnt[ICLV_FAST_CNT_ROW_REF] += (double) T * nb;
  if (!want_g) return;
  for (int b = 0; b < nb; b++) {
    if (ls[b] > -INFINITY && pr[b] != 0.0) {
      for (int k = 0; k < K; k++) ws->bGe[(size_t) k * B + b] += ge[(size_t) k * B + b];
    } else { /* weight 0 (or a failed evaluation): no derivative (they may not be finite) */
      for (int i = 0; i < T; i++) ws->bGv[(size_t) i * B + b] = 0.0;
      for (int q = 0; q < ws->nrc; q++) rs.gb[(size_t) q * B + b] = 0.0;
    }
  }
}

/* The choice rows of individual n for the nb draws of a block through their
 * links (fd->link_rows: a nested logit, an ordered choice, or utilities
 * with tapes, without row multipliers): V = W + L eta from setup_choice's
 * hoisted parts plus the tapes' values (row_tapes), the link of
 * iclv_core.h (iclv_nl_link; iclv_ordered_link; iclv_choice_link), its
 * log-likelihood added to ls (B); with want_g its d l / d V into bGv (T, J,
 * B) as the fast rows' (the score's weighted sums G0, G1), sum_j gV_j L_jk
 * into bGe (K, B), and the link's own derivatives (lambdas, thresholds)
 * and the tapes' gV_j dN_j into rc's rows gb (link_params) or bGe. A draw
 * whose rows give l = -Inf (weight 0) keeps no derivative. */
static void block_link_rows(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, int nb, iclv_pair_ws *pws, iclv_fast_ws *ws, int want_g,
                            double *ls) {
  const int J = fd->J, K = fd->K, Ku = fd->Ku, B = fd->B, t0 = m->row_ptr[n];
  const int T = m->row_ptr[n + 1] - t0, M = m->n_nest, nl = m->choice_type == ICLV_CHOICE_NL;
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  double *V = pws->V, *gV = pws->gV, *ge = rs.g; /* ge (K): this draw's d l / d eta */
  const double *eb = ws->bEta;
  const int E = fd->tape_E, ord = m->choice_type == ICLV_CHOICE_ORDERED;
  if (fd->nl_block) {
    block_nl_rows(m, fd, theta, n, nb, ws, want_g, ls);
    return;
  }
  if (fd->ord_block) {
    block_ord_rows(m, fd, theta, n, nb, ws, want_g);
    return;
  }
  for (int b = 0; b < nb; b++) {
    double l = 0.0;
    if (want_g) {
      for (int k = 0; k < K; k++) ge[k] = 0.0;
      for (int q = 0; q < ws->nrc; q++) rs.gb[(size_t) q * B + b] = 0.0;
    }
    if (fd->tapes && !fd->tapes_fixed) {
      /* this draw's eta for the tapes, their pair areas emptied */
      for (int k = 0; k < K; k++) pws->eta[k] = eb[(size_t) k * B + b];
      iclv_tapes_invalidate(m, pws->V);
    }
    for (int i = 0; i < T; i++) {
      const int t = t0 + i;
      const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
      const double *tc = fd->tapes ? row_tapes(m, fd, theta, pws->eta, i, t, pws, &rs, want_g ? 1 : 0)
                                   : (const double *) 0;
      for (int j = 0; j < J; j++) {
        double v = W[j];
        for (int k = 0; k < Ku; k++) v += L[j * Ku + k] * eb[(size_t) k * B + b];
        V[j] = tc ? v + tc[(size_t) j * E] : v;
      }
      if (nl) {
        l += iclv_nl_link(m, theta, t, V, gV, (double *) 0);
        if (want_g)
          for (int a = 0, q = 0; a < M; a++)
            if (m->nest_par[a] >= 0) rs.gb[(size_t) q++ * B + b] += gV[J + a];
      } else if (!ord) {
        l += iclv_choice_link(m, t, V, gV, (double *) 0);
      } else {
        const int C = m->n_ocat, c = m->y[t] + 1, thr = m->ocat_thr;
        const double lo = c > 1 ? theta[thr + c - 2] - V[0] : -INFINITY;
        const double hi = c < C ? theta[thr + c - 1] - V[0] : INFINITY;
        double fa, fb, f2;
        l += iclv_ordered_link(!m->ocat_logit, lo, hi, 0, &fa, &fb, &f2, &f2, &f2);
        gV[0] = -(fa + fb);
        if (want_g) {
          if (c > 1) rs.gb[(size_t) (c - 2) * B + b] += fa;
          if (c < C) rs.gb[(size_t) (c - 1) * B + b] += fb;
        }
      }
      if (!want_g) continue;
      for (int j = 0; j < J; j++) {
        ws->bGv[((size_t) i * J + j) * B + b] = gV[j];
        for (int k = 0; k < Ku; k++) ge[k] += gV[j] * L[j * Ku + k];
        if (!tc || gV[j] == 0.0) continue; /* (an unavailable alternative's tape may not be finite) */
        const double *te = tc + (size_t) j * E + 1;
        for (int v = m->tape_var_ptr[j]; v < m->tape_var_ptr[j + 1]; v++) {
          const double c = gV[j] * te[v - m->tape_var_ptr[j]];
          const int q = rs.tq[v];
          if (q >= 0) rs.gb[(size_t) q * B + b] += c;
          else ge[-1 - q] += c;
        }
      }
    }
    ls[b] += l;
    if (!want_g) continue;
    if (l > -INFINITY) {
      for (int k = 0; k < K; k++) ws->bGe[(size_t) k * B + b] += ge[k];
    } else { /* weight 0: no derivative (they may not be finite) */
      for (size_t c = 0; c < (size_t) T * J; c++) ws->bGv[c * B + b] = 0.0;
      for (int q = 0; q < ws->nrc; q++) rs.gb[(size_t) q * B + b] = 0.0;
    }
  }
  ws->cnt[ICLV_FAST_CNT_ROW_REF] += (double) T * nb;
}

/* The choice rows of individual n for the nb draws of a block, each row and
 * draw through iclv_choice_atom (as the reference, iclv_pair_eval): their
 * log-likelihood added to the block's log terms ls (B); with want_g their
 * d l / d eta added to bGe (K, B) and their gradient at the parameters of
 * crow into rc's rows (nrc, B). A draw whose rows give l = -Inf (weight 0)
 * adds no derivatives (the reference skips such draws). */
static void block_ref_choice(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                             int n, int nb, iclv_pair_ws *pws, iclv_fast_ws *ws, const int *crow,
                             int want_g, double *ls) {
  const int P = fd->P, K = fd->K, B = fd->B, t0 = m->row_ptr[n], t1 = m->row_ptr[n + 1];
  rc_scratch rs;
  rc_layout(fd, ws->rc, &rs);
  double *g = want_g ? rs.g : (double *) 0, *gb = rs.gb;
  double *eta = pws->eta;
  for (int b = 0; b < nb; b++) {
    for (int k = 0; k < K; k++) eta[k] = ws->bEta[(size_t) k * B + b];
    if (g) zero(g, (size_t) P + K);
    if (!fd->tapes_fixed) iclv_tapes_invalidate(m, pws->V);
    double l = 0.0;
    for (int t = t0; t < t1; t++) {
      const double *tc = row_tapes(m, fd, theta, eta, t - t0, t, pws, &rs, want_g ? 1 : 0);
      l += iclv_choice_atom_tc(m, theta, eta, t, pws, tc, g, (iclv_hess *) 0);
    }
    ls[b] += l;
    if (!g) continue;
    const int live = l > -INFINITY;
    for (int k = 0; k < K; k++)
      if (live) ws->bGe[(size_t) k * B + b] += g[P + k];
    for (int q = 0; q < ws->nrc; q++) gb[(size_t) q * B + b] = live ? g[crow[q]] : 0.0;
  }
  ws->cnt[ICLV_FAST_CNT_ROW_REF] += (double) (t1 - t0) * nb;
}

/* The indicator observations of individual n for the nb draws of a block:
 * per observation i the derivatives d1, d2, c (bOf (i, 3, B)), d l / d eta
 * added to bGe (K, B), log terms to bS's lsum and product factors to its
 * running products. */
ICLV_CLONES static void block_indicators(const iclv_model *m, const iclv_fast_dims *fd,
                                         const double *theta, int n, int r0, int nb,
                                         iclv_fast_ws *ws, double *restrict fst) {
  int B = fd->B, R = fd->R, o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  double *restrict ls = ws->bS, *restrict pr = ws->bS + B, *restrict sc = ws->bS + 2 * B;
  double *restrict sv = ws->bS + 5 * B;
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    int q0 = m->ind_load_ptr[ind], q1 = m->ind_load_ptr[ind + 1];
    double y = m->obs_val[o];
    const double *c = ws->oc + (size_t) i * 5;
    double *restrict f0 = ws->bOf + (size_t) i * 3 * B, *restrict f1 = f0 + B, *restrict fc = f1 + B;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) sv[b] = 0.0;
    for (int q = q0; q < q1; q++) {
      double th = theta[m->ind_load_par[q]];
      const double *restrict eb = ws->bEta + (size_t) m->ind_load_lv[q] * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) sv[b] += th * eb[b];
    }
    int allfast = type == ICLV_IND_ORDERED_LOGIT && c[4] != 0.0;
    if (allfast) {
      int ok = 1; /* NaN fails the test, as it must */
      ICLV_SIMD_AND(ok)
      for (int b = 0; b < nb; b++) ok &= fabs(sv[b]) <= FAST_LOGIT_RANGE;
      allfast = ok;
    }
    if (allfast) {
      /* F(a), F(-b) of each draw into Fst, for the Hessian pass (logit_from_F) */
      double *restrict Fa = fst ? fst + (size_t) i * 2 * R + r0 : ws->bS + 8 * B;
      double *restrict Fnb = fst ? fst + ((size_t) i * 2 + 1) * R + r0 : ws->bS + 9 * B;
      ordered_logit_block(c, sv, nb, ls, pr, sc, f0, f1, fc, Fa, Fnb, ws->bS, B, ws->cnt);
    } else if (type == ICLV_IND_ORDERED_PROBIT && c[4] != 0.0) {
      ordered_probit_block(c[0], c[1], sv, nb, ls, pr, sc, f0, f1, fc, ws->bS, B, ws->cnt);
    } else {
      for (int b = 0; b < nb; b++) {
        double s = sv[b], d1, d2, cs;
        if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
          int j_lo, j_hi;
          obs_thresholds(m, theta, o, &j_lo, &j_hi);
          if (type == ICLV_IND_ORDERED_LOGIT && c[4] != 0.0 && fabs(s) <= FAST_LOGIT_RANGE) {
            double ka, kb, p = pr[b];
            int k = 0;
            double Fa, Fnb;
            double f = logit_fast(c, s, &d1, &d2, &ka, &kb, &Fa, &Fnb);
            if (fst) {
              fst[(size_t) i * 2 * R + r0 + b] = Fa;
              fst[((size_t) i * 2 + 1) * R + r0 + b] = Fnb;
            }
            double es = fast_exp(s), x = c[0] / es + c[1] * es + c[0] * c[1];
            if (x < LOGIT_NEAR1) ls[b] -= log1p(x);
            else prod_mul(&p, &k, f);
            pr[b] = p;
            sc[b] += k;
            ls[b] += c[3];
            ws->cnt[ICLV_FAST_CNT_OBS_SCALAR] += 1.0;
            cs = -(d1 + d2);
          } else {
            /* with an intercept alpha and a scale sigma (w = 1 / sigma): d1, d2
             * are d l / da, d l / db and cs = d l / ds = -(d1 + d2) w */
            ws->cnt[ICLV_FAST_CNT_OBS_REF] += 1.0;
            int ji = m->ind_icpt[ind], js = m->ind_sd[ind];
            double u = ji >= 0 ? s + theta[ji] : s;
            double w = js >= 0 ? 1.0 / theta[js] : 1.0;
            double a = j_lo >= 0 ? (theta[j_lo] - u) * w : -INFINITY;
            double bb = j_hi >= 0 ? (theta[j_hi] - u) * w : INFINITY;
            ls[b] += type == ICLV_IND_ORDERED_PROBIT ? iclv_probit_logdiff(a, bb, &d1, &d2)
                                                     : iclv_logit_logdiff(a, bb, &d1, &d2);
            cs = -(d1 + d2) * w;
          }
        } else if (type == ICLV_IND_NORMAL) {
          ws->cnt[ICLV_FAST_CNT_OBS_REF] += 1.0;
          double sd = theta[m->ind_sd[ind]];
          double z = (y - theta[m->ind_icpt[ind]] - s) / sd;
          ls[b] += c[0] - 0.5 * z * z;
          d1 = z / sd;
          d2 = (z * z - 1.0) / sd;
          cs = d1;
        } else {
          ws->cnt[ICLV_FAST_CNT_OBS_REF] += 1.0;
          double sg = y > 0.5 ? 1.0 : -1.0;
          double x = sg * (theta[m->ind_icpt[ind]] + s);
          double fl;
          if (type == ICLV_IND_BINARY_PROBIT) {
            ls[b] += iclv_log_pnorm(x);
            fl = iclv_inv_mills(x);
          } else {
            ls[b] += iclv_log_plogis(x);
            fl = iclv_plogis(-x);
          }
          d1 = sg * fl;
          d2 = 0.0;
          cs = d1;
        }
        f0[b] = d1;
        f1[b] = d2;
        fc[b] = cs;
      }
    }
    for (int q = q0; q < q1; q++) {
      double th = theta[m->ind_load_par[q]];
      double *restrict ge = ws->bGe + (size_t) m->ind_load_lv[q] * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) ge[b] += fc[b] * th;
    }
  }
}

/* Choice row i (row t) of the LL pass at draw b of the block through the
 * reference link: V = W + L eta_b (scratch V, gt (J), eta (Ku)), its log
 * into ls[b], its d l / dV into column b of g (J, B). */
static void row_draw_ref(const iclv_model *m, const iclv_fast_dims *fd, iclv_fast_ws *ws, int i,
                         int t, int b, double *g, double *V, double *gt, double *eta, double *ls) {
  const int J = fd->J, Ku = fd->Ku, B = fd->B;
  const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
  for (int k = 0; k < Ku; k++) eta[k] = ws->bEta[(size_t) k * B + b];
  for (int j = 0; j < J; j++) {
    double v = W[j];
    for (int k = 0; k < Ku; k++) v += L[j * Ku + k] * eta[k];
    V[j] = v;
  }
  ls[b] += iclv_choice_link(m, t, V, gt, (double *) 0);
  for (int j = 0; j < J; j++) g[(size_t) j * B + b] = gt[j];
}

/* The choice rows of individual n for the nb draws of a block: gV of row
 * i, alternative j, draw b at bGv[(i J + j) B + b]; d l / d eta added to bGe;
 * with row-invariant L the column sums sum_i gV_ij at bU + 2 J B. Fast rows
 * (every draw of the block within the guards) vectorised over the draws
 * with the hoisted exp(W); explicit MNL rows (row-dependent L) vectorised
 * over the draws too; binary probit rows through Cody's Phi; the rest,
 * and the draws outside the guards, through the reference link draw by
 * draw (row_draw_ref). */
ICLV_CLONES static int block_choice(const iclv_model *m, const iclv_fast_dims *fd, int n, int nb,
                                    iclv_fast_ws *ws) {
  int B = fd->B, J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n];
  int T = m->row_ptr[n + 1] - t0;
  double *restrict ls = ws->bS, *restrict pr = ws->bS + B, *restrict sc = ws->bS + 2 * B;
  double *restrict tmp = ws->bS + 5 * B, *restrict amax = ws->bS + 6 * B;
  double *restrict A = ws->bU, *restrict U = ws->bU + (size_t) J * B;
  double *restrict CS = ws->bU + (size_t) 2 * J * B;
  double *V = ws->au + 2 * J, *gt = ws->au + 3 * J, *eta = ws->au + 5 * J;
  int fastd = 0;
  if (ws->rowinv && T > 0) {
    /* a_jb = L_j eta_b, u_jb = exp(a_jb - max_j a_jb) */
    double *restrict amin = tmp;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      amax[b] = -INFINITY;
      amin[b] = INFINITY;
    }
    for (int j = 0; j < J; j++) {
      double *restrict a = A + (size_t) j * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) a[b] = 0.0;
      for (int k = 0; k < Ku; k++) {
        double lk = ws->L[j * Ku + k];
        const double *restrict eb = ws->bEta + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) a[b] += lk * eb[b];
      }
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        if (a[b] > amax[b]) amax[b] = a[b];
        if (a[b] < amin[b]) amin[b] = a[b];
      }
    }
    fastd = 1;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) fastd &= amax[b] - amin[b] <= FAST_MNL_RANGE;
    if (fastd)
      for (int j = 0; j < J; j++) {
        const double *restrict a = A + (size_t) j * B;
        double *restrict u = U + (size_t) j * B;
        int same = -1; /* an earlier alternative with the same L row */
        for (int j2 = 0; j2 < j && same < 0; j2++) {
          int eq = 1;
          for (int k = 0; k < Ku; k++) eq &= ws->L[j2 * Ku + k] == ws->L[j * Ku + k];
          if (eq) same = j2;
        }
        ws->usame[j] = same;
        if (same >= 0) {
          memcpy(u, U + (size_t) same * B, sizeof(double) * (size_t) nb);
          continue;
        }
        /* a - amax in [-FAST_MNL_RANGE, 0] (fastd): fast_exp's range */
ICLV_SIMD
        for (int b = 0; b < nb; b++) u[b] = fast_exp_core(a[b] - amax[b]);
      }
  }
  /* implicit fast rows (fastd): gV_tj = y_tj - E_tj u_j inv_t is never
   * written; the row keeps inv_t = 1 / sum_j E_tj u_j (bGv's first B), and
   * the column sums come from Z_j = sum_t E_tj inv_t and the counts Yc_j of
   * the rows' choices: sum_t gV_tj = Yc_j - u_j Z_j */
  double *restrict Z = ws->bZ, *restrict Yc = ws->bZ + (size_t) J * B;
  if (fastd) {
    for (size_t c = 0; c < (size_t) J * B; c++) Z[c] = 0.0;
    for (int j = 0; j < J; j++) Yc[j] = 0.0;
  }
  for (int i = 0; i < T; i++) {
    int t = t0 + i, yt = m->y[t];
    double *restrict g = ws->bGv + (size_t) i * J * B;
    if (fastd && ws->tsafe[i] != 0.0) {
      ws->cnt[ICLV_FAST_CNT_ROW_VEC] += nb;
      double *restrict inv = g;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) inv[b] = 0.0;
      for (int j = 0; j < J; j++) {
        double e = ws->Eu[(size_t) j * Tm + i];
        const double *restrict u = U + (size_t) j * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) inv[b] += e * u[b];
      }
ICLV_SIMD
      for (int b = 0; b < nb; b++) inv[b] = 1.0 / inv[b];
      for (int j = 0; j < J; j++) {
        double e = ws->Eu[(size_t) j * Tm + i];
        /* unavailable, or no LV term: its column sum is not read */
        if (e == 0.0 || ws->usame[J + j] == 0.0) continue;
        double *restrict z = Z + (size_t) j * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) z[b] += e * inv[b];
      }
      Yc[yt] += 1.0;
      {
        const double ey = ws->Eu[(size_t) yt * Tm + i];
        const double *restrict uy = U + (size_t) yt * B;
ICLV_SIMD
        for (int b = 0; b < nb; b++) pr[b] *= ey * uy[b] * inv[b]; /* P_ty */
      }
      ICLV_RESCALE_PRODUCTS(pr, sc, nb);
    } else if (m->choice_type == ICLV_CHOICE_PROBIT && iclv_available(m, t, 0) &&
               iclv_available(m, t, 1)) {
      /* binary probit: Cody's Phi over the block's draws
       * (pnorm_tail_block); draws outside the product form's conditions
       * (probit_cdf_fast's) redone one by one: probit_cdf_fast, or the
       * reference link in the far tail */
      const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
      double sg = yt == 0 ? 1.0 : -1.0;
      double *restrict xv = ws->bS + 8 * B, *restrict ya = ws->bS + 9 * B;
      double *restrict q = ws->bS + 10 * B, *restrict dn = ws->bS + 11 * B;
      double *restrict ok = ws->bS + 12 * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        xv[b] = W[0];
        ya[b] = W[1];
      }
      for (int k = 0; k < Ku; k++) {
        double l0 = L[k], l1 = L[Ku + k];
        if (l0 == 0.0 && l1 == 0.0) continue; /* LV k not in this row's utilities */
        const double *restrict eb = ws->bEta + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          xv[b] += l0 * eb[b];
          ya[b] += l1 * eb[b];
        }
      }
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        double x = sg * (xv[b] - ya[b]);
        xv[b] = x;
        ya[b] = fabs(x);
      }
      pnorm_tail_block(ya, q, dn, nb);
      double *restrict g0 = g, *restrict g1 = g + B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        double x = xv[b];
        int neg = x <= 0.0;
        double P = neg ? q[b] : 1.0 - q[b];
        int good = neg ? (x > ICLV_PHI_TAIL && q[b] >= PROBIT_PROD_MIN) : (q[b] >= LOGIT_NEAR1);
        double lam = dn[b] / P;
        g0[b] = sg * lam;
        g1[b] = -sg * lam;
        pr[b] *= good ? P : 1.0;
        ok[b] = good ? 1.0 : 0.0;
      }
      int nsc = 0, nref = 0;
      for (int b = 0; b < nb; b++) {
        if (ok[b] == 0.0) {
          double val, lam, x = xv[b];
          int how = probit_cdf_fast(x, &val, &lam);
          nsc += how != 0;
          nref += how == 0;
          if (how == 1) pr[b] *= val;
          else if (how == 2) ls[b] += val;
          else ls[b] += iclv_log_pnorm_mills(x, &lam);
          g0[b] = sg * lam;
          g1[b] = -sg * lam;
        }
        while (pr[b] < PROD_FLOOR && pr[b] > 0.0) {
          pr[b] *= PROD_SCALE;
          sc[b] += 1.0;
        }
      }
      ws->cnt[ICLV_FAST_CNT_ROW_VEC] += nb - nsc - nref;
      ws->cnt[ICLV_FAST_CNT_ROW_SCALAR] += nsc;
      ws->cnt[ICLV_FAST_CNT_ROW_REF] += nref;
    } else if (m->choice_type == ICLV_CHOICE_MNL) {
      /* an explicit MNL row (LV coefficients that differ between rows: LV
       * terms with attributes, rows with different multipliers): V_jb = W_j
       * + L_j eta_b, e_jb = exp(V_jb - max_j V_jb) (fast_exp_core; 0 below
       * -700) and P_ty into the running product, draws innermost; a draw
       * with a non-finite V, or a chosen alternative more than
       * FAST_MNL_RANGE below the best (its factor could underflow the
       * product), is redone through the reference link */
      const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
      double *restrict mx = ws->bS + 8 * B, *restrict S = ws->bS + 9 * B;
      double *restrict ok = ws->bS + 12 * B;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        mx[b] = -INFINITY;
        ok[b] = 1.0;
      }
      for (int j = 0; j < J; j++) {
        double *restrict v = g + (size_t) j * B; /* V, then e, then gV */
        if (!iclv_available(m, t, j)) continue;
        const double wj = W[j];
        ICLV_SIMD
        for (int b = 0; b < nb; b++) v[b] = wj;
        for (int k = 0; k < Ku; k++) {
          const double lk = L[j * Ku + k];
          if (lk == 0.0) continue;
          const double *restrict eb = ws->bEta + (size_t) k * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) v[b] += lk * eb[b];
        }
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          const double x = v[b];
          ok[b] = (x - x == 0.0) ? ok[b] : 0.0; /* NaN or +-Inf */
          mx[b] = x > mx[b] ? x : mx[b];
        }
      }
      {
        const double *restrict vy = g + (size_t) yt * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          S[b] = 0.0;
          ok[b] = vy[b] - mx[b] >= -FAST_MNL_RANGE ? ok[b] : 0.0;
        }
      }
      for (int j = 0; j < J; j++) {
        double *restrict v = g + (size_t) j * B;
        if (!iclv_available(m, t, j)) continue;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          const double x = v[b] - mx[b];
          const double e = x >= -700.0 ? fast_exp_core(x >= -700.0 ? x : 0.0) : 0.0;
          v[b] = e;
          S[b] += e;
        }
      }
      {
        double *restrict ey = g + (size_t) yt * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          S[b] = 1.0 / S[b];
          pr[b] *= ok[b] != 0.0 ? ey[b] * S[b] : 1.0;
        }
      }
      for (int j = 0; j < J; j++) {
        double *restrict v = g + (size_t) j * B;
        if (!iclv_available(m, t, j)) {
          ICLV_SIMD
          for (int b = 0; b < nb; b++) v[b] = 0.0;
          continue;
        }
        const double yj = j == yt ? 1.0 : 0.0;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) v[b] = yj - v[b] * S[b];
      }
      ICLV_RESCALE_PRODUCTS(pr, sc, nb);
      int nref = 0;
      for (int b = 0; b < nb; b++) {
        if (ok[b] != 0.0) continue;
        nref++;
        row_draw_ref(m, fd, ws, i, t, b, g, V, gt, eta, ls);
      }
      ws->cnt[ICLV_FAST_CNT_ROW_VEC] += nb - nref;
      ws->cnt[ICLV_FAST_CNT_ROW_REF] += nref;
    } else {
      ws->cnt[ICLV_FAST_CNT_ROW_REF] += nb;
      for (int b = 0; b < nb; b++) row_draw_ref(m, fd, ws, i, t, b, g, V, gt, eta, ls);
    }
  }
  /* d l / d eta */
  if (ws->rowinv) {
    for (int j = 0; j < J; j++) {
      double *restrict cs = CS + (size_t) j * B;
      if (ws->usame[J + j] == 0.0) continue; /* no LV term: L_j = 0, G1_j not read */
      if (fastd) {
        const double *restrict z = Z + (size_t) j * B, *restrict u = U + (size_t) j * B;
        const double yc = Yc[j];
        ICLV_SIMD
        for (int b = 0; b < nb; b++) cs[b] = yc - u[b] * z[b];
      } else {
        ICLV_SIMD
        for (int b = 0; b < nb; b++) cs[b] = 0.0;
      }
      for (int i = 0; i < T; i++) {
        if (fastd && ws->tsafe[i] != 0.0) continue; /* implicit: in Z */
        const double *restrict gj = ws->bGv + ((size_t) i * J + j) * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) cs[b] += gj[b];
      }
      for (int k = 0; k < Ku; k++) {
        double lk = ws->L[j * Ku + k];
        double *restrict ge = ws->bGe + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) ge[b] += cs[b] * lk;
      }
    }
  } else {
    for (int i = 0; i < T; i++) {
      const double *L = ws->L + (size_t) i * J * Ku;
      for (int j = 0; j < J; j++) {
        const double *restrict gj = ws->bGv + ((size_t) i * J + j) * B;
        for (int k = 0; k < Ku; k++) {
          double lk = L[j * Ku + k];
          if (lk == 0.0) continue; /* adds nothing (a NaN gV makes l NaN anyway) */
          double *restrict ge = ws->bGe + (size_t) k * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) ge[b] += gj[b] * lk;
        }
      }
    }
  }
  return fastd;
}

/* Does alternative j have a utility term with LV k? */
static inline int alt_has_lv(const iclv_model *m, int j, int k) {
  for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++)
    if (m->ut_lv[u] == k) return 1;
  return 0;
}

/* sum_b w[b] x[b] over a block. */
static inline double wdot(const double *restrict w, const double *restrict x, int nb) {
  double acc = 0.0;
  ICLV_SIMD_SUM(acc)
  for (int b = 0; b < nb; b++) acc += w[b] * x[b];
  return acc;
}

/* sum_b w[b] x[b] y[b] over a block. */
static inline double wdot3(const double *restrict w, const double *restrict x,
                           const double *restrict y, int nb) {
  double acc = 0.0;
  ICLV_SIMD_SUM(acc)
  for (int b = 0; b < nb; b++) acc += w[b] * x[b] * y[b];
  return acc;
}

/* Models whose structural sources are all covariates (fd->hess_ok):
 * eta_k = e_k + c_k, c_k = sum of the LV's covariate terms: c into ws->cst
 * (K) and, with D != NULL, d eta / d phi (K, S) into D, both the same for
 * every draw (iclv_structural at e = 0). */
static void structural_mean(const iclv_model *m, const double *theta, int n, iclv_fast_ws *ws,
                            double *D) {
  const int K = m->n_lv;
  double *e0 = ws->cst + 2 * (size_t) K;
  for (int k = 0; k < K; k++) e0[k] = 0.0;
  iclv_structural(m, theta, n, e0, ws->cst, D, (double *) 0);
}

double iclv_fast_individual(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                            int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                            double *lr, double *score, int links) {
  int R = fd->R, K = fd->K, Ku = fd->Ku, J = fd->J, S = fd->S, P = fd->P, Tm = fd->Tmax;
  int B = fd->B;
  /* the choice rows in the hoisted forms (has_choice), or through the
   * atoms (refch: T = 0 for the hoisted forms) */
  const int refch = m->choice_type != ICLV_CHOICE_NONE && fd->ref_choice;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE && !refch;
  /* (rows through their links: the weighted sums of d l / dV over T rows
   * as the hoisted forms', block_link_rows) */
  const int linkr = refch && fd->link_rows;
  int t0 = m->row_ptr[n], T = has_choice || linkr ? m->row_ptr[n + 1] - t0 : 0;
  int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  int want_g = score != NULL;
  double *fst = want_g || links ? ws->Fst : (double *) 0; /* the Hessian pass's links */
  double *eta = pws->eta, *D = pws->D;
  double *ls = ws->bS, *pr = ws->bS + B, *sc = ws->bS + 2 * B, *lb = ws->bS + 3 * B;
  double *wt = ws->bS + 4 * B, *tmp = ws->bS + 5 * B;
  ws->cnt[ICLV_FAST_CNT_INDIV] += 1.0;
  /* tapes that read no draw, once per individual (before setup_choice:
   * with tape_w their values join W) */
  if ((refch || fd->tape_w) && fd->tapes_fixed) {
    rc_scratch rs;
    rc_layout(fd, ws->rc, &rs);
    hoist_tapes(m, fd, theta, n, pws, &rs, ws, want_g ? 1 : 0);
  }
  if (has_choice || linkr) setup_choice(m, fd, theta, n, ws);
  /* (rows through their links keep G1 per row: no column sums of their own) */
  if (!has_choice) ws->rowinv = 0;
  const int *crow = linkr ? link_params(m, fd, ws) : refch ? choice_params(m, fd, ws) : (const int *) 0;
  setup_indicators(m, theta, n, ws);
  if (want_g) {
    zero(ws->G0, (size_t) Tm * J);
    zero(ws->G1, (size_t) T * J * Ku);
    zero(ws->A0, (size_t) O * 2);
    zero(ws->A1, (size_t) O * K);
    zero(ws->Gst, (size_t) S);
  }
  double ref = -INFINITY, wsum = 0.0;
  int any_nan = 0, any_inf = 0;
  /* with covariate sources only (hess_ok), eta_k = e_k + c_k and d eta /
   * d phi (D) is the same for every draw: c and D once */
  const int hoist = fd->hess_ok;
  if (hoist) structural_mean(m, theta, n, ws, want_g ? D : (double *) 0);
  for (int r0 = 0; r0 < R; r0 += B) {
    int nb = R - r0 < B ? R - r0 : B;
    /* LVs (and d eta / d phi) of each draw */
    for (int b = 0; b < nb; b++) {
      if (hoist) {
        for (int k = 0; k < K; k++) ws->bEta[(size_t) k * B + b] = E[(size_t) (r0 + b) * K + k] + ws->cst[k];
      } else {
        iclv_structural(m, theta, n, E + (size_t) (r0 + b) * K, eta, want_g ? D : (double *) 0,
                        (double *) 0);
        for (int k = 0; k < K; k++) ws->bEta[(size_t) k * B + b] = eta[k];
        if (want_g)
          for (int i = 0; i < K * S; i++) ws->bD[(size_t) i * B + b] = D[i];
      }
      ls[b] = 0.0;
      pr[b] = 1.0;
      sc[b] = 0.0;
    }
    zero(ws->bGe, (size_t) K * B);
    block_indicators(m, fd, theta, n, r0, nb, ws, fst);
    if (fst)
      for (int i = 0; i < O; i++) /* the ordered-probit derivatives, for the Hessian pass */
        if (m->ind_type[m->obs_ind[o0 + i]] == ICLV_IND_ORDERED_PROBIT) {
          const double *f0 = ws->bOf + (size_t) i * 3 * B;
          memcpy(ws->Fst + (size_t) i * 2 * R + r0, f0, sizeof(double) * (size_t) nb);
          memcpy(ws->Fst + ((size_t) i * 2 + 1) * R + r0, f0 + B, sizeof(double) * (size_t) nb);
        }
    const int implicit = has_choice ? block_choice(m, fd, n, nb, ws) : 0;
    if (linkr) block_link_rows(m, fd, theta, n, nb, pws, ws, want_g, ls);
    else if (refch) block_ref_choice(m, fd, theta, n, nb, pws, ws, crow, want_g, ls);
    if (links && has_choice) {
      /* for the Hessian pass (hess_block_choice): this block's u (J) and,
       * for its fast rows, 1 / S_t, where the block was implicit */
      double *hU = ws->hU, *hI, *hF;
      hu_parts(fd, hU, &hI, &hF);
      hF[r0 / B] = implicit ? 1.0 : 0.0;
      if (implicit) {
        for (int j = 0; j < J; j++)
          memcpy(hU + (size_t) j * R + r0, ws->bU + ((size_t) J + j) * B, sizeof(double) * (size_t) nb);
        for (int i = 0; i < T; i++)
          if (ws->tsafe[i] != 0.0)
            memcpy(hI + (size_t) i * R + r0, ws->bGv + (size_t) i * J * B, sizeof(double) * (size_t) nb);
      }
      if (fd->exblk && !ws->rowinv) {
        /* (hess_block_mnl) each row's gV: explicit rows (the block is not
         * implicit without row-invariant LV coefficients) */
        double *hGv, *hEta;
        hp_parts(fd, hU, &hGv, &hEta);
        for (size_t c = 0; c < (size_t) T * J; c++)
          memcpy(hGv + c * R + r0, ws->bGv + c * B, sizeof(double) * (size_t) nb);
      }
      if (fd->pblk) {
        /* (hess_block_probit) each row's gV_0 and the LVs */
        double *hPg, *hEta;
        hp_parts(fd, hU, &hPg, &hEta);
        for (int i = 0; i < T; i++)
          memcpy(hPg + (size_t) i * R + r0, ws->bGv + (size_t) i * J * B, sizeof(double) * (size_t) nb);
        for (int k = 0; k < K; k++)
          memcpy(hEta + (size_t) k * R + r0, ws->bEta + (size_t) k * B, sizeof(double) * (size_t) nb);
      }
    }
    /* l_nr and the block's weights against the running maximum */
    double bmax = -INFINITY;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      double l = ls[b] + log(pr[b]) - sc[b] * PROD_LN_SCALE;
      lb[b] = l;
      lr[r0 + b] = l;
      if (l != l) any_nan = 1;
      else if (l == INFINITY) any_inf = 1;
      else if (l > bmax) bmax = l;
    }
    if (bmax == -INFINITY) continue;
    if (bmax > ref) {
      /* new running maximum: rescale what was accumulated against the old */
      if (wsum > 0.0) {
        double f = fast_exp(ref - bmax);
        wsum *= f;
        if (want_g) scale_acc(fd, T, O, ws, f);
      }
      ref = bmax;
    }
    double bsum = 0.0;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      double l = lb[b];
      wt[b] = (l == l && l < INFINITY) ? fast_exp(l - ref) : 0.0;
      bsum += wt[b];
    }
    wsum += bsum;
    if (!want_g) continue;
    for (int i = 0; i < T; i++) {
      if (implicit && ws->tsafe[i] != 0.0) {
        /* sum_b w_b gV_tj(b) = y_tj sum_b w_b - E_tj sum_b w_b inv_t(b) u_j(b),
         * one dot per distinct u_j (alternatives with equal L rows share it) */
        const double *inv = ws->bGv + (size_t) i * J * B;
        double *dj = ws->bZ + (size_t) J * B + J + B;
        for (int j = 0; j < J; j++) {
          const int sj = (int) ws->usame[j];
          dj[j] = sj >= 0 ? dj[sj] : wdot3(wt, inv, ws->bU + ((size_t) J + j) * B, nb);
          double e = ws->Eu[(size_t) j * Tm + i];
          ws->G0[(size_t) j * Tm + i] += (j == m->y[t0 + i] ? bsum : 0.0) - e * dj[j];
        }
      } else {
        for (int j = 0; j < J; j++)
          ws->G0[(size_t) j * Tm + i] += wdot(wt, ws->bGv + ((size_t) i * J + j) * B, nb);
      }
    }
    if (ws->rowinv) {
      /* row-invariant LV terms (no attribute): only sum_t gV_tj matters */
      for (int j = 0; j < J && T > 0; j++)
        for (int k = 0; k < Ku; k++) {
          if (!alt_has_lv(m, j, k)) continue; /* the score reads no other */
          const double *cs = ws->bU + ((size_t) 2 * J + j) * B, *eb = ws->bEta + (size_t) k * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) tmp[b] = cs[b] * eb[b];
          ws->G1[j * Ku + k] += wdot(wt, tmp, nb);
        }
    } else {
      for (int i = 0; i < T; i++)
        for (int j = 0; j < J; j++) {
          const double *g = ws->bGv + ((size_t) i * J + j) * B;
          for (int k = 0; k < Ku; k++) {
            if (!alt_has_lv(m, j, k)) continue; /* the score reads no other */
            const double *eb = ws->bEta + (size_t) k * B;
            ICLV_SIMD
            for (int b = 0; b < nb; b++) tmp[b] = g[b] * eb[b];
            ws->G1[((size_t) i * J + j) * Ku + k] += wdot(wt, tmp, nb);
          }
        }
    }
    for (int i = 0; i < O; i++) {
      const double *f0 = ws->bOf + (size_t) i * 3 * B, *f1 = f0 + B, *fc = f1 + B;
      ws->A0[2 * i] += wdot(wt, f0, nb);
      ws->A0[2 * i + 1] += wdot(wt, f1, nb);
      /* only the LVs the indicator loads on (the score reads no other) */
      int ind = m->obs_ind[o0 + i], q0 = m->ind_load_ptr[ind], q1 = m->ind_load_ptr[ind + 1];
      for (int q = q0; q < q1; q++) {
        int k = m->ind_load_lv[q], seen = 0;
        for (int q2 = q0; q2 < q; q2++) seen |= m->ind_load_lv[q2] == k;
        if (seen) continue;
        const double *eb = ws->bEta + (size_t) k * B;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) tmp[b] = fc[b] * eb[b];
        ws->A1[(size_t) i * K + k] += wdot(wt, tmp, nb);
      }
    }
    if (refch) {
      /* the choice atoms' gradient rows (zero for a draw of weight 0) */
      rc_scratch rs;
      rc_layout(fd, ws->rc, &rs);
      for (int q = 0; q < ws->nrc; q++) rs.gc[q] += wdot(wt, rs.gb + (size_t) q * B, nb);
    }
    if (hoist) {
      /* D draw-invariant: Gst_t += sum_k D_kt sum_b w_b geta_kb */
      double *wge = ws->cst + K;
      for (int k = 0; k < K; k++) wge[k] = wdot(wt, ws->bGe + (size_t) k * B, nb);
      for (int t = 0; t < S; t++) {
        double a = 0.0;
        for (int k = 0; k < K; k++) a += D[k * S + t] * wge[k];
        ws->Gst[t] += a;
      }
    } else {
      for (int t = 0; t < S; t++) {
        ICLV_SIMD
        for (int b = 0; b < nb; b++) tmp[b] = 0.0;
        for (int k = 0; k < K; k++) {
          const double *ge = ws->bGe + (size_t) k * B, *dk = ws->bD + ((size_t) k * S + t) * B;
          ICLV_SIMD
          for (int b = 0; b < nb; b++) tmp[b] += ge[b] * dk[b];
        }
        ws->Gst[t] += wdot(wt, tmp, nb);
      }
    }
  }
  if (any_nan) return NAN;
  if (any_inf) return INFINITY;
  if (!(wsum > 0.0)) return -INFINITY;
  double lse = ref + log(wsum);
  if (!want_g) return lse - log((double) R);

  /* the score: weighted sums times the draw-invariant directions; with
   * row multipliers U = s_t V, dU/dtheta = s_t dV/dtheta and, for a row's
   * scale mu_t (s_t = sign_t mu_t), dU/dmu_t = sign_t V over the available
   * alternatives (those of the others are not finite where their data are
   * NA): V's parts times the same weighted sums */
  const int mult = m->n_mult > 0;
  for (int p = 0; p < P; p++) score[p] = 0.0;
  for (int i = 0; i < T; i++) {
    const int t = t0 + i;
    const double *xr = m->X + (long) t * m->n_xcol;
    const double st = mult ? iclv_row_mult(m, theta, t) : 1.0;
    const int pmu = mult ? m->mult_par[t] : -1;
    double dmu = 0.0;
    for (int j = 0; j < J; j++) {
      double g0 = ws->G0[(size_t) j * Tm + i];
      const double *g1 = ws->G1 + ((size_t) i * J + j) * Ku;
      const int av = pmu >= 0 && iclv_available(m, t, j);
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
        double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
        if (m->ut_lv[u] < 0) {
          score[m->ut_par[u]] += st * x * g0;
          if (av) dmu += theta[m->ut_par[u]] * x * g0;
        } else if (!ws->rowinv) {
          score[m->ut_par[u]] += st * x * g1[m->ut_lv[u]];
          if (av) dmu += theta[m->ut_par[u]] * x * g1[m->ut_lv[u]];
        }
      }
    }
    if (pmu >= 0) score[pmu] += m->mult_sign[t] * dmu;
    if (fd->tape_w) {
      /* the tapes' parameters: G0_j times the tape's gradient */
      rc_scratch rs;
      rc_layout(fd, ws->rc, &rs);
      for (int j = 0; j < J; j++) {
        const double g0 = ws->G0[(size_t) j * Tm + i];
        const double *te = rs.tcb + ((size_t) i * m->n_alt + j) * fd->tape_E;
        for (int v = m->tape_var_ptr[j]; v < m->tape_var_ptr[j + 1]; v++)
          score[m->tape_var[v]] += g0 * te[1 + v - m->tape_var_ptr[j]];
      }
    }
  }
  if (ws->rowinv && T > 0) {
    /* every row has the same multiplier (setup_choice): row t0's */
    const double st = mult ? iclv_row_mult(m, theta, t0) : 1.0;
    const int pmu = mult ? m->mult_par[t0] : -1;
    double dmu = 0.0;
    for (int j = 0; j < J; j++)
      for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++)
        if (m->ut_lv[u] >= 0) {
          const double g1 = ws->G1[j * Ku + m->ut_lv[u]];
          score[m->ut_par[u]] += st * g1;
          if (pmu >= 0) dmu += theta[m->ut_par[u]] * g1;
        }
    if (pmu >= 0) score[pmu] += m->mult_sign[t0] * dmu;
  }
  for (int i = 0; i < O; i++) {
    int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    const double *a0 = ws->A0 + 2 * i;
    if ((type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) && ordered_scaled(m, ind)) {
      /* a = (tau_lo - alpha - s) w, b likewise, w = 1 / sigma; with the
       * weighted sums A0 = (sum d1, sum d2) and A1_k = sum d l/ds eta_k
       * (d l / ds = -(d1 + d2) w):
       *   d/d tau_lo = w A0_lo, d/d tau_hi = w A0_hi, d/d alpha = -w (A0_lo + A0_hi),
       *   d/d sigma = -w sum (a d1 + b d2)
       *             = -w (w (tau_lo - alpha) A0_lo + w (tau_hi - alpha) A0_hi + sum_q zeta_q A1_{lv_q})
       * (since sum s (d1 + d2) = -sum_q zeta_q A1_{lv_q} / w: no accumulator of its own) */
      int j_lo, j_hi, ji = m->ind_icpt[ind], js = m->ind_sd[ind];
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      double al = ji >= 0 ? theta[ji] : 0.0, w = js >= 0 ? 1.0 / theta[js] : 1.0;
      if (j_lo >= 0) score[j_lo] += w * a0[0];
      if (j_hi >= 0) score[j_hi] += w * a0[1];
      if (ji >= 0) score[ji] -= w * (a0[0] + a0[1]);
      if (js >= 0) {
        double t = 0.0;
        if (j_lo >= 0) t += w * (theta[j_lo] - al) * a0[0];
        if (j_hi >= 0) t += w * (theta[j_hi] - al) * a0[1];
        for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++)
          t += theta[m->ind_load_par[q]] * ws->A1[(size_t) i * K + m->ind_load_lv[q]];
        score[js] -= w * t;
      }
    } else if (type == ICLV_IND_ORDERED_PROBIT || type == ICLV_IND_ORDERED_LOGIT) {
      int j_lo, j_hi;
      obs_thresholds(m, theta, o, &j_lo, &j_hi);
      if (j_lo >= 0) score[j_lo] += a0[0];
      if (j_hi >= 0) score[j_hi] += a0[1];
    } else if (type == ICLV_IND_NORMAL) {
      score[m->ind_icpt[ind]] += a0[0];
      score[m->ind_sd[ind]] += a0[1];
    } else {
      score[m->ind_icpt[ind]] += a0[0];
    }
    for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++)
      score[m->ind_load_par[q]] += ws->A1[(size_t) i * K + m->ind_load_lv[q]];
  }
  for (int t = 0; t < S; t++) score[m->st_par[t]] += ws->Gst[t];
  if (refch) {
    rc_scratch rs;
    rc_layout(fd, ws->rc, &rs);
    for (int q = 0; q < ws->nrc; q++) score[crow[q]] += rs.gc[q];
  }
  for (int p = 0; p < P; p++) score[p] /= wsum;
  return lse - log((double) R);
}

/* ---- Hessian ------------------------------------------------------------------ */

/* dv (n) := alternative j's dV in row t at the n coordinates rs->coord
 * (iclv_utility_grad into rs->gf, which is left zero again). */
static ICLV_FORCE_INLINE void row_dv(const iclv_model *m, const double *theta, const double *eta,
                                     int t, int j, const double *tc, rc_scratch *rs, int n,
                                     double *restrict dv) {
  double *restrict gf = rs->gf;
  iclv_utility_grad(m, theta, eta, t, j, 1.0, tc, gf);
  for (int a = 0; a < n; a++) {
    dv[a] = gf[rs->coord[a]];
    gf[rs->coord[a]] = 0.0;
  }
}

/* Y (Jx, n) := C Z for C (Jx, Jx) with row stride L, Z (Jx, n); zero
 * entries of C skipped. */
static ICLV_FORCE_INLINE void small_cz(const double *C, int L, int Jx, const double *Z, int n,
                                       double *restrict Y) {
  for (int j = 0; j < Jx; j++) {
    double *restrict y = Y + (size_t) j * n;
    for (int a = 0; a < n; a++) y[a] = 0.0;
    for (int j2 = 0; j2 < Jx; j2++) {
      const double c = C[(size_t) j * L + j2];
      if (c == 0.0) continue;
      const double *restrict z = Z + (size_t) j2 * n;
      ICLV_SIMD
      for (int a = 0; a < n; a++) y[a] += c * z[a];
    }
  }
}

/* Hc (n, n) lower triangle += w X' Y, and with sym also w (X' Y)' (X, Y
 * (Jx, n)). */
static ICLV_FORCE_INLINE void hc_add(double *Hc, int n, int Jx, const double *X, const double *Y,
                                     double w, int sym) {
  for (int a = 0; a < n; a++) {
    double *restrict hc = Hc + (size_t) a * n;
    for (int j = 0; j < Jx; j++) {
      const double xa = w * X[(size_t) j * n + a];
      const double *restrict y = Y + (size_t) j * n;
      if (xa != 0.0) {
        ICLV_SIMD
        for (int b = 0; b <= a; b++) hc[b] += xa * y[b];
      }
      if (!sym) continue;
      const double ya = w * y[a];
      if (ya == 0.0) continue;
      const double *restrict x = X + (size_t) j * n;
      ICLV_SIMD
      for (int b = 0; b <= a; b++) hc[b] += ya * x[b];
    }
  }
}

/* One choice row t of a draw through the atoms in the Hessian pass: the
 * atom left the coefficients of its dV_j dV_j2' terms in rs->C, and of its
 * (e_p dV_j' + dV_j e_p') terms at the extra rows of the nCp parameters p in
 * rs->Cp (iclv_hess.C), instead of adding them cell by cell; here rs->Hc
 * (n, n) += w DV' C DV in its lower triangle, DV (J + nCp, n) the row's dV
 * at the n coordinates rs->coord (the LVs, then the choice parameters:
 * every coordinate a dV can touch), then the unit rows of the extra
 * parameters. An alternative whose row and column of C are zero is left
 * out (its utility may not be finite where it is unavailable; the atoms
 * skip it likewise). */
ICLV_CLONES static void atom_outer(const iclv_model *m, const iclv_fast_dims *fd,
                                   const double *theta, const double *eta, int t,
                                   const double *tc, rc_scratch *rs, int nCp, int n, double w) {
  const int J = m->n_alt, L = fd->Lc, Jx = J + nCp;
  const double *C = rs->C;
  double *restrict DV = rs->DV;
  for (int j = 0; j < Jx; j++) {
    double *dv = DV + (size_t) j * n;
    for (int a = 0; a < n; a++) dv[a] = 0.0;
    if (j >= J) { /* the unit row of parameter Cp[j - J] */
      dv[rs->cinv[rs->Cp[j - J]]] = 1.0;
      continue;
    }
    int live = 0;
    for (int j2 = 0; j2 < Jx && !live; j2++) live = C[j * L + j2] != 0.0 || C[j2 * L + j] != 0.0;
    if (live) row_dv(m, theta, eta, t, j, tc, rs, n, dv);
  }
  small_cz(C, L, Jx, DV, n, rs->Y);
  hc_add(rs->Hc, n, Jx, DV, rs->Y, w, 0);
}

/* The extra parameters of row t's C (iclv_hess.Cp) in a fixed order, so that
 * every draw's C has the same rows (affine_sums): a nested logit's lambdas
 * (each once), an ordered choice's thresholds of the row's category, a row
 * multiplier's scale. Returns their count (at most Lc - n_alt). */
static int row_extras(const iclv_model *m, int t, int *Cp) {
  int nx = 0;
  if (m->choice_type == ICLV_CHOICE_NL) {
    for (int a = 0; a < m->n_nest; a++) {
      const int p = m->nest_par[a];
      int seen = p < 0;
      for (int x = 0; x < nx && !seen; x++) seen = Cp[x] == p;
      if (!seen) Cp[nx++] = p;
    }
  } else if (m->choice_type == ICLV_CHOICE_ORDERED && m->ocat_thr >= 0) {
    const int c = m->y[t] + 1;
    if (c > 1) Cp[nx++] = m->ocat_thr + c - 2;
    if (c < m->n_ocat) Cp[nx++] = m->ocat_thr + c - 1;
  }
  if (m->n_mult > 0 && m->mult_par[t] >= 0) Cp[nx++] = m->mult_par[t];
  return nx;
}

/* With atoms_affine (the utilities linear in eta: V = W + L eta plus tapes
 * that read no draw), a row's DV is DV0 + sum_k eta_k DK_k with DV0, DK_k
 * the same for every draw, so sum_r w_r DV_r' C_r DV_r needs only the sums
 * of w C, w eta_k C and w eta_k eta_l C (l <= k) over the draws: here the
 * draw's C added into them (S_i, (1 + Ku + Ku^2, Lc, Lc)). */
static void affine_sums(const iclv_fast_dims *fd, const double *C, const double *eta, double w,
                        double *restrict Si) {
  const int Ku = fd->Ku;
  const size_t L2 = (size_t) fd->Lc * fd->Lc;
  for (size_t q = 0; q < L2; q++) {
    const double c = C[q];
    if (c == 0.0) continue;
    const double wc = w * c;
    Si[q] += wc;
    for (int k = 0; k < Ku; k++) {
      const double we = wc * eta[k];
      Si[(1 + (size_t) k) * L2 + q] += we;
      for (int l = 0; l <= k; l++) Si[(1 + Ku + (size_t) k * Ku + l) * L2 + q] += we * eta[l];
    }
  }
}

/* rs->Hc (n, n) lower triangle += the row's summed outer products from its
 * sums S_i (affine_sums): DV0' S0 DV0 + sum_k (DK_k' S1_k DV0 + its
 * transpose) + sum_{l <= k} (DK_k' S2_kl DK_l + for l < k its transpose),
 * DV0 the row's dV at eta = 0, DK_k = dV at e_k minus DV0 (exact: the
 * utilities are linear in eta), extra rows unit vectors (row_extras). eta
 * (K) is scratch. An alternative whose rows and columns of every sum are
 * zero is left out (as atom_outer). */
ICLV_CLONES static void affine_outer(const iclv_model *m, const iclv_fast_dims *fd,
                                     const double *theta, int t, const double *tc,
                                     const double *Si, rc_scratch *rs, int nx, int n,
                                     double *eta) {
  const int J = m->n_alt, L = fd->Lc, Jx = J + nx, Ku = fd->Ku, K = fd->K;
  const size_t L2 = (size_t) L * L, NS = 1 + (size_t) Ku + (size_t) Ku * Ku;
  double *restrict D0 = rs->DV;
  for (int j = 0; j < Jx; j++) {
    double *d0 = D0 + (size_t) j * n;
    for (int a = 0; a < n; a++) d0[a] = 0.0;
    for (int k = 0; k < Ku; k++) {
      double *dk = rs->DK + ((size_t) k * L + j) * n;
      for (int a = 0; a < n; a++) dk[a] = 0.0;
    }
    if (j >= J) { /* the unit row of parameter Cp[j - J] */
      d0[rs->cinv[rs->Cp[j - J]]] = 1.0;
      continue;
    }
    int live = 0;
    for (size_t f = 0; f < NS && !live; f++)
      for (int j2 = 0; j2 < Jx && !live; j2++)
        live = Si[f * L2 + (size_t) j * L + j2] != 0.0 || Si[f * L2 + (size_t) j2 * L + j] != 0.0;
    if (!live) continue;
    for (int k = 0; k < K; k++) eta[k] = 0.0;
    row_dv(m, theta, eta, t, j, tc, rs, n, d0);
    for (int k = 0; k < Ku; k++) {
      double *dk = rs->DK + ((size_t) k * L + j) * n;
      eta[k] = 1.0;
      row_dv(m, theta, eta, t, j, tc, rs, n, dk);
      eta[k] = 0.0;
      for (int a = 0; a < n; a++) dk[a] -= d0[a];
    }
  }
  /* Hc += X' (S Z) (+ its transpose when sym), X, Z among DV0 and DK_k */
  for (size_t f = 0; f < NS; f++) {
    int kx = -1, kz = -1, sym = 0; /* -1: DV0 */
    if (f >= 1 && f < 1 + (size_t) Ku) {
      kx = (int) f - 1;
      sym = 1;
    } else if (f > (size_t) Ku) {
      const int kl = (int) f - 1 - Ku;
      kx = kl / Ku;
      kz = kl % Ku;
      if (kz > kx) continue; /* (only l <= k is summed) */
      sym = kz < kx;
    }
    const double *S = Si + f * L2;
    const double *X = kx < 0 ? D0 : rs->DK + (size_t) kx * L * n;
    const double *Z = kz < 0 ? D0 : rs->DK + (size_t) kz * L * n;
    small_cz(S, L, Jx, Z, n, rs->Y);
    hc_add(rs->Hc, n, Jx, X, rs->Y, 1.0, sym);
  }
}

/* Hpp (P, P) column-major += v at (a, b) in the lower triangle: as
 * iclv_hcell (diag != 0, a == b) or iclv_hsym (diag == 0: both cells of a
 * symmetric pair, so twice on the diagonal when a == b), the weight already
 * in v. */
static inline void hpp_sym(double *Hpp, int P, int a, int b, double v, int diag) {
  if (a == b) Hpp[a + (size_t) P * a] += diag ? v : v + v;
  else if (a > b) Hpp[a + (size_t) P * b] += v;
  else Hpp[b + (size_t) P * a] += v;
}

/* Extended gradient (into g) and Hessian (into h) of indicator observation o
 * at eta, as iclv_indicator_atom(); an ordered-logit observation within the
 * guards uses the product form with the LL and score pass's F(a), F(-b)
 * (fst[0], fst[ldf]: Fst; logit_from_F), an ordered-probit one that pass's
 * derivatives d1, d2 (the same slots), the others the reference atom.
 * c: the observation's constants (oc). With hpe_w (P, K) and hee_w (K, K)
 * (the LV blocks summed over the draws, models whose d eta / d phi does not
 * depend on the draw), the one-loading product form adds its LV blocks
 * there, times h->w, instead of into h's. Returns 1 when it wrote into h's
 * Hpe or Hee, else 0. */
static int hess_indicator(const iclv_model *m, const double *theta, const double *eta, int o,
                          const double *c, const double *fst, size_t ldf, double *g,
                          iclv_hess *h, double *hpe_w, double *hee_w) {
  int ind = m->obs_ind[o], type = m->ind_type[ind];
  int probit = type == ICLV_IND_ORDERED_PROBIT;
  /* c[4] == 0: no product form (ordered logit out of range, or an ordered
   * indicator with an intercept or a scale) */
  if ((!probit && type != ICLV_IND_ORDERED_LOGIT) || c[4] == 0.0) {
    iclv_indicator_atom(m, theta, eta, o, g, h);
    return 1;
  }
  double s = iclv_ind_index(m, theta, eta, ind);
  double fa, fb, ka, kb, faa, fab, fbb;
  if (probit) {
    /* the derivatives of the LL pass (fst: this draw's, fst[ldf] the second) */
    fa = fst[0];
    fb = fst[ldf];
    ka = -(c[0] - s);
    kb = -(c[1] - s);
  } else {
    if (!(fabs(s) <= FAST_LOGIT_RANGE)) {
      iclv_indicator_atom(m, theta, eta, o, g, h);
      return 1;
    }
    /* F(a), F(-b) of this draw from the LL pass (Fst) */
    logit_from_F(c, fst[0], fst[ldf], &fa, &fb, &ka, &kb);
  }
  int j_lo, j_hi;
  obs_thresholds(m, theta, o, &j_lo, &j_hi);
  if (j_lo < 0) ka = 0.0;
  if (j_hi < 0) kb = 0.0;
  if (j_lo >= 0) g[j_lo] += fa;
  if (j_hi >= 0) g[j_hi] += fb;
  iclv_ind_index_grad(m, theta, eta, ind, -(fa + fb), g);
  iclv_logdiff_second(fa, fb, ka, kb, &faa, &fab, &fbb);
  int ju[2] = {j_lo, j_hi};
  double cu[2] = {-(faa + fab), -(fab + fbb)};
  const int q0 = m->ind_load_ptr[ind];
  if (m->ind_load_ptr[ind + 1] != q0 + 1) {
    if (j_lo >= 0) iclv_hcell(h, j_lo, j_lo, faa);
    if (j_hi >= 0) iclv_hcell(h, j_hi, j_hi, fbb);
    if (j_lo >= 0 && j_hi >= 0) iclv_hsym(h, j_lo, j_hi, fab);
    iclv_ind_index_hess(m, theta, eta, ind, faa + 2.0 * fab + fbb, -(fa + fb), 2, ju, cu, h);
    return 1;
  }
  /* one loading (the common case): the cells of iclv_hcell / iclv_hsym /
   * iclv_ind_index_hess written directly, Hpp in its lower triangle only
   * (the fast Hessian's contract) */
  const int P = m->n_par, K = m->n_lv, pq = m->ind_load_par[q0], lv = m->ind_load_lv[q0];
  const double w = h->w, dpq = eta[lv], deq = theta[pq], cc = faa + 2.0 * fab + fbb;
  if (j_lo >= 0) hpp_sym(h->Hpp, P, j_lo, j_lo, w * faa, 1);
  if (j_hi >= 0) hpp_sym(h->Hpp, P, j_hi, j_hi, w * fbb, 1);
  if (j_lo >= 0 && j_hi >= 0) hpp_sym(h->Hpp, P, j_lo, j_hi, w * fab, 0);
  hpp_sym(h->Hpp, P, pq, pq, w * cc * dpq * dpq, 1);
  /* the LV blocks: weighted into hpe_w / hee_w, or unweighted into h's */
  double *hpe = hpe_w ? hpe_w : h->Hpe, *hee = hpe_w ? hee_w : h->Hee;
  const double f = hpe_w ? w : 1.0;
  hpe[pq + (size_t) P * lv] += f * (cc * dpq * deq - (fa + fb));
  hee[lv + (size_t) K * lv] += f * (cc * deq * deq);
  for (int i = 0; i < 2; i++) {
    if (ju[i] < 0) continue;
    hpp_sym(h->Hpp, P, ju[i], pq, w * cu[i] * dpq, 0);
    hpe[ju[i] + (size_t) P * lv] += f * (cu[i] * deq);
  }
  return hpe_w == NULL;
}

/* sum_rr a[rr] b[rr] over rr < n in four interleaved partial sums, added
 * as (s0 + s1) + (s2 + s3): a fixed order (independent of threads), and
 * four independent additions per step instead of one chain. */
static ICLV_FORCE_INLINE double dot4(const double *restrict a, const double *restrict b, int n) {
  int i = 0;
#if defined(__GNUC__)
  /* the four partial sums as the lanes of one vector (GCC/Clang vector
   * extensions: one AVX2 or two SSE2 operations), the same order */
  typedef double v4d __attribute__((vector_size(32)));
  v4d acc = {0.0, 0.0, 0.0, 0.0};
  for (; i + 4 <= n; i += 4) {
    v4d x, y;
    memcpy(&x, a + i, sizeof x);
    memcpy(&y, b + i, sizeof y);
    acc += x * y;
  }
  double s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
#else
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
#endif
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

/* out[q] = dot4(a, b + q ldb, n) for q < m: the same sums (bit for bit),
 * four at a time, sharing the loads of a and keeping four independent
 * chains of additions (one dot4 is bound by the latency of its one). */
static ICLV_FORCE_INLINE void dot4_many(const double *restrict a, const double *restrict b,
                                        size_t ldb, int m, int n, double *restrict out) {
  int q = 0;
#if defined(__GNUC__)
  typedef double v4d __attribute__((vector_size(32)));
  for (; q + 4 <= m; q += 4) {
    const double *restrict b0 = b + (size_t) q * ldb, *restrict b1 = b0 + ldb,
                           *restrict b2 = b1 + ldb, *restrict b3 = b2 + ldb;
    v4d c0 = {0.0, 0.0, 0.0, 0.0}, c1 = c0, c2 = c0, c3 = c0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      v4d x, y0, y1, y2, y3;
      memcpy(&x, a + i, sizeof x);
      memcpy(&y0, b0 + i, sizeof y0);
      memcpy(&y1, b1 + i, sizeof y1);
      memcpy(&y2, b2 + i, sizeof y2);
      memcpy(&y3, b3 + i, sizeof y3);
      c0 += x * y0;
      c1 += x * y1;
      c2 += x * y2;
      c3 += x * y3;
    }
    double t0 = c0[0], t1 = c1[0], t2 = c2[0], t3 = c3[0];
    for (; i < n; i++) {
      t0 += a[i] * b0[i];
      t1 += a[i] * b1[i];
      t2 += a[i] * b2[i];
      t3 += a[i] * b3[i];
    }
    out[q] = (t0 + c0[1]) + (c0[2] + c0[3]);
    out[q + 1] = (t1 + c1[1]) + (c1[2] + c1[3]);
    out[q + 2] = (t2 + c2[1]) + (c2[2] + c2[3]);
    out[q + 3] = (t3 + c3[1]) + (c3[2] + c3[3]);
  }
#endif
  for (; q < m; q++) out[q] = dot4(a, b + (size_t) q * ldb, n);
}

/* One ordered observation of hess_block_indicators over nb draws (probit:
 * a literal, so each case compiles to its own loop): from ev (eta of the
 * loading's LV; overwritten by cc ev^2) and the Fst pair f0, f1 (replaced
 * by d log f / d(a, b)), the per-draw terms whose weighted sums make the
 * second derivatives, each 0 for a skipped draw (wb 0): out (9, Bd): faa,
 * fbb, fab, cc, cc ev deq - (fa + fb), u0, u1, u0 ev, u1 ev (cc = faa +
 * 2 fab + fbb, u0 = -(faa + fab), u1 = -(fab + fbb)). */
static ICLV_FORCE_INLINE void hbi_draws(int probit, int nb, int Bd, const double *restrict c,
                                        double deq, int lo, int hi, const double *restrict wb,
                                        double *restrict ev, double *restrict f0,
                                        double *restrict f1, double *restrict out) {
  const double c0 = c[0], c1 = c[1], c2 = c[2];
  double *restrict oaa = out, *restrict obb = out + Bd, *restrict oab = out + 2 * Bd;
  double *restrict occ = out + 3 * Bd, *restrict ope = out + 4 * Bd, *restrict ou0 = out + 5 * Bd;
  double *restrict ou1 = out + 6 * Bd, *restrict ou0d = out + 7 * Bd, *restrict ou1d = out + 8 * Bd;
  ICLV_SIMD
  for (int b = 0; b < nb; b++) {
    const double dpq = ev[b], s = deq * dpq;
    double fa, fb, ka, kb;
    if (probit) {
      fa = f0[b];
      fb = f1[b];
      ka = -(c0 - s);
      kb = -(c1 - s);
    } else {
      fa = -f0[b] - c2;
      fb = f1[b] + c2;
      ka = 1.0 - 2.0 * f0[b];
      kb = 2.0 * f1[b] - 1.0;
    }
    ka = lo ? ka : 0.0;
    kb = hi ? kb : 0.0;
    double faa, fab, fbb;
    iclv_logdiff_second(fa, fb, ka, kb, &faa, &fab, &fbb);
    f0[b] = fa;
    f1[b] = fb;
    const int on = wb[b] != 0.0;
    const double cc = faa + 2.0 * fab + fbb, u0 = -(faa + fab), u1 = -(fab + fbb);
    oaa[b] = on ? faa : 0.0;
    obb[b] = on ? fbb : 0.0;
    oab[b] = on ? fab : 0.0;
    occ[b] = on ? cc : 0.0;
    ope[b] = on ? cc * dpq * deq - (fa + fb) : 0.0;
    ou0[b] = on ? u0 : 0.0;
    ou1[b] = on ? u1 : 0.0;
    ou0d[b] = on ? u0 * dpq : 0.0;
    ou1d[b] = on ? u1 * dpq : 0.0;
    ev[b] = on ? cc * dpq * dpq : 0.0;
  }
}

/* The ordered indicators of individual n in the Hessian pass for a block of
 * nb draws from r0, for models whose d eta / d phi does not depend on the
 * draw (eta = E + cst): each observation with one loading in
 * hess_indicator's product form (ordered probit, or ordered logit with |s|
 * within range for every draw of the block) has its second derivatives
 * summed over the block with the weights wb (fixed-order dot products) and
 * added once, Hpp's into Hn's lower triangle and the LV blocks into
 * ws->Hpe, ws->Hee: the same terms as hess_indicator's, in another order.
 * With dvar (LV-on-LV terms; eta = E + cst otherwise), only observations
 * of LVs without structural terms (eta = E), whose LV blocks are not needed.
 * Its d log f / d(a, b) of each draw replace the Fst pair (ordered logit:
 * F(a), F(-b)) for the draw's gradient, which the draw loop adds. ob (Omax,
 * 5) ints: 1, j_lo, j_hi, the loading's parameter and LV for such an
 * observation; 0 for one that the draw loop takes through hess_indicator.
 * gib (K, Bd): their d l / d eta of each draw, summed in observation order
 * from 0. Scratch: bS slots 6 .. 15. */
ICLV_CLONES static void hess_block_indicators(const iclv_model *m, const iclv_fast_dims *fd,
                                              const double *theta, int n, const double *E,
                                              int r0, int nb, const double *restrict wb,
                                              iclv_fast_ws *ws, double *Hn, int *ob,
                                              double *restrict gib, int dvar) {
  const int R = fd->R, K = fd->K, P = fd->P, Bd = fd->B;
  const int o0 = m->obs_ptr[n], O = m->obs_ptr[n + 1] - o0;
  double *restrict ev = ws->bS + 6 * (size_t) Bd, *restrict out = ws->bS + 7 * (size_t) Bd;
  for (size_t q = 0; q < (size_t) K * Bd; q++) gib[q] = 0.0;
  for (int i = 0; i < O; i++) {
    const int o = o0 + i, ind = m->obs_ind[o], type = m->ind_type[ind];
    const int probit = type == ICLV_IND_ORDERED_PROBIT, q0 = m->ind_load_ptr[ind];
    const double *c = ws->oc + (size_t) i * 5;
    int *obi = ob + (size_t) i * 5;
    obi[0] = 0;
    if ((!probit && type != ICLV_IND_ORDERED_LOGIT) || c[4] == 0.0 ||
        m->ind_load_ptr[ind + 1] != q0 + 1)
      continue;
    const int pq = m->ind_load_par[q0], lv = m->ind_load_lv[q0];
    /* with LV-on-LV terms only an LV without structural terms: eta = e, and
     * its row of d eta / d phi is 0, so that the draw's LV blocks are never
     * folded (its sums into ws->Hpe, ws->Hee are not read) */
    if (dvar && m->st_ptr[lv + 1] > m->st_ptr[lv]) continue;
    const double deq = theta[pq], cl = dvar ? 0.0 : ws->cst[lv];
    for (int b = 0; b < nb; b++) ev[b] = E[(size_t) (r0 + b) * K + lv] + cl;
    if (!probit) {
      int ok = 1; /* NaN fails the test, as it must */
      ICLV_SIMD_AND(ok)
      for (int b = 0; b < nb; b++) ok &= fabs(deq * ev[b]) <= FAST_LOGIT_RANGE;
      if (!ok) continue;
    }
    int j_lo, j_hi;
    obs_thresholds(m, theta, o, &j_lo, &j_hi);
    obi[0] = 1;
    obi[1] = j_lo;
    obi[2] = j_hi;
    obi[3] = pq;
    obi[4] = lv;
    double *f0 = ws->Fst + (size_t) i * 2 * R + r0, *f1 = f0 + R;
    if (probit) hbi_draws(1, nb, Bd, c, deq, j_lo >= 0, j_hi >= 0, wb, ev, f0, f1, out);
    else hbi_draws(0, nb, Bd, c, deq, j_lo >= 0, j_hi >= 0, wb, ev, f0, f1, out);
    {
      double *restrict gl = gib + (size_t) lv * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) gl[b] += -(f0[b] + f1[b]) * deq;
    }
    double hs[9];
    dot4_many(wb, out, (size_t) Bd, 9, nb, hs);
#define HBI_SUM(q) hs[q]
    double *hpe = ws->Hpe + (size_t) P * lv;
    if (j_lo >= 0) hpp_sym(Hn, P, j_lo, j_lo, HBI_SUM(0), 1);
    if (j_hi >= 0) hpp_sym(Hn, P, j_hi, j_hi, HBI_SUM(1), 1);
    if (j_lo >= 0 && j_hi >= 0) hpp_sym(Hn, P, j_lo, j_hi, HBI_SUM(2), 0);
    hpp_sym(Hn, P, pq, pq, dot4(wb, ev, nb), 1);
    hpe[pq] += HBI_SUM(4);
    ws->Hee[lv + (size_t) K * lv] += HBI_SUM(3) * deq * deq;
    if (j_lo >= 0) {
      hpp_sym(Hn, P, j_lo, pq, HBI_SUM(7), 0);
      hpe[j_lo] += HBI_SUM(5) * deq;
    }
    if (j_hi >= 0) {
      hpp_sym(Hn, P, j_hi, pq, HBI_SUM(8), 0);
      hpe[j_hi] += HBI_SUM(6) * deq;
    }
#undef HBI_SUM
  }
}

/* One utility term of one row of an individual, with x != 0 (the per-draw
 * gradient of the Hessian pass reads these instead of the model's CSR). */
typedef struct {
  int par, idx, lv; /* parameter, index of its gV (j Tm + i), LV or -1 */
  double x;         /* attribute value (1 without one) */
} term_e;

/* The terms t[0..n-1] into out sorted by parameter (0 <= par < P),
 * stably: those without an LV first (n0 of them), then the LV terms, so
 * that the terms of one parameter are adjacent within each group (counting
 * sorts through cnt, P + 1 ints). */
static void sort_terms(const term_e *t, int n, int n0, term_e *out, int *cnt, int P) {
  for (int g = 0; g < 2; g++) {
    for (int p = 0; p <= P; p++) cnt[p] = 0;
    for (int q = 0; q < n; q++)
      if ((t[q].lv >= 0) == g) cnt[t[q].par + 1]++;
    cnt[0] = g ? n0 : 0;
    for (int p = 0; p < P; p++) cnt[p + 1] += cnt[p];
    for (int q = 0; q < n; q++)
      if ((t[q].lv >= 0) == g) out[cnt[t[q].par]++] = t[q];
  }
}

/* The draw-by-draw part of the fold of the Hessian pass (as
 * iclv_fold_hessian(), iclv_core.h), with the mixed block left to
 * fold_block: this draw's rows of Hpe that the indicators can write (hr_ptr
 * (K + 1), hr_idx: CSR by LV, hess_rows) into column rr of hb (nhr, Bd),
 * and h->Hpp += w (D' Hee D + sum_k geta_k D2_k) in its lower triangle
 * (both cells (t, u) and (u, t) where their parameters are equal) over the
 * non-zeros of D (with LVs that load on exogenous LVs, D (K, S) has one
 * non-zero per column). The sums run in another order than the
 * reference's (same terms). Scratch: HD (K, S), nz (K S + S ints). */
static void fold_hessian_sparse(const iclv_model *m, const double *D, const double *D2,
                                const double *geta, iclv_hess *h, const int *hr_ptr,
                                const int *hr_idx, double *restrict hb, int Bd, int rr,
                                double *HD, int *nz) {
  int P = m->n_par, K = m->n_lv, S = m->st_ptr[K];
  double w = h->w;
  for (int k = 0; k < K; k++) {
    const double *restrict hk = h->Hpe + (long) P * k;
    for (int q = hr_ptr[k]; q < hr_ptr[k + 1]; q++) hb[(size_t) q * Bd + rr] = hk[hr_idx[q]];
  }
  /* the non-zeros of each column u of D (nz[u S ..], nz[K S + u] of them),
   * HD = Hee D over them */
  int *cnt = nz + (size_t) K * S;
  for (int u = 0; u < S; u++) {
    int c = 0;
    for (int l = 0; l < K; l++)
      if (D[l * S + u] != 0.0) nz[(size_t) u * K + c++] = l;
    cnt[u] = c;
    for (int k = 0; k < K; k++) {
      double acc = 0.0;
      for (int q = 0; q < c; q++) {
        const int l = nz[(size_t) u * K + q];
        acc += h->Hee[k + K * l] * D[l * S + u];
      }
      HD[(size_t) k * S + u] = acc;
    }
  }
  for (int t = 0; t < S; t++) {
    int pt = m->st_par[t];
    for (int u = 0; u < S; u++) {
      int pu = m->st_par[u];
      if (pt < pu) continue; /* the upper triangle: not read */
      double acc = 0.0;
      for (int q = 0; q < cnt[t]; q++) {
        const int k = nz[(size_t) t * K + q];
        acc += D[k * S + t] * HD[(size_t) k * S + u];
      }
      if (D2)
        for (int k = 0; k < K; k++) acc += geta[k] * D2[((long) k * S + t) * S + u];
      h->Hpp[pt + (long) P * pu] += w * acc;
    }
  }
}

/* The rows of Hpe (P, K) that the indicators can write in the Hessian pass
 * of a model with LV-on-LV terms, by LV k (CSR hr_ptr (K + 1), hr_idx (<=
 * fd->nhr), each row once): the parameters of every indicator with a
 * loading on k (loadings, thresholds, intercept, scale); none for an LV
 * without structural terms (its row of D is 0, so the fold reads none of
 * its column). (The choice rows' LV blocks are summed from hlb by
 * fold_block.) mark (P ints) scratch. */
static void hess_rows(const iclv_model *m, int *hr_ptr, int *hr_idx, int *mark) {
  const int P = m->n_par, K = m->n_lv;
  int nq = 0;
  for (int p = 0; p < P; p++) mark[p] = -1;
#define HR_ADD(par)                                                  \
  do {                                                               \
    const int par_ = (par);                                          \
    if (par_ >= 0 && mark[par_] != k) {                              \
      mark[par_] = k;                                                \
      hr_idx[nq++] = par_;                                           \
    }                                                                \
  } while (0)
  for (int k = 0; k < K; k++) {
    hr_ptr[k] = nq;
    if (m->st_ptr[k + 1] == m->st_ptr[k]) continue;
    for (int ind = 0; ind < m->n_indic; ind++) {
      int on = 0;
      for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++) on |= m->ind_load_lv[q] == k;
      if (!on) continue;
      for (int q = m->ind_load_ptr[ind]; q < m->ind_load_ptr[ind + 1]; q++) HR_ADD(m->ind_load_par[q]);
      if (m->ind_thr[ind] >= 0)
        for (int c = 0; c < m->ind_ncat[ind] - 1; c++) HR_ADD(m->ind_thr[ind] + c);
      HR_ADD(m->ind_icpt[ind]);
      HR_ADD(m->ind_sd[ind]);
    }
  }
  hr_ptr[K] = nq;
#undef HR_ADD
}

/* Is LV k carried by some utility term? (bit k of mask; LVs from 64 on are
 * taken as carried) */
static inline int lv_carried(uint64_t mask, int k) {
  return k >= 64 || ((mask >> k) & 1u);
}

/* Choice row i's part of the LV blocks at one draw, for models whose d eta
 * / d phi depends on the draw: HL = HV L (J, Ku) over the carried LVs
 * (kc[0 .. nkc - 1]; the others have L = 0 and are not read) into column
 * rr of hlb (nkc, J, Tm, Bd), where fold_block sums the mixed block from it
 * (Hpe(u, k) = sum over u's terms of dV_j/dtheta_u HL_jk, plus x gV_j for a
 * term of LV k), and h->Hee(k, l) += sum_j L_jk HL_jl, unweighted, as
 * iclv_choice_atom() adds it. L (J, Ku) the row's LV coefficients, HV (J,
 * J) row-major. */
static void choice_lv_hl(const iclv_fast_dims *fd, int i, const double *L, const double *HV,
                         const int *kc, int nkc, double *restrict hlb, int rr, iclv_hess *h) {
  const int J = fd->J, Ku = fd->Ku, K = fd->K, Tm = fd->Tmax, Bd = fd->B;
  for (int a = 0; a < nkc; a++) {
    const int k = kc[a];
    for (int j = 0; j < J; j++) {
      double acc = 0.0;
      for (int j2 = 0; j2 < J; j2++) acc += HV[j * J + j2] * L[j2 * Ku + k];
      hlb[(((size_t) a * J + j) * Tm + i) * Bd + rr] = acc;
    }
  }
  for (int j = 0; j < J; j++)
    for (int a = 0; a < nkc; a++) {
      const int k = kc[a];
      const double lk = L[j * Ku + k];
      if (lk == 0.0) continue;
      for (int b = 0; b < nkc; b++) {
        const double hl = hlb[(((size_t) b * J + j) * Tm + i) * Bd + rr];
        if (hl != 0.0) h->Hee[k + K * kc[b]] += lk * hl;
      }
    }
}

/* The utility parameters' part of the gradients of a block of nb draws:
 * row rr of G (stride ldg; the block's first draw is row 0) += sum over the
 * terms of each parameter of x gV_idx (times eta_lv for an LV term), for
 * the draws with wb[rr] != 0. The terms: t[0..n0-1] attribute-free of
 * LVs, then nl LV terms, each group sorted by parameter; gvb (J Tm, Bd),
 * etab (K, Bd) and wb (Bd): the block's gV, LVs and weights, draws
 * innermost; acc (Bd) scratch. One parameter's sum runs over its terms in
 * order, for all the block's draws at once. */
ICLV_CLONES static void flush_terms(const term_e *t, int n0, int nl, const double *gvb,
                                    const double *etab, const double *wb, int Bd, int nb,
                                    double *restrict acc, double *G, size_t ldg) {
  for (int q = 0; q < n0 + nl;) {
    const int par = t[q].par, end = q < n0 ? n0 : n0 + nl;
    int rr0 = 0;
#if defined(__GNUC__)
    /* 16 draws at a time in registers over the parameter's terms (the
     * same sums as the loops below, which finish the block) */
    typedef double v4d __attribute__((vector_size(32)));
    int qe = q;
    while (qe < end && t[qe].par == par) qe++;
    for (; rr0 + 16 <= nb; rr0 += 16) {
      v4d a0 = {0.0, 0.0, 0.0, 0.0}, a1 = a0, a2 = a0, a3 = a0;
      for (int q2 = q; q2 < qe; q2++) {
        const double *restrict g = gvb + (size_t) t[q2].idx * Bd + rr0;
        const v4d x = {t[q2].x, t[q2].x, t[q2].x, t[q2].x};
        v4d g0, g1, g2, g3;
        memcpy(&g0, g, sizeof g0);
        memcpy(&g1, g + 4, sizeof g1);
        memcpy(&g2, g + 8, sizeof g2);
        memcpy(&g3, g + 12, sizeof g3);
        if (t[q2].lv < 0) {
          a0 += x * g0;
          a1 += x * g1;
          a2 += x * g2;
          a3 += x * g3;
        } else {
          const double *restrict et = etab + (size_t) t[q2].lv * Bd + rr0;
          v4d e0, e1, e2, e3;
          memcpy(&e0, et, sizeof e0);
          memcpy(&e1, et + 4, sizeof e1);
          memcpy(&e2, et + 8, sizeof e2);
          memcpy(&e3, et + 12, sizeof e3);
          a0 += x * g0 * e0;
          a1 += x * g1 * e1;
          a2 += x * g2 * e2;
          a3 += x * g3 * e3;
        }
      }
      memcpy(acc + rr0, &a0, sizeof a0);
      memcpy(acc + rr0 + 4, &a1, sizeof a1);
      memcpy(acc + rr0 + 8, &a2, sizeof a2);
      memcpy(acc + rr0 + 12, &a3, sizeof a3);
    }
#endif
    for (int rr = rr0; rr < nb; rr++) acc[rr] = 0.0;
    for (; q < end && t[q].par == par; q++) {
      const double x = t[q].x, *restrict g = gvb + (size_t) t[q].idx * Bd;
      if (t[q].lv < 0) {
ICLV_SIMD
        for (int rr = rr0; rr < nb; rr++) acc[rr] += x * g[rr];
      } else {
        const double *restrict et = etab + (size_t) t[q].lv * Bd;
ICLV_SIMD
        for (int rr = rr0; rr < nb; rr++) acc[rr] += x * g[rr] * et[rr];
      }
    }
    for (int rr = 0; rr < nb; rr++)
      if (wb[rr] != 0.0) G[(size_t) rr * ldg + par] += acc[rr];
  }
}


/* The mixed block (parameters x structural terms) of a block of nb draws
 * of a model whose d eta / d phi depends on the draw, summed over the
 * draws: HpS (P, S) += sum_rr w D_rr[k, s] Hpe_rr[p, k], as fixed-order
 * dot products over the block (dot4) with wD (K, S, Bd) = w D of each
 * draw (0 for a skipped one), for the pairs (k, s) that some draw of the
 * block has non-zero (dz (K, S) flags, reset here):
 *   - the indicators' rows, from hb (nhr, Bd) (hr_ptr, hr_idx: hess_rows);
 *   - the utility parameters, for each carried LV k = kc[a]: Hpe_rr[u, k]
 *     = the sum over u's terms t (n0 without an LV, then nl with, each
 *     group by parameter, as flush_terms) of x_t HL_k (times eta_lv for an
 *     LV term), plus x_t gV for a term of LV k, from hlb (nkc, J Tm, Bd)
 *     (choice_lv_hl), gvb (J Tm, Bd) and etab (K, Bd); acc (Bd) scratch. */
static void fold_block(const iclv_fast_dims *fd, const term_e *t, int n0, int nl, const int *kc,
                       int nkc, const int *hr_ptr, const int *hr_idx, const double *hb,
                       const double *hlb, const double *gvb, const double *etab,
                       const double *wD, int *dz, int nb, double *restrict acc, double *HpS) {
  const int P = fd->P, K = fd->K, S = fd->S, Bd = fd->B;
  const size_t JT = (size_t) fd->J * fd->Tmax;
  for (int k = 0; k < K; k++) {
    const int q0 = hr_ptr[k], q1 = hr_ptr[k + 1];
    if (q0 == q1) continue;
    for (int s = 0; s < S; s++) {
      if (!dz[k * S + s]) continue;
      const double *wv = wD + ((size_t) k * S + s) * Bd;
      double *col = HpS + (size_t) P * s;
      for (int q = q0; q < q1; q += 4) {
        double d4[4];
        const int m4 = q1 - q < 4 ? q1 - q : 4;
        dot4_many(wv, hb + (size_t) q * Bd, (size_t) Bd, m4, nb, d4);
        for (int jj = 0; jj < m4; jj++) col[hr_idx[q + jj]] += d4[jj];
      }
    }
  }
  for (int a = 0; a < nkc; a++) {
    const int k = kc[a];
    int any = 0;
    for (int s = 0; s < S; s++) any |= dz[k * S + s];
    if (!any) continue;
    const double *hl = hlb + (size_t) a * JT * Bd;
    for (int q = 0; q < n0 + nl;) {
      const int par = t[q].par, end = q < n0 ? n0 : n0 + nl;
      for (int rr = 0; rr < nb; rr++) acc[rr] = 0.0;
      for (; q < end && t[q].par == par; q++) {
        const double x = t[q].x, *restrict g = hl + (size_t) t[q].idx * Bd;
        if (t[q].lv < 0) {
ICLV_SIMD
          for (int rr = 0; rr < nb; rr++) acc[rr] += x * g[rr];
        } else {
          const double *restrict et = etab + (size_t) t[q].lv * Bd;
ICLV_SIMD
          for (int rr = 0; rr < nb; rr++) acc[rr] += x * g[rr] * et[rr];
          if (t[q].lv == k) {
            const double *restrict gv = gvb + (size_t) t[q].idx * Bd;
ICLV_SIMD
            for (int rr = 0; rr < nb; rr++) acc[rr] += x * gv[rr];
          }
        }
      }
      for (int s = 0; s < S; s++)
        if (dz[k * S + s]) HpS[par + (size_t) P * s] += dot4(wD + ((size_t) k * S + s) * Bd, acc, nb);
    }
  }
  for (int i = 0; i < K * S; i++) dz[i] = 0;
}

/* An MNL row's probabilities over a block of nb draws from its d log P /
 * dV: pv (J, Bd) = y - gV, gV of row i in gvb (J Tm, Bd), y its choice. */
static ICLV_FORCE_INLINE void row_probs(const iclv_fast_dims *fd, int i, int y, const double *gvb,
                                        int nb, double *restrict pv) {
  const int J = fd->J, Tm = fd->Tmax, Bd = fd->B;
  for (int j = 0; j < J; j++) {
    const double *restrict g = gvb + ((size_t) j * Tm + i) * Bd;
    double *restrict pj = pv + (size_t) j * Bd;
    const double yj = j == y ? 1.0 : 0.0;
    ICLV_SIMD
    for (int rr = 0; rr < nb; rr++) pj[rr] = yj - g[rr];
  }
}

/* The fast rows' part of the weighted sums G0 and M (iclv_fast_hessian)
 * over a block of nb draws: for each row i with tsafe (every row with all:
 * hess_block_mnl's explicit rows), from the block's gV
 * (gvb (J Tm, Bd)) and LVs (etab (K, Bd)) with the weights fb (0 for a
 * draw whose rows were summed one by one, or skipped): G0 += sum fb gV,
 * and for each f = 1, eta_k, eta_k eta_l (carried LVs) over the lower
 * triangle M_f += sum fb f HV, where a fast row's HV = p p' - diag(p) with
 * p_j = y_j - gV_j the MNL probabilities. As they sum to 1, each row of HV
 * sums to 0: HV_jj = -sum_{j2 != j} p_j p_j2. So only the products
 * q = p_j p_j2 (j2 < j) are summed, as dot products with the weights fb f,
 * and the diagonal is minus the sum of its row's others (this block's).
 * Scratch fr: p (J, Bd), q (J (J - 1) / 2, Bd), the weights fb f
 * (1 + Ku + Ku^2, Bd), the diagonal (J). The same sums as the draw-by-draw
 * ones, in another order (and the diagonal from the identity). */
ICLV_CLONES static void flush_rows(const iclv_model *m, const iclv_fast_dims *fd, int n,
                                   iclv_fast_ws *ws, const double *gvb, const double *etab,
                                   const double *fb, int Bd, int nb, uint64_t lvmask, int all,
                                   double *restrict fr) {
  const int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  const size_t JJ = (size_t) J * J, NQ = (size_t) J * (J - 1) / 2;
  double *restrict pv = fr, *restrict qv = pv + (size_t) J * Bd, *restrict wf = qv + NQ * Bd;
  double *restrict dg = wf + (size_t) (1 + Ku + Ku * Ku) * Bd;
  /* the weights of each f, once per block: row 0 fb, row 1 + k fb eta_k,
   * row 1 + Ku + k Ku + l fb eta_k eta_l (rows of LVs not carried unused) */
  ICLV_SIMD
  for (int rr = 0; rr < nb; rr++) wf[rr] = fb[rr];
  for (int k = 0; k < Ku; k++) {
    if (!lv_carried(lvmask, k)) continue;
    const double *restrict ek = etab + (size_t) k * Bd;
    double *restrict w1 = wf + (size_t) (1 + k) * Bd;
    ICLV_SIMD
    for (int rr = 0; rr < nb; rr++) w1[rr] = fb[rr] * ek[rr];
    for (int l = 0; l < Ku; l++) {
      if (!lv_carried(lvmask, l)) continue;
      const double *restrict el = etab + (size_t) l * Bd;
      double *restrict w2 = wf + (size_t) (1 + Ku + k * Ku + l) * Bd;
      ICLV_SIMD
      for (int rr = 0; rr < nb; rr++) w2[rr] = w1[rr] * el[rr];
    }
  }
  for (int i = 0; i < T; i++) {
    if (!all && ws->tsafe[i] == 0.0) continue;
    const int y = m->y[t0 + i];
    row_probs(fd, i, y, gvb, nb, pv);
    /* (G0's column sums four alternatives at a time: gV_j of row i are Tm
     * Bd apart) */
    for (int j = 0; j < J; j += 4) {
      double d4[4];
      const int nj = J - j < 4 ? J - j : 4;
      dot4_many(fb, gvb + ((size_t) j * Tm + i) * Bd, (size_t) Tm * Bd, nj, nb, d4);
      for (int jj = 0; jj < nj; jj++) ws->G0[(size_t) (j + jj) * Tm + i] += d4[jj];
    }
    if (fd->row_mult && m->mult_par[t0 + i] >= 0)
      /* (a row with a scale: G1, iclv_fast_hessian) */
      for (int k = 0; k < Ku; k++) {
        if (!lv_carried(lvmask, k)) continue;
        const double *restrict w1 = wf + (size_t) (1 + k) * Bd;
        for (int j = 0; j < J; j++)
          ws->G1[((size_t) i * J + j) * Ku + k] += dot4(w1, gvb + ((size_t) j * Tm + i) * Bd, nb);
      }
    {
      double *restrict q = qv;
      for (int j = 1; j < J; j++)
        for (int j2 = 0; j2 < j; j2++, q += Bd) {
          const double *restrict pj = pv + (size_t) j * Bd, *restrict pk = pv + (size_t) j2 * Bd;
          ICLV_SIMD
          for (int rr = 0; rr < nb; rr++) q[rr] = pj[rr] * pk[rr];
        }
    }
    for (int f = 0; f < 1 + Ku + Ku * Ku; f++) {
      double *Mf;
      if (f == 0) {
        Mf = ws->M0 + (size_t) i * JJ;
      } else if (f <= Ku) {
        if (!lv_carried(lvmask, f - 1)) continue;
        Mf = ws->M1 + ((size_t) i * Ku + (f - 1)) * JJ;
      } else {
        int k = (f - 1 - Ku) / Ku, l = (f - 1 - Ku) % Ku;
        if (!lv_carried(lvmask, k) || !lv_carried(lvmask, l)) continue;
        Mf = ws->M2 + (((size_t) i * Ku + k) * Ku + l) * JJ;
      }
      const double *restrict wv = wf + (size_t) f * Bd;
      for (int j = 0; j < J; j++) dg[j] = 0.0;
      /* the pairs' dots four at a time (q in qv's order) */
      double d4[4];
      size_t qi = 0;
      for (int j = 1; j < J; j++)
        for (int j2 = 0; j2 < j; j2++, qi++) {
          if (qi % 4 == 0)
            dot4_many(wv, qv + qi * Bd, (size_t) Bd, NQ - qi < 4 ? (int) (NQ - qi) : 4, nb, d4);
          const double d = d4[qi % 4];
          Mf[(size_t) j * J + j2] += d;
          dg[j] -= d;
          dg[j2] -= d;
        }
      for (int j = 0; j < J; j++) Mf[(size_t) j * J + j] += dg[j];
    }
  }
}

/* The choice rows of the Hessian pass for a block of nb draws starting at
 * draw r0, for an individual whose LV coefficients are row-invariant
 * (ws->rowinv) and whose rows are all fast (tsafe): exactly draw_choice's
 * arithmetic, a block of draws at a time (draws innermost). For each draw b
 * it sets fastb[b] (draw_choice's fastd) and, where 1, the draw's gV into
 * column b of gvb (J Tm, Bd) and d l / d eta (Ku) into getab (Ku, Bd).
 * eta (K) of draw b is E_b + cst. Where the LL pass's block was implicit
 * (ws->hU's flag), its u and 1 / S_t are reused (every draw fast, the same
 * values). Scratch: A, U, CS (J, Bd) (ws->bU), amax, amin (Bd). */
ICLV_CLONES static void hess_block_choice(const iclv_model *m, const iclv_fast_dims *fd, int n,
                                          const double *E, int r0, int nb, iclv_fast_ws *ws,
                                          double *restrict gvb, double *restrict getab,
                                          double *restrict fastb, double *restrict amax,
                                          double *restrict amin) {
  const int J = fd->J, Ku = fd->Ku, K = fd->K, Tm = fd->Tmax, Bd = fd->B;
  const int t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  double *restrict A = ws->bU, *restrict U = ws->bU + (size_t) J * Bd;
  double *restrict CS = ws->bU + (size_t) 2 * J * Bd;
  const double *hU = ws->hU;
  double *hI, *hF;
  hu_parts(fd, ws->hU, &hI, &hF);
  if (hF[r0 / Bd] != 0.0) {
    /* the LL pass's block was implicit: every draw fast, u and 1 / S_t as
     * it computed them (the same arithmetic as below) */
    const int R = fd->R;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) fastb[b] = 1.0;
    for (int j = 0; j < J; j++) {
      double *restrict cs = CS + (size_t) j * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) cs[b] = 0.0;
    }
    for (int i = 0; i < T; i++) {
      const double *restrict inv = hI + (size_t) i * R + r0;
      const int y = m->y[t0 + i];
      for (int j = 0; j < J; j++) {
        const double e = ws->Eu[(size_t) j * Tm + i];
        const double *restrict u = hU + (size_t) j * R + r0;
        double *restrict g = gvb + ((size_t) j * Tm + i) * Bd;
        double *restrict cs = CS + (size_t) j * Bd;
        if (j == y) {
          ICLV_SIMD
          for (int b = 0; b < nb; b++) {
            const double gv = e * u[b] * -inv[b] + 1.0;
            g[b] = gv;
            cs[b] += gv;
          }
        } else {
          ICLV_SIMD
          for (int b = 0; b < nb; b++) {
            const double gv = e * u[b] * -inv[b];
            g[b] = gv;
            cs[b] += gv;
          }
        }
      }
    }
  } else {
  for (int b = 0; b < nb; b++) {
    amax[b] = -INFINITY;
    amin[b] = INFINITY;
  }
  /* a_jb = L_j eta_b (summed from 0 in k order, as draw_choice) */
  for (int j = 0; j < J; j++) {
    double *restrict a = A + (size_t) j * Bd;
    for (int b = 0; b < nb; b++) {
      double sa = 0.0;
      for (int k = 0; k < Ku; k++)
        sa += ws->L[j * Ku + k] * (E[(size_t) (r0 + b) * K + k] + ws->cst[k]);
      a[b] = sa;
      if (sa > amax[b]) amax[b] = sa;
      if (sa < amin[b]) amin[b] = sa;
    }
  }
  ICLV_SIMD
  for (int b = 0; b < nb; b++) fastb[b] = amax[b] - amin[b] <= FAST_MNL_RANGE ? 1.0 : 0.0;
  for (int j = 0; j < J; j++) {
    const double *restrict a = A + (size_t) j * Bd;
    double *restrict u = U + (size_t) j * Bd;
    /* a - amax is in [-FAST_MNL_RANGE, 0] where fastb: fast_exp's range */
    ICLV_SIMD
    for (int b = 0; b < nb; b++) u[b] = fastb[b] != 0.0 ? a[b] - amax[b] : 0.0;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) u[b] = fast_exp_core(u[b]) * fastb[b]; /* exactly 0 where not fastb */
  }
  for (int j = 0; j < J; j++) {
    double *restrict cs = CS + (size_t) j * Bd;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) cs[b] = 0.0;
  }
  for (int i = 0; i < T; i++) {
    /* P_tj = E_tj u_j / sum_j E_tj u_j; gV = y - P (draw_choice's order) */
    double *restrict inv = amin; /* amin is not needed any more */
    ICLV_SIMD
    for (int b = 0; b < nb; b++) inv[b] = 0.0;
    for (int j = 0; j < J; j++) {
      const double e = ws->Eu[(size_t) j * Tm + i];
      const double *restrict u = U + (size_t) j * Bd;
      double *restrict g = gvb + ((size_t) j * Tm + i) * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        const double v = e * u[b];
        g[b] = v;
        inv[b] += v;
      }
    }
    ICLV_SIMD
    for (int b = 0; b < nb; b++) inv[b] = 1.0 / inv[b];
    const int y = m->y[t0 + i];
    for (int j = 0; j < J; j++) {
      double *restrict g = gvb + ((size_t) j * Tm + i) * Bd;
      double *restrict cs = CS + (size_t) j * Bd;
      /* (the chosen alternative's loop apart: each vectorises) */
      if (j == y) {
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          const double gv = g[b] * -inv[b] + 1.0;
          g[b] = gv;
          cs[b] += gv;
        }
      } else {
        ICLV_SIMD
        for (int b = 0; b < nb; b++) {
          const double gv = g[b] * -inv[b];
          g[b] = gv;
          cs[b] += gv;
        }
      }
    }
  }
  }
  /* d l / d eta_k = sum_j cs_j L_jk (from 0, in j order) */
  for (int k = 0; k < Ku; k++) {
    double *restrict ge = getab + (size_t) k * Bd;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) ge[b] = 0.0;
    for (int j = 0; j < J; j++) {
      const double l = ws->L[j * Ku + k];
      const double *restrict cs = CS + (size_t) j * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) ge[b] += cs[b] * l;
    }
  }
}

/* d l / d eta of a block of nb draws: getab (Ku, Bd) += gV_j L_jk over the
 * carried LVs, for alternative j of a row (Lj: its Ku LV coefficients; gv
 * (nb): its gV). */
static ICLV_FORCE_INLINE void block_geta(const iclv_fast_dims *fd, const double *Lj, const int *kc,
                                         int nkc, const double *gv, int nb, double *getab) {
  for (int a = 0; a < nkc; a++) {
    const double l = Lj[kc[a]];
    double *restrict ge = getab + (size_t) kc[a] * fd->B;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) ge[b] += gv[b] * l;
  }
}

/* Row i's part of the LV-LV block over a block of nb draws from its HV L
 * (hlb (nkc, J, Tm, Bd)): heeb (nkc, nkc, Bd) += sum_j L_jk (HV L)_jl over
 * the carried LVs, in choice_lv_hl's order (alternatives, then LVs). L (J,
 * Ku) the row's LV coefficients. */
static ICLV_FORCE_INLINE void block_hee(const iclv_fast_dims *fd, int i, const double *L,
                                        const int *kc, int nkc, const double *hlb, int nb,
                                        double *heeb) {
  const int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, Bd = fd->B;
  for (int j = 0; j < J; j++)
    for (int a = 0; a < nkc; a++) {
      const double lk = L[j * Ku + kc[a]];
      if (lk == 0.0) continue;
      for (int c = 0; c < nkc; c++) {
        const double *restrict hl = hlb + (((size_t) c * J + j) * Tm + i) * Bd;
        double *restrict he = heeb + ((size_t) a * nkc + c) * Bd;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) he[b] += lk * hl[b];
      }
    }
}

/* The binary probit rows of the Hessian pass for a block of nb draws from
 * r0 (fd->pblk), from the LL pass's gV_0 of each row and draw and its LVs
 * (ws->hU's hPg, hEta): the same gV as the LL pass's (its score) and, with
 * lam = sg gV_0 and x = sg (V_0 - V_1) (V = W + L eta in the LL pass's
 * order), d2 log P / dV_0^2 = f2 = iclv_inv_mills_deriv(x, lam), so that
 * HV = f2 [1 -1; -1 1] (iclv_choice_link's; 0 for a row with one
 * alternative available, whose gV_0 is 0). Into gvb (J Tm, Bd) gV, hvb (Tm,
 * Bd) f2, getab (Ku, Bd) d l / d eta (draw_choice's order: rows, then
 * alternatives, from 0); with dvar (LV-on-LV terms) also HV L into hlb and
 * sum_j L_jk (HV L)_jl into heeb (nkc, nkc, Bd), choice_lv_hl's arithmetic.
 * tmp (2 Bd) scratch. */
ICLV_CLONES static void hess_block_probit(const iclv_model *m, const iclv_fast_dims *fd, int n,
                                          int r0, int nb, const iclv_fast_ws *ws, const int *kc,
                                          int nkc, int dvar, double *restrict gvb,
                                          double *restrict getab, double *restrict hvb,
                                          double *restrict hlb, double *restrict heeb,
                                          double *restrict tmp) {
  const int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, Bd = fd->B, R = fd->R;
  const int t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  double *hPg, *hEta;
  hp_parts(fd, ws->hU, &hPg, &hEta);
  double *restrict xv = tmp, *restrict ya = tmp + Bd;
  for (int k = 0; k < Ku; k++)
    for (int b = 0; b < nb; b++) getab[(size_t) k * Bd + b] = 0.0;
  if (dvar)
    for (size_t c = 0; c < (size_t) nkc * nkc * Bd; c++) heeb[c] = 0.0;
  for (int i = 0; i < T; i++) {
    const int yt = m->y[t0 + i];
    const double sg = yt == 0 ? 1.0 : -1.0;
    const double *W = ws->W + (size_t) i * J, *L = ws->L + (size_t) i * J * Ku;
    const double *restrict g0 = hPg + (size_t) i * R + r0;
    double *restrict gv0 = gvb + (size_t) i * Bd, *restrict gv1 = gvb + ((size_t) Tm + i) * Bd;
    double *restrict hv = hvb + (size_t) i * Bd;
    /* V_0, V_1 as block_choice forms them */
    ICLV_SIMD
    for (int b = 0; b < nb; b++) {
      xv[b] = W[0];
      ya[b] = W[1];
    }
    for (int k = 0; k < Ku; k++) {
      const double l0 = L[k], l1 = L[Ku + k];
      if (l0 == 0.0 && l1 == 0.0) continue;
      const double *restrict eb = hEta + (size_t) k * R + r0;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        xv[b] += l0 * eb[b];
        ya[b] += l1 * eb[b];
      }
    }
    for (int b = 0; b < nb; b++) {
      const double x = sg * (xv[b] - ya[b]), g = g0[b];
      gv0[b] = g;
      gv1[b] = -g;
      hv[b] = iclv_inv_mills_deriv(x, sg * g);
    }
    for (int j = 0; j < J; j++) block_geta(fd, L + (size_t) j * Ku, kc, nkc, j == 0 ? gv0 : gv1, nb, getab);
    if (!dvar) continue;
    for (int a = 0; a < nkc; a++) {
      const double l0 = L[kc[a]], l1 = L[Ku + kc[a]];
      double *restrict h0 = hlb + (((size_t) a * J) * Tm + i) * Bd;
      double *restrict h1 = hlb + (((size_t) a * J + 1) * Tm + i) * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) {
        h0[b] = hv[b] * l0 + -hv[b] * l1;
        h1[b] = -hv[b] * l0 + hv[b] * l1;
      }
    }
    block_hee(fd, i, L, kc, nkc, hlb, nb, heeb);
  }
}

/* The explicit MNL rows of the Hessian pass for a block of nb draws from r0
 * (fd->exblk, an individual without row-invariant LV coefficients), from
 * the LL pass's gV of each row, alternative and draw (ws->hU's hGv): into
 * gvb (J Tm, Bd) gV, getab (Ku, Bd) d l / d eta (draw_choice's order: rows,
 * alternatives, then LVs, from 0); with dvar (LV-on-LV terms) also HV L into
 * hlb and sum_j L_jk (HV L)_jl into heeb (nkc, nkc, Bd) (choice_lv_hl's
 * arithmetic), with HV = p p' - diag(p), p = y - gV the probabilities. The
 * weighted sums M and G0 come at the block's end from gvb (flush_rows, every
 * row). pv (J, Bd) scratch. */
ICLV_CLONES static void hess_block_mnl(const iclv_model *m, const iclv_fast_dims *fd, int n,
                                       int r0, int nb, const iclv_fast_ws *ws, const int *kc,
                                       int nkc, int dvar, double *restrict gvb,
                                       double *restrict getab, double *restrict hlb,
                                       double *restrict heeb, double *restrict pv) {
  const int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, Bd = fd->B, R = fd->R;
  const int t0 = m->row_ptr[n], T = m->row_ptr[n + 1] - t0;
  double *hGv, *hEta;
  hp_parts(fd, ws->hU, &hGv, &hEta);
  for (int k = 0; k < Ku; k++)
    for (int b = 0; b < nb; b++) getab[(size_t) k * Bd + b] = 0.0;
  if (dvar)
    for (size_t c = 0; c < (size_t) nkc * nkc * Bd; c++) heeb[c] = 0.0;
  for (int i = 0; i < T; i++) {
    const double *L = ws->L + (size_t) i * J * Ku;
    const int y = m->y[t0 + i];
    for (int j = 0; j < J; j++) {
      const double *restrict g = hGv + ((size_t) i * J + j) * R + r0;
      double *restrict gv = gvb + ((size_t) j * Tm + i) * Bd;
      memcpy(gv, g, sizeof(double) * (size_t) nb);
      block_geta(fd, L + (size_t) j * Ku, kc, nkc, gv, nb, getab);
    }
    if (!dvar) continue;
    row_probs(fd, i, y, gvb, nb, pv);
    for (int a = 0; a < nkc; a++)
      for (int j = 0; j < J; j++) {
        const double *restrict pj = pv + (size_t) j * Bd;
        double *restrict hl = hlb + (((size_t) a * J + j) * Tm + i) * Bd;
        ICLV_SIMD
        for (int b = 0; b < nb; b++) hl[b] = 0.0;
        for (int j2 = 0; j2 < J; j2++) {
          const double l = L[j2 * Ku + kc[a]];
          const double *restrict pk = pv + (size_t) j2 * Bd;
          if (j2 == j) {
            ICLV_SIMD
            for (int b = 0; b < nb; b++) hl[b] += (-pj[b] + pj[b] * pk[b]) * l;
          } else {
            ICLV_SIMD
            for (int b = 0; b < nb; b++) hl[b] += (0.0 + pj[b] * pk[b]) * l;
          }
        }
      }
    block_hee(fd, i, L, kc, nkc, hlb, nb, heeb);
  }
}

/* The block's probit rows' part of the weighted sums G0 and M (the rows of
 * hess_block_probit): G0_ji += sum_b wb gV_jib, and for each f = 1, eta_k,
 * eta_k eta_l (carried LVs kc) M_f += (sum_b wb f f2_ib) [1 -1; -1 1] in
 * its lower triangle (fixed-order dots). wf ((1 + Ku + Ku^2) Bd) scratch. */
ICLV_CLONES static void flush_probit(const iclv_model *m, const iclv_fast_dims *fd, int n,
                                     iclv_fast_ws *ws, const double *gvb, const double *hvb,
                                     const double *etab, const double *wb, int nb, const int *kc,
                                     int nkc, double *restrict wf) {
  const int J = fd->J, Ku = fd->Ku, Tm = fd->Tmax, Bd = fd->B;
  const int T = m->row_ptr[n + 1] - m->row_ptr[n];
  const size_t JJ = (size_t) J * J;
  ICLV_SIMD
  for (int b = 0; b < nb; b++) wf[b] = wb[b];
  for (int a = 0; a < nkc; a++) {
    const double *restrict ek = etab + (size_t) kc[a] * Bd;
    double *restrict w1 = wf + (size_t) (1 + a) * Bd;
    ICLV_SIMD
    for (int b = 0; b < nb; b++) w1[b] = wb[b] * ek[b];
    for (int c = 0; c < nkc; c++) {
      const double *restrict el = etab + (size_t) kc[c] * Bd;
      double *restrict w2 = wf + (size_t) (1 + nkc + a * nkc + c) * Bd;
      ICLV_SIMD
      for (int b = 0; b < nb; b++) w2[b] = w1[b] * el[b];
    }
  }
  const int nf = 1 + nkc + nkc * nkc;
  for (int i = 0; i < T; i++) {
    double d2[2];
    dot4_many(wb, gvb + (size_t) i * Bd, (size_t) Tm * Bd, 2, nb, d2);
    ws->G0[i] += d2[0];
    ws->G0[(size_t) Tm + i] += d2[1];
    const double *hv = hvb + (size_t) i * Bd;
    for (int f0 = 0; f0 < nf; f0 += 4) {
      double d4[4];
      const int m4 = nf - f0 < 4 ? nf - f0 : 4;
      /* (four weights against one f2: hv * wf, the same products as wf * hv) */
      dot4_many(hv, wf + (size_t) f0 * Bd, (size_t) Bd, m4, nb, d4);
      for (int q = 0; q < m4; q++) {
        const int f = f0 + q;
        double *Mf;
        if (f == 0) {
          Mf = ws->M0 + (size_t) i * JJ;
        } else if (f <= nkc) {
          Mf = ws->M1 + ((size_t) i * Ku + kc[f - 1]) * JJ;
        } else {
          const int a = (f - 1 - nkc) / nkc, c = (f - 1 - nkc) % nkc;
          Mf = ws->M2 + (((size_t) i * Ku + kc[a]) * Ku + kc[c]) * JJ;
        }
        Mf[0] += d4[q];
        Mf[2] += -d4[q];
        Mf[3] += d4[q];
      }
    }
  }
}

/* Dense pieces of the fold of the choice rows' weighted sums
 * (iclv_fast_hessian). M (J, J) row-major is symmetric and held in its
 * lower triangle (M[j J + j2], j2 <= j); dX (J, Pu), dZ (J, Pu), L (J, Ku)
 * row-major (Pu here: the rows' length, padded by the caller). */
#define MSYM(M, j, j2) ((j) >= (j2) ? (M)[(size_t) (j) * J + (j2)] : (M)[(size_t) (j2) * J + (j)])

/* dZ = M dX. */
ICLV_CLONES static void dense_mx(int J, int Pu, const double *M, const double *restrict dX,
                                 double *restrict dZ) {
  for (int j = 0; j < J; j++) {
    double *restrict z = dZ + (size_t) j * Pu;
    for (int c = 0; c < Pu; c++) z[c] = 0.0;
    for (int j2 = 0; j2 < J; j2++) {
      const double mj = MSYM(M, j, j2);
      if (mj == 0.0) continue;
      const double *restrict x2 = dX + (size_t) j2 * Pu;
      ICLV_SIMD
      for (int c = 0; c < Pu; c++) z[c] += mj * x2[c];
    }
  }
}

/* dZ = M dX, then dH (Pu, Pw) += dX' dZ in its lower triangle (row a,
 * columns c <= a): sum_j dX_ja dZ_jc. Rows of dX, dZ, dH have Pw >= Pu
 * entries, a multiple of 4, dX's beyond Pu zero; row a of dH is also
 * written beyond a, to the next multiple of 4 (whole vectors; not read). */
ICLV_CLONES static void dense_xmx(int J, int Pu, int Pw, const double *M,
                                  const double *restrict dX, double *restrict dZ,
                                  double *restrict dH) {
  dense_mx(J, Pw, M, dX, dZ);
  for (int j = 0; j < J; j++) {
    const double *restrict x = dX + (size_t) j * Pw, *restrict z = dZ + (size_t) j * Pw;
    for (int a = 0; a < Pu; a++) {
      const double xa = x[a];
      if (xa == 0.0) continue;
      double *restrict h = dH + (size_t) a * Pw;
      const int ce = (a + 4) / 4 * 4;
      ICLV_SIMD
      for (int c = 0; c < ce; c++) h[c] += xa * z[c];
    }
  }
}

/* ML (J, Ku) = M L. */
static void dense_ml(int J, int Ku, const double *M, const double *L, double *ML) {
  for (int j = 0; j < J; j++)
    for (int l = 0; l < Ku; l++) {
      double acc = 0.0;
      for (int j2 = 0; j2 < J; j2++) acc += MSYM(M, j, j2) * L[j2 * Ku + l];
      ML[(size_t) j * Ku + l] = acc;
    }
}

/* out (Pu) += dX' v, v[j ldv] (J). */
ICLV_CLONES static void dense_xtv(int J, int Pu, const double *restrict dX,
                                  const double *restrict v, int ldv, double *restrict out) {
  for (int j = 0; j < J; j++) {
    const double vj = v[(size_t) j * ldv];
    if (vj == 0.0) continue;
    const double *restrict x = dX + (size_t) j * Pu;
    ICLV_SIMD
    for (int c = 0; c < Pu; c++) out[c] += x[c] * vj;
  }
}
#undef MSYM

void iclv_fast_weights(const double *lr, double lse, int R, double *w) {
  /* fast_exp_core where l - lse is in range (the usual case; vectorises),
   * then exp() for the others (below -708: underflow; NaN) */
  ICLV_SIMD
  for (int r = 0; r < R; r++) {
    const double x = lr[r] - lse;
    w[r] = fast_exp_core(x >= -708.0 && x <= 708.0 ? x : 0.0);
  }
  for (int r = 0; r < R; r++) {
    const double x = lr[r] - lse;
    if (!(x >= -708.0 && x <= 708.0)) w[r] = exp(x);
  }
}

void iclv_fast_hessian(const iclv_model *m, const iclv_fast_dims *fd, const double *theta,
                       int n, const double *E, iclv_pair_ws *pws, iclv_fast_ws *ws,
                       const double *wr, double *G, size_t ldg, double *Hpe_d,
                       double *Hee_d, double *Hn) {
  int R = fd->R, K = fd->K, Ku = fd->Ku, J = fd->J, P = fd->P, Tm = fd->Tmax;
  size_t JJ = (size_t) J * J;
  /* the choice rows from the weighted sums (has_choice; with row
   * multipliers too, their scales as pseudo-terms), or draw by draw through
   * the atoms (atoms: nests, ordered choice, tapes, with or without row
   * multipliers) */
  const int atoms = m->choice_type != ICLV_CHOICE_NONE && fd->ref_choice;
  int has_choice = m->choice_type != ICLV_CHOICE_NONE && !atoms;
  int t0 = m->row_ptr[n], T = has_choice ? m->row_ptr[n + 1] - t0 : 0;
  double *eta = pws->eta, *D = pws->D;
  hess_scratch hs; /* in ws->dX (hess_layout) */
  hess_layout(fd, ws->dX, &hs);
  double *gib = hs.gib, *HD = hs.HD;
  int *ob = hs.ob;
  ws->cnt[ICLV_FAST_CNT_HESS] += 1.0;
  /* W, L, Eu, tsafe, rowinv and oc as the LL pass (for n at theta) set them */
  /* the utility terms with a non-zero attribute, each as (parameter, index
   * of its gV j Tm + i, lv, x): RL by row i and alternative j, those
   * without an LV first (tjr: where each (row, alternative) begins and where
   * its LV terms do); TL the same sorted by parameter, the n0 terms without
   * an LV first, then the nl LV terms (flush_terms) */
  /* tape_w: the tapes' values, gradients and Hessians once (hoist_tapes,
   * order 2): their gradients are pseudo-terms below */
  const double *tcb = (const double *) 0;
  if (fd->tape_w && has_choice) {
    rc_scratch rt;
    rc_layout(fd, ws->rc, &rt);
    hoist_tapes(m, fd, theta, n, pws, &rt, ws, 2);
    tcb = rt.tcb;
  }
  term_e *TL = (term_e *) ws->tl, *RL = TL + (size_t) Tm * fd->NTE;
  int *tcnt = (int *) (ws->tl + 8 * (size_t) Tm * fd->NTE), *tjr = tcnt + P + 1;
  /* With row multipliers (U = s_t V, s_t = sign mu or sign; iclv_model.h)
   * a term's x is s_t x (d U / d theta), and a row with a scale mu has
   * pseudo-terms of mu: d U_j / d mu = sign (W0_j + L0_j eta) (W0, L0 the
   * unscaled parts) is a term without an LV (x = sign W0_j) and one per LV
   * (x = sign L0_jk); d2 U / d mu d theta is added after the draws. */
  int n0 = 0, nl = 0;
  for (int i = 0; i < T; i++) {
    const int t = t0 + i;
    const double *xr = m->X + (long) t * m->n_xcol;
    const double st = m->n_mult > 0 ? iclv_row_mult(m, theta, t) : 1.0;
    const int pmu = m->n_mult > 0 ? m->mult_par[t] : -1;
    int *tj = tjr + (size_t) i * (2 * J + 1), *tjl = tj + J + 1;
    for (int j = 0; j < J; j++) {
      tj[j] = n0 + nl;
      for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) tjl[j] = n0 + nl;
        for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
          if ((m->ut_lv[u] >= 0) != pass) continue;
          double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
          if (x == 0.0) continue;
          term_e *e = RL + (n0 + nl);
          e->par = m->ut_par[u];
          e->idx = j * Tm + i;
          e->lv = m->ut_lv[u];
          e->x = m->n_mult > 0 ? st * x : x;
          if (pass == 0) n0++;
          else nl++;
        }
        if (tcb && pass == 0) {
          /* the tape's gradient: terms without an LV (d V_j / d theta_v) */
          const double *te = tcb + ((size_t) i * m->n_alt + j) * fd->tape_E;
          for (int v = m->tape_var_ptr[j]; v < m->tape_var_ptr[j + 1]; v++) {
            const double x = te[1 + v - m->tape_var_ptr[j]];
            if (x == 0.0) continue;
            term_e *e = RL + (n0 + nl);
            e->par = m->tape_var[v];
            e->idx = j * Tm + i;
            e->lv = -1;
            e->x = x;
            n0++;
          }
        }
        if (pmu < 0) continue;
        for (int k = pass == 0 ? -1 : 0; k < (pass == 0 ? 0 : Ku); k++) {
          /* the pseudo-term of mu for LV k (-1: the part without an LV) */
          double c = 0.0;
          for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++)
            if (m->ut_lv[u] == k) c += theta[m->ut_par[u]] * (m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0);
          if (c == 0.0) continue;
          term_e *e = RL + (n0 + nl);
          e->par = pmu;
          e->idx = j * Tm + i;
          e->lv = k;
          e->x = m->mult_sign[t] * c;
          if (pass == 0) n0++;
          else nl++;
        }
      }
    }
    tj[J] = n0 + nl;
  }
  sort_terms(RL, n0 + nl, n0, TL, tcnt, P);
  /* the utility parameters' part of each draw's gradient is summed over
   * the term lists a block of draws at a time (flush_terms), draws
   * innermost: gvb (J Tm, B) the block's gV, etab (K, B) its LVs, wb (B)
   * its weights (0: a skipped draw), acc (B) */
  const int Bd = fd->B;
  double *gvb = ws->bGv, *etab = ws->bEta, *wb = ws->bS, *acc = ws->bS + Bd, *fb = ws->bS + 2 * Bd;
  int rb0 = 0;
  /* LVs that some utility term carries (bit k; LVs from 64 on are taken as
   * carried): the weighted sums M1, M2 of the others are never read */
  uint64_t lvmask = 0;
  for (int u = 0; u < fd->NU; u++)
    if (m->ut_lv[u] >= 0) lvmask |= m->ut_lv[u] < 64 ? (uint64_t) 1 << m->ut_lv[u] : 0;
#define LV_CARRIED(k) lv_carried(lvmask, k)
  /* the carried LVs below Ku, in order */
  int *kc = hs.kc, nkc = 0;
  for (int k = 0; k < Ku; k++)
    if (LV_CARRIED(k)) kc[nkc++] = k;
  /* with LV-on-LV terms (draw by draw): the rows of Hpe_d that can be
   * written, the only ones zeroed and folded */
  int *hr_ptr = hs.hr_ptr, *hr_idx = hs.hr_idx, *hmark = hs.mark, *dnz = hs.nz, *dz = hs.dz;
  /* (and a block of draws' rows of those, hb, the choice rows' HV L, hlb,
   * and w D, in ws->bD (K, S, Bd): fold_block) */
  double *hrb = hs.hb, *hlb = hs.hlb, *wD = ws->bD;
  /* d eta / d phi depends on the draw (LV-on-LV terms): the LV blocks are
   * folded draw by draw (as the reference does), the choice rows' included */
  int dvar = !fd->hess_ok;
  double *D2 = dvar && !fd->d2_zero ? pws->D2 : (double *) 0;
  if (dvar) zero(ws->HpS, (size_t) P * fd->S);
  zero(ws->G0, (size_t) Tm * J);
  /* (rows with a scale: G1 (T, J, Ku) the weighted sums of gV eta_k, for
   * d2 U / d mu d theta of the LV terms) */
  if (fd->row_mult) zero(ws->G1, (size_t) T * J * Ku);
  zero(ws->M0, (size_t) T * JJ);
  zero(ws->M1, (size_t) T * Ku * JJ);
  zero(ws->M2, (size_t) T * Ku * Ku * JJ);
  zero(ws->Hpe, (size_t) P * K);
  zero(ws->Hee, (size_t) K * K);
  /* Hpe_d and Hee_d start at zero; draw by draw (dvar) only Hpe_d's rows
   * in hr_idx are zeroed again, the only ones its atoms write */
  zero(Hpe_d, (size_t) P * K);
  zero(Hee_d, (size_t) K * K);
  if (dvar) {
    hess_rows(m, hr_ptr, hr_idx, hmark);
    for (int i = 0; i < K * fd->S; i++) dz[i] = 0;
  }
  /* without LV-on-LV terms eta = e + c and D are as in the LL pass's
   * (structural_mean), once */
  if (!dvar) structural_mean(m, theta, n, ws, D);
  /* row-invariant LV coefficients and every row fast: the choice rows of a
   * block of draws at once (hess_block_choice), draw_choice only for the
   * draws outside its guard */
  int blockch = has_choice && !dvar && ws->rowinv && T > 0;
  for (int i = 0; i < T && blockch; i++)
    if (ws->tsafe[i] == 0.0) blockch = 0;
  double *fastb = ws->bS + 3 * Bd, *getab = ws->bGe;
  /* a binary probit: its rows a block of draws at a time (hess_block_probit,
   * flush_probit) */
  const int blockpr = has_choice && fd->pblk && T > 0;
  /* explicit MNL rows (no row-invariant LV coefficients): a block of draws
   * at a time too (hess_block_mnl, flush_rows over every row) */
  const int blockex = has_choice && fd->exblk && !ws->rowinv && T > 0;
  double *hvb = hs.hvb, *heeb = hs.heeb;
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.Hpp = Hn;
  h.Hpe = Hpe_d;
  h.Hee = Hee_d;
  h.C = (double *) 0;
  h.Cp = (int *) 0;
  h.nCp = 0;
  /* the rows through the atoms: their outer products dV' C dV summed in
   * rs.Hc over the coordinates the utilities can touch (atom_outer) */
  rc_scratch rs;
  int nco = 0;
  if (atoms) {
    rc_layout(fd, ws->rc, &rs);
    const int *crow = choice_params(m, fd, ws);
    for (int k = 0; k < K; k++) rs.coord[nco++] = P + k;
    for (int q = 0; q < ws->nrc; q++) rs.coord[nco++] = crow[q];
    for (int c = 0; c < P + K; c++) rs.cinv[c] = -1;
    for (int a = 0; a < nco; a++) rs.cinv[rs.coord[a]] = a;
    zero(rs.Hc, (size_t) nco * nco);
    zero(rs.gf, (size_t) P + K);
    if (fd->tapes_fixed) hoist_tapes(m, fd, theta, n, pws, &rs, ws, 2);
    if (fd->atoms_affine)
      zero(rs.S, (size_t) (m->row_ptr[n + 1] - m->row_ptr[n]) * (1 + Ku + (size_t) Ku * Ku) * fd->Lc *
                     fd->Lc);
  }
  for (int r = 0; r < R; r++) {
    double w = wr[r];
    const int rr = r - rb0;
    wb[rr] = w;
    if (rr == 0)
      hess_block_indicators(m, fd, theta, n, E, r, R - r < Bd ? R - r : Bd, wr + r, ws, Hn, ob,
                            gib, dvar);
    if (blockch && rr == 0)
      hess_block_choice(m, fd, n, E, r, R - r < Bd ? R - r : Bd, ws, gvb, getab, fastb,
                        ws->bS + 4 * Bd, ws->bS + 5 * Bd);
    if (blockpr && rr == 0)
      hess_block_probit(m, fd, n, r, R - r < Bd ? R - r : Bd, ws, kc, nkc, dvar, gvb, getab, hvb,
                        hlb, heeb, ws->bS + 6 * Bd);
    if (blockex && rr == 0)
      hess_block_mnl(m, fd, n, r, R - r < Bd ? R - r : Bd, ws, kc, nkc, dvar, gvb, getab, hlb, heeb,
                     ws->fr);
    if (w == 0.0) {
      if (has_choice) {
        fb[rr] = 0.0;
        for (size_t c = 0; c < (size_t) J * Tm; c++) gvb[c * Bd + rr] = 0.0;
        for (int k = 0; k < K; k++) etab[(size_t) k * Bd + rr] = 0.0;
      }
      if (blockpr)
        for (int i = 0; i < T; i++) hvb[(size_t) i * Bd + rr] = 0.0; /* (flush_probit's) */
      if (dvar) {
        /* (fold_block reads the block's columns: zeros) */
        for (size_t c = 0; c < (size_t) K * fd->S; c++) wD[c * Bd + rr] = 0.0;
        for (int q = 0; q < hr_ptr[K]; q++) hrb[(size_t) q * Bd + rr] = 0.0;
        for (size_t c = 0; c < (size_t) nkc * J * Tm && has_choice; c++) hlb[c * Bd + rr] = 0.0;
      }
      goto next_draw;
    }
    if (dvar) {
      iclv_structural(m, theta, n, E + (size_t) r * K, eta, D, D2);
      for (int c = 0; c < K * fd->S; c++) {
        wD[(size_t) c * Bd + rr] = w * D[c];
        dz[c] |= D[c] != 0.0;
      }
    } else {
      for (int k = 0; k < K; k++) eta[k] = E[(size_t) r * K + k] + ws->cst[k];
    }
    /* this draw's extended gradient, formed in its row of G (ldg >= P + K) */
    double *restrict gtmp = G + (size_t) r * ldg;
    zero(gtmp, (size_t) P + K);
    if (dvar) {
      for (int k = 0; k < K; k++)
        for (int q = hr_ptr[k]; q < hr_ptr[k + 1]; q++) Hpe_d[hr_idx[q] + (size_t) P * k] = 0.0;
      zero(Hee_d, (size_t) K * K);
    }
    h.w = w;
    /* without LV-on-LV terms Hpe_d and Hee_d are zero here, and stay so
     * unless a term writes into them (hd) */
    int hd = 0;
    for (int k = 0; k < K; k++) gtmp[P + k] = gib[(size_t) k * Bd + rr];
    for (int o = m->obs_ptr[n]; o < m->obs_ptr[n + 1]; o++) {
      const int io = o - m->obs_ptr[n];
      if (ob[(size_t) io * 5] != 0) {
        /* summed over the block (hess_block_indicators), which left this
         * draw's d log f / d(a, b) in Fst: its gradient, as hess_indicator */
        const int *obi = ob + (size_t) io * 5, pq = obi[3], lv = obi[4];
        const double *fs = ws->Fst + (size_t) io * 2 * R + r;
        const double fa = fs[0], fb = fs[R];
        if (obi[1] >= 0) gtmp[obi[1]] += fa;
        if (obi[2] >= 0) gtmp[obi[2]] += fb;
        gtmp[pq] += -(fa + fb) * eta[lv];
        /* (d l / d eta: the block's sums over these observations, gib) */
        continue;
      }
      hd |= hess_indicator(m, theta, eta, o, ws->oc + (size_t) (o - m->obs_ptr[n]) * 5,
                           ws->Fst + (size_t) (o - m->obs_ptr[n]) * 2 * R + r, (size_t) R, gtmp,
                           &h, dvar ? (double *) 0 : ws->Hpe, ws->Hee);
    }
    if (atoms) {
      /* the choice rows as the reference does: weighted into Hn, their LV
       * blocks into Hpe_d and Hee_d (folded below: hd) */
      if (!fd->tapes_fixed) iclv_tapes_invalidate(m, pws->V);
      h.C = rs.C;
      h.Cp = rs.Cp;
      const size_t SZ = (1 + Ku + (size_t) Ku * Ku) * fd->Lc * fd->Lc;
      for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++) {
        const int i = t - m->row_ptr[n];
        const double *tc = row_tapes(m, fd, theta, eta, i, t, pws, &rs, 2);
        zero(rs.C, (size_t) fd->Lc * fd->Lc);
        /* (affine: every draw's C with the same extra rows) */
        h.nCp = fd->atoms_affine ? row_extras(m, t, rs.Cp) : 0;
        iclv_choice_atom_tc(m, theta, eta, t, pws, tc, gtmp, &h);
        if (fd->atoms_affine) affine_sums(fd, rs.C, eta, w, rs.S + (size_t) i * SZ);
        else atom_outer(m, fd, theta, eta, t, tc, &rs, h.nCp, nco, w);
      }
      h.C = (double *) 0;
      h.Cp = (int *) 0;
      hd = 1;
    }
    if (blockpr || blockex) {
      /* gV, HV (and HV L) already in the block (hess_block_probit,
       * hess_block_mnl); the weighted sums at its end (flush_probit,
       * flush_rows with the weights fb); the LV-LV block now */
      for (int k = 0; k < Ku; k++) gtmp[P + k] += getab[(size_t) k * Bd + rr];
      for (int k = 0; k < K; k++) etab[(size_t) k * Bd + rr] = eta[k];
      fb[rr] = blockex ? w : 0.0;
      if (dvar)
        for (int a = 0; a < nkc; a++)
          for (int c = 0; c < nkc; c++)
            Hee_d[kc[a] + (size_t) K * kc[c]] += heeb[((size_t) a * nkc + c) * Bd + rr];
    } else if (has_choice) {
      double prod = 1.0;
      int sc = 0;
      int fastd = 0;
      if (blockch && fastb[rr] != 0.0) {
        /* gV already in the block (hess_block_choice) */
        fastd = 1;
        for (int k = 0; k < Ku; k++) gtmp[P + k] += getab[(size_t) k * Bd + rr];
      } else {
        for (int k = 0; k < K; k++) ws->geta[k] = 0.0;
        draw_choice(m, fd, n, eta, kc, nkc, ws, &fastd, &prod, &sc);
        for (int k = 0; k < Ku; k++) gtmp[P + k] += ws->geta[k];
        /* this draw's gV and LVs into the block (the utility parameters'
         * gradient: flush_terms) */
        for (int j = 0; j < J; j++)
          for (int i = 0; i < T; i++) {
            size_t c = (size_t) j * Tm + i;
            gvb[c * Bd + rr] = ws->gV[c];
          }
      }
      for (int k = 0; k < K; k++) etab[(size_t) k * Bd + rr] = eta[k];
      /* without LV-on-LV terms, fast rows (p from gV) are summed into G0
       * and M a block of draws at a time (flush_rows, weight fb) */
      const int rows_later = !dvar && fastd;
      fb[rr] = rows_later ? w : 0.0;
      double *restrict p = ws->au; /* (J) */
      /* with blockch every row is fast (tsafe): all later */
      for (int i = 0; i < T && !(rows_later && blockch); i++) {
        if (rows_later && ws->tsafe[i] != 0.0) continue;
        for (int j = 0; j < J; j++) ws->G0[(size_t) j * Tm + i] += w * ws->gV[(size_t) j * Tm + i];
        if (fd->row_mult && m->mult_par[t0 + i] >= 0)
          for (int j = 0; j < J; j++)
            for (int a = 0; a < nkc; a++)
              ws->G1[((size_t) i * J + j) * Ku + kc[a]] += w * ws->gV[(size_t) j * Tm + i] * eta[kc[a]];
        /* M += w f HV with f = 1, eta_k, eta_k eta_l, in the lower
         * triangle (j2 <= j) only: HV is symmetric, and the fold below
         * reads M there. A fast row's HV is -(diag p - p p') with
         * p_j = y_j - gV_j, written as such (the whole matrix only when the
         * LV blocks read it draw by draw) */
        double *restrict HV = ws->HV + (size_t) i * JJ;
        if (fastd && ws->tsafe[i] != 0.0) {
          for (int j = 0; j < J; j++)
            p[j] = (j == m->y[t0 + i] ? 1.0 : 0.0) - ws->gV[(size_t) j * Tm + i];
          for (int j = 0; j < J; j++) {
            double pj = p[j];
            int jn = dvar ? J : j + 1;
            for (int j2 = 0; j2 < jn; j2++) HV[j * J + j2] = pj * p[j2];
            HV[j * J + j] -= pj;
          }
        }
        for (int a = -1; a < nkc; a++)
          for (int b = -1; b < (a < 0 ? 0 : nkc); b++) {
            const int k = a < 0 ? -1 : kc[a], l = b < 0 ? -1 : kc[b];
            double *restrict Mx = k < 0 ? ws->M0 + (size_t) i * JJ
                                : l < 0 ? ws->M1 + ((size_t) i * Ku + k) * JJ
                                : ws->M2 + (((size_t) i * Ku + k) * Ku + l) * JJ;
            double f = w * (k >= 0 ? eta[k] : 1.0) * (l >= 0 ? eta[l] : 1.0);
            for (int j = 0; j < J; j++)
              for (int j2 = 0; j2 <= j; j2++) Mx[j * J + j2] += f * HV[j * J + j2];
          }
        if (dvar) choice_lv_hl(fd, i, ws->L + (size_t) i * J * Ku, HV, kc, nkc, hlb, rr, &h);
      }
    }
    if (dvar) {
      /* this draw's LV blocks with this draw's d eta / d phi */
      fold_hessian_sparse(m, D, D2, gtmp + P, &h, hr_ptr, hr_idx, hrb, Bd, rr, HD, dnz);
    } else if (hd) {
      double *restrict hpe = ws->Hpe, *restrict hee = ws->Hee;
      double *restrict hpd = Hpe_d, *restrict hed = Hee_d;
      for (size_t i = 0; i < (size_t) P * K; i++) {
        hpe[i] += w * hpd[i];
        hpd[i] = 0.0;
      }
      for (int i = 0; i < K * K; i++) {
        hee[i] += w * hed[i];
        hed[i] = 0.0;
      }
    }
    iclv_fold_gradient(m, D, gtmp);
  next_draw:
    /* the end of a block of draws (for every model: the indicators' block
     * sums are per block too) */
    if (rr == Bd - 1 || r == R - 1) {
      if (has_choice) {
        flush_terms((const term_e *) ws->tl, n0, nl, gvb, etab, wb, Bd, rr + 1, acc,
                    G + (size_t) rb0 * ldg, ldg);
        if (!dvar || blockex) flush_rows(m, fd, n, ws, gvb, etab, fb, Bd, rr + 1, lvmask, blockex, ws->fr);
        if (blockpr) flush_probit(m, fd, n, ws, gvb, hvb, etab, wb, rr + 1, kc, nkc, ws->fr);
      }
      if (dvar)
        fold_block(fd, (const term_e *) ws->tl, n0, nl, kc, nkc, hr_ptr, hr_idx, hrb, hlb, gvb, etab,
                   wD, dz, rr + 1, acc, ws->HpS);
      rb0 = r + 1;
    }
  }

  /* the choice rows' second derivatives from the weighted sums, once */
  iclv_hess hb;
  hb.P = P;
  hb.K = K;
  hb.w = 1.0;
  hb.Hpp = Hn;
  hb.Hpe = ws->Hpe;
  hb.Hee = ws->Hee;
  hb.C = (double *) 0;
  hb.Cp = (int *) 0;
  hb.nCp = 0;
  if (atoms && fd->atoms_affine) {
    /* the rows' summed outer products from their sums (affine_outer) */
    const size_t SZ = (1 + Ku + (size_t) Ku * Ku) * fd->Lc * fd->Lc;
    for (int t = m->row_ptr[n]; t < m->row_ptr[n + 1]; t++) {
      const int i = t - m->row_ptr[n];
      const double *tc = fd->tapes_fixed ? rs.tcb + (size_t) i * m->n_alt * fd->tape_E : (const double *) 0;
      const int nx = row_extras(m, t, rs.Cp);
      affine_outer(m, fd, theta, t, tc, rs.S + (size_t) i * SZ, &rs, nx, nco, eta);
    }
  }
  if (atoms) {
    /* the atoms' outer products (weighted): the LV block into Hee, the
     * mixed one into Hpe (its (parameter, LV) orientation, as iclv_hcell),
     * the parameters' lower triangle into Hn (coord increasing) */
    for (int a = 0; a < nco; a++)
      for (int b = 0; b <= a; b++) {
        const double v = rs.Hc[(size_t) a * nco + b];
        const int ca = rs.coord[a], cb = rs.coord[b];
        if (a < K) {
          ws->Hee[(ca - P) + (size_t) K * (cb - P)] += v;
          if (a != b) ws->Hee[(cb - P) + (size_t) K * (ca - P)] += v;
        } else if (b < K) {
          ws->Hpe[ca + (size_t) P * (cb - P)] += v;
        } else {
          Hn[ca + (size_t) P * cb] += v;
        }
      }
  }
  /* The choice rows' parameter block, per row from the weighted sums M
   * (M0: f = 1, M1_k: eta_k, M2_kl: eta_k eta_l; symmetric in (j, j2),
   * summed in their lower triangles). The terms without an LV, dense: with
   * dX (J, Pu) the row's design (the sum of x over its terms of alternative
   * j and parameter column c), dX' M0 dX (dense_xmx, into dH's lower
   * triangle) and dX' M0 L (dE); an LV term a of alternative j with LV k
   * pairs with them through x_a (M1_k dX)_j, and with the other LV terms
   * one by one. The columns are the parameters of this individual's terms
   * without an LV (cpar, increasing: dH's lower triangle lands in Hn's). */
  double *dX = hs.dX, *dZ = hs.dZ, *dH = hs.dH, *dE = hs.dE, *ML = hs.ML;
  int *cmap = hs.cmap, *cpar = hs.cpar;
  int Pu = 0;
  for (int q = 0; q < n0; q++) /* TL: the terms without an LV, by parameter */
    if (q == 0 || TL[q].par != TL[q - 1].par) {
      cpar[Pu] = TL[q].par;
      cmap[TL[q].par] = Pu++;
    }
  /* rows of dX, dZ, dH, dE padded with zero columns to Pw, a multiple of 4 */
  const int Pw = (Pu + 3) / 4 * 4;
  zero(dH, (size_t) Pu * Pw);
  zero(dE, (size_t) Pw * Ku);
  /* lower triangle cell (a, b) of Hn += v, both orientations of a pair of
   * distinct terms (twice on the diagonal) */
#define HN_PAIR(pa, pb, v)                                                     \
  do {                                                                         \
    const int pa_ = (pa), pb_ = (pb);                                          \
    const double v_ = (v);                                                     \
    if (pa_ == pb_) Hn[pa_ + (size_t) P * pa_] += v_ + v_;                     \
    else if (pa_ > pb_) Hn[pa_ + (size_t) P * pb_] += v_;                      \
    else Hn[pb_ + (size_t) P * pa_] += v_;                                     \
  } while (0)
  for (int i = 0; i < T; i++) {
    const double *L = ws->L + (size_t) i * J * Ku;
    const double *M0 = ws->M0 + (size_t) i * JJ;
    const int *tj = tjr + (size_t) i * (2 * J + 1), *tjl = tj + J + 1;
    int any_lv = 0;
    zero(dX, (size_t) J * Pw);
    for (int j = 0; j < J; j++) {
      for (int a = tj[j]; a < tjl[j]; a++) dX[(size_t) j * Pw + cmap[RL[a].par]] += RL[a].x;
      any_lv |= tjl[j] < tj[j + 1];
    }
    if (Pu > 0) dense_xmx(J, Pu, Pw, M0, dX, dZ, dH);
    if (!dvar && Ku > 0) {
      /* (draw by draw with dvar) ML = M0 L, dE += dX' ML, Hee += L' ML */
      dense_ml(J, Ku, M0, L, ML);
      for (int l = 0; l < Ku; l++) {
        if (Pu > 0) dense_xtv(J, Pw, dX, ML + l, Ku, dE + (size_t) l * Pw);
        for (int k = 0; k < Ku; k++) {
          double acc = 0.0;
          for (int j = 0; j < J; j++) acc += L[j * Ku + k] * ML[(size_t) j * Ku + l];
          iclv_hcell(&hb, P + k, P + l, acc);
        }
      }
    }
    if (!any_lv) continue;
    for (int k = 0; k < Ku; k++) {
      /* the LV terms with LV k: with the terms without an LV (M1_k dX, into
       * dZ) and their LV block (M1_k L) */
      int has = 0;
      for (int j = 0; j < J && !has; j++)
        for (int a = tjl[j]; a < tj[j + 1]; a++) has |= RL[a].lv == k;
      if (!has) continue;
      const double *M1 = ws->M1 + ((size_t) i * Ku + k) * JJ;
      if (Pu > 0) dense_mx(J, Pw, M1, dX, dZ);
      if (!dvar) dense_ml(J, Ku, M1, L, ML); /* (M0 L is used up) */
      for (int j = 0; j < J; j++)
        for (int a = tjl[j]; a < tj[j + 1]; a++) {
          if (RL[a].lv != k) continue;
          const int pa = RL[a].par;
          const double xa = RL[a].x, *z = dZ + (size_t) j * Pw;
          for (int c = 0; c < Pu; c++)
            if (z[c] != 0.0) HN_PAIR(pa, cpar[c], xa * z[c]);
          if (!dvar)
            for (int l = 0; l < Ku; l++) iclv_hcell(&hb, pa, P + l, xa * ML[(size_t) j * Ku + l]);
        }
    }
    /* pairs of LV terms: each unordered pair once (b up to a in its own
     * alternative) */
    for (int j = 0; j < J; j++)
      for (int a = tjl[j]; a < tj[j + 1]; a++)
        for (int j2 = 0; j2 <= j; j2++) {
          const int jl = j, js = j2;
          const int bend = j2 == j ? a + 1 : tj[j2 + 1];
          for (int b = tjl[j2]; b < bend; b++) {
            const double *M2 = ws->M2 + (((size_t) i * Ku + RL[a].lv) * Ku + RL[b].lv) * JJ;
            const double v = RL[a].x * RL[b].x * M2[(size_t) jl * J + js];
            if (a == b) Hn[RL[a].par + (size_t) P * RL[a].par] += v;
            else HN_PAIR(RL[a].par, RL[b].par, v);
          }
        }
    if (dvar) continue; /* the LV blocks were folded draw by draw */
    for (int j = 0; j < J; j++) {
      double g0 = ws->G0[(size_t) j * Tm + i];
      if (g0 == 0.0) continue;
      for (int a = tjl[j]; a < tj[j + 1]; a++)
        iclv_hsym(&hb, RL[a].par, P + RL[a].lv, RL[a].x * g0);
    }
  }
  /* tape_w: sum_r w gV_j d2 V_j / d theta d theta' = G0_j times the tape's
   * Hessian (packed by rows after its gradient, iclv_tape.h) */
  if (tcb)
    for (int i = 0; i < T; i++)
      for (int j = 0; j < J; j++) {
        const double g0 = ws->G0[(size_t) j * Tm + i];
        if (g0 == 0.0) continue;
        const int a0 = m->tape_var_ptr[j], nv = m->tape_var_ptr[j + 1] - a0;
        const double *He = tcb + ((size_t) i * m->n_alt + j) * fd->tape_E + 1 + m->tape_nv;
        for (int a = 0, q = 0; a < nv; a++)
          for (int b = 0; b <= a; b++, q++) {
            if (He[q] == 0.0) continue;
            const int pa = m->tape_var[a0 + a], pb = m->tape_var[a0 + b];
            if (a == b) Hn[pa + (size_t) P * pa] += g0 * He[q];
            else HN_PAIR(pa, pb, g0 * He[q]);
          }
      }
  /* row multipliers: d2 U_j / d mu d theta_u = sign x_u lvf_u (U = s V, s
   * = sign mu), whose weighted sums over the draws are sign x_u G0_j (no
   * LV) or sign x_u G1_jk (LV k) */
  if (fd->row_mult)
    for (int i = 0; i < T; i++) {
      const int t = t0 + i, pmu = m->mult_par[t];
      if (pmu < 0) continue;
      const double sgm = m->mult_sign[t];
      const double *xr = m->X + (long) t * m->n_xcol;
      for (int j = 0; j < J; j++)
        for (int u = m->ut_ptr[j]; u < m->ut_ptr[j + 1]; u++) {
          const double x = m->ut_col[u] >= 0 ? xr[m->ut_col[u]] : 1.0;
          if (x == 0.0) continue;
          const int lv = m->ut_lv[u];
          const double g = lv < 0 ? ws->G0[(size_t) j * Tm + i] : ws->G1[((size_t) i * J + j) * Ku + lv];
          HN_PAIR(pmu, m->ut_par[u], sgm * x * g);
        }
    }
#undef HN_PAIR
  for (int a = 0; a < Pu; a++)
    for (int c = 0; c <= a; c++) Hn[cpar[a] + (size_t) P * cpar[c]] += dH[(size_t) a * Pw + c];
  if (!dvar)
    for (int l = 0; l < Ku; l++)
      for (int c = 0; c < Pu; c++) ws->Hpe[cpar[c] + (size_t) P * l] += dE[(size_t) l * Pw + c];
  /* d eta / d phi does not depend on the draw (hess_ok): fold once;
   * otherwise the draws' folded mixed block, both orientations */
  if (!dvar) iclv_fold_hessian(m, D, (double *) 0, ws->geta, &hb);
  else
    for (int t = 0; t < fd->S; t++) {
      int pt = m->st_par[t];
      for (int i = 0; i < P; i++) {
        double v = ws->HpS[i + (size_t) P * t];
        if (v == 0.0) continue;
        Hn[i + (size_t) P * pt] += v;
        Hn[pt + (size_t) P * i] += v;
      }
    }
#undef LV_CARRIED
}
