// fused_dense.cu: one dense layer in one kernel, out = g(a · w + bias).
//
//   fused_<act>_<dtype>(const T* a, const T* w, const T* bias, T* out, int m, int n, int k,
//                       float act_param)
//       128×128 output tile per block, 256 threads, grid (ceil(n/128), ceil(m/128)).
//       act_param: leaky_relu's slope, ignored by the other activations.
//   fused_small_<act>_<dtype>(same arguments)
//       64×64 output tile per block, 128 threads, grid (ceil(n/64), ceil(m/64)).
//
// a is m×k, w is k×n, bias has n elements (never NULL), out is m×n, all row-major.
// f32 runs on the CUDA cores (fused_simt.cuh); f16 and bf16 on the tensor cores with f32
// accumulation (fused_mma.cuh). g is applied in f32 before rounding to T. Static shared memory
// only. Any shape and any element-aligned pointers are correct; the full contract is in
// kernels/ABI.md.
#include "fused_mma.cuh"
#include "fused_simt.cuh"

namespace vecprop {

// f32, CUDA cores, BK = 8, 3 stages. fused: 16×16 threads of 8×8 outputs (24 KB).
// small: 8×16 threads of 8×4 outputs (12 KB).
using SimtLarge = SimtTile<128, 128, 8, 8, 8, 3>;
using SimtSmall = SimtTile<64, 64, 8, 8, 4, 3>;
// f16/bf16, tensor cores. fused: 2×4 warps of 64×32, 3 stages (48 KB).
// small: 2×2 warps of 32×32, 3 stages (24 KB).
using MmaLarge = MmaTile<128, 128, 2, 4, 3>;
using MmaSmall = MmaTile<64, 64, 2, 2, 3>;

static_assert(SimtLarge::THREADS == 256 && MmaLarge::THREADS == 256, "ABI.md: fused_* has 256 threads");
static_assert(SimtSmall::THREADS == 128 && MmaSmall::THREADS == 128, "ABI.md: fused_small_* has 128 threads");
static_assert(SimtLarge::BM == 128 && SimtLarge::BN == 128 && MmaLarge::BM == 128 && MmaLarge::BN == 128,
              "ABI.md: fused_* tiles are 128×128");
static_assert(SimtSmall::BM == 64 && SimtSmall::BN == 64 && MmaSmall::BM == 64 && MmaSmall::BN == 64,
              "ABI.md: fused_small_* tiles are 64×64");

}  // namespace vecprop

// One exported kernel. `MIN_BLOCKS` = 2 asks ptxas to fit two blocks per SM (≤ 128 registers
// per thread for 256 threads).
#define VECPROP_FUSED_KERNEL(name, T, Tile, MIN_BLOCKS, body)                                   \
    extern "C" __global__ void __launch_bounds__(Tile::THREADS, MIN_BLOCKS)                     \
        name(const T* __restrict__ a, const T* __restrict__ w, const T* __restrict__ bias,      \
             T* __restrict__ out, int m, int n, int k, float act_param) {                       \
        body;                                                                                   \
    }

// The activation functor built from the kernel's act_param argument (common.cuh).
#define VECPROP_FUSED_ACT(Act) ::vecprop::make_activation<Act>(act_param)

#define VECPROP_FUSED_F32(act, Act, _unused)                                                    \
    VECPROP_FUSED_KERNEL(fused_##act##_f32, float, ::vecprop::SimtLarge, 2,                     \
                         (::vecprop::fused_dense_simt<::vecprop::SimtLarge, Act>(               \
                             a, w, bias, out, m, n, k, VECPROP_FUSED_ACT(Act))))                \
    VECPROP_FUSED_KERNEL(fused_small_##act##_f32, float, ::vecprop::SimtSmall, 4,               \
                         (::vecprop::fused_dense_simt<::vecprop::SimtSmall, Act>(               \
                             a, w, bias, out, m, n, k, VECPROP_FUSED_ACT(Act))))

#define VECPROP_FUSED_16BIT(act, Act, dtype, T)                                                 \
    VECPROP_FUSED_KERNEL(fused_##act##_##dtype, T, ::vecprop::MmaLarge, 2,                      \
                         (::vecprop::fused_dense_mma<::vecprop::MmaLarge, T, Act>(              \
                             a, w, bias, out, m, n, k, VECPROP_FUSED_ACT(Act))))                \
    VECPROP_FUSED_KERNEL(fused_small_##act##_##dtype, T, ::vecprop::MmaSmall, 4,                \
                         (::vecprop::fused_dense_mma<::vecprop::MmaSmall, T, Act>(              \
                             a, w, bias, out, m, n, k, VECPROP_FUSED_ACT(Act))))

VECPROP_FOR_EACH_ACTIVATION(VECPROP_FUSED_F32, f32)
VECPROP_FOR_EACH_ACTIVATION(VECPROP_FUSED_16BIT, f16, ::vecprop::half_t)
VECPROP_FOR_EACH_ACTIVATION(VECPROP_FUSED_16BIT, bf16, ::vecprop::bf16_t)
