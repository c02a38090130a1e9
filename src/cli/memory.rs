//! Whether a batch size fits in this machine's memory, decided before anything is allocated.

use vecprop::{Error, Network, Result};

/// Host bytes that one row of a batch costs while `vecprop infer` streams: the two
/// ping-pong activation buffers of the widest layer, and up to three chunks of input and
/// output rows in flight (read ahead, computing, being written).
fn bytes_per_row(network: &Network) -> Option<u64> {
    let max_width = network.max_width() as u64;
    let ends = (network.input_width() as u64).checked_add(network.output_width() as u64)?;
    let floats = max_width
        .checked_mul(2)?
        .checked_add(ends.checked_mul(3)?)?;
    floats.checked_mul(std::mem::size_of::<f32>() as u64)
}

/// Refuses a batch of `batch` rows (what `--batch-size` asked for, already capped at the
/// rows the input holds) that needs more memory than is available, with a one-line error
/// naming both. Unknown available memory is not checked.
pub(crate) fn check_batch_fits(network: &Network, batch: usize, asked: usize) -> Result<()> {
    let needed = bytes_per_row(network).and_then(|b| b.checked_mul(batch as u64));
    let Some(available) = available_bytes() else {
        return Ok(());
    };
    match needed {
        Some(needed) if needed <= available => Ok(()),
        _ => Err(Error::InvalidArgument(format!(
            "the plan needs {} at --batch-size {asked}; this machine has {} available (use a smaller --batch-size)",
            needed.map_or_else(|| "more than 18 EB".to_string(), gigabytes),
            gigabytes(available)
        ))),
    }
}

/// `204.8 GB` (decimal gigabytes, one decimal).
fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// The memory this process can still use: `MemAvailable` from /proc/meminfo, lowered to
/// what the cgroup (a container's limit) leaves, if any. `None` where neither can be read.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(|text| {
        meminfo_kib(text, "MemAvailable:").or_else(|| meminfo_kib(text, "MemFree:"))
    });
    let system = system.map(|kib| kib.saturating_mul(1024));
    match (system, cgroup_headroom()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A `Name:   1234 kB` line of /proc/meminfo, in KiB.
fn meminfo_kib(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// cgroup v2: `memory.max - memory.current` of this process's group, if limited.
fn cgroup_headroom() -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{name}")).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_are_read_in_kib() {
        let text = "MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   23400000 kB\n";
        assert_eq!(meminfo_kib(text, "MemAvailable:"), Some(23_400_000));
        assert_eq!(meminfo_kib(text, "MemFree:"), Some(100));
        assert_eq!(meminfo_kib(text, "Swap:"), None);
        assert_eq!(gigabytes(204_800_000_000), "204.8 GB");
    }
}
