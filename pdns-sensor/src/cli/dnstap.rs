//! dnstap options: what `ingest` and `run` record from dnstap input, and
//! where `run` listens for senders.

use anyhow::Result;
use clap::Args;
use clap::builder::TypedValueParser;

use crate::source::dnstap::endpoint::{self, Endpoint, Listener, SocketPermissions};
use crate::source::dnstap::frame_streams::DEFAULT_MAX_FRAME;
use crate::source::dnstap::{DnstapConfig, Selection};

/// What is recorded from dnstap messages (sockets and files).
#[derive(Debug, Args, Clone)]
pub struct DnstapReadArgs {
    /// dnstap response types recorded, comma-separated: resolver-response,
    /// forwarder-response, auth-response, client-response (the last one
    /// includes cache hits), stub-response, tool-response, update-response.
    #[arg(
        long,
        value_name = "TYPES",
        default_value = "resolver-response,forwarder-response,auth-response",
        value_parser = Selection::parse
    )]
    pub dnstap_types: Selection,
    /// Longest dnstap frame read, in bytes; longer ones are skipped and
    /// counted (pdns_dnstap_discarded_total{reason="frame_too_large"}).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME,
          value_parser = clap::value_parser!(u32).range(1024..).map(|v| v as usize))]
    pub dnstap_max_frame: usize,
}

impl Default for DnstapReadArgs {
    fn default() -> Self {
        DnstapReadArgs {
            dnstap_types: Selection::default(),
            dnstap_max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl DnstapReadArgs {
    pub fn config(&self) -> DnstapConfig {
        DnstapConfig {
            selection: self.dnstap_types,
            max_frame: self.dnstap_max_frame,
            ..DnstapConfig::default()
        }
    }
}

/// Where `run` takes dnstap from.
#[derive(Debug, Args, Clone)]
pub struct DnstapArgs {
    /// Listen for dnstap senders (Frame Streams) on unix:PATH or
    /// tcp:ADDRESS:PORT; repeat for several. With --dnstap and no
    /// --interface, nothing is captured (no ring, no privileges needed).
    #[arg(long = "dnstap", value_name = "ENDPOINT")]
    pub endpoints: Vec<Endpoint>,
    /// Mode of the dnstap Unix socket files (octal); the DNS server needs
    /// write permission to connect.
    #[arg(long, value_name = "MODE", default_value = "0660", value_parser = endpoint::parse_mode)]
    pub dnstap_socket_mode: u32,
    /// Group of the dnstap Unix socket files (name or number), e.g. the DNS
    /// server's (unbound, bind, pdns).
    #[arg(long, value_name = "GROUP")]
    pub dnstap_socket_group: Option<String>,
    /// dnstap sender connections open at once, at most (PowerDNS Recursor
    /// opens one per thread).
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    pub dnstap_max_connections: usize,
    /// Threads that extract and aggregate dnstap messages (connections
    /// decode the protobuf in their own threads).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256).map(|v| v as usize))]
    pub dnstap_threads: usize,
    #[command(flatten)]
    pub read: DnstapReadArgs,
}

impl DnstapArgs {
    /// Whether dnstap input was asked for.
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    pub fn config(&self) -> DnstapConfig {
        DnstapConfig {
            max_connections: self.dnstap_max_connections,
            workers: self.dnstap_threads,
            ..self.read.config()
        }
    }

    /// Binds every endpoint (each once).
    pub fn bind(&self) -> Result<Vec<Listener>> {
        let permissions = SocketPermissions {
            mode: self.dnstap_socket_mode,
            gid: self
                .dnstap_socket_group
                .as_deref()
                .map(endpoint::lookup_group)
                .transpose()?,
        };
        let mut unique: Vec<&Endpoint> = Vec::new();
        for e in &self.endpoints {
            if !unique.contains(&e) {
                unique.push(e);
            }
        }
        unique
            .into_iter()
            .map(|e| Listener::bind(e, permissions))
            .collect()
    }
}
