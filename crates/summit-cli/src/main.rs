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
use summit_cli::{CliError, Explorer, ModelSource, router};

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
        /// The run output (a directory written by a Summit run).
        out: PathBuf,
        /// The address to bind. Anything but loopback requires an access token, which is
        /// printed.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The output's model as an ONNX file (default: found from the manifest among the
        /// embedded models).
        #[arg(long)]
        onnx: Option<PathBuf>,
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
            let source = onnx.map_or(ModelSource::Auto, ModelSource::Onnx);
            let explorer = Explorer::open(&out, &source)?;
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
                match &token {
                    Some(t) => println!("serving {} at http://{bound}/?token={t}", out.display()),
                    None => println!("serving {} at http://{bound}/", out.display()),
                }
                let app = router(Arc::new(explorer), token);
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
