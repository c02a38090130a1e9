//! Little-endian decoding shared by the safetensors and .npy readers.

use half::{bf16, f16};

/// Copies a chunk that `chunks_exact(N)` produced into an array.
fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(chunk);
    out
}

/// Little-endian f32 values.
pub(crate) fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(array(c)))
}

/// Little-endian f64 values, rounded to f32.
pub(crate) fn f64s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(array(c)) as f32)
}

/// Little-endian IEEE half values, widened to f32 (exactly).
pub(crate) fn f16s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes(array(c)).to_f32())
}

/// Little-endian bfloat16 values, widened to f32 (exactly).
pub(crate) fn bf16s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| bf16::from_le_bytes(array(c)).to_f32())
}

/// Elements decoded per parallel task: large enough that splitting costs nothing, small
/// enough that every core gets work on a chunk of a few megabytes.
const DECODE_GRAIN: usize = 1 << 16;

/// Decodes `out.len()` floats of `N` bytes each from `bytes` into `out`, on every core.
///
/// `decode` turns one element's bytes, as stored, into an f32.
pub(crate) fn decode_parallel<const N: usize>(
    bytes: &[u8],
    out: &mut [f32],
    decode: impl Fn([u8; N]) -> f32 + Sync,
) {
    use rayon::prelude::*;
    debug_assert_eq!(bytes.len(), out.len() * N);
    out.par_chunks_mut(DECODE_GRAIN)
        .zip(bytes.par_chunks(DECODE_GRAIN * N))
        .for_each(|(out, bytes)| {
            out.iter_mut()
                .zip(bytes.chunks_exact(N))
                .for_each(|(o, c)| *o = decode(array(c)));
        });
}
