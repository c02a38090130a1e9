// narrow_mma.cu: the narrow-layer kernel on the tensor cores, for f16 and bf16.
//
//   narrow_mma<NP>_<act>_<dtype>(const T* a, const T* w, const T* bias, T* out, int m, int n,
//                                int k, float act_param)
//       NP ∈ {32, 64, 128}: the kernel for n ≤ NP; <act>: every element-wise activation and
//       `softmax`; <dtype>: f16, bf16. 256 threads (8 warps), any grid (warps stride over
//       16-row tiles); dynamic shared memory = NP · (ceil(k / 64) · 64 + 8) · 2 bytes.
//       act_param: leaky_relu's slope, ignored by the other activations.
//
// Each block copies W once into shared memory, transposed (Wt[c][k], row stride
// KS = ceil(k/64)·64 + 8 elements, zero-padded), so that an mma B fragment (two consecutive k
// of one column) is one 32-bit load, and the KS/2 ≡ 4 (mod 32) word stride puts the 32 lanes'
// loads in 32 distinct banks. Each warp then owns 16 rows at a time and all NP columns:
// for every 16 k it loads its A fragment straight from global memory (32-bit pairs, the next
// step's fragment loaded before this step's mma.sync m16n8k16 run) and issues NP/8 MMAs with
// f32 accumulation. The epilogue adds the bias and applies g on the accumulators; softmax
// reduces each row over the 4 lanes that hold it (shuffles). Outputs are stored once.
#include "fused_mma.cuh"
#include "narrow.cuh"

namespace vecprop {

constexpr int kNarrowMmaWarps = 8;
constexpr int kNarrowMmaThreads = 32 * kNarrowMmaWarps;

template <typename Act> struct IsRowSoftmax {
    static constexpr bool value = false;
};
template <> struct IsRowSoftmax<RowSoftmax> {
    static constexpr bool value = true;
};

/// Two elements of T at (row, col) and (row, col + 1) of the row-major m×k matrix `a`, packed
/// (col in the low half), zero outside. `pairs`: k is even and `a` 4-byte aligned.
template <typename T>
__device__ __forceinline__ uint32_t load_pair(const T* __restrict__ a, int m, int k, int row,
                                              int col, bool pairs) {
    if (row >= m) return 0u;
    const T* p = a + static_cast<size_t>(row) * k + col;
    if (pairs) return col < k ? *reinterpret_cast<const uint32_t*>(p) : 0u;
    const uint32_t lo = col < k ? p[0].bits : 0u;
    const uint32_t hi = col + 1 < k ? p[1].bits : 0u;
    return lo | (hi << 16);
}

/// The A fragment of m16n8k16 for rows row0.. and k k0..: {(g, 2t), (g+8, 2t), (g, 2t+8),
/// (g+8, 2t+8)} pairs, g = lane / 4, t = lane % 4.
template <typename T>
__device__ __forceinline__ void load_a_fragment(uint32_t (&frag)[4], const T* __restrict__ a,
                                                int m, int k, int row0, int k0, int lane,
                                                bool pairs) {
    const int g = lane / 4, t = lane % 4;
    frag[0] = load_pair(a, m, k, row0 + g, k0 + 2 * t, pairs);
    frag[1] = load_pair(a, m, k, row0 + g + 8, k0 + 2 * t, pairs);
    frag[2] = load_pair(a, m, k, row0 + g, k0 + 2 * t + 8, pairs);
    frag[3] = load_pair(a, m, k, row0 + g + 8, k0 + 2 * t + 8, pairs);
}

/// Row-wise softmax of one accumulator row held by a quad: `z[f][0..1]` are columns 8f + 2t
/// and 8f + 2t + 1. Columns ≥ n are excluded and left 0.
template <int NF>
__device__ __forceinline__ void quad_softmax(float (&z)[NF][2], int t, int n) {
    float row_max = -INFINITY;
#pragma unroll
    for (int f = 0; f < NF; ++f)
#pragma unroll
        for (int e = 0; e < 2; ++e)
            if (8 * f + 2 * t + e < n) row_max = nan_max(row_max, z[f][e]);
    row_max = nan_max(row_max, __shfl_xor_sync(0xffffffffu, row_max, 1));
    row_max = nan_max(row_max, __shfl_xor_sync(0xffffffffu, row_max, 2));
    float sum = 0.0f;
#pragma unroll
    for (int f = 0; f < NF; ++f)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            z[f][e] = 8 * f + 2 * t + e < n ? __expf(z[f][e] - row_max) : 0.0f;
            sum += z[f][e];
        }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inverse = 1.0f / sum;
#pragma unroll
    for (int f = 0; f < NF; ++f) z[f][0] *= inverse, z[f][1] *= inverse;
}

template <typename T, typename Act, int NP>
__device__ __forceinline__ void narrow_mma_dense(const T* __restrict__ a, const T* __restrict__ w,
                                                 const T* __restrict__ bias, T* __restrict__ out,
                                                 int m, int n, int k, const Act act) {
    static_assert(sizeof(T) == 2, "tensor-core path: f16 and bf16");
    constexpr int NF = NP / 8;  // n fragments of 8 columns
    extern __shared__ __align__(16) unsigned char narrow_mma_smem[];
    T* wt = reinterpret_cast<T*>(narrow_mma_smem);
    const int kp = ceil_div(k, 64) * 64;
    const int ks = kp + 8;  // row stride of Wt, in elements: ks / 2 ≡ 4 (mod 32) words
    const int k_steps_end = ceil_div(k, 16) * 16;  // zero-padded k that the MMAs cover

    // W (k × n, row-major in global memory) → Wt[c][kk], coalesced global reads.
    for (int i = threadIdx.x; i < kp * NP; i += kNarrowMmaThreads) {
        const int kk = i / NP, c = i % NP;
        wt[c * ks + kk] = kk < k && c < n ? w[static_cast<size_t>(kk) * n + c] : T{0};
    }
    __syncthreads();  // the only block-wide barrier

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / 4, t = lane % 4;
    const bool pairs = k % 2 == 0 && is_aligned(a, 4);
    const bool out_pairs = n % 2 == 0 && is_aligned(out, 4);
    float b[NF][2];
#pragma unroll
    for (int f = 0; f < NF; ++f)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            const int c = 8 * f + 2 * t + e;
            b[f][e] = c < n ? to_float(bias[c]) : 0.0f;
        }
    const uint32_t* wt_words = reinterpret_cast<const uint32_t*>(wt);

    const long long step = static_cast<long long>(gridDim.x) * kNarrowMmaWarps * 16;
    for (long long tile = (static_cast<long long>(blockIdx.x) * kNarrowMmaWarps + warp) * 16;
         tile < m; tile += step) {
        const int row0 = static_cast<int>(tile);
        float acc[NF][4];
#pragma unroll
        for (int f = 0; f < NF; ++f) acc[f][0] = acc[f][1] = acc[f][2] = acc[f][3] = 0.0f;
        uint32_t frag[4], next[4];
        load_a_fragment(frag, a, m, k, row0, 0, lane, pairs);
        for (int k0 = 0; k0 < k_steps_end; k0 += 16) {
            const bool more = k0 + 16 < k_steps_end;
            if (more) load_a_fragment(next, a, m, k, row0, k0 + 16, lane, pairs);
#pragma unroll
            for (int f = 0; f < NF; ++f) {
                const int word = ((8 * f + g) * ks + k0 + 2 * t) / 2;
                const uint32_t bf[2] = {wt_words[word], wt_words[word + 4]};
                Mma<T>::run(acc[f], frag, bf);
            }
            if (more) {
#pragma unroll
                for (int i = 0; i < 4; ++i) frag[i] = next[i];
            }
        }

        // Epilogue: rows row0 + g (acc[f][0..1]) and row0 + g + 8 (acc[f][2..3]).
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int row = row0 + g + 8 * half;
            float z[NF][2];
#pragma unroll
            for (int f = 0; f < NF; ++f)
#pragma unroll
                for (int e = 0; e < 2; ++e) z[f][e] = acc[f][2 * half + e] + b[f][e];
            if constexpr (IsRowSoftmax<Act>::value) {
                quad_softmax<NF>(z, t, n);  // all lanes take part, rows ≥ m included
            } else {
#pragma unroll
                for (int f = 0; f < NF; ++f) z[f][0] = act.apply(z[f][0]), z[f][1] = act.apply(z[f][1]);
            }
            if (row >= m) continue;
            T* out_row = out + static_cast<size_t>(row) * n;
#pragma unroll
            for (int f = 0; f < NF; ++f) {
                const int c = 8 * f + 2 * t;
                if (out_pairs) {
                    if (c < n) *reinterpret_cast<uint32_t*>(out_row + c) = pack2<T>(z[f][0], z[f][1]);
                } else {
                    if (c < n) out_row[c] = from_float<T>(z[f][0]);
                    if (c + 1 < n) out_row[c + 1] = from_float<T>(z[f][1]);
                }
            }
        }
    }
}

}  // namespace vecprop

#define VECPROP_NARROW_MMA_ONE(act, Act, dtype, T, NP)                                          \
    extern "C" __global__ void __launch_bounds__(::vecprop::kNarrowMmaThreads)                  \
        narrow_mma##NP##_##act##_##dtype(const T* __restrict__ a, const T* __restrict__ w,      \
                                         const T* __restrict__ bias, T* __restrict__ out,       \
                                         int m, int n, int k, float act_param) {                \
        ::vecprop::narrow_mma_dense<T, Act, NP>(a, w, bias, out, m, n, k,                       \
                                                ::vecprop::make_activation<Act>(act_param));    \
    }

#define VECPROP_NARROW_MMA(act, Act, dtype, T)      \
    VECPROP_NARROW_MMA_ONE(act, Act, dtype, T, 32)  \
    VECPROP_NARROW_MMA_ONE(act, Act, dtype, T, 64)  \
    VECPROP_NARROW_MMA_ONE(act, Act, dtype, T, 128)

#define VECPROP_NARROW_MMA_KERNELS(dtype, T)                  \
    VECPROP_FOR_EACH_ACTIVATION(VECPROP_NARROW_MMA, dtype, T) \
    VECPROP_NARROW_MMA(softmax, ::vecprop::RowSoftmax, dtype, T)

VECPROP_NARROW_MMA_KERNELS(f16, ::vecprop::half_t)
VECPROP_NARROW_MMA_KERNELS(bf16, ::vecprop::bf16_t)
