/*
 * draws.h -- the standard-normal draws e[n, r, k] of a draw design, as pure
 * functions of (design, n, r, k).
 *
 * Every function here is `ICLV_HD static inline`: the CPU engine (engine.c,
 * draws.c) calls iclv_draw_normal() per element, and the CUDA backend calls
 * the very same code from device code. Nothing here keeps state, allocates,
 * or reads globals other than const tables (primes, Sobol' direction
 * numbers), which exist once for the host and, under CUDA, once in
 * __constant__ memory. The header compiles as C11 (gcc) and as CUDA C++17
 * (nvcc). Plain C types only.
 *
 * Same bits on the CPU and the GPU: the arithmetic uses only integer
 * operations, IEEE-754 +, -, *, / and sqrt (correctly rounded on both), an
 * own logarithm built from those, and frexp (exact). On the device the
 * products and sums go through __dmul_rn/__dadd_rn, so nvcc never contracts
 * them into FMAs; on the host, gcc contracts only when the target has FMA
 * instructions (e.g. -march=native on a recent x86); build the host code
 * without them, or with -ffp-contract=off, for bit-identical draws.
 *
 * Definitions (n = individual 0..N-1, r = draw 0..R-1, k = dimension
 * 0..K-1; N = d->n_ind, R = d->n_draws, K = d->n_dim). For every type but
 * USER, n below stands for the full index n + d->ind_offset: a design that
 * covers individuals [a, a + N) of a larger one (a shard, ind_offset = a)
 * gives them exactly the draws the larger design gives them.
 *
 *   USER     e = d->user[n + N * (r + R * k)], used as is.
 *
 *   HALTON   dimension k uses the (k+1)-th prime b (2, 3, 5, ...; at most
 *            ICLV_HALTON_MAX_DIM dimensions). Each dimension is ONE sequence
 *            of length N*R; individual n gets the n-th consecutive block of R
 *            points: point index i = skip + n*R + r + 1 (64-bit), so with
 *            skip = 0 the first point used in base 2 is 0.5, as in
 *            randtoolbox::halton() and Apollo. u = radical inverse of i in
 *            base b, computed exactly in integers (u = rev / b^digits), and
 *            e = Phi^{-1}(u).
 *
 *   SCRAMBLED_HALTON
 *            the same index i and base b, each digit through its own random
 *            permutation of ALL digits 0..b-1 (random linear scrambling with
 *            a digital shift, Matousek 1998):
 *              u = (sum_{j=0}^{D-1} sigma_{k,j}(d_j(i)) b^{D-1-j} + 1/2) / b^D
 *              sigma_{k,j}(d) = (h_{k,j} d + g_{k,j}) mod b,
 *                h_{k,j} uniform on 1..b-1, g_{k,j} uniform on 0..b-1,
 *            where d_j(i) is the j-th base-b digit of i (least significant
 *            first, leading zeros included) and D is the smallest number of
 *            digits with b^D >= 2^32 that covers every digit of i (the same
 *            32-bit resolution as the Sobol' points; the + 1/2 puts u at the
 *            centre of its cell, so u is never 0 or 1). 0 is NOT kept fixed
 *            (sigma(0) = g): keeping it fixed would leave base 2 unscrambled
 *            and bias every base towards the origin. (h, g) of digits
 *            j = 4q..4q+3 come from the four words of Philox4x32-10(key =
 *            seed, counter = (k, q, 0, 1)), 16 bits each, mapped to their
 *            range by multiply-shift; the permutations are pure functions of
 *            (seed, k, j), and every individual and draw sees the same ones.
 *
 *   SOBOL    Joe and Kuo's new-joe-kuo-6.21201 direction numbers, 32 bits,
 *            at most ICLV_SOBOL_MAX_DIM dimensions (sobol_directions.h);
 *            dimension 1 is the van der Corput sequence in base 2. The same
 *            index i = skip + n*R + r + 1 (so the all-zero point 0 is never
 *            used; requires i < 2^32) in gray-code order, the order of
 *            scipy.stats.qmc.Sobol(scramble = FALSE) and of Joe and Kuo's
 *            own program: x = XOR of V[k][j] over the set bits j of
 *            g = i ^ (i >> 1), u = x / 2^32, e = Phi^{-1}(u).
 *
 *   MLHS     modified Latin hypercube sampling (Hess, Train and Polak 2006):
 *              u_r = (pi_{n,k}(r) + c_{n,k}) / R
 *            with one uniform shift c_{n,k} in (0, 1) from Philox(key = seed,
 *            counter = (n, k, 1, 2)) and a permutation pi_{n,k} of 0..R-1,
 *            the keyed bijection iclv_permute() with round keys
 *            Philox(key = seed, counter = (n, k, 0, 2)). Each (n, k) column
 *            has exactly one point in each stratum [s/R, (s+1)/R). The draws
 *            of individual n do not depend on N.
 *
 *   PSEUDO   Philox4x32-10 (Salmon et al. 2011, Random123) with the 64-bit
 *            key = seed and counter (n, r, k, 0); the first two output words
 *            x0, x1 give 53 bits b = (x0 << 21) | (x1 >> 11) and
 *            u = b / 2^53 (b = 0 is replaced by 1/2, so u lies in
 *            [2^-54, 1 - 2^-53], never 0 or 1); e = Phi^{-1}(u). The draw of
 *            individual n does not depend on N or R.
 *
 *   Phi^{-1} is Wichura's AS 241 (PPND16), accurate to about 1e-16.
 *   The seed and skip are ignored where they play no part (skip is used by
 *   the Halton, scrambled Halton and Sobol' types only).
 */
#ifndef ICLV_DRAWS_H
#define ICLV_DRAWS_H

#include <stdint.h>
#include <math.h>

#include "iclv_model.h"
#include "sobol_directions.h"

#include "iclv_hd.h"

#define ICLV_HALTON_MAX_DIM 100 /* primes in the table below */

/* ---- const tables --------------------------------------------------------- */

#define ICLV_PRIMES_INIT { \
  2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, \
  73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, \
  179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, \
  283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, \
  419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523, 541 }

#ifdef __CUDACC__
static __constant__ uint32_t iclv_sobol_v_dev[ICLV_SOBOL_MAX_DIM * ICLV_SOBOL_BITS] = ICLV_SOBOL_V_INIT;
static __constant__ uint32_t iclv_primes_dev[ICLV_HALTON_MAX_DIM] = ICLV_PRIMES_INIT;
#endif
static const uint32_t iclv_sobol_v_host[ICLV_SOBOL_MAX_DIM * ICLV_SOBOL_BITS] = ICLV_SOBOL_V_INIT;
static const uint32_t iclv_primes_host[ICLV_HALTON_MAX_DIM] = ICLV_PRIMES_INIT;

/* The (k+1)-th prime, k in [0, ICLV_HALTON_MAX_DIM). */
ICLV_HD static inline uint32_t iclv_prime(int k) {
#ifdef __CUDA_ARCH__
  return iclv_primes_dev[k];
#else
  return iclv_primes_host[k];
#endif
}

/* Sobol' direction number V[k][j], k in [0, ICLV_SOBOL_MAX_DIM), j in [0, 32). */
ICLV_HD static inline uint32_t iclv_sobol_v(int k, int j) {
#ifdef __CUDA_ARCH__
  return iclv_sobol_v_dev[k * ICLV_SOBOL_BITS + j];
#else
  return iclv_sobol_v_host[k * ICLV_SOBOL_BITS + j];
#endif
}

/* ---- IEEE arithmetic without contraction (see the header comment) -------- */

ICLV_HD static inline double iclv_dmul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
ICLV_HD static inline double iclv_dadd(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
ICLV_HD static inline double iclv_ddiv(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
ICLV_HD static inline double iclv_dsqrt(double a) {
#ifdef __CUDA_ARCH__
  return __dsqrt_rn(a);
#else
  return sqrt(a);
#endif
}

/* Horner: ((((((c7 r + c6) r + c5) r + c4) r + c3) r + c2) r + c1) r + c0. */
ICLV_HD static inline double iclv_poly7(double r, double c7, double c6, double c5, double c4,
                                        double c3, double c2, double c1, double c0) {
  double v = c7;
  v = iclv_dadd(iclv_dmul(v, r), c6);
  v = iclv_dadd(iclv_dmul(v, r), c5);
  v = iclv_dadd(iclv_dmul(v, r), c4);
  v = iclv_dadd(iclv_dmul(v, r), c3);
  v = iclv_dadd(iclv_dmul(v, r), c2);
  v = iclv_dadd(iclv_dmul(v, r), c1);
  return iclv_dadd(iclv_dmul(v, r), c0);
}

/* Natural logarithm of a finite x > 0, within a few ulp, from frexp and
 * correctly rounded arithmetic only (so host and device agree bit for bit):
 * x = m 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
 * s = (m - 1)/(m + 1), |s| <= 0.1716, series to s^23. */
ICLV_HD static inline double iclv_log_pos(double x) {
  int e;
  double m = frexp(x, &e); /* m in [0.5, 1) */
  if (m < 0.70710678118654752440) {
    m = iclv_dmul(m, 2.0); /* exact */
    e -= 1;
  }
  double s = iclv_ddiv(iclv_dadd(m, -1.0), iclv_dadd(m, 1.0));
  double z = iclv_dmul(s, s);
  double p = 1.0 / 23.0;
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 21.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 19.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 17.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 15.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 13.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 11.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 9.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 7.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 5.0);
  p = iclv_dadd(iclv_dmul(p, z), 1.0 / 3.0);
  double two_s = iclv_dmul(2.0, s);
  double log_m = iclv_dadd(two_s, iclv_dmul(two_s, iclv_dmul(z, p)));
  const double ln2_hi = 6.93147180369123816490e-01; /* 2^-32 multiples: e * ln2_hi exact */
  const double ln2_lo = 1.90821492927058770002e-10;
  double de = (double) e;
  return iclv_dadd(iclv_dmul(de, ln2_hi), iclv_dadd(iclv_dmul(de, ln2_lo), log_m));
}

/* Standard normal quantile Phi^{-1}(u) for u in (0, 1): Wichura (1988),
 * Algorithm AS 241 (PPND16), relative accuracy about 1e-16. Returns -Inf at
 * u = 0, +Inf at u = 1 and NaN outside [0, 1] (never reached by the draws). */
ICLV_HD static inline double iclv_qnorm(double u) {
  if (!(u >= 0.0 && u <= 1.0)) return NAN;
  if (u == 0.0) return -HUGE_VAL;
  if (u == 1.0) return HUGE_VAL;
  double q = iclv_dadd(u, -0.5);
  if (fabs(q) <= 0.425) {
    double r = iclv_dadd(0.180625, -iclv_dmul(q, q));
    double num = iclv_poly7(r, 2509.0809287301226727, 33430.575583588128105,
                            67265.770927008700853, 45921.953931549871457,
                            13731.693765509461125, 1971.5909503065514427,
                            133.14166789178437745, 3.387132872796366608);
    double den = iclv_poly7(r, 5226.495278852545925, 28729.085735721942674,
                            39307.89580009271061, 21213.794301586595867,
                            5394.1960214247511077, 687.1870074920579083,
                            42.313330701600911252, 1.0);
    return iclv_ddiv(iclv_dmul(q, num), den);
  }
  double r = q < 0.0 ? u : iclv_dadd(1.0, -u);
  r = iclv_dsqrt(-iclv_log_pos(r));
  double val;
  if (r <= 5.0) {
    r = iclv_dadd(r, -1.6);
    double num = iclv_poly7(r, 7.7454501427834140764e-4, 0.0227238449892691845833,
                            0.24178072517745061177, 1.27045825245236838258,
                            3.64784832476320460504, 5.7694972214606914055,
                            4.6303378461565452959, 1.42343711074968357734);
    double den = iclv_poly7(r, 1.05075007164441684324e-9, 5.475938084995344946e-4,
                            0.0151986665636164571966, 0.14810397642748007459,
                            0.68976733498510000455, 1.6763848301838038494,
                            2.05319162663775882187, 1.0);
    val = iclv_ddiv(num, den);
  } else {
    r = iclv_dadd(r, -5.0);
    double num = iclv_poly7(r, 2.01033439929228813265e-7, 2.71155556874348757815e-5,
                            0.0012426609473880784386, 0.026532189526576123093,
                            0.29656057182850489123, 1.7848265399172913358,
                            5.4637849111641143699, 6.6579046435011037772);
    double den = iclv_poly7(r, 2.04426310338993978564e-15, 1.4215117583164458887e-7,
                            1.8463183175100546818e-5, 7.868691311456132591e-4,
                            0.0148753612908506148525, 0.13692988092273580531,
                            0.59983220655588793769, 1.0);
    val = iclv_ddiv(num, den);
  }
  return q < 0.0 ? -val : val;
}

/* ---- Philox4x32-10 (Salmon, Moraes, Dror and Shaw 2011) -------------------- */

/* out = Philox4x32-10(ctr, key): 10 rounds with multipliers 0xD2511F53,
 * 0xCD9E8D57 and Weyl key increments 0x9E3779B9, 0xBB67AE85, as Random123's
 * philox4x32 (known-answer vectors in tests/testthat/test-draws.R). */
ICLV_HD static inline void iclv_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                                              uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t) 0xD2511F53U * c0;
    uint64_t p1 = (uint64_t) 0xCD9E8D57U * c2;
    uint32_t hi0 = (uint32_t) (p0 >> 32), lo0 = (uint32_t) p0;
    uint32_t hi1 = (uint32_t) (p1 >> 32), lo1 = (uint32_t) p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9E3779B9U;
    k1 += 0xBB67AE85U;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Philox with the 64-bit seed as key and counter (a, b, c, tag). */
ICLV_HD static inline void iclv_philox_seeded(uint64_t seed, uint32_t a, uint32_t b, uint32_t c,
                                              uint32_t tag, uint32_t out[4]) {
  uint32_t ctr[4] = {a, b, c, tag};
  uint32_t key[2] = {(uint32_t) seed, (uint32_t) (seed >> 32)};
  iclv_philox4x32_10(ctr, key, out);
}

/* A uniform in [2^-54, 1 - 2^-53] from 53 bits of two Philox words. */
ICLV_HD static inline double iclv_u53(uint32_t x0, uint32_t x1) {
  uint64_t b = ((uint64_t) x0 << 21) | (uint64_t) (x1 >> 11);
  if (b == 0) return 5.5511151231257827e-17; /* 2^-54 */
  return (double) b * 1.1102230246251565e-16; /* 2^-53, exact */
}

/* Keeps u strictly inside (0, 1): [2^-54, 1 - 2^-53]. */
ICLV_HD static inline double iclv_u_clamp(double u) {
  if (!(u >= 5.5511151231257827e-17)) return 5.5511151231257827e-17;
  if (u > 0.99999999999999988898) return 0.99999999999999988898; /* 1 - 2^-53 */
  return u;
}

/* ---- keyed bijection on [0, len) ------------------------------------------- */

/* A 32-bit integer hash (bijective; "lowbias32" of C. Wellons' hash prospector). */
ICLV_HD static inline uint32_t iclv_hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352DU;
  x ^= x >> 15;
  x *= 0x846CA68BU;
  x ^= x >> 16;
  return x;
}

/* pi(x): a permutation of [0, len) chosen by the four round keys `key` (used
 * by MLHS), for
 * x in [0, len), len in [1, 2^31]. A balanced 4-round Feistel network on
 * 2h bits (the smallest even width with 2^(2h) >= len, h >= 1), round
 * function F_t(R) = hash32(R ^ key[t]) masked to h bits, made a bijection of
 * [0, len) by cycle walking (re-encrypt until the value falls in range; the
 * expected number of passes is 2^(2h)/len < 4). Pure: no state, no tables. */
ICLV_HD static inline uint32_t iclv_permute(uint32_t x, uint32_t len, const uint32_t key[4]) {
  if (len <= 1) return 0;
  int bits = 0;
  while (bits < 32 && ((uint64_t) 1 << bits) < len) bits++; /* 2^bits >= len */
  int h = (bits + 1) / 2;
  uint32_t mask = ((uint32_t) 1 << h) - 1U;
  do {
    uint32_t L = x >> h, R = x & mask;
    for (int t = 0; t < 4; t++) {
      uint32_t nl = R;
      R = L ^ (iclv_hash32(R ^ key[t]) & mask);
      L = nl;
    }
    x = (L << h) | R;
  } while (x >= len);
  return x;
}

/* ---- the sequences --------------------------------------------------------- */

/* 1-based point index of (n, r) in the Halton and Sobol' sequences (n is
 * the design's individual; the index uses the full n + ind_offset). */
ICLV_HD static inline uint64_t iclv_draw_index(const iclv_draws *d, int n, int r) {
  uint64_t full = (uint64_t) d->ind_offset + (uint64_t) n;
  return (uint64_t) d->skip + full * (uint64_t) d->n_draws + (uint64_t) r + 1U;
}

/* The bits of x in reverse order. */
ICLV_HD static inline uint64_t iclv_bitrev64(uint64_t x) {
#ifdef __CUDA_ARCH__
  return __brevll(x);
#else
  x = ((x >> 1) & 0x5555555555555555ULL) | ((x & 0x5555555555555555ULL) << 1);
  x = ((x >> 2) & 0x3333333333333333ULL) | ((x & 0x3333333333333333ULL) << 2);
  x = ((x >> 4) & 0x0F0F0F0F0F0F0F0FULL) | ((x & 0x0F0F0F0F0F0F0F0FULL) << 4);
  x = ((x >> 8) & 0x00FF00FF00FF00FFULL) | ((x & 0x00FF00FF00FF00FFULL) << 8);
  x = ((x >> 16) & 0x0000FFFF0000FFFFULL) | ((x & 0x0000FFFF0000FFFFULL) << 16);
  return (x >> 32) | (x << 32);
#endif
}

/* The lowest base-b digit of *i, which is divided by b (*i > 0). */
ICLV_HD static inline uint32_t iclv_pop_digit(uint64_t *i, uint32_t b) {
  uint32_t digit;
  if ((*i >> 32) == 0) { /* 32-bit division: several times faster than 64-bit */
    uint32_t i32 = (uint32_t) *i;
    digit = i32 % b;
    *i = i32 / b;
  } else {
    digit = (uint32_t) (*i % b);
    *i /= b;
  }
  return digit;
}

/* Radical inverse of i >= 1 in base b: rev / b^digits, exact in integers
 * (requires i < 2^53, so that i * b < 2^64 and the base-2 shortcut is exact). */
ICLV_HD static inline double iclv_radical_inverse(uint64_t i, uint32_t b) {
  if (b == 2) /* i < 2^53: the reversed bits fit in 53 bits, exactly */
    return (double) (iclv_bitrev64(i) >> 11) * 1.1102230246251565e-16; /* 2^-53 */
  uint64_t rev = 0, den = 1;
  while (i > 0) {
    rev = rev * b + iclv_pop_digit(&i, b);
    den *= b;
  }
  return iclv_ddiv((double) rev, (double) den);
}

/* Scrambled radical inverse (see the header comment): random linear
 * scrambling with a digital shift of the base-b digits of i, digits
 * j = 0, 1, ... until i is exhausted and b^j >= 2^32; (i * b < 2^63). */
ICLV_HD static inline double iclv_scrambled_radical_inverse(uint64_t i, uint32_t b, uint64_t seed,
                                                            int k) {
  const uint64_t two32 = (uint64_t) 1 << 32;
  uint64_t rev = 0, den = 1;
  uint32_t w[4] = {0U, 0U, 0U, 0U};
  for (uint32_t j = 0; i > 0 || den < two32; j++) {
    if ((j & 3U) == 0U) iclv_philox_seeded(seed, (uint32_t) k, j >> 2, 0U, 1U, w);
    uint32_t x = w[j & 3U];
    uint32_t h = 1U + (uint32_t) (((uint64_t) (x & 0xFFFFU) * (b - 1U)) >> 16);
    uint32_t g = (uint32_t) (((uint64_t) (x >> 16) * b) >> 16);
    uint32_t digit = i > 0 ? iclv_pop_digit(&i, b) : 0U; /* leading zeros: sigma(0) = g */
    rev = rev * b + (h * digit + g) % b;
    den *= b;
  }
  return iclv_ddiv(iclv_dadd((double) rev, 0.5), (double) den);
}

/* Sobol' point i in [1, 2^32), dimension k in [0, ICLV_SOBOL_MAX_DIM), gray-code order. */
ICLV_HD static inline double iclv_sobol_point(uint64_t i, int k) {
  uint32_t g = (uint32_t) (i ^ (i >> 1));
  uint32_t x = 0;
  for (int j = 0; g != 0; j++, g >>= 1)
    if (g & 1U) x ^= iclv_sobol_v(k, j);
  return (double) x * 2.3283064365386963e-10; /* 2^-32, exact */
}

/* The uniform behind e[n, r, k] for every type but USER: u in (0, 1). */
ICLV_HD static inline double iclv_draw_uniform(const iclv_draws *d, int n, int r, int k) {
  uint32_t w[4];
  const uint32_t nf = (uint32_t) n + (uint32_t) d->ind_offset; /* full index, < 2^31 */
  switch (d->type) {
  case ICLV_DRAWS_HALTON:
    return iclv_u_clamp(iclv_radical_inverse(iclv_draw_index(d, n, r), iclv_prime(k)));
  case ICLV_DRAWS_SCRAMBLED_HALTON:
    return iclv_u_clamp(iclv_scrambled_radical_inverse(iclv_draw_index(d, n, r), iclv_prime(k),
                                                       d->seed, k));
  case ICLV_DRAWS_SOBOL:
    return iclv_u_clamp(iclv_sobol_point(iclv_draw_index(d, n, r), k));
  case ICLV_DRAWS_MLHS: {
    uint32_t key[4];
    iclv_philox_seeded(d->seed, nf, (uint32_t) k, 0U, 2U, key);
    iclv_philox_seeded(d->seed, nf, (uint32_t) k, 1U, 2U, w);
    double c = iclv_u53(w[0], w[1]);
    double p = (double) iclv_permute((uint32_t) r, (uint32_t) d->n_draws, key);
    return iclv_u_clamp(iclv_ddiv(iclv_dadd(p, c), (double) d->n_draws));
  }
  case ICLV_DRAWS_PSEUDO:
  default:
    iclv_philox_seeded(d->seed, nf, (uint32_t) r, (uint32_t) k, 0U, w);
    return iclv_u53(w[0], w[1]);
  }
}

/* e[n, r, k]: the standard-normal draw of individual n (0-based), draw r,
 * dimension k of design d. Preconditions (checked once by
 * iclv_draws_check(), not here): 0 <= n < n_ind, 0 <= r < n_draws,
 * 0 <= k < n_dim, and the design passes iclv_draws_check(). A pure function
 * of (*d, n, r, k). */
ICLV_HD static inline double iclv_draw_normal(const iclv_draws *d, int n, int r, int k) {
  if (d->type == ICLV_DRAWS_USER)
    return d->user[(int64_t) n + (int64_t) d->n_ind * ((int64_t) r + (int64_t) d->n_draws * k)];
  return iclv_qnorm(iclv_draw_uniform(d, n, r, k));
}

/* ---- host-side validation (draws.c) ---------------------------------------- */
#ifdef __cplusplus
extern "C" {
#endif

/* Checks that iclv_draw_normal() is defined for every (n, r, k) of design d:
 * a known type, n_ind >= 1, n_draws >= 1, n_dim >= 0, ind_offset >= 0 and
 * ind_offset + n_ind < 2^31 (0 for USER); Halton types at most
 * ICLV_HALTON_MAX_DIM dimensions and skip + (ind_offset + n_ind) * n_draws
 * < 2^53; Sobol' at most ICLV_SOBOL_MAX_DIM dimensions and the same bound
 * below 2^32;
 * MLHS n_draws <= 2^31 - 1 (always true for an int); USER a non-NULL array.
 * Returns ICLV_OK, or ICLV_ERR_INPUT with a message in st. */
int iclv_draws_check(const iclv_draws *d, iclv_status *st);

/* Fills out (n_ind, n_draws, n_dim) column-major with the standard normal
 * draws e[n, r, k] of design d, exactly as the engines see them. Returns
 * ICLV_OK, or ICLV_ERR_INPUT (from iclv_draws_check). */
int iclv_draws_fill(const iclv_draws *d, double *out, iclv_status *st);

#ifdef __cplusplus
}
#endif

#endif /* ICLV_DRAWS_H */
