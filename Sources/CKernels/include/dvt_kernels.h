// Row kernels with AVX-512 (F) bodies behind a runtime CPU check, for the parts of a ViT
// forward that run outside the matmuls (softmax rows of attention, GELU). Swift compiles for
// baseline x86-64 (SSE2), so its SIMD8 kernels run at 4 lanes; these run at 16 with FMA.
// Callers must check dvt_cpu_has_avx512() first; TensorCore falls back to its Swift kernels.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU and OS support AVX-512 F (checked once by the compiler's cpu model).
int dvt_cpu_has_avx512(void);

/// y = exp(x) for n floats with the kernel softmax uses (nonpositive != 0: the variant for
/// x <= 0, which softmax's x - max always is) or the general one; for tests that hold the two
/// to the same bits on x <= 0.
void dvt_exp_avx512(const float *x, float *y, ptrdiff_t n, int nonpositive);

/// dst[i] = softmax(src)[i] over one row of n floats (src may equal dst): subtracts the row
/// maximum, exp (Cephes expf polynomial, as TensorCore's RowKernels.exp), divides by the sum.
void dvt_softmax_row_avx512(const float *src, float *dst, ptrdiff_t n);

/// dst[i] = bf16(softmax(row)[i]) over one row of n floats, the exponentials left in `row`:
/// the same values as dvt_softmax_row_avx512 followed by rounding to bf16 (nearest even, NaN
/// kept quiet), in one pass less (attention's probabilities under Precision.bf16).
void dvt_softmax_row_bf16_avx512(float *row, uint16_t *dst, ptrdiff_t n);

/// dst[i] = bf16(softmax(row)[i]) with AVX512_BF16 (callers check dvt_cpu_has_avx512_bf16()):
/// the exponential as 2^y, y = (x − max)·log2 e, by a degree-5 polynomial and vscalefps
/// (relative error 1.9e-7 instead of the Cephes kernel's ~1 ulp), rounding by vcvtne2ps2bf16
/// (nearest even; subnormals flushed to 0). Within one bf16 ulp of the exact softmax; `row`
/// is left holding the exponentials.
void dvt_softmax_row_bf16_fast_avx512(float *row, uint16_t *dst, ptrdiff_t n);

/// out[i] = 2^max(y[i], −160) by the polynomial of dvt_softmax_row_bf16_fast_avx512 (for its
/// accuracy test; AVX512_BF16 CPUs only).
void dvt_exp2_bf16softmax_avx512(const float *y, float *out, ptrdiff_t n);

/// y[i] = x[i] * Phi(x[i]) (exact GELU, erfc Chebyshev fit as RowKernels.normalCDF).
void dvt_gelu_forward_avx512(const float *x, float *y, ptrdiff_t n);

/// gx[i] += g[i] * (Phi(x[i]) + x[i] * phi(x[i])).
void dvt_gelu_backward_avx512(float *gx, const float *g, const float *x, ptrdiff_t n);

/// 1 when the CPU supports AVX512_BF16 (vdpbf16ps), 1 when it supports AVX2 + FMA.
int dvt_cpu_has_avx512_bf16(void);
int dvt_cpu_has_avx2_fma(void);

/// Peak-throughput loops for `dvt bench engine`: `iters` rounds of 12 independent FMA chains
/// (enough to cover the FMA latency on every core design we know), returning the floating
/// point operations done; the result is written to *sink so the loop cannot be removed.
/// fp32: 16 lanes (AVX-512) or 8 lanes (AVX2), 2 flops per lane; bf16: vdpbf16ps, 16 lanes
/// of two bf16 products each, 4 flops per lane.
double dvt_peak_fp32_avx512(long iters, float *sink);
double dvt_peak_fp32_avx2(long iters, float *sink);
double dvt_peak_bf16_avx512(long iters, float *sink);

/// Software prefetch of the cache line holding `p`, for writing (rw = 1) and into every cache
/// level (locality 3). The sparse kernels (hash-grid gather and scatter, row-sparse Adam) visit
/// rows of 75 MiB tables in random order; hinting the rows a few iterations ahead overlaps the
/// DRAM misses that otherwise serialise behind each row's arithmetic. A hint only: no effect on
/// results. Header-inline so Swift callers get the single instruction.
static inline void dvt_prefetch(const void *p) { __builtin_prefetch(p, 1, 3); }

/// Adam's element update over n floats, TensorCore's `AdamKernel.update` at 16 lanes: the same
/// float operations in the same order and no FMA contraction (square root and division are
/// correctly rounded in both), so the results are bit-identical to the Swift loop, which the
/// tests check. decoupled != 0: p ← p·decay first (AdamW); else g ← g + l2·p when l2 != 0.
void dvt_adam_update_avx512(float *p, const float *g, float *m, float *v, ptrdiff_t n,
                            float one_minus_beta1, float beta2, float one_minus_beta2, float l2, float decay,
                            float eps, float neg_step_size, float bc2_sqrt, int decoupled);
