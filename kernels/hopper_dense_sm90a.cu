// hopper_dense_sm90a.cu: one dense layer, out = g(a · w + bias), for f16/bf16 on Hopper
// (compute capability 9.0 only: compute_90a PTX, see build.rs).
//
//   wgmma_<act>_<dtype>(const __grid_constant__ TensorMap a_map,
//                       const __grid_constant__ TensorMap w_map,
//                       const T* bias, T* out, int m, int n, int k, float act_param)
//       128×256 output tile per block, 384 threads, grid (ceil(n/256), ceil(m/128)),
//       HopperWide::SHARED_BYTES of dynamic shared memory.
//   wgmma_narrow_<act>_<dtype>(same arguments)
//       128×128 output tile per block, 384 threads, grid (ceil(n/128), ceil(m/128)),
//       HopperNarrow::SHARED_BYTES of dynamic shared memory.
//   <dtype> ∈ f16, bf16; bias never NULL; act_param: leaky_relu's slope, ignored by the
//   other activations.
//
// The host builds the two tensor maps (cuTensorMapEncodeTiled, src/device/cuda/hopper.rs):
// `a_map` over a (m×k, row-major) with a box of 64 (k) × 128 (m) elements, `w_map` over w
// (k×n, row-major) with a box of 64 (n) × 64 (k); both 128-byte swizzled, zero fill out of
// range. The host picks the wide tiles for layers wider than 128 that fill the GPU. TMA needs 16-byte row strides, so the host takes this kernel only when k and n are
// multiples of 8 and the pointers 16-byte aligned; otherwise it runs `fused_<act>_<dtype>`.
//
// Design (warp specialisation):
// - Warpgroup 0 is the producer. After giving up registers (setmaxnreg) one thread loops over
//   the k tiles: wait until stage s is free (`empty[s]`), announce the stage's bytes on
//   `full[s]`, and issue one TMA load for the A tile (128×64) and BN/64 for the W tile (64×BN
//   as 64-column boxes, each its own 128-byte swizzle column).
// - Warpgroups 1 and 2 are consumers, each owning 64 rows × BN columns of the output (BN/2 f32
//   accumulators per thread, in the registers setmaxnreg moved from the producer). Per k tile:
//   wait on `full[s]`, issue four m64nBNk16 wgmma (one per 16 of k) from the swizzled tiles,
//   commit, and once the previous tile's group has retired (wait_group 1) release that tile's
//   stage to the producer through `empty`.
// - The ring has STAGES stages in dynamic shared memory (48 KB wide, 32 KB narrow), 1024-byte
//   aligned as the 128-byte swizzle requires; the mbarriers sit after the ring.
// - Epilogue from the accumulators: + bias, g (common.cuh's activation functors), round to T,
//   staged in the (then idle) ring and written out as coalesced 16-byte chunks, bounds-checked.
//   Rows ≥ m and columns ≥ n were loaded as TMA zeros and are not stored; the k tail is zero
//   in both operands and adds nothing.
#include "hopper_sm90a.cuh"

namespace vecprop {

/// The block tile: BM = 128 rows (two consumer warpgroups of 64), BN = 128 or 256 columns
/// (one m64nBNk16 wgmma per consumer and 16 of k), BK = 64, STAGES deep.
template <int BN_, int STAGES_> struct HopperTile {
    static constexpr int BM = 128, BN = BN_, BK = 64, STAGES = STAGES_;
    static constexpr int CONSUMERS = 2;                     // warpgroups, 64 rows each
    static constexpr int THREADS = 128 * (1 + CONSUMERS);   // + one producer warpgroup
    static constexpr int ACCUMULATORS = BN / 2;             // f32 registers per consumer thread
    static constexpr int A_BYTES = BM * BK * 2;             // 16 KB
    static constexpr int W_HALF_BYTES = BK * 64 * 2;        // one 64-column W box: 8 KB
    static constexpr int W_BOXES = BN / 64;
    static constexpr int W_BYTES = BK * BN * 2;
    static constexpr int STAGE_BYTES = A_BYTES + W_BYTES;   // what TMA delivers per stage
    static constexpr int RING_BYTES = STAGES * STAGE_BYTES;
    static constexpr int ALIGN = 1024;                      // 128-byte swizzle atom
    /// Dynamic shared memory to ask for: the ring, the barriers, and slack to align the base.
    static constexpr int SHARED_BYTES = RING_BYTES + 2 * STAGES * 8 + ALIGN;
    static constexpr int PRODUCER_REGS = 40, CONSUMER_REGS = 232;
    /// The epilogue stages each consumer's 64 × BN outputs (as T) in the idle ring.
    static constexpr int STAGING_ROW_BYTES = BN * 2 + 16;

    static_assert(BK * 2 == 128, "one A row of a tile is one 128-byte swizzle row");
    static_assert(BN == 128 || BN == 256, "the consumers issue m64n128 or m64n256 wgmma");
    static_assert(BM == 64 * CONSUMERS, "one consumer per 64 rows");
    static_assert(SHARED_BYTES <= 227 * 1024, "fits Hopper's 227 KB per block");
    static_assert(CONSUMERS * 64 * STAGING_ROW_BYTES <= RING_BYTES, "staging fits the ring");
    static_assert(128 * PRODUCER_REGS + 128 * CONSUMERS * CONSUMER_REGS <= 65536,
                  "setmaxnreg budgets fit the register file");
};

/// `wgmma_narrow_*`: 128×128 tiles, 6 stages (193 KB). `wgmma_*`: 128×256 tiles, 4 stages
/// (193 KB). src/device/cuda/hopper.rs mirrors SHARED_BYTES and the tile widths.
using HopperNarrow = HopperTile<128, 6>;
using HopperWide = HopperTile<256, 4>;
static_assert(HopperNarrow::SHARED_BYTES == 197728 && HopperWide::SHARED_BYTES == 197696,
              "hopper.rs passes these sizes");

/// GELU (erf form) as a real call: inlined, its normcdff beside the 128 live accumulators of
/// the 128×256 tile spills registers (8 bytes on sm_90a). The call costs no occupancy here
/// (the kernel is at its 168-register launch bound either way) and keeps the epilogue free of
/// local memory (scripts/check-sass.sh).
static __device__ __noinline__ float gelu_outlined(float z) { return Gelu::apply(z); }

/// `act.apply(z)`, with the erf GELU outlined (`gelu_outlined`).
template <typename Act> __device__ __forceinline__ float epilogue_apply(const Act act, float z) {
    return act.apply(z);
}
template <> __device__ __forceinline__ float epilogue_apply<Gelu>(const Gelu, float z) {
    return gelu_outlined(z);
}

/// Epilogue of one consumer warpgroup: out[row0 .. +64][col0 .. +BN] = g(acc + bias), rounded
/// to T. The fragments go to `staging` (64 rows of STAGING_ROW_BYTES, padded by 16 bytes so
/// that a warp's 8 rows × 4 column pairs hit 32 distinct banks), then the warpgroup copies
/// rows out as 16-byte chunks, a warp writing 512 contiguous bytes of a row at a time.
template <typename Tile, typename T, typename Act>
__device__ __forceinline__ void store_tile(const float (&acc)[Tile::ACCUMULATORS],
                                           uint8_t* staging, const T* __restrict__ bias,
                                           T* __restrict__ out, int m, int n, int row0,
                                           int col0, int consumer, const Act act) {
    // Accumulator fragment of m64nN (PTX ISA, wgmma D layout): warp w of the warpgroup holds
    // rows 16w + lane/4 (+8); acc[4j + {0,1}] are columns 8j + 2(lane%4) + {0,1} of the first
    // row, acc[4j + {2,3}] the same columns of the second.
    const int thread = threadIdx.x % 128, warp = thread / 32, lane = thread % 32;
#pragma unroll
    for (int j = 0; j < Tile::BN / 8; ++j) {
        const int local_col = j * 8 + 2 * (lane % 4);
        const int col = col0 + local_col;
        const float b0 = col < n ? to_float(bias[col]) : 0.0f;
        const float b1 = col + 1 < n ? to_float(bias[col + 1]) : 0.0f;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int local_row = warp * 16 + lane / 4 + 8 * half;
            const float v0 = epilogue_apply(act, acc[4 * j + 2 * half] + b0);
            const float v1 = epilogue_apply(act, acc[4 * j + 2 * half + 1] + b1);
            *reinterpret_cast<uint32_t*>(staging + local_row * Tile::STAGING_ROW_BYTES +
                                         local_col * 2) = pack2<T>(v0, v1);
        }
    }
    named_barrier_sync(2 + consumer, 128);  // this warpgroup's staging is complete

    constexpr int CHUNKS = Tile::BN / 8;  // 16-byte chunks per staged row
    const bool vec = n % 8 == 0 && is_aligned(out, 16);
#pragma unroll 4
    for (int idx = thread; idx < 64 * CHUNKS; idx += 128) {
        const int local_row = idx / CHUNKS, chunk = idx % CHUNKS;
        const int row = row0 + local_row, col = col0 + chunk * 8;
        if (row >= m || col >= n) continue;
        const uint4 v = *reinterpret_cast<const uint4*>(
            staging + local_row * Tile::STAGING_ROW_BYTES + chunk * 16);
        T* dst = out + static_cast<size_t>(row) * n + col;
        if (vec) {
            *reinterpret_cast<uint4*>(dst) = v;  // n % 8 == 0: the whole chunk is inside
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                const uint32_t bits = word_of(v, e / 2) >> (16 * (e % 2));
                if (col + e < n) dst[e] = T{static_cast<uint16_t>(bits & 0xffffu)};
            }
        }
    }
}

template <typename Tile, typename T, typename Act>
__device__ __forceinline__ void wgmma_dense(const TensorMap& a_map, const TensorMap& w_map,
                                            const T* __restrict__ bias, T* __restrict__ out,
                                            int m, int n, int k, const Act act) {
    extern __shared__ uint8_t shared_raw[];
    // The ring starts at the first 1024-byte boundary (SHARED_BYTES has the slack).
    const uint32_t raw = shared_address(shared_raw);
    uint8_t* ring = shared_raw + ((Tile::ALIGN - (raw & (Tile::ALIGN - 1))) & (Tile::ALIGN - 1));
    uint64_t* full = reinterpret_cast<uint64_t*>(ring + Tile::RING_BYTES);
    uint64_t* empty = full + Tile::STAGES;
    auto a_tile = [&](int s) { return ring + s * Tile::STAGE_BYTES; };
    auto w_tile = [&](int s) { return ring + s * Tile::STAGE_BYTES + Tile::A_BYTES; };

    const int warpgroup = threadIdx.x / 128;
    const int block_row = blockIdx.y * Tile::BM;
    const int block_col = blockIdx.x * Tile::BN;
    const int k_tiles = ceil_div(k, Tile::BK);

    if (threadIdx.x == 0) {
        tma_prefetch(&a_map);
        tma_prefetch(&w_map);
        for (int s = 0; s < Tile::STAGES; ++s) {
            mbarrier_init(&full[s], 1);                       // the producer's arrive
            mbarrier_init(&empty[s], 128 * Tile::CONSUMERS);  // every consumer thread
        }
        mbarrier_init_fence();
    }
    __syncthreads();  // the last block-wide barrier: the roles split below

    if (warpgroup == 0) {
        registers_decrease<Tile::PRODUCER_REGS>();
        if (threadIdx.x != 0) return;
        for (int t = 0; t < k_tiles; ++t) {
            const int s = t % Tile::STAGES;
            mbarrier_wait(&empty[s], ((t / Tile::STAGES) & 1) ^ 1);
            mbarrier_arrive_expect_tx(&full[s], Tile::STAGE_BYTES);
            const int k0 = t * Tile::BK;
            tma_load_2d(a_tile(s), &a_map, &full[s], k0, block_row);
#pragma unroll
            for (int box = 0; box < Tile::W_BOXES; ++box)
                tma_load_2d(w_tile(s) + box * Tile::W_HALF_BYTES, &w_map, &full[s],
                            block_col + 64 * box, k0);
        }
        return;
    }

    registers_increase<Tile::CONSUMER_REGS>();
    const int consumer = warpgroup - 1;  // rows consumer*64 .. +64 of the block tile
    float acc[Tile::ACCUMULATORS];
#pragma unroll
    for (int i = 0; i < Tile::ACCUMULATORS; ++i) acc[i] = 0.0f;

    for (int t = 0; t < k_tiles; ++t) {
        const int s = t % Tile::STAGES;
        mbarrier_wait(&full[s], (t / Tile::STAGES) & 1);
        // A: K-major, rows 128 bytes apart, 8-row swizzle atoms 1024 bytes apart (stride);
        // the leading offset is unused for swizzled K-major tiles. A 16-wide k step is 32
        // bytes along the row. W: MN-major, 64-column halves W_HALF_BYTES apart (leading),
        // 8-row k groups 1024 bytes apart (stride); a 16-row k step is 2048 bytes.
        const uint8_t* a_base = a_tile(s) + consumer * 64 * 128;
        const uint8_t* w_base = w_tile(s);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < Tile::BK / 16; ++kk) {
            const uint64_t desc_a = wgmma_descriptor(a_base + kk * 32, 16, 1024);
            const uint64_t desc_w = wgmma_descriptor(w_base + kk * 2048, Tile::W_HALF_BYTES, 1024);
            Wgmma<T, Tile::BN>::run(acc, desc_a, desc_w);
        }
        wgmma_commit();
        wgmma_wait<1>();  // the previous tile's wgmma have read their stage
#pragma unroll
        for (int i = 0; i < Tile::ACCUMULATORS; ++i) register_fence(acc[i]);
        if (t > 0) mbarrier_arrive(&empty[(t - 1) % Tile::STAGES]);
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < Tile::ACCUMULATORS; ++i) register_fence(acc[i]);

    // The epilogue reuses the ring as staging: wait until both consumers' wgmma are done
    // reading it. (The producer wrote nothing after the last `full` wait.)
    async_proxy_fence();
    named_barrier_sync(1, 128 * Tile::CONSUMERS);
    store_tile<Tile, T, Act>(acc, ring + consumer * 64 * Tile::STAGING_ROW_BYTES, bias, out, m,
                             n, block_row + consumer * 64, block_col, consumer, act);
}

}  // namespace vecprop

#define VECPROP_WGMMA_KERNEL_TILE(name, Tile, Act, T)                                         \
    extern "C" __global__ void __launch_bounds__(Tile::THREADS, 1)                             \
        name(const __grid_constant__ ::vecprop::TensorMap a_map,                               \
             const __grid_constant__ ::vecprop::TensorMap w_map, const T* __restrict__ bias,   \
             T* __restrict__ out, int m, int n, int k, float act_param) {                       \
        ::vecprop::wgmma_dense<Tile, T, Act>(a_map, w_map, bias, out, m, n, k,                 \
                                             ::vecprop::make_activation<Act>(act_param));      \
    }

#define VECPROP_WGMMA_KERNELS(act, Act, dtype, T)                                              \
    VECPROP_WGMMA_KERNEL_TILE(wgmma_##act##_##dtype, ::vecprop::HopperWide, Act, T)            \
    VECPROP_WGMMA_KERNEL_TILE(wgmma_narrow_##act##_##dtype, ::vecprop::HopperNarrow, Act, T)

VECPROP_FOR_EACH_ACTIVATION(VECPROP_WGMMA_KERNELS, f16, ::vecprop::half_t)
VECPROP_FOR_EACH_ACTIVATION(VECPROP_WGMMA_KERNELS, bf16, ::vecprop::bf16_t)
