//! `vecprop summary`.

use std::path::PathBuf;

use vecprop::{io, PlanOptions, Result};

/// Arguments of `vecprop summary`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model: a safetensors state_dict or an ONNX file.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// One activation per layer, overriding the model's metadata (e.g. sigmoid,relu,linear).
    #[arg(long, value_name = "LIST")]
    activations: Option<String>,
    /// Also compile for a device (cpu, cuda, cuda:N) and show the kernel of each layer.
    #[arg(long)]
    device: Option<String>,
    /// The batch size to compile for, with --device.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    batch_size: usize,
}

/// Prints the model's summary table.
pub fn run(args: Args) -> Result<()> {
    let activations = super::parse_activations(args.activations.as_deref())?;
    let model = io::load_model_outputs(&args.model, activations.as_deref(), None)?;
    let network = &model.network;
    let text = match args.device {
        Some(spec) => {
            let device = super::parse_device(&spec)?;
            let tuning = super::tuning_cache(&device, &args.model);
            let options = PlanOptions {
                tuning: tuning.clone(),
                ..PlanOptions::with_max_batch(args.batch_size)
            };
            let plan = network.compile(&device, options)?;
            if let Some(tuning) = &tuning {
                tuning.save()?;
            }
            let mut text = network.summary_with_plan(&plan);
            if let Some(memory) = plan.memory() {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&memory.to_string());
            }
            text
        }
        None => network.summary(),
    };
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&model.outputs_line());
    super::print(&text)
}
