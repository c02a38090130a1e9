// splitk.cu: a dense layer for few rows and many weights (GEMV / split-K), weights read once.
//
//   splitk_partial_<dtype>(const T* a, const T* w, float* partial, int m, int n, int k,
//                          int k_per_split)
//       partial[s][r][c] = Σ_{k in split s} a[r][k] · w[k][c], f32, for every split s.
//       256 threads (8 warps); grid (ceil(n / (32 · V)), splits), V = 16 / sizeof(T);
//       split s covers k in [s · k_per_split, min(k, (s + 1) · k_per_split)).
//   splitk_reduce_<act>_<dtype>(const float* partial, const T* bias, T* out, int m, int n,
//                               int splits, float act_param)
//       out[r][c] = g(Σ_s partial[s][r][c] + bias[c]); 256 threads, any grid (grid-stride);
//       act_param: leaky_relu's slope, ignored by the other activations.
//       No softmax: reduce with `linear`, then `bias_softmax` with no bias (epilogue.cu).
//
// The weights are spread over every SM: each block owns a strip of 32·V columns (one 16-byte
// vector per lane) and a range of k, so a launch has (n / 32V) × splits blocks however small
// m is. Within a block the 8 warps take interleaved k rows, each warp reading whole 512-byte
// row segments of W (coalesced); the 8 partial sums are then added in shared memory. Rows of
// `a` are broadcast loads (every lane the same address), MT = 8 rows per pass over the
// block's weights: with m ≤ 8 every weight is read from DRAM exactly once; larger m re-reads
// the block's weights from L2 once per 8 rows. The f32 partials live in a workspace that the
// caller allocates once (`splits · m · n` floats).
#include "common.cuh"

namespace vecprop {

constexpr int kSplitkWarps = 8;
constexpr int kSplitkThreads = 32 * kSplitkWarps;
constexpr int kSplitkRows = 8;  // MT: rows per pass over the weights

template <typename T>
__device__ __forceinline__ void splitk_partial(const T* __restrict__ a, const T* __restrict__ w,
                                               float* __restrict__ partial, int m, int n, int k,
                                               int k_per_split) {
    constexpr int V = Vec16<T>::N;
    constexpr int STRIP = 32 * V;
    constexpr int MT = kSplitkRows;
    __shared__ __align__(16) float red[kSplitkWarps][STRIP];

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int col = blockIdx.x * STRIP + lane * V;  // this lane's first column
    const int k_begin = blockIdx.y * k_per_split;
    const int k_end = min(k, k_begin + k_per_split);
    const bool w_vec = n % V == 0 && is_aligned(w, 16);
    const size_t split_offset = static_cast<size_t>(blockIdx.y) * m * n;

    for (int m0 = 0; m0 < m; m0 += MT) {
        float acc[MT][V];
#pragma unroll
        for (int r = 0; r < MT; ++r)
#pragma unroll
            for (int e = 0; e < V; ++e) acc[r][e] = 0.0f;

#pragma unroll 4
        for (int kk = k_begin + warp; kk < k_end; kk += kSplitkWarps) {
            const T* w_row = w + static_cast<size_t>(kk) * n;
            float wf[V];
            if (w_vec) {
                uint4 v = make_uint4(0, 0, 0, 0);
                if (col < n) v = __ldg(reinterpret_cast<const uint4*>(w_row + col));
#pragma unroll
                for (int e = 0; e < V; ++e) wf[e] = vec_get<T>(v, e);
            } else {
#pragma unroll
                for (int e = 0; e < V; ++e) wf[e] = col + e < n ? to_float(w_row[col + e]) : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < MT; ++r) {
                const float av =
                    m0 + r < m ? to_float(a[static_cast<size_t>(m0 + r) * k + kk]) : 0.0f;
#pragma unroll
                for (int e = 0; e < V; ++e) acc[r][e] = fmaf(av, wf[e], acc[r][e]);
            }
        }

        // Add the 8 warps' partial sums, one row at a time, through shared memory.
#pragma unroll
        for (int r = 0; r < MT; ++r) {
            if (m0 + r >= m) break;  // block-uniform
#pragma unroll
            for (int e = 0; e < V; e += 4)
                *reinterpret_cast<float4*>(&red[warp][lane * V + e]) =
                    make_float4(acc[r][e], acc[r][e + 1], acc[r][e + 2], acc[r][e + 3]);
            __syncthreads();
            for (int c = threadIdx.x; c < STRIP; c += kSplitkThreads) {
                const int gcol = blockIdx.x * STRIP + c;
                if (gcol < n) {
                    float sum = 0.0f;
#pragma unroll
                    for (int q = 0; q < kSplitkWarps; ++q) sum += red[q][c];
                    partial[split_offset + static_cast<size_t>(m0 + r) * n + gcol] = sum;
                }
            }
            __syncthreads();  // before the next row reuses `red`
        }
    }
}

template <typename T, typename Act>
__device__ __forceinline__ void splitk_reduce(const float* __restrict__ partial,
                                              const T* __restrict__ bias, T* __restrict__ out,
                                              int m, int n, int splits, const Act act) {
    const size_t total = static_cast<size_t>(m) * n;
    const size_t stride = static_cast<size_t>(blockDim.x) * gridDim.x;
    for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += stride) {
        float sum = to_float(bias[i % n]);
        for (int s = 0; s < splits; ++s) sum += partial[s * total + i];
        out[i] = from_float<T>(act.apply(sum));
    }
}

}  // namespace vecprop

#define VECPROP_SPLITK_REDUCE(act, Act, dtype, T)                                              \
    extern "C" __global__ void __launch_bounds__(::vecprop::kSplitkThreads)                    \
        splitk_reduce_##act##_##dtype(const float* __restrict__ partial,                       \
                                      const T* __restrict__ bias, T* __restrict__ out, int m,  \
                                      int n, int splits, float act_param) {                    \
        ::vecprop::splitk_reduce<T, Act>(partial, bias, out, m, n, splits,                     \
                                         ::vecprop::make_activation<Act>(act_param));          \
    }

#define VECPROP_SPLITK_KERNELS(dtype, T)                                                       \
    extern "C" __global__ void __launch_bounds__(::vecprop::kSplitkThreads, 2)                 \
        splitk_partial_##dtype(const T* __restrict__ a, const T* __restrict__ w,               \
                               float* __restrict__ partial, int m, int n, int k,               \
                               int k_per_split) {                                              \
        ::vecprop::splitk_partial<T>(a, w, partial, m, n, k, k_per_split);                     \
    }                                                                                          \
    VECPROP_FOR_EACH_ACTIVATION(VECPROP_SPLITK_REDUCE, dtype, T)

VECPROP_SPLITK_KERNELS(f32, float)
VECPROP_SPLITK_KERNELS(f16, ::vecprop::half_t)
VECPROP_SPLITK_KERNELS(bf16, ::vecprop::bf16_t)
