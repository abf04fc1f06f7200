//! `cargo xtask completions <shell>`: a shell completion script for the CLI it is given.

use anyhow::Result;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    pub shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// Needs no stack description: works outside a complete checkout too.
    pub fn run(&self, mut cli: clap::Command) -> Result<()> {
        clap_complete::generate(self.shell, &mut cli, "cargo-xtask", &mut std::io::stdout());
        Ok(())
    }
}
