//! `vecprop devices`.

use vecprop::Result;

/// Prints one line per device.
pub fn run() -> Result<()> {
    super::print(&vecprop::device::describe_all().join("\n"))
}
