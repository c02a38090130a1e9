// epilogue.cu: the epilogue of a dense layer, in place on Z = A·W (computed by cuBLAS or
// another GEMM):
//
//   bias_<act>_<dtype>(T* z, const T* bias, int rows, int cols, float act_param)
//       z[r][c] = g(z[r][c] + bias[c])            (bias may be NULL: no bias term)
//       act_param: leaky_relu's slope, ignored by the other activations.
//       256 threads per block, any grid (grid-stride loop).
//   bias_softmax_<dtype>(T* z, const T* bias, int rows, int cols, float act_param)
//       each row of z becomes softmax(z_row + bias), stable (row maximum subtracted);
//       act_param is ignored.
//       One warp per row, 256 threads (8 rows) per block, grid = ceil(rows / 8).
//
// All arithmetic is f32; T is float, half_t or bf16_t (common.cuh). The full contract (names,
// argument types, launch configuration) is in kernels/ABI.md.
#include "common.cuh"

namespace vecprop {

constexpr int kEpilogueThreads = 256;
constexpr int kSoftmaxWarpsPerBlock = 8;

/// z = g(z + bias), element-wise, grid-stride.
///
/// Fast path: when `cols` is a multiple of the 16-byte vector width and both pointers are
/// 16-byte aligned, every vector lies inside one row and its bias is one aligned vector too,
/// so each thread moves 16 bytes per load/store. Otherwise a scalar path handles any shape.
/// Indices are unsigned 32-bit: rows*cols < 2^31 (ABI.md), so i + stride cannot wrap.
template <typename T, typename Act>
__device__ __forceinline__ void bias_act(T* z, const T* bias, int rows, int cols, const Act act) {
    constexpr int V = Vec16<T>::N;
    const unsigned total = static_cast<unsigned>(rows) * static_cast<unsigned>(cols);
    const unsigned stride = blockDim.x * gridDim.x;
    const unsigned first = blockIdx.x * blockDim.x + threadIdx.x;
    const bool has_bias = bias != nullptr;
    const bool vectorised = cols % V == 0 && is_aligned(z, 16) && (!has_bias || is_aligned(bias, 16));

    if (vectorised) {
        uint4* zv = reinterpret_cast<uint4*>(z);
        const uint4* bv = reinterpret_cast<const uint4*>(bias);
        const unsigned vectors = total / V;
        const unsigned vectors_per_row = static_cast<unsigned>(cols) / V;
        for (unsigned i = first; i < vectors; i += stride) {
            uint4 x = zv[i];
            uint4 b = has_bias ? __ldg(&bv[i % vectors_per_row]) : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < V; ++j) {
                float v = vec_get<T>(x, j);
                if (has_bias) v += vec_get<T>(b, j);
                vec_set<T>(x, j, act.apply(v));
            }
            zv[i] = x;
        }
    } else {
        for (unsigned i = first; i < total; i += stride) {
            float v = to_float(z[i]);
            if (has_bias) v += to_float(bias[i % static_cast<unsigned>(cols)]);
            z[i] = from_float<T>(act.apply(v));
        }
    }
}

/// Running (max, sum of e^(x - max)) of the values one lane has seen (online softmax).
///
/// NaN and inf end as in PyTorch: a NaN x makes the max and the sum NaN (nan_max keeps it), and
/// so does x = +inf (e^(inf - inf)); both make the whole row NaN through the warp sum. An
/// x = -inf adds e^-inf = 0 and is skipped, since with max still -inf its e^(x - max) would
/// be e^NaN; a row of nothing but -inf keeps max = -inf and sum = 0 in every lane, and
/// 0 * e^(-inf - -inf) = NaN makes that row NaN too, as PyTorch's is.
struct SoftmaxState {
    float max = -INFINITY;
    float sum = 0.0f;
    __device__ __forceinline__ void add(float x) {
        const float new_max = nan_max(max, x);
        // While max is still -inf, e^(max - new_max) = e^-inf = 0 and sum (0) stays 0.
        const float grown = sum * __expf(max - new_max) + __expf(x - new_max);
        sum = x == -INFINITY ? sum : grown;
        max = new_max;
    }
};

/// Row-wise softmax(z + bias), one warp per row.
///
/// Pass 1 (online softmax): each lane walks its share of the row keeping a running maximum m
/// and a running sum s of e^(x - m), rescaling s whenever m grows. The lanes are then merged
/// with shuffles: M = max over lanes, S = Σ s_lane · e^(m_lane - M). Pass 2 rereads the row and
/// writes e^(x - M) / S. Every exponent is ≤ 0, so nothing overflows for any finite input.
/// Both passes move 16-byte vectors (lane i takes vectors i, i+32, ...) when cols is a multiple
/// of the vector width and the pointers are 16-byte aligned, single elements otherwise.
template <typename T>
__device__ __forceinline__ void bias_softmax(T* z, const T* bias, int rows, int cols) {
    constexpr int V = Vec16<T>::N;
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * kSoftmaxWarpsPerBlock + threadIdx.x / 32;
    // The whole warp leaves together: there is no block-level barrier in this kernel.
    if (row >= rows) return;
    T* zr = z + static_cast<size_t>(row) * cols;
    const bool has_bias = bias != nullptr;
    const bool vectorised =
        cols % V == 0 && is_aligned(zr, 16) && (!has_bias || is_aligned(bias, 16));
    uint4* zv = reinterpret_cast<uint4*>(zr);
    const uint4* bv = reinterpret_cast<const uint4*>(bias);
    const int vectors = cols / V;

    SoftmaxState state;
    if (vectorised) {
        for (int v = lane; v < vectors; v += 32) {
            const uint4 x = zv[v];
            const uint4 b = has_bias ? bv[v] : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < V; ++j) state.add(vec_get<T>(x, j) + vec_get<T>(b, j));
        }
    } else {
        for (int c = lane; c < cols; c += 32)
            state.add(to_float(zr[c]) + (has_bias ? to_float(bias[c]) : 0.0f));
    }
    const float row_max = warp_max(state.max);
    // Lanes that saw nothing (or only -inf) have max = -inf and sum = 0: they contribute 0,
    // unless row_max is -inf too (an all -inf row), which gives NaN as in PyTorch.
    const float row_sum = warp_sum(state.sum * __expf(state.max - row_max));
    const float inverse = 1.0f / row_sum;

    if (vectorised) {
        for (int v = lane; v < vectors; v += 32) {
            uint4 x = zv[v];
            const uint4 b = has_bias ? bv[v] : make_uint4(0, 0, 0, 0);
#pragma unroll
            for (int j = 0; j < V; ++j)
                vec_set<T>(x, j, __expf(vec_get<T>(x, j) + vec_get<T>(b, j) - row_max) * inverse);
            zv[v] = x;
        }
    } else {
        for (int c = lane; c < cols; c += 32) {
            const float x = to_float(zr[c]) + (has_bias ? to_float(bias[c]) : 0.0f);
            zr[c] = from_float<T>(__expf(x - row_max) * inverse);
        }
    }
}

}  // namespace vecprop

#define VECPROP_BIAS_ACT(act, Act, dtype, T)                                                   \
    extern "C" __global__ void __launch_bounds__(::vecprop::kEpilogueThreads)                  \
        bias_##act##_##dtype(T* z, const T* bias, int rows, int cols, float act_param) {       \
        ::vecprop::bias_act<T, Act>(z, bias, rows, cols,                                       \
                                    ::vecprop::make_activation<Act>(act_param));               \
    }

#define VECPROP_EPILOGUE_KERNELS(dtype, T)                                                     \
    VECPROP_FOR_EACH_ACTIVATION(VECPROP_BIAS_ACT, dtype, T)                                    \
    extern "C" __global__ void __launch_bounds__(::vecprop::kEpilogueThreads)                  \
        bias_softmax_##dtype(T* z, const T* bias, int rows, int cols, float /* act_param */) { \
        ::vecprop::bias_softmax<T>(z, bias, rows, cols);                                       \
    }

VECPROP_EPILOGUE_KERNELS(f32, float)
VECPROP_EPILOGUE_KERNELS(f16, ::vecprop::half_t)
VECPROP_EPILOGUE_KERNELS(bf16, ::vecprop::bf16_t)
