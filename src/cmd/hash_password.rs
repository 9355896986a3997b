//! `mailpulse hash-password`: one line from standard input to a bcrypt hash,
//! for `[agent.web] basic_auth_users`.

use std::process::ExitCode;

use crate::config::{MAX_BCRYPT_COST, MIN_BCRYPT_COST};

/// `mailpulse hash-password`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bcrypt cost (4-14, the range `[agent.web]` accepts); each step
    /// doubles the work of every check.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(
        i64::from(MIN_BCRYPT_COST)..=i64::from(MAX_BCRYPT_COST)
    ))]
    pub cost: u32,
}

/// Reads one line from stdin (without its newline) and prints its hash.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    super::out::line(bcrypt::hash(password, args.cost)?);
    Ok(ExitCode::SUCCESS)
}
