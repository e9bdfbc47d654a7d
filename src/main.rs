//! The `driftlock` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = driftlock::cli::Cli::parse();
    match driftlock::app::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("driftlock: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
