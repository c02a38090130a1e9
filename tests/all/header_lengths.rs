//! Safetensors files whose 8-byte header length begins with a pickle's protocol marker
//! (0x80 then 0x02-0x05: lengths 640, 896, 1152 and 1408, plus any multiple of 65,536) are
//! read as safetensors, not refused as pickles (issue 20, item 1).

use vecprop::{io, Device, PlanOptions};

use crate::helpers::worked_example;

/// Every header length whose first two little-endian bytes are 0x80, 0x02..=0x05, up to two
/// multiples of 65,536 above the first.
fn pickle_like_lengths() -> Vec<u64> {
    let mut lengths = Vec::new();
    for multiple in 0..3u64 {
        for protocol in 2..=5u64 {
            lengths.push(0x80 + (protocol << 8) + (multiple << 16));
        }
    }
    lengths
}

/// `bytes` (a safetensors file) with its header re-padded with trailing spaces, as the format
/// allows, to exactly `header_len` bytes.
fn with_header_len(bytes: &[u8], header_len: u64) -> Vec<u8> {
    let old_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + old_len])
        .unwrap()
        .trim_end();
    let padding = header_len as usize - header.len();
    let mut out = header_len.to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.extend_from_slice(&bytes[8 + old_len..]);
    out
}

#[test]
fn header_lengths_that_start_like_a_pickle_are_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let network = worked_example();
    let saved = dir.path().join("saved.safetensors");
    io::save_model(&network, &saved).unwrap();
    let bytes = std::fs::read(&saved).unwrap();
    for header_len in pickle_like_lengths() {
        let path = dir.path().join(format!("h{header_len}.safetensors"));
        std::fs::write(&path, with_header_len(&bytes, header_len)).unwrap();
        let head = std::fs::read(&path).unwrap();
        // The file really begins with a pickle marker, and is still valid for the format.
        assert_eq!(head[0], 0x80, "{header_len}");
        assert!((2..=5).contains(&head[1]), "{header_len}");
        assert_eq!(head[8], b'{', "{header_len}");
        let loaded = io::load_model(&path, None)
            .unwrap_or_else(|e| panic!("header length {header_len}: {e}"));
        let (got, want) = (&loaded.layers()[0], &network.layers()[0]);
        assert_eq!(got.weight(), want.weight(), "header length {header_len}");
        assert_eq!(got.bias(), want.bias(), "header length {header_len}");
        assert_eq!(
            got.activation(),
            want.activation(),
            "header length {header_len}"
        );
        let plan = loaded
            .compile(&Device::cpu(), PlanOptions::with_max_batch(1))
            .unwrap();
        let y = plan.forward(ndarray::array![[200.0, 17.0]].view()).unwrap();
        assert_eq!(y.mapv(f32::round), ndarray::array![[1.0, 0.0, 1.0]]);
    }
}

#[test]
fn a_real_pickle_is_still_refused() {
    // pickle.dumps({"a": 1}, protocol=2..5): the marker, then opcodes, no `{` at byte 8.
    let dir = tempfile::tempdir().unwrap();
    let pickles: [&[u8]; 2] = [
        b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.",
        b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.",
    ];
    for (i, pickle) in pickles.iter().enumerate() {
        let path = dir.path().join(format!("p{i}.safetensors"));
        std::fs::write(&path, pickle).unwrap();
        let message = io::load_model(&path, None).unwrap_err().to_string();
        assert!(message.contains("Python pickle"), "{message}");
    }
}
