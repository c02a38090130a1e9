//! The `.npy` header (prelude and dict literal), read from any bytes as from a pipe: an
//! error or a header, never a panic, an abort or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vecprop::io::npy::NpyHeader;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    if let Ok((header, offset)) =
        NpyHeader::read_from(std::path::Path::new("fuzz.npy"), &mut stream)
    {
        // What was consumed is exactly the prelude and the header.
        assert_eq!(offset as usize, data.len() - stream.len());
        assert!(offset as usize <= 12 + vecprop::io::npy::MAX_HEADER_LEN);
        let _ = header.dtype.size();
    }
});
