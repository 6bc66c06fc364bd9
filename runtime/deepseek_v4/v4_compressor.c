// One decode step of a DeepSeek-V4 compressor (attention.Compressor.forward with S = 1) on the CPU, in place on
// the compressor's state: the new position's kv and biased score become row r of the window still filling; the
// step that completes the window pools it (per-channel softmax of the scores over the window, and for ratio 4
// over the first halves of the previous window too), RMS-normalises and rotates the entry at the window's first
// position. Torch's form is ~8 ATen calls a step (two cats of the whole partial window: up to 127 rows at ratio
// 128) and ~25 on the step that completes a window.
#include "v4_common.h"

// kv, score (width = coff * c): the new position's projections; ape (m, width); state_kv, state_score (m, width)
// with rows 0..r-1 filled; prev_kv, prev_score (m, c): the first halves of the last complete window (overlap only;
// has_prev = 0 before the first one: zero rows with score -inf). A completed window's entry goes to out (c) and
// the step returns 1 (the overlap's prev rows then hold this window's first halves), else 0; 2 on a bad rope.
int v4_compress_step(const float *kv, const float *score, const float *ape, int m, int64_t c, int overlap, int64_t pos,
                     float *state_kv, float *state_score, int r, float *prev_kv, float *prev_score, int has_prev,
                     const float *norm_w, float eps, int rope, const float *inv_freq, float *out) {
    if (rope > 2 * 512 || rope > c || rope % 2) return 2;
    const int64_t width = overlap ? 2 * c : c;
    const float *bias = ape + (pos % m) * width;
    memcpy(state_kv + r * width, kv, width * sizeof(float));
    for (int64_t i = 0; i < width; i++) state_score[r * width + i] = score[i] + bias[i];
    if (r + 1 < m) return 0;
    float pooled[c];
    const int64_t half = overlap ? c : 0;  // the current window's channels start here
    int64_t i = 0;
#ifdef __AVX512F__
    float e[2 * m][16];
    for (; i + 16 <= c; i += 16) {  // 16 channels at a time, each in the scalar loop's order
        __m512 top = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < m; j++) top = _mm512_max_ps(top, _mm512_loadu_ps(state_score + j * width + half + i));
        if (overlap && has_prev)
            for (int j = 0; j < m; j++) top = _mm512_max_ps(top, _mm512_loadu_ps(prev_score + j * c + i));
        __m512 total = _mm512_setzero_ps(), acc = _mm512_setzero_ps();
        int n = 0;
        if (overlap)  // the previous window's first halves come first, as in the torch cat
            for (int j = 0; j < m; j++, n++) {
                __m512 v = has_prev ? exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(prev_score + j * c + i), top)) : _mm512_setzero_ps();
                _mm512_storeu_ps(e[n], v);
                total = _mm512_add_ps(total, v);
            }
        for (int j = 0; j < m; j++, n++) {
            __m512 v = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(state_score + j * width + half + i), top));
            _mm512_storeu_ps(e[n], v);
            total = _mm512_add_ps(total, v);
        }
        n = 0;
        if (overlap)
            for (int j = 0; j < m; j++, n++) {
                __m512 kv = has_prev ? _mm512_loadu_ps(prev_kv + j * c + i) : _mm512_setzero_ps();
                acc = _mm512_fmadd_ps(kv, _mm512_div_ps(_mm512_loadu_ps(e[n]), total), acc);
            }
        for (int j = 0; j < m; j++, n++)
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(state_kv + j * width + half + i), _mm512_div_ps(_mm512_loadu_ps(e[n]), total), acc);
        _mm512_storeu_ps(pooled + i, acc);
    }
#endif
    float ex[2 * m];
    for (; i < c; i++) {
        float top = -INFINITY;
        for (int j = 0; j < m; j++) {
            float s = state_score[j * width + half + i];
            top = s > top ? s : top;
        }
        if (overlap && has_prev)
            for (int j = 0; j < m; j++) top = prev_score[j * c + i] > top ? prev_score[j * c + i] : top;
        float total = 0.0f;
        int n = 0;
        if (overlap)
            for (int j = 0; j < m; j++) total += (ex[n++] = has_prev ? exp_scalar(prev_score[j * c + i] - top) : 0.0f);
        for (int j = 0; j < m; j++) total += (ex[n++] = exp_scalar(state_score[j * width + half + i] - top));
        float acc = 0.0f;
        n = 0;
        if (overlap)
            for (int j = 0; j < m; j++, n++) acc = fmaf(has_prev ? prev_kv[j * c + i] : 0.0f, ex[n] / total, acc);
        for (int j = 0; j < m; j++, n++) acc = fmaf(state_kv[j * width + half + i], ex[n] / total, acc);
        pooled[i] = acc;
    }
    if (overlap)
        for (int j = 0; j < m; j++) {
            memcpy(prev_kv + j * c, state_kv + j * width, c * sizeof(float));
            memcpy(prev_score + j * c, state_score + j * width, c * sizeof(float));
        }
    rms_rows(pooled, out, 1, c, norm_w, eps);
    if (rope) rope_rows(out, 1, c, rope, inv_freq, pos - (m - 1), 0);
    return 1;
}
