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
void cpr_forward(const float *restrict x, const float *restrict w, const float *restrict b,
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
}

/* Gradients of w and b from g = dLoss/dout [N,Ho,Wo,C], with out and idx from cpr_forward.
   Thread t adds its images' sums into gw_part[t] [C*K*K] and gb_part[t] [C] (double, zeroed by
   the caller, `threads` rows each). */
void cpr_backward(const float *restrict x, const float *restrict g, const float *restrict out,
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
}
