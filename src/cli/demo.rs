//! `vecprop demo`: the worked example, then a timed 784-512-256-10 network.

use std::fmt::Write;
use std::time::Instant;

use ndarray::{array, Array2};
use vecprop::tensor::random_batch;
use vecprop::{Activation, Device, Network, PlanOptions, Result};

/// Arguments of `vecprop demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Rows in the timed batch.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    rows: usize,
    /// On a GPU, time the network with f32 GEMMs on TF32 tensor cores (about 1e-3 relative
    /// error; the worked example stays strict f32).
    #[arg(long)]
    tf32: bool,
}

/// Timed runs after the warm-up; the median is reported.
const RUNS: usize = 3;

/// Runs both parts and prints what they give.
pub fn run(args: Args) -> Result<()> {
    let device = super::parse_device(&args.device)?;
    super::print(&worked_example(&device)?)?;
    super::print(&timed_network(&device, args.rows, args.tf32)?)
}

/// X = [[200, 17]] through one sigmoid layer of three units.
fn worked_example(device: &Device) -> Result<String> {
    let network = Network::builder(2)
        .layer_with(
            array![[1.0, -3.0, 5.0], [-2.0, 4.0, -6.0]],
            array![-1.0, 1.0, 2.0],
            Activation::Sigmoid,
        )
        .build()?;
    let plan = network.compile(device, PlanOptions::with_max_batch(1))?;
    let output = plan.forward(array![[200.0, 17.0]].view())?;
    let mut text = String::new();
    let _ = writeln!(text, "Worked example on {device}");
    let _ = writeln!(text, "  X = [[200, 17]]");
    let _ = writeln!(text, "  W = [[1, -3, 5], [-2, 4, -6]]  (inputs x units)");
    let _ = writeln!(text, "  B = [[-1, 1, 2]],  g = sigmoid");
    let _ = writeln!(
        text,
        "  g(X·W + B)        = {}",
        format_row(&output, |v| format!("{v:?}"))
    );
    let _ = writeln!(
        text,
        "  rounded           = {}",
        format_row(&output, |v| format!("{}", v.round()))
    );
    Ok(text)
}

/// `[[a, b, c]]` for a one-row array.
fn format_row(values: &Array2<f32>, format: impl Fn(f32) -> String) -> String {
    let items: Vec<String> = values.iter().map(|&v| format(v)).collect();
    format!("[[{}]]", items.join(", "))
}

/// A 784-512-256-10 network over `rows` random examples: one warm-up, the median of 3 runs.
fn timed_network(device: &Device, rows: usize, allow_tf32: bool) -> Result<String> {
    let network = Network::builder(784)
        .dense(512, Activation::Sigmoid)
        .dense(256, Activation::Relu)
        .dense(10, Activation::Linear)
        .build()?;
    let max_batch = if device.is_cuda() {
        rows
    } else {
        rows.min(4096)
    };
    let options = PlanOptions {
        allow_tf32,
        ..PlanOptions::with_max_batch(max_batch.max(1))
    };
    let plan = network.compile(device, options)?;
    let input = random_batch(rows, network.input_width(), 42);
    let mut output = Array2::zeros((rows, network.output_width()));

    plan.forward_into(input.view(), output.view_mut())?;
    device.synchronize()?;
    let mut seconds = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        plan.forward_into(input.view(), output.view_mut())?;
        device.synchronize()?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[RUNS / 2].max(f64::MIN_POSITIVE);

    let mut text = String::new();
    let _ = writeln!(
        text,
        "\n784-512-256-10 network (sigmoid, relu, linear), {rows} rows on {device}{}",
        if allow_tf32 && device.is_cuda() {
            ", TF32"
        } else {
            ""
        }
    );
    let _ = writeln!(
        text,
        "  median of {RUNS} runs: {:.3} ms  ->  {:.0} examples/s, {:.1} GFLOP/s",
        median * 1e3,
        rows as f64 / median,
        network.flops(rows) / median / 1e9
    );
    Ok(text)
}
