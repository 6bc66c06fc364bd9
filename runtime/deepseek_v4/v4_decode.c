// The one-token (decode) layer body of DeepSeek-V4 on the CPU with int8 weights, as a few C calls per layer.
//
// An int8 decode step of the mid-size bench config read its weights in ~11 ms but spent ~9 ms more on about
// 1,900 small ATen calls (issue 19): a norm is 8 dispatches, a rotary 10, an int8 projection 9 (the bf16
// casts around `_weight_int8pack_mm`), an mHC site ~30. Each function here is one of those groups as one
// call, with the arithmetic of the torch path it replaces (float32, the same bf16 roundings around the int8
// products), so greedy decoding is unchanged. Built by runtime/deepseek_v4/v4_kernels.py with the system C
// compiler; AVX-512 where the CPU has it, plain loops elsewhere.
#include "v4_common.h"

#define MAX_HC 16
#define MAX_EXPERTS 1024

void v4_int8_gemv(const float *x, const int8_t *w, const uint16_t *scale, float *y, int64_t N, int64_t K, int threads) {
    gemv_int8(x, w, scale, y, N, K, threads);
}

// ---- norms and rotary ----

// out = rope(rms_norm(x) (* weight)); norm and rotary each optional (rope == 0: none).
int v4_norm_rope(const float *x, float *out, int64_t rows, int64_t dim, const float *weight, float eps, int norm, int rope,
                 const float *inv_freq, int64_t pos, int inverse) {
    if (rope > 2 * 512 || rope > dim || rope % 2) return 1;
    if (norm)
        rms_rows(x, out, rows, dim, weight, eps);
    else if (out != x)
        memcpy(out, x, rows * dim * sizeof(float));
    if (rope) rope_rows(out, rows, dim, rope, inv_freq, pos, inverse);
    return 0;
}

// ---- mHC, one token ----

// HyperConnection.pre for one token followed by the sub-layer's RMSNorm: h (hc, d) -> x_out (d) =
// norm(sum_k pre_k h_k) * norm_w, mix_out = post gates (hc) then the Sinkhorn-normalised comb (hc, hc).
// The gates and Sinkhorn run in double like mhc.one_token_mixes.
int v4_mhc_pre(const float *h, int hc, int64_t d, const float *fn, const float *base, const float *scale, float norm_eps,
               double eps, int iters, const float *norm_w, float *x_out, float *mix_out) {
    if (hc < 1 || hc > MAX_HC) return 1;
    const int64_t width = (int64_t)hc * d;
    const int nmix = (2 + hc) * hc;
    float inv = 1.0f / sqrtf(sum_squares(h, width) / (float)width + norm_eps);
    float *hn = malloc(width * sizeof(float));  // the normed streams, as rms_unweighted(h.flatten(1))
    for (int64_t i = 0; i < width; i++) hn[i] = h[i] * inv;
    double z[(2 + MAX_HC) * MAX_HC];
    float dots[(2 + MAX_HC) * MAX_HC];
    dot_rows(fn, width, hn, width, nmix, dots);
    for (int j = 0; j < nmix; j++) {
        float s = scale[j < hc ? 0 : j < 2 * hc ? 1 : 2];
        z[j] = (double)(base[j] + dots[j] * s);
    }
    free(hn);
    double pre[MAX_HC], m[MAX_HC * MAX_HC];
    for (int k = 0; k < hc; k++) {
        pre[k] = 0.5 + 0.5 * tanh(0.5 * z[k]) + eps;  // sigmoid without exp overflow
        mix_out[k] = (float)(1.0 + tanh(0.5 * z[hc + k]));
    }
    for (int r = 0; r < hc; r++) {  // softmax of each row, + eps
        const double *row = z + 2 * hc + r * hc;
        double top = row[0], total = 0.0;
        for (int c = 1; c < hc; c++) top = row[c] > top ? row[c] : top;
        for (int c = 0; c < hc; c++) total += (m[r * hc + c] = exp(row[c] - top));
        for (int c = 0; c < hc; c++) m[r * hc + c] = m[r * hc + c] / total + eps;
    }
    for (int it = 0; it < iters; it++) {  // column pass, then row/column pairs
        if (it)
            for (int r = 0; r < hc; r++) {
                double s = eps;
                for (int c = 0; c < hc; c++) s += m[r * hc + c];
                for (int c = 0; c < hc; c++) m[r * hc + c] /= s;
            }
        for (int c = 0; c < hc; c++) {
            double s = eps;
            for (int r = 0; r < hc; r++) s += m[r * hc + c];
            for (int r = 0; r < hc; r++) m[r * hc + c] /= s;
        }
    }
    for (int j = 0; j < hc * hc; j++) mix_out[hc + j] = (float)m[j];
    float y[d];
    float pf[MAX_HC];
    for (int k = 0; k < hc; k++) pf[k] = (float)pre[k];
    int64_t i = 0;
#ifdef __AVX512F__
    for (; i + 16 <= d; i += 16) {  // the collapse in 16 lanes, each in the scalar tail's order
        __m512 acc = _mm512_setzero_ps();
        for (int k = 0; k < hc; k++) acc = _mm512_fmadd_ps(_mm512_set1_ps(pf[k]), _mm512_loadu_ps(h + k * d + i), acc);
        _mm512_storeu_ps(y + i, acc);
    }
#endif
    for (; i < d; i++) {
        float acc = 0.0f;
        for (int k = 0; k < hc; k++) acc = fmaf(pf[k], h[k * d + i], acc);
        y[i] = acc;
    }
    rms_rows(y, x_out, 1, d, norm_w, norm_eps);
    return 0;
}

// HyperConnection.post for one token: out_k = post_k * o + sum_j comb[j, k] * h_j, mix = post (hc), comb (hc, hc).
void v4_mhc_post(const float *o, const float *h, const float *mix, int hc, int64_t d, float *out) {
    const float *comb = mix + hc;
    for (int k = 0; k < hc; k++) {
        float *ok = out + k * d;
        int64_t i = 0;
#ifdef __AVX512F__
        for (; i + 16 <= d; i += 16) {  // 16 lanes, each in the scalar tail's order
            __m512 acc = _mm512_setzero_ps();
            for (int j = 0; j < hc; j++)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(comb[j * hc + k]), _mm512_loadu_ps(h + j * d + i), acc);
            _mm512_storeu_ps(ok + i, _mm512_fmadd_ps(_mm512_set1_ps(mix[k]), _mm512_loadu_ps(o + i), acc));
        }
#endif
        for (; i < d; i++) {
            float acc = 0.0f;
            for (int j = 0; j < hc; j++) acc = fmaf(comb[j * hc + k], h[j * d + i], acc);
            ok[i] = fmaf(mix[k], o[i], acc);
        }
    }
}

// e^x of n values x <= 0 (as a softmax takes them), for the tests against torch.exp
void v4_exp(const float *x, float *out, int64_t n) {
    memcpy(out, x, n * sizeof(float));
    exp_shifted(out, n, 0.0f);
}

// ---- attention, one query ----

// v[h] = q_h . key for the indexer's heads (hd wide): 8 heads a pass, their 8 lane-sums added as one tree (a
// 64-wide dot is 4 FMAs, so reducing each head's lanes alone would cost more than the products).
static void dot_heads(const float *q, const float *key, int64_t hd, int heads, float *v) {
    int h = 0;
#ifdef __AVX512F__
    if (hd % 16 == 0)
        for (; h + 8 <= heads; h += 8) {
            __m512 acc[8];
            for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
            for (int64_t i = 0; i < hd; i += 16) {
                const __m512 kv = _mm512_loadu_ps(key + i);
                for (int t = 0; t < 8; t++) acc[t] = _mm512_fmadd_ps(_mm512_loadu_ps(q + (h + t) * hd + i), kv, acc[t]);
            }
            __m256 half[8];
            for (int t = 0; t < 8; t++)
                half[t] = _mm256_add_ps(_mm512_castps512_ps256(acc[t]), _mm512_extractf32x8_ps(acc[t], 1));
            const __m256 a = _mm256_hadd_ps(_mm256_hadd_ps(half[0], half[1]), _mm256_hadd_ps(half[2], half[3]));
            const __m256 b = _mm256_hadd_ps(_mm256_hadd_ps(half[4], half[5]), _mm256_hadd_ps(half[6], half[7]));
            // a, b: per 128-bit lane the partial sums of heads 0-3 / 4-7; the two lanes added give the 8 results
            _mm256_storeu_ps(v + h, _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31)));
        }
#endif
    for (; h < heads; h++) v[h] = dot_f32(q + h * hd, key, hd);
}

// The lightning indexer for one query: score_j = sum_h (head_w_h * w_scale) relu(q_h . key_j) over n keys (hd wide), then the
// best k (k <= n) into idx, ties to the lower index.
void v4_indexer_topk(const float *q, const float *head_w, float w_scale, int heads, int64_t hd, const float *keys, int64_t n,
                     int64_t k, int64_t *idx) {
    float *score = malloc((n ? n : 1) * sizeof(float)), w[heads], v[heads];
    for (int h = 0; h < heads; h++) w[h] = head_w[h] * w_scale;
    for (int64_t j = 0; j < n; j++) {
        dot_heads(q, keys + j * hd, hd, heads, v);  // every head against key j
        float s = 0.0f;
        for (int h = 0; h < heads; h++) s = fmaf(w[h], v[h] > 0.0f ? v[h] : 0.0f, s);
        score[j] = s;
    }
    topk_stable(score, n, k, idx);
    free(score);
}

// One query (H, D) over window keys (two runs: `tail` rows then `fresh` rows) and compressed entries (rows
// `comp_idx` of comp when given, else its first n_comp rows), plus a per-head sink logit; K = V. Then the
// inverse RoPE on the output (rope > 0).
int v4_attend_one(const float *q, int H, int64_t D, const float *tail, int64_t n_tail, const float *fresh, int64_t n_fresh,
                  const float *comp, const int64_t *comp_idx, int64_t n_comp, const float *sink, float scale, float *out,
                  int rope, const float *inv_freq, int64_t pos) {
    if (rope > 2 * 512 || rope > D || rope % 2) return 1;
    const int64_t n = n_tail + n_fresh + n_comp;
    const int H8 = (H + 7) / 8 * 8;  // heads padded to whole passes of 8 (zero weights): fixed-width inner loops
    float *p = calloc((n ? n : 1) * H8, sizeof(float)), v[H];  // p[h * n + j]: head h's weight of key j
    const float **key = malloc((n ? n : 1) * sizeof(float *));
    for (int64_t j = 0; j < n; j++)
        key[j] = j < n_tail ? tail + j * D : j < n_tail + n_fresh ? fresh + (j - n_tail) * D
               : comp + (comp_idx ? comp_idx[j - n_tail - n_fresh] : j - n_tail - n_fresh) * D;
    for (int64_t j = 0; j < n; j++) {  // each key against every head: one read of the key
        dot_rows(q, D, key[j], D, H, v);
        for (int h = 0; h < H; h++) p[h * n + j] = v[h] * scale;
    }
    for (int h = 0; h < H; h++) {
        float *ph = p + h * n, top = sink[h];
        for (int64_t j = 0; j < n; j++) top = ph[j] > top ? ph[j] : top;
        const float total = exp_scalar(sink[h] - top) + exp_shifted(ph, n, top);
        const float inv = 1.0f / total;
        for (int64_t j = 0; j < n; j++) ph[j] *= inv;
    }
    // out_h = sum_j p_hj key_j in key order, 8 heads a pass sharing each load of a key
    for (int h0 = 0; h0 < H; h0 += 8) {
        const int nh = H - h0 < 8 ? H - h0 : 8;
        int64_t i = 0;
#ifdef __AVX512F__
        for (; i + 16 <= D; i += 16) {
            __m512 acc[8];
            for (int t = 0; t < 8; t++) acc[t] = _mm512_setzero_ps();
            for (int64_t j = 0; j < n; j++) {
                const __m512 kv = _mm512_loadu_ps(key[j] + i);
                for (int t = 0; t < 8; t++) acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(p[(h0 + t) * n + j]), kv, acc[t]);
            }
            for (int t = 0; t < nh; t++) _mm512_storeu_ps(out + (h0 + t) * D + i, acc[t]);
        }
#endif
        for (; i < D; i++)
            for (int t = 0; t < nh; t++) {
                float acc = 0.0f;
                for (int64_t j = 0; j < n; j++) acc = fmaf(p[(h0 + t) * n + j], key[j][i], acc);
                out[(h0 + t) * D + i] = acc;
            }
    }
    free(p);
    free(key);
    if (rope) rope_rows(out, H, D, rope, inv_freq, pos, 1);
    return 0;
}

// The grouped output projection of one token: o (G * in) cut into G inputs, input g through wo_a[g] (R, in),
// the concatenation (G * R) through wo_b (N, G * R) -> out (N).
void v4_output_proj(const float *o, int G, int64_t in, int64_t R, const int8_t *const *wo_a, const uint16_t *const *wo_a_scale,
                    const int8_t *wo_b, const uint16_t *wo_b_scale, int64_t N, float *out, int threads) {
    float *grouped = malloc(G * R * sizeof(float));
    for (int g = 0; g < G; g++) gemv_int8(o + g * in, wo_a[g], wo_a_scale[g], grouped + g * R, R, in, threads);
    gemv_int8(grouped, wo_b, wo_b_scale, out, N, G * R, threads);
    free(grouped);
}

// ---- mixture of experts, one token ----

// The gate for one token: scores s = f(W x) (0 sqrt-softplus, 1 sigmoid, 2 softmax), experts by the best
// s + bias (ties to the lower index) or the token's hash row, weights s[idx] (normalised when norm_topk)
// times route_scale.
int v4_moe_gate(const float *x, const float *gate_w, int64_t E, int64_t d, int func, const float *bias, const int64_t *hash_row,
                int64_t k, int norm_topk, float route_scale, int64_t *idx, float *weights) {
    if (E > MAX_EXPERTS || k > E) return 2;
    float s[MAX_EXPERTS], biased[MAX_EXPERTS];
    float top = -INFINITY;
    for (int64_t e = 0; e < E; e++) {
        float v = dot_f32(gate_w + e * d, x, d);
        if (func == 0)
            v = sqrtf(v > 20.0f ? v : log1pf(expf(v)));  // F.softplus (threshold 20), then sqrt
        else if (func == 1)
            v = 1.0f / (1.0f + expf(-v));
        s[e] = v;
        top = v > top ? v : top;
    }
    if (func == 2) {
        float total = 0.0f;
        for (int64_t e = 0; e < E; e++) total += (s[e] = expf(s[e] - top));
        for (int64_t e = 0; e < E; e++) s[e] /= total;
    }
    if (hash_row)
        for (int64_t i = 0; i < k; i++) idx[i] = hash_row[i];
    else {
        for (int64_t e = 0; e < E; e++) biased[e] = (s[e] + bias[e]) + 0.0f;
        topk_stable(biased, E, k, idx);
    }
    float total = 0.0f;
    for (int64_t i = 0; i < k; i++) total += (weights[i] = s[idx[i]]);
    for (int64_t i = 0; i < k; i++) weights[i] = (norm_topk ? weights[i] / (total + 1e-20f) : weights[i]) * route_scale;
    return 0;
}

static inline float silu(float g) { return g / (1.0f + exp_scalar(-g)); }

// hid = silu(g) * u (* weight) of the clamped halves g = gu[:width], u = gu[width:], as clamped_swiglu
static void swiglu(const float *gu, int64_t width, float limit, int weighted, float weight, float *hid) {
    int64_t i = 0;
#ifdef __AVX512F__
    const __m512 hi = _mm512_set1_ps(limit), lo = _mm512_set1_ps(-limit), one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= width; i += 16) {
        __m512 g = _mm512_loadu_ps(gu + i), u = _mm512_loadu_ps(gu + width + i);
        if (limit > 0) {
            g = _mm512_min_ps(g, hi);
            u = _mm512_max_ps(_mm512_min_ps(u, hi), lo);
        }
        // silu(g) = g / (1 + e^-g) = g e^g / (1 + e^g): the exponent is -|g| <= 0 either way
        const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
        const __mmask16 negative = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 num = _mm512_mask_mul_ps(g, negative, g, e);
        __m512 y = _mm512_mul_ps(_mm512_div_ps(num, _mm512_add_ps(one, e)), u);
        _mm512_storeu_ps(hid + i, weighted ? _mm512_mul_ps(y, _mm512_set1_ps(weight)) : y);
    }
#endif
    for (; i < width; i++) {
        float g = gu[i], u = gu[width + i];
        if (limit > 0) {
            g = g < limit ? g : limit;
            u = u < -limit ? -limit : u > limit ? limit : u;
        }
        hid[i] = weighted ? silu(g) * u * weight : silu(g) * u;
    }
}

// One token's MoE: the gate (as v4_moe_gate) chooses k experts and their weights, then the routed experts and
// the shared one (weight 1, unscaled): sum over them of w2_e(clamped_swiglu(w13_e x) * weight), in float32.
// w13 (2I, d) and w2 (d, I) int8 with bf16 row scales, per expert from the pointer tables; the shared expert is
// entry E of the tables. Hash routing reads row `*token` of hash_table (table_rows, k) (the token id read here, so
// the caller needs no host read of it). Returns 1 when a hashed expert id is out of range, 3 for the token id.
int v4_moe(const float *x, int64_t d, const float *gate_w, int64_t E, int func, const float *bias, const int64_t *hash_table,
           int64_t table_rows, const int64_t *token, int64_t k, int norm_topk, float route_scale, int64_t I, int64_t I_shared,
           const int8_t *const *w13, const uint16_t *const *s13, const int8_t *const *w2, const uint16_t *const *s2, int shared,
           float limit, float *out, int threads) {
    int64_t idx[MAX_EXPERTS];
    float weights[MAX_EXPERTS];
    if (hash_table && (*token < 0 || *token >= table_rows)) return 3;
    const int64_t *hash_row = hash_table ? hash_table + *token * k : NULL;
    if (v4_moe_gate(x, gate_w, E, d, func, bias, hash_row, k, norm_topk, route_scale, idx, weights)) return 2;
    for (int64_t r = 0; r < k; r++)
        if (idx[r] < 0 || idx[r] >= E) return 1;
    const int64_t widest = I > I_shared ? I : I_shared;
    float *scratch = malloc((3 * widest + d) * sizeof(float)), *part = scratch + 3 * widest;
    for (int64_t i = 0; i < d; i++) out[i] = 0.0f;
    for (int64_t r = 0; r < k + (shared ? 1 : 0); r++) {
        const int64_t e = r < k ? idx[r] : E, width = r < k ? I : I_shared;
        float *gu = scratch, *hid = scratch + 2 * width;
        gemv_int8(x, w13[e], s13[e], gu, 2 * width, d, threads);
        swiglu(gu, width, limit, r < k, r < k ? weights[r] : 1.0f, hid);
        gemv_int8(hid, w2[e], s2[e], part, d, width, threads);
        for (int64_t i = 0; i < d; i++) out[i] += part[i];
    }
    free(scratch);
    return 0;
}
