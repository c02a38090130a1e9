//! Element types: what a tensor holds and what a plan computes in.
//!
//! [`DType`] names a precision at run time; [`Element`] is the compile-time side, so that
//! code is written once, generically, instead of once per dtype.

use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};

use crate::error::{Error, Result};

/// A floating-point precision that vecprop stores and computes in.
///
/// ```
/// use vecprop::DType;
/// assert_eq!("bf16".parse::<DType>().unwrap(), DType::BF16);
/// assert_eq!(DType::F16.size_in_bytes(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// IEEE 754 half precision.
    F16,
    /// bfloat16: f32's exponent range with an 8-bit significand.
    BF16,
}

impl DType {
    /// Every dtype, in a fixed order (for tests and benchmarks that run per dtype).
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// The short lowercase name used in kernel names, files and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Rounds an f32 to the nearest value this dtype can hold, returned as f32.
    pub fn round(self, value: f32) -> f32 {
        match self {
            DType::F32 => value,
            DType::F16 => f16::round_trip(value),
            DType::BF16 => bf16::round_trip(value),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that widths and alignment in table columns apply.
        f.pad(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "f16" | "float16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => Err(Error::UnsupportedDType {
                dtype: s.to_string(),
                context: "a dtype argument".to_string(),
                supported: "f32, f16, bf16",
            }),
        }
    }
}

/// A scalar type that vecprop stores on a device: f32, f16 or bf16.
///
/// Conversions go through f32, which holds every value of the three exactly.
pub trait Element: Copy + Default + Send + Sync + fmt::Debug + PartialEq + 'static {
    /// The run-time name of this type.
    const DTYPE: DType;
    /// Converts from f32, rounding to nearest even.
    fn from_f32(value: f32) -> Self;
    /// Converts to f32 exactly.
    fn to_f32(self) -> f32;
}

/// Rounds `value` to `T` and back: the value a tensor of `T` would hold.
trait RoundTrip {
    fn round_trip(value: f32) -> f32;
}

impl<T: Element> RoundTrip for T {
    fn round_trip(value: f32) -> f32 {
        T::from_f32(value).to_f32()
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f32(value: f32) -> Self {
        value
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn from_f32(value: f32) -> Self {
        f16::from_f32(value)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    fn from_f32(value: f32) -> Self {
        bf16::from_f32(value)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse() {
        for dtype in DType::ALL {
            assert_eq!(dtype.name().parse::<DType>().unwrap(), dtype);
        }
        assert!("f64".parse::<DType>().is_err());
    }

    #[test]
    fn rounding_matches_the_storage_type() {
        let x = 1.0 + 1.0 / 1024.0 + 1.0 / 4096.0;
        assert_eq!(DType::F32.round(x), x);
        assert_eq!(DType::F16.round(x), 1.0 + 1.0 / 1024.0);
        assert_eq!(DType::BF16.round(x), 1.0);
    }
}
