//! `summit`: the live explorer over a Summit run output.
//!
//! ```sh
//! cargo run --release --example fashion_mnist            # writes out/fashion-mnist
//! cargo run --release -p summit-cli -- serve out/fashion-mnist
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use rand::Rng;
use summit_cli::{CliError, Explorer, ModelSource, Served, router};

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
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve {
            out,
            host,
            port,
            onnx,
        } => {
            let mut sources = vec![ModelSource::Auto; out.len()];
            for spec in &onnx {
                let (n, file) = match spec.split_once('=') {
                    Some((n, f)) if n.parse::<usize>().is_ok() => (n.parse().unwrap_or(0), f),
                    _ => (0, spec.as_str()),
                };
                let slot = sources.get_mut(n).ok_or_else(|| {
                    CliError::Usage(format!(
                        "--onnx {spec}: there is no output {n} ({} output{} given)",
                        out.len(),
                        if out.len() == 1 { "" } else { "s" }
                    ))
                })?;
                *slot = ModelSource::Onnx(PathBuf::from(file));
            }
            let mut explorers = Vec::with_capacity(out.len());
            for (dir, source) in out.iter().zip(&sources) {
                explorers.push(Explorer::open(dir, source)?);
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
    }
}
