//! The configuration file, the `PDNS_*` environment, and `config check`.
//!
//! Every option of every command can come from four places, the first that
//! has it winning: the command line, its environment variable
//! (`--aggregate-entries` ← `PDNS_AGGREGATE_ENTRIES`), the configuration
//! file, the built-in default. The file is TOML with one table per command
//! (`[serve]`, `[import-zeek]`) whose keys are the long flag names, and a
//! `[common]` table for options several commands share (`db`).
//!
//! There is one definition of the options, the clap one: the file is
//! checked against it and applied to it (see `layer`), so a flag added to
//! a command is a key of its table and has its variable the moment it
//! exists. Positional arguments (the files of an `ingest`) are not
//! settable in the file: they are what one run works on, not how the
//! installation is set up.
//!
//! Which file: `--config FILE`, else `$PDNS_CONFIG`, else
//! `/etc/pdns-sensor/pdns-sensor.toml` if it exists. The default path is
//! read because every command on a host must agree with the daemon about
//! the database: with `db` in the packaged file, `pdns-sensor dump` or
//! `serve` typed by an operator open the database `run` writes, without
//! repeating `--db`. `--config /dev/null` runs with no file (an empty file
//! is a valid one).

pub mod check;
mod file;
mod layer;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{ArgMatches, Args, Command, CommandFactory, FromArgMatches, Subcommand};

use super::Cli;
use layer::{Dropped, Settings};

pub(crate) use layer::environment;

/// The file read when neither `--config` nor `PDNS_CONFIG` names one, if
/// it exists.
pub(crate) const DEFAULT_PATH: &str = "/etc/pdns-sensor/pdns-sensor.toml";

/// The variable naming the configuration file.
pub(crate) const CONFIG_ENV: &str = "PDNS_CONFIG";

/// `pdns-sensor config ...`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration file and print what each command would
    /// run with: every option, its value, and where the value comes from
    /// (flag, environment, file, default).
    Check(check::CheckArgs),
}

/// A parsed command line, with the configuration it was parsed against.
pub struct Invocation {
    pub cli: Cli,
    pub config: Config,
}

/// The configuration file in force and what it sets.
pub struct Config {
    file: Option<ConfigFile>,
    settings: Settings,
}

/// Where the configuration file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOrigin {
    Flag,
    Env,
    DefaultPath,
}

#[derive(Debug)]
struct ConfigFile {
    path: PathBuf,
    origin: FileOrigin,
}

impl Config {
    /// The command with the environment and this file applied (file values
    /// in `dropped` left out).
    fn command(&self, dropped: &Dropped) -> Command {
        layer::file_defaults(super::command(), &self.settings, dropped)
    }

    /// Parses `argv` (program name first) against this configuration: the
    /// file's values yield to conflicting options given explicitly.
    fn matches(
        &self,
        argv: &[OsString],
        adjust: impl Fn(Command) -> Command,
    ) -> Result<(Command, ArgMatches, Dropped), clap::Error> {
        let mut dropped = Dropped::new();
        loop {
            let mut cmd = adjust(self.command(&dropped));
            let matches = cmd.try_get_matches_from_mut(argv)?;
            let more = layer::overridden(&cmd, &matches, &self.settings, &dropped);
            if more.is_empty() {
                return Ok((cmd, matches, dropped));
            }
            dropped.extend(more);
        }
    }
}

/// A configuration problem, at a line of the file when it has one.
#[derive(Debug)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub message: String,
}

/// Why the command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// A bad command line (or `--help`, `--version`): clap's own message.
    Usage(clap::Error),
    /// A bad configuration file: every problem, with its line.
    Config {
        path: PathBuf,
        origin: FileOrigin,
        errors: Vec<ConfigError>,
    },
}

impl ParseError {
    /// Prints the error (or the help asked for) and exits: 2 for a bad
    /// command line or configuration, 0 for `--help`.
    pub fn exit(self) -> ! {
        match self {
            ParseError::Usage(e) => e.exit(),
            config => {
                eprint!("{config}");
                std::process::exit(2)
            }
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Usage(e) => write!(f, "{e}"),
            ParseError::Config {
                path,
                origin,
                errors,
            } => {
                for e in errors {
                    match e.line {
                        Some(line) => writeln!(
                            f,
                            "pdns-sensor: error: {}:{line}: {}",
                            path.display(),
                            e.message
                        )?,
                        None => {
                            writeln!(f, "pdns-sensor: error: {}: {}", path.display(), e.message)?
                        }
                    }
                }
                let from = match origin {
                    FileOrigin::Flag => "--config".to_string(),
                    FileOrigin::Env => CONFIG_ENV.to_string(),
                    FileOrigin::DefaultPath => format!(
                        "the default path; --config FILE or {CONFIG_ENV} name another, \
                         --config /dev/null none"
                    ),
                };
                writeln!(
                    f,
                    "pdns-sensor: the configuration file came from {from}; \
                     `pdns-sensor config check` validates it"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses the command line (`argv`, program name first) with the
/// environment and the configuration file.
pub fn parse(argv: Vec<OsString>) -> Result<Invocation, ParseError> {
    let file = choose_file(&argv);
    let settings = match &file {
        None => Settings::default(),
        Some(f) => match load(&f.path) {
            Ok(settings) => settings,
            Err(errors) => {
                // --help and --version still work (without the file's
                // values), so a broken file does not hide the manual.
                if let Err(e) = super::command().try_get_matches_from(&argv)
                    && matches!(
                        e.kind(),
                        ErrorKind::DisplayHelp
                            | ErrorKind::DisplayVersion
                            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    )
                {
                    return Err(ParseError::Usage(e));
                }
                return Err(ParseError::Config {
                    path: f.path.clone(),
                    origin: f.origin,
                    errors,
                });
            }
        },
    };
    let config = Config { file, settings };
    let (_, matches, _) = config.matches(&argv, |c| c).map_err(ParseError::Usage)?;
    let cli = Cli::from_arg_matches(&matches).map_err(ParseError::Usage)?;
    Ok(Invocation { cli, config })
}

/// Reads a configuration file and checks it against the commands.
fn load(path: &Path) -> Result<Settings, Vec<ConfigError>> {
    let doc = file::read(path).map_err(|e| vec![e])?;
    layer::resolve(&Cli::command(), &doc)
}

/// The file named by `--config` (looked for before clap parses, since the
/// file shapes the parser; clap reads the flag again for `--help`), else by
/// `PDNS_CONFIG`, else the default path if it exists.
fn choose_file(argv: &[OsString]) -> Option<ConfigFile> {
    let mut args = argv.iter().skip(1);
    let mut flag = None;
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        } else if arg == "--config" {
            flag = args.next().cloned();
        } else if let Some(path) = arg.as_bytes().strip_prefix(b"--config=") {
            flag = Some(OsStr::from_bytes(path).to_os_string());
        }
    }
    if let Some(path) = flag {
        return Some(ConfigFile {
            path: path.into(),
            origin: FileOrigin::Flag,
        });
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Some(ConfigFile {
            path: path.into(),
            origin: FileOrigin::Env,
        });
    }
    let default = Path::new(DEFAULT_PATH);
    match default.try_exists() {
        Ok(false) => None,
        // Present, or unknowable (a directory we may not search): read it,
        // and let a failure say why.
        _ => Some(ConfigFile {
            path: default.to_path_buf(),
            origin: FileOrigin::DefaultPath,
        }),
    }
}
