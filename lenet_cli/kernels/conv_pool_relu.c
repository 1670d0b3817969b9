/* lenet's fused blocks for the CPU: conv -> 2x2 max-pool -> ReLU, forward and gradients,
   float32. Built and loaded by lenet_cli/fused.py.

   Semantics follow PyTorch's: the pool keeps the first maximum of each window in the order
   (0,0), (0,1), (1,0), (1,1), and a NaN wins (max_pool2d's rule); ReLU passes no gradient where
   its output is not > 0. Images are split across the OpenMP threads of the process, which are
   PyTorch's own once torch is loaded (the same libgomp). The convolutions sum in a fixed order,
   so results do not depend on the thread count; the weight and bias gradients are summed per
   thread in double and added in thread order by the caller.

   The vectors are GCC's vector extensions (16 floats), so the file builds for any target; with
   -march=native on an AVX-512 CPU each is one register. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXC 64  /* channels of the first block */
#define MAXS 64  /* image side */
#define LANES 16

int cpr_limits(int *max_channels, int *max_side) {
    *max_channels = MAXC;
    *max_side = MAXS;
    return 1;
}

typedef float v16 __attribute__((vector_size(64)));
typedef int vi16 __attribute__((vector_size(64)));

static void *alloc64(size_t bytes) { /* v16 needs 64-byte alignment */
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static inline v16 ld16(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void st16(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 sel16(vi16 m, v16 a, v16 b) { return (v16)(((vi16)a & m) | ((vi16)b & ~m)); }
typedef unsigned char vb16 __attribute__((vector_size(16)));

static const vi16 LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const vi16 EVEN = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const vi16 ODD = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const vi16 LOW = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const vi16 HIGH = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* The 2x2 pool and ReLU of 16 windows whose four values are q[0..3], by max_pool2d's rule (a
   later value wins when greater or NaN); the window's argmax (0..3) goes to *at. */
static inline v16 pool_relu(const v16 q[4], vi16 *at) {
    const v16 zero = {0};
    v16 best = q[0];
    vi16 a = {0};
    for (int p = 1; p < 4; p++) {
        const vi16 m = (q[p] > best) | (q[p] != q[p]);
        best = sel16(m, q[p], best);
        a = (a & ~m) | (m & p);
    }
    *at = a;
    return sel16((best > zero) | (best != best), best, zero); /* relu(NaN) is NaN */
}

/* The first block: one input channel, C output channels. Per pooled row and 16 pooled columns,
   the two conv rows' 32 columns are four vector accumulators over the K*K taps (kept in
   registers; no conv output is stored), pooled by splitting even and odd columns.
   An image is copied with zeros after it, so that vector loads past its last row stay in the
   buffer; the lanes they feed are past the last pooled column and never stored. */
#define XPAD (2 * LANES)

static void load_image(float *restrict xb, const float *restrict xn, int H, int W) {
    memcpy(xb, xn, sizeof(float) * H * W);
    memset(xb + H * W, 0, sizeof(float) * XPAD);
}

/* Where a row of nj <= 16 values starting at `dst` is followed by at least 16 - nj values that
   are written later (the same image's next row), a whole vector is stored; otherwise lane by
   lane. */
static inline void store_row(float *restrict dst, uint8_t *restrict idst, v16 v, vi16 at,
                             int nj, int whole) {
    if (whole) {
        st16(dst, v);
        const vb16 b = __builtin_convertvector(at, vb16);
        memcpy(idst, &b, sizeof b);
        return;
    }
    for (int j = 0; j < nj; j++) {
        dst[j] = v[j];
        idst[j] = (uint8_t)at[j];
    }
}

/* One channel of one image: xb (padded, row stride W), weights wc [K*K], bias bc; out and idx
   [Ho][Wo] for this channel. `last` says that nothing of this image follows the channel. */
static inline __attribute__((always_inline)) void fwd1_channel(
    const float *restrict xb, const float *restrict wc, float bc, float *restrict oc,
    uint8_t *restrict ic, int W, int Ho, int Wo, int last, const int K) {
    for (int i = 0; i < Ho; i++)
        for (int j0 = 0; j0 < Wo; j0 += 16) {
            const int nj = Wo - j0 < 16 ? Wo - j0 : 16;
            v16 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0};
            a00 += bc, a01 += bc, a10 += bc, a11 += bc;
            for (int ki = 0; ki < K; ki++)
                for (int kj = 0; kj < K; kj++) {
                    const float wv = wc[ki * K + kj];
                    const float *restrict p0 = xb + (2 * i + ki) * W + 2 * j0 + kj;
                    a00 += wv * ld16(p0);
                    a01 += wv * ld16(p0 + 16);
                    a10 += wv * ld16(p0 + W);
                    a11 += wv * ld16(p0 + W + 16);
                }
            const v16 q[4] = {__builtin_shuffle(a00, a01, EVEN), __builtin_shuffle(a00, a01, ODD),
                              __builtin_shuffle(a10, a11, EVEN), __builtin_shuffle(a10, a11, ODD)};
            vi16 at;
            const v16 v = pool_relu(q, &at);
            const int o = i * Wo + j0;
            store_row(oc + o, ic + o, v, at, nj, nj == 16 || !last || i + 1 < Ho);
        }
}

/* One image xn [H,W] -> on, in_ [C,Ho,Wo]; `slack`: 16 values may be written past them. */
static void fwd1_image(const float *restrict xn, const float *restrict w, const float *restrict b,
                       float *restrict on, uint8_t *restrict in_, int H, int W, int C, int K,
                       int slack) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2;
    float xb[MAXS * MAXS + XPAD];
    load_image(xb, xn, H, W);
    for (int c = 0; c < C; c++) {
        const int o = c * Ho * Wo, last = c + 1 == C && !slack;
        if (K == 3)
            fwd1_channel(xb, w + c * 9, b[c], on + o, in_ + o, W, Ho, Wo, last, 3);
        else if (K == 5)
            fwd1_channel(xb, w + c * 25, b[c], on + o, in_ + o, W, Ho, Wo, last, 5);
        else
            fwd1_channel(xb, w + c * K * K, b[c], on + o, in_ + o, W, Ho, Wo, last, K);
    }
}

/* x [N,H,W]; w [C,K,K]; b [C]; out [N,C,Ho,Wo]; idx [N,C,Ho,Wo] (0..3). */
int cpr_forward(const float *restrict x, const float *restrict w, const float *restrict b,
                 float *restrict out, uint8_t *restrict idx, int N, int H, int W, int C, int K,
                 int threads) {
    const int64_t per = (int64_t)C * ((H - K + 1) / 2) * ((W - K + 1) / 2);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++)
        fwd1_image(x + (int64_t)n * H * W, w, b, out + n * per, idx + n * per, H, W, C, K, 0);
    return 0; /* nothing to allocate */
}

static inline double hsum(v16 v) {
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += v[l];
    return s;
}

/* The backward kernels sum the weight and bias gradients per thread in double, in rows of n
   (zeroed here, one per thread), and add the rows in thread order at the end (tsum), so the
   result depends on the thread count only through float rounding of the final sums. */
static double *thread_rows(int threads, size_t n) { return calloc((size_t)threads * n, sizeof(double)); }

static inline float tsum(const double *rows, int threads, size_t n, size_t e) {
    double s = 0.0;
    for (int t = 0; t < threads; t++) s += rows[t * n + e];
    return (float)s;
}

/* One channel's weight and bias gradients from one image: g, out, idx [Ho][Wo] for the channel.
   The conv output's gradient (g where ReLU let it by, at the window's first maximum) is built
   16 pooled columns at a time, as the two conv rows' 32 columns, and multiplied with the same
   input vectors the forward used; K*K vector accumulators. */
static inline __attribute__((always_inline)) void bwd1_channel(
    const float *restrict xb, const float *restrict gc, const float *restrict oc,
    const uint8_t *restrict ic, double *restrict gw, double *restrict gb, int W, int Ho, int Wo,
    int last, const int K) {
    const v16 zero = {0};
    v16 acc[K * K], bacc = zero;
    for (int t = 0; t < K * K; t++) acc[t] = zero;
    for (int i = 0; i < Ho; i++)
        for (int j0 = 0; j0 < Wo; j0 += 16) {
            const int nj = Wo - j0 < 16 ? Wo - j0 : 16, o = i * Wo + j0;
            v16 gv, ov;
            vi16 at;
            if (nj == 16 || !last || i + 1 < Ho) { /* 16 values are there to read */
                gv = ld16(gc + o);
                ov = ld16(oc + o);
                vb16 b;
                memcpy(&b, ic + o, sizeof b);
                at = __builtin_convertvector(b, vi16);
            } else {
                gv = ov = zero;
                at = (vi16){0};
                for (int j = 0; j < nj; j++) {
                    gv[j] = gc[o + j];
                    ov[j] = oc[o + j];
                    at[j] = ic[o + j];
                }
            }
            gv = sel16((ov > zero) & (LANE < nj), gv, zero); /* ReLU's mask; lanes past Wo */
            bacc += gv;
            const v16 g0 = sel16(at == 0, gv, zero), g1 = sel16(at == 1, gv, zero);
            const v16 g2 = sel16(at == 2, gv, zero), g3 = sel16(at == 3, gv, zero);
            const v16 r00 = __builtin_shuffle(g0, g1, LOW), r01 = __builtin_shuffle(g0, g1, HIGH);
            const v16 r10 = __builtin_shuffle(g2, g3, LOW), r11 = __builtin_shuffle(g2, g3, HIGH);
            for (int ki = 0; ki < K; ki++)
                for (int kj = 0; kj < K; kj++) {
                    const float *restrict p0 = xb + (2 * i + ki) * W + 2 * j0 + kj;
                    v16 a = acc[ki * K + kj];
                    a += r00 * ld16(p0);
                    a += r01 * ld16(p0 + 16);
                    a += r10 * ld16(p0 + W);
                    a += r11 * ld16(p0 + W + 16);
                    acc[ki * K + kj] = a;
                }
        }
    for (int t = 0; t < K * K; t++) gw[t] += hsum(acc[t]);
    *gb += hsum(bacc);
}

/* Gradients of w and b from g = dLoss/dout [N,C,Ho,Wo], with out and idx from cpr_forward:
   grad_w [C,1,K,K] written at the element strides s (the weight's own), grad_b [C]. */
int cpr_backward(const float *restrict x, const float *restrict g, const float *restrict out,
                  const uint8_t *restrict idx, float *restrict grad_w, float *restrict grad_b,
                  int N, int H, int W, int C, int K, int s0, int s2, int s3, int threads) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2;
    const size_t n_row = (size_t)C * K * K + C;
    double *rows = thread_rows(threads, n_row);
    if (rows == NULL) return 1;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        double *restrict gw = rows + t * n_row, *restrict gb = gw + C * K * K;
        float xb[MAXS * MAXS + XPAD];
        for (int n = n0; n < n1; n++) {
            load_image(xb, x + (int64_t)n * H * W, H, W);
            for (int c = 0; c < C; c++) {
                const int64_t o = ((int64_t)n * C + c) * Ho * Wo;
                const int last = n + 1 == N && c + 1 == C; /* the tensors end here */
                if (K == 3)
                    bwd1_channel(xb, g + o, out + o, idx + o, gw + c * 9, gb + c, W, Ho, Wo,
                                 last, 3);
                else if (K == 5)
                    bwd1_channel(xb, g + o, out + o, idx + o, gw + c * 25, gb + c, W, Ho, Wo,
                                 last, 5);
                else
                    bwd1_channel(xb, g + o, out + o, idx + o, gw + c * K * K, gb + c, W, Ho,
                                 Wo, last, K);
            }
        }
    }
    for (int c = 0; c < C; c++) {
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++)
                grad_w[c * s0 + ki * s2 + kj * s3] =
                    tsum(rows, threads, n_row, (c * K + ki) * K + kj);
        grad_b[c] = tsum(rows, threads, n_row, (size_t)C * K * K + c);
    }
    free(rows);
    return 0;
}

/* The second block for 16 output channels (LeNet's conv2): conv (Cin -> 16, KxK, bias) -> 2x2
   max-pool (an odd last row or column dropped, as max_pool2d does) -> ReLU, the 16 channels
   of a position held in one vector. y [N,Cin,H,W] (as the first block writes it); wt
   [K,K,Cin,16] (the weight as the caller lays it out); b [16]; out [N,16,Ho,Wo] (so that
   flattening it for fc1 is a view); idx [N,Ho,Wo,16]. */
#define MAXCIN 16 /* input channels of the second block (fused._block2 checks it) */
#define MAXK 15   /* its kernel size: input rows of at most 16 (fused._block2) and K < side.
                     The backward's accumulator arrays have these fixed sizes rather than
                     K*Cin: GCC keeps fixed-size arrays, not variable-length ones, in registers
                     (7.1-7.6 us per image instead of 8.4-8.9 for LeNet's 3x3) */
/* One image yn [Cin,H,W] -> on [16,Ho,Wo], in_ [Ho,Wo,16] (inlined for constant K, Cin). */
static inline __attribute__((always_inline)) void fwd16_image(
    const float *restrict yn, const float *restrict wt, const v16 bias, float *restrict on,
    uint8_t *restrict in_, int H, int W, const int Cin, const int K) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, HW = H * W, HoWo = Ho * Wo;
    for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) { /* a pool window's four positions, four chains */
            v16 q[4] = {bias, bias, bias, bias};
            for (int ki = 0; ki < K; ki++)
                for (int kj = 0; kj < K; kj++) {
                    const float *restrict yp = yn + (2 * i + ki) * W + 2 * j + kj;
                    const float *restrict wp = wt + (ki * K + kj) * Cin * 16;
                    for (int c = 0; c < Cin; c++) {
                        const v16 wv = ld16(wp + c * 16);
                        const float *restrict yc = yp + c * HW;
                        q[0] += yc[0] * wv;
                        q[1] += yc[1] * wv;
                        q[2] += yc[W] * wv;
                        q[3] += yc[W + 1] * wv;
                    }
                }
            vi16 at;
            const v16 v = pool_relu(q, &at);
            for (int o = 0; o < 16; o++) on[o * HoWo + i * Wo + j] = v[o];
            const vb16 a8 = __builtin_convertvector(at, vb16);
            memcpy(in_ + (i * Wo + j) * 16, &a8, sizeof a8);
        }
}

int cpr16_forward(const float *restrict y, const float *restrict wt, const float *restrict b,
                  float *restrict out, uint8_t *restrict idx, int N, int H, int W, int Cin,
                  int K, int threads) {
    const int64_t per = (int64_t)16 * ((H - K + 1) / 2) * ((W - K + 1) / 2);
    const v16 bias = ld16(b);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++) {
        const float *yn = y + (int64_t)n * H * W * Cin;
        fwd16_image(yn, wt, bias, out + n * per, idx + n * per, H, W, Cin, K);
    }
    return 0; /* nothing to allocate */
}

/* Backward of cpr16_forward, from g = dLoss/dout [N,16,Ho,Wo]: gy [N,Cin,H,W]; grad_w
   [16,Cin,K,K] written at the element strides s (the weight's own), grad_b [16].
   The input gradient is computed with the output channels outermost (GCt [16][P][16], a row
   of 16 output columns per vector), so that it needs no horizontal sums; the weight gradient
   keeps one vector accumulator per (kj, c) for each kernel row ki. */

/* One image's backward; always inlined, so that the calls below with constant K and Cin get
   loops the compiler unrolls and accumulators it keeps in registers. */
static inline __attribute__((always_inline)) void bwd16_image(
    const float *restrict yn, const float *restrict wt, const float *restrict gn,
    const float *restrict on, const uint8_t *restrict in_, float *restrict gyn,
    double *restrict gw, double *restrict gb, v16 *restrict GC, float *restrict GCt, int H,
    int W, const int Cin, const int K) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    const v16 zero = {0};
    const int HoWo = Ho * Wo;
    memset(GCt, 0, sizeof(float) * 16 * P * 16);
    v16 gbacc = zero;
    /* the conv output's gradient: at each window's first maximum, where ReLU let it by */
    for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
            const int k = i * Wo + j;
            v16 gv, ov;
            vi16 at;
            for (int o = 0; o < 16; o++) {
                gv[o] = gn[o * HoWo + k];
                ov[o] = on[o * HoWo + k];
                at[o] = in_[k * 16 + o];
            }
            gv = sel16(ov > zero, gv, zero); /* ReLU's mask */
            gbacc += gv;
            for (int p = 0; p < 4; p++) {
                const int r = 2 * i + (p >> 1), q = 2 * j + (p & 1);
                const v16 gp = sel16(at == p, gv, zero);
                GC[r * Q + q] = gp;
                for (int o = 0; o < 16; o++) GCt[(o * P + r) * 16 + q] = gp[o];
            }
        }
    /* weight gradient: gw[ki,kj,c,:] = sum over (r,q) of y[c, r+ki, q+kj] * GC[r,q,:] */
    for (int ki = 0; ki < K; ki++) {
        v16 acc[MAXK * MAXCIN];
        for (int a = 0; a < K * Cin; a++) acc[a] = zero;
        for (int r = 0; r < P; r++)
            for (int q = 0; q < Q; q++) {
                const v16 gc = GC[r * Q + q];
                const float *restrict yr = yn + (r + ki) * W + q;
                for (int kj = 0; kj < K; kj++)
                    for (int c = 0; c < Cin; c++) acc[kj * Cin + c] += yr[c * H * W + kj] * gc;
            }
        for (int a = 0; a < K * Cin; a++)
            for (int o = 0; o < 16; o++) gw[(ki * K * Cin + a) * 16 + o] += acc[a][o];
    }
    /* input gradient: gy[c, r+ki, q+kj] += sum over o of GC[r,q,o] * w[ki,kj,c,o], a row of
       16 columns per vector: for each conv row r, tacc[ki,kj] sums over o, shifted kj lanes
       right into the gradient rows r..r+K-1, held in registers (ring[0] is row r) */
    for (int c = 0; c < Cin; c++) {
        v16 ring[MAXK];
        for (int k = 0; k < K; k++) ring[k] = zero;
        float *restrict gyc = gyn + (size_t)c * H * W;
        for (int py = 0; py < H; py++) {
            if (py < P) {
                v16 tacc[MAXK * MAXK];
                for (int tp = 0; tp < K * K; tp++) tacc[tp] = zero;
                for (int o = 0; o < 16; o++) {
                    const v16 row = ld16(GCt + (o * P + py) * 16);
                    for (int tp = 0; tp < K * K; tp++)
                        tacc[tp] += row * wt[(tp * Cin + c) * 16 + o];
                }
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++) {
                        const vi16 shift = (LANE - kj + 16) & (LANE >= kj);
                        ring[ki] += __builtin_shuffle(zero, tacc[ki * K + kj], shift);
                    }
            }
            /* row py is complete; lanes past Q+K-1 are zero, W <= 16 (fused.applies2) */
            if (W == 16 || c + 1 < Cin || py + 1 < H)
                st16(gyc + py * W, ring[0]); /* the lanes past W land on a later row */
            else
                for (int px = 0; px < W; px++) gyc[py * W + px] = ring[0][px];
            for (int k = 0; k + 1 < K; k++) ring[k] = ring[k + 1];
            ring[K - 1] = zero;
        }
    }
    for (int o = 0; o < 16; o++) gb[o] += gbacc[o];
}

int cpr16_backward(const float *restrict y, const float *restrict wt, const float *restrict g,
                   const float *restrict out, const uint8_t *restrict idx, float *restrict gy,
                   float *restrict grad_w, float *restrict grad_b, int N, int H, int W, int Cin,
                   int K, int s0, int s1, int s2, int s3, int threads) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    const size_t taps = (size_t)K * K * Cin, n_row = taps * 16 + 16;
    double *rows = thread_rows(threads, n_row);
    if (rows == NULL) return 1;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        double *restrict gw = rows + t * n_row, *restrict gb = gw + taps * 16;
        const size_t n_gc = (size_t)P * Q, n_gct = (size_t)16 * P * 16;
        v16 *GC = alloc64(sizeof(v16) * n_gc + sizeof(float) * n_gct);
        if (GC == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        float *GCt = (float *)(GC + n_gc);
        for (int n = n0; n < n1 && GC != NULL; n++) {
            const float *yn = y + (int64_t)n * H * W * Cin;
            const float *gn = g + (int64_t)n * Ho * Wo * 16;
            const float *on = out + (int64_t)n * Ho * Wo * 16;
            const uint8_t *in_ = idx + (int64_t)n * Ho * Wo * 16;
            float *gyn = gy + (int64_t)n * H * W * Cin;
            if (K == 3 && Cin == 6) /* LeNet's tutorial net */
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, H, W, 6, 3);
            else if (K == 5 && Cin == 6) /* the current tutorial's LeNet-5 */
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, H, W, 6, 5);
            else
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, H, W, Cin, K);
        }
        free(GC);
    }
    for (int ki = 0; ki < K; ki++)
        for (int kj = 0; kj < K; kj++)
            for (int c = 0; c < Cin; c++)
                for (int o = 0; o < 16; o++)
                    grad_w[o * s0 + c * s1 + ki * s2 + kj * s3] =
                        tsum(rows, threads, n_row, (((size_t)ki * K + kj) * Cin + c) * 16 + o);
    for (int o = 0; o < 16; o++) grad_b[o] = tsum(rows, threads, n_row, taps * 16 + o);
    free(rows);
    return failed;
}

/* The whole tutorial network for inference (no gradient): both blocks as above for each
   image, then fc1 -> ReLU -> fc2 -> ReLU -> fc3 for GROUP images at a time, so that each weight
   vector loaded serves all of them. A dense layer's weight comes transposed and padded, wt
   [In][Op] with Op a multiple of 16 (zero columns and bias past the layer's outputs), so that
   each input value scales whole output vectors. Each image's sums run in input order, whatever
   the group, so results do not depend on the thread count. */
#define GROUP 4

static inline __attribute__((always_inline)) void dense_part(
    const float *restrict in, int ld_in, int In, const float *restrict wt,
    const float *restrict b, int Op, int o0, float *restrict out, int ld_out, int relu,
    const int G, const int NV) {
    const v16 zero = {0};
    v16 acc[GROUP][4]; /* fixed sizes (G <= GROUP, NV <= 4), so that they can live in registers */
    for (int g = 0; g < G; g++)
        for (int v = 0; v < NV; v++) acc[g][v] = ld16(b + o0 + 16 * v);
    for (int k = 0; k < In; k++) {
        v16 wv[4];
        for (int v = 0; v < NV; v++) wv[v] = ld16(wt + (size_t)k * Op + o0 + 16 * v);
        for (int g = 0; g < G; g++) {
            const float xk = in[g * ld_in + k];
            for (int v = 0; v < NV; v++) acc[g][v] += xk * wv[v];
        }
    }
    for (int g = 0; g < G; g++)
        for (int v = 0; v < NV; v++) {
            const v16 a = acc[g][v];
            st16(out + g * ld_out + o0 + 16 * v,
                 relu ? sel16((a > zero) | (a != a), a, zero) : a); /* relu(NaN) is NaN */
        }
}

/* out [G][Op] = (ReLU of) b + in [G][In] x wt: GROUP images at a time, then one by one; 64
   outputs at a time, then 16. */
static void dense(const float *restrict in, int ld_in, int In, const float *restrict wt,
                  const float *restrict b, int Op, float *restrict out, int ld_out, int relu,
                  int G) {
    int g = 0, o0;
    for (; g + GROUP <= G; g += GROUP) {
        const float *restrict ig = in + g * ld_in;
        float *restrict og = out + g * ld_out;
        for (o0 = 0; o0 + 64 <= Op; o0 += 64)
            dense_part(ig, ld_in, In, wt, b, Op, o0, og, ld_out, relu, GROUP, 4);
        for (; o0 < Op; o0 += 16)
            dense_part(ig, ld_in, In, wt, b, Op, o0, og, ld_out, relu, GROUP, 1);
    }
    for (; g < G; g++) {
        const float *restrict ig = in + g * ld_in;
        float *restrict og = out + g * ld_out;
        for (o0 = 0; o0 + 64 <= Op; o0 += 64)
            dense_part(ig, ld_in, In, wt, b, Op, o0, og, ld_out, relu, 1, 4);
        for (; o0 < Op; o0 += 16) dense_part(ig, ld_in, In, wt, b, Op, o0, og, ld_out, relu, 1, 1);
    }
}

/* x [N,H,W] -> scores [N,O3]. Block 1: w1 [C1,K1,K1], b1; block 2: wt2 [K2,K2,C1,16], b2;
   fc1..fc3: f1 [F,O1p], f2 [O1,O2p], f3 [O2,O3p] and padded biases (F = 16*Ho2*Wo2). */
int lenet_infer(const float *restrict x, const float *restrict w1, const float *restrict b1,
                const float *restrict wt2, const float *restrict b2, const float *restrict f1,
                const float *restrict fb1, const float *restrict f2, const float *restrict fb2,
                const float *restrict f3, const float *restrict fb3, float *restrict scores,
                int N, int H, int W, int C1, int K1, int K2, int O1, int O2, int O3,
                int threads) {
    const int H1 = (H - K1 + 1) / 2, W1 = (W - K1 + 1) / 2;
    const int H2 = (H1 - K2 + 1) / 2, W2 = (W1 - K2 + 1) / 2, F = 16 * H2 * W2;
    const int O1p = (O1 + 15) / 16 * 16, O2p = (O2 + 15) / 16 * 16, O3p = (O3 + 15) / 16 * 16;
    const int n1 = C1 * H1 * W1 + LANES, n2 = F + LANES; /* slack for block 1's vector stores */
    const size_t floats = n1 + (size_t)GROUP * (n2 + O1p + O2p + O3p);
    const int groups = (N + GROUP - 1) / GROUP;
    const v16 bias2 = ld16(b2);
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *h1 = malloc(sizeof(float) * floats + n1 + n2);
        if (h1 == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        float *h2 = h1 + n1, *a1 = h2 + GROUP * n2, *a2 = a1 + GROUP * O1p;
        float *s = a2 + GROUP * O2p;
        uint8_t *i1 = (uint8_t *)(s + GROUP * O3p), *i2 = i1 + n1;
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups; gi++) {
            if (h1 == NULL) continue;
            const int n0 = gi * GROUP, G = N - n0 < GROUP ? N - n0 : GROUP;
            for (int g = 0; g < G; g++) {
                fwd1_image(x + (int64_t)(n0 + g) * H * W, w1, b1, h1, i1, H, W, C1, K1, 1);
                fwd16_image(h1, wt2, bias2, h2 + g * n2, i2, H1, W1, C1, K2);
            }
            dense(h2, n2, F, f1, fb1, O1p, a1, O1p, 1, G);
            dense(a1, O1p, O1, f2, fb2, O2p, a2, O2p, 1, G);
            dense(a2, O2p, O2, f3, fb3, O3p, s, O3p, 0, G);
            for (int g = 0; g < G; g++)
                memcpy(scores + (int64_t)(n0 + g) * O3, s + g * O3p, sizeof(float) * O3);
        }
        free(h1);
    }
    return failed;
}
