//! Turning `.npy` element bytes into f32: a plain copy where the bytes already are native
//! f32, a conversion on every core otherwise.

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use rayon::prelude::*;

use super::dtype::{ByteOrder, NpyDType};
use crate::io::bytes::decode_parallel;

/// Halves converted per parallel task.
const HALF_GRAIN: usize = 1 << 16;

/// How one on-disk element type becomes f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder {
    dtype: NpyDType,
    order: ByteOrder,
}

impl Decoder {
    pub(crate) fn new(dtype: NpyDType, order: ByteOrder) -> Self {
        Decoder { dtype, order }
    }

    /// Whether the bytes on disk are this machine's f32, so that they can be read straight
    /// into an f32 buffer.
    pub(crate) fn is_native_f32(self) -> bool {
        self.dtype == NpyDType::F4 && self.order == ByteOrder::NATIVE
    }

    /// Bytes per element on disk.
    pub(crate) fn size(self) -> usize {
        self.dtype.size()
    }

    /// Decodes `out.len()` elements from `bytes` (exactly `out.len() * size()` bytes).
    pub(crate) fn decode(self, bytes: &[u8], out: &mut [f32]) {
        if self.dtype == NpyDType::F2 && self.order == ByteOrder::NATIVE {
            // Native halves: half's slice conversion uses the CPU's F16C/FP16 instructions.
            if let Ok(bits) = bytemuck::try_cast_slice::<u8, u16>(bytes) {
                let halves: &[f16] = bits.reinterpret_cast();
                out.par_chunks_mut(HALF_GRAIN)
                    .zip(halves.par_chunks(HALF_GRAIN))
                    .for_each(|(out, halves)| halves.convert_to_f32_slice(out));
                return;
            }
        }
        let big = self.order == ByteOrder::Big;
        match self.dtype {
            NpyDType::F2 => decode_parallel(bytes, out, |b: [u8; 2]| {
                let v = if big {
                    f16::from_be_bytes(b)
                } else {
                    f16::from_le_bytes(b)
                };
                v.to_f32()
            }),
            NpyDType::F4 => decode_parallel(bytes, out, |b: [u8; 4]| {
                if big {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                }
            }),
            NpyDType::F8 => decode_parallel(bytes, out, |b: [u8; 8]| {
                let v = if big {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                };
                v as f32
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each width and byte order, on values that are exact in every width, including
    /// subnormal halves, infinities and NaN.
    #[test]
    fn every_width_and_order_decodes_to_the_same_floats() {
        let values: Vec<f32> = (0..70_000)
            .map(|i| match i % 7 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => -f32::INFINITY,
                3 => 2f32.powi(-20), // subnormal in f16
                _ => ((i % 2048) as f32 - 1024.0) / 8.0,
            })
            .collect();
        type Encode = fn(f32) -> Vec<u8>;
        let cases: [(NpyDType, Encode, Encode); 3] = [
            (
                NpyDType::F2,
                |v| f16::from_f32(v).to_le_bytes().to_vec(),
                |v| f16::from_f32(v).to_be_bytes().to_vec(),
            ),
            (
                NpyDType::F4,
                |v| v.to_le_bytes().to_vec(),
                |v| v.to_be_bytes().to_vec(),
            ),
            (
                NpyDType::F8,
                |v| f64::from(v).to_le_bytes().to_vec(),
                |v| f64::from(v).to_be_bytes().to_vec(),
            ),
        ];
        for (dtype, little, big) in cases {
            for (order, encode) in [(ByteOrder::Little, little), (ByteOrder::Big, big)] {
                let bytes: Vec<u8> = values.iter().flat_map(|&v| encode(v)).collect();
                // Also from an odd address, where no slice of u16 can be cast.
                let mut shifted = vec![0u8];
                shifted.extend_from_slice(&bytes);
                for bytes in [&bytes[..], &shifted[1..]] {
                    let mut out = vec![0.0f32; values.len()];
                    Decoder::new(dtype, order).decode(bytes, &mut out);
                    for (i, (got, want)) in out.iter().zip(&values).enumerate() {
                        let same =
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
                        assert!(same, "{dtype:?} {order:?} element {i}: {got} != {want}");
                    }
                }
            }
        }
    }
}
