//! Criterion benchmark of what the first load of each kernel module costs on the host:
//! decoding its zstd-compressed image (`cuda` builds only; no GPU needed). A process pays
//! this once per module it uses, on the module's first kernel; warm calls pay nothing. The
//! `all_modules` row is the most any process can pay: every module, one after another.
//!
//!   cargo bench --features cuda --bench all -- kernel_images

use criterion::{criterion_group, Criterion};

#[cfg(feature = "cuda")]
fn kernel_images(c: &mut Criterion) {
    use criterion::{BenchmarkId, Throughput};
    use vecprop::device::cuda::{decode_kernel_image, kernel_images};

    let images = kernel_images();
    let mut group = c.benchmark_group("kernel_images");
    group.sample_size(20);
    for image in &images {
        group.throughput(Throughput::Bytes(image.bytes as u64));
        group.bench_function(BenchmarkId::new("decode", image.name), |b| {
            b.iter(|| decode_kernel_image(image.name).expect("an embedded image decodes"))
        });
    }
    let total: usize = images.iter().map(|image| image.bytes).sum();
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("decode/all_modules", |b| {
        b.iter(|| {
            images
                .iter()
                .map(|image| decode_kernel_image(image.name).expect("an embedded image decodes"))
                .sum::<usize>()
        })
    });
    group.finish();
}

/// A CPU build embeds no kernel images: nothing to time.
#[cfg(not(feature = "cuda"))]
fn kernel_images(_: &mut Criterion) {}

criterion_group!(benches, kernel_images);
