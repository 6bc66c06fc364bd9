// Dequantisation of a snapshot's int8 / int4 blocks straight into a bf16 KV block, in one pass.
//
// A cold restore of SmolLM2 at 8k tokens writes 188 MB of bf16 K/V; ATen needs five passes for it (unpack
// the nibbles, widen, multiply-add, cast, copy into the block: ~1 s on 2 threads). Here each block of codes
// is read once and each bf16 value written once, into the destination rows as they are strided in the
// engine's block (capacity past the prefix). int4: per block a 16-entry table of min + code * step (in
// fp32, rounded to bf16 once), then one 32-bit store per packed byte. int8: code * scale in fp32, rounded
// once. The results equal `codec.py`'s fp32 reference decode (the same products, the same rounding).
//
// Plain C (auto-vectorised with -march=native), built by runtime/kv/dequant.py through the same builder as
// runtime/layers/cpu_decode.c; where no compiler exists the torch path in codec.py is used.
#pragma GCC optimize("fp-contract=off")  // m + c * s rounded twice, as the reference's two torch ops
#include <stdint.h>
#include <string.h>

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) {  // round to nearest even, as torch's .to(torch.bfloat16)
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

// rows: leading rows (layers x K/V x heads); each takes `row_blocks` blocks of `block` values from the codes
// (whose rows are `src_row_blocks` blocks apart: a restore of fewer tokens than the snapshot holds reads a
// prefix of each row) and writes them to `out + r * out_row_stride` (elements).
int dsv4_dequant_int4_bf16(const uint8_t *packed, const uint16_t *step, const uint16_t *lo, uint16_t *out,
                           int64_t rows, int64_t row_blocks, int64_t src_row_blocks, int block,
                           int64_t out_row_stride, int threads) {
    if (block <= 0 || block % 2 || block > 256 || row_blocks > src_row_blocks) return 1;
    const int64_t total = rows * row_blocks;
    const int half = block / 2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < total; b++) {
        const int64_t r = b / row_blocks, j = b % row_blocks, src = r * src_row_blocks + j;
        const float s = half_to_float(step[src]), m = half_to_float(lo[src]);
        uint16_t table[16];
        for (int c = 0; c < 16; c++) table[c] = float_to_bf16(m + (float)c * s);
        const uint8_t *codes = packed + src * half;
        uint16_t *dst = out + r * out_row_stride + j * block;
        for (int i = 0; i < half; i++) {
            const uint8_t c = codes[i];
            uint32_t pair = (uint32_t)table[c & 15] | ((uint32_t)table[c >> 4] << 16);
            memcpy(dst + 2 * i, &pair, 4);
        }
    }
    return 0;
}

int dsv4_dequant_int8_bf16(const int8_t *q, const uint16_t *scale, uint16_t *out, int64_t rows, int64_t row_blocks,
                           int64_t src_row_blocks, int block, int64_t out_row_stride, int threads) {
    if (block <= 0 || block > 4096 || row_blocks > src_row_blocks) return 1;
    const int64_t total = rows * row_blocks;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < total; b++) {
        const int64_t r = b / row_blocks, j = b % row_blocks, src = r * src_row_blocks + j;
        const float s = half_to_float(scale[src]);
        const int8_t *codes = q + src * block;
        uint16_t *dst = out + r * out_row_stride + j * block;
        for (int i = 0; i < block; i++) dst[i] = float_to_bf16((float)codes[i] * s);
    }
    return 0;
}
