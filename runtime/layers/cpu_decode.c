// Single-query (decode) attention over a bf16 KV cache, and over the int8 warm rows of the llama live warm
// tier beside it (runtime/engine/kv_tiers.py) read as stored, for CPUs with AVX-512 BF16.
//
// One decode step reads every cached key and value once; ATen's CPU flash kernel does that at ~8 GB/s per
// thread for 3 queries a head (it is compute bound on its bf16 -> fp32 conversions and small GEMMs). Here
// the q.k products are `vdpbf16ps` on the bf16 rows as stored, the softmax is online per block of 16 keys
// (vectorised exp), and the V rows are widened by a shift and accumulated in fp32. The keys of each kv
// head are cut into chunks run by the OpenMP threads (the same libgomp as torch, so the same pool); the
// chunks' partial results are merged by their log-sum-exp.
//
// Built by runtime/layers/cpu_decode.py with `-march=native`; on a CPU without AVX-512 BF16 the build
// fails on the #error below and the caller keeps ATen's kernel.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cpu_simd.h"

#if !defined(__AVX512F__) || !defined(__AVX512BF16__)
#error "needs AVX-512F and AVX-512 BF16"
#endif

#define BLOCK 16  // keys per softmax block: one fp32 vector of scores per query
#define MAX_G 8   // queries (heads) per kv head
#define MAX_D 128
#define MAX_CHUNKS 4096  // chunks of a kv head (a chunk is 256+ keys: a million positions and more)

static inline __m512 widen_bf16(const uint16_t *src) {  // 16 bf16 -> 16 fp32 (exact)
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)src));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

static inline __m512 widen_int8(const int8_t *src) {  // 16 int8 -> 16 fp32 (exact)
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)src)));
}

static inline __m512 load_fp16(const uint16_t *src, __mmask16 valid) {  // up to 16 fp16 -> fp32; lanes past `valid` are 0, unread
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, src));
}

// q.k of up to 16 int8 rows (count) against G queries, lane j = row j (0 past count, whose rows are not read).
// The codes are widened to bf16 once per block (exact: |code| <= 127 has 7 significant bits; 16 rows in L1,
// no scale applied) for the same `vdpbf16ps` as bf16 rows; each row's 16-lane dot products are summed by a
// transpose tree (pairs, quads, then across the 128-bit lanes), ~3 instructions a row where a horizontal sum
// is ~8 (measured 1.07-1.09x the bf16 kernel's time where per-row sums took 1.15x, one layer at 8k, both shapes of
// evals/warm_decode.py). One query at a time, so the tree's registers stay few at G = 8, D = 128.
static inline __attribute__((always_inline)) void int8_scores(const int G, const int D, const int8_t *rows, int count,
                                                               __m512bh qv[MAX_G][MAX_D / 32], __m512 *scores) {
    uint16_t widened[BLOCK][MAX_D] __attribute__((aligned(64)));
    for (int j = 0; j < count; j++)
        for (int c = 0; c < D / 32; c++) {
            const int8_t *src = rows + (int64_t)j * D + c * 32;
            _mm512_store_si512(widened[j] + c * 32, (__m512i)_mm512_cvtne2ps_pbh(widen_int8(src + 16), widen_int8(src)));
        }
    for (int g = 0; g < G; g++) {
        __m512 quad[4];
#pragma GCC unroll 4
        for (int j4 = 0; j4 < 4; j4++) {
            __m512 pair[2];
#pragma GCC unroll 2
            for (int jp = 0; jp < 2; jp++) {
                __m512 dot[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
#pragma GCC unroll 2
                for (int t = 0; t < 2; t++) {
                    const int j = j4 * 4 + jp * 2 + t;
                    if (j < count)
                        for (int c = 0; c < D / 32; c++)
                            dot[t] = _mm512_dpbf16_ps(dot[t], (__m512bh)_mm512_load_si512(widened[j] + c * 32), qv[g][c]);
                }
                // per 128-bit lane: [a, b, a, b] partial sums of rows a, b
                pair[jp] = _mm512_add_ps(_mm512_unpacklo_ps(dot[0], dot[1]), _mm512_unpackhi_ps(dot[0], dot[1]));
            }
            quad[j4] = _mm512_add_ps(_mm512_shuffle_ps(pair[0], pair[1], 0x44), _mm512_shuffle_ps(pair[0], pair[1], 0xEE));  // [a, b, c, d]
        }
        // sum the four 128-bit lanes of each quad; quad i lands in lane i
        const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(quad[0], quad[1], 0x88), _mm512_shuffle_f32x4(quad[0], quad[1], 0xDD));
        const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(quad[2], quad[3], 0x88), _mm512_shuffle_f32x4(quad[2], quad[3], 0xDD));
        scores[g] = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
    }
}

// Keys [begin, end) of one kv head against its G queries: the running max m, sum l and unnormalised
// output acc (G, D) of the online softmax. Inlined with constant G, D and int8_rows, so the loops unroll
// into registers. int8_rows: k and v are int8 codes (the warm tier), key j being code_j * scale_j with one
// fp16 scale per row (k_scale, v_scale); the key scale multiplies the block's scores (int8_scores) and the
// value scale the block's probabilities, so no dequantised row is ever written.
static inline __attribute__((always_inline)) void attend_chunk(
    const int G, const int D, const int int8_rows, const uint16_t *q, const void *k, const void *v,
    const uint16_t *k_scale, const uint16_t *v_scale, int64_t begin, int64_t end, float scale, float *m_out,
    float *l_out, float *acc_out) {
    const int DK = D / 32, DV = D / 16;
    __m512bh qv[MAX_G][MAX_D / 32];
    __m512 acc[MAX_G][MAX_D / 16];
    float m[MAX_G], l[MAX_G];
    float p[MAX_G][BLOCK] __attribute__((aligned(64)));
    for (int g = 0; g < G; g++) {
        for (int c = 0; c < DK; c++) qv[g][c] = (__m512bh)_mm512_loadu_si512(q + g * D + c * 32);
        for (int c = 0; c < DV; c++) acc[g][c] = _mm512_setzero_ps();
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
    for (int64_t j0 = begin; j0 < end; j0 += BLOCK) {
        const int count = end - j0 < BLOCK ? (int)(end - j0) : BLOCK;
        const __mmask16 valid = (__mmask16)((1u << count) - 1u);
        __m512 scores[MAX_G];
        const __m512 value_scale = int8_rows ? load_fp16(v_scale + j0, valid) : _mm512_setzero_ps();
        if (int8_rows) {
            int8_scores(G, D, (const int8_t *)k + j0 * D, count, qv, scores);
            const __m512 key_scale = _mm512_mul_ps(load_fp16(k_scale + j0, valid), _mm512_set1_ps(scale));
            for (int g = 0; g < G; g++) scores[g] = _mm512_mul_ps(scores[g], key_scale);
        } else {
            for (int j = 0; j < count; j++) {
                const uint16_t *row = (const uint16_t *)k + (j0 + j) * D;
                __m512bh kv[MAX_D / 32];
                for (int c = 0; c < DK; c++) kv[c] = (__m512bh)_mm512_loadu_si512(row + c * 32);
                for (int g = 0; g < G; g++) {
                    __m512 dot = _mm512_setzero_ps();
                    for (int c = 0; c < DK; c++) dot = _mm512_dpbf16_ps(dot, kv[c], qv[g][c]);
                    p[g][j] = _mm512_reduce_add_ps(dot);
                }
            }
            for (int g = 0; g < G; g++) scores[g] = _mm512_mul_ps(_mm512_maskz_load_ps(valid, p[g]), _mm512_set1_ps(scale));
        }
        for (int g = 0; g < G; g++) {
            const __m512 s = scores[g];
            const float block_max = _mm512_mask_reduce_max_ps(valid, s);
            if (block_max > m[g]) {
                const float alpha = expf(m[g] - block_max);  // 0 for the first block (m = -inf)
                l[g] *= alpha;
                for (int c = 0; c < DV; c++) acc[g][c] = _mm512_mul_ps(acc[g][c], _mm512_set1_ps(alpha));
                m[g] = block_max;
            }
            __m512 e = _mm512_maskz_mov_ps(valid, exp_nonpositive(_mm512_sub_ps(s, _mm512_set1_ps(m[g]))));
            l[g] += _mm512_reduce_add_ps(e);
            _mm512_store_ps(p[g], int8_rows ? _mm512_mul_ps(e, value_scale) : e);
        }
        for (int j = 0; j < count; j++) {
            __m512 vf[MAX_D / 16];
            if (int8_rows) {
                const int8_t *row = (const int8_t *)v + (j0 + j) * D;
                for (int c = 0; c < DV; c++) vf[c] = widen_int8(row + c * 16);
            } else {
                const uint16_t *row = (const uint16_t *)v + (j0 + j) * D;
                for (int c = 0; c < DV; c++) vf[c] = widen_bf16(row + c * 16);
            }
            for (int g = 0; g < G; g++) {
                const __m512 w = _mm512_set1_ps(p[g][j]);
                for (int c = 0; c < DV; c++) acc[g][c] = _mm512_fmadd_ps(w, vf[c], acc[g][c]);
            }
        }
    }
    for (int g = 0; g < G; g++) {
        m_out[g] = m[g];
        l_out[g] = l[g];
        for (int c = 0; c < DV; c++) _mm512_storeu_ps(acc_out + g * D + c * 16, acc[g][c]);
    }
}

#define CHUNK_CASE(GV, DVAL)                                                                             \
    case (GV) * 1000 + (DVAL):                                                                           \
        if (int8_rows) attend_chunk(GV, DVAL, 1, q, k, v, k_scale, v_scale, begin, end, scale, m, l, acc); \
        else attend_chunk(GV, DVAL, 0, q, k, v, NULL, NULL, begin, end, scale, m, l, acc);                 \
        return;

static void attend_chunk_any(int G, int D, int int8_rows, const uint16_t *q, const void *k, const void *v,
                             const uint16_t *k_scale, const uint16_t *v_scale, int64_t begin, int64_t end, float scale,
                             float *m, float *l, float *acc) {
    switch (G * 1000 + D) {
        CHUNK_CASE(1, 64) CHUNK_CASE(2, 64) CHUNK_CASE(3, 64) CHUNK_CASE(4, 64)
        CHUNK_CASE(5, 64) CHUNK_CASE(6, 64) CHUNK_CASE(7, 64) CHUNK_CASE(8, 64)
        CHUNK_CASE(1, 128) CHUNK_CASE(2, 128) CHUNK_CASE(3, 128) CHUNK_CASE(4, 128)
        CHUNK_CASE(5, 128) CHUNK_CASE(6, 128) CHUNK_CASE(7, 128) CHUNK_CASE(8, 128)
    }
}

int dsv4_supports(int G, int D) { return G >= 1 && G <= MAX_G && (D == 64 || D == 128); }

// q: (Hkv, G, D) bf16, contiguous (the G heads sharing kv head h are rows h*G .. h*G+G-1);
// warm tier (positions [0, n_warm) of the sequence; NULL pointers when n_warm is 0): kv head h's int8 rows
// at warm_k/warm_v + h * warm_capacity * D, their fp16 scales at warm_k_scale/warm_v_scale + h * warm_capacity;
// hot rows (positions [n_warm, n_warm + n)): kv head h's bf16 rows start at k + h * head_stride, D elements
// each, slots 0..n-1 valid; out: (Hkv, G, D) bf16. Nothing past the valid rows is read. Returns 0, or -1 for
// shapes this kernel does not take, -2 when out of memory.
int dsv4_decode_attention_tiered(const uint16_t *q, const int8_t *warm_k, const uint16_t *warm_k_scale, const int8_t *warm_v,
                                 const uint16_t *warm_v_scale, int64_t warm_capacity, int64_t n_warm, const uint16_t *k,
                                 const uint16_t *v, uint16_t *out, int hkv, int G, int D, int64_t head_stride, int64_t n,
                                 float scale, int threads) {
    if (!dsv4_supports(G, D) || hkv < 1 || n < 1 || n_warm < 0) return -1;
    // about 8 chunks per thread over all heads (for balance), none under 256 keys (per-chunk overhead);
    // a chunk is all warm or all hot
    const int64_t per_head = (threads * 8 + hkv - 1) / hkv;
    int64_t chunk = (n_warm + n + per_head - 1) / per_head;
    chunk = chunk < 256 ? 256 : (chunk + BLOCK - 1) / BLOCK * BLOCK;
    const int64_t warm_chunks = (n_warm + chunk - 1) / chunk, chunks = warm_chunks + (n + chunk - 1) / chunk;
    const int64_t items = hkv * chunks, stride = (int64_t)G * (D + 2);
    if (chunks > MAX_CHUNKS) return -1;
    float *part = malloc((size_t)(items * stride) * sizeof(float));
    if (part == NULL) return -2;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (items > 1 && threads > 1)
    for (int64_t item = 0; item < items; item++) {
        const int64_t h = item / chunks, c = item % chunks, is_warm = c < warm_chunks, length = is_warm ? n_warm : n;
        const int64_t begin = (is_warm ? c : c - warm_chunks) * chunk, end = begin + chunk < length ? begin + chunk : length;
        float *m = part + item * stride, *l = m + G, *acc = l + G;
        if (is_warm)
            attend_chunk_any(G, D, 1, q + h * G * D, warm_k + h * warm_capacity * D, warm_v + h * warm_capacity * D,
                             warm_k_scale + h * warm_capacity, warm_v_scale + h * warm_capacity, begin, end, scale, m, l, acc);
        else
            attend_chunk_any(G, D, 0, q + h * G * D, k + h * head_stride, v + h * head_stride, NULL, NULL, begin, end, scale, m, l, acc);
    }
    for (int64_t h = 0; h < hkv; h++) {
        for (int g = 0; g < G; g++) {
            float top = -INFINITY, total = 0.0f;
            for (int64_t c = 0; c < chunks; c++) {
                const float mc = part[(h * chunks + c) * stride + g];
                top = mc > top ? mc : top;
            }
            float weights[MAX_CHUNKS];
            for (int64_t c = 0; c < chunks; c++) {
                const float *m = part + (h * chunks + c) * stride;
                weights[c] = expf(m[g] - top);
                total += weights[c] * m[G + g];
            }
            for (int cv = 0; cv < D / 16; cv++) {
                __m512 sum = _mm512_setzero_ps();
                for (int64_t c = 0; c < chunks; c++) {
                    const float *acc = part + (h * chunks + c) * stride + 2 * G + g * D + cv * 16;
                    sum = _mm512_fmadd_ps(_mm512_set1_ps(weights[c]), _mm512_loadu_ps(acc), sum);
                }
                sum = _mm512_mul_ps(sum, _mm512_set1_ps(1.0f / total));
                _mm256_storeu_si256((__m256i *)(out + (h * G + g) * D + cv * 16), (__m256i)_mm512_cvtneps_pbh(sum));
            }
        }
    }
    free(part);
    return 0;
}

// All rows hot: positions [0, n) at slots 0..n-1 (the same chunks and sums as before the warm tier existed).
int dsv4_decode_attention(const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *out, int hkv, int G, int D,
                          int64_t head_stride, int64_t n, float scale, int threads) {
    return dsv4_decode_attention_tiered(q, NULL, NULL, NULL, NULL, 0, 0, k, v, out, hkv, G, D, head_stride, n, scale, threads);
}

// --- the small per-layer ops of a decode step, one call each instead of ~10 ATen ops -----------------------
// Each rounds to bf16 where the ATen ops it replaces do, so the results match them to the last bit but for
// the order of a float sum.

// x (rows, dim) += residual (when not NULL), in place (the residual stream, rounded to bf16 as `x + residual`);
// out = rms_norm(x) * weight as F.rms_norm computes it on bf16: x * rsqrt(mean(x^2) + eps) * weight in fp32, rounded once.
void dsv4_add_rms_norm(uint16_t *x, const uint16_t *residual, const uint16_t *weight, uint16_t *out, int64_t rows,
                       int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        uint16_t *row = x + r * dim;
        float squares = 0.0f;
        for (int64_t i = 0; i < dim; i++) {
            float value = from_bf16(row[i]);
            if (residual != NULL) {
                value = round_bf16(value + from_bf16(residual[r * dim + i]));
                row[i] = to_bf16(value);
            }
            squares += value * value;
        }
        const float inv_rms = 1.0f / sqrtf(squares / (float)dim + eps);
        for (int64_t i = 0; i < dim; i++)
            out[r * dim + i] = to_bf16(from_bf16(row[i]) * inv_rms * from_bf16(weight[i]));
    }
}

// One token's qkv (hq + 2*hkv rows of D): rotate q in place and k into the cache (k_dst + h*head_stride),
// copy v into the cache (v_dst + h*head_stride). cos/sin: the position's table rows (sin carries the sign
// of the pair's first element), the partner of element i is i^1 (interleaved pairs) or i+D/2 mod D (halves);
// rotated = round(x*cos) + partner*sin, as RotaryEmbedding's addcmul.
int dsv4_rope_store(uint16_t *qkv, const uint16_t *cos, const uint16_t *sin, uint16_t *k_dst, uint16_t *v_dst, int hq,
                    int hkv, int D, int64_t head_stride, int interleaved) {
    if (D > 256 || D % 2) return -1;
    uint16_t rotated[256];
    for (int row = 0; row < hq + hkv; row++) {
        const uint16_t *src = qkv + (int64_t)row * D;
        for (int i = 0; i < D; i++) {
            const int partner = interleaved ? (i ^ 1) : (i + D / 2) % D;
            const float first = round_bf16(from_bf16(src[i]) * from_bf16(cos[i]));
            rotated[i] = to_bf16(first + from_bf16(src[partner]) * from_bf16(sin[i]));
        }
        uint16_t *dst = row < hq ? qkv + (int64_t)row * D : k_dst + (int64_t)(row - hq) * head_stride;
        for (int i = 0; i < D; i++) dst[i] = rotated[i];
    }
    for (int h = 0; h < hkv; h++) {
        const uint16_t *src = qkv + (int64_t)(hq + hkv + h) * D;
        for (int i = 0; i < D; i++) v_dst[(int64_t)h * head_stride + i] = src[i];
    }
    return 0;
}

// SwiGLU on a merged [gate | up] row block (rows, 2*inter) -> (rows, inter): silu(gate) rounded, times up, rounded
// (F.silu then the product, as SiluAndMul).
void dsv4_silu_mul(const uint16_t *gate_up, uint16_t *out, int64_t rows, int64_t inter) {
    for (int64_t r = 0; r < rows; r++) {
        const uint16_t *gate = gate_up + r * 2 * inter, *up = gate + inter;
        for (int64_t i = 0; i < inter; i++) {
            const float g = from_bf16(gate[i]);
            out[r * inter + i] = to_bf16(round_bf16(g / (1.0f + expf(-g))) * from_bf16(up[i]));
        }
    }
}
