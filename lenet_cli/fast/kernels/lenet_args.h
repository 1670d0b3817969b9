/* The interface of whole_net.c: one struct, lenet_args, its version, the sizes the kernels
   handle, and the entry points. kernel.py's Args mirrors the struct field for field; change
   both together and bump LENET_ABI.

   The caller fills in LENET_ABI and sizeof(lenet_args) as it knows them, and every entry point
   checks them and the sizes before touching memory (a mismatch returns LENET_BAD_ABI or
   LENET_BAD_SIZES, never reads a wrong field). The library reports its version, the struct's
   size and the limits below through exported symbols, which kernel.py reads when it loads the
   library: Python never holds a copy of them. */
#ifndef LENET_ARGS_H
#define LENET_ARGS_H

#include <stdint.h>

#define LENET_ABI 4

/* The sizes the kernels' fixed buffers hold (check_args refuses any other). */
#define LENET_MAX_SIDE 64 /* image height and width: the first block copies an image into a
                             stack buffer */
#define LENET_MAX_C1 16   /* conv1's output channels, the second block's inputs */
#define LENET_MAX_K2 15   /* conv2's kernel size: input rows of at most 16 and K < side */
#define LENET_MAX_W1 16   /* the width of the first block's pooled output: the second block's
                             backward holds one of its rows in a vector */
#define LENET_LANES 16    /* floats per vector: conv2's output channels, and the dense layers'
                             activations are kept padded to whole vectors */

enum {
    LENET_OK = 0,
    LENET_NO_MEMORY = 1,
    LENET_BAD_ABI = 2,
    LENET_BAD_SIZES = 3,
    LENET_BAD_LABEL = 4
};
enum { LENET_CROSS_ENTROPY = 0, LENET_MSE = 1 };
enum { LENET_GRADS_ONLY = 0, LENET_SGD = 1, LENET_ADAM = 2, LENET_ADAMW = 3 };

typedef struct {
    int32_t abi, size;  /* LENET_ABI and sizeof(lenet_args) as the caller knows them */
    int32_t n, h, w;    /* images [N,1,H,W] */
    int32_t c1, k1, k2; /* conv1: C1 channels, K1xK1; conv2: C1 -> 16 channels, K2xK2 */
    int32_t o1, o2, o3; /* fc1, fc2, fc3 outputs */
    int32_t threads;
    int32_t s1[4], s2[4]; /* conv1's and conv2's weight strides, in elements */
    const float *x;       /* [N,H,W] */
    const float *prm[10]; /* conv1 weight, bias, conv2 weight, bias, fc1..fc3 weight ([O][I],
                             contiguous) and bias */
    float *scores;        /* [N,O3]: lenet_forward's output */
    /* what lenet_forward keeps for lenet_backward (all NULL for inference): out1, idx1
       [N,C1,H1,W1], out2 [N,F], idx2 [N,H2,W2,16], a1 [N,O1p], a2 [N,O2p] */
    float *out1;
    uint8_t *idx1;
    float *out2;
    uint8_t *idx2;
    float *a1, *a2;
    const float *gscores; /* [N,O3]: lenet_backward's input, dLoss/dscores */
    float *grads[10];     /* lenet_backward's outputs, in prm's order; the convolutions' at
                             their weights' strides, the dense layers' [O][I] */
    /* lenet_train_step only: the loss against the labels, the gradients into grads, then the
       optimizer's update of the parameters (prm, written in place) and its state. Every state
       tensor has its parameter's layout (the caller checks it). */
    const int64_t *labels;  /* [N] class indices */
    int32_t loss;           /* LENET_CROSS_ENTROPY or LENET_MSE */
    int32_t opt;            /* LENET_GRADS_ONLY, LENET_SGD, LENET_ADAM or LENET_ADAMW */
    int32_t nesterov, maximize;
    double smoothing;       /* label smoothing: targets (1 - s) one-hot + s / O3 */
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    float *state1[10];      /* SGD's momentum buffers (NULL without momentum) or Adam's exp_avg */
    float *state2[10];      /* Adam's exp_avg_sq */
    float *steps[10];       /* Adam's step counts, float32 scalars (one per parameter) */
    double loss_mean;       /* out: the batch's mean loss */
    int64_t hits;           /* out: how many images' highest score is their label */
    /* Any entry point: with rows, image n of the batch is x's image rows[n] (its label
       labels[rows[n]]), 0 <= rows[n] < images, so that a shuffled batch is read where it is
       instead of gathered first; NULL: image n is x's n-th. */
    const int64_t *rows;
    int64_t images;
    /* lenet_train_step only: gradient clipping, between the backward and the update (or before
       the update torch makes after a LENET_GRADS_ONLY step), as torch.nn.utils computes it.
       clip_value > 0: every gradient element clamped into [-clip_value, clip_value] (NaN stays
       NaN); then clip_norm > 0: the ten gradients scaled together by
       clip_norm / (norm + 1e-6) when that is below 1, norm being their global L2 norm. 0: off. */
    double clip_norm, clip_value;
} lenet_args;

/* What the library reports, read by kernel.py at load time. */
extern const int32_t lenet_max_side, lenet_max_c1, lenet_max_k2, lenet_max_w1, lenet_lanes;
int lenet_abi(void);
int lenet_args_size(void);

/* The entry points: each returns LENET_OK or one of the codes above. */
int lenet_forward(const lenet_args *a);
int lenet_backward(const lenet_args *a);
int lenet_train_step(lenet_args *a);

#endif
