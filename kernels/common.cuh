// common.cuh: what every vecprop kernel shares.
//
// - The activation functions g, written once as functors (`act.apply(float) -> float`).
//   They match `src/activation.rs` (the CPU definitions); tests/all/activations.rs runs one
//   table of cases through both.
// - Load/store helpers between the storage dtypes (float, half_t, bf16_t) and f32,
//   the type all arithmetic is done in.
// - Helpers for 16-byte vectors (one `uint4` holding 4 floats or 8 halves) and alignment.
//
// Kernel names, arguments and launch configurations are specified in kernels/ABI.md.
#pragma once

#include <stdint.h>

// No <cuda_fp16.h> / <cuda_bf16.h>: they need CCCL's <nv/target>, which the pinned nvcc wheels
// (scripts/install-nvcc.sh) do not ship. The 16-bit dtypes are defined here instead, with the
// same size, alignment and bits as __half (IEEE binary16) and __nv_bfloat16, and converted
// with PTX `cvt`, so the kernels only need nvcc itself.

namespace vecprop {

/// IEEE 754 binary16, bit-identical to CUDA's __half (Rust: half::f16).
struct alignas(2) half_t {
    uint16_t bits;
};
/// bfloat16 (the top 16 bits of an f32), bit-identical to __nv_bfloat16 (Rust: half::bf16).
struct alignas(2) bf16_t {
    uint16_t bits;
};
static_assert(sizeof(half_t) == 2 && sizeof(bf16_t) == 2, "16-bit storage types");

// ---------------------------------------------------------------------------------------
// Activations. Each is a small struct whose `apply(float) -> float` the kernels call on a
// value `act` (`act.apply(z)`), so that the compiler inlines it into the epilogue. Every
// kernel receives the activation's one scalar parameter as its last argument, `act_param`
// (ABI.md), and builds its functor with `make_activation<Act>(act_param)`: leaky ReLU keeps
// it as its slope, the others ignore it and keep a static `apply`.
//
// NaN and ±inf propagate as in PyTorch: no fmaxf/fminf (which drop a NaN operand), and every
// formula is written so that its limits are PyTorch's (e.g. gelu(-inf) and silu(-inf) are
// NaN there, from -inf * 0, and here). The table in tests/all/activations.rs checks each case
// on every device.
// ---------------------------------------------------------------------------------------

/// g(z) = z.
struct Linear {
    __device__ __forceinline__ static float apply(float z) { return z; }
};

/// g(z) = 1 / (1 + e^-z). Stable for any finite z: for z << 0, e^-z overflows to +inf and
/// 1 / (1 + inf) is exactly 0; for z >> 0, e^-z underflows to 0 and the result is 1.
struct Sigmoid {
    __device__ __forceinline__ static float apply(float z) {
        return 1.0f / (1.0f + __expf(-z));
    }
};

/// g(z) = max(0, z), with NaN kept (NaN < 0 is false, so NaN passes through).
struct Relu {
    __device__ __forceinline__ static float apply(float z) { return z < 0.0f ? 0.0f : z; }
};

/// g(z) = z for z > 0, slope * z otherwise, as PyTorch computes it (NaN stays NaN).
struct LeakyRelu {
    float slope;
    __device__ __forceinline__ float apply(float z) const { return z > 0.0f ? z : z * slope; }
};

/// g(z) = tanh(z), to about 1e-6 relative error. Written out because `tanhf` under
/// --use_fast_math becomes `tanh.approx.f32` (only ~11 bits), too coarse next to the CPU.
/// |z| < 0.625: odd polynomial (Cephes tanhf's coefficients), no cancellation near 0.
/// Otherwise: 1 - 2 / (e^(2|z|) + 1), which saturates cleanly to 1 when e^(2|z|) = +inf.
/// Both branches are computed and one is selected, so there is no divergence.
struct Tanh {
    __device__ __forceinline__ static float apply(float z) {
        const float a = fabsf(z);
        const float z2 = z * z;
        float p = -5.70498872745e-3f;
        p = fmaf(p, z2, 2.06390887954e-2f);
        p = fmaf(p, z2, -5.37397155531e-2f);
        p = fmaf(p, z2, 1.33314422036e-1f);
        p = fmaf(p, z2, -3.33332819422e-1f);
        const float small = fmaf(p * z2, z, z);
        const float large = copysignf(1.0f - 2.0f / (__expf(2.0f * a) + 1.0f), z);
        return a < 0.625f ? small : large;
    }
};

/// GELU, erf form: g(z) = z * Phi(z), with CUDA's normcdff (accurate in both tails, unlike
/// 1 + erf(z / sqrt 2) for z << 0; --use_fast_math does not replace it).
struct Gelu {
    __device__ __forceinline__ static float apply(float z) { return z * normcdff(z); }
};

/// GELU, tanh approximation: z/2 * (1 + tanh(u)), u = sqrt(2/pi) * (z + 0.044715 z^3),
/// computed as z * sigmoid(2u) (the same function, without 1 + tanh(u)'s cancellation).
struct GeluTanh {
    __device__ __forceinline__ static float apply(float z) {
        const float u = 0.7978845608f * fmaf(0.044715f * z * z, z, z);
        return z * Sigmoid::apply(2.0f * u);
    }
};

/// SiLU (swish): g(z) = z * sigmoid(z).
struct Silu {
    __device__ __forceinline__ static float apply(float z) { return z * Sigmoid::apply(z); }
};

/// The functor of activation `Act` for a kernel's `act_param` argument (ABI.md).
template <typename Act> __device__ __forceinline__ Act make_activation(float /* act_param */) {
    return Act{};
}
template <> __device__ __forceinline__ LeakyRelu make_activation<LeakyRelu>(float slope) {
    return LeakyRelu{slope};
}

// ---------------------------------------------------------------------------------------
// Storage dtype <-> f32: `to_float(x)` and `from_float<T>(f)` (round to nearest even).
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ float half_bits_to_float(uint32_t bits) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(static_cast<unsigned short>(bits)));
    return f;
}
__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) {
    return __uint_as_float(bits << 16);  // exact: bf16 is the top half of an f32
}
__device__ __forceinline__ uint16_t float_to_half_bits(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));  // sm_80+
    return h;
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(half_t x) { return half_bits_to_float(x.bits); }
__device__ __forceinline__ float to_float(bf16_t x) { return bf16_bits_to_float(x.bits); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ half_t from_float<half_t>(float x) {
    return half_t{float_to_half_bits(x)};
}
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
    return bf16_t{float_to_bf16_bits(x)};
}

/// Raw bits <-> f32 per dtype, for values unpacked from wider registers.
template <typename T> struct Bits;
template <> struct Bits<float> {
    __device__ __forceinline__ static float to_float(uint32_t b) { return __uint_as_float(b); }
    __device__ __forceinline__ static uint32_t from_float(float x) { return __float_as_uint(x); }
};
template <> struct Bits<half_t> {
    __device__ __forceinline__ static float to_float(uint32_t b) { return half_bits_to_float(b & 0xffffu); }
    __device__ __forceinline__ static uint32_t from_float(float x) { return float_to_half_bits(x); }
};
template <> struct Bits<bf16_t> {
    __device__ __forceinline__ static float to_float(uint32_t b) { return bf16_bits_to_float(b & 0xffffu); }
    __device__ __forceinline__ static uint32_t from_float(float x) { return float_to_bf16_bits(x); }
};

/// Packs two f32 values, rounded to a 16-bit T, into one 32-bit word (`lo` at the lower address).
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    static_assert(sizeof(T) == 2, "pack2 is for 16-bit dtypes");
    return Bits<T>::from_float(lo) | (Bits<T>::from_float(hi) << 16);
}

// ---------------------------------------------------------------------------------------
// 16-byte vectors: `Vec16<T>::N` elements of T packed in one uint4, moved with one
// 128-bit load or store. Elements are unpacked with shifts so that everything stays in
// registers (no local-memory arrays).
// ---------------------------------------------------------------------------------------

template <typename T> struct Vec16 {
    static_assert(sizeof(T) == 2 || sizeof(T) == 4, "Vec16 holds 2- or 4-byte elements");
    static constexpr int N = 16 / sizeof(T);
};

/// 32-bit word `i` (0..3) of `v`; `i` must be a compile-time constant after unrolling.
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

__device__ __forceinline__ void set_word(uint4& v, int i, uint32_t w) {
    if (i == 0) v.x = w;
    else if (i == 1) v.y = w;
    else if (i == 2) v.z = w;
    else v.w = w;
}

/// Element `j` (0..Vec16<T>::N-1, compile-time after unrolling) of `v`, as f32.
template <typename T> __device__ __forceinline__ float vec_get(const uint4& v, int j) {
    constexpr int per_word = 4 / sizeof(T);
    const uint32_t w = word_of(v, j / per_word);
    return Bits<T>::to_float(per_word == 1 ? w : w >> (16 * (j % per_word)));
}

/// Sets element `j` of `v` to `x` rounded to T.
template <typename T> __device__ __forceinline__ void vec_set(uint4& v, int j, float x) {
    constexpr int per_word = 4 / sizeof(T);
    const uint32_t e = Bits<T>::from_float(x);
    if (per_word == 1) {
        set_word(v, j, e);
    } else {
        const int shift = 16 * (j % per_word);
        const uint32_t w = word_of(v, j / per_word);
        set_word(v, j / per_word, (w & ~(0xffffu << shift)) | (e << shift));
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

/// Whether `p` is aligned to `bytes` (a power of two).
__device__ __forceinline__ bool is_aligned(const void* p, unsigned bytes) {
    return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0;
}

/// max(a, b) that keeps NaN: NaN if either is NaN (fmaxf would return the other one).
__device__ __forceinline__ float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

/// Sum and maximum over the 32 lanes of a warp (every lane gets the result); a NaN in any
/// lane makes the maximum NaN.
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        x = nan_max(x, __shfl_xor_sync(0xffffffffu, x, offset));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

// ---------------------------------------------------------------------------------------
// Asynchronous global → shared copies (cp.async, sm_80+).
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

/// 16-byte global → shared copy, asynchronous; both addresses 16-byte aligned. Copies
/// `src_bytes` (16 or 0) bytes and zero-fills the rest: src_bytes = 0 writes 16 zero bytes
/// without reading `src`, which is how out-of-range chunks become zeros.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

/// 4-byte global → shared copy, asynchronous; src_bytes = 0 writes a zero without reading.
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/// Waits until at most `PENDING` of this thread's committed cp.async groups are still running.
template <int PENDING> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
}

}  // namespace vecprop

/// Instantiates `MACRO(act_name, ActFunctor)` for every element-wise activation, so that each
/// kernel family lists its exported names once (see ABI.md for the names).
#define VECPROP_FOR_EACH_ACTIVATION(MACRO, ...)          \
    MACRO(linear, ::vecprop::Linear, __VA_ARGS__)         \
    MACRO(sigmoid, ::vecprop::Sigmoid, __VA_ARGS__)       \
    MACRO(relu, ::vecprop::Relu, __VA_ARGS__)             \
    MACRO(tanh, ::vecprop::Tanh, __VA_ARGS__)             \
    MACRO(gelu, ::vecprop::Gelu, __VA_ARGS__)             \
    MACRO(gelu_tanh, ::vecprop::GeluTanh, __VA_ARGS__)    \
    MACRO(silu, ::vecprop::Silu, __VA_ARGS__)             \
    MACRO(leaky_relu, ::vecprop::LeakyRelu, __VA_ARGS__)
