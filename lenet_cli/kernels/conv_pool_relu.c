/* lenet's fused first block for the CPU: conv (1 input channel, KxK, bias) -> 2x2 max-pool ->
   ReLU, forward and weight/bias gradients, float32. Built and loaded by lenet_cli/fused.py.

   Semantics follow PyTorch's: the pool keeps the first maximum of each window in the order
   (0,0), (0,1), (1,0), (1,1), and a NaN wins (max_pool2d's rule); ReLU passes no gradient where
   its output is not > 0. Images are split across the OpenMP threads of the process, which are
   PyTorch's own once torch is loaded (the same libgomp). The convolution sums in a fixed order,
   so results do not depend on the thread count; the gradient sums are per thread in double and
   added in thread order by the caller. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAXC 64  /* channels */
#define MAXS 64  /* image side */
#define LANES 16

int cpr_limits(int *max_channels, int *max_side) {
    *max_channels = MAXC;
    *max_side = MAXS;
    return 1;
}

/* One image, with two zero rows below it and LANES zeros after, so that the flat loops run over
   whole rows (the last K-1 columns of each conv row are computed and never used). */
static void load_image(float *restrict xb, const float *restrict xn, int H, int W) {
    memcpy(xb, xn, sizeof(float) * H * W);
    memset(xb + H * W, 0, sizeof(float) * (2 * W + LANES));
}

static int has_nan(const float *restrict v, int n) {
    int bad = 0;
    for (int t = 0; t < n; t++) bad |= v[t] != v[t];
    return bad;
}

static void pool_row(const float *restrict r0, const float *restrict r1, int Wo,
                     float *restrict pm, int *restrict pa, int exact_nan) {
    float q0[MAXS], q1[MAXS], q2[MAXS], q3[MAXS];
    for (int j = 0; j < Wo; j++) {
        q0[j] = r0[2 * j];
        q1[j] = r0[2 * j + 1];
        q2[j] = r1[2 * j];
        q3[j] = r1[2 * j + 1];
    }
    if (!exact_nan) { /* no NaN in the conv output: a plain strict '>' (vectorised) */
        for (int j = 0; j < Wo; j++) {
            float best = q0[j];
            int at = 0;
            at = q1[j] > best ? 1 : at;
            best = q1[j] > best ? q1[j] : best;
            at = q2[j] > best ? 2 : at;
            best = q2[j] > best ? q2[j] : best;
            at = q3[j] > best ? 3 : at;
            best = q3[j] > best ? q3[j] : best;
            pm[j] = best > 0.0f ? best : 0.0f;
            pa[j] = at;
        }
        return;
    }
    for (int j = 0; j < Wo; j++) { /* max_pool2d's rule, NaN included */
        const float v[4] = {q0[j], q1[j], q2[j], q3[j]};
        float best = v[0];
        int at = 0;
        for (int p = 1; p < 4; p++)
            if (v[p] > best || v[p] != v[p]) {
                best = v[p];
                at = p;
            }
        pm[j] = (best > 0.0f || best != best) ? best : 0.0f; /* relu(NaN) is NaN */
        pa[j] = at;
    }
}

/* x [N,H,W]; w [C,K,K]; b [C]; out [N,Ho,Wo,C] (channels last); idx [N,Ho,Wo,C] (0..3). */
int cpr_forward(const float *restrict x, const float *restrict w, const float *restrict b,
                 float *restrict out, uint8_t *restrict idx, int N, int H, int W, int C, int K,
                 int threads) {
    const int Hc = H - K + 1, Wc = W - K + 1, Ho = Hc / 2, Wo = Wc / 2, T = Hc * W;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int n = 0; n < N; n++) {
        float xb[MAXS * (MAXS + 2) + LANES], conv[MAXS * MAXS], pm[MAXS];
        int pa[MAXS];
        load_image(xb, x + (int64_t)n * H * W, H, W);
        float *restrict on = out + (int64_t)n * Ho * Wo * C;
        uint8_t *restrict in_ = idx + (int64_t)n * Ho * Wo * C;
        for (int c = 0; c < C; c++) {
            const float bc = b[c];
            for (int t = 0; t < T; t++) conv[t] = bc;
            for (int ki = 0; ki < K; ki++)
                for (int kj = 0; kj < K; kj++) {
                    const float wv = w[(c * K + ki) * K + kj];
                    const float *restrict xs = xb + ki * W + kj;
                    for (int t = 0; t < T; t++) conv[t] += wv * xs[t];
                }
            const int exact_nan = has_nan(conv, T);
            for (int i = 0; i < Ho; i++) {
                pool_row(conv + 2 * i * W, conv + (2 * i + 1) * W, Wo, pm, pa, exact_nan);
                for (int j = 0; j < Wo; j++) {
                    on[(i * Wo + j) * C + c] = pm[j];
                    in_[(i * Wo + j) * C + c] = (uint8_t)pa[j];
                }
            }
        }
    }
    return 0; /* nothing to allocate */
}

/* Gradients of w and b from g = dLoss/dout [N,Ho,Wo,C], with out and idx from cpr_forward.
   Thread t adds its images' sums into gw_part[t] [C*K*K] and gb_part[t] [C] (double, zeroed by
   the caller, `threads` rows each). */
int cpr_backward(const float *restrict x, const float *restrict g, const float *restrict out,
                  const uint8_t *restrict idx, double *restrict gw_part, double *restrict gb_part,
                  int N, int H, int W, int C, int K, int threads) {
    const int Hc = H - K + 1, Ho = Hc / 2, Wo = (W - K + 1) / 2;
    const int T = (Hc * W + LANES - 1) / LANES * LANES;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        double *restrict gw = gw_part + (int64_t)t * C * K * K, *restrict gb = gb_part + t * C;
        float xb[MAXS * (MAXS + 2) + 2 * LANES], G[MAXS * MAXS + LANES];
        for (int n = n0; n < n1; n++) {
            load_image(xb, x + (int64_t)n * H * W, H, W);
            const int64_t base = (int64_t)n * Ho * Wo * C;
            for (int c = 0; c < C; c++) {
                memset(G, 0, sizeof(float) * T);
                float sb = 0.0f;
                for (int i = 0; i < Ho; i++)
                    for (int j = 0; j < Wo; j++) {
                        const int64_t o = base + (i * Wo + j) * C + c;
                        const float gv = out[o] > 0.0f ? g[o] : 0.0f; /* ReLU's mask */
                        const int p = idx[o];
                        G[(2 * i + (p >> 1)) * W + 2 * j + (p & 1)] = gv;
                        sb += gv;
                    }
                gb[c] += sb;
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++) {
                        const float *restrict xs = xb + ki * W + kj;
                        float acc[LANES] = {0};
                        for (int s = 0; s < T; s += LANES)
                            for (int l = 0; l < LANES; l++) acc[l] += G[s + l] * xs[s + l];
                        double sum = 0.0;
                        for (int l = 0; l < LANES; l++) sum += acc[l];
                        gw[(c * K + ki) * K + kj] += sum;
                    }
            }
        }
    }
    return 0; /* nothing to allocate */
}

/* The second block for 16 output channels (LeNet's conv2): conv (Cin -> 16, KxK, bias) -> 2x2
   max-pool (an odd last row or column dropped, as max_pool2d does) -> ReLU, on channels-last
   images, the 16 channels of a position held in one vector. y [N,H,W,Cin]; wt [K,K,Cin,16]
   (the weight as the caller lays it out); b [16]; out and idx [N,Ho,Wo,16]. */
#define MAXCIN 16 /* input channels of the second block (fused.applies2 checks it): the
                     backward's accumulator arrays, on the stack, grow with it */
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
int cpr16_forward(const float *restrict y, const float *restrict wt, const float *restrict b,
                  float *restrict out, uint8_t *restrict idx, int N, int H, int W, int Cin,
                  int K, int threads) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        v16 *conv = alloc64(sizeof(v16) * (P * Q > 0 ? P * Q : 1));
        if (conv == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        const v16 bias = ld16(b), zero = {0};
        for (int n = n0; n < n1 && conv != NULL; n++) {
            const float *restrict yn = y + (int64_t)n * H * W * Cin;
            for (int r = 0; r < P; r++)
                for (int q0 = 0; q0 < Q; q0 += 2) { /* Q is even: two positions, two chains */
                    v16 acc0 = bias, acc1 = bias;
                    for (int ki = 0; ki < K; ki++)
                        for (int kj = 0; kj < K; kj++) {
                            const float *restrict yp = yn + ((r + ki) * W + q0 + kj) * Cin;
                            const float *restrict wp = wt + (ki * K + kj) * Cin * 16;
                            for (int c = 0; c < Cin; c++) {
                                const v16 wv = ld16(wp + c * 16);
                                acc0 += yp[c] * wv;
                                acc1 += yp[Cin + c] * wv;
                            }
                        }
                    conv[r * Q + q0] = acc0;
                    conv[r * Q + q0 + 1] = acc1;
                }
            float *restrict on = out + (int64_t)n * Ho * Wo * 16;
            uint8_t *restrict in_ = idx + (int64_t)n * Ho * Wo * 16;
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    const v16 v[4] = {conv[2 * i * Q + 2 * j], conv[2 * i * Q + 2 * j + 1],
                                      conv[(2 * i + 1) * Q + 2 * j],
                                      conv[(2 * i + 1) * Q + 2 * j + 1]};
                    const vi16 nan = (v[0] != v[0]) | (v[1] != v[1]) | (v[2] != v[2]) |
                                     (v[3] != v[3]);
                    int any_nan = 0;
                    for (int o = 0; o < 16; o++) any_nan |= nan[o];
                    float *restrict op = on + (i * Wo + j) * 16;
                    uint8_t *restrict ip = in_ + (i * Wo + j) * 16;
                    if (!any_nan) {
                        v16 best = v[0];
                        vi16 at = {0};
                        for (int p = 1; p < 4; p++) {
                            const vi16 m = v[p] > best;
                            best = sel16(m, v[p], best);
                            at = (at & ~m) | (m & p);
                        }
                        st16(op, sel16(best > zero, best, zero));
                        for (int o = 0; o < 16; o++) ip[o] = (uint8_t)at[o];
                    } else { /* max_pool2d's rule, lane by lane */
                        for (int o = 0; o < 16; o++) {
                            float best = v[0][o];
                            int a = 0;
                            for (int p = 1; p < 4; p++)
                                if (v[p][o] > best || v[p][o] != v[p][o]) {
                                    best = v[p][o];
                                    a = p;
                                }
                            op[o] = (best > 0.0f || best != best) ? best : 0.0f;
                            ip[o] = (uint8_t)a;
                        }
                    }
                }
        }
        free(conv);
    }
    return failed;
}

/* Backward of cpr16_forward: gy [N,H,W,Cin] (written); the weight gradient [K,K,Cin,16] and the
   bias gradient [16] added per thread into gw_part[t] and gb_part[t] (double, zeroed by the
   caller, `threads` rows). g = dLoss/dout [N,Ho,Wo,16].
   The input gradient is computed with the output channels outermost (GCt [16][P][16], a row
   of 16 output columns per vector), so that it needs no horizontal sums; the weight gradient
   keeps one vector accumulator per (kj, c) for each kernel row ki. */
#define GW 32 /* the row stride of the transposed input gradient: 16 lanes + the kernel width */

/* One image's backward; always inlined, so that the calls below with constant K and Cin get
   loops the compiler unrolls and accumulators it keeps in registers. */
static inline __attribute__((always_inline)) void bwd16_image(
    const float *restrict yn, const float *restrict wt, const float *restrict gn,
    const float *restrict on, const uint8_t *restrict in_, float *restrict gyn,
    double *restrict gw, double *restrict gb, v16 *restrict GC, float *restrict GCt,
    float *restrict gyT, int H, int W, const int Cin, const int K) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    const v16 zero = {0};
    memset(GCt, 0, sizeof(float) * 16 * P * 16);
    memset(gyT, 0, sizeof(float) * Cin * H * GW);
    v16 gbacc = zero;
    /* the conv output's gradient: at each window's first maximum, where ReLU let it by */
    for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
            const int k = (i * Wo + j) * 16;
            const v16 gv = sel16(ld16(on + k) > zero, ld16(gn + k), zero);
            vi16 at;
            for (int o = 0; o < 16; o++) at[o] = in_[k + o];
            gbacc += gv;
            for (int p = 0; p < 4; p++) {
                const int r = 2 * i + (p >> 1), q = 2 * j + (p & 1);
                const v16 gp = sel16(at == p, gv, zero);
                GC[r * Q + q] = gp;
                for (int o = 0; o < 16; o++) GCt[(o * P + r) * 16 + q] = gp[o];
            }
        }
    /* weight gradient: gw[ki,kj,c,:] = sum over (r,q) of y[r+ki, q+kj, c] * GC[r,q,:] */
    for (int ki = 0; ki < K; ki++) {
        v16 acc[K * Cin];
        for (int a = 0; a < K * Cin; a++) acc[a] = zero;
        for (int r = 0; r < P; r++)
            for (int q = 0; q < Q; q++) {
                const v16 gc = GC[r * Q + q];
                const float *restrict yr = yn + ((r + ki) * W + q) * Cin;
                for (int a = 0; a < K * Cin; a++) acc[a] += yr[a] * gc;
            }
        for (int a = 0; a < K * Cin; a++)
            for (int o = 0; o < 16; o++) gw[(ki * K * Cin + a) * 16 + o] += acc[a][o];
    }
    /* input gradient: gy[r+ki, q+kj, c] += sum over o of GC[r,q,o] * w[ki,kj,c,o], a row of
       16 output columns per vector */
    for (int c = 0; c < Cin; c++)
        for (int r = 0; r < P; r++) {
            v16 tacc[K * K];
            for (int tp = 0; tp < K * K; tp++) tacc[tp] = zero;
            for (int o = 0; o < 16; o++) {
                const v16 row = ld16(GCt + (o * P + r) * 16);
                for (int tp = 0; tp < K * K; tp++) tacc[tp] += row * wt[(tp * Cin + c) * 16 + o];
            }
            for (int ki = 0; ki < K; ki++)
                for (int kj = 0; kj < K; kj++) {
                    float *dst = gyT + ((size_t)c * H + r + ki) * GW + kj;
                    st16(dst, ld16(dst) + tacc[ki * K + kj]);
                }
        }
    for (int py = 0; py < H; py++)
        for (int px = 0; px < W; px++)
            for (int c = 0; c < Cin; c++)
                gyn[(py * W + px) * Cin + c] = gyT[((size_t)c * H + py) * GW + px];
    for (int o = 0; o < 16; o++) gb[o] += gbacc[o];
}

int cpr16_backward(const float *restrict y, const float *restrict wt, const float *restrict g,
                   const float *restrict out, const uint8_t *restrict idx, float *restrict gy,
                   double *restrict gw_part, double *restrict gb_part, int N, int H, int W,
                   int Cin, int K, int threads) {
    const int Ho = (H - K + 1) / 2, Wo = (W - K + 1) / 2, P = 2 * Ho, Q = 2 * Wo;
    const int taps = K * K * Cin;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int n0 = (int)((int64_t)N * t / nt), n1 = (int)((int64_t)N * (t + 1) / nt);
        double *restrict gw = gw_part + (int64_t)t * taps * 16, *restrict gb = gb_part + t * 16;
        const size_t n_gc = (size_t)P * Q, n_gct = (size_t)16 * P * 16;
        const size_t n_gyt = (size_t)Cin * H * GW;
        v16 *GC = alloc64(sizeof(v16) * n_gc + sizeof(float) * (n_gct + n_gyt));
        if (GC == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        float *GCt = (float *)(GC + n_gc), *gyT = GCt + n_gct;
        for (int n = n0; n < n1 && GC != NULL; n++) {
            const float *yn = y + (int64_t)n * H * W * Cin;
            const float *gn = g + (int64_t)n * Ho * Wo * 16;
            const float *on = out + (int64_t)n * Ho * Wo * 16;
            const uint8_t *in_ = idx + (int64_t)n * Ho * Wo * 16;
            float *gyn = gy + (int64_t)n * H * W * Cin;
            if (K == 3 && Cin == 6) /* LeNet's tutorial net */
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, gyT, H, W, 6, 3);
            else if (K == 5 && Cin == 6) /* the current tutorial's LeNet-5 */
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, gyT, H, W, 6, 5);
            else
                bwd16_image(yn, wt, gn, on, in_, gyn, gw, gb, GC, GCt, gyT, H, W, Cin, K);
        }
        free(GC);
    }
    return failed;
}
