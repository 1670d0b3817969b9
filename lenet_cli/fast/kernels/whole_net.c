/* The tutorial's LeNet on the CPU, float32: the whole network, conv1 -> 2x2 max-pool -> ReLU ->
   conv2 -> 2x2 max-pool -> ReLU -> fc1 -> ReLU -> fc2 -> ReLU -> fc3, forward (lenet_forward)
   and backward, all ten parameter gradients (lenet_backward), in one call each; and a whole
   training step, forward, loss, backward and the optimizer's update, in one call
   (lenet_train_step). Built and loaded by lenet_cli/fast/kernel.py; the forward and backward are
   registered as PyTorch ops by lenet_cli/fast/fused.py, the step is lenet_cli/fast/fused_step.py's.

   The interface is one struct, lenet_args, with its version and limits in lenet_args.h
   (mirrored by kernel.py's ctypes.Structure): every entry point checks the struct's version,
   size and sizes before touching memory.

   Semantics follow PyTorch's: the pool keeps the first maximum of each window in the order
   (0,0), (0,1), (1,0), (1,1), and a NaN wins (max_pool2d's rule); ReLU passes no gradient where
   its output is not > 0. Images are split across the OpenMP threads of the process, which are
   PyTorch's own once torch is loaded (the same libgomp). Every sum runs in a fixed order, so
   outputs do not depend on the thread count; the convolutions' weight and bias gradients are
   summed per thread in double and added in thread order.

   The vectors are GCC's vector extensions (16 floats), so the file builds for any target; with
   -march=native on an AVX-512 CPU each is one register. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lenet_args.h"

#define MAXS LENET_MAX_SIDE
#define LANES LENET_LANES

typedef float v16 __attribute__((vector_size(64)));
typedef float v4 __attribute__((vector_size(16)));
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
static inline void add4(float *p, v4 v) { /* p[0..3] += v */
    v4 r;
    memcpy(&r, p, sizeof r);
    r += v;
    memcpy(p, &r, sizeof r);
}
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

/* `call` with kk bound to K, as a constant for LeNet's 3x3 and 5x5 kernels (so that the
   always-inlined channel loops unroll: 5-12% faster than with K unknown), else as it is. */
#define WITH_K(K, call)                                  \
    do {                                                 \
        if ((K) == 3) { const int kk = 3; call; }        \
        else if ((K) == 5) { const int kk = 5; call; }   \
        else { const int kk = (K); call; }               \
    } while (0)

/* One image xn [H,W] -> on, in_ [C,Ho,Wo]; `slack`: 16 values may be written past them. */
static void fwd1_image(const float *restrict xn, const float *restrict w, const float *restrict b,
                       float *restrict on, uint8_t *restrict in_, int H, int W, int C, int K,
                       int slack) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2;
    float xb[MAXS * MAXS + XPAD];
    load_image(xb, xn, H, W);
    for (int c = 0; c < C; c++) {
        const int o = c * Ho * Wo, last = c + 1 == C && !slack;
        WITH_K(K, fwd1_channel(xb, w + c * kk * kk, b[c], on + o, in_ + o, W, Ho, Wo, last, kk));
    }
}

static inline double hsum(v16 v) {
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += v[l];
    return s;
}

/* The backward kernels sum the weight and bias gradients per thread in double, in rows of n
   (zeroed here, one per thread), and add the rows in thread order at the end (tsum), so the
   result depends on the thread count only through float rounding of the final sums. */
static double *thread_rows(int threads, size_t n) {
    return calloc((size_t)threads * n, sizeof(double));
}

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

/* One image's block-1 gradients: xn [H,W]; g, on, in_ [C,Ho,Wo]; gw [C*K*K] and gb [C] added
   to. `last`: nothing may be read past g, on and in_. */
static void bwd1_image(const float *restrict xn, const float *restrict g,
                       const float *restrict on, const uint8_t *restrict in_,
                       double *restrict gw, double *restrict gb, int H, int W, int C, int K,
                       int last) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2;
    float xb[MAXS * MAXS + XPAD];
    load_image(xb, xn, H, W);
    for (int c = 0; c < C; c++) {
        const int o = c * Ho * Wo, end = last && c + 1 == C;
        WITH_K(K, bwd1_channel(xb, g + o, on + o, in_ + o, gw + c * kk * kk, gb + c, W, Ho, Wo,
                               end, kk));
    }
}

/* The per-thread block-1 sums (rows of C*K*K + C) into grad_w (element strides s0, s2, s3)
   and grad_b. */
static void put1(const double *rows, int threads, size_t n_row, int C, int K, float *grad_w,
                 float *grad_b, int s0, int s2, int s3) {
    for (int c = 0; c < C; c++) {
        for (int ki = 0; ki < K; ki++)
            for (int kj = 0; kj < K; kj++)
                grad_w[c * s0 + ki * s2 + kj * s3] =
                    tsum(rows, threads, n_row, (c * K + ki) * K + kj);
        grad_b[c] = tsum(rows, threads, n_row, (size_t)C * K * K + c);
    }
}

/* The second block for 16 output channels (LeNet's conv2): conv (Cin -> 16, KxK, bias) -> 2x2
   max-pool (an odd last row or column dropped, as max_pool2d does) -> ReLU, the 16 channels
   of a position held in one vector. y [N,Cin,H,W] (as the first block writes it); wt
   [K,K,Cin,16] (the weight as the caller lays it out); b [16]; out [N,16,Ho,Wo] (so that
   flattening it for fc1 is a view); idx [N,Ho,Wo,16]. */
#define MAXCIN LENET_MAX_C1 /* input channels of the second block (check_args) */
#define MAXWIN 128 /* pool windows of a 3x3 second block: inputs of at most 31 rows (H <= 64)
                     and 16 columns (check_args) give 14 x 7 */
#define MAXK LENET_MAX_K2 /* its kernel size (check_args). The backward's accumulator arrays
                     have these fixed sizes rather than K*Cin: GCC keeps fixed-size arrays, not
                     variable-length ones, in registers */

/* NW (1 or 2) neighbouring pool windows (i, j..j+NW-1) of one image: four FMA chains each, so
   that two windows keep eight chains in flight (four alone wait on the FMA's latency), and
   each weight vector loaded serves both. */
static inline __attribute__((always_inline)) void fwd16_windows(
    const float *restrict yn, const float *restrict wt, const v16 bias, float *restrict on,
    uint8_t *restrict in_, int i, int j, int W, int HW, int Wo, int HoWo, const int Cin,
    const int K, const int NW) {
    v16 q[2][4];
    for (int w = 0; w < NW; w++)
        for (int p = 0; p < 4; p++) q[w][p] = bias;
    for (int ki = 0; ki < K; ki++)
        for (int kj = 0; kj < K; kj++) {
            const float *restrict yp = yn + (2 * i + ki) * W + 2 * j + kj;
            const float *restrict wp = wt + (ki * K + kj) * Cin * 16;
            for (int c = 0; c < Cin; c++) {
                const v16 wv = ld16(wp + c * 16);
                const float *restrict yc = yp + c * HW;
                for (int w = 0; w < NW; w++) {
                    q[w][0] += yc[2 * w] * wv;
                    q[w][1] += yc[2 * w + 1] * wv;
                    q[w][2] += yc[2 * w + W] * wv;
                    q[w][3] += yc[2 * w + W + 1] * wv;
                }
            }
        }
    for (int w = 0; w < NW; w++) {
        vi16 at;
        const v16 v = pool_relu(q[w], &at);
        for (int o = 0; o < 16; o++) on[o * HoWo + i * Wo + j + w] = v[o];
        const vb16 a8 = __builtin_convertvector(at, vb16);
        memcpy(in_ + (i * Wo + j + w) * 16, &a8, sizeof a8);
    }
}

/* One image yn [Cin,H,W] -> on [16,Ho,Wo], in_ [Ho,Wo,16], two windows at a time. */
static inline __attribute__((always_inline)) void fwd16_body(
    const float *restrict yn, const float *restrict wt, const v16 bias, float *restrict on,
    uint8_t *restrict in_, int H, int W, const int Cin, const int K) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, HW = H * W, HoWo = Ho * Wo;
    for (int i = 0; i < Ho; i++) {
        int j = 0;
        for (; j + 2 <= Wo; j += 2)
            fwd16_windows(yn, wt, bias, on, in_, i, j, W, HW, Wo, HoWo, Cin, K, 2);
        if (j < Wo) fwd16_windows(yn, wt, bias, on, in_, i, j, W, HW, Wo, HoWo, Cin, K, 1);
    }
}

/* fwd16_body with LeNet's sizes as constants, else generic. Not inlined into its caller: GCC
   compiles it better on its own (inlined into lenet_forward, it runs at about half the speed). */
static __attribute__((noinline)) void fwd16_image(
    const float *restrict yn, const float *restrict wt, const v16 bias, float *restrict on,
    uint8_t *restrict in_, int H, int W, const int Cin, const int K) {
    if (Cin == 6 && K == 3)
        fwd16_body(yn, wt, bias, on, in_, H, W, 6, 3);
    else if (Cin == 6 && K == 5)
        fwd16_body(yn, wt, bias, on, in_, H, W, 6, 5);
    else
        fwd16_body(yn, wt, bias, on, in_, H, W, Cin, K);
}

/* The second block's backward, from g = dLoss/dout [16,Ho,Wo] of one image: gy [Cin,H,W] and
   the weight and bias gradients added to gw [K,K,Cin,16] and gb [16]. The weight gradient keeps
   one vector accumulator per (kj, c) for each kernel row ki. The input gradient, with 3x3
   kernels (WS given), from each window's one maximum per output channel: a window's 4x4 input
   patch is one vector per input channel; else with the output channels outermost (GCt
   [16][P][16], a row of 16 output columns per vector), so that it needs no horizontal sums. */

/* One image's backward; always inlined, so that the calls below with constant K and Cin get
   loops the compiler unrolls and accumulators it keeps in registers. */
static inline __attribute__((always_inline)) void bwd16_image(
    const float *restrict yn, const float *restrict wt, const float *restrict gn,
    const float *restrict on, const uint8_t *restrict in_, float *restrict gyn,
    double *restrict gw, double *restrict gb, v16 *restrict GC, float *restrict GCt,
    const float *restrict WS, int H, int W, const int Cin, const int K) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    const v16 zero = {0};
    const int HoWo = Ho * Wo, sparse = WS != NULL;
    v16 gwin[MAXWIN];  /* with WS: each window's gradient and argmax, for the input gradient */
    vi16 awin[MAXWIN];
    if (!sparse) memset(GCt, 0, sizeof(float) * 16 * P * 16);
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
            if (sparse) gwin[k] = gv, awin[k] = at;
            for (int p = 0; p < 4; p++) {
                const int r = 2 * i + (p >> 1), q = 2 * j + (p & 1);
                const v16 gp = sel16(at == p, gv, zero);
                GC[r * Q + q] = gp;
                if (!sparse)
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
    if (sparse) { /* 3x3 kernels: a window's 4x4 input patch per channel is one vector */
        memset(gyn, 0, sizeof(float) * Cin * H * W);
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                const int k = i * Wo + j;
                v16 acc[MAXCIN];
                for (int c = 0; c < Cin; c++) acc[c] = zero;
                for (int o = 0; o < 16; o++) { /* channel o's one position in the window */
                    const float g = gwin[k][o];
                    const float *restrict ws = WS + ((size_t)awin[k][o] * 16 + o) * Cin * 16;
                    for (int c = 0; c < Cin; c++) acc[c] += g * ld16(ws + c * 16);
                }
                for (int c = 0; c < Cin; c++) { /* added in, a row of 4 at a time */
                    float *restrict dst = gyn + (size_t)c * H * W + 2 * i * W + 2 * j;
                    add4(dst, __builtin_shufflevector(acc[c], acc[c], 0, 1, 2, 3));
                    add4(dst + W, __builtin_shufflevector(acc[c], acc[c], 4, 5, 6, 7));
                    add4(dst + 2 * W, __builtin_shufflevector(acc[c], acc[c], 8, 9, 10, 11));
                    add4(dst + 3 * W, __builtin_shufflevector(acc[c], acc[c], 12, 13, 14, 15));
                }
            }
        for (int o = 0; o < 16; o++) gb[o] += gbacc[o];
        return;
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
            /* row py is complete; lanes past Q+K-1 are zero, W <= 16 (check_args) */
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

/* bwd16_image for LeNet's two shapes with constant sizes, else generic. */
static void bwd16_any(const float *yn, const float *wt, const float *gn, const float *on,
                      const uint8_t *in_, float *gyn, double *gw, double *gb, v16 *GC,
                      float *GCt, const float *WS, int H, int W, int Cin, int K) {
    if (K == 3 && Cin == 6) /* LeNet's tutorial net */
        bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, WS, H, W, 6, 3);
    else if (K == 5 && Cin == 6) /* the current tutorial's LeNet-5 */
        bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, NULL, H, W, 6, 5);
    else
        bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, K == 3 ? WS : NULL, H, W, Cin, K);
}

/* For 3x3 kernels, the sparse input gradient's weights: WS [4][16][Cin] vectors, the kernel of
   output channel o and input channel c placed in a 4x4 patch (lane 4a + b) at the window
   position p = (dr, dq) that was its maximum, zeros elsewhere. wt [3,3,Cin,16]. */
static void lay_patches(const float *wt, int Cin, float *WS) {
    memset(WS, 0, sizeof(float) * 4 * 16 * Cin * 16);
    for (int p = 0; p < 4; p++)
        for (int o = 0; o < 16; o++)
            for (int c = 0; c < Cin; c++)
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++)
                        WS[(((size_t)p * 16 + o) * Cin + c) * 16 + (ki + (p >> 1)) * 4 + kj +
                           (p & 1)] = wt[((ki * 3 + kj) * Cin + c) * 16 + o];
}

/* The per-thread block-2 sums (rows of K*K*Cin*16 + 16) into grad_w [16,Cin,K,K] (element
   strides s) and grad_b. */
static void put16(const double *rows, int threads, size_t n_row, int Cin, int K, float *grad_w,
                  float *grad_b, int s0, int s1, int s2, int s3) {
    const size_t taps = (size_t)K * K * Cin;
    for (int ki = 0; ki < K; ki++)
        for (int kj = 0; kj < K; kj++)
            for (int c = 0; c < Cin; c++)
                for (int o = 0; o < 16; o++)
                    grad_w[o * s0 + c * s1 + ki * s2 + kj * s3] =
                        tsum(rows, threads, n_row, (((size_t)ki * K + kj) * Cin + c) * 16 + o);
    for (int o = 0; o < 16; o++) grad_b[o] = tsum(rows, threads, n_row, taps * 16 + o);
}

/* Scratch for bwd16_image: GC [P*Q] vectors and GCt [16][P][16] floats, 64-byte aligned. */
static v16 *gc_alloc(int P, int Q) {
    return alloc64(sizeof(v16) * P * Q + sizeof(float) * 16 * P * 16);
}

/* The whole tutorial network, conv1 -> pool -> ReLU -> conv2 -> pool -> ReLU -> fc1 -> ReLU ->
   fc2 -> ReLU -> fc3, forward (lenet_forward) and backward (lenet_backward) in one call each:
   the blocks as above image by image, the dense layers GROUP images at a time so that each
   weight vector loaded serves all of them. The dense weights are used as they are, [O][I]
   rows, with rows padded to a multiple of 16 (Ip) for fc2 and fc3 (fc1's 16*H2*W2 inputs are
   one already): the forward takes dot products of input and weight rows, the backward scales
   weight rows by the output gradient. Each image's sums run in a fixed order, whatever the
   group and thread, so the outputs do not depend on the thread count. */
#define GROUP 4

static inline __attribute__((always_inline)) void rows_part(
    const float *restrict in, int ld_in, int In, const float *restrict w, int Op, int o0,
    float *restrict out, int ld_out, const int G, const int NV) {
    const v16 zero = {0};
    v16 acc[GROUP][4]; /* fixed sizes (G <= GROUP, NV <= 4), so that they can live in registers */
    for (int g = 0; g < G; g++)
        for (int v = 0; v < NV; v++) acc[g][v] = zero;
    for (int k = 0; k < In; k++) {
        v16 wv[4];
        for (int v = 0; v < NV; v++) wv[v] = ld16(w + (size_t)k * Op + o0 + 16 * v);
        for (int g = 0; g < G; g++) {
            const float xk = in[g * ld_in + k];
            for (int v = 0; v < NV; v++) acc[g][v] += xk * wv[v];
        }
    }
    for (int g = 0; g < G; g++)
        for (int v = 0; v < NV; v++) st16(out + g * ld_out + o0 + 16 * v, acc[g][v]);
}

/* out [G][Op] = in [G][In] x w [In][Op], the sum of w's rows scaled by the inputs: a dense
   layer's input gradient from its output gradient (In = its outputs) and its weight rows
   (Op = its inputs, padded to a multiple of 16). GROUP images at a time, then one by one; 64
   columns at a time, then 16. */
static void scaled_rows(const float *restrict in, int ld_in, int In, const float *restrict w,
                        int Op, float *restrict out, int ld_out, int G) {
    int g = 0, o0;
    for (; g + GROUP <= G; g += GROUP) {
        const float *restrict ig = in + g * ld_in;
        float *restrict og = out + g * ld_out;
        for (o0 = 0; o0 + 64 <= Op; o0 += 64)
            rows_part(ig, ld_in, In, w, Op, o0, og, ld_out, GROUP, 4);
        for (; o0 < Op; o0 += 16) rows_part(ig, ld_in, In, w, Op, o0, og, ld_out, GROUP, 1);
    }
    for (; g < G; g++) {
        const float *restrict ig = in + g * ld_in;
        float *restrict og = out + g * ld_out;
        for (o0 = 0; o0 + 64 <= Op; o0 += 64) rows_part(ig, ld_in, In, w, Op, o0, og, ld_out, 1, 4);
        for (; o0 < Op; o0 += 16) rows_part(ig, ld_in, In, w, Op, o0, og, ld_out, 1, 1);
    }
}

static const vi16 SWAP8 = {8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7};
static const vi16 SWAP4 = {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11};
static const vi16 SWAP2 = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
static const vi16 SWAP1 = {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};

/* The sum of a vector's lanes, as a tree (a fixed order). */
static inline float lanes_sum(v16 v) {
    v += __builtin_shuffle(v, SWAP8);
    v += __builtin_shuffle(v, SWAP4);
    v += __builtin_shuffle(v, SWAP2);
    v += __builtin_shuffle(v, SWAP1);
    return v[0];
}

/* out[g][o0..o0+NO) = (ReLU of) b + the dot products of in[g] [Ip] with the rows of w [O][Ip]. */
static inline __attribute__((always_inline)) void dot_part(
    const float *restrict in, int ld_in, int Ip, const float *restrict w,
    const float *restrict b, int o0, float *restrict out, int ld_out, int relu, const int G,
    const int NO) {
    const v16 zero = {0};
    v16 acc[GROUP][4]; /* fixed sizes (G <= GROUP, NO <= 4), so that they can live in registers */
    for (int g = 0; g < G; g++)
        for (int o = 0; o < NO; o++) acc[g][o] = zero;
    for (int k = 0; k < Ip; k += 16) {
        v16 xv[GROUP];
        for (int g = 0; g < G; g++) xv[g] = ld16(in + g * ld_in + k);
        for (int o = 0; o < NO; o++) {
            const v16 wv = ld16(w + (size_t)(o0 + o) * Ip + k);
            for (int g = 0; g < G; g++) acc[g][o] += xv[g] * wv;
        }
    }
    for (int g = 0; g < G; g++)
        for (int o = 0; o < NO; o++) {
            const float r = b[o0 + o] + lanes_sum(acc[g][o]);
            out[g * ld_out + o0 + o] = relu && !(r > 0.0f) && r == r ? 0.0f : r; /* relu(NaN) */
        }
}

/* A dense layer's forward: out [G][Op] = (ReLU of) b + in [G][Ip] . w [O][Ip] rows, GROUP
   images at a time, then one by one; zeros past O (the next layer's padding). */
static void dot_dense(const float *restrict in, int ld_in, int Ip, const float *restrict w,
                      const float *restrict b, int O, int Op, float *restrict out, int relu,
                      int G) {
    for (int g0 = 0; g0 < G; g0 += GROUP) {
        const int n = G - g0 < GROUP ? G - g0 : GROUP;
        const float *restrict ig = in + g0 * ld_in;
        float *restrict og = out + g0 * Op;
        int o = 0;
        if (n == GROUP) {
            for (; o + 4 <= O; o += 4) dot_part(ig, ld_in, Ip, w, b, o, og, Op, relu, GROUP, 4);
            for (; o < O; o++) dot_part(ig, ld_in, Ip, w, b, o, og, Op, relu, GROUP, 1);
        } else
            for (int g = 0; g < n; g++) {
                for (o = 0; o + 4 <= O; o += 4)
                    dot_part(ig + g * ld_in, ld_in, Ip, w, b, o, og + g * Op, Op, relu, 1, 4);
                for (; o < O; o++)
                    dot_part(ig + g * ld_in, ld_in, Ip, w, b, o, og + g * Op, Op, relu, 1, 1);
            }
        for (int g = 0; g < n; g++)
            for (int p = O; p < Op; p++) og[g * Op + p] = 0.0f;
    }
}

/* The interface (lenet_args.h): the version, the struct's size and the limits, as this build
   has them. */
int lenet_abi(void) { return LENET_ABI; }
int lenet_args_size(void) { return (int)sizeof(lenet_args); }
const int32_t lenet_max_side = LENET_MAX_SIDE, lenet_max_c1 = LENET_MAX_C1,
              lenet_max_k2 = LENET_MAX_K2, lenet_max_w1 = LENET_MAX_W1, lenet_lanes = LENET_LANES;

/* The sizes derived from lenet_args. */
typedef struct {
    int N, H, W, C1, K1, K2, O1, O2, O3, threads;
    int H1, W1, H2, W2, F, O1p, O2p, O3p, per1, per2;
    const int32_t *s1, *s2;
} Net;

static Net net_of(const lenet_args *a) {
    Net n = {a->n, a->h, a->w, a->c1, a->k1, a->k2, a->o1, a->o2, a->o3, a->threads};
    n.H1 = (n.H - n.K1 + 1) / 2, n.W1 = (n.W - n.K1 + 1) / 2;
    n.H2 = (n.H1 - n.K2 + 1) / 2, n.W2 = (n.W1 - n.K2 + 1) / 2, n.F = 16 * n.H2 * n.W2;
    n.O1p = (n.O1 + 15) / 16 * 16, n.O2p = (n.O2 + 15) / 16 * 16, n.O3p = (n.O3 + 15) / 16 * 16;
    n.per1 = n.C1 * n.H1 * n.W1, n.per2 = n.H2 * n.W2 * 16;
    n.s1 = a->s1, n.s2 = a->s2;
    return n;
}

/* LENET_OK when `a` is a lenet_args of this version whose sizes the kernels handle: every
   buffer above is sized for them (the stack image, 16-lane rows, MAXCIN, MAXK). */
static int check_args(const lenet_args *a) {
    if (a == NULL || a->abi != LENET_ABI || a->size != (int32_t)sizeof(lenet_args))
        return LENET_BAD_ABI;
    const int h1 = (a->h - a->k1 + 1) / 2, w1 = (a->w - a->k1 + 1) / 2;
    const int ok = a->n >= 1 && a->threads >= 1 && a->k1 >= 1 && a->c1 >= 1 &&
                   a->c1 <= MAXCIN && a->h <= MAXS && a->w <= MAXS && a->k1 + 1 <= a->h &&
                   a->k1 + 1 <= a->w && a->k2 >= 1 && a->k2 <= MAXK && w1 <= LENET_MAX_W1 &&
                   a->k2 + 1 <= h1 && a->k2 + 1 <= w1 && a->o1 >= 1 && a->o2 >= 1 &&
                   a->o3 >= 1 && a->x != NULL;
    if (!ok) return LENET_BAD_SIZES;
    for (int i = 0; i < 10; i++)
        if (a->prm[i] == NULL) return LENET_BAD_SIZES;
    if (a->rows != NULL)
        for (int n = 0; n < a->n; n++)
            if (a->rows[n] < 0 || a->rows[n] >= a->images) return LENET_BAD_SIZES;
    return LENET_OK;
}

/* Where the batch's n-th image and label are in x and labels. */
static inline int64_t row_of(const lenet_args *a, int64_t n) {
    return a->rows != NULL ? a->rows[n] : n;
}

/* conv2's weight [16,C1,K2,K2] (strides s) as [K2,K2,C1,16], the layout fwd16/bwd16 read. */
static void lay_conv2(const float *w, const int32_t *s, int C1, int K, float *wt) {
    for (int ki = 0; ki < K; ki++)
        for (int kj = 0; kj < K; kj++)
            for (int c = 0; c < C1; c++)
                for (int o = 0; o < 16; o++)
                    wt[((ki * K + kj) * C1 + c) * 16 + o] =
                        w[o * s[0] + c * s[1] + ki * s[2] + kj * s[3]];
}

/* v [n] padded with zeros to np. */
static void lay_pad(const float *v, int n, int np, float *dst) {
    memcpy(dst, v, sizeof(float) * n);
    memset(dst + n, 0, sizeof(float) * (np - n));
}

/* The weights as the kernels read them, in one 64-byte aligned allocation (NULL if none):
   conv1 [C1,K1,K1], conv2 [K2,K2,C1,16], fc2 [O2][O1p] and fc3 [O3][O2p] rows padded. fc1 is
   read where it is. */
typedef struct {
    float *w1, *wt2, *W2, *W3;
} Layout;

static Layout lay_net(const float *const *prm, const Net *z) {
    const int k1 = z->C1 * z->K1 * z->K1, k2 = z->K2 * z->K2 * z->C1 * 16;
    const size_t n = k1 + k2 + (size_t)z->O2 * z->O1p + (size_t)z->O3 * z->O2p;
    Layout l = {alloc64(sizeof(float) * n)};
    if (l.w1 == NULL) return l;
    l.wt2 = l.w1 + k1, l.W2 = l.wt2 + k2, l.W3 = l.W2 + (size_t)z->O2 * z->O1p;
    for (int c = 0; c < z->C1; c++)
        for (int ki = 0; ki < z->K1; ki++)
            for (int kj = 0; kj < z->K1; kj++)
                l.w1[(c * z->K1 + ki) * z->K1 + kj] =
                    prm[0][c * z->s1[0] + ki * z->s1[2] + kj * z->s1[3]];
    lay_conv2(prm[2], z->s2, z->C1, z->K2, l.wt2);
    for (int o = 0; o < z->O2; o++) lay_pad(prm[6] + o * z->O1, z->O1, z->O1p, l.W2 + o * z->O1p);
    for (int o = 0; o < z->O3; o++) lay_pad(prm[8] + o * z->O2, z->O2, z->O2p, l.W3 + o * z->O2p);
    return l;
}

/* a->x -> a->scores. For training, out1..a2 keep what lenet_backward needs; for inference
   they are NULL and per-thread buffers stand in. */
int lenet_forward(const lenet_args *a) {
    const int bad = check_args(a);
    if (bad) return bad;
    const Net z = net_of(a);
    const float *restrict x = a->x, *const *prm = a->prm;
    float *restrict scores = a->scores, *out1 = a->out1, *out2 = a->out2, *a1 = a->a1,
                    *a2 = a->a2;
    uint8_t *idx1 = a->idx1, *idx2 = a->idx2;
    if (scores == NULL ||
        (out1 != NULL && (idx1 == NULL || out2 == NULL || idx2 == NULL || a1 == NULL || a2 == NULL)))
        return LENET_BAD_SIZES;
    const int save = out1 != NULL, groups = (z.N + GROUP - 1) / GROUP;
    const int n1 = z.per1 + LANES, n2 = z.F + LANES;
    const Layout l = lay_net(prm, &z);
    if (l.w1 == NULL) return LENET_NO_MEMORY;
    const size_t floats =
        (size_t)GROUP * z.O3p + (save ? 0 : n1 + (size_t)GROUP * (n2 + z.O1p + z.O2p));
    int failed = 0;
#pragma omp parallel num_threads(z.threads)
    {
        float *buf = malloc(sizeof(float) * floats + (save ? 0 : n1 + z.per2));
        if (buf == NULL) {
#pragma omp atomic write
            failed = LENET_NO_MEMORY;
        }
        float *s = buf, *h1 = s + GROUP * z.O3p, *h2 = h1 + n1, *b1 = h2 + GROUP * n2;
        float *b2 = b1 + GROUP * z.O1p;
        uint8_t *i1 = (uint8_t *)(b2 + GROUP * z.O2p), *i2 = i1 + n1;
        const v16 bias2 = ld16(prm[3]);
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups; gi++) {
            if (buf == NULL) continue;
            const int n0 = gi * GROUP, G = z.N - n0 < GROUP ? z.N - n0 : GROUP;
            for (int g = 0; g < G; g++) {
                const int64_t n = n0 + g;
                float *o1 = save ? out1 + n * z.per1 : h1;
                uint8_t *x1 = save ? idx1 + n * z.per1 : i1;
                fwd1_image(x + row_of(a, n) * z.H * z.W, l.w1, prm[1], o1, x1, z.H, z.W, z.C1,
                           z.K1, !save);
                fwd16_image(o1, l.wt2, bias2, save ? out2 + n * z.F : h2 + g * n2,
                            save ? idx2 + n * z.per2 : i2, z.H1, z.W1, z.C1, z.K2);
            }
            const float *f = save ? out2 + (int64_t)n0 * z.F : h2;
            float *A1 = save ? a1 + (int64_t)n0 * z.O1p : b1;
            float *A2 = save ? a2 + (int64_t)n0 * z.O2p : b2;
            dot_dense(f, save ? z.F : n2, z.F, prm[4], prm[5], z.O1, z.O1p, A1, 1, G);
            dot_dense(A1, z.O1p, z.O1p, l.W2, prm[7], z.O2, z.O2p, A2, 1, G);
            dot_dense(A2, z.O2p, z.O2p, l.W3, prm[9], z.O3, z.O3p, s, 0, G);
            for (int g = 0; g < G; g++)
                memcpy(scores + (int64_t)(n0 + g) * z.O3, s + g * z.O3p, sizeof(float) * z.O3);
        }
        free(buf);
    }
    free(l.w1);
    return failed;
}

/* g [n] = 0 where a [n] is not > 0 (ReLU's gradient); n a multiple of 16. */
static void relu_grad(float *restrict g, const float *restrict a, int n) {
    const v16 zero = {0};
    for (int i = 0; i < n; i += 16) st16(g + i, sel16(ld16(a + i) > zero, ld16(g + i), zero));
}

/* A dense layer's weight gradient, rows o..o+NO and columns v..v+16*NV of grad [O][I]:
   the sum over images nb..nb+ne of gy[n][o] * xin[n][columns], added to what earlier images
   gave unless `first`. xin's rows (ldx) reach past I to a multiple of 16. */
static inline __attribute__((always_inline)) void wgrad_part(
    const float *restrict gy, int ldg, const float *restrict xin, int ldx, int nb, int ne,
    int I, int o, int v, float *restrict grad, int first, const int NO, const int NV) {
    const v16 zero = {0};
    v16 acc[4][4];
    for (int j = 0; j < NO; j++)
        for (int q = 0; q < NV; q++) acc[j][q] = zero;
    for (int n = nb; n < nb + ne; n++) {
        v16 xv[4];
        for (int q = 0; q < NV; q++) xv[q] = ld16(xin + (size_t)n * ldx + v + 16 * q);
        for (int j = 0; j < NO; j++) {
            const float g = gy[(size_t)n * ldg + o + j];
            for (int q = 0; q < NV; q++) acc[j][q] += g * xv[q];
        }
    }
    for (int j = 0; j < NO; j++)
        for (int q = 0; q < NV; q++) {
            float *dst = grad + (size_t)(o + j) * I + v + 16 * q;
            const int cols = I - v - 16 * q < 16 ? I - v - 16 * q : 16;
            for (int c = 0; c < cols; c++) dst[c] = (first ? 0.0f : dst[c]) + acc[j][q][c];
        }
}

#define NB 256 /* images per pass over a weight gradient: their inputs stay in L2 */

/* Rows o0..o1 of a dense layer's gradients: grad [O][I] = sum over images of gy[n][o] *
   xin[n][0..I) and gb[o] = sum of gy[n][o], in image order (NB images at a time), so that
   they do not depend on which thread computes them. */
static void wgrad(const float *restrict gy, int ldg, const float *restrict xin, int ldx, int N,
                  int I, int o0, int o1, float *restrict grad, float *restrict gb) {
    const int Ip = (I + 15) / 16 * 16;
    for (int o = o0; o < o1; o++) {
        double sum = 0.0;
        for (int n = 0; n < N; n++) sum += gy[(size_t)n * ldg + o];
        gb[o] = (float)sum;
    }
    for (int nb = 0; nb < N; nb += NB) {
        const int ne = N - nb < NB ? N - nb : NB, first = nb == 0;
        int o = o0;
        for (; o + 4 <= o1; o += 4) {
            int v = 0;
            for (; v + 64 <= Ip; v += 64)
                wgrad_part(gy, ldg, xin, ldx, nb, ne, I, o, v, grad, first, 4, 4);
            for (; v < Ip; v += 16)
                wgrad_part(gy, ldg, xin, ldx, nb, ne, I, o, v, grad, first, 4, 1);
        }
        for (; o < o1; o++)
            for (int v = 0; v < Ip; v += 16)
                wgrad_part(gy, ldg, xin, ldx, nb, ne, I, o, v, grad, first, 1, 1);
    }
}

/* Thread t's share of O rows, in blocks of 4. */
static void rows_of(int O, int t, int nt, int *o0, int *o1) {
    const int blocks = (O + 3) / 4;
    *o0 = 4 * (blocks * t / nt);
    *o1 = 4 * (blocks * (t + 1) / nt);
    if (*o1 > O) *o1 = O;
}

/* All ten gradients from gs = dLoss/dscores [N,O3] and what lenet_forward kept; grads: the
   parameters' gradients in `prm`'s order, the convolutions' at their weights' strides, the
   dense layers' [O][I]. Each thread first takes its images back through the network (the
   convolutions' gradients summed per thread in double), keeping the dense layers' output
   gradients; then the threads split the dense layers' weight gradients by rows. */
int lenet_backward(const lenet_args *a) {
    const int bad = check_args(a);
    if (bad) return bad;
    if (a->gscores == NULL || a->out1 == NULL || a->idx1 == NULL || a->out2 == NULL ||
        a->idx2 == NULL || a->a1 == NULL || a->a2 == NULL)
        return LENET_BAD_SIZES;
    for (int i = 0; i < 10; i++)
        if (a->grads[i] == NULL) return LENET_BAD_SIZES;
    const Net z = net_of(a);
    const float *restrict x = a->x, *const *prm = a->prm, *restrict gs = a->gscores;
    const float *out1 = a->out1, *out2 = a->out2, *a1 = a->a1, *a2 = a->a2;
    const uint8_t *idx1 = a->idx1, *idx2 = a->idx2;
    float *const *grads = a->grads;
    const int P = 2 * ((z.H1 - z.K2 + 1) / 2), Q = 2 * ((z.W1 - z.K2 + 1) / 2);
    const size_t taps = (size_t)z.K2 * z.K2 * z.C1;
    const size_t r1 = (size_t)z.C1 * z.K1 * z.K1 + z.C1, r2 = taps * 16 + 16; /* double rows */
    double *conv_rows = thread_rows(z.threads, r1 + r2);
    float *ga = malloc(sizeof(float) * z.N * ((size_t)z.O2p + z.O1p)); /* dense out grads */
    const Layout l = lay_net(prm, &z);
    float *WS = z.K2 == 3 ? alloc64(sizeof(float) * 4 * 16 * z.C1 * 16) : NULL;
    if (conv_rows == NULL || ga == NULL || l.w1 == NULL || (z.K2 == 3 && WS == NULL)) {
        free(conv_rows), free(ga), free(l.w1), free(WS);
        return LENET_NO_MEMORY;
    }
    if (WS != NULL) lay_patches(l.wt2, z.C1, WS);
    float *ga2 = ga, *ga1 = ga + (size_t)z.N * z.O2p;
    int failed = 0;
#pragma omp parallel num_threads(z.threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int m0 = (int)((int64_t)z.N * t / nt), m1 = (int)((int64_t)z.N * (t + 1) / nt);
        double *g1 = conv_rows + t * (r1 + r2), *g2 = g1 + r1;
        float *gf = malloc(sizeof(float) * ((size_t)GROUP * z.F + z.per1 + LANES));
        v16 *GC = gc_alloc(P, Q);
        if (gf == NULL || GC == NULL) {
#pragma omp atomic write
            failed = LENET_NO_MEMORY;
        }
        float *gy = gf + GROUP * z.F, *GCt = (float *)(GC + (size_t)P * Q);
        for (int n = m0; n < m1 && gf != NULL && GC != NULL; n += GROUP) {
            const int G = m1 - n < GROUP ? m1 - n : GROUP;
            float *ga2n = ga2 + (int64_t)n * z.O2p, *ga1n = ga1 + (int64_t)n * z.O1p;
            scaled_rows(gs + (int64_t)n * z.O3, z.O3, z.O3, l.W3, z.O2p, ga2n, z.O2p, G);
            relu_grad(ga2n, a2 + (int64_t)n * z.O2p, G * z.O2p);
            scaled_rows(ga2n, z.O2p, z.O2, l.W2, z.O1p, ga1n, z.O1p, G);
            relu_grad(ga1n, a1 + (int64_t)n * z.O1p, G * z.O1p);
            scaled_rows(ga1n, z.O1p, z.O1, prm[4], z.F, gf, z.F, G);
            for (int g = 0; g < G; g++) {
                const int64_t m = n + g;
                bwd16_any(out1 + m * z.per1, l.wt2, gf + g * z.F, out2 + m * z.F,
                          idx2 + m * z.per2, gy, g2, g2 + taps * 16, GC, GCt, WS, z.H1, z.W1, z.C1,
                          z.K2);
                bwd1_image(x + row_of(a, m) * z.H * z.W, gy, out1 + m * z.per1,
                           idx1 + m * z.per1, g1, g1 + z.C1 * z.K1 * z.K1, z.H, z.W, z.C1,
                           z.K1, m + 1 == z.N);
            }
        }
        free(gf);
        free(GC);
#pragma omp barrier
        int o0, o1;
        rows_of(z.O1, t, nt, &o0, &o1);
        wgrad(ga1, z.O1p, out2, z.F, z.N, z.F, o0, o1, grads[4], grads[5]);
        rows_of(z.O2, t, nt, &o0, &o1);
        wgrad(ga2, z.O2p, a1, z.O1p, z.N, z.O1, o0, o1, grads[6], grads[7]);
        rows_of(z.O3, t, nt, &o0, &o1);
        wgrad(gs, z.O3, a2, z.O2p, z.N, z.O2, o0, o1, grads[8], grads[9]);
    }
    if (!failed) {
        const int32_t *s1 = z.s1, *s2 = z.s2;
        put1(conv_rows, z.threads, r1 + r2, z.C1, z.K1, grads[0], grads[1], s1[0], s1[2], s1[3]);
        put16(conv_rows + r1, z.threads, r1 + r2, z.C1, z.K2, grads[2], grads[3], s2[0], s2[1],
              s2[2], s2[3]);
    }
    free(conv_rows), free(ga), free(l.w1), free(WS);
    return failed;
}

/* The loss of scores s [N,O3] against the batch's labels, per image in double, summed in image
   order; its gradient (of the batch mean) into gs [N,O3]; the hits (torch.argmax's rule: the
   first maximum, a NaN wins). Cross-entropy takes log-softmax of the scores; MSE compares the raw
   scores with the targets (nn.MSELoss: the mean over all N*O3 values). */
static int loss_grad(const lenet_args *a, const float *s, int N, int O, float *gs, double *mean,
                     int64_t *hits) {
    const int kind = a->loss;
    const double smoothing = a->smoothing;
    double total = 0.0;
    int64_t right = 0;
    const double off = smoothing / O, on = 1.0 - smoothing + off;
    for (int n = 0; n < N; n++) {
        const float *sn = s + (int64_t)n * O;
        float *gn = gs + (int64_t)n * O;
        const int64_t label = a->labels[row_of(a, n)];
        if (label < 0 || label >= O) return LENET_BAD_LABEL;
        int best = 0;
        for (int c = 1; c < O; c++)
            if (sn[best] == sn[best] && (sn[c] > sn[best] || sn[c] != sn[c])) best = c;
        right += best == label;
        if (kind == LENET_MSE) {
            for (int c = 0; c < O; c++) {
                const double d = (double)sn[c] - (c == label ? on : off);
                total += d * d;
                gn[c] = (float)(2.0 * d / ((double)N * O));
            }
            continue;
        }
        double top = sn[0];
        for (int c = 1; c < O; c++) top = sn[c] > top ? sn[c] : top;
        double z = 0.0;
        for (int c = 0; c < O; c++) z += exp((double)sn[c] - top);
        const double lz = top + log(z);
        for (int c = 0; c < O; c++) {
            const double t = c == label ? on : off;
            total -= t * ((double)sn[c] - lz);
            gn[c] = (float)((exp((double)sn[c] - lz) - t) / N);
        }
    }
    *mean = kind == LENET_MSE ? total / ((double)N * O) : total / N;
    *hits = right;
    return LENET_OK;
}

/* The optimizer's update of one parameter p [n] from its gradient g, as torch.optim's fused
   CPU kernels compute it (float arithmetic, coefficients in double): SGD with momentum,
   dampening, Nesterov and weight decay (its momentum buffer already made by torch's first
   step); Adam and AdamW (bias corrections from the step count after this step). */
static void update(const lenet_args *a, float *restrict p, const float *restrict g,
                   float *restrict m, float *restrict v, int64_t lo, int64_t hi, double step) {
    const float sign = a->maximize ? -1.0f : 1.0f, wd = (float)a->weight_decay;
    if (a->opt == LENET_SGD) {
        const float lr = (float)a->lr, mu = (float)a->momentum, keep = 1.0f - (float)a->dampening;
        for (int64_t i = lo; i < hi; i++) {
            float d = sign * g[i];
            if (wd != 0.0f) d += wd * p[i];
            if (m != NULL) {
                m[i] = mu * m[i] + keep * d;
                d = a->nesterov ? d + mu * m[i] : m[i];
            }
            p[i] -= lr * d;
        }
        return;
    }
    const double bc1 = 1.0 - pow(a->beta1, step), bc2 = 1.0 - pow(a->beta2, step);
    const float step_size = (float)(a->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)(1.0 - a->beta1), b2 = (float)a->beta2, c2 = (float)(1.0 - a->beta2);
    const float eps = (float)a->eps, decay = (float)(1.0 - a->lr * a->weight_decay);
    const int adamw = a->opt == LENET_ADAMW;
    for (int64_t i = lo; i < hi; i++) {
        float d = sign * g[i], w = p[i];
        if (wd != 0.0f) {
            if (adamw) w *= decay;
            else d += wd * w;
        }
        m[i] += b1 * (d - m[i]); /* lerp(m, d, 1 - beta1) */
        v[i] = b2 * v[i] + c2 * d * d;
        p[i] = w - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

/* The element counts of Net's ten parameters, in prm's order. */
static void param_sizes(const Net *z, int64_t numel[10]) {
    const int64_t k1 = (int64_t)z->C1 * z->K1 * z->K1, k2 = (int64_t)16 * z->C1 * z->K2 * z->K2;
    const int64_t s[10] = {k1, z->C1, k2, 16, (int64_t)z->O1 * z->F, z->O1,
                           (int64_t)z->O2 * z->O1, z->O2, (int64_t)z->O3 * z->O2, z->O3};
    memcpy(numel, s, sizeof s);
}

/* Gradient clipping over the ten gradients (lenet_args.h: clip_value, clip_norm). The squared
   norm is summed in double over fixed chunks of each gradient, eight running sums per chunk,
   and the chunks' sums are added in order: the same norm at any number of threads. */
#define CLIP_CHUNK 4096
static int clip_grads(lenet_args *a, const Net *z) {
    const int by_value = a->clip_value > 0, by_norm = a->clip_norm > 0;
    if (!by_value && !by_norm) return LENET_OK;
    int64_t numel[10], first[11];
    param_sizes(z, numel);
    first[0] = 0;
    for (int i = 0; i < 10; i++)
        first[i + 1] = first[i] + (numel[i] + CLIP_CHUNK - 1) / CLIP_CHUNK;
    const int64_t chunks = first[10];
    double *part = by_norm ? malloc(sizeof(double) * chunks) : NULL;
    if (by_norm && part == NULL) return LENET_NO_MEMORY;
    const float v = (float)a->clip_value;
#pragma omp parallel for num_threads(z->threads) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int i = 0;
        while (c >= first[i + 1]) i++;
        float *restrict g = a->grads[i];
        const int64_t lo = (c - first[i]) * CLIP_CHUNK;
        const int64_t hi = lo + CLIP_CHUNK < numel[i] ? lo + CLIP_CHUNK : numel[i];
        if (by_value)
            for (int64_t e = lo; e < hi; e++) g[e] = g[e] > v ? v : (g[e] < -v ? -v : g[e]);
        if (by_norm) {
            double s[8] = {0};
            int64_t e = lo;
            for (; e + 8 <= hi; e += 8)
                for (int k = 0; k < 8; k++) s[k] += (double)g[e + k] * g[e + k];
            for (; e < hi; e++) s[0] += (double)g[e] * g[e];
            part[c] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        }
    }
    if (!by_norm) return LENET_OK;
    double total = 0.0;
    for (int64_t c = 0; c < chunks; c++) total += part[c];
    free(part);
    const double coef = a->clip_norm / (sqrt(total) + 1e-6);
    if (!(coef < 1.0)) return LENET_OK; /* NaN too: the non-finite loss stops the run */
    const float f = (float)coef;
#pragma omp parallel num_threads(z->threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int i = 0; i < 10; i++) {
            float *restrict g = a->grads[i];
            for (int64_t e = numel[i] * t / nt; e < numel[i] * (t + 1) / nt; e++) g[e] *= f;
        }
    }
    return LENET_OK;
}

/* One training step: lenet_forward into the kept buffers, the loss and dLoss/dscores,
   lenet_backward into grads, clipped (clip_grads), then (unless LENET_GRADS_ONLY) the
   optimizer's update, split across the threads element by element (so the result does not
   depend on their number). */
int lenet_train_step(lenet_args *a) {
    const int bad = check_args(a);
    if (bad) return bad;
    if (a->labels == NULL || a->scores == NULL || a->out1 == NULL ||
        (a->loss != LENET_CROSS_ENTROPY && a->loss != LENET_MSE) || a->opt < LENET_GRADS_ONLY ||
        a->opt > LENET_ADAMW)
        return LENET_BAD_SIZES;
    const Net z = net_of(a);
    for (int i = 0; i < 10; i++)
        if (a->opt >= LENET_ADAM && (a->state1[i] == NULL || a->state2[i] == NULL ||
                                     a->steps[i] == NULL))
            return LENET_BAD_SIZES;
    int code = lenet_forward(a);
    if (code) return code;
    float *gs = malloc(sizeof(float) * z.N * z.O3);
    if (gs == NULL) return LENET_NO_MEMORY;
    code = loss_grad(a, a->scores, z.N, z.O3, gs, &a->loss_mean, &a->hits);
    if (!code) {
        const float *kept = a->gscores;
        a->gscores = gs;
        code = lenet_backward(a);
        a->gscores = kept;
    }
    free(gs);
    if (!code) code = clip_grads(a, &z);
    if (code || a->opt == LENET_GRADS_ONLY) return code;
    int64_t numel[10];
    param_sizes(&z, numel);
    double step[10];
    for (int i = 0; i < 10; i++)
        step[i] = a->opt >= LENET_ADAM ? (double)(*a->steps[i] += 1.0f) : 0.0;
#pragma omp parallel num_threads(z.threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int i = 0; i < 10; i++) {
            const int64_t lo = numel[i] * t / nt, hi = numel[i] * (t + 1) / nt;
            update(a, (float *)a->prm[i], a->grads[i], a->state1[i], a->state2[i], lo, hi,
                   step[i]);
        }
    }
    return LENET_OK;
}
