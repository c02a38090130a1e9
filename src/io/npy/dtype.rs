//! The element types a `.npy` batch may hold, and their byte order.

use std::fmt;

/// The width of the floating-point elements on disk (all are widened or rounded to f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDType {
    /// `f2`: IEEE half precision, widened to f32 exactly.
    F2,
    /// `f4`: float32, read as is.
    F4,
    /// `f8`: float64, rounded to f32 on reading.
    F8,
}

/// The byte order of the elements on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// `<`: least significant byte first (what numpy writes on x86 and ARM).
    Little,
    /// `>`: most significant byte first.
    Big,
}

impl ByteOrder {
    /// The order of this machine's own floats.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "little") {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
}

impl NpyDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            NpyDType::F2 => 2,
            NpyDType::F4 => 4,
            NpyDType::F8 => 8,
        }
    }

    /// Reads a numpy type string such as `<f4` or `>f8`; `None` for anything the reader
    /// does not convert.
    pub fn from_descr(descr: &str) -> Option<(NpyDType, ByteOrder)> {
        let (order, kind) = descr.split_at_checked(1)?;
        let order = match order {
            "<" => ByteOrder::Little,
            ">" => ByteOrder::Big,
            _ => return None,
        };
        let dtype = [NpyDType::F2, NpyDType::F4, NpyDType::F8]
            .into_iter()
            .find(|d| d.code() == kind)?;
        Some((dtype, order))
    }

    /// The type string without its byte order: `f2`, `f4` or `f8`.
    fn code(self) -> &'static str {
        match self {
            NpyDType::F2 => "f2",
            NpyDType::F4 => "f4",
            NpyDType::F8 => "f8",
        }
    }

    /// The numpy type string for this width in `order`, e.g. `>f8`.
    pub fn descr(self, order: ByteOrder) -> String {
        let prefix = match order {
            ByteOrder::Little => '<',
            ByteOrder::Big => '>',
        };
        format!("{prefix}{}", self.code())
    }
}

impl fmt::Display for NpyDType {
    /// The little-endian type string, e.g. `<f4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_round_trip() {
        for descr in ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"] {
            let (dtype, order) = NpyDType::from_descr(descr).unwrap();
            assert_eq!(dtype.descr(order), descr);
        }
        for other in ["", "<", "|f4", "=f4", "<i4", "<f16", "<c8", "f4"] {
            assert_eq!(NpyDType::from_descr(other), None, "{other}");
        }
    }
}
