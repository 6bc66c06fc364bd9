// The LM head of one decode step on the CPU with int8 weights, as one call: the coarse bf16-rounded int8 logits
// of every row (v4_int8_gemv's arithmetic, so bitwise `_weight_int8pack_mm`'s), the best `top` of them and those
// recomputed in float32 from the dequantised rows (weights.head_logits' refinement: close candidates tie in bf16).
// Torch's form is a gemv, a topk over the whole vocabulary (0.95 ms a token at 129k rows, load average 8 on the
// 2-core dev machine), a gather of the rows, a bmm and a scatter.
#include "v4_common.h"

#define MAX_REFINE 256

// logits (N) <- the head's logits of h (K); returns 1 when `top` exceeds MAX_REFINE or N.
int v4_head_logits(const float *h, const int8_t *w, const uint16_t *scale, int64_t N, int64_t K, int64_t top, float *logits,
                   int threads) {
    if (top > MAX_REFINE || top > N) return 1;
    gemv_int8(h, w, scale, logits, N, K, threads);
    int64_t best[MAX_REFINE];
    // ties go to the lower row here; torch's topk leaves their order unspecified, and only the rows of an
    // exact bf16 tie at the last place can differ, each then kept coarse instead of refined
    topk_stable(logits, N, top, best);
    for (int64_t i = 0; i < top; i++) {  // float32 h against the dequantised row: (w * scale) . h, as rows(idx) @ h
        const int64_t n = best[i];
        logits[n] = dot_int8(h, w + n * K, bf16_to_float(scale[n]), K);
    }
    return 0;
}

// The model's final mHC head and norm for one token (model.collapse): h (hc, d) -> out (d) =
// rms_norm(sum_k (sigmoid(fn_k . rms(h) * scale + base_k) + hc_eps) h_k) * norm_w.
int v4_collapse(const float *h, int hc, int64_t d, const float *fn, const float *base, const float *scale, float norm_eps,
                float hc_eps, const float *norm_w, float *out) {
    if (hc < 1 || hc > 64) return 1;
    const int64_t width = (int64_t)hc * d;
    const float inv = 1.0f / sqrtf(sum_squares(h, width) / (float)width + norm_eps);
    float *hn = malloc(width * sizeof(float)), pre[64];
    for (int64_t i = 0; i < width; i++) hn[i] = h[i] * inv;
    for (int k = 0; k < hc; k++) pre[k] = 1.0f / (1.0f + expf(-(dot_f32(fn + k * width, hn, width) * scale[0] + base[k]))) + hc_eps;
    free(hn);
    float y[d];
    for (int64_t i = 0; i < d; i++) {
        float acc = 0.0f;
        for (int k = 0; k < hc; k++) acc += pre[k] * h[k * d + i];
        y[i] = acc;
    }
    rms_rows(y, out, 1, d, norm_w, norm_eps);
    return 0;
}
