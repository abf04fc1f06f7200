//! `cargo xtask lint`: the security gates (`lint/`), each a named step with its findings count, then
//! `N passed, N failed, N skipped`.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;

use crate::context::Ctx;
use crate::lint::{Gate, Outcome, first_line, gate_run};
use crate::provision::{self, Tool};
use crate::term::Style;

#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Run only these gates (repeatable; default: all).
    #[arg(long, value_enum, value_name = "GATE")]
    pub only: Vec<Gate>,
}

impl LintArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self)
    }
}

fn run(ctx: &Ctx, args: &LintArgs) -> Result<()> {
    provision::ensure_tools(ctx, &[Tool::Lint])?;
    let all = [
        Gate::Hadolint,
        Gate::ComposeConfig,
        Gate::ComposeLint,
        Gate::Shellcheck,
        Gate::Promtool,
        Gate::Actionlint,
        Gate::Yamllint,
        Gate::ImageSecrets,
    ];
    let gates: Vec<Gate> = all
        .into_iter()
        .filter(|g| args.only.is_empty() || args.only.contains(g))
        .collect();
    let mut results: Vec<(Gate, Outcome, f64)> = Vec::new();
    for (i, gate) in gates.iter().enumerate() {
        ctx.say(&format!("lint {}/{}: {}", i + 1, gates.len(), gate.name()));
        let t = Instant::now();
        let outcome = match gate_run(ctx, *gate) {
            Ok(o) => o,
            Err(e) => Outcome::new(false, 0, format!("{e:#}")),
        };
        // In CI every gate has something to check: a skip there means a missing input, not a pass.
        let outcome = if outcome.skipped && ctx.vars.ci {
            Outcome::new(false, 0, format!("nothing to check under CI=true: {}", outcome.note))
        } else {
            outcome
        };
        if !outcome.passed {
            eprintln!("{}", Style::stderr().red(&format!("{}: {}", gate.name(), outcome.note)));
        }
        results.push((*gate, outcome, t.elapsed().as_secs_f64()));
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let out = Style::stdout();
    println!("\nlint summary:");
    for (gate, o, secs) in &results {
        let mark = if o.skipped {
            out.yellow("skipped")
        } else if o.passed {
            out.green("passed ")
        } else {
            out.red("FAILED ")
        };
        println!(
            "  {mark} {:<15} {:>3} finding(s) {secs:>6.1} s  {}",
            gate.name(),
            o.findings,
            if o.skipped {
                format!("skipped: {}", first_line(&o.note))
            } else {
                first_line(&o.note).to_string()
            }
        );
    }
    let failed = results.iter().filter(|(_, o, _)| !o.passed).count();
    let skipped = results.iter().filter(|(_, o, _)| o.skipped).count();
    println!(
        "{} passed, {failed} failed, {skipped} skipped",
        results.len() - failed - skipped
    );
    if failed > 0 {
        bail!("lint: {failed} gate(s) failed (details above)");
    }
    Ok(())
}
