//! The `pdns-sensor` binary: parse the command line (with the environment
//! and the configuration file), run the command. Everything else lives in
//! the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use pdns_sensor::cli::{
    Command, backup, clickhouse_schema, completions, config, dump, export, import_bro_pdns,
    import_zeek, ingest, manpages, progress, run, serve,
};

/// Colour in log lines only on a terminal, and never when `NO_COLOR` is
/// set to anything (no-color.org): journald, CI logs and files get plain
/// text.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(progress::log_writer)
        .with_ansi(colour())
        .with_target(false)
        .init();
    let invocation = config::parse(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
    let result = match &invocation.cli.command {
        Command::Run(args) => run::run(args).map(|_| ()),
        Command::Serve(args) => serve::run(args),
        Command::Ingest(args) => ingest::run(args).map(|_| ()),
        Command::Dump(args) => dump::run(args).map(|_| ()),
        Command::ImportZeek(args) => import_zeek::run(args),
        Command::ImportBroPdns(args) => import_bro_pdns::run(args).map(|_| ()),
        Command::Config(args) => match &args.action {
            config::ConfigAction::Check(args) => config::check::run(args, &invocation.config),
        },
        Command::Completions(args) => completions::run(args),
        Command::Manpages(args) => manpages::run(args),
        Command::Backup(args) => backup::run(args).map(|_| ()),
        Command::Export(args) => export::run_export(args).map(|_| ()),
        Command::ClickhouseSchema(args) => clickhouse_schema::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdns-sensor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
