//! Sizes in bytes, for people.
//!
//! ```
//! use vecprop::size::human_bytes;
//! assert_eq!(human_bytes(627_200_000_000), "627.2 GB");
//! assert_eq!(human_bytes(512), "512 B");
//! ```

/// A byte count for people, in decimal units up to GB: `627.2 GB`, `13.1 MB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    let value = bytes as f64;
    for (unit, scale) in UNITS {
        if value >= scale {
            return format!("{:.1} {unit}", value / scale);
        }
    }
    format!("{bytes} B")
}
