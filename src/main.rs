//! The `mailpulse` binary: parses the command line, builds the runtime and
//! hands the subcommand to [`mailpulse::cmd`]. Exit codes: 0 success, 1 error
//! (invalid configuration, cannot start), 2 a probe of `mailpulse probe` failed.

use std::process::ExitCode;

use clap::Parser;
use mailpulse::cmd::{self, Cli};
use mailpulse::service::logging;

/// How long probe connections still open in the background may delay exit.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

fn main() -> ExitCode {
    mailpulse::service::trim::limit_allocator_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mailpulse")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailpulse: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(cmd::run(cli.command));
    runtime.shutdown_timeout(EXIT_GRACE);
    match result {
        Ok(code) => code,
        Err(e) => {
            let text = format!("mailpulse: error: {e:#}\n");
            eprint!("{}", logging::stderr_text(&tracing::Level::ERROR, &text));
            ExitCode::from(1)
        }
    }
}
