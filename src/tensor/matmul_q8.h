/* matmul_q8.h - internal to matmul.c: packed AVX-512 VNNI kernels for Q8_0
 * weights x Q8_0 activations, used when a batch has M >= 2 rows.
 *
 * Each output is bit-identical to quant_ops(DTYPE_Q8_0)->vec_dot of its
 * weight row and activation row at level SIMD_AVX512 (the float contract of
 * q8_avx512.h); only the integer dots are computed differently. The
 * activation rows are packed once per batch (blocks transposed so that one
 * VNNI lane walks one block, with -128 * sum(a) per block and fp32 scales
 * alongside); the weights are packed 4 rows at a time into a stack panel
 * that all M activation rows then stream past, 4 rows at a time: each
 * 64-byte weight load and each activation load serves 4 dots, and each
 * vpdpbusd does 16 blocks' worth of 4-byte dots. */
#ifndef CGPT_TENSOR_MATMUL_Q8_H
#define CGPT_TENSOR_MATMUL_Q8_H

#include <stdbool.h>
#include <stddef.h>

/* Longest row the packed path takes: mmq8_rows' weight panel for rows this
 * long (68 KB) lives on each calling thread's stack. Longer rows use the
 * row-by-row vec_dot. */
#define MMQ8_MAX_K 16384

/* True when the packed kernels exist and match this process's Q8_0 vec_dot
 * (the CPU, capped by CGPT_SIMD, runs AVX-512 VNNI). */
bool mmq8_available(void);

/* Bytes of one packed activation row of K elements (K a multiple of 32);
 * a multiple of 64 (640 per group of 16 blocks, and 640 per block of a
 * last group of 1..8: the tail image of a 4-row tile). */
size_t mmq8_act_row_bytes(int K);

/* Packs activation row m, K elements of Q8_0 blocks ('row', borrowed), into
 * the packed rows at 'base' (64-byte aligned, rows ld =
 * mmq8_act_row_bytes(K) bytes apart). A short last group (1..8 blocks) goes
 * into the tail image of row m & ~3, shared by the 4 rows of a tile: each
 * row writes only its own lanes, so rows may be packed by different threads
 * at once, and the kernels' tiles start at rows that are multiples of 4
 * (lanes of rows never packed are masked out). Needs mmq8_available(). */
void mmq8_pack_act(void *base, size_t ld, int m, const void *row, int K);

/* out[m*ldo + n] = dot(W row n, activation row m) (+ bias[n] when bias is
 * not NULL) for n in [n0, n1) and m in [0, M). W rows are w_row_bytes
 * apart; packed activation rows (mmq8_pack_act, from row 0) act_ld apart.
 * K <= MMQ8_MAX_K. Borrows everything. Needs mmq8_available(). */
void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias);

/* ---- Pre-packed weights (repacked once, at model load) ----
 *
 * The same kernels with the weight panels built once instead of on every
 * call: packing a panel costs about 40% of what the 4 x 4 tiles then
 * compute with it at M = 16. A pre-packed matrix of N rows of K (K a
 * multiple of 32, K <= MMQ8_MAX_K) is ceil(N / 4) panels of 4 rows (the
 * rows past N of the last panel are zero), each panel holding, for its 4
 * rows:
 *   - every group that is not short (full groups and a last group of 9..15
 *     blocks) in the full layout: per group and row, q[8][64] (quant + 128,
 *     unsigned, slot = block) and the 16 block scales as fp16 (converted to
 *     fp32 in the kernel: exact, so the float contract is unchanged);
 *   - a short last group (cnt = 1..8 blocks) by block and dword: for each
 *     block, for each k of 8, the 4 rows' dword k (quants 4k..4k+3, + 128)
 *     side by side (16 bytes: one broadcast serves the 16 lanes of a 4 x 4
 *     tile, lane 4 j + r), then the cnt x 4 fp16 scales [block][row]. No
 *     lane is padded: a transposed layout would pad 2 blocks to 4 lanes and
 *     cost single-row decode (memory-bound) up to 12% more bytes.
 * So a panel holds exactly the bytes of its 4 Q8_0 rows, 136 K / 32 (a
 * last full-layout group of 9..15 blocks keeps 4 c bytes per q[k]), then
 * zeros up to a multiple of 64. Panels are contiguous; each starts 64-byte
 * aligned when the buffer does. The layout is matmul_q8.c's own: read rows
 * back only through mmq8_wpack_row_f32. */

/* Bytes of a pre-packed matrix of N rows of K (K a multiple of 32):
 *     ceil(N / 4) * round_up(4 * 34 * (K / 32), 64)
 * i.e. ceil(N / 4) panels of 4 Q8_0 rows (dtype_row_bytes(DTYPE_Q8_0, K)
 * each), each rounded up to 64 bytes. */
size_t mmq8_wpack_bytes(long N, int K);

/* Packs rows [n0, n1) of the Q8_0 matrix w (rows w_row_bytes apart, N rows
 * in all) into their panels of 'dst' (the whole pre-packed matrix, 64-byte
 * aligned). n0 must be a multiple of 4 and n1 a multiple of 4 or N, so that
 * threads may pack disjoint row ranges at once. Needs mmq8_available(). */
void mmq8_wpack(void *dst, const void *w, size_t w_row_bytes, long N, int K, long n0, long n1);

/* Row r (< N) of a pre-packed matrix dequantized to F32 into dst (K floats):
 * bit-identical to quant_ops(DTYPE_Q8_0)->dequant of the original row (the
 * embedding lookup of tied weights). Plain C: needs no SIMD level. */
void mmq8_wpack_row_f32(const void *wp, long N, int K, long r, float *dst);

/* mmq8_rows over a pre-packed matrix: out[m*ldo + n] for n in [n0, n1) and
 * m in [0, M), M >= 1 (M = 1 is single-sequence decode: it must stream the
 * panels at memory speed, as fast as vec_dot row by row). n0 a multiple of
 * 4; every output bit-identical to vec_dot of the original weight row and
 * the activation row. Borrows everything. Needs mmq8_available(). */
void mmq8_rows_wpacked(float *out, size_t ldo, const void *wp, long N, long n0, long n1,
                       const void *act, size_t act_ld, int M, int K, const float *bias);

#endif
