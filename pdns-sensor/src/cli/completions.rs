//! `pdns-sensor completions --shell SHELL`: the shell completion script,
//! generated from the same clap definition that parses the command line,
//! so it can never offer an option the binary does not have. The Debian
//! package ships the three scripts, generated from the binary it packs.

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use clap_complete::Shell as Generator;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to complete for.
    #[arg(long, value_enum)]
    pub shell: Shell,
}

/// The shells whose scripts are packaged and tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> Generator {
        match self {
            Shell::Bash => Generator::Bash,
            Shell::Zsh => Generator::Zsh,
            Shell::Fish => Generator::Fish,
        }
    }
}

/// Writes the completion script for `args.shell` to stdout.
pub fn run(args: &CompletionsArgs) -> Result<()> {
    let script = script(args.shell);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script to stdout")
}

/// The program name the scripts complete.
const BIN: &str = "pdns-sensor";

/// The completion script for `shell`.
pub fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = super::command();
    let mut script = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, BIN, &mut script);
    if shell == Shell::Bash {
        script = fix_bash_states(&script);
    }
    script
}

/// clap_complete's bash script tracks the command typed so far as a state
/// name: its dispatch loop spells `pdns-sensor run` as
/// `pdns__sensor__subcmd__run`, but the `case` arms that complete each
/// command spell the hyphen of the program name like a command separator
/// (`pdns__subcmd__sensor__subcmd__run`), so no arm ever matches and
/// nothing after a command name completes (a known bug of clap_complete
/// 4.6 with hyphenated program names). The arms are respelled the way the
/// loop spells them; once clap_complete spells them alike this changes
/// nothing. The test `completions.rs` completes options of a command.
fn fix_bash_states(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let wrong = BIN.replace('-', "__subcmd__");
    let right = BIN.replace('-', "__");
    text.replace(&wrong, &right).into_bytes()
}
