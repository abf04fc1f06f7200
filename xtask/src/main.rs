//! `cargo xtask`: drydock's typed operations CLI. See `cargo xtask --help`, DESIGN.md and `lib.rs`.

use std::process::ExitCode;
use std::time::Instant;

use xtask::cli;
use xtask::term::Style;

fn main() -> ExitCode {
    let cli = cli::parse();
    let Some(command) = cli.command else {
        // No command: the grouped list, like `--help`.
        let _ = cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    let started = Instant::now();
    let quiet = cli.global.quiet;
    match cli::run(&cli.global, command) {
        Ok(()) => {
            if !quiet && started.elapsed().as_secs() >= 10 {
                eprintln!(
                    "{}",
                    Style::stderr().dim(&format!("done in {:.0} s", started.elapsed().as_secs_f64()))
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{} {err:#}", Style::stderr().red("error:"));
            ExitCode::FAILURE
        }
    }
}
