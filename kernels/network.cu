// network.cu: a whole network of narrow dense layers in one launch.
//
//   network_<dtype>(const T* input, T* out, int m, NetworkLayers layers)
//       out = layer_L(... layer_1(input)): input is m × widths[0], out is m × widths[count].
//       1 ≤ count ≤ kNetworkMaxLayers, every width ≤ kNetworkMaxWidth; layer l's activation
//       is `activations[l]` with parameter `act_params[l]` (leaky_relu's slope).
//       128 threads (4 warps), any grid (persistent: warps stride over tiles of 8 rows);
//       dynamic shared memory = 4 warps × 2 buffers × 8 rows × stride × 4 bytes, with
//       stride = ceil(widest / 32) · 32 + 4 floats (mirrored in Rust).
//
// Each warp owns 8 complete rows from input to output: it stages its rows of `input` in
// shared memory (f32), then for each layer multiplies them by W (read from global memory,
// served by L1/L2 since every warp of every SM reads the same small matrices), adds the bias,
// applies g (softmax included: a warp owns whole rows), and writes the activations into its
// other shared buffer, zero beyond the layer's width. Only the last layer writes to global
// memory. Intermediate activations stay in f32 on chip: they never touch DRAM and are not
// rounded to T between layers. No block-wide barrier: warps are independent.
#include "narrow.cuh"

namespace vecprop {

constexpr int kNetworkMaxLayers = 8;
constexpr int kNetworkMaxWidth = 256;
constexpr int kNetworkWarps = 4;
constexpr int kNetworkRows = 8;  // RM: rows per warp
constexpr int kNetworkSoftmax = -1;
static_assert(narrow_column_slots(kNetworkMaxWidth) == 8, "the widest layer uses 8 column slots");

/// The layers, passed by value. Pointers are device addresses of T (weights k × n row-major,
/// biases n). `activations[l]` is the position of g in VECPROP_FOR_EACH_ACTIVATION
/// (common.cuh), or kNetworkSoftmax; `act_params[l]` is its parameter (the `act_param` of the
/// single-layer kernels: leaky_relu's slope, ignored by the others). Rust mirrors this layout
/// (`#[repr(C)]`).
struct NetworkLayers {
    int count;
    int widths[kNetworkMaxLayers + 1];
    int activations[kNetworkMaxLayers];
    float act_params[kNetworkMaxLayers];
    unsigned long long weights[kNetworkMaxLayers];
    unsigned long long biases[kNetworkMaxLayers];
};

/// g by its position in VECPROP_FOR_EACH_ACTIVATION, with parameter `param`; the identity
/// for unknown codes.
__device__ __forceinline__ float activation_by_code(int code, float param, float x) {
    int position = 0;
#define VECPROP_NETWORK_ACT(act, Act, _unused) \
    if (code == position++) return make_activation<Act>(param).apply(x);
    VECPROP_FOR_EACH_ACTIVATION(VECPROP_NETWORK_ACT, _)
#undef VECPROP_NETWORK_ACT
    return x;
}

/// W in global memory (k × n row-major), zero outside.
template <typename T> struct GlobalWeights {
    const T* w;
    int k, n;
    __device__ __forceinline__ float at(int kk, int c) const {
        return kk < k && c < n ? to_float(w[static_cast<size_t>(kk) * n + c]) : 0.0f;
    }
};

/// One layer for the warp's rows: src (k columns, zero up to a multiple of 4) → dst (n
/// columns, zero up to a multiple of 4), or → `out` in global memory when `out` is not null.
template <typename T, int CJ>
__device__ __forceinline__ void network_layer(const float* src, float* dst, int stride,
                                              const NetworkLayers& layers, int l, T* out, int m,
                                              int row0, int lane) {
    constexpr int RM = kNetworkRows;
    const int k = layers.widths[l], n = layers.widths[l + 1];
    const T* w = reinterpret_cast<const T*>(layers.weights[l]);
    const T* bias = reinterpret_cast<const T*>(layers.biases[l]);
    const int code = layers.activations[l];
    const float param = layers.act_params[l];
    const int padded = ceil_div(n, 4) * 4;
    float acc[RM][CJ];
#pragma unroll
    for (int r = 0; r < RM; ++r)
#pragma unroll
        for (int j = 0; j < CJ; ++j) acc[r][j] = 0.0f;
    warp_rows_times_weights<RM, CJ>(acc, src, stride, ceil_div(k, 4) * 4, GlobalWeights<T>{w, k, n},
                                    0, lane);
    float b[CJ];
#pragma unroll
    for (int j = 0; j < CJ; ++j) b[j] = lane + 32 * j < n ? to_float(bias[lane + 32 * j]) : 0.0f;
#pragma unroll
    for (int r = 0; r < RM; ++r) {
        const int row = row0 + r;
        if (out != nullptr && row >= m) break;  // warp-uniform
        float z[CJ];
#pragma unroll
        for (int j = 0; j < CJ; ++j) z[j] = acc[r][j] + b[j];
        if (code == kNetworkSoftmax) {
            RowEpilogue<RowSoftmax, CJ>::apply(z, lane, n, RowSoftmax{});
        } else {
#pragma unroll
            for (int j = 0; j < CJ; ++j) z[j] = activation_by_code(code, param, z[j]);
        }
#pragma unroll
        for (int j = 0; j < CJ; ++j) {
            const int c = lane + 32 * j;
            if (out != nullptr) {
                if (c < n) out[static_cast<size_t>(row) * n + c] = from_float<T>(z[j]);
            } else if (c < padded) {
                // The next layer reads ceil(n / 4) · 4 ≤ stride - 4 columns: zeros past n.
                dst[r * stride + c] = c < n ? z[j] : 0.0f;
            }
        }
    }
}

template <typename T>
__device__ __forceinline__ void network_forward(const T* __restrict__ input, T* __restrict__ out,
                                                int m, const NetworkLayers& layers) {
    constexpr int RM = kNetworkRows;
    extern __shared__ __align__(16) unsigned char network_smem[];
    int widest = 0;
    for (int l = 0; l <= layers.count; ++l) widest = max(widest, layers.widths[l]);
    const int stride = ceil_div(widest, 32) * 32 + 4;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float* const first = reinterpret_cast<float*>(network_smem) + warp * 2 * RM * stride;
    float* const second = first + RM * stride;
    const int k0 = layers.widths[0];
    const bool vec = k0 % Vec16<T>::N == 0 && is_aligned(input, 16);

    const long long step = static_cast<long long>(gridDim.x) * kNetworkWarps * RM;
    for (long long tile = (static_cast<long long>(blockIdx.x) * kNetworkWarps + warp) * RM; tile < m;
         tile += step) {
        const int row0 = static_cast<int>(tile);
        stage_rows<T, RM>(first, stride, input, m, k0, row0, 0, ceil_div(k0, 8) * 8, vec, lane);
        __syncwarp();
        float* src = first;
        float* dst = second;
        for (int l = 0; l < layers.count; ++l) {
            T* target = l + 1 == layers.count ? out : nullptr;
            switch (narrow_column_slots(layers.widths[l + 1])) {
                case 1: network_layer<T, 1>(src, dst, stride, layers, l, target, m, row0, lane); break;
                case 2: network_layer<T, 2>(src, dst, stride, layers, l, target, m, row0, lane); break;
                case 4: network_layer<T, 4>(src, dst, stride, layers, l, target, m, row0, lane); break;
                default: network_layer<T, 8>(src, dst, stride, layers, l, target, m, row0, lane); break;
            }
            __syncwarp();  // dst is complete before it is read; src is free to be overwritten
            float* const read_next = dst;
            dst = src;
            src = read_next;
        }
    }
}

}  // namespace vecprop

#define VECPROP_NETWORK_KERNEL(dtype, T)                                                        \
    extern "C" __global__ void __launch_bounds__(32 * ::vecprop::kNetworkWarps, 1)               \
        network_##dtype(const T* __restrict__ input, T* __restrict__ out, int m,                \
                        const __grid_constant__ ::vecprop::NetworkLayers layers) {              \
        ::vecprop::network_forward<T>(input, out, m, layers);                                   \
    }

VECPROP_NETWORK_KERNEL(f32, float)
VECPROP_NETWORK_KERNEL(f16, ::vecprop::half_t)
VECPROP_NETWORK_KERNEL(bf16, ::vecprop::bf16_t)
