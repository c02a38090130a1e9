// narrow.cu: one dense layer with few columns, out = g(a · w + bias), W resident on chip.
//
//   narrow<NP>_<act>_<dtype>(const T* a, const T* w, const T* bias, T* out, int m, int n, int k,
//                            float act_param)
//       NP ∈ {32, 64, 128, 256}: the kernel for n ≤ NP (use the smallest that fits).
//       <act> is every element-wise activation and `softmax` (one pass: a warp owns rows).
//       act_param: leaky_relu's slope, ignored by the other activations.
//       256 threads (8 warps), any grid (persistent: warps stride over row tiles);
//       dynamic shared memory = narrow_shared_bytes (below, mirrored in Rust).
//
// Each block copies W (k × n, zero-padded to ceil(k/32)·32 × NP) into shared memory once, in
// the storage dtype, then each warp streams tiles of RM = 1024/NP rows of `a` through its own
// f32 staging area (16-byte coalesced loads when k and `a` allow, 32 k at a time) and writes
// each output once, with bias and g applied in registers (narrow.cuh). Accumulation is f32.
// Contract details in kernels/ABI.md.
#include "narrow.cuh"

namespace vecprop {

constexpr int kNarrowWarps = 8;
constexpr int kNarrowThreads = 32 * kNarrowWarps;
constexpr int kNarrowKChunk = 32;                      // k per staging step
constexpr int kNarrowStageStride = kNarrowKChunk + 4;  // floats per staged row (float4 aligned)

/// W as resident in shared memory: row stride NP, zero beyond (k, n).
template <typename T, int NP> struct SharedWeights {
    const T* w;
    __device__ __forceinline__ float at(int kk, int c) const { return to_float(w[kk * NP + c]); }
};

template <typename T, typename Act, int CJ>
__device__ __forceinline__ void narrow_dense(const T* __restrict__ a, const T* __restrict__ w,
                                             const T* __restrict__ bias, T* __restrict__ out,
                                             int m, int n, int k, const Act act) {
    constexpr int RM = 32 / CJ, NP = 32 * CJ;
    static_assert(RM * CJ == 32, "32 accumulators per lane");
    extern __shared__ __align__(16) unsigned char narrow_smem[];
    float* stage = reinterpret_cast<float*>(narrow_smem);
    T* ws = reinterpret_cast<T*>(stage + kNarrowWarps * RM * kNarrowStageStride);

    const int kp = ceil_div(k, kNarrowKChunk) * kNarrowKChunk;
    for (int i = threadIdx.x; i < kp * NP; i += kNarrowThreads) {
        const int kk = i / NP, c = i % NP;
        ws[i] = kk < k && c < n ? w[static_cast<size_t>(kk) * n + c] : from_float<T>(0.0f);
    }
    __syncthreads();  // the only block-wide barrier: afterwards every warp works alone

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float b[CJ];
#pragma unroll
    for (int j = 0; j < CJ; ++j) b[j] = lane + 32 * j < n ? to_float(bias[lane + 32 * j]) : 0.0f;
    const bool vec = k % Vec16<T>::N == 0 && is_aligned(a, 16);
    float* rows = stage + warp * RM * kNarrowStageStride;
    const SharedWeights<T, NP> weights{ws};

    const long long step = static_cast<long long>(gridDim.x) * kNarrowWarps * RM;
    for (long long tile = (static_cast<long long>(blockIdx.x) * kNarrowWarps + warp) * RM; tile < m;
         tile += step) {
        const int row0 = static_cast<int>(tile);
        float acc[RM][CJ];
#pragma unroll
        for (int r = 0; r < RM; ++r)
#pragma unroll
            for (int j = 0; j < CJ; ++j) acc[r][j] = 0.0f;
        for (int k0 = 0; k0 < kp; k0 += kNarrowKChunk) {
            stage_rows<T, RM>(rows, kNarrowStageStride, a, m, k, row0, k0, kNarrowKChunk, vec, lane);
            __syncwarp();
            warp_rows_times_weights<RM, CJ>(acc, rows, kNarrowStageStride, kNarrowKChunk, weights,
                                            k0, lane);
            __syncwarp();  // before the next chunk overwrites the staging area
        }
        store_rows<T, Act, RM, CJ>(out, acc, b, m, n, row0, lane, act);
    }
}

}  // namespace vecprop

#define VECPROP_NARROW_ONE(act, Act, dtype, T, CJ, NP)                                          \
    extern "C" __global__ void __launch_bounds__(::vecprop::kNarrowThreads)                     \
        narrow##NP##_##act##_##dtype(const T* __restrict__ a, const T* __restrict__ w,          \
                                     const T* __restrict__ bias, T* __restrict__ out, int m,    \
                                     int n, int k, float act_param) {                           \
        ::vecprop::narrow_dense<T, Act, CJ>(a, w, bias, out, m, n, k,                           \
                                            ::vecprop::make_activation<Act>(act_param));        \
    }

#define VECPROP_NARROW(act, Act, dtype, T)         \
    VECPROP_NARROW_ONE(act, Act, dtype, T, 1, 32)  \
    VECPROP_NARROW_ONE(act, Act, dtype, T, 2, 64)  \
    VECPROP_NARROW_ONE(act, Act, dtype, T, 4, 128) \
    VECPROP_NARROW_ONE(act, Act, dtype, T, 8, 256)

#define VECPROP_NARROW_KERNELS(dtype, T)                       \
    VECPROP_FOR_EACH_ACTIVATION(VECPROP_NARROW, dtype, T)      \
    VECPROP_NARROW(softmax, ::vecprop::RowSoftmax, dtype, T)

VECPROP_NARROW_KERNELS(f32, float)
VECPROP_NARROW_KERNELS(f16, ::vecprop::half_t)
VECPROP_NARROW_KERNELS(bf16, ::vecprop::bf16_t)
