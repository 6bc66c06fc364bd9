// A whole one-token layer of DeepSeek-V4 (int8 weights, CPU) as one call: the kernels of v4_decode.c and
// v4_compressor.c in the order one_token.OneTokenLayer ran them as ~16 ctypes calls (each converting 6-22
// arguments: ~70 us a layer of Python and ctypes on the loaded dev machine). What does not change between steps
// (weights, norms, rotary tables, the layer's buffers, sizes) is a plan of int64 slots and one of doubles that
// one_token.LayerPlan writes once; a step passes only the streams, the position, the token and the cache's
// addresses (window ring, compressor states, stores), which Python prepares and commits around the call.
#include "v4_common.h"

int v4_norm_rope(const float *x, float *out, int64_t rows, int64_t dim, const float *weight, float eps, int norm, int rope,
                 const float *inv_freq, int64_t pos, int inverse);
int v4_mhc_pre(const float *h, int hc, int64_t d, const float *fn, const float *base, const float *scale, float norm_eps,
               double eps, int iters, const float *norm_w, float *x_out, float *mix_out);
void v4_mhc_post(const float *o, const float *h, const float *mix, int hc, int64_t d, float *out);
void v4_indexer_topk(const float *q, const float *head_w, float w_scale, int heads, int64_t hd, const float *keys, int64_t n,
                     int64_t k, int64_t *idx);
int v4_attend_one(const float *q, int H, int64_t D, const float *tail, int64_t n_tail, const float *fresh, int64_t n_fresh,
                  const float *comp, const int64_t *comp_idx, int64_t n_comp, const float *sink, float scale, float *out,
                  int rope, const float *inv_freq, int64_t pos);
void v4_output_proj(const float *o, int G, int64_t in, int64_t R, const int8_t *const *wo_a, const uint16_t *const *wo_a_scale,
                    const int8_t *wo_b, const uint16_t *wo_b_scale, int64_t N, float *out, int threads);
int v4_moe(const float *x, int64_t d, const float *gate_w, int64_t E, int func, const float *bias, const int64_t *hash_table,
           int64_t table_rows, const int64_t *token, int64_t k, int norm_topk, float route_scale, int64_t I, int64_t I_shared,
           const int8_t *const *w13, const uint16_t *const *s13, const int8_t *const *w2, const uint16_t *const *s2, int shared,
           float limit, float *out, int threads);
int v4_compress_step(const float *kv, const float *score, const float *ape, int m, int64_t c, int overlap, int64_t pos,
                     float *state_kv, float *state_score, int r, float *prev_kv, float *prev_score, int has_prev,
                     const float *norm_w, float eps, int rope, const float *inv_freq, float *out);

// The int64 plan's slots (one_token.PLAN_SLOTS names them in the same order).
enum {
    HC, DIM, HEADS, HEAD_DIM, RATIO, ROPE, INV_FREQ, SINK,
    SITE0_FN, SITE0_BASE, SITE0_SCALE, SITE0_ITERS, SITE0_NORM,
    SITE1_FN, SITE1_BASE, SITE1_SCALE, SITE1_ITERS, SITE1_NORM,
    XP_Q, XP_S, XP_N, Q_LORA, OFF_C0, OFF_C1, OFF_HEADW, Q_NORM, KV_NORM, WQB_Q, WQB_S,
    WOA_Q, WOA_S, WOA_G, WOA_IN, WOA_R, WOB_Q, WOB_S,
    C0_M, C0_C, C0_OVERLAP, C0_APE, C0_NORM, C0_ROPE, C0_INV_FREQ,
    C1_M, C1_C, C1_OVERLAP, C1_APE, C1_NORM, C1_ROPE, C1_INV_FREQ,
    IX_WQB_Q, IX_WQB_S, IX_HEADS, IX_HD, IX_TOPK, IX_ROPE, IX_INV_FREQ,
    GATE_W, GATE_E, GATE_FUNC, GATE_BIAS, GATE_TABLE, GATE_ROWS, GATE_K, GATE_NORM_TOPK, MOE_I, MOE_I_SHARED,
    W13_Q, W13_S, W2_Q, W2_S, MOE_SHARED,
    BUF_X, BUF_MIX, BUF_PROJ, BUF_Q, BUF_O, BUF_ATTN, BUF_MID, BUF_INDEX_Q, BUF_INDEX_IDX, BUF_MOE,
    N_SLOTS
};
// The double plan's slots (one_token.FLOAT_SLOTS).
enum { EPS, SITE0_NORM_EPS, SITE0_EPS, SITE1_NORM_EPS, SITE1_EPS, ATTN_SCALE, C0_EPS, C1_EPS, IX_SCALE, ROUTE_SCALE, LIMIT };

#define PTR(t, slot) ((t)(intptr_t)p[slot])

int v4_layer_plan_slots(void) { return N_SLOTS; }

// One compressor step of the plan's compressor `base` (C0_M or C1_M); returns v4_compress_step's status.
static int compress(const int64_t *p, const double *f, int base, int eps_slot, const float *kv, const float *score, int64_t pos,
                    float *rows, int r, float *prev, int has_prev, float *out) {
    const int m = (int)p[base], overlap = (int)p[base + 2];
    const int64_t c = p[base + 1], width = overlap ? 2 * c : c;
    return v4_compress_step(kv, score, PTR(const float *, base + 3), m, c, overlap, pos, rows, rows + m * width, r, prev,
                            prev ? prev + m * c : NULL, has_prev, PTR(const float *, base + 4), (float)f[eps_slot],
                            (int)p[base + 5], PTR(const float *, base + 6), out);
}

// h (hc, d) -> out (hc, d) for the token at `pos`. The window's last n_tail keys are at `tail`, the new key goes to
// `slot`; compressor j (j = 0: the attention's, 1: the indexer's) has its state rows at cj_rows (r = cj_r filled),
// prev rows at cj_prev, its store (cj_n rows at cj_store) and the store's next row at cj_row. Returns a bit per
// compressor that completed a window (its entry written at cj_row), or a negative error: -1 mHC streams, -2 rotary
// width, -3 a hashed expert id, -4 the token id, -5 more experts than the kernels take.
int v4_layer_step(const int64_t *p, const double *f, const float *h, float *out, int64_t pos, const int64_t *token,
                  const float *tail, int64_t n_tail, float *slot,
                  float *c0_rows, int c0_r, float *c0_prev, int c0_has_prev, const float *c0_store, int64_t c0_n, float *c0_row,
                  float *c1_rows, int c1_r, float *c1_prev, int c1_has_prev, const float *c1_store, int64_t c1_n, float *c1_row,
                  int threads) {
    const int hc = (int)p[HC], H = (int)p[HEADS], rope = (int)p[ROPE], ratio = (int)p[RATIO];
    const int64_t d = p[DIM], D = p[HEAD_DIM], q_lora = p[Q_LORA];
    const float eps = (float)f[EPS];
    float *x = PTR(float *, BUF_X), *mix = PTR(float *, BUF_MIX), *proj = PTR(float *, BUF_PROJ), *q = PTR(float *, BUF_Q);
    float *o = PTR(float *, BUF_O), *attn = PTR(float *, BUF_ATTN), *mid = PTR(float *, BUF_MID), *moe = PTR(float *, BUF_MOE);
    const float *inv_freq = PTR(const float *, INV_FREQ);
    const int64_t *table = PTR(const int64_t *, GATE_TABLE);
    if (table) {  // refused before anything is written: a corrupt table leaves the cache as it was
        if (*token < 0 || *token >= p[GATE_ROWS]) return -4;
        for (int64_t i = 0; i < p[GATE_K]; i++)
            if (table[*token * p[GATE_K] + i] < 0 || table[*token * p[GATE_K] + i] >= p[GATE_E]) return -3;
    }
    if (v4_mhc_pre(h, hc, d, PTR(const float *, SITE0_FN), PTR(const float *, SITE0_BASE), PTR(const float *, SITE0_SCALE),
                   (float)f[SITE0_NORM_EPS], f[SITE0_EPS], (int)p[SITE0_ITERS], PTR(const float *, SITE0_NORM), x, mix))
        return -1;
    // the projections of x; the q-lora part normed in place, q per head, the key into the window's ring
    gemv_int8(x, PTR(const int8_t *, XP_Q), PTR(const uint16_t *, XP_S), proj, p[XP_N], d, threads);
    float *qr = proj, *kv = proj + q_lora;
    v4_norm_rope(qr, qr, 1, q_lora, PTR(const float *, Q_NORM), eps, 1, 0, inv_freq, 0, 0);
    gemv_int8(qr, PTR(const int8_t *, WQB_Q), PTR(const uint16_t *, WQB_S), q, (int64_t)H * D, q_lora, threads);
    if (v4_norm_rope(q, q, H, D, NULL, eps, 1, rope, inv_freq, pos, 0)) return -2;
    v4_norm_rope(kv, slot, 1, D, PTR(const float *, KV_NORM), eps, 1, rope, inv_freq, pos, 0);
    int completed = 0;
    const float *comp = NULL;
    const int64_t *comp_idx = NULL;
    int64_t n_comp = 0;
    if (ratio) {
        const int64_t c0_width = p[C0_OVERLAP] ? 2 * p[C0_C] : p[C0_C];
        int s = compress(p, f, C0_M, C0_EPS, proj + p[OFF_C0], proj + p[OFF_C0] + c0_width, pos, c0_rows, c0_r, c0_prev,
                         c0_has_prev, c0_row);
        if (s == 2) return -2;
        completed |= s;
        comp = c0_store;
        n_comp = c0_n + s;
        if (ratio == 4) {  // the indexer's compressor, then its query over every stored key and the top-k
            const int64_t c1_width = p[C1_OVERLAP] ? 2 * p[C1_C] : p[C1_C];
            s = compress(p, f, C1_M, C1_EPS, proj + p[OFF_C1], proj + p[OFF_C1] + c1_width, pos, c1_rows, c1_r, c1_prev,
                         c1_has_prev, c1_row);
            if (s == 2) return -2;
            completed |= s << 1;
            const int64_t keys = c1_n + s, top = keys < p[IX_TOPK] ? keys : p[IX_TOPK];
            float *iq = PTR(float *, BUF_INDEX_Q);
            int64_t *idx = PTR(int64_t *, BUF_INDEX_IDX);
            gemv_int8(qr, PTR(const int8_t *, IX_WQB_Q), PTR(const uint16_t *, IX_WQB_S), iq, p[IX_HEADS] * p[IX_HD], q_lora,
                      threads);
            if (v4_norm_rope(iq, iq, p[IX_HEADS], p[IX_HD], NULL, 0.0f, 0, (int)p[IX_ROPE], PTR(const float *, IX_INV_FREQ),
                             pos, 0))
                return -2;
            v4_indexer_topk(iq, proj + p[OFF_HEADW], (float)f[IX_SCALE], (int)p[IX_HEADS], p[IX_HD], c1_store, keys, top, idx);
            comp_idx = idx;
            n_comp = top;
        }
    }
    v4_attend_one(q, H, D, tail, n_tail, slot, 1, comp, comp_idx, n_comp, PTR(const float *, SINK), (float)f[ATTN_SCALE], o,
                  rope, inv_freq, pos);
    v4_output_proj(o, (int)p[WOA_G], p[WOA_IN], p[WOA_R], PTR(const int8_t *const *, WOA_Q), PTR(const uint16_t *const *, WOA_S),
                   PTR(const int8_t *, WOB_Q), PTR(const uint16_t *, WOB_S), d, attn, threads);
    v4_mhc_post(attn, h, mix, hc, d, mid);
    v4_mhc_pre(mid, hc, d, PTR(const float *, SITE1_FN), PTR(const float *, SITE1_BASE), PTR(const float *, SITE1_SCALE),
               (float)f[SITE1_NORM_EPS], f[SITE1_EPS], (int)p[SITE1_ITERS], PTR(const float *, SITE1_NORM), x, mix);
    int status = v4_moe(x, d, PTR(const float *, GATE_W), p[GATE_E], (int)p[GATE_FUNC], PTR(const float *, GATE_BIAS),
                        PTR(const int64_t *, GATE_TABLE), p[GATE_ROWS], token, p[GATE_K], (int)p[GATE_NORM_TOPK],
                        (float)f[ROUTE_SCALE], p[MOE_I], p[MOE_I_SHARED], PTR(const int8_t *const *, W13_Q),
                        PTR(const uint16_t *const *, W13_S), PTR(const int8_t *const *, W2_Q), PTR(const uint16_t *const *, W2_S),
                        (int)p[MOE_SHARED], (float)f[LIMIT], moe, threads);
    if (status) return status == 1 ? -3 : status == 3 ? -4 : -5;
    v4_mhc_post(moe, mid, mix, hc, d, out);
    return completed;
}
