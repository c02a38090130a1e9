//! Software prefetch hints for the panel kernel's streams: the input rows it will read and
//! the output rows it will write a few row blocks ahead.
//!
//! A hint never faults and changes no value; `pulp`'s SSE token makes `_mm_prefetch` a safe
//! call once the feature is detected (every x86-64 has it). Elsewhere the hints are no-ops.

/// Floats per 64-byte cache line.
const LINE_FLOATS: usize = 64 / std::mem::size_of::<f32>();

/// Issues prefetch hints where the processor has them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prefetcher {
    #[cfg(target_arch = "x86_64")]
    sse: Option<pulp::core_arch::x86::Sse>,
}

impl Prefetcher {
    /// Detects the instructions (cached by the standard library after the first call).
    pub(super) fn new() -> Self {
        Prefetcher {
            #[cfg(target_arch = "x86_64")]
            sse: pulp::core_arch::x86::Sse::try_new(),
        }
    }

    /// Asks for the lines of `data` in L1, to be read.
    #[inline(always)]
    pub(super) fn for_reading(self, data: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        self.lines::<{ std::arch::x86_64::_MM_HINT_T0 }>(data);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = data;
    }

    /// Asks for the lines of `data` in L1, to be written. `_MM_HINT_ET0` is `prefetchw`
    /// where the build enables `prfchw`; the default x86-64 build gets a read prefetch
    /// (`prefetcht0`, as the disassembly shows), which still moves the line's fetch off the
    /// store's critical path: a line no other core holds arrives exclusive.
    #[inline(always)]
    pub(super) fn for_writing(self, data: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        self.lines::<{ std::arch::x86_64::_MM_HINT_ET0 }>(data);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = data;
    }

    /// One `_mm_prefetch` with hint `HINT` per cache line of `data`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn lines<const HINT: i32>(self, data: &[f32]) {
        if let Some(sse) = self.sse {
            for line in data.chunks(LINE_FLOATS) {
                sse._mm_prefetch::<HINT>(line.as_ptr().cast());
            }
        }
    }
}
