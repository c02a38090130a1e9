use ndarray::{Array2, Axis};
use rayon::prelude::*;
use vecprop::bench::{median_ms, Shape};
use vecprop::device::cpu::bias_activation;
use vecprop::tensor::random_batch;
use vecprop::Activation;

fn gemm_crate(
    a: ndarray::ArrayView2<f32>,
    b: ndarray::ArrayView2<f32>,
    mut c: ndarray::ArrayViewMut2<f32>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let p = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            p,
        )
    }
}
fn blocks(a: &Array2<f32>, w: &Array2<f32>, b: &[f32], out: &mut Array2<f32>, block: usize) {
    out.axis_chunks_iter_mut(Axis(0), block)
        .into_par_iter()
        .zip(a.axis_chunks_iter(Axis(0), block))
        .for_each(|(mut z, x)| {
            gemm_crate(x, w.view(), z.view_mut(), 1);
            bias_activation(z, b, Activation::Sigmoid);
        });
}
fn main() {
    let shapes = [
        Shape::new(64, 784, 512),
        Shape::new(512, 784, 512),
        Shape::new(4096, 784, 512),
        Shape::new(16384, 1024, 1024),
        Shape::new(65536, 64, 64),
    ];
    for s in shapes {
        let a = random_batch(s.m, s.k, 1);
        let w = random_batch(s.k, s.n, 2);
        let b: Vec<f32> = vec![0.1; s.n];
        let mut out = Array2::<f32>::zeros((s.m, s.n));
        let reps = if s.flops() > 1e10 { 3 } else { 15 };
        let mut best = vec![f64::MAX; 5];
        for _round in 0..3 {
            let t = [
                median_ms(1, reps, |_| {
                    gemm_crate(a.view(), w.view(), out.view_mut(), 2);
                    bias_activation(out.view_mut(), &b, Activation::Sigmoid)
                }),
                median_ms(1, reps, |_| {
                    gemm_crate(a.view(), w.view(), out.view_mut(), 2);
                    out.axis_chunks_iter_mut(Axis(0), 256)
                        .into_par_iter()
                        .for_each(|z| bias_activation(z, &b, Activation::Sigmoid))
                }),
                median_ms(1, reps, |_| blocks(&a, &w, &b, &mut out, 256)),
                median_ms(1, reps, |_| blocks(&a, &w, &b, &mut out, 1024)),
                median_ms(1, reps, |_| blocks(&a, &w, &b, &mut out, s.m.div_ceil(2))),
            ];
            for i in 0..5 {
                best[i] = best[i].min(t[i]);
            }
        }
        let g = |t: f64| s.flops() / t / 1e6;
        println!("{s}: gemm2+epi1 {:.0} | gemm2+epi2 {:.0} | blk256 {:.0} | blk1024 {:.0} | halves {:.0}  GFLOP/s", g(best[0]), g(best[1]), g(best[2]), g(best[3]), g(best[4]));
    }
}
