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

/* Longest row the packed path takes: its weight panel for rows this long
 * (about 75 KB) lives on each calling thread's stack. Longer rows use the
 * row-by-row vec_dot. */
#define MMQ8_MAX_K 16384

/* True when the packed kernels exist and match this process's Q8_0 vec_dot
 * (the CPU, capped by CGPT_SIMD, runs AVX-512 VNNI). */
bool mmq8_available(void);

/* Bytes of one packed activation row of K elements (K a multiple of 32);
 * a multiple of 64. */
size_t mmq8_act_row_bytes(int K);

/* Packs one row of K elements of Q8_0 blocks ('row', borrowed) into 'dst'
 * (mmq8_act_row_bytes(K) bytes, 64-byte aligned). Needs mmq8_available(). */
void mmq8_pack_act(void *dst, const void *row, int K);

/* out[m*ldo + n] = dot(W row n, activation row m) (+ bias[n] when bias is
 * not NULL) for n in [n0, n1) and m in [0, M). W rows are w_row_bytes
 * apart; packed activation rows (mmq8_pack_act) act_ld bytes apart.
 * K <= MMQ8_MAX_K. Borrows everything. Needs mmq8_available(). */
void mmq8_rows(float *out, size_t ldo, const void *w, size_t w_row_bytes, long n0, long n1,
               const void *act, size_t act_ld, int M, int K, const float *bias);

#endif
