//! A whole `.npy` file through `NpyReader`: opened, then read in chunks and at once.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vecprop::io::NpyReader;

/// One scratch file per fuzzing process, rewritten for each input.
fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        // In memory where there is a tmpfs: each input is written to a file.
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary folder")
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let path = scratch().join("input.npy");
    std::fs::write(&path, data).expect("write the input");
    let Ok(mut reader) = NpyReader::open(&path) else {
        return;
    };
    let (rows, cols) = reader.shape();
    // The reader checked that the file holds every element: reading them must work.
    let whole = reader
        .read_rows(0, rows)
        .expect("declared rows are readable");
    assert_eq!(whole.dim(), (rows, cols));
    let step = (rows / 3).max(1);
    let mut start = 0;
    while start < rows {
        let end = (start + step).min(rows);
        let chunk = reader.read_rows(start, end).expect("a chunk is readable");
        assert!(chunk
            .iter()
            .zip(whole.slice(ndarray::s![start..end, ..]).iter())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        start = end;
    }
    assert!(reader.read_rows(rows, rows.saturating_add(1)).is_err() || rows == usize::MAX);
});
