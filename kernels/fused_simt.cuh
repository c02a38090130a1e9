// fused_simt.cuh: out = g(A·W + bias) in f32 on the CUDA cores, one block per BM×BN tile of
// `out`. Used by fused_dense.cu (`fused_<act>_f32`, `fused_small_<act>_f32`) and simt_warp.cu
// (launch contract in kernels/ABI.md).
//
// Tiling (shared-memory tiles + 2-D register blocking):
// - A block owns out[block_row .. +BM][block_col .. +BN] and walks k in steps of BK, staging
//   an A tile (BM×BK) and a W tile (BK×BN) in shared memory.
// - The block's threads form a THREADS_M × THREADS_N grid (THREADS_M = BM/TM, THREADS_N = BN/TN).
//   Thread (tr, tc) computes TM×TN outputs: rows tr*4 + {0..3} + g*M_GROUP_STRIDE for each row
//   group g < TM/4, and columns tc*4 + {0..3} + h*N_GROUP_STRIDE for each column group h < TN/4.
//   Splitting a thread's rows and columns into groups of 4 that lie far apart lets each group be
//   read from shared memory with one float4, neighbouring threads reading neighbouring float4s
//   (no bank conflicts), and makes a warp's output stores contiguous.
// - A is stored transposed in shared memory (As[k][m]) so that the 4 rows of a group are
//   contiguous for one k (float4 reads) instead of BK floats apart.
// - Pipeline: global → shared with cp.async into a STAGES-deep ring, STAGES-1 tiles in flight
//   while one is computed; nothing is staged in registers, which keeps the 8×8 accumulator
//   tile within 128 registers. A goes element by element (4-byte copies, needed to transpose;
//   any alignment); W goes as 16-byte copies when n % 4 == 0 and w is 16-byte aligned
//   (then a 4-float chunk is entirely in or out of range), else as 4-byte copies.
//   Out-of-range elements are zero-filled (src-size 0), so partial tiles in m, n and k
//   contribute nothing.
// - Epilogue in registers: add bias, apply g, store with bounds checks (float4 when n % 4 == 0
//   and out is 16-byte aligned).
#pragma once

#include "common.cuh"

namespace vecprop {

/// The block tile, thread tile, k depth and pipeline depth of the f32 kernel.
///
/// WARP_ROWS = 0: threads are numbered row-major over the THREADS_M × THREADS_N thread grid
/// (a warp spans 32 / THREADS_N thread rows). WARP_ROWS = r > 0 (warp tiling): each warp owns
/// an r × (32 / r) patch of the thread grid, so that for one k its float4 reads of A cover
/// r × 16 bytes and of W (32 / r) × 16 bytes, each within one shared-memory wavefront, and
/// its accumulators are a compact sub-tile of the output.
/// DYNAMIC: the stages live in dynamic shared memory (beyond the 48 KB static limit; the
/// launch passes `sizeof(SimtShared<Tile>)` and raises the function's limit).
template <int BM_, int BN_, int BK_, int TM_, int TN_, int STAGES_, int WARP_ROWS_ = 0,
          bool DYNAMIC_ = false>
struct SimtTile {
    static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_, STAGES = STAGES_;
    static constexpr int WARP_ROWS = WARP_ROWS_;
    static constexpr bool DYNAMIC = DYNAMIC_;
    static constexpr int THREADS_M = BM / TM;
    static constexpr int THREADS_N = BN / TN;
    static constexpr int THREADS = THREADS_M * THREADS_N;
    static constexpr int M_GROUPS = TM / 4;              // float4 groups of a thread's rows
    static constexpr int N_GROUPS = TN / 4;              // float4 groups of a thread's columns
    static constexpr int M_GROUP_STRIDE = BM / M_GROUPS;  // = THREADS_M * 4
    static constexpr int N_GROUP_STRIDE = BN / N_GROUPS;  // = THREADS_N * 4
    static constexpr int A_QUADS = BM * BK / 4 / THREADS;  // 4-element runs of A per thread per tile
    static constexpr int B_QUADS = BK * BN / 4 / THREADS;  // 4-element runs of W per thread per tile

    static_assert(BM % TM == 0 && BN % TN == 0, "thread tile must divide the block tile");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "thread tiles are made of float4 groups");
    static_assert(BK % 4 == 0, "tiles are copied in runs of 4 elements");
    static_assert((BM * BK / 4) % THREADS == 0, "every thread copies the same share of A");
    static_assert((BK * BN / 4) % THREADS == 0, "every thread copies the same share of W");
    static_assert(THREADS % 32 == 0, "whole warps");
    static_assert(STAGES >= 2, "a pipeline needs at least two stages");
    static_assert(DYNAMIC || STAGES * (BM + BN) * BK * 4 <= 48 * 1024,
                  "static shared memory is at most 48 KB");
    static_assert(STAGES * (BM + BN) * BK * 4 <= 227 * 1024, "at most 227 KB per block");
    static_assert(WARP_ROWS == 0 || (32 % WARP_ROWS == 0 && THREADS_M % WARP_ROWS == 0 &&
                                     THREADS_N % (32 / WARP_ROWS) == 0),
                  "warp patches tile the thread grid");

    /// This thread's (row, column) in the THREADS_M × THREADS_N thread grid.
    __device__ __forceinline__ static int2 thread_position(int tid) {
        if constexpr (WARP_ROWS == 0) {
            return make_int2(tid / THREADS_N, tid % THREADS_N);
        } else {
            constexpr int WARP_COLS = 32 / WARP_ROWS;
            constexpr int WARPS_N = THREADS_N / WARP_COLS;
            const int warp = tid / 32, lane = tid % 32;
            return make_int2((warp / WARPS_N) * WARP_ROWS + lane / WARP_COLS,
                             (warp % WARPS_N) * WARP_COLS + lane % WARP_COLS);
        }
    }
};

template <typename Tile> struct SimtShared {
    float a[Tile::STAGES][Tile::BK][Tile::BM];  // A tile, transposed: a[stage][kk][row]
    float b[Tile::STAGES][Tile::BK][Tile::BN];  // W tile: b[stage][kk][col]
};

/// The block's stages: static shared memory, or the dynamic allocation for DYNAMIC tiles.
template <typename Tile> __device__ __forceinline__ SimtShared<Tile>& simt_shared() {
    if constexpr (Tile::DYNAMIC) {
        extern __shared__ __align__(16) uint8_t simt_dynamic[];
        return *reinterpret_cast<SimtShared<Tile>*>(simt_dynamic);
    } else {
        __shared__ __align__(16) SimtShared<Tile> smem;
        return smem;
    }
}

/// Starts the copies of k tile `k0` of A and W into `stage` (this thread's share).
template <typename Tile>
__device__ __forceinline__ void simt_load_stage(SimtShared<Tile>& s, int stage, const float* a,
                                                const float* w, int m, int n, int k,
                                                int block_row, int block_col, int k0,
                                                bool w_vec) {
    // A: thread → (row, 4 consecutive k). A warp reads 32-byte runs of 16 rows (full sectors);
    // its transposed shared writes hit 16 consecutive rows of 2 k's.
#pragma unroll
    for (int i = 0; i < Tile::A_QUADS; ++i) {
        const int idx = threadIdx.x + i * Tile::THREADS;
        const int row = idx / (Tile::BK / 4);
        const int kk = (idx % (Tile::BK / 4)) * 4;
        const int grow = block_row + row;
        const float* src_row = a + static_cast<size_t>(grow < m ? grow : 0) * k;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int gk = k0 + kk + j;
            const bool inside = grow < m && gk < k;
            cp_async_4(shared_address(&s.a[stage][kk + j][row]), inside ? src_row + gk : a,
                       inside ? 4 : 0);
        }
    }
    // W: thread → (k row, 4 consecutive columns); a warp reads 512 contiguous bytes of a row.
#pragma unroll
    for (int i = 0; i < Tile::B_QUADS; ++i) {
        const int idx = threadIdx.x + i * Tile::THREADS;
        const int kk = idx / (Tile::BN / 4);
        const int col = (idx % (Tile::BN / 4)) * 4;
        const int gk = k0 + kk;
        const int gcol = block_col + col;
        const float* src_row = w + static_cast<size_t>(gk < k ? gk : 0) * n;
        if (w_vec) {
            const bool inside = gk < k && gcol < n;  // n % 4 == 0: all 4 or none
            cp_async_16(shared_address(&s.b[stage][kk][col]), inside ? src_row + gcol : w,
                        inside ? 16 : 0);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const bool inside = gk < k && gcol + j < n;
                cp_async_4(shared_address(&s.b[stage][kk][col + j]),
                           inside ? src_row + gcol + j : w, inside ? 4 : 0);
            }
        }
    }
}

/// out = act(a·w + bias) for the block's tile. Launch: Tile::THREADS threads,
/// grid (ceil(n/BN), ceil(m/BM)).
template <typename Tile, typename Act>
__device__ __forceinline__ void fused_dense_simt(const float* __restrict__ a,
                                                 const float* __restrict__ w,
                                                 const float* __restrict__ bias,
                                                 float* __restrict__ out, int m, int n, int k,
                                                 const Act act) {
    constexpr int TM = Tile::TM, TN = Tile::TN, BK = Tile::BK, STAGES = Tile::STAGES;
    SimtShared<Tile>& smem = simt_shared<Tile>();

    const int block_row = blockIdx.y * Tile::BM;
    const int block_col = blockIdx.x * Tile::BN;
    const int2 position = Tile::thread_position(threadIdx.x);
    const int thread_row = position.x;
    const int thread_col = position.y;
    const bool w_vec = n % 4 == 0 && is_aligned(w, 16);
    const int k_tiles = ceil_div(k, BK);

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    // Prologue: tiles 0 .. STAGES-2, one commit group per tile (empty when the tile does not
    // exist) so that group t is tile t in the waits below.
#pragma unroll
    for (int t = 0; t < STAGES - 1; ++t) {
        if (t < k_tiles)
            simt_load_stage<Tile>(smem, t, a, w, m, n, k, block_row, block_col, t * BK, w_vec);
        cp_async_commit();
    }

    for (int t = 0; t < k_tiles; ++t) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of tile t have landed
        // Barrier: (1) everyone's copies of tile t are visible to the block; (2) everyone has
        // finished computing tile t-1, whose stage the next line refills.
        __syncthreads();
        const int next = t + STAGES - 1;
        if (next < k_tiles)
            simt_load_stage<Tile>(smem, next % STAGES, a, w, m, n, k, block_row, block_col,
                                  next * BK, w_vec);
        cp_async_commit();

        const int stage = t % STAGES;
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float ra[TM], rb[TN];
#pragma unroll
            for (int g = 0; g < Tile::M_GROUPS; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(
                    &smem.a[stage][kk][g * Tile::M_GROUP_STRIDE + thread_row * 4]);
                ra[g * 4 + 0] = v.x, ra[g * 4 + 1] = v.y, ra[g * 4 + 2] = v.z, ra[g * 4 + 3] = v.w;
            }
#pragma unroll
            for (int h = 0; h < Tile::N_GROUPS; ++h) {
                const float4 v = *reinterpret_cast<const float4*>(
                    &smem.b[stage][kk][h * Tile::N_GROUP_STRIDE + thread_col * 4]);
                rb[h * 4 + 0] = v.x, rb[h * 4 + 1] = v.y, rb[h * 4 + 2] = v.z, rb[h * 4 + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
        }
    }
    // No copies are outstanding: the groups committed after the last tile are empty.

    // Epilogue: bias + g in registers, bounds-checked stores.
    float bias_regs[TN];
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = block_col + (j / 4) * Tile::N_GROUP_STRIDE + thread_col * 4 + j % 4;
        bias_regs[j] = col < n ? bias[col] : 0.0f;
    }
    const bool out_vec = n % 4 == 0 && is_aligned(out, 16);
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int row = block_row + (i / 4) * Tile::M_GROUP_STRIDE + thread_row * 4 + i % 4;
        if (row >= m) continue;
        float* out_row = out + static_cast<size_t>(row) * n;
#pragma unroll
        for (int h = 0; h < Tile::N_GROUPS; ++h) {
            const int col = block_col + h * Tile::N_GROUP_STRIDE + thread_col * 4;
            float4 v;
            v.x = act.apply(acc[i][h * 4 + 0] + bias_regs[h * 4 + 0]);
            v.y = act.apply(acc[i][h * 4 + 1] + bias_regs[h * 4 + 1]);
            v.z = act.apply(acc[i][h * 4 + 2] + bias_regs[h * 4 + 2]);
            v.w = act.apply(acc[i][h * 4 + 3] + bias_regs[h * 4 + 3]);
            if (out_vec) {
                if (col < n) *reinterpret_cast<float4*>(out_row + col) = v;  // all 4 or none
            } else {
                if (col + 0 < n) out_row[col + 0] = v.x;
                if (col + 1 < n) out_row[col + 1] = v.y;
                if (col + 2 < n) out_row[col + 2] = v.z;
                if (col + 3 < n) out_row[col + 3] = v.w;
            }
        }
    }
}

}  // namespace vecprop
