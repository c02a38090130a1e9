// hopper_sm90a.cuh: thin PTX wrappers for Hopper's asynchronous machinery, used by
// hopper_dense_sm90a.cu. Everything here needs compute_90a (wgmma, setmaxnreg) or sm_90
// (mbarrier transaction counts, cp.async.bulk.tensor); build.rs compiles `*_sm90a.cu` files
// for compute_90a only.
//
// - mbarriers: init, arrive, arrive + expected transaction bytes, wait on a phase parity.
// - TMA: a 2-D tiled bulk tensor copy global → shared that completes on an mbarrier. The
//   tensor map (CUtensorMap, 128 bytes, built on the host by cuTensorMapEncodeTiled) is a
//   `__grid_constant__` kernel parameter; the copy takes its generic address.
// - wgmma: shared-memory matrix descriptors and m64n{128,256}k16 with f32 accumulators, A K-major
//   and B MN-major (W is k×n row-major), both in the 128-byte swizzled layout TMA writes.
#pragma once

#include "common.cuh"

namespace vecprop {

/// The host's CUtensorMap: 128 opaque bytes, 64-byte aligned. Passed by value.
struct alignas(64) TensorMap {
    uint64_t opaque[16];
};

// ---------------------------------------------------------------------------------------
// mbarrier
// ---------------------------------------------------------------------------------------

__device__ __forceinline__ void mbarrier_init(uint64_t* bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)),
                 "r"(arrivals)
                 : "memory");
}

/// Makes the initialised barriers visible to the async proxy (TMA) and the other threads.
__device__ __forceinline__ void mbarrier_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar))
                 : "memory");
}

/// Arrives and adds `bytes` to the transactions the current phase waits for.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                     shared_address(bar)),
                 "r"(bytes)
                 : "memory");
}

/// Blocks until the phase of parity `parity` has completed. A fresh barrier counts its
/// (virtual) previous phase, parity 1, as complete.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n"
        "}\n" ::"r"(shared_address(bar)),
        "r"(parity)
        : "memory");
}

/// Barrier `id` (1..15; 0 is __syncthreads) over the first `threads` threads to arrive, a
/// multiple of 32: lets some warpgroups synchronise without the others.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

/// Orders this thread's shared-memory accesses of the async proxy (TMA, wgmma) before its
/// following generic ones.
__device__ __forceinline__ void async_proxy_fence() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// ---------------------------------------------------------------------------------------
// TMA
// ---------------------------------------------------------------------------------------

/// Fetches the tensor map into the descriptor cache ahead of its first use.
__device__ __forceinline__ void tma_prefetch(const TensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

/// Copies the box at element coordinates (x = innermost, y) of `map` into shared memory at
/// `dst` (aligned as the map's swizzle needs: 1024 bytes for 128-byte swizzle), completing
/// its bytes on `bar`. Out-of-range elements of the box are written as zeros.
__device__ __forceinline__ void tma_load_2d(void* dst, const TensorMap* map, uint64_t* bar,
                                            int x, int y) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(shared_address(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(bar))
        : "memory");
}

// ---------------------------------------------------------------------------------------
// wgmma
// ---------------------------------------------------------------------------------------

/// A shared-memory matrix descriptor in the 128-byte swizzled layout (PTX ISA, "Matrix
/// Descriptor Format"): start address, leading and stride byte offsets (each >> 4) and
/// swizzle mode 1 (128 bytes) in bits 62-63. Base offset 0: tiles are 1024-byte aligned.
__device__ __forceinline__ uint64_t wgmma_descriptor(const void* start, uint32_t leading_bytes,
                                                     uint32_t stride_bytes) {
    const uint64_t address = shared_address(start);
    return ((address & 0x3FFFF) >> 4) | (static_cast<uint64_t>(leading_bytes >> 4) << 16) |
           (static_cast<uint64_t>(stride_bytes >> 4) << 32) | (1ull << 62);
}

/// Orders register accesses to the accumulators before the following wgmma.
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

/// Waits until at most `PENDING` committed wgmma groups of this warpgroup are in flight.
template <int PENDING> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(PENDING) : "memory");
}

/// Keeps the compiler from moving accesses of `x` across a wgmma wait (the hardware writes
/// the accumulators behind its back).
__device__ __forceinline__ void register_fence(float& x) { asm volatile("" : "+f"(x)::"memory"); }

/// Gives this warpgroup's threads `REGS` registers each (setmaxnreg; all warps of the
/// warpgroup must execute it). Needs a register cap at kernel entry (__launch_bounds__).
template <int REGS> __device__ __forceinline__ void registers_increase() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS> __device__ __forceinline__ void registers_decrease() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

/// d (64×N, f32, the warpgroup's fragment: N/2 registers per thread) += A (64×16, K-major)
/// · B (16×N, MN-major), both from shared memory through descriptors. One instruction string
/// per 16-bit dtype and N; the operands are the same. The trailing immediates: scale-d = 1
/// (accumulate), scale-a = scale-b = 1, A not transposed (K-major), B transposed (MN-major).
#define VECPROP_WGMMA_M64N128K16(TYPE)                                                      \
    asm volatile(                                                                           \
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                    \
        "{"                                                                                 \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "            \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "  \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "  \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"    \
        "}, %64, %65, 1, 1, 1, 0, 1;\n"                                                     \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),           \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),         \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),     \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),     \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),     \
          "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),     \
          "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),     \
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),     \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),     \
          "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),     \
          "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])                                \
        : "l"(desc_a), "l"(desc_b))

#define VECPROP_WGMMA_M64N256K16(TYPE)                                                                    \
    asm volatile(                                                                                         \
        "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " "                                  \
        "{"                                                                                               \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                \
        "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                \
        "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                \
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "    \
        "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"  \
        "}, %128, %129, 1, 1, 1, 0, 1;\n"                                                                 \
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),                         \
          "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),                       \
          "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]),                   \
          "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),                   \
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]),                   \
          "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),                   \
          "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),                   \
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),                   \
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),                   \
          "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]),                   \
          "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]),                   \
          "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),                   \
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),                   \
          "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]),                   \
          "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]),                   \
          "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),                   \
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]),                 \
          "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]),             \
          "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]),             \
          "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),             \
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),             \
          "+f"(d[126]), "+f"(d[127])                                                                      \
        : "l"(desc_a), "l"(desc_b))

template <typename T, int N> struct Wgmma;
#define VECPROP_WGMMA_SPECIALISATION(T, TYPE, N)                                               \
    template <> struct Wgmma<T, N> {                                                           \
        __device__ __forceinline__ static void run(float (&d)[N / 2], uint64_t desc_a,         \
                                                   uint64_t desc_b) {                          \
            VECPROP_WGMMA_M64N##N##K16(TYPE);                                                  \
        }                                                                                      \
    };
VECPROP_WGMMA_SPECIALISATION(half_t, "f16", 128)
VECPROP_WGMMA_SPECIALISATION(half_t, "f16", 256)
VECPROP_WGMMA_SPECIALISATION(bf16_t, "bf16", 128)
VECPROP_WGMMA_SPECIALISATION(bf16_t, "bf16", 256)

}  // namespace vecprop
