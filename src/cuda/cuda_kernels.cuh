/*
 * cuda_kernels.cuh -- the device code of the CUDA backend (included once, by
 * cuda_engine.cu). Each kernel's contract names the CPU code it mirrors
 * (engine.c, iclv_core.h, draws.h); the per-(individual, draw) maths is the
 * very same iclv_core.h code, called from device code.
 *
 * Reductions (all of fixed shape, so results are bit-identical run to run
 * and do not depend on the chunk size):
 *   over the draws of a block: rounds of T draws (one per thread); per round
 *     a block max (shuffle tree + warps in order), weights w = exp(l - M)
 *     against the running max M (online log-sum-exp: the running sums are
 *     rescaled by exp(M_old - M_new) only when the max grows), the sum of
 *     the weights by a shuffle tree then the warps in index order, and each
 *     weighted gradient entry by a fixed-order sum over the T threads' rows;
 *   over the blocks of a split individual: in block order (k_merge_split);
 *   over individuals: groups of ICLV_CUDA_GROUP = 32 consecutive individuals
 *     (aligned to the global index) summed by a warp shuffle tree, the
 *     groups added in index order into a running sum; a group cut by a
 *     chunk boundary waits, its leaves parked in a carry buffer, until the
 *     chunk that completes it (k_reduce_groups).
 */
#ifndef ICLV_CUDA_KERNELS_CUH
#define ICLV_CUDA_KERNELS_CUH

/* ICLV_CUDA_MAX_BLOCK, _MAX_WARPS, _AUX_BLOCK, _GROUP and _HESS_BLOCK: the
 * planner's header (the buffer sizes depend on them too) */
#include "../cuda_plan.h"
#define ICLV_CUDA_DRAWS_BLOCK 128      /* threads of k_draws */

extern __shared__ double iclv_dyn_shared[]; /* dynamic shared memory (layouts: each kernel) */

/* ---- block and warp reductions (fixed shapes) ------------------------------ */

/* Sum over the 32 lanes of a warp in a fixed tree (offsets 16, 8, 4, 2, 1);
 * the result is in lane 0. All 32 lanes must call it. */
__device__ static inline double warp_sum(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

/* Max over the 32 lanes (a butterfly: every lane gets it). No NaN input. */
__device__ static inline double warp_max(double v) {
  for (int off = 16; off > 0; off >>= 1) {
    const double o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}

/* Block-wide sum: the warps' shuffle trees, then warp 0 + warp 1 + ... in
 * index order; every thread gets the result. red: ICLV_CUDA_MAX_WARPS
 * doubles of shared memory. Every thread of the block must call it. */
__device__ static inline double block_sum(double v, double *red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  double s = red[0];
  for (int w = 1; w < nw; w++) s += red[w];
  __syncthreads(); /* red may be reused */
  return s;
}

/* Block-wide max (no NaN input); every thread gets it. As block_sum. */
__device__ static inline double block_max(double v, double *red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  double s = red[0];
  for (int w = 1; w < nw; w++) s = red[w] > s ? red[w] : s;
  __syncthreads();
  return s;
}

/* log L_n and logsumexp_r l_nr from the online log-sum-exp state (running
 * max M, sum S = sum_r exp(l_r - M), any NaN): numerics.h iclv_logsumexp's
 * cases: NaN if some l is NaN, +-Inf when the max is. */
__device__ static inline double lse_of(double M, double S, int nan) {
  if (nan) return NAN;
  if (M == INFINITY || M == -INFINITY) return M;
  return M + log(S);
}

/* ---- the fused pass over the draws ------------------------------------------------ */

/* k_pairs<WANT_G>: LL and (WANT_G) the scores of every individual of a chunk
 * in one pass over the draws: engine.c individual_eval without the Hessian,
 *   l_r = iclv_pair_eval(n, e_r) (draws made here with iclv_draw_normal),
 *   log L_n = logsumexp_r l_r - log R, s_n = sum_r w_r g_r, w_r = exp(l_r - lse)
 * (draws with w_r == 0 skipped, as engine.c).
 *   grid:  n_here * split blocks; block b of individual i = n - n0 is
 *          blockIdx.x = i * split + b and takes draws [b * rb, min(R, (b+1) * rb))
 *   block: T threads (multiple of 32, <= ICLV_CUDA_MAX_BLOCK); round q gives
 *          draw r0 + q T + t to thread t
 *   dynamic shared memory (doubles): theta (P) | acc (P) | w (T) |
 *          red (ICLV_CUDA_MAX_WARPS) | T thread rows of rowlen doubles when
 *          grows == NULL (rowlen odd: the threads of a warp that touch the same
 *          entry of their rows hit different banks)
 *   thread row: e (K), eta (K), D (K, S), V (Jv), gV (JL), g (P + K): the pair's
 *          (Jv = iclv_vscratch_dim, JL = iclv_link_dim: J, or more for a nested logit)
 *          scratch, in shared memory or (grows != NULL) in the thread's slot
 *          of grows (blockIdx.x * T + t) * rowlen
 *   out, split == 1: rows (n_here, ldr) row-major: rows[i, 0] = log L_n and
 *          (WANT_G) rows[i, 1 + p] = s_n[p]; lli[i] = log L_n, lse[i];
 *          status[i] = 1 when (WANT_G) some s_n[p] is not finite, else 0
 *   out, split > 1: part (n_here * split, 2 + P) row-major: the block's
 *          online state (M, S, acc (P)); k_merge_split finishes
 * The running max M, the running sum S and acc are rescaled by
 * exp(M_old - M_new) when a round raises the max (never in a one-round
 * block). */
template <int WANT_G>
__global__ void __launch_bounds__(ICLV_CUDA_MAX_BLOCK)
k_pairs(const __grid_constant__ iclv_model m, const __grid_constant__ iclv_draws d,
        const double *__restrict__ theta_g, int n0, int split, int rb, int rowlen,
        double *__restrict__ grows, double *__restrict__ rows, int ldr, double *__restrict__ lli,
        double *__restrict__ lse_out, double *__restrict__ status, double *__restrict__ part) {
  const int i = blockIdx.x / split, b = blockIdx.x % split;
  const int n = n0 + i, R = d.n_draws, K = m.n_lv, P = m.n_par;
  const int S = m.st_ptr[K], Jv = iclv_vscratch_dim(&m), JL = iclv_link_dim(&m);
  const int T = blockDim.x, t = threadIdx.x;
  double *theta = iclv_dyn_shared, *acc = theta + P, *wv = acc + P, *red = wv + T;
  double *rows_sh = red + ICLV_CUDA_MAX_WARPS;
  for (int p = t; p < P; p += T) {
    theta[p] = theta_g[p];
    acc[p] = 0.0;
  }
  __syncthreads();
  double *row = grows ? grows + ((size_t) blockIdx.x * T + t) * rowlen : rows_sh + (size_t) t * rowlen;
  double *ev = row, *eta = ev + K, *D = eta + K, *V = D + (size_t) K * S, *gV = V + Jv;
  double *g = gV + JL;
  iclv_pair_ws pw;
  pw.eta = eta;
  pw.D = D;
  pw.D2 = NULL;
  pw.V = V;
  pw.gV = gV;
  pw.HV = NULL;
  const int r0 = b * rb;
  const int r_end = (int) ((long long) (b + 1) * rb < R ? (long long) (b + 1) * rb : R);
  double M = -INFINITY, Ssum = 0.0;
  int nan = 0;
  for (int base = r0; base < r_end; base += T) { /* block-uniform loop */
    const int r = base + t;
    double l = -INFINITY;
    if (r < r_end) {
      for (int k = 0; k < K; k++) ev[k] = iclv_draw_normal(&d, n, r, k);
      l = iclv_pair_eval(&m, theta, n, ev, &pw, WANT_G ? g : NULL, NULL);
    }
    const int is_nan = l != l;
    nan |= __syncthreads_or(is_nan);
    const double mx = block_max(is_nan ? -INFINITY : l, red);
    const double Mn = mx > M ? mx : M;
    /* weights against the new max; an infinite max makes LL infinite (reported) */
    const double w = (!is_nan && l > -INFINITY && Mn < INFINITY) ? exp(l - Mn) : 0.0;
    const double scale = M == -INFINITY || Mn == INFINITY ? 0.0 : exp(M - Mn);
    wv[t] = w;
    const double sr = block_sum(w, red); /* its barriers also publish wv and the rows */
    Ssum = Ssum * scale + sr;
    if (WANT_G) {
      const int goff = (int) (g - row);
      for (int p = t; p < P; p += T) {
        double a = 0.0;
        for (int u = 0; u < T; u++) {
          const double wu = wv[u];
          if (wu == 0.0) continue;
          const double *ru = grows ? grows + ((size_t) blockIdx.x * T + u) * rowlen
                                   : rows_sh + (size_t) u * rowlen;
          a += wu * ru[goff + p];
        }
        acc[p] = acc[p] * scale + a;
      }
    }
    M = Mn;
    __syncthreads(); /* the next round overwrites wv and the rows */
  }
  if (split > 1) {
    double *pr = part + (size_t) blockIdx.x * (2 + P);
    if (t == 0) {
      pr[0] = nan ? NAN : M;
      pr[1] = Ssum;
    }
    if (WANT_G)
      for (int p = t; p < P; p += T) pr[2 + p] = acc[p];
    return;
  }
  const double lse = lse_of(M, Ssum, nan);
  const double ll = lse - log((double) R);
  int bad = 0;
  if (WANT_G && isfinite(lse))
    for (int p = t; p < P; p += T) {
      const double s = acc[p] / Ssum;
      rows[(size_t) i * ldr + 1 + p] = s;
      if (!isfinite(s)) bad = 1;
    }
  const int any = __syncthreads_or(bad);
  if (t == 0) {
    rows[(size_t) i * ldr] = ll;
    lli[i] = ll;
    lse_out[i] = lse;
    status[i] = any ? 1.0 : 0.0;
  }
}

/* k_merge_split: finishes the individuals whose draws were split over
 * blocks: the blocks' online states (M_b, S_b, acc_b) combined in block order
 * against M = max_b M_b: S = sum_b S_b exp(M_b - M), acc = sum_b acc_b
 * exp(M_b - M); then as k_pairs with split == 1 (rows, lli, lse, status).
 *   grid: n_here blocks; block: ICLV_CUDA_AUX_BLOCK threads over p
 *   in: part (n_here, split, 2 + P) row-major from k_pairs; want_g: the
 *       parts carry acc */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_merge_split(const double *__restrict__ part, int split, int P, int R, int want_g,
              double *__restrict__ rows, int ldr, double *__restrict__ lli,
              double *__restrict__ lse_out, double *__restrict__ status) {
  const int i = blockIdx.x;
  const double *pi = part + (size_t) i * split * (2 + P);
  double M = -INFINITY;
  int nan = 0;
  for (int b = 0; b < split; b++) {
    const double mb = pi[(size_t) b * (2 + P)];
    if (mb != mb) nan = 1;
    else if (mb > M) M = mb;
  }
  double S = 0.0;
  if (!nan && M > -INFINITY && M < INFINITY)
    for (int b = 0; b < split; b++) {
      const double mb = pi[(size_t) b * (2 + P)];
      if (mb > -INFINITY) S += pi[(size_t) b * (2 + P) + 1] * exp(mb - M);
    }
  const double lse = lse_of(M, S, nan);
  const double ll = lse - log((double) R);
  int bad = 0;
  if (want_g && isfinite(lse))
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      double a = 0.0;
      for (int b = 0; b < split; b++) {
        const double mb = pi[(size_t) b * (2 + P)];
        if (mb > -INFINITY) a += pi[(size_t) b * (2 + P) + 2 + p] * exp(mb - M);
      }
      const double s = a / S;
      rows[(size_t) i * ldr + 1 + p] = s;
      if (!isfinite(s)) bad = 1;
    }
  const int any = __syncthreads_or(bad);
  if (threadIdx.x == 0) {
    rows[(size_t) i * ldr] = ll;
    lli[i] = ll;
    lse_out[i] = lse;
    status[i] = any ? 1.0 : 0.0;
  }
}

/* ---- the sum over individuals ------------------------------------------------------- */

/* k_reduce_groups: sum[c] += the chunk's completed groups of individuals,
 * column c of the leaf rows, for c = 0..W-1 (engine.c's sums over n of
 * log L_n, s_n and H_n, in another fixed order: see the header).
 *   grid: ceil(W / (ICLV_CUDA_AUX_BLOCK / 32)) blocks; one warp per column c
 *   in:   leaves (n_here, ld) row-major: leaf n = n0 + i is row i;
 *         carry (ICLV_CUDA_GROUP, W): leaves of the group cut at n0 by the
 *         previous chunk (row = n mod ICLV_CUDA_GROUP)
 *         weight (N) individual weights w_n, or NULL (iclv_model.h): leaf n
 *         counts w_n times, as engine.c's weighted sums; the carry holds
 *         unweighted leaves
 *   out:  sum (W) updated in place; carry receives the leaves of this chunk's
 *         last group when the chunk ends inside it (and N is not reached)
 * Group g (leaves 32 g .. 32 g + 31, absent leaves >= N counting 0) is added
 * by the chunk holding its last leaf, after every earlier group. */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_reduce_groups(const double *__restrict__ leaves, size_t ld, int W, int n0, int n_here, int N,
                const double *__restrict__ weight, double *__restrict__ carry,
                double *__restrict__ sum) {
  const int lane = threadIdx.x & 31;
  const long long c = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (c >= W) return; /* whole warps */
  const int n_end = n0 + n_here;
  const int G = ICLV_CUDA_GROUP;
  const int g_first = n0 / G, g_last = n_end == N ? (N + G - 1) / G : n_end / G;
  double run = sum[c];
  for (int gi = g_first; gi < g_last; gi++) {
    const int nn = gi * G + lane;
    double v = 0.0;
    if (nn < N) {
      v = nn < n0 ? carry[(size_t) lane * W + c] : leaves[(size_t) (nn - n0) * ld + c];
      if (weight) v *= weight[nn];
    }
    v = warp_sum(v);
    run += v; /* lane 0's is the one kept */
  }
  if (lane == 0) sum[c] = run;
  if (n_end < N && n_end % G != 0) {
    const int nn = (n_end / G) * G + lane;
    if (nn >= n0 && nn < n_end) carry[(size_t) lane * W + c] = leaves[(size_t) (nn - n0) * ld + c];
  }
}

/* ---- Hessian kernels ------------------------------------------------------------------ */

/* k_hess_pairs: the draw-by-draw part of each individual's Hessian, and the
 * rows of its outer-product part (engine.c individual_eval, Hessian pass),
 * parallel over the draws: iclv_pair_eval() adds w_r hess l_nr into one
 * P x P slot, so individual i gets D slots (D = hsplit) and thread (i, d)
 * takes the draws r = d, d + D, d + 2D, ... in order into slot (i, d);
 * k_hess_outer adds the D slots in index order. The weight of a draw needs
 * l_r first: an LL-only pair evaluation, then the one with gradient and
 * Hessian.
 *   grid:  ceil(n_here D / ICLV_CUDA_HESS_BLOCK) blocks of ICLV_CUDA_HESS_BLOCK
 *          threads; thread q = blockIdx.x * blockDim.x + threadIdx.x is
 *          (i, d) = (q / D, q mod D)
 *   dynamic shared memory: theta (P doubles)
 *   in:    m, d (device views), theta (P); lse (n_here) and the score rows
 *          rows (n_here, ldr) (s_n at rows[i, 1 + p]) from k_pairs / k_merge_split
 *   out:   hslot (n_here, D, P, P): slot (i, d) (column-major, ZEROED by the
 *          caller) += sum over its draws of w_r hess l_nr, w_r = exp(l_r - lse_i),
 *          draws with w_r == 0 skipped (as engine.c);
 *          arows (n_here, R, P) row-major: row (i, r) = sqrt(w_r) (g_r - s_i),
 *          0 when w_r == 0 (engine.c's rows a_r); NaN rows when lse_i is not
 *          finite (the host reports that individual's log-likelihood first)
 *   scratch: thread (i, d)'s slot of gscratch (slot doubles): e, eta (K),
 *          D (K, S), D2 (K, S, S) when has_lv_src, V (Jv), gV (JL), HV (JL, JL),
 *          g (P + K), Hpe (P, K), Hee (K, K). */
__global__ void __launch_bounds__(ICLV_CUDA_HESS_BLOCK)
k_hess_pairs(const __grid_constant__ iclv_model m, const __grid_constant__ iclv_draws d,
             const double *__restrict__ theta_g, int n0, int n_here, int hsplit, int has_lv_src,
             const double *__restrict__ lse_in, const double *__restrict__ rows, int ldr,
             double *hslot, double *arows, double *gscratch, size_t slot) {
  const int P = m.n_par, K = m.n_lv, R = d.n_draws;
  const int Jv = iclv_vscratch_dim(&m), JL = iclv_link_dim(&m);
  double *theta = iclv_dyn_shared;
  for (int p = threadIdx.x; p < P; p += blockDim.x) theta[p] = theta_g[p];
  __syncthreads();
  const long long q = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  const int i = (int) (q / hsplit), sub = (int) (q % hsplit);
  if (i >= n_here) return;
  const int n = n0 + i, S = m.st_ptr[K];
  double *ws = gscratch + (size_t) q * slot;
  double *ev = ws, *eta = ev + K, *D = eta + K;
  double *D2 = D + (size_t) K * S;
  double *V = D2 + (has_lv_src ? (size_t) K * S * S : 0);
  double *gV = V + Jv, *HV = gV + JL, *g = HV + (size_t) JL * JL;
  double *Hpe = g + P + K, *Hee = Hpe + (size_t) P * K;
  iclv_pair_ws pw;
  pw.eta = eta;
  pw.D = D;
  pw.D2 = has_lv_src ? D2 : NULL;
  pw.V = V;
  pw.gV = gV;
  pw.HV = HV;
  iclv_hess h;
  h.P = P;
  h.K = K;
  h.w = 0.0;
  h.Hpp = hslot + (size_t) q * P * P;
  h.Hpe = Hpe;
  h.Hee = Hee;
  h.C = NULL;
  h.Cp = NULL;
  h.nCp = 0;
  const double lse = lse_in[i];
  const double *s = rows + (size_t) i * ldr + 1;
  for (int r = sub; r < R; r += hsplit) {
    double *a = arows + ((size_t) i * R + r) * P;
    if (!isfinite(lse)) {
      for (int p = 0; p < P; p++) a[p] = NAN;
      continue;
    }
    for (int k = 0; k < K; k++) ev[k] = iclv_draw_normal(&d, n, r, k);
    const double w = exp(iclv_pair_eval(&m, theta, n, ev, &pw, NULL, NULL) - lse);
    if (w == 0.0) {
      for (int p = 0; p < P; p++) a[p] = 0.0;
      continue;
    }
    h.w = w;
    iclv_pair_eval(&m, theta, n, ev, &pw, g, &h);
    const double sw = sqrt(w);
    for (int p = 0; p < P; p++) a[p] = sw * (g[p] - s[p]);
  }
}

/* k_hess_outer: individual i's Hessian into its first slot: for every cell
 * of the lower triangle (diagonal included), slot (i, 0) + slot (i, 1) + ...
 * + slot (i, D - 1) (index order) + sum_r a_r a_r' over the rows
 * a_r = arows (i, r, .), the latter as engine.c's syrk_lower: the lower
 * triangle in 4 x 4 tiles, each tile owned by one thread, which sums over
 * r = 0, 1, ..., R - 1 in order from 0. Then checks every element of the
 * lower triangle.
 *   grid:  n_here blocks (block i = individual n0 + i); block: ICLV_CUDA_AUX_BLOCK
 *          threads; thread t takes tiles t, t + T, ... of the lower tiles,
 *          enumerated column by column (tile column tj, rows ti >= tj)
 *   in:    arows (n_here, R, P) row-major from k_hess_pairs; hslot (n_here, D, P, P)
 *   out:   slot (i, 0)'s lower triangle = H_n (its upper triangle is left as
 *          it was); hstatus[i] = 1 if some element of that lower triangle is
 *          not finite, else 0 */
__global__ void __launch_bounds__(ICLV_CUDA_AUX_BLOCK)
k_hess_outer(const double *__restrict__ arows, int R, int P, int hsplit, double *__restrict__ hslot,
             int *__restrict__ hstatus) {
  const int i = blockIdx.x;
  const size_t PP = (size_t) P * P;
  const double *A = arows + (size_t) i * R * P;
  double *H = hslot + (size_t) i * hsplit * PP;
  const int nb = (P + 3) / 4;
  int q = 0, bad = 0;
  for (int tj = 0; tj < nb; tj++) {
    for (int ti = tj; ti < nb; ti++, q++) {
      if (q % (int) blockDim.x != (int) threadIdx.x) continue;
      const int r0 = 4 * ti, c0 = 4 * tj;
      const int ni = P - r0 < 4 ? P - r0 : 4, nj = P - c0 < 4 ? P - c0 : 4;
      double c[4][4] = {{0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0},
                        {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}};
      for (int r = 0; r < R; r++) {
        const double *ar = A + (size_t) r * P;
        double x[4], y[4];
        for (int u = 0; u < 4; u++) {
          x[u] = u < ni ? ar[r0 + u] : 0.0;
          y[u] = u < nj ? ar[c0 + u] : 0.0;
        }
        for (int jj = 0; jj < 4; jj++)
          for (int ii = 0; ii < 4; ii++) c[ii][jj] += x[ii] * y[jj];
      }
#pragma unroll
      for (int jj = 0; jj < 4; jj++)
#pragma unroll
        for (int ii = 0; ii < 4; ii++) {
          /* fixed trip counts keep c in registers */
          if (jj >= nj || ii >= ni || r0 + ii < c0 + jj) continue;
          const size_t cell = (r0 + ii) + (size_t) P * (c0 + jj);
          double v = H[cell];
          for (int dd = 1; dd < hsplit; dd++) v += H[(size_t) dd * PP + cell];
          v += c[ii][jj];
          H[cell] = v;
          if (!isfinite(v)) bad = 1;
        }
    }
  }
  const int any = __syncthreads_or(bad);
  if (threadIdx.x == 0) hstatus[i] = any ? 1 : 0;
}

/* ---- draws ------------------------------------------------------------------------------ */

/* k_draws: the design's standard normal draws as the kernels see them,
 * out[n + N (r + R k)] = iclv_draw_normal(d, n, r, k) (draws.c
 * iclv_draws_fill's layout), for verification against the CPU.
 *   grid: ceil(N R / ICLV_CUDA_DRAWS_BLOCK) blocks; thread = pair n + N r */
__global__ void __launch_bounds__(ICLV_CUDA_DRAWS_BLOCK)
k_draws(const __grid_constant__ iclv_draws d, double *__restrict__ out) {
  const long long q = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  const long long N = d.n_ind, NR = N * d.n_draws;
  if (q >= NR) return;
  const int n = (int) (q % N), r = (int) (q / N);
  for (int k = 0; k < d.n_dim; k++) out[q + NR * k] = iclv_draw_normal(&d, n, r, k);
}

#endif /* ICLV_CUDA_KERNELS_CUH */
