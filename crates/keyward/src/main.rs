//! The `keyward` binary: parses the command line and hands over to `commands`.

mod cli;
mod commands;
mod config;
mod error;
mod output;
#[cfg(test)]
mod reference;

use std::process::ExitCode;

/// glibc's allocator serialises on its arena locks under load; mimalloc does not
/// (measured with scripts/bench-http.sh, documentation/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
