//! Any bytes as a safetensors model: `load_model` returns a network or an error.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vecprop::{io, Activation, Device, PlanOptions};

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
    let path = scratch().join("model.safetensors");
    std::fs::write(&path, data).expect("write the model");
    if let Ok(network) = io::load_model(&path, None) {
        // A network that loads runs: one row of zeros gives one row of the output width.
        assert!(!network.layers().is_empty());
        let plan = network
            .compile(&Device::cpu(), PlanOptions::with_max_batch(1))
            .expect("a loaded network compiles");
        let zeros = ndarray::Array2::zeros((1, network.input_width()));
        let out = plan.forward(zeros.view()).expect("a loaded network runs");
        assert_eq!(out.dim(), (1, network.output_width()));
    }
    let _ = io::load_model(&path, Some(&[Activation::Relu]));
});
