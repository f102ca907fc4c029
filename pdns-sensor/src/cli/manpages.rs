//! `pdns-sensor manpages --out DIR`: one manual page for the program and
//! one per command (`pdns-sensor.1`, `pdns-sensor-run.1`, ...), rendered by
//! clap_mangen from the clap definition, so the pages say what the binary
//! accepts. Each page ends with a SEE ALSO section naming the others. The
//! command is hidden from the help: it exists for packaging (the Debian
//! package installs the pages it generates).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes the pages; prints each file written.
pub fn run(args: &ManpagesArgs) -> Result<()> {
    for page in write_pages(&args.out)? {
        println!("{}", page.display());
    }
    Ok(())
}

/// Writes `pdns-sensor.1` and a page per visible command into `dir`;
/// returns the files written.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut root = super::command().disable_help_subcommand(true);
    root.build();
    let mut pages = vec![root.clone()];
    pages.extend(root.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    let names: Vec<String> = pages.iter().map(page_name).collect();
    let mut written = Vec::new();
    for (cmd, name) in pages.into_iter().zip(&names) {
        let man = Man::new(cmd).manual("pdns-sensor manual");
        let mut text = Vec::new();
        man.render(&mut text)
            .with_context(|| format!("rendering the page {name}"))?;
        see_also(&names, name).to_writer(&mut text)?;
        let path = dir.join(man.get_filename());
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `pdns-sensor` or `pdns-sensor-run`: what clap_mangen names the file.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// The SEE ALSO section of page `this`: every other page.
fn see_also(names: &[String], this: &str) -> Roff {
    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]);
    let others: Vec<&String> = names.iter().filter(|n| *n != this).collect();
    for (i, name) in others.iter().enumerate() {
        let sep = if i + 1 < others.len() { "(1), " } else { "(1)" };
        roff.text([bold(name.as_str()), roman(sep)]);
    }
    roff
}
