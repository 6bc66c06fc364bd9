// Causal attention of a prompt chunk over a bf16 KV cache (the chunk's own keys included), for CPUs with
// AVX-512 BF16. Built into the same library as cpu_decode.c (runtime/layers/cpu_decode.py).
//
// ATen's CPU flash kernel takes the chunk after the first through its masked path (a (T, S) mask read for
// every score, GQA by repeating the kv heads) at ~80 GFLOP/s a thread. Here both products are `vdpbf16ps`
// with one operand broadcast: the keys and values of each kv head are repacked once per call into pair-
// interleaved blocks of 32 keys, so that one instruction is 16 keys x one query pair (q.k) or 16 output
// dims x one key pair (p.v), and ROWS query rows (the G heads of a token and the next tokens) share every
// load. The softmax is online per block of 32 keys; the causal limit of each row is a lane mask on the
// blocks the chunk's own tokens fall in, so no mask tensor exists.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_simd.h"

#if !defined(__AVX512F__) || !defined(__AVX512BF16__)
#error "needs AVX-512F and AVX-512 BF16"
#endif

#define KEYS 32  // keys per block: two fp32 score vectors per row
#define ROWS 8   // query rows per register block
#define GROUPS 8  // register blocks per work item: they share each tile of keys
#define TILE 16   // key blocks per tile (512 keys: 128 KB of repacked keys and values at D = 64, in L2)
#define MAX_D 128

// Where one kv head's keys are: positions [0, n_warm) int8 rows of the llama live warm tier (key = code * its
// row's fp16 scale), then bf16 hot rows (position p at slot p - n_warm).
typedef struct {
    const int8_t *k_codes, *v_codes;
    const uint16_t *k_scales, *v_scales, *k, *v;
    int64_t n_warm;
} KeyRows;

static inline uint16_t warm_element(const KeyRows *rows, int is_value, int64_t key, int D, int d) {
    const int8_t code = (is_value ? rows->v_codes : rows->k_codes)[key * D + d];
    return to_bf16((float)code * _cvtsh_ss((is_value ? rows->v_scales : rows->k_scales)[key]));  // one rounding, as the hot rows'
}

// Keys [0, n) of one kv head, repacked: block b holds, for each pair p of dims, the pair of keys b*32..b*32+31
// as 32 uint32 (kt), and for each pair of keys jp and dim d the two keys' values side by side (vt, as uint32
// [jp][d]). Keys past n are zero (their scores are masked out before the softmax). Warm keys are dequantised
// to bf16 here, into the same scratch the hot ones are copied to: no dequantised copy of the tier exists.
static void repack_block(const KeyRows *rows, int D, int64_t n, int64_t b, uint32_t *kt, uint32_t *vt) {
    const int pairs = D / 2;
    uint16_t *kt16 = (uint16_t *)kt, *vt16 = (uint16_t *)vt;
    for (int j = 0; j < KEYS; j++) {
        const int64_t key = b * KEYS + j;
        if (key >= n) {
            for (int p = 0; p < pairs; p++) kt[p * KEYS + j] = 0u;
        } else if (key >= rows->n_warm) {
            const uint32_t *krow = (const uint32_t *)(rows->k + (key - rows->n_warm) * D);
            for (int p = 0; p < pairs; p++) kt[p * KEYS + j] = krow[p];
        } else {
            for (int d = 0; d < D; d++) kt16[((d / 2) * KEYS + j) * 2 + d % 2] = warm_element(rows, 0, key, D, d);
        }
    }
    for (int j = 0; j < KEYS; j++) {
        const int64_t key = b * KEYS + j;
        uint16_t *dst = vt16 + (j / 2) * D * 2 + (j % 2);
        if (key >= n) {
            for (int d = 0; d < D; d++) dst[d * 2] = 0;
        } else if (key >= rows->n_warm) {
            const uint16_t *vrow = rows->v + (key - rows->n_warm) * D;
            for (int d = 0; d < D; d++) dst[d * 2] = vrow[d];
        } else {
            for (int d = 0; d < D; d++) dst[d * 2] = warm_element(rows, 1, key, D, d);
        }
    }
}

// The online-softmax state of ROWS query rows: unnormalised outputs, running max and sum.
typedef struct {
    float o[ROWS][MAX_D] __attribute__((aligned(64)));
    float m[ROWS], l[ROWS];
} RowState;

static void start_rows(RowState *st, int D) {
    for (int r = 0; r < ROWS; r++) {
        memset(st->o[r], 0, sizeof(float) * D);
        st->m[r] = -INFINITY;
        st->l[r] = 0.0f;
    }
}

// ROWS query rows of one kv head over key blocks [b_begin, b_end): rows r have query pointers q[r] and see
// keys [0, limit[r]]; blocks from first_masked on are checked against the limits.
static inline __attribute__((always_inline)) void attend_rows(
    const int D, const uint16_t *const *q, const int64_t *limit, RowState *st, const uint32_t *kt, const uint32_t *vt,
    int64_t b_begin, int64_t b_end, int64_t first_masked, float scale) {
    const int pairs = D / 2, DV = D / 16;
    float (*o)[MAX_D] = st->o;
    float *m = st->m, *l = st->l;
    uint32_t p16[ROWS][KEYS / 2] __attribute__((aligned(64)));  // the block's probabilities as bf16 pairs
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int64_t b = b_begin; b < b_end; b++) {
        const uint32_t *kb = kt + b * (int64_t)pairs * KEYS;
        __m512 s[ROWS][2];
        for (int r = 0; r < ROWS; r++) s[r][0] = s[r][1] = _mm512_setzero_ps();
        for (int p = 0; p < pairs; p++) {
            const __m512bh k0 = (__m512bh)_mm512_loadu_si512(kb + p * KEYS);
            const __m512bh k1 = (__m512bh)_mm512_loadu_si512(kb + p * KEYS + 16);
            for (int r = 0; r < ROWS; r++) {
                const __m512bh qp = (__m512bh)_mm512_set1_epi32((int)((const uint32_t *)q[r])[p]);
                s[r][0] = _mm512_dpbf16_ps(s[r][0], k0, qp);
                s[r][1] = _mm512_dpbf16_ps(s[r][1], k1, qp);
            }
        }
        for (int r = 0; r < ROWS; r++) {
            __mmask16 valid0 = 0xffff, valid1 = 0xffff;
            if (b >= first_masked) {  // a block the chunk's own tokens fall in: keys past the row's position are masked
                const __m512i room = _mm512_set1_epi32((int)(limit[r] - b * KEYS));  // last visible lane
                valid0 = _mm512_cmple_epi32_mask(lane, room);
                valid1 = _mm512_cmple_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(16)), room);
            }
            const __m512 ninf = _mm512_set1_ps(-INFINITY);
            const __m512 s0 = _mm512_mask_mul_ps(ninf, valid0, s[r][0], _mm512_set1_ps(scale));
            const __m512 s1 = _mm512_mask_mul_ps(ninf, valid1, s[r][1], _mm512_set1_ps(scale));
            const float block_max = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
            if (block_max > m[r]) {
                const float alpha = expf(m[r] - block_max);  // 0 for the first block (m = -inf)
                l[r] *= alpha;
                for (int c = 0; c < DV; c++)
                    _mm512_store_ps(o[r] + c * 16, _mm512_mul_ps(_mm512_load_ps(o[r] + c * 16), _mm512_set1_ps(alpha)));
                m[r] = block_max;
            }
            const __m512 top = _mm512_set1_ps(m[r]);
            const __m512 e0 = _mm512_maskz_mov_ps(valid0, exp_nonpositive(_mm512_sub_ps(s0, top)));
            const __m512 e1 = _mm512_maskz_mov_ps(valid1, exp_nonpositive(_mm512_sub_ps(s1, top)));
            l[r] += _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
            _mm512_store_si512(p16[r], (__m512i)_mm512_cvtne2ps_pbh(e1, e0));  // keys 0..15 low, 16..31 high
        }
        const uint32_t *vb = vt + b * (int64_t)(KEYS / 2) * D;
        for (int c = 0; c < DV; c += 2) {  // two vectors of 16 output dims at a time: 2*ROWS accumulators
            __m512 acc[ROWS][2];
            for (int r = 0; r < ROWS; r++) {
                acc[r][0] = _mm512_load_ps(o[r] + c * 16);
                acc[r][1] = _mm512_load_ps(o[r] + c * 16 + 16);
            }
            for (int jp = 0; jp < KEYS / 2; jp++) {
                const __m512bh v0 = (__m512bh)_mm512_loadu_si512(vb + jp * D + c * 16);
                const __m512bh v1 = (__m512bh)_mm512_loadu_si512(vb + jp * D + c * 16 + 16);
                for (int r = 0; r < ROWS; r++) {
                    const __m512bh pp = (__m512bh)_mm512_set1_epi32((int)p16[r][jp]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], v0, pp);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], v1, pp);
                }
            }
            for (int r = 0; r < ROWS; r++) {
                _mm512_store_ps(o[r] + c * 16, acc[r][0]);
                _mm512_store_ps(o[r] + c * 16 + 16, acc[r][1]);
            }
        }
    }
}

static void finish_rows(const RowState *st, int D, uint16_t *const *out, int rows) {
    for (int r = 0; r < rows; r++) {
        const __m512 inv = _mm512_set1_ps(1.0f / st->l[r]);
        for (int c = 0; c < D / 16; c++)
            _mm256_storeu_si256((__m256i *)(out[r] + c * 16), (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_load_ps(st->o[r] + c * 16), inv)));
    }
}

static void attend_rows_any(int D, const uint16_t *const *q, const int64_t *limit, RowState *st, const uint32_t *kt,
                            const uint32_t *vt, int64_t b_begin, int64_t b_end, int64_t first_masked, float scale) {
    if (D == 64) attend_rows(64, q, limit, st, kt, vt, b_begin, b_end, first_masked, scale);
    else attend_rows(128, q, limit, st, kt, vt, b_begin, b_end, first_masked, scale);
}

int dsv4_prefill_supports(int D) { return D == 64 || D == 128; }

// q: token t's head hq at q + t * q_token_stride + hq * D (heads grouped by kv head: hq = h * G + g);
// warm tier (positions [0, n_warm), NULL pointers when n_warm is 0): kv head h's int8 rows at warm_k/warm_v +
// h * warm_capacity * D, their fp16 scales at warm_k_scale/warm_v_scale + h * warm_capacity;
// k, v: kv head h's hot key of position p at k + h * head_stride + (p - n_warm) * D, positions [n_warm, start + T)
// valid (the chunk's own included, start >= n_warm); out: (T, hkv * G * D) bf16. Token t sees positions
// [0, start + t]. Returns 0, -1 for shapes this kernel does not take, -2 when out of memory.
int dsv4_prefill_attention_tiered(const uint16_t *q, int64_t q_token_stride, const int8_t *warm_k, const uint16_t *warm_k_scale,
                                  const int8_t *warm_v, const uint16_t *warm_v_scale, int64_t warm_capacity, int64_t n_warm,
                                  const uint16_t *k, const uint16_t *v, int64_t head_stride, uint16_t *out, int64_t T, int hkv,
                                  int G, int D, int64_t start, float scale, int threads) {
    if (!dsv4_prefill_supports(D) || hkv < 1 || G < 1 || T < 1 || n_warm < 0 || start < n_warm) return -1;
    const int64_t n = start + T, blocks = (n + KEYS - 1) / KEYS, block_elems = (int64_t)KEYS * D / 2;
    const int64_t row_count = T * G, items_per_head = (row_count + ROWS * GROUPS - 1) / (ROWS * GROUPS), H = (int64_t)hkv * G;
    uint32_t *kt = aligned_alloc(64, (size_t)(hkv * blocks * block_elems) * sizeof(uint32_t));
    uint32_t *vt = aligned_alloc(64, (size_t)(hkv * blocks * block_elems) * sizeof(uint32_t));
    if (kt == NULL || vt == NULL) {
        free(kt);
        free(vt);
        return -2;
    }
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
#pragma omp for schedule(static)
        for (int64_t item = 0; item < hkv * blocks; item++) {
            const int64_t h = item / blocks, b = item % blocks;
            const int64_t warm_rows = h * warm_capacity;
            const KeyRows rows = {n_warm ? warm_k + warm_rows * D : NULL, n_warm ? warm_v + warm_rows * D : NULL,
                                  n_warm ? warm_k_scale + warm_rows : NULL, n_warm ? warm_v_scale + warm_rows : NULL,
                                  k + h * head_stride, v + h * head_stride, n_warm};
            repack_block(&rows, D, n, b, kt + item * block_elems, vt + item * block_elems);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < hkv * items_per_head; item++) {
            const int64_t h = item / items_per_head, group0 = (item % items_per_head) * ROWS * GROUPS;
            const uint32_t *head_kt = kt + h * blocks * block_elems, *head_vt = vt + h * blocks * block_elems;
            RowState state[GROUPS];
            const uint16_t *qrow[GROUPS][ROWS];
            uint16_t *orow[GROUPS][ROWS];
            int64_t limit[GROUPS][ROWS], needed[GROUPS];
            int rows[GROUPS], groups = 0;
            for (int gi = 0; gi < GROUPS && group0 + gi * ROWS < row_count; gi++, groups++) {
                const int64_t row0 = group0 + gi * ROWS;
                rows[gi] = 0;
                for (int r = 0; r < ROWS; r++) {
                    const int64_t row = row0 + r < row_count ? row0 + r : row_count - 1;  // padding rows repeat the last
                    const int64_t t = row / G, head = h * G + row % G;
                    qrow[gi][r] = q + t * q_token_stride + head * D;
                    orow[gi][r] = out + t * H * D + head * D;
                    limit[gi][r] = start + t;
                    rows[gi] += row0 + r < row_count;
                }
                needed[gi] = limit[gi][ROWS - 1] / KEYS + 1;  // rows ascend in t: the last row sees the most keys
                start_rows(&state[gi], D);
            }
            const int64_t most = needed[groups - 1];
            for (int64_t tile = 0; tile < most; tile += TILE) {  // each tile of keys is read from L2 by every group
                for (int gi = 0; gi < groups; gi++) {
                    const int64_t b_end = tile + TILE < needed[gi] ? tile + TILE : needed[gi];
                    if (tile < b_end)
                        attend_rows_any(D, qrow[gi], limit[gi], &state[gi], head_kt, head_vt, tile, b_end, limit[gi][0] / KEYS, scale);
                }
            }
            for (int gi = 0; gi < groups; gi++) finish_rows(&state[gi], D, orow[gi], rows[gi]);
        }
    }
    free(kt);
    free(vt);
    return 0;
}

// All keys hot: position p at k + h * head_stride + p * D, positions [0, start + T) valid.
int dsv4_prefill_attention(const uint16_t *q, int64_t q_token_stride, const uint16_t *k, const uint16_t *v,
                           int64_t head_stride, uint16_t *out, int64_t T, int hkv, int G, int D, int64_t start, float scale,
                           int threads) {
    return dsv4_prefill_attention_tiered(q, q_token_stride, NULL, NULL, NULL, NULL, 0, 0, k, v, head_stride, out, T, hkv, G, D,
                                         start, scale, threads);
}

// --- rotary and the cache write of a whole chunk, one call instead of ~12 ATen ops a layer ------------------

int dsv4_rope_store(uint16_t *qkv, const uint16_t *cos, const uint16_t *sin, uint16_t *k_dst, uint16_t *v_dst, int hq,
                    int hkv, int D, int64_t head_stride, int interleaved);  // cpu_decode.c: one token

// T tokens' qkv rows ((hq + 2*hkv) * D each): token t as dsv4_rope_store at table row t and cache row t (cos, sin,
// k_dst and v_dst point at the chunk's first position). Returns 0, or -1 for shapes it does not take.
int dsv4_rope_store_rows(uint16_t *qkv, const uint16_t *cos, const uint16_t *sin, uint16_t *k_dst, uint16_t *v_dst, int hq,
                         int hkv, int D, int64_t head_stride, int interleaved, int64_t T, int threads) {
    if (D > 256 || D % 2) return -1;
    const int64_t row = (int64_t)(hq + 2 * hkv) * D;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && T > 1)
    for (int64_t t = 0; t < T; t++)
        dsv4_rope_store(qkv + t * row, cos + t * D, sin + t * D, k_dst + t * D, v_dst + t * D, hq, hkv, D, head_stride, interleaved);
    return 0;
}
