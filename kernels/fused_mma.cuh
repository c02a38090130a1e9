// fused_mma.cuh: out = g(A·W + bias) for f16/bf16 on the tensor cores (mma.sync m16n8k16,
// f32 accumulation). Used by fused_dense.cu for `fused_<act>_{f16,bf16}` and
// `fused_small_<act>_{f16,bf16}` (launch contract in kernels/ABI.md).
//
// Tiling:
// - A block owns out[block_row .. +BM][block_col .. +BN]; k advances in tiles of BK = 32.
// - Warps form a WARPS_M × WARPS_N grid; warp (wm, wn) owns the WM × WN sub-tile at
//   (wm*WM, wn*WN), WM = BM/WARPS_M, WN = BN/WARPS_N, as M_FRAGS × N_FRAGS mma tiles of 16×8.
//   For each 16-wide k step it loads its A fragments with `ldmatrix.x4` (one 16×16 A tile each)
//   and its W fragments with `ldmatrix.x4.trans` (two 16×8 col-major B tiles each: W is k×n
//   row-major, i.e. the transpose of what mma's col-major B operand wants), then issues
//   M_FRAGS × N_FRAGS mma.sync.
// - Global → shared with `cp.async` (16 bytes = 8 elements per copy) into a STAGES-deep ring of
//   shared buffers, so that STAGES-1 tiles are in flight while one is computed.
//   Out-of-range chunks (rows ≥ m, columns ≥ n, k ≥ k) are zero-filled by cp.async's src-size 0.
//   A 16-byte copy needs a 16-byte-aligned source: that holds when the row length (k for A,
//   n for W) is a multiple of 8 and the base pointer is 16-byte aligned. Otherwise that operand
//   takes a guarded element-wise path (plain loads, zeros outside, one 16-byte shared store),
//   correct for any shape, slower.
// - Shared layout is XOR-swizzled per 16-byte chunk so that both the cp.async writes and the
//   ldmatrix reads (8 rows × 16 bytes per phase) hit 8 distinct bank groups, without padding
//   (padding would not fit three 128×128 stages in 48 KB).
// - Epilogue in registers: accumulator (row = lane/4 (+8), cols 2*(lane%4) + {0,1}) + bias → g
//   → rounded to T, stored as 32-bit pairs when n is even and `out` 4-byte aligned, else
//   element by element; all bounds-checked.
#pragma once

#include "common.cuh"

namespace vecprop {

// ---------------------------------------------------------------------------------------
// PTX wrappers.
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

/// c += a · b for one m16n8k16 tile, f32 accumulate; T selects f16 or bf16 inputs.
template <typename T> struct Mma;
template <> struct Mma<half_t> {
    __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4],
                                               const uint32_t (&b)[2]) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};
template <> struct Mma<bf16_t> {
    __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4],
                                               const uint32_t (&b)[2]) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

// ---------------------------------------------------------------------------------------
// Tile configuration.
// ---------------------------------------------------------------------------------------

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_> struct MmaTile {
    static constexpr int BM = BM_, BN = BN_, BK = 32, STAGES = STAGES_;
    static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;  // warp tile
    static constexpr int M_FRAGS = WM / 16, N_FRAGS = WN / 8;   // mma tiles per warp
    static constexpr int ELEMS_PER_CHUNK = 8;                   // 16 bytes of 16-bit values
    static constexpr int A_CHUNKS_PER_ROW = BK / ELEMS_PER_CHUNK;  // 4
    static constexpr int B_CHUNKS_PER_ROW = BN / ELEMS_PER_CHUNK;
    static constexpr int A_CHUNKS = BM * A_CHUNKS_PER_ROW;  // per stage
    static constexpr int B_CHUNKS = BK * B_CHUNKS_PER_ROW;
    static constexpr int A_COPIES = A_CHUNKS / THREADS;  // per thread per stage
    static constexpr int B_COPIES = B_CHUNKS / THREADS;

    static_assert(BM % (16 * WARPS_M) == 0 && BN % (16 * WARPS_N) == 0,
                  "warp tiles are whole 16×16 pairs of mma tiles");
    static_assert(N_FRAGS % 2 == 0, "ldmatrix.x4.trans loads two 8-wide B fragments");
    static_assert(BK % 16 == 0 && A_CHUNKS_PER_ROW == 4, "A swizzle assumes 64-byte rows");
    static_assert(B_CHUNKS_PER_ROW % 8 == 0, "B swizzle needs rows of at least 128 bytes");
    static_assert(A_CHUNKS % THREADS == 0 && B_CHUNKS % THREADS == 0,
                  "every thread copies the same number of chunks");
    static_assert(STAGES >= 2, "a pipeline needs at least two stages");
    static_assert(STAGES * (A_CHUNKS + B_CHUNKS) * 16 <= 48 * 1024,
                  "static shared memory is at most 48 KB");
};

/// Shared memory of one block: STAGES copies of the A tile (BM×BK) and W tile (BK×BN),
/// as 16-byte chunks in swizzled order.
template <typename Tile> struct MmaShared {
    uint4 a[Tile::STAGES][Tile::A_CHUNKS];
    uint4 b[Tile::STAGES][Tile::B_CHUNKS];
};

/// Chunk index of A element row `row`, chunk `chunk` (8 elements) within a stage.
/// Rows are 64 bytes, so two rows share a 128-byte bank line; XOR with (row/2)%4 spreads the
/// 8 rows an ldmatrix phase reads over all 8 16-byte bank groups.
template <typename Tile> __device__ __forceinline__ int a_chunk_index(int row, int chunk) {
    return row * Tile::A_CHUNKS_PER_ROW + (chunk ^ ((row >> 1) & 3));
}

/// Chunk index of W element row `row` (a k index), chunk `chunk` within a stage.
/// Rows are ≥ 128 bytes; XOR with row%8 puts 8 consecutive rows in 8 distinct bank groups.
template <typename Tile> __device__ __forceinline__ int b_chunk_index(int row, int chunk) {
    return row * Tile::B_CHUNKS_PER_ROW + (chunk ^ (row & 7));
}

/// Eight 16-bit elements p[0..count) (count ≤ 8), zero beyond, packed into 16 bytes.
template <typename T>
__device__ __forceinline__ uint4 load_chunk_guarded(const T* p, int count) {
    uint32_t e[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = i < count ? p[i].bits : 0u;
    return make_uint4(e[0] | (e[1] << 16), e[2] | (e[3] << 16), e[4] | (e[5] << 16),
                      e[6] | (e[7] << 16));
}

/// Starts loading k tile `k0` of A and W into stage `stage`.
template <typename Tile, typename T>
__device__ __forceinline__ void mma_load_stage(MmaShared<Tile>& s, int stage, const T* a,
                                               const T* w, int m, int n, int k, int block_row,
                                               int block_col, int k0, bool a_async,
                                               bool w_async) {
#pragma unroll
    for (int i = 0; i < Tile::A_COPIES; ++i) {
        const int idx = threadIdx.x + i * Tile::THREADS;
        const int row = idx / Tile::A_CHUNKS_PER_ROW;
        const int chunk = idx % Tile::A_CHUNKS_PER_ROW;
        const int grow = block_row + row;
        const int gcol = k0 + chunk * Tile::ELEMS_PER_CHUNK;
        const bool inside = grow < m && gcol < k;
        const T* src = inside ? a + static_cast<size_t>(grow) * k + gcol : a;
        uint4* dst = &s.a[stage][a_chunk_index<Tile>(row, chunk)];
        if (a_async) {
            // k % 8 == 0: the chunk is either entirely inside or entirely outside.
            cp_async_16(shared_address(dst), src, inside ? 16 : 0);
        } else {
            *dst = inside ? load_chunk_guarded(src, min(k - gcol, 8)) : make_uint4(0, 0, 0, 0);
        }
    }
#pragma unroll
    for (int i = 0; i < Tile::B_COPIES; ++i) {
        const int idx = threadIdx.x + i * Tile::THREADS;
        const int row = idx / Tile::B_CHUNKS_PER_ROW;
        const int chunk = idx % Tile::B_CHUNKS_PER_ROW;
        const int grow = k0 + row;
        const int gcol = block_col + chunk * Tile::ELEMS_PER_CHUNK;
        const bool inside = grow < k && gcol < n;
        const T* src = inside ? w + static_cast<size_t>(grow) * n + gcol : w;
        uint4* dst = &s.b[stage][b_chunk_index<Tile>(row, chunk)];
        if (w_async) {
            cp_async_16(shared_address(dst), src, inside ? 16 : 0);
        } else {
            *dst = inside ? load_chunk_guarded(src, min(n - gcol, 8)) : make_uint4(0, 0, 0, 0);
        }
    }
}

/// acc += A_tile · W_tile for the warp's WM×WN sub-tile, from stage `stage`.
template <typename Tile, typename T>
__device__ __forceinline__ void mma_compute_stage(
    const MmaShared<Tile>& s, int stage, int warp_row, int warp_col, int lane,
    float (&acc)[Tile::M_FRAGS][Tile::N_FRAGS][4]) {
#pragma unroll
    for (int ks = 0; ks < Tile::BK / 16; ++ks) {
        // ldmatrix.x4: lane l supplies the address of one 16-byte row of the four 8×8 matrices:
        // lanes 0-15 rows 0-15 of the first 8 k, lanes 16-31 rows 0-15 of the next 8 k.
        // For A that yields registers a0..a3 of the m16n8k16 A fragment; for W (with .trans)
        // rows are k and the four registers are (b0, b1) of two adjacent 8-column fragments.
        uint32_t a_frag[Tile::M_FRAGS][4];
        uint32_t b_frag[Tile::N_FRAGS][2];
        const int chunk = ks * 2 + lane / 16;
#pragma unroll
        for (int mi = 0; mi < Tile::M_FRAGS; ++mi) {
            const int row = warp_row + mi * 16 + lane % 16;
            ldmatrix_x4(a_frag[mi], shared_address(&s.a[stage][a_chunk_index<Tile>(row, chunk)]));
        }
#pragma unroll
        for (int nj = 0; nj < Tile::N_FRAGS / 2; ++nj) {
            const int row = ks * 16 + lane % 16;
            const int col_chunk = (warp_col + nj * 16) / Tile::ELEMS_PER_CHUNK + lane / 16;
            uint32_t r[4];
            ldmatrix_x4_trans(r, shared_address(&s.b[stage][b_chunk_index<Tile>(row, col_chunk)]));
            b_frag[2 * nj][0] = r[0];
            b_frag[2 * nj][1] = r[1];
            b_frag[2 * nj + 1][0] = r[2];
            b_frag[2 * nj + 1][1] = r[3];
        }
#pragma unroll
        for (int mi = 0; mi < Tile::M_FRAGS; ++mi)
#pragma unroll
            for (int ni = 0; ni < Tile::N_FRAGS; ++ni) Mma<T>::run(acc[mi][ni], a_frag[mi], b_frag[ni]);
    }
}

/// out = act(a·w + bias) for the block's tile. Launch: Tile::THREADS threads,
/// grid (ceil(n/BN), ceil(m/BM)).
template <typename Tile, typename T, typename Act>
__device__ __forceinline__ void fused_dense_mma(const T* __restrict__ a, const T* __restrict__ w,
                                                const T* __restrict__ bias, T* __restrict__ out,
                                                int m, int n, int k, const Act act) {
    static_assert(sizeof(T) == 2, "tensor-core path is for 16-bit dtypes");
    __shared__ __align__(128) MmaShared<Tile> smem;

    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int block_row = blockIdx.y * Tile::BM;
    const int block_col = blockIdx.x * Tile::BN;
    const int warp_row = (warp / Tile::WARPS_N) * Tile::WM;  // within the block tile
    const int warp_col = (warp % Tile::WARPS_N) * Tile::WN;
    const bool a_async = k % 8 == 0 && is_aligned(a, 16);
    const bool w_async = n % 8 == 0 && is_aligned(w, 16);
    const int k_tiles = ceil_div(k, Tile::BK);

    float acc[Tile::M_FRAGS][Tile::N_FRAGS][4];
#pragma unroll
    for (int mi = 0; mi < Tile::M_FRAGS; ++mi)
#pragma unroll
        for (int ni = 0; ni < Tile::N_FRAGS; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[mi][ni][r] = 0.0f;

    // Prologue: start tiles 0 .. STAGES-2. One commit group per tile, even when the tile does
    // not exist (empty group), so that "group t" always means "tile t" in the waits below.
#pragma unroll
    for (int s = 0; s < Tile::STAGES - 1; ++s) {
        if (s < k_tiles)
            mma_load_stage<Tile, T>(smem, s, a, w, m, n, k, block_row, block_col, s * Tile::BK,
                                    a_async, w_async);
        cp_async_commit();
    }

    for (int t = 0; t < k_tiles; ++t) {
        // Tile t's group is complete once at most STAGES-2 newer groups are pending.
        cp_async_wait<Tile::STAGES - 2>();
        // Barrier: (1) every thread's copies (async or plain stores) of tile t are visible to
        // the whole block; (2) every warp has finished computing tile t-1, whose stage is
        // refilled just below.
        __syncthreads();
        const int next = t + Tile::STAGES - 1;
        if (next < k_tiles)
            mma_load_stage<Tile, T>(smem, next % Tile::STAGES, a, w, m, n, k, block_row,
                                    block_col, next * Tile::BK, a_async, w_async);
        cp_async_commit();
        mma_compute_stage<Tile, T>(smem, t % Tile::STAGES, warp_row, warp_col, lane, acc);
    }
    // No copies can be outstanding here: tile groups beyond k_tiles are empty.

    // Epilogue. mma's C fragment: c0, c1 at (lane/4, 2*(lane%4) + {0,1}); c2, c3 eight rows down.
    const bool pair_store = n % 2 == 0 && is_aligned(out, 4);
    float bias_regs[Tile::N_FRAGS][2];
#pragma unroll
    for (int ni = 0; ni < Tile::N_FRAGS; ++ni) {
        const int col = block_col + warp_col + ni * 8 + 2 * (lane % 4);
        bias_regs[ni][0] = col < n ? to_float(bias[col]) : 0.0f;
        bias_regs[ni][1] = col + 1 < n ? to_float(bias[col + 1]) : 0.0f;
    }
#pragma unroll
    for (int mi = 0; mi < Tile::M_FRAGS; ++mi) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int row = block_row + warp_row + mi * 16 + lane / 4 + half * 8;
            if (row >= m) continue;
            T* out_row = out + static_cast<size_t>(row) * n;
#pragma unroll
            for (int ni = 0; ni < Tile::N_FRAGS; ++ni) {
                const int col = block_col + warp_col + ni * 8 + 2 * (lane % 4);
                const float v0 = act.apply(acc[mi][ni][2 * half + 0] + bias_regs[ni][0]);
                const float v1 = act.apply(acc[mi][ni][2 * half + 1] + bias_regs[ni][1]);
                if (pair_store) {
                    // n even and col even: col < n implies col + 1 < n.
                    if (col < n) *reinterpret_cast<uint32_t*>(out_row + col) = pack2<T>(v0, v1);
                } else {
                    if (col < n) out_row[col] = from_float<T>(v0);
                    if (col + 1 < n) out_row[col + 1] = from_float<T>(v1);
                }
            }
        }
    }
}

}  // namespace vecprop
