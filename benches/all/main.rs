//! vecprop's criterion benchmarks, as one executable (one link, one binary in the GPU bundle).
//! Pick a group with a filter: `cargo bench --bench all -- staging`, `-- npy`, `-- cpu_layer`, `-- small_batch`.

mod dense;
mod npy;
mod small_batch;
mod staging;

criterion::criterion_main!(
    dense::benches,
    npy::benches,
    small_batch::benches,
    staging::benches
);
