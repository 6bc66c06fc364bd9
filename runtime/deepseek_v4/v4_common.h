// Helpers shared by the V4 one-token kernels (v4_decode.c, v4_head.c, v4_compressor.c): bf16 rounding, the
// int8 products in ATen's order, float dot products, RMS norm rows, interleaved RoPE, the stable top-k.
#ifndef V4_COMMON_H
#define V4_COMMON_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>

#include "../layers/cpu_simd.h"
#endif

static inline float bf16_round(float v) {  // round to nearest even bf16, as torch's float -> bfloat16 cast
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return v;  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&v, &u, 4);
    return v;
}

static inline float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

// ---- int8 products: y[n] = bf16(sum_k bf16(x)[k] * (w[n, k] * scale[n])), what `_weight_int8pack_mm` computes ----
// Same order as ATen's AVX-512 kernel (the weight scaled before the FMA, one 16-lane accumulator per row,
// one horizontal sum), so the results are bitwise ATen's where K is a multiple of 16.

static inline float dot_int8(const float *xb, const int8_t *w, float scale, int64_t K) {
    int64_t k = 0;
#ifdef __AVX512F__
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 acc = _mm512_setzero_ps();
    for (; k + 16 <= K; k += 16) {
        __m512 wv = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + k)))), vs);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(xb + k), wv, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
#else
    float sum = 0.0f;
#endif
    for (; k < K; k++) sum += xb[k] * ((float)w[k] * scale);
    return sum;
}

#ifdef __AVX512F__
// Four rows at once (four independent FMA chains, as ATen's 4-column blocks): each row's arithmetic is dot_int8's.
static inline void dot_int8_x4(const float *xb, const int8_t *w, const uint16_t *scale, float *y, int64_t K) {
    __m512 acc[4], vs[4];
    for (int r = 0; r < 4; r++) {
        acc[r] = _mm512_setzero_ps();
        vs[r] = _mm512_set1_ps(bf16_to_float(scale[r]));
    }
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 xv = _mm512_loadu_ps(xb + k);
        for (int r = 0; r < 4; r++) {
            _mm_prefetch((const char *)(w + r * K + k + 4 * K), _MM_HINT_T0);  // the next block's rows
            __m128i b8 = _mm_loadu_si128((const __m128i *)(w + r * K + k));
            acc[r] = _mm512_fmadd_ps(xv, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b8)), vs[r]), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float sum = _mm512_reduce_add_ps(acc[r]), sc = bf16_to_float(scale[r]);
        for (int64_t t = k; t < K; t++) sum += xb[t] * ((float)w[r * K + t] * sc);
        y[r] = bf16_round(sum);
    }
}
#endif

static inline void gemv_int8(const float *x, const int8_t *w, const uint16_t *scale, float *y, int64_t N, int64_t K, int threads) {
    float stack[8192];
    float *xb = K <= 8192 ? stack : malloc(K * sizeof(float));
    for (int64_t k = 0; k < K; k++) xb[k] = bf16_round(x[k]);
    int64_t blocks = 0;
#ifdef __AVX512F__
    blocks = N / 4;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && N * K >= (1 << 20))
    for (int64_t b = 0; b < blocks; b++) dot_int8_x4(xb, w + 4 * b * K, scale + 4 * b, y + 4 * b, K);
#endif
    for (int64_t n = 4 * blocks; n < N; n++) y[n] = bf16_round(dot_int8(xb, w + n * K, bf16_to_float(scale[n]), K));
    if (xb != stack) free(xb);
}

static inline float dot_f32(const float *a, const float *b, int64_t n) {
#ifdef __AVX512F__
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    float s = _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    int64_t i = 0;
#endif
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

// out[r] = dot_f32(a + r * stride, b, n) for r < rows: 8 rows a pass share each load of b and run 8 independent
// FMA chains (one chain alone waits on its own latency); each row's sum is in dot_f32's order, so the same bits.
static inline void dot_rows(const float *a, int64_t stride, const float *b, int64_t n, int64_t rows, float *out) {
    int64_t r = 0;
#ifdef __AVX512F__
    for (; r + 8 <= rows; r += 8) {
        __m512 acc[8];
        for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m512 bv = _mm512_loadu_ps(b + i);
            for (int t = 0; t < 8; t++) acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(a + (r + t) * stride + i), bv, acc[t]);
        }
        for (int t = 0; t < 8; t++) {
            float s = _mm512_reduce_add_ps(acc[t]);
            for (int64_t k = i; k < n; k++) s += a[(r + t) * stride + k] * b[k];
            out[r + t] = s;
        }
    }
#endif
    for (; r < rows; r++) out[r] = dot_f32(a + r * stride, b, n);
}

// sum of x[i]^2 in 16 lanes, then across them (F.rms_norm reduces in lanes too; a sequential sum is 4x slower)
static inline float sum_squares(const float *x, int64_t n) {
    int64_t i = 0;
#ifdef __AVX512F__
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    float ss = _mm512_reduce_add_ps(acc);
#else
    float ss = 0.0f;
#endif
    for (; i < n; i++) ss += x[i] * x[i];
    return ss;
}

// ---- exp ----

// e^x for the softmaxes and SiLUs of a step (~25k a token: a quarter of a millisecond as scalar expf): Cephes'
// expf (x = k ln2 + r, a degree-6 polynomial in r, times 2^k), ~2 ulp; inputs clamped to [-87, 88.72] (e^x then
// overflows or is denormal). In 16 lanes it is the llama kernels' exp_nonpositive (cpu_simd.h, x <= 0).
static inline float exp_scalar(float x) {
    x = x > 88.72283935546875f ? 88.72283935546875f : x < -87.0f ? -87.0f : x;  // below: as exp_nonpositive
    const float k = nearbyintf(x * 1.44269504088896341f);
    float r = fmaf(-k, 0.693359375f, x);
    r = fmaf(-k, -2.12194440e-4f, r);
    float y = 1.9875691500e-4f;
    y = fmaf(y, r, 1.3981999507e-3f);
    y = fmaf(y, r, 8.3334519073e-3f);
    y = fmaf(y, r, 4.1665795894e-2f);
    y = fmaf(y, r, 1.6666665459e-1f);
    y = fmaf(y, r, 5.0000001201e-1f);
    y = fmaf(y, r * r, r + 1.0f);
    return ldexpf(y, (int)k);
}

// x[i] = e^(x[i] - shift) for shift >= every x[i] (a softmax), returns their sum (in 16 lanes, then across them
// and the tail)
static inline float exp_shifted(float *x, int64_t n, float shift) {
    int64_t i = 0;
    float total = 0.0f;
#ifdef __AVX512F__
    __m512 acc = _mm512_setzero_ps();
    const __m512 sv = _mm512_set1_ps(shift);
    for (; i + 16 <= n; i += 16) {  // x - shift <= 0 where shift is their maximum
        const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + i), sv));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    total = _mm512_reduce_add_ps(acc);
#endif
    for (; i < n; i++) total += (x[i] = exp_scalar(x[i] - shift));
    return total;
}

// ---- norms and rotary ----

// rows x dim: out = x * rsqrt(mean(x^2) + eps) (* weight), as F.rms_norm on float32.
static inline void rms_rows(const float *x, float *out, int64_t rows, int64_t dim, const float *weight, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        float *o = out + r * dim;
        float inv = 1.0f / sqrtf(sum_squares(xr, dim) / (float)dim + eps);
        if (weight)
            for (int64_t i = 0; i < dim; i++) o[i] = xr[i] * inv * weight[i];
        else
            for (int64_t i = 0; i < dim; i++) o[i] = xr[i] * inv;
    }
}

// Interleaved RoPE on the trailing `rope` channels of each row: pairs (2i, 2i+1) rotate by pos * inv_freq[i]
// (backwards when inverse), as Rotary.apply's complex product.
static inline void rope_rows(float *x, int64_t rows, int64_t dim, int rope, const float *inv_freq, int64_t pos, int inverse) {
    float c[512], s[512];
    int half = rope / 2;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * inv_freq[i];
        c[i] = cosf(ang);
        s[i] = inverse ? -sinf(ang) : sinf(ang);
    }
    for (int64_t r = 0; r < rows; r++) {
        float *t = x + r * dim + dim - rope;
        for (int i = 0; i < half; i++) {
            float a = t[2 * i], b = t[2 * i + 1];
            t[2 * i] = a * c[i] - b * s[i];
            t[2 * i + 1] = a * s[i] + b * c[i];
        }
    }
}

// "better" for the stable top-k: a larger score, or an equal score and a lower index (stable_topk's rule).
static inline int topk_better(const float *score, int64_t a, int64_t b) {
    return score[a] > score[b] || (score[a] == score[b] && a < b);
}

// Restore the min-heap (worst at the root) of heap[0..size) below node c.
static inline void topk_sift_down(const float *score, int64_t *heap, int64_t size, int64_t c) {
    for (;;) {
        int64_t l = 2 * c + 1, r = l + 1, w = c;
        if (l < size && topk_better(score, heap[w], heap[l])) w = l;
        if (r < size && topk_better(score, heap[w], heap[r])) w = r;
        if (w == c) return;
        int64_t t = heap[w]; heap[w] = heap[c]; heap[c] = t;
        c = w;
    }
}

// Top-k of n float scores, best first, ties to the lower index (stable_topk's rule); k <= n.
static inline void topk_stable(const float *score, int64_t n, int64_t k, int64_t *out) {
    // a min-heap of the k best (worst at the root)
    int64_t size = 0;
    for (int64_t i = 0; i < n; i++) {
        if (size < k) {
            int64_t c = size++;
            out[c] = i;
            while (c > 0) {
                int64_t p = (c - 1) / 2;
                if (!topk_better(score, out[p], out[c])) break;
                int64_t t = out[p]; out[p] = out[c]; out[c] = t;
                c = p;
            }
        } else if (topk_better(score, i, out[0])) {
            out[0] = i;
            topk_sift_down(score, out, size, 0);
        }
    }
    for (int64_t end = size - 1; end > 0; end--) {  // heap sort: the worst goes last
        int64_t t = out[0]; out[0] = out[end]; out[end] = t;
        topk_sift_down(score, out, end, 0);
    }
}

#endif
