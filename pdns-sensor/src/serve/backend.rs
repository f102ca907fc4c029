//! Where the API reads: a local RocksDB store, or the central history in
//! ClickHouse. Both answer the same three questions — records under a
//! selector, negative answers under a selector, owner names by forward
//! prefix — with the same types in the same order, so every surface works
//! over either without knowing which.

use std::sync::Arc;

use crate::clickhouse::reader::{ReadError, Reader};
use crate::store::{Filter, NegativeRecord, Selector, Store, StoreError, StoredRecord};

/// The data behind the API.
#[derive(Clone)]
pub enum Backend {
    /// A database on this host (`serve --db`, `run`).
    Store(Arc<Store>),
    /// The central history (`serve --clickhouse`).
    ClickHouse(Arc<Reader>),
}

/// A failed read from either backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    ClickHouse(#[from] ReadError),
}

type Stream<'a, T> = Box<dyn Iterator<Item = Result<T, BackendError>> + 'a>;

impl Backend {
    /// Records a selector and filter match, in key order.
    pub fn records<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> Stream<'a, StoredRecord> {
        match self {
            Backend::Store(s) => Box::new(s.records(selector, filter).map(|r| Ok(r?))),
            Backend::ClickHouse(c) => Box::new(c.records(selector, filter).map(|r| Ok(r?))),
        }
    }

    /// Negative answers a selector and filter match, in key order.
    pub fn negatives<'a>(
        &'a self,
        selector: &Selector,
        filter: &'a Filter,
    ) -> Stream<'a, NegativeRecord> {
        match self {
            Backend::Store(s) => Box::new(s.negatives(selector, filter).map(|r| Ok(r?))),
            Backend::ClickHouse(c) => Box::new(c.negatives(selector, filter).map(|r| Ok(r?))),
        }
    }

    /// Owner names (reversed encoding) whose forward form starts with
    /// `prefix`, in forward order.
    pub fn owners_forward<'a>(&'a self, prefix: &[u8]) -> Stream<'a, Vec<u8>> {
        match self {
            Backend::Store(s) => Box::new(s.owners_forward(prefix).map(|r| Ok(r?))),
            Backend::ClickHouse(c) => Box::new(c.owners_forward(prefix).map(|r| Ok(r?))),
        }
    }

    /// The local store, if that is what is served.
    pub fn store(&self) -> Option<&Arc<Store>> {
        match self {
            Backend::Store(s) => Some(s),
            Backend::ClickHouse(_) => None,
        }
    }
}
