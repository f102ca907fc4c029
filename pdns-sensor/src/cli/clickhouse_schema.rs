//! `pdns-sensor clickhouse-schema`: prints the ClickHouse tables and views
//! sensors export to and `serve --clickhouse` reads (see
//! [`crate::clickhouse::schema`]), or runs them on a server.

use anyhow::{Context, Result};
use clap::Args;

use crate::clickhouse::client::{Client, ClientOptions, Target};
use crate::clickhouse::schema::{self, Layout};

#[derive(Debug, Args)]
pub struct ClickHouseSchemaArgs {
    /// Database for the tables (default: the --apply URL's, else `pdns`).
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Create the tables on every node of this cluster (`ON CLUSTER`),
    /// with `_local` tables and `Distributed` ones sharded by name.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Replicated engines (needs ZooKeeper or ClickHouse Keeper, and the
    /// `{shard}` and `{replica}` macros): also what makes a retried batch
    /// count once on servers older than 22.2.
    #[arg(long)]
    pub replicated: bool,
    /// ZooKeeper path prefix of replicated tables (default
    /// /clickhouse/tables/{shard}/DATABASE).
    #[arg(long, value_name = "PATH")]
    pub zookeeper_path: Option<String>,
    /// `non_replicated_deduplication_window` of unreplicated tables
    /// (ClickHouse 21.3 and later). Default with --apply: 1000 where the
    /// server knows the setting, else none.
    #[arg(long, value_name = "BLOCKS")]
    pub dedup_window: Option<u64>,
    /// Run the statements on this server instead of printing them
    /// (http[s]://[USER[:PASSWORD]@]HOST:PORT[/DATABASE]).
    #[arg(long, value_name = "URL")]
    pub apply: Option<String>,
    /// File holding the password for --apply (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https URL.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

pub fn run(args: &ClickHouseSchemaArgs) -> Result<()> {
    let mut layout = Layout {
        database: args.database.clone().unwrap_or_else(|| "pdns".into()),
        cluster: args.cluster.clone(),
        replicated: args.replicated,
        zookeeper_path: args.zookeeper_path.clone(),
        dedup_window: args.dedup_window.unwrap_or(0),
    };
    for (what, name) in [
        ("database", Some(&layout.database)),
        ("cluster", layout.cluster.as_ref()),
    ] {
        if let Some(name) = name
            && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            anyhow::bail!("--{what} {name:?}: only letters, digits and _");
        }
    }
    let Some(url) = &args.apply else {
        print!("{}", layout.script());
        return Ok(());
    };
    let mut target = Target::parse(url, args.password_file.as_deref())?;
    if args.database.is_none() && target.database != "default" {
        layout.database = target.database.clone();
    }
    // The database may not exist yet: connect to the default one.
    target.database = "default".into();
    let client = Client::new(
        target,
        &ClientOptions {
            ca_file: args.ca.clone(),
            ..Default::default()
        },
    )?;
    if args.dedup_window.is_none() && !layout.replicated {
        let known = client
            .query(
                "SELECT count() FROM system.merge_tree_settings WHERE name = \
                 'non_replicated_deduplication_window'",
            )
            .map(|n| n.trim() != "0")
            .unwrap_or(false);
        if known {
            layout.dedup_window = 1000;
        }
    }
    schema::apply(&client, &layout)
        .with_context(|| format!("creating the schema in {}", layout.database))?;
    eprintln!(
        "schema applied: database {} on {}{}{}",
        layout.database,
        client.target().display(),
        layout
            .cluster
            .as_ref()
            .map(|c| format!(", cluster {c}"))
            .unwrap_or_default(),
        if layout.replicated {
            ", replicated"
        } else {
            ""
        }
    );
    Ok(())
}
