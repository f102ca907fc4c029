//! The environment and the file as layers of the clap command.
//!
//! clap already orders three sources: a flag beats an environment variable,
//! which beats a default value. The file slots in between the environment
//! and the built-in defaults by *becoming* the defaults: each value the file
//! gives an option replaces that option's default in the clap command
//! before the command line is parsed. So the precedence, the parsing and
//! the validation are clap's own, the same for a value from the file as
//! from the command line, and an option someone adds to a command is
//! accepted by the file (and gets its `PDNS_*` variable) without this
//! module changing.
//!
//! What clap does not do for defaults is done here:
//!
//! - **checking the file against the commands**: unknown keys, keys of
//!   another command, values of the wrong shape, conflicting options set
//!   together, each an error naming its table and line ([`resolve`]);
//! - **validating every value now**, with the option's own value parser,
//!   for every table and not only the command being run (a broken value in
//!   `[run]` is reported by `pdns-sensor dump` too, and by `config check`);
//! - **yielding to the command line**: clap ignores defaults when it checks
//!   conflicts, so a file's `name` would silently win over a `--rdata` given
//!   on the command line; [`overridden`] finds such file values after a
//!   parse, and the caller parses again without them.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

use clap::builder::BoolishValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

use super::ConfigError;
use super::file::{Entry, Table, Value};

/// The table whose keys apply to every command that has the option.
pub(super) const COMMON: &str = "common";

/// The option naming the configuration file itself: not settable in it.
pub(super) const CONFIG_ARG: &str = "config";

/// A command, by its path of subcommand names (`["serve"]`).
pub(super) type CommandPath = Vec<String>;

/// What the file gives one option of one command.
#[derive(Clone, Debug)]
pub(super) struct FileValue {
    /// The option's long name (its key in the file).
    pub(super) key: String,
    /// As clap parses them (one for a single-valued option).
    pub(super) values: Vec<String>,
    /// The table it was read from: `common`, `serve`, ...
    pub(super) table: String,
    pub(super) line: usize,
}

/// Everything the file sets: per command, per option id.
#[derive(Debug, Default)]
pub(super) struct Settings {
    by_command: BTreeMap<CommandPath, BTreeMap<String, FileValue>>,
}

impl Settings {
    /// The file's value of option `id` of a command, if any.
    pub(super) fn get(&self, path: &[String], id: &str) -> Option<&FileValue> {
        self.by_command.get(path).and_then(|m| m.get(id))
    }
}

/// File values set aside because the command line named a conflicting
/// option: `(command, option id)`.
pub(super) type Dropped = BTreeSet<(CommandPath, String)>;

/// The options of a command a file may set: those with a long name, except
/// help, version and `--config`.
pub(super) fn options(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| is_option(a))
}

fn is_option(a: &Arg) -> bool {
    a.get_long().is_some()
        && !a.is_positional()
        && a.get_id() != CONFIG_ARG
        && !matches!(
            a.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

fn option<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    options(cmd).find(|a| a.get_long() == Some(key))
}

/// Every command below `cmd` (itself included) with its path.
pub(super) fn commands<'c>(
    cmd: &'c Command,
    path: &mut CommandPath,
) -> Vec<(CommandPath, &'c Command)> {
    let mut out = vec![(path.clone(), cmd)];
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_string());
        out.extend(commands(sub, path));
        path.pop();
    }
    out
}

/// The environment variable of an option: `--aggregate-entries` is read
/// from `PDNS_AGGREGATE_ENTRIES`.
pub(super) fn env_name(long: &str) -> String {
    format!("PDNS_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Gives every option of every command its `PDNS_*` variable (unless its
/// definition names one), and lets switches read the usual spellings of a
/// boolean from it (`PDNS_QUIET=1`, `yes`, `on`, `true`).
pub(crate) fn environment(cmd: Command) -> Command {
    // `mut_args` and `mut_subcommands` keep the order of --help.
    cmd.mut_args(|a| {
        if !is_option(&a) || a.get_env().is_some() {
            return a;
        }
        let name = env_name(a.get_long().unwrap_or_default());
        let switch = is_switch(&a);
        let a = a.env(name);
        if switch {
            a.value_parser(BoolishValueParser::new())
        } else {
            a
        }
    })
    .mut_subcommands(environment)
}

/// Makes the file's values the defaults of their options, except those in
/// `dropped`.
pub(super) fn file_defaults(cmd: Command, settings: &Settings, dropped: &Dropped) -> Command {
    fn walk(
        cmd: Command,
        settings: &Settings,
        dropped: &Dropped,
        path: &mut CommandPath,
    ) -> Command {
        let here = settings.by_command.get(path.as_slice());
        let cmd = cmd.mut_args(|a| {
            let id = a.get_id().to_string();
            match here.and_then(|h| h.get(&id)) {
                Some(v) if !dropped.contains(&(path.clone(), id)) => {
                    a.default_values(v.values.clone())
                }
                _ => a,
            }
        });
        cmd.mut_subcommands(|s| {
            path.push(s.get_name().to_string());
            let s = walk(s, settings, dropped, path);
            path.pop();
            s
        })
    }
    walk(cmd, settings, dropped, &mut Vec::new())
}

/// File values of the parsed command that conflict with an option given on
/// the command line or in the environment (not yet in `dropped`).
pub(super) fn overridden(
    root: &Command,
    matches: &ArgMatches,
    settings: &Settings,
    dropped: &Dropped,
) -> Vec<(CommandPath, String)> {
    let mut out = Vec::new();
    let (mut cmd, mut m, mut path) = (root, matches, Vec::new());
    loop {
        if let Some(values) = settings.by_command.get(&path) {
            for id in values.keys() {
                let key = (path.clone(), id.clone());
                if dropped.contains(&key) || m.value_source(id) != Some(ValueSource::DefaultValue) {
                    continue;
                }
                let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id) else {
                    continue;
                };
                let explicit = cmd.get_arguments().any(|b| {
                    b.get_id() != CONFIG_ARG
                        && matches!(
                            m.value_source(b.get_id().as_str()),
                            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                        )
                        && conflicting(cmd, arg, b)
                });
                if explicit {
                    out.push(key);
                }
            }
        }
        let Some((name, sub)) = m.subcommand() else {
            return out;
        };
        let Some(sub_cmd) = cmd.find_subcommand(name) else {
            return out;
        };
        path.push(name.to_string());
        (cmd, m) = (sub_cmd, sub);
    }
}

/// Whether clap would refuse `a` and `b` given together.
fn conflicting(cmd: &Command, a: &Arg, b: &Arg) -> bool {
    if a.is_global_set() || b.is_global_set() {
        return false;
    }
    cmd.get_arg_conflicts_with(a)
        .iter()
        .any(|x| x.get_id() == b.get_id())
        || cmd
            .get_arg_conflicts_with(b)
            .iter()
            .any(|x| x.get_id() == a.get_id())
}

/// Checks the file against the commands of `root` and turns it into
/// [`Settings`]; every problem is returned, each with its line.
pub(super) fn resolve(root: &Command, doc: &Table) -> Result<Settings, Vec<ConfigError>> {
    let mut r = Resolver {
        root,
        settings: Settings::default(),
        errors: Vec::new(),
    };
    let mut common = None;
    for entry in &doc.entries {
        match (&entry.value, root.find_subcommand(&entry.key)) {
            (Value::Table(t), _) if entry.key == COMMON => common = Some(t),
            (Value::Table(t), Some(sub)) => r.command_table(sub, &mut vec![entry.key.clone()], t),
            (v, Some(_)) => r.error(
                entry,
                format!(
                    "`{}` must be a table ([{}]) of the command's options, not {}",
                    entry.key,
                    entry.key,
                    v.kind()
                ),
            ),
            (Value::Table(_), None) => r.error(
                entry,
                format!(
                    "unknown table [{}]; the tables are [{COMMON}] and one per command: {}",
                    entry.key,
                    root.get_subcommands()
                        .map(|s| format!("[{}]", s.get_name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (_, None) => {
                let message = if entry.key == COMMON {
                    format!("`{COMMON}` must be a table ([{COMMON}])")
                } else if commands_with(root, &entry.key).is_empty() {
                    format!("unknown key `{}` outside any table", entry.key)
                } else {
                    format!(
                        "`{}` is outside any table: put it in [{COMMON}] or in the table of a command",
                        entry.key
                    )
                };
                r.error(entry, message);
            }
        }
    }
    if let Some(common) = common {
        r.common_table(common);
    }
    r.conflicts();
    if r.errors.is_empty() {
        Ok(r.settings)
    } else {
        r.errors.sort_by_key(|e| e.line);
        Err(r.errors)
    }
}

/// Commands (by path) below `root` that have the option `key`.
fn commands_with<'c>(root: &'c Command, key: &str) -> Vec<(CommandPath, &'c Command)> {
    commands(root, &mut Vec::new())
        .into_iter()
        .filter(|(path, cmd)| !path.is_empty() && option(cmd, key).is_some())
        .collect()
}

struct Resolver<'c> {
    root: &'c Command,
    settings: Settings,
    errors: Vec<ConfigError>,
}

impl Resolver<'_> {
    fn error(&mut self, entry: &Entry, message: String) {
        self.errors.push(ConfigError {
            line: Some(entry.line),
            message,
        });
    }

    /// A command's table: its options, and tables of its subcommands.
    fn command_table(&mut self, cmd: &Command, path: &mut CommandPath, table: &Table) {
        let name = path.join(".");
        for entry in &table.entries {
            if let Some(arg) = option(cmd, &entry.key) {
                match values(arg, &entry.value) {
                    Ok(values) => {
                        self.settings
                            .by_command
                            .entry(path.clone())
                            .or_default()
                            .insert(
                                arg.get_id().to_string(),
                                FileValue {
                                    key: entry.key.clone(),
                                    values,
                                    table: name.clone(),
                                    line: entry.line,
                                },
                            );
                    }
                    Err(e) => self.error(entry, format!("[{name}] {}: {e}", entry.key)),
                }
            } else if let (Some(sub), Value::Table(t)) =
                (cmd.find_subcommand(&entry.key), &entry.value)
            {
                path.push(entry.key.clone());
                self.command_table(sub, path, t);
                path.pop();
            } else {
                let message = self.not_an_option(cmd, &name, &entry.key);
                self.error(entry, message);
            }
        }
    }

    /// Why `key` is not an option of the command `name`.
    fn not_an_option(&self, cmd: &Command, name: &str, key: &str) -> String {
        if key == CONFIG_ARG {
            return format!("[{name}] {key}: the configuration file cannot name another one");
        }
        if let Some(positional) = cmd.get_positionals().find(|a| {
            a.get_id() == key
                || a.get_value_names()
                    .unwrap_or_default()
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(key))
        }) {
            let shown = positional
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| v.to_string())
                .unwrap_or_else(|| key.to_string());
            return format!(
                "[{name}] {key}: {shown} is a positional argument, what one run of the command \
                 works on: give it on the command line"
            );
        }
        let elsewhere: Vec<String> = commands_with(self.root, key)
            .into_iter()
            .map(|(p, _)| p.join(" "))
            .collect();
        if !elsewhere.is_empty() {
            return format!(
                "[{name}] {key}: `{name}` has no option --{key} (it is an option of: {})",
                elsewhere.join(", ")
            );
        }
        let mut message = format!("[{name}] {key}: `{name}` has no option --{key}");
        if let Some(close) = options(cmd)
            .filter_map(|a| a.get_long())
            .map(|l| (strsim::jaro(l, key), l))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
        {
            message.push_str(&format!(" (did you mean `{}`?)", close.1));
        }
        message
    }

    /// `[common]`: each key applies to every command that has the option,
    /// where the command's own table does not set it.
    fn common_table(&mut self, table: &Table) {
        for entry in &table.entries {
            if entry.key == CONFIG_ARG {
                let message = self.not_an_option(self.root, COMMON, &entry.key);
                self.error(entry, message);
                continue;
            }
            let targets = commands_with(self.root, &entry.key);
            if targets.is_empty() {
                let mut message = format!(
                    "[{COMMON}] {}: no command has an option --{}",
                    entry.key, entry.key
                );
                if let Some(close) = commands(self.root, &mut Vec::new())
                    .iter()
                    .flat_map(|(_, c)| options(c).filter_map(|a| a.get_long()))
                    .map(|l| (strsim::jaro(l, &entry.key), l))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                {
                    message.push_str(&format!(" (did you mean `{}`?)", close.1));
                }
                self.error(entry, message);
                continue;
            }
            for (path, cmd) in targets {
                let Some(arg) = option(cmd, &entry.key) else {
                    continue;
                };
                match values(arg, &entry.value) {
                    Ok(values) => {
                        self.settings
                            .by_command
                            .entry(path)
                            .or_default()
                            .entry(arg.get_id().to_string())
                            .or_insert(FileValue {
                                key: entry.key.clone(),
                                values,
                                table: COMMON.to_string(),
                                line: entry.line,
                            });
                    }
                    Err(e) => {
                        let message = format!(
                            "[{COMMON}] {}: {e} (as an option of `{}`)",
                            entry.key,
                            path.join(" ")
                        );
                        self.error(entry, message);
                        break;
                    }
                }
            }
        }
    }

    /// Options that cannot be used together, both set by the file for the
    /// same command.
    fn conflicts(&mut self) {
        let mut found = Vec::new();
        for (path, values) in &self.settings.by_command {
            let Some(cmd) = find(self.root, path) else {
                continue;
            };
            // A switch set to false is a switch not given: it conflicts
            // with nothing (a pinned `config check` output sets them all).
            let set: Vec<(&Arg, &FileValue)> = values
                .iter()
                .filter_map(|(id, v)| Some((cmd.get_arguments().find(|a| a.get_id() == id)?, v)))
                .filter(|(a, v)| !(is_switch(a) && v.values == ["false"]))
                .collect();
            for (i, (a, va)) in set.iter().enumerate() {
                for (b, vb) in &set[i + 1..] {
                    if conflicting(cmd, a, b) {
                        let (first, second) = if va.line <= vb.line {
                            (va, vb)
                        } else {
                            (vb, va)
                        };
                        found.push(ConfigError {
                            line: Some(second.line),
                            message: format!(
                                "[{}] {}: cannot be set together with {} ([{}], line {}): \
                                 `{}` takes one or the other",
                                second.table,
                                second.key,
                                first.key,
                                first.table,
                                first.line,
                                path.join(" ")
                            ),
                        });
                    }
                }
            }
        }
        self.errors.extend(found);
    }
}

/// The command at `path` below `root`.
pub(super) fn find<'c>(root: &'c Command, path: &[String]) -> Option<&'c Command> {
    path.iter()
        .try_fold(root, |cmd, name| cmd.find_subcommand(name))
}

/// An on/off flag (`--quiet`).
pub(super) fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// An option that may be given several times (`--port 53 --port 5353`).
pub(super) fn is_repeatable(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// Whether the option's values are whole numbers (shown bare, not quoted,
/// by `config check`).
pub(super) fn is_integer(arg: &Arg) -> bool {
    let t = arg.get_value_parser().type_id();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]
    .into_iter()
    .any(|id| t == id)
}

/// The file's value of an option as the texts clap parses, checked with
/// the option's own parser.
fn values(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    if is_switch(arg) {
        return match value {
            Value::Bool(b) => Ok(vec![b.to_string()]),
            other => Err(format!("expected true or false, found {}", other.kind())),
        };
    }
    if matches!(arg.get_action(), ArgAction::Count) {
        return match value {
            Value::Scalar { text, .. } if text.parse::<u8>().is_ok() => Ok(vec![text.clone()]),
            other => Err(format!(
                "expected a count (0 to 255), found {}",
                other.kind()
            )),
        };
    }
    let items: Vec<&Value> = match value {
        Value::Array(items) if is_repeatable(arg) => items.iter().collect(),
        Value::Array(_) => {
            return Err("takes one value, found an array".to_string());
        }
        other => vec![other],
    };
    let takes_bool = arg.get_value_parser().type_id() == TypeId::of::<bool>();
    let mut texts = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Scalar { text, .. } => texts.push(text.clone()),
            Value::Bool(b) if takes_bool => texts.push(b.to_string()),
            other => {
                return Err(format!(
                    "expected {}, found {}",
                    if is_repeatable(arg) {
                        "a value or an array of values"
                    } else {
                        "a value (a string or a number)"
                    },
                    other.kind()
                ));
            }
        }
    }
    probe(arg, &texts)?;
    Ok(texts)
}

/// Runs the option's value parser over `texts` (clap keeps the parser to
/// itself, so a one-option command runs it).
fn probe(arg: &Arg, texts: &[String]) -> Result<(), String> {
    let probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Append)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    let argv =
        std::iter::once("probe".to_string()).chain(texts.iter().map(|t| format!("--value={t}")));
    Command::new("probe")
        .arg(probe)
        .try_get_matches_from(argv)
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// A clap value error, without clap's framing (`error:`, usage, help hint).
fn describe(e: &clap::Error) -> String {
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => format!("{v:?}"),
        _ => "value".to_string(),
    };
    match e.kind() {
        ErrorKind::InvalidValue => {
            let valid = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => v.join(", "),
                _ => String::new(),
            };
            if valid.is_empty() {
                format!("invalid value {value}")
            } else {
                format!("invalid value {value}; possible values: {valid}")
            }
        }
        ErrorKind::ValueValidation => match std::error::Error::source(e) {
            Some(source) => format!("invalid value {value}: {source}"),
            None => format!("invalid value {value}"),
        },
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::file;
    use super::*;
    use crate::cli::Cli;

    fn errors(text: &str) -> Vec<(Option<usize>, String)> {
        let doc = file::parse(text).unwrap();
        match resolve(&Cli::command(), &doc) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    #[test]
    fn values_go_through_the_options_own_parsers() {
        let doc = file::parse(
            "[common]\ndb = \"/var/lib/pdns-sensor\"\n[serve]\nlisten = \"127.0.0.1:9\"\n\
             [ingest]\nport = [53, 5353]\nsections = \"answer,authority\"\nquiet = true\n\
             [run]\nfilter = \"classic\"\nport = 53\n",
        )
        .unwrap();
        let s = resolve(&Cli::command(), &doc).unwrap();
        let get = |cmd: &str, id: &str| {
            s.get(&[cmd.to_string()], id)
                .map(|v| (v.values.clone(), v.table.clone(), v.line))
        };
        assert_eq!(
            get("serve", "listen"),
            Some((vec!["127.0.0.1:9".into()], "serve".into(), 4))
        );
        assert_eq!(
            get("dump", "db"),
            Some((vec!["/var/lib/pdns-sensor".into()], "common".into(), 2))
        );
        assert_eq!(
            get("ingest", "ports"),
            Some((vec!["53".into(), "5353".into()], "ingest".into(), 6))
        );
        assert_eq!(get("ingest", "quiet").unwrap().0, vec!["true"]);
        assert_eq!(get("run", "ports").unwrap().0, vec!["53"]);
        assert_eq!(get("run", "filter").unwrap().0, vec!["classic"]);
        assert_eq!(get("serve", "quiet"), None);
    }

    #[test]
    fn each_problem_is_reported_with_its_table_and_line() {
        let e = errors(
            "[serve]\nlisen = \"a\"\nthreads = 2\nlisten = 8081\n[dump]\nlimit = \"lots\"\n\
             json = \"yes\"\nname = \"a.example\"\nrdata = \"10.0.0.1\"\n[ingest]\nfiles = [\"a.pcap\"]\n\
             db = [\"a\", \"b\"]\n[run]\nfilter = \"bpf\"\n[nope]\n[common]\nthread = 1\nconfig = \"x\"\n",
        );
        let expect: [(usize, &str); 12] = [
            (
                2,
                "[serve] lisen: `serve` has no option --lisen (did you mean `listen`?)",
            ),
            (
                3,
                "[serve] threads: `serve` has no option --threads (it is an option of: run, ingest)",
            ),
            (
                4,
                "[serve] listen: invalid value \"8081\": invalid socket address syntax",
            ),
            (
                6,
                "[dump] limit: invalid value \"lots\": invalid digit found in string",
            ),
            (7, "[dump] json: expected true or false, found a string"),
            (
                9,
                "[dump] rdata: cannot be set together with name ([dump], line 8): `dump` takes one or the other",
            ),
            (11, "[ingest] files: FILE is a positional argument"),
            (12, "[ingest] db: takes one value, found an array"),
            (
                14,
                "[run] filter: invalid value \"bpf\"; possible values: auto, ebpf, classic",
            ),
            (15, "unknown table [nope]"),
            (
                17,
                "[common] thread: no command has an option --thread (did you mean `threads`?)",
            ),
            (
                18,
                "[common] config: the configuration file cannot name another one",
            ),
        ];
        assert_eq!(e.len(), expect.len(), "{e:#?}");
        for ((line, message), (el, em)) in e.iter().zip(expect) {
            assert_eq!(*line, Some(el), "{message}");
            assert!(
                message.starts_with(em),
                "line {el}: {message:?} does not start with {em:?}"
            );
        }
    }

    #[test]
    fn every_option_gets_its_variable() {
        let cmd = environment(Cli::command());
        for (path, c) in commands(&cmd, &mut Vec::new()) {
            for a in options(c) {
                let long = a.get_long().unwrap();
                assert_eq!(
                    a.get_env().and_then(|e| e.to_str()),
                    Some(env_name(long).as_str()),
                    "{path:?} --{long}"
                );
            }
        }
        assert_eq!(env_name("aggregate-entries"), "PDNS_AGGREGATE_ENTRIES");
    }
}
