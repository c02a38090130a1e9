//! vecprop's criterion benchmarks, as one executable (one link, one binary in the GPU bundle).
//! Pick a group with a filter: `cargo bench --bench all -- staging`, `-- npy`, `-- cpu_layer`,
//! `-- small_batch`, `-- kernel_images` (with `--features cuda`).

mod dense;
mod kernel_images;
mod npy;
mod small_batch;
mod staging;

criterion::criterion_main!(
    dense::benches,
    kernel_images::benches,
    npy::benches,
    small_batch::benches,
    staging::benches
);
