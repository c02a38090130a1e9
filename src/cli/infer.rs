//! `vecprop infer`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vecprop::{io, DType, PlanOptions, Result, Strategy};

/// Arguments of `vecprop infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model, a safetensors file.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The input batch: a 2-D .npy file (float16, float32 or float64), one example per row.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the outputs (.npy, float32). Written atomically.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Rows read, computed and written at a time.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    batch_size: usize,
    /// One activation per layer, overriding the model's metadata (e.g. sigmoid,relu,linear).
    #[arg(long, value_name = "LIST")]
    activations: Option<String>,
    /// Compute precision (f32, f16, bf16); the model's own by default.
    #[arg(long)]
    dtype: Option<String>,
    /// How GPU layers are computed: auto, cublas, cublaslt or fused.
    #[arg(long, default_value = "auto")]
    kernel: String,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
}

/// Streams the input through the model into the output file.
pub fn run(args: Args) -> Result<()> {
    let activations = super::parse_activations(args.activations.as_deref())?;
    let dtype = args.dtype.as_deref().map(str::parse::<DType>).transpose()?;
    let strategy: Strategy = args.kernel.parse()?;
    let device = super::parse_device(&args.device)?;
    let network = io::load_model(&args.model, activations.as_deref())?;
    let tuning = super::tuning_cache(&device, &args.model);
    let options = PlanOptions {
        max_batch: args.batch_size,
        dtype,
        strategy,
        tuning: tuning.clone(),
        ..PlanOptions::default()
    };
    let plan = network.compile(&device, options)?;
    if let Some(tuning) = &tuning {
        tuning.save()?;
    }

    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    let terminal = super::stderr_is_terminal();
    let mut chunks = 0usize;
    let (rows, cols) = io::forward_npy(
        &plan,
        &args.input,
        &args.output,
        args.batch_size,
        |done, total| {
            chunks += 1;
            let long = started.elapsed() > Duration::from_secs(1) || chunks > 64;
            if terminal && long && bar.is_hidden() {
                bar.set_length(total as u64);
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
                {
                    bar.set_style(style);
                }
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if !args.quiet {
        eprintln!(
            "wrote {} ({rows} x {cols}) in {:.3} s on {}",
            args.output.display(),
            started.elapsed().as_secs_f64(),
            device.name()
        );
    }
    Ok(())
}
