// simt_warp.cu: one dense layer in f32 on the CUDA cores (no TF32), out = g(a · w + bias),
// tuned toward cuBLAS's SGEMM; the same arguments as `fused_<act>_f32` (kernels/ABI.md).
//
//   simt_warp_<act>_f32(const float* a, const float* w, const float* bias, float* out,
//                       int m, int n, int k, float act_param)
//       128×128 output tile per block, 256 threads, grid (ceil(n/128), ceil(m/128)),
//       SIMT_WARP_SHARED_BYTES (64 KB) of dynamic shared memory.
//       act_param: leaky_relu's slope, ignored by the other activations.
//
// Against `fused_<act>_f32` (same 8×8 outputs per thread, fused_simt.cuh): k tiles of 16
// instead of 8 (half the barriers per FMA), 4 stages instead of 3 in dynamic shared memory,
// and warp tiling: each warp owns a 4 × 8 patch of the 16 × 16 thread grid (a 32×64 block of
// each output group) instead of 2 × 16, so each float4 read of A and W per k is one
// shared-memory wavefront. Two blocks per SM (≤ 128 registers, 2 × 64 KB shared).
#include "fused_simt.cuh"

namespace vecprop {

using SimtWarpTile = SimtTile<128, 128, 16, 8, 8, 4, /*WARP_ROWS=*/4, /*DYNAMIC=*/true>;
static_assert(SimtWarpTile::THREADS == 256, "simt_warp_* has 256 threads");
static_assert(sizeof(SimtShared<SimtWarpTile>) == 64 * 1024, "the host passes 64 KB");

}  // namespace vecprop

#define VECPROP_SIMT_WARP(act, Act, _unused)                                                   \
    extern "C" __global__ void __launch_bounds__(::vecprop::SimtWarpTile::THREADS, 2)          \
        simt_warp_##act##_f32(const float* __restrict__ a, const float* __restrict__ w,        \
                              const float* __restrict__ bias, float* __restrict__ out, int m,  \
                              int n, int k, float act_param) {                                  \
        ::vecprop::fused_dense_simt<::vecprop::SimtWarpTile, Act>(                             \
            a, w, bias, out, m, n, k, ::vecprop::make_activation<Act>(act_param));              \
    }

VECPROP_FOR_EACH_ACTIVATION(VECPROP_SIMT_WARP, f32)
