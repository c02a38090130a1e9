//! Small measurement helpers shared by the runtime (auto-tuning) and the benchmarks.
//!
//! They sit beneath both, so that the runtime never imports the benchmark engine.

use std::time::Instant;

/// The median of `repeats` timings of `run`, in milliseconds, after `warmup` untimed calls.
/// `run` gets the repetition index, to rotate inputs.
///
/// ```
/// let ms = vecprop::stats::median_ms(1, 3, |_| std::hint::black_box(()));
/// assert!(ms >= 0.0);
/// ```
pub fn median_ms(warmup: usize, repeats: usize, mut run: impl FnMut(usize)) -> f64 {
    for i in 0..warmup {
        run(i);
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|i| {
            let start = Instant::now();
            run(i);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&mut times)
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
///
/// ```
/// assert_eq!(vecprop::stats::median(&mut [3.0, 1.0, 2.0]), 2.0);
/// ```
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
