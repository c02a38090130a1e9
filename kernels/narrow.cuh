// narrow.cuh: the warp-level building block of the narrow-layer and whole-network kernels.
//
// One warp computes RM complete rows of a layer's output, `out[r][c] = g(a[r]·w[:, c] + b[c])`
// for c < n ≤ 32·CJ: lane l owns columns l, l + 32, ..., l + 32·(CJ-1) of each of its RM rows
// (RM·CJ f32 accumulators). Because a warp owns whole rows, softmax is one pass too: the row
// maximum and the sum of exponentials are warp shuffles (common.cuh), no second kernel.
//
// The inputs of the warp's rows come from a per-warp f32 staging area in shared memory,
// `rows[r][kk]` (row stride `stride` floats, a multiple of 4), read as float4 over 4
// consecutive k (every lane reads the same address: a broadcast). The weights come through
// a `WeightSource` (shared memory for the narrow kernel, global memory via L1/L2 for the
// whole-network kernel), read at [k][l + 32·j]: a warp reads consecutive elements (no bank
// conflicts in shared memory, one coalesced line in global memory).
#pragma once

#include "common.cuh"

namespace vecprop {

/// Columns per lane for `n` output columns: 1, 2, 4 or 8 (n ≤ 256), 0 when n is too wide.
__host__ __device__ constexpr int narrow_column_slots(int n) {
    return n <= 32 ? 1 : n <= 64 ? 2 : n <= 128 ? 4 : n <= 256 ? 8 : 0;
}

/// acc[r][j] += Σ_{kk < kc} rows[r][kk] · w.at(k0 + kk, lane + 32j), kc a multiple of 4.
/// Beyond the layer's k the staged rows are zero and every weight source returns zero, so
/// padding adds exactly nothing (never 0 · NaN).
template <int RM, int CJ, typename Weights>
__device__ __forceinline__ void warp_rows_times_weights(float (&acc)[RM][CJ], const float* rows,
                                                        int stride, int kc, const Weights& w,
                                                        int k0, int lane) {
    for (int kk = 0; kk < kc; kk += 4) {
        float wq[4][CJ];
#pragma unroll
        for (int q = 0; q < 4; ++q)
#pragma unroll
            for (int j = 0; j < CJ; ++j) wq[q][j] = w.at(k0 + kk + q, lane + 32 * j);
#pragma unroll
        for (int r = 0; r < RM; ++r) {
            const float4 a4 = *reinterpret_cast<const float4*>(rows + r * stride + kk);
#pragma unroll
            for (int j = 0; j < CJ; ++j) {
                acc[r][j] = fmaf(a4.x, wq[0][j], acc[r][j]);
                acc[r][j] = fmaf(a4.y, wq[1][j], acc[r][j]);
                acc[r][j] = fmaf(a4.z, wq[2][j], acc[r][j]);
                acc[r][j] = fmaf(a4.w, wq[3][j], acc[r][j]);
            }
        }
    }
}

/// Softmax marker for the epilogue: rows are normalised across the warp.
struct RowSoftmax {};

/// The activated value of column slot j of one row: element-wise g (the functor `act`), or
/// (RowSoftmax) the row-wise stable softmax across the warp's lanes. `z[j]` holds acc + bias;
/// slots with column ≥ n are ignored. Every lane of the warp must call this together (shuffles).
template <typename Act, int CJ> struct RowEpilogue {
    __device__ __forceinline__ static void apply(float (&z)[CJ], int lane, int n,
                                                 const Act act) {
#pragma unroll
        for (int j = 0; j < CJ; ++j) z[j] = act.apply(z[j]);
    }
};
template <int CJ> struct RowEpilogue<RowSoftmax, CJ> {
    __device__ __forceinline__ static void apply(float (&z)[CJ], int lane, int n,
                                                 const RowSoftmax /* act */) {
        float row_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < CJ; ++j)
            if (lane + 32 * j < n) row_max = nan_max(row_max, z[j]);
        row_max = warp_max(row_max);
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < CJ; ++j) {
            z[j] = lane + 32 * j < n ? __expf(z[j] - row_max) : 0.0f;
            sum += z[j];
        }
        const float inverse = 1.0f / warp_sum(sum);
#pragma unroll
        for (int j = 0; j < CJ; ++j) z[j] *= inverse;
    }
};

/// Copies rows [row0, row0 + RM) × columns [k0, k0 + kc) of the row-major m×k matrix `a`
/// into `rows` (f32, row stride `stride`), zero outside the matrix. `vec`: k is a multiple of
/// the 16-byte vector width and `a` is 16-byte aligned, so whole vectors are in or out.
/// kc is a multiple of 8. The warp reads consecutive chunks of each row (coalesced).
template <typename T, int RM>
__device__ __forceinline__ void stage_rows(float* rows, int stride, const T* __restrict__ a,
                                           int m, int k, int row0, int k0, int kc, bool vec,
                                           int lane) {
    constexpr int V = Vec16<T>::N;
    if (vec) {
        const int chunks_per_row = kc / V;
        for (int c = lane; c < RM * chunks_per_row; c += 32) {
            const int r = c / chunks_per_row;
            const int kk = (c % chunks_per_row) * V;
            const int row = row0 + r, col = k0 + kk;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (row < m && col < k)
                v = __ldg(reinterpret_cast<const uint4*>(a + static_cast<size_t>(row) * k + col));
            float* dst = rows + r * stride + kk;
#pragma unroll
            for (int e = 0; e < V; e += 4)
                *reinterpret_cast<float4*>(dst + e) = make_float4(
                    vec_get<T>(v, e), vec_get<T>(v, e + 1), vec_get<T>(v, e + 2), vec_get<T>(v, e + 3));
        }
    } else {
        for (int e = lane; e < RM * kc; e += 32) {
            const int r = e / kc, kk = e % kc;
            const int row = row0 + r, col = k0 + kk;
            rows[r * stride + kk] =
                row < m && col < k ? to_float(a[static_cast<size_t>(row) * k + col]) : 0.0f;
        }
    }
}

/// Stores RM rows of activated outputs (g = `act`): out[row0 + r][lane + 32j] for rows < m
/// and columns < n. A warp writes 32 consecutive elements per (r, j).
template <typename T, typename Act, int RM, int CJ>
__device__ __forceinline__ void store_rows(T* __restrict__ out, float (&acc)[RM][CJ],
                                           const float (&bias)[CJ], int m, int n, int row0,
                                           int lane, const Act act) {
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        const int row = row0 + r;
        if (row >= m) break;  // warp-uniform: the shuffles below stay convergent
        float z[CJ];
#pragma unroll
        for (int j = 0; j < CJ; ++j) z[j] = acc[r][j] + bias[j];
        RowEpilogue<Act, CJ>::apply(z, lane, n, act);
        T* out_row = out + static_cast<size_t>(row) * n;
#pragma unroll
        for (int j = 0; j < CJ; ++j)
            if (lane + 32 * j < n) out_row[lane + 32 * j] = from_float<T>(z[j]);
    }
}

}  // namespace vecprop
