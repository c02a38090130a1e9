//! The Rust side of scripts/bench_python.py: times `Plan::forward` on a model file, the
//! library call that `vecprop.Model.__call__` wraps, so that the Python layer's overhead is
//! the difference between the two.
//!
//! Usage: forward_timing MODEL ROWS CALLS ROUNDS [DEVICE]
//! Prints one JSON object: the median and every round's seconds per call.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use vecprop::{Device, PlanOptions};

fn main() -> ExitCode {
    match run() {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("forward_timing: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, rows, calls, rounds, rest @ ..] = &args[..] else {
        return Err("usage: forward_timing MODEL ROWS CALLS ROUNDS [DEVICE]".into());
    };
    let number = |text: &str, what: &str| {
        text.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or(format!("{what} must be a positive integer, not `{text}`"))
    };
    let (rows, calls, rounds) = (
        number(rows, "ROWS")?,
        number(calls, "CALLS")?,
        number(rounds, "ROUNDS")?,
    );
    let device: Device = rest
        .first()
        .map_or("cpu", String::as_str)
        .parse()
        .map_err(|e| format!("{e}"))?;

    let network = vecprop::io::load_model(model, None).map_err(|e| e.to_string())?;
    // The same plan options as `vecprop.load(path, device=...)`.
    let plan = network
        .compile(&device, PlanOptions::default())
        .map_err(|e| e.to_string())?;
    let input = vecprop::tensor::random_batch(rows, plan.input_width(), 1);
    let forward = || {
        plan.forward(black_box(input.view()))
            .map(black_box)
            .map_err(|e| e.to_string())
    };
    for _ in 0..calls.min(100) {
        forward()?;
    }
    let mut per_call = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let began = Instant::now();
        for _ in 0..calls {
            forward()?;
        }
        per_call.push(began.elapsed().as_secs_f64() / calls as f64);
    }
    let mut sorted = per_call.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let rounds_json: Vec<String> = per_call.iter().map(|s| format!("{s:e}")).collect();
    Ok(format!(
        "{{\"rows\": {rows}, \"median_s\": {median:e}, \"rounds_s\": [{}]}}",
        rounds_json.join(", ")
    ))
}
