// See include/dvt_kernels.h. The constants and formulas are those of TensorCore's RowKernels
// (Cephes expf, Numerical Recipes' erfcc), so the two paths agree to a few ulp (the tests
// hold them to 1e-6 relative); only the lane count and FMA contraction differ.
#include "dvt_kernels.h"

#include <immintrin.h>
#include <math.h>

int dvt_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

#define AVX512 __attribute__((target("avx512f")))

// e^r for the reduced argument of a clamped x: x = k·ln 2 + r with k = round(x·log2 e), Cody-Waite
// split of ln 2, degree-6 polynomial. *t returns k + 1.5·2^23 as a float, whose low bits hold k.
static inline AVX512 __m512 exp16_reduced(__m512 xc, __m512 *t_out) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 k = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 er = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    *t_out = t;
    return er;
}

static inline AVX512 __m512 exp16(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.72283f), lo = _mm512_set1_ps(-87.33654f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 t;
    __m512 er = exp16_reduced(xc, &t);
    // 2^k as 2^k1 * 2^k2 (each a normal float), as RowKernels.exp.
    __m512i ki = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000));
    __m512i k1 = _mm512_srai_epi32(ki, 1), k2 = _mm512_sub_epi32(ki, k1);
    __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, _mm512_set1_epi32(127)), 23));
    __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, _mm512_set1_epi32(127)), 23));
    __m512 y = _mm512_mul_ps(_mm512_mul_ps(er, s1), s2);
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN stays NaN
    return y;
}

// exp16 for arguments x <= 0 or NaN (softmax's x - max), bit for bit what exp16 returns there:
// the clamp and the infinity mask at the top never act (x <= 0 < hi), and 2^k with
// k = round(x·log2 e) in [-126, 0] is a normal float, so one exact scale replaces exp16's two
// (er·2^k is the exact product rounded once, whether the two-step product rounds at the first
// or the second step: the first is exact, 2^k1 being normal too). Saves 8 of its ~30 vector
// operations; softmax's exp pass was 7% of a bf16 ViT-B/14 518² forward.
static inline AVX512 __m512 exp16_nonpositive(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __m512 xc = _mm512_max_ps(x, lo);
    __m512 t;
    __m512 er = exp16_reduced(xc, &t);
    // t's low bits hold k + 2^22 + 2^23 as an integer; + (127 - that offset) << 23 is 2^k.
    __m512i ki = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000 - 127));
    __m512 y = _mm512_mul_ps(er, _mm512_castsi512_ps(_mm512_slli_epi32(ki, 23)));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);  // NaN stays NaN
    return y;
}

static inline AVX512 __mmask16 tail_mask(ptrdiff_t count) {
    return (__mmask16)((1u << count) - 1u);
}

AVX512 void dvt_exp_avx512(const float *x, float *y, ptrdiff_t n, int nonpositive) {
    for (ptrdiff_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, nonpositive ? exp16_nonpositive(v) : exp16(v));
    }
}

// The shared first two passes of both softmax kernels: dst = exp(src − max(src)), returning
// 1 / Σ dst broadcast. src and dst may be the same row.
static inline AVX512 __m512 softmax_exp_pass(const float *src, float *dst, ptrdiff_t n) {
    ptrdiff_t i = 0;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(src + i));
    if (i < n) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(n - i), src + i));
    float m = _mm512_reduce_max_ps(vmax);
    __m512 shift = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(src + i), shift));
        _mm512_storeu_ps(dst + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        __m512 e = exp16_nonpositive(_mm512_sub_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mk, src + i), shift));
        _mm512_mask_storeu_ps(dst + i, mk, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mk, e));
    }
    return _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
}

AVX512 void dvt_softmax_row_avx512(const float *src, float *dst, ptrdiff_t n) {
    if (n <= 0) return;
    ptrdiff_t i;
    __m512 inv = softmax_exp_pass(src, dst, n);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_loadu_ps(dst + i), inv));
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, dst + i), inv));
    }
}

/// Phi(x) = erfc(-x/sqrt2)/2 with relative accuracy in both tails (RowKernels.normalCDF).
static inline AVX512 __m512 normal_cdf16(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 z = _mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    __m512 arg = _mm512_sub_ps(_mm512_fnmadd_ps(z, z, _mm512_mul_ps(p, t)), _mm512_set1_ps(1.26551223f));
    __m512 half = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), t), exp16(arg));  // Phi(-|x|)
    __m512 cdf = _mm512_sub_ps(_mm512_set1_ps(1.0f), half);
    return _mm512_mask_mov_ps(cdf, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), half);
}

AVX512 void dvt_gelu_forward_avx512(const float *x, float *y, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(v, normal_cdf16(v)));
    }
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
        _mm512_mask_storeu_ps(y + i, mk, _mm512_mul_ps(v, normal_cdf16(v)));
    }
}

AVX512 void dvt_gelu_backward_avx512(float *gx, const float *g, const float *x, ptrdiff_t n) {
    const __m512 c = _mm512_set1_ps(0.39894228040143268f), mhalf = _mm512_set1_ps(-0.5f);
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 pdf = _mm512_mul_ps(exp16(_mm512_mul_ps(_mm512_mul_ps(mhalf, v), v)), c);
        __m512 d = _mm512_fmadd_ps(v, pdf, normal_cdf16(v));
        _mm512_storeu_ps(gx + i, _mm512_fmadd_ps(_mm512_loadu_ps(g + i), d, _mm512_loadu_ps(gx + i)));
    }
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(mk, x + i);
        __m512 pdf = _mm512_mul_ps(exp16(_mm512_mul_ps(_mm512_mul_ps(mhalf, v), v)), c);
        __m512 d = _mm512_fmadd_ps(v, pdf, normal_cdf16(v));
        _mm512_mask_storeu_ps(gx + i, mk, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, g + i), d, _mm512_maskz_loadu_ps(mk, gx + i)));
    }
}

int dvt_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
}

int dvt_cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
}

// Peak kernels: 12 independent accumulator chains of vector type V, each advanced by one fused
// multiply-add (OP) per iteration, so the loop is bound by the FMA ports rather than by the
// latency of a chain. Each returns the floating-point operations it performed.
#define CHAINS(OP, V, F) OP(0, V, F) OP(1, V, F) OP(2, V, F) OP(3, V, F) OP(4, V, F) OP(5, V, F) \
    OP(6, V, F) OP(7, V, F) OP(8, V, F) OP(9, V, F) OP(10, V, F) OP(11, V, F)
#define PEAK_DECL(i, V, SET1) V c##i = SET1((float)(i));
#define PEAK_STEP(i, V, FMA) c##i = FMA(c##i, a, b);
#define PEAK_SUM(i, V, ADD) s = ADD(s, c##i);
#define PEAK_KERNEL(TARGET, NAME, V, AB, A, B, SET1, FMA, ADD, ZERO, REDUCE, FLOPS_PER_STEP) \
    TARGET double NAME(long iters, float *sink) {                                          \
        const AB a = A, b = B;                                                               \
        CHAINS(PEAK_DECL, V, SET1)                                                           \
        for (long it = 0; it < iters; it++) { CHAINS(PEAK_STEP, V, FMA) }                    \
        V s = ZERO();                                                                        \
        CHAINS(PEAK_SUM, V, ADD)                                                             \
        *sink = REDUCE(s);                                                                   \
        return (double)iters * 12 * (FLOPS_PER_STEP);                                        \
    }

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 s) {
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

// 16 lanes × (multiply + add).
PEAK_KERNEL(AVX512, dvt_peak_fp32_avx512, __m512, __m512, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f),
            _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_setzero_ps, _mm512_reduce_add_ps, 16 * 2)
// 8 lanes × (multiply + add).
PEAK_KERNEL(__attribute__((target("avx2,fma"))), dvt_peak_fp32_avx2, __m256, __m256, _mm256_set1_ps(0.999999f),
            _mm256_set1_ps(1e-7f), _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_setzero_ps, hsum256, 8 * 2)
// 16 lanes × a two-term bf16 dot product (2 multiplies + 2 adds); a = 1.0 and b = 2^-24 in bf16.
PEAK_KERNEL(__attribute__((target("avx512f,avx512bf16"))), dvt_peak_bf16_avx512, __m512, __m512bh,
            (__m512bh)_mm512_set1_epi16(0x3F80), (__m512bh)_mm512_set1_epi16(0x3380), _mm512_set1_ps, _mm512_dpbf16_ps,
            _mm512_add_ps, _mm512_setzero_ps, _mm512_reduce_add_ps, 16 * 4)

// Adam: no contraction anywhere in this function, so every product and sum rounds as the
// Swift loop's does (see the header).
#pragma clang fp contract(off)
AVX512 void dvt_adam_update_avx512(float *p, const float *g, float *m, float *v, ptrdiff_t n,
                                   float one_minus_beta1, float beta2, float one_minus_beta2, float l2, float decay,
                                   float eps, float neg_step_size, float bc2_sqrt, int decoupled) {
    const __m512 omb1 = _mm512_set1_ps(one_minus_beta1), b2 = _mm512_set1_ps(beta2);
    const __m512 omb2 = _mm512_set1_ps(one_minus_beta2), vl2 = _mm512_set1_ps(l2), vdecay = _mm512_set1_ps(decay);
    const __m512 veps = _mm512_set1_ps(eps), step = _mm512_set1_ps(neg_step_size), bc2 = _mm512_set1_ps(bc2_sqrt);
    for (ptrdiff_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m512 gi = _mm512_maskz_loadu_ps(k, g + i), pi = _mm512_maskz_loadu_ps(k, p + i);
        __m512 m0 = _mm512_maskz_loadu_ps(k, m + i), v0 = _mm512_maskz_loadu_ps(k, v + i);
        if (decoupled) {
            pi = _mm512_mul_ps(pi, vdecay);
        } else if (l2 != 0) {
            gi = _mm512_add_ps(gi, _mm512_mul_ps(vl2, pi));
        }
        __m512 mi = _mm512_add_ps(m0, _mm512_mul_ps(omb1, _mm512_sub_ps(gi, m0)));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(v0, b2), _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), veps);
        pi = _mm512_add_ps(pi, _mm512_div_ps(_mm512_mul_ps(step, mi), denom));
        _mm512_mask_storeu_ps(p + i, k, pi);
    }
}
#pragma clang fp contract(on)

/// bf16 bits of 16 floats, rounded to nearest even, NaN kept quiet: TensorCore's
/// BFloat16.pack (integer arithmetic, so the bits are the same as that Swift path).
static inline AVX512 __m256i to_bf16_16(__m512 x) {
    __m512i v = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(v, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(v, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(v, 16), _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

AVX512 void dvt_softmax_row_bf16_avx512(float *row, uint16_t *dst, ptrdiff_t n) {
    if (n <= 0) return;
    ptrdiff_t i;
    __m512 inv = softmax_exp_pass(row, row, n);
    for (i = 0; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), to_bf16_16(_mm512_mul_ps(_mm512_loadu_ps(row + i), inv)));
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        uint16_t tail[16];  // AVX-512 F has no masked 16-bit store (that is BW + VL)
        _mm256_storeu_si256((__m256i *)tail, to_bf16_16(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, row + i), inv)));
        for (ptrdiff_t j = 0; j < n - i; j++) dst[i + j] = tail[j];
    }
}

// bf16 softmax with AVX512_BF16 (attention's probabilities under Precision.bf16). Its results
// are rounded to bf16 (8 significant bits), so the exponential need not be the fp32 kernel's
// Cephes expf: 2^y with y = (x - max)·log2 e formed by one FMA, split y = k + f with
// k = round(y) and f in [-1/2, 1/2], a degree-5 polynomial for 2^f with p(0) = 1 (iteratively
// reweighted least squares on Chebyshev nodes, near minimax: relative error 1.9e-7 over
// [-1/2, 1/2] evaluated in fp32, held to 1e-6 by the tests), and vscalefps for the exact 2^k scale (which also takes the result into the subnormals and
// to 0 without masks). About 12 vector operations per 16 exponentials instead of ~23, and one
// vcvtne2ps2bf16 per 32 outputs instead of ~8 integer operations per 16: the two passes were
// 6% of a bf16 ViT-B/14 518² forward's samples. vcvtne2ps2bf16 rounds to nearest even like
// BFloat16.pack; it differs from it only on subnormal inputs (flushed to 0), i.e. probabilities
// below 1.2e-38.
#define AVX512BF16 __attribute__((target("avx512f,avx512bf16")))

static inline AVX512BF16 __m512 exp2_reduced16(__m512 y) {
    // y >= -160 (clamped by the caller): k = round(y), f = y - k exactly (Sterbenz), 2^f · 2^k.
    __m512 k = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(y, k);
    __m512 p = _mm512_set1_ps(1.3264728477224708e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.671512991189957e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550733581185341e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022242426872253e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931470036506653e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

AVX512BF16 void dvt_exp2_bf16softmax_avx512(const float *y, float *out, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m512 v = _mm512_max_ps(_mm512_set1_ps(-160.0f), _mm512_maskz_loadu_ps(k, y + i));
        _mm512_mask_storeu_ps(out + i, k, exp2_reduced16(v));
    }
}

AVX512BF16 void dvt_softmax_row_bf16_fast_avx512(float *row, uint16_t *dst, ptrdiff_t n) {
    if (n <= 0) return;
    ptrdiff_t i = 0;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + i));
    if (i < n) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask(n - i), row + i));
    float m = _mm512_reduce_max_ps(vmax);
    // y = x·log2 e − max·log2 e in one rounding; max(−160, y) keeps −∞ scores finite so that
    // y − round(y) is not NaN: 2^−160 scales to 0. A NaN score stays NaN (vmaxps returns its
    // second operand when one is NaN), and so does a row whose max is ±∞ (as in the fp32 kernel).
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), lo = _mm512_set1_ps(-160.0f);
    __m512 shift = _mm512_set1_ps(-m * 1.44269504088896341f), acc = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp2_reduced16(_mm512_max_ps(lo, _mm512_fmadd_ps(_mm512_loadu_ps(row + i), log2e, shift)));
        _mm512_storeu_ps(row + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 mk = tail_mask(n - i);
        __m512 e = exp2_reduced16(_mm512_max_ps(lo, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, row + i), log2e, shift)));
        e = _mm512_maskz_mov_ps(mk, e);
        _mm512_mask_storeu_ps(row + i, mk, e);
        acc = _mm512_add_ps(acc, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
    for (i = 0; i + 32 <= n; i += 32) {
        __m512bh h = _mm512_cvtne2ps_pbh(_mm512_mul_ps(_mm512_loadu_ps(row + i + 16), inv), _mm512_mul_ps(_mm512_loadu_ps(row + i), inv));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)h);
    }
    for (; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask(n - i);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, row + i), inv));
        uint16_t tail[16];  // AVX-512 F has no masked 16-bit store (that is BW + VL)
        _mm256_storeu_si256((__m256i *)tail, (__m256i)h);
        for (ptrdiff_t j = 0; j < 16 && i + j < n; j++) dst[i + j] = tail[j];
    }
}
