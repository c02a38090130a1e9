//! The commands. Each parses its arguments into library types and prints what it returns;
//! any error becomes exactly one line, `error: <message>`, on stderr and a non-zero exit.

mod bench;
mod demo;
mod devices;
mod infer;
mod memory;
mod summary;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use vecprop::{io, Activation, Device, Error, Result, TuningCache};

/// Batched forward propagation of dense neural-network layers, on the CPU or an NVIDIA GPU.
#[derive(Debug, Parser)]
#[command(name = "vecprop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for computing, reading and converting (default: every core).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a safetensors or ONNX model over a .npy batch and write the outputs as .npy.
    Infer(infer::Args),
    /// Run the worked example and time a 784-512-256-10 network (needs no files).
    Demo(demo::Args),
    /// Time dense layers of given shapes and dtypes.
    Bench(bench::Args),
    /// Print a model's layers, output shapes and parameter counts.
    Summary(summary::Args),
    /// List the devices this build can use.
    Devices,
}

/// Runs the command line and turns any error into one line on stderr.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = one_line(&info.to_string());
        eprintln!("error: internal error (a bug in vecprop): {message}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let result = set_threads(cli.threads)
        .and_then(|()| io::remove_temporary_files_on_signals())
        .and_then(|()| run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Infer(args) => infer::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Summary(args) => summary::run(args),
        Command::Devices => devices::run(),
    }
}

/// `--threads N`: the size of the thread pool every CPU path draws on (rayon's global pool).
fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(threads) = threads else {
        return Ok(());
    };
    if threads == 0 {
        return Err(Error::InvalidArgument(
            "--threads must be at least 1".into(),
        ));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::InvalidArgument(format!("--threads {threads}: {e}")))
}

/// Help and version go to stdout; a usage error becomes one `error:` line.
fn usage_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // clap's first paragraph is the message; usage and tips follow a blank line.
            let rendered = err.to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .collect();
            let message = one_line(&paragraph.join(" "));
            let message = message.trim_start_matches("error:").trim();
            eprintln!("error: {message} (see `vecprop --help`)");
            ExitCode::from(2)
        }
    }
}

/// Collapses a message onto one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes to stdout; a closed pipe is an error, not a panic.
pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("<stdout>", e))
}

/// Whether progress and notes may be drawn on stderr.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// On a GPU, the tuning file beside `model` (`<model>.tuning.json`), read now; `None` on
/// the CPU, which has nothing to tune.
pub(crate) fn tuning_cache(device: &Device, model: &Path) -> Option<Arc<TuningCache>> {
    device
        .is_cuda()
        .then(|| Arc::new(TuningCache::with_file(TuningCache::path_beside(model))))
}

/// `cpu`, `cuda` or `cuda:N`.
pub(crate) fn parse_device(spec: &str) -> Result<Device> {
    spec.parse()
}

/// An optional `--activations a,b,c` list.
pub(crate) fn parse_activations(list: Option<&str>) -> Result<Option<Vec<Activation>>> {
    list.map(vecprop::activation::parse_list).transpose()
}

/// A comma-separated list of values parsed with `FromStr`.
pub(crate) fn parse_comma_list<T>(list: &str) -> Result<Vec<T>>
where
    T: std::str::FromStr<Err = Error>,
{
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}
