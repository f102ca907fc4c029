//! `pdns-sensor config check [COMMAND [FLAG...]]`: is the configuration
//! valid, and what would each command run with?
//!
//! The file was already checked when the command line was parsed (an
//! invalid one never gets here: its errors, with their lines, were printed
//! and the exit status is 2). This prints, for every command or the one
//! named, each option with its effective value and where the value comes
//! from. The command and the flags after it are parsed exactly as that
//! command would parse them (only its positional arguments are optional
//! here), so `config check serve --listen 0.0.0.0:8081` shows what
//! `serve --listen 0.0.0.0:8081` would run with. The output is TOML: a
//! valid configuration file that pins every value.

use std::ffi::OsString;
use std::fmt::Write as _;

use anyhow::Result;
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command};

use super::layer::{self, CommandPath, Dropped};
use super::{CONFIG_ENV, Config, DEFAULT_PATH, FileOrigin};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this command, and the flags after it parsed as that command
    /// would parse them (e.g. `serve --listen 0.0.0.0:8081`).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

pub fn run(args: &CheckArgs, config: &Config) -> Result<()> {
    match render(args, config) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        // The flags after COMMAND are wrong: say it as that command would.
        Err(e) => e.exit(),
    }
}

/// The report `config check` prints.
fn render(args: &CheckArgs, config: &Config) -> Result<String, clap::Error> {
    let mut out = String::new();
    match &config.file {
        Some(f) => {
            let from = match f.origin {
                FileOrigin::Flag => "--config",
                FileOrigin::Env => CONFIG_ENV,
                FileOrigin::DefaultPath => "the default path",
            };
            let _ = writeln!(
                out,
                "# configuration file {} (from {from}): valid",
                f.path.display()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "# no configuration file ({DEFAULT_PATH} does not exist; \
                 --config FILE or {CONFIG_ENV} names one)"
            );
        }
    }
    let invocations: Vec<Vec<OsString>> = if args.command.is_empty() {
        let root = super::super::command();
        layer::commands(&root, &mut Vec::new())
            .into_iter()
            .filter(|(path, cmd)| {
                !path.is_empty() && !cmd.has_subcommands() && layer::options(cmd).next().is_some()
            })
            .map(|(path, _)| path.into_iter().map(OsString::from).collect())
            .collect()
    } else {
        vec![args.command.clone()]
    };
    for tail in invocations {
        let argv: Vec<OsString> = std::iter::once(OsString::from("pdns-sensor"))
            .chain(tail)
            .collect();
        let (cmd, matches, dropped) = config.matches(&argv, relax)?;
        // Down to the command that runs.
        let (mut c, mut m, mut path) = (&cmd, &matches, CommandPath::new());
        while let Some((name, sub)) = m.subcommand() {
            let Some(sub_cmd) = c.find_subcommand(name) else {
                break;
            };
            path.push(name.to_string());
            (c, m) = (sub_cmd, sub);
        }
        out.push('\n');
        table(&mut out, config, &path, c, m, &dropped);
    }
    Ok(out)
}

/// No positional argument or subcommand is required: only options matter.
fn relax(cmd: Command) -> Command {
    cmd.mut_args(|a| a.required(false))
        .subcommand_required(false)
        .arg_required_else_help(false)
        .mut_subcommands(relax)
}

/// One command's table: `key = value  # source`, aligned.
fn table(
    out: &mut String,
    config: &Config,
    path: &[String],
    cmd: &Command,
    m: &ArgMatches,
    dropped: &Dropped,
) {
    let mut rows: Vec<(String, String)> = Vec::new();
    for arg in layer::options(cmd) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().unwrap_or(id);
        let values: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let from_file = config
            .settings
            .get(path, id)
            .filter(|_| !dropped.contains(&(path.to_vec(), id.to_string())));
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_string(),
            Some(ValueSource::EnvVariable) => format!(
                "env {}",
                arg.get_env()
                    .map(|e| e.to_string_lossy())
                    .unwrap_or_default()
            ),
            Some(ValueSource::DefaultValue) => match from_file {
                Some(f) => format!("file, [{}] line {}", f.table, f.line),
                None => "default".to_string(),
            },
            _ => "not set".to_string(),
        };
        let left = if values.is_empty() && m.value_source(id).is_none() {
            format!("# {key}")
        } else {
            format!("{key} = {}", toml_value(arg, &values))
        };
        rows.push((left, source));
    }
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let _ = writeln!(out, "[{}]", path.join("."));
    for (left, source) in rows {
        let _ = writeln!(out, "{left:width$}  # {source}");
    }
}

/// Values as TOML: booleans and whole numbers bare, the rest as strings,
/// arrays for repeatable options.
fn toml_value(arg: &Arg, values: &[String]) -> String {
    let one = |v: &String| {
        let bare = (layer::is_switch(arg) && (v == "true" || v == "false"))
            || (layer::is_integer(arg)
                && v.parse::<i128>().is_ok()
                // A leading zero is no TOML integer (a file mode: "0660").
                && (v == "0" || !v.trim_start_matches('-').starts_with('0')));
        if bare {
            v.clone()
        } else {
            // A JSON string is a TOML basic string (same escapes).
            serde_json::to_string(v).unwrap_or_default()
        }
    };
    if layer::is_repeatable(arg) {
        format!(
            "[{}]",
            values.iter().map(one).collect::<Vec<_>>().join(", ")
        )
    } else {
        values.first().map(one).unwrap_or_default()
    }
}
