//! `summit`: Summit's command line — run the pipeline, merge shards, compare classes and
//! models, and serve outputs as a live explorer.
//!
//! ```sh
//! summit run                               # the embedded default: writes out/fashion-mnist
//! summit run onnx model.onnx --data DIR    # your own model over your image folder
//! summit merge --out out/all out/shard-0 out/shard-1
//! summit compare classes out/fashion-mnist Shirt T-shirt/top
//! summit serve out/fashion-mnist           # the live explorer at http://127.0.0.1:8080/
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rand::Rng;
use summit_cli::{CliError, Explorer, ModelSource, Served, commands, router};

#[derive(Parser, Debug)]
#[command(
    name = "summit",
    version,
    about = "Summit: whole-dataset interpretability of CNN image classifiers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run Summit over a dataset and write its output directory: the embedded Fashion-MNIST
    /// default (`summit run`, with its options), an ONNX model (`summit run onnx`) or
    /// InceptionV1 weights (`summit run inception`).
    Run(Box<RunCommand>),
    /// Merge shard outputs (runs with `--shard i/n`) into one output.
    Merge(commands::merge::Args),
    /// Compare two classes of an output (`classes`) or several models over one dataset
    /// (`models`).
    #[command(subcommand)]
    Compare(CompareWhat),
    /// Serve a run output as a live explorer: its page, and on request any dataset image's
    /// predictions, attribution (any method, any class or one channel of a summary layer) and
    /// attribution graph.
    Serve {
        /// The run outputs (directories written by Summit runs), one model each, over one
        /// dataset: the page is the first's, every per-image answer comes for each model.
        #[arg(required = true, num_args = 1..)]
        out: Vec<PathBuf>,
        /// The address to bind. Anything but loopback requires an access token, which is
        /// printed.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// An output's model as an ONNX file, `FILE` for the first output or `N=FILE` for output
        /// N (from 0); may be repeated (default: found from the manifest among the embedded
        /// models).
        #[arg(long)]
        onnx: Vec<String>,
        /// An output's model as torchvision GoogLeNet's weights (`.pth`, as `summit run
        /// inception` read them), `FILE` or `N=FILE`; may be repeated.
        #[arg(long)]
        weights: Vec<String>,
        /// An output's model as Lucid InceptionV1's weights, `FILE` or `N=FILE`.
        #[arg(long)]
        lucid_weights: Vec<String>,
        /// An output's dataset, where it is now (the manifest's source moved): Fashion-MNIST's
        /// images IDX file or an image folder; `PATH` for the first output or `N=PATH` for
        /// output N; may be repeated.
        #[arg(long)]
        data: Vec<String>,
        /// Each model's answer cache (heatmaps, images), in MiB: least recently used answers
        /// go first.
        #[arg(long, default_value_t = 256)]
        cache_mb: usize,
    },
}

/// `summit run`: the embedded default's options, or a subcommand for another model.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct RunCommand {
    #[command(subcommand)]
    what: Option<RunWhat>,
    #[command(flatten)]
    fashion: commands::fashion::Args,
}

#[derive(Subcommand, Debug)]
enum RunWhat {
    /// The embedded Fashion-MNIST default (the same as `summit run` alone).
    Fashion(commands::fashion::Args),
    /// Your own model as an ONNX file, over an image folder or ImageNet's validation layout.
    Onnx(commands::onnx::Args),
    /// InceptionV1 (torchvision GoogLeNet or Lucid's) from its weights, over ImageNet-style data.
    Inception(commands::inception::Args),
}

#[derive(Subcommand, Debug)]
enum CompareWhat {
    /// Two classes of one output: their graphs side by side (written into the output).
    Classes(commands::compare_classes::Args),
    /// Several models over the embedded dataset, side by side.
    Models(commands::compare_models::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(r) => commands::exit_with(match r.what {
            None => commands::fashion::run(r.fashion),
            Some(RunWhat::Fashion(a)) => commands::fashion::run(a),
            Some(RunWhat::Onnx(a)) => commands::onnx::run(a),
            Some(RunWhat::Inception(a)) => commands::inception::run(a),
        }),
        Command::Merge(a) => commands::exit_with(commands::merge::run(a)),
        Command::Compare(CompareWhat::Classes(a)) => {
            commands::exit_with(commands::compare_classes::run(a))
        }
        Command::Compare(CompareWhat::Models(a)) => {
            commands::exit_with(commands::compare_models::run(a))
        }
        command => match serve(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `flag`'s values `[N=]PATH` as (output, path): N from 0, the first output without it.
fn per_output(
    flag: &str,
    specs: &[String],
    outputs: usize,
) -> Result<Vec<(usize, PathBuf)>, CliError> {
    specs
        .iter()
        .map(|spec| {
            let (n, path) = match spec.split_once('=') {
                Some((n, p)) if n.parse::<usize>().is_ok() => (n.parse().unwrap_or(0), p),
                _ => (0, spec.as_str()),
            };
            if n >= outputs {
                return Err(CliError::Usage(format!(
                    "{flag} {spec}: there is no output {n} ({outputs} output{} given)",
                    if outputs == 1 { "" } else { "s" }
                )));
            }
            Ok((n, PathBuf::from(path)))
        })
        .collect()
}

fn serve(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve {
            out,
            host,
            port,
            onnx,
            weights,
            lucid_weights,
            data,
            cache_mb,
        } => {
            let mut sources = vec![ModelSource::Auto; out.len()];
            for (n, file) in per_output("--onnx", &onnx, out.len())? {
                sources[n] = ModelSource::Onnx(file);
            }
            for (n, file) in per_output("--weights", &weights, out.len())? {
                sources[n] = ModelSource::GoogLeNet(file);
            }
            for (n, file) in per_output("--lucid-weights", &lucid_weights, out.len())? {
                sources[n] = ModelSource::Lucid(file);
            }
            let mut datasets: Vec<Option<PathBuf>> = vec![None; out.len()];
            for (n, path) in per_output("--data", &data, out.len())? {
                datasets[n] = Some(path);
            }
            let mut explorers = Vec::with_capacity(out.len());
            for ((dir, source), data) in out.iter().zip(&sources).zip(&datasets) {
                explorers.push(
                    Explorer::open_with(dir, source, data.as_deref())?
                        .with_cache_budget(cache_mb << 20),
                );
            }
            let served = Served::new(explorers)?;
            let token = (!host.is_loopback()).then(|| {
                let mut rng = rand::rng();
                (0..32)
                    .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                    .collect::<String>()
            });
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| CliError::Serve(format!("starting the runtime: {e}")))?;
            runtime.block_on(async move {
                let addr = SocketAddr::new(host, port);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| CliError::Serve(format!("binding {addr}: {e}")))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| CliError::Serve(e.to_string()))?;
                let what: Vec<String> = out.iter().map(|d| d.display().to_string()).collect();
                let what = what.join(", ");
                match &token {
                    Some(t) => println!("serving {what} at http://{bound}/?token={t}"),
                    None => println!("serving {what} at http://{bound}/"),
                }
                let app = router(Arc::new(served), token);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await
                    .map_err(|e| CliError::Serve(e.to_string()))
            })
        }
        _ => Err(CliError::Usage("not the serve command".into())),
    }
}
