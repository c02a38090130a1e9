//! `vecprop infer`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vecprop::{io, DType, Error, PlanOptions, Result, Strategy};

/// Arguments of `vecprop infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a safetensors state_dict or an ONNX file.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The input batch: a 2-D .npy file (float16, float32 or float64), one example per row;
    /// `-` reads it from stdin. Pipes are read front to back.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Where to write the outputs (.npy, float32): written to a private temporary file and
    /// renamed into place when complete. `-` writes to stdout; a FIFO or a device is written
    /// directly.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Which of the model's outputs to write (see `vecprop summary`): by default the last
    /// output of float values. An output of class labels (an ONNX classifier's `label`) is
    /// written as int64.
    #[arg(long, value_name = "NAME")]
    output_name: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Rows read, computed and written at a time. Default: 4096 on the CPU; on a GPU the
    /// largest batch that fits half of its free memory (see --verbose).
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// One activation per layer, overriding the model's metadata (e.g. sigmoid,relu,linear).
    #[arg(long, value_name = "LIST")]
    activations: Option<String>,
    /// Compute precision (f32, f16, bf16); the model's own by default.
    #[arg(long)]
    dtype: Option<String>,
    /// How GPU layers are computed: auto, cublas, cublaslt, fused, cublaslt_fused, narrow,
    /// narrow_mma, splitk or network.
    #[arg(long, default_value = "auto")]
    kernel: String,
    /// On a GPU, capture each batch size's whole pass as a CUDA Graph and replay it.
    #[arg(long)]
    cuda_graphs: bool,
    /// On a GPU, run f32 GEMMs on TF32 tensor cores: much faster, about 1e-3 relative error
    /// (strict f32 is the default).
    #[arg(long)]
    tf32: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    /// Also print the batch size and why, the kernels, the GPU memory and graph status.
    #[arg(long, short)]
    verbose: bool,
}

/// Streams the input through the model into the output file.
pub fn run(args: Args) -> Result<()> {
    let input = if args.input.as_os_str() == "-" {
        PathBuf::from("/dev/stdin")
    } else {
        args.input.clone()
    };
    io::refuse_same_file(&args.output, &[("input", &input), ("model", &args.model)])?;
    check_output_name(&args.output)?;
    let activations = super::parse_activations(args.activations.as_deref())?;
    let dtype = args.dtype.as_deref().map(str::parse::<DType>).transpose()?;
    let strategy: Strategy = args.kernel.parse()?;
    let device = super::parse_device(&args.device)?;
    let model = io::load_model_outputs(
        &args.model,
        activations.as_deref(),
        args.output_name.as_deref(),
    )?;
    let network = model.network.clone();
    let tuning = super::tuning_cache(&device, &args.model);
    let asked = match args.batch_size {
        Some(0) => {
            return Err(Error::InvalidArgument(
                "--batch-size must be at least 1".into(),
            ))
        }
        Some(rows) => rows,
        None => {
            let auto = vecprop::device::memory::auto_batch_size(&network, &device, dtype)?;
            if args.verbose {
                eprintln!("{}", auto.reason);
            }
            auto.rows
        }
    };
    // Never more rows per pass than the input has, and never more than memory holds.
    let batch = batch_rows(&input, asked)?;
    super::memory::check_batch_fits(&network, batch, asked)?;
    let options = PlanOptions {
        max_batch: batch,
        dtype,
        strategy,
        cuda_graphs: args.cuda_graphs,
        allow_tf32: args.tf32,
        tuning: tuning.clone(),
    };
    let plan = network.compile(&device, options)?;
    if args.verbose {
        for line in plan.kernel_choices() {
            eprintln!("kernel: {line}");
        }
        if let Some(memory) = plan.memory() {
            eprintln!("{memory}");
        }
    }
    if let Some(tuning) = &tuning {
        tuning.save()?;
    }

    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    let terminal = super::stderr_is_terminal();
    let mut chunks = 0usize;
    let progress = |done: usize, total: usize| {
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
    };
    let shape = match &model.output().kind {
        io::OutputKind::Labels { head, column } => {
            let rows = io::forward_npy_labels(
                &plan,
                head,
                *column,
                &input,
                &args.output,
                batch,
                progress,
            )?;
            if *column {
                format!("{rows} x 1 int64")
            } else {
                format!("{rows} int64")
            }
        }
        _ => {
            let (rows, cols) = io::forward_npy(&plan, &input, &args.output, batch, progress)?;
            format!("{rows} x {cols}")
        }
    };
    bar.finish_and_clear();
    if args.verbose {
        for line in plan.graph_status() {
            eprintln!("{line}");
        }
    }
    if !args.quiet {
        let output = if args.output.as_os_str() == "-" {
            "<stdout>".into()
        } else {
            args.output.display().to_string()
        };
        eprintln!(
            "wrote {output} ({shape}) in {:.3} s on {}",
            started.elapsed().as_secs_f64(),
            device.name()
        );
    }
    Ok(())
}

/// Rows per chunk: `--batch-size`, but no more than a regular input file holds, so buffers
/// are sized by the rows that exist. A pipe's rows are not known before reading it.
fn batch_rows(input: &Path, batch_size: usize) -> Result<usize> {
    if batch_size == 0 || !std::fs::metadata(input).is_ok_and(|m| m.is_file()) {
        return Ok(batch_size);
    }
    let rows = io::NpyReader::open(input)?.rows();
    Ok(batch_size.min(rows.max(1)))
}

/// `infer` writes `.npy`: a file it creates must say so in its name, so that `--output
/// y.csv` is refused rather than filled with .npy bytes. Streams (`-`, a FIFO, `/dev/...`)
/// take whatever they are given.
fn check_output_name(output: &Path) -> Result<()> {
    let is_npy = output
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("npy"));
    if is_npy || vecprop::fs::is_stream_output(output) {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "--output {}: infer writes .npy files, so the name must end in .npy (or be - for stdout)",
        output.display()
    )))
}
