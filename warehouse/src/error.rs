//! The warehouse's errors, by whose fault they are.

/// Errors of the warehouse, by whose fault they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The user's input.
    /// A statement that would write, or read files.
    #[error("khoso SQL is read-only: {0} is not allowed (use SELECT, WITH, EXPLAIN, SHOW or DESCRIBE)")]
    ReadOnly(String),
    /// A query that does not parse or plan.
    #[error("SQL error: {0}")]
    Sql(String),
    /// A table name that does not exist (among those a query may pin), with the names that do.
    #[error("{0}")]
    UnknownTable(String),
    /// A table the catalogue keeps from the reader, with what the reader may read.
    #[error("{0}")]
    NotReadable(String),
    /// A table version that does not exist.
    #[error("table {0} has no version {1} (its latest is {2})")]
    NoSuchVersion(String, u64, u64),
    /// A place that holds no warehouse.
    #[error("no warehouse at {0}: create one with `khoso init` (or `khoso init --sample`)")]
    NotAWarehouse(String),

    // The environment.
    /// Reading or writing files failed.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),

    // Ours.
    /// The Delta Lake layer failed.
    #[error("table error: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    /// DataFusion failed outside a user's query.
    #[error("query engine error: {0}")]
    DataFusion(datafusion::error::DataFusionError),
    /// The Ballista cluster queries are sent to could not run one (see [`crate::query::cluster`]).
    #[error(
        "the cluster could not run the query: {0} (check that its scheduler, named by --cluster, and its executors run: `khoso cluster scheduler`, `khoso cluster executor`)"
    )]
    Cluster(String),
    /// Arrow failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Writing or reading a Parquet file of ours failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
    /// A document khoso keeps as JSON (a backup's manifest, a held file's note) that could not
    /// be written.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// Work handed to another thread that ended without its result (it panicked or was
    /// cancelled).
    #[error("work on another thread stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Ours, with the error that caused it (its chain is logged, and printed by the CLI).
    #[error("{context}")]
    Failed {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A wrong account request (name taken, unknown role or province, …).
    #[error("{0}")]
    Account(String),
    /// A request that cannot be done as asked (a return without a comment, a second decision).
    #[error("{0}")]
    Refused(String),
    /// The actor may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Something asked for by id that is not there.
    #[error("{0}")]
    NotFound(String),
    /// The server's memory ceiling is reached by the work running now: new work waits its turn.
    #[error("{0}")]
    Busy(String),
}

impl Error {
    /// Whether the user's input is at fault (a refused or wrong query, a missing warehouse).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::ReadOnly(_)
                | Error::Sql(_)
                | Error::UnknownTable(_)
                | Error::NotReadable(_)
                | Error::NoSuchVersion(..)
                | Error::NotAWarehouse(_)
                | Error::Account(_)
                | Error::Refused(_)
                | Error::Forbidden(_)
                | Error::NotFound(_)
        )
    }

    /// Whether the reader is refused something the query asked for (a table kept from it).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::NotReadable(_) | Error::Forbidden(_))
    }
}

impl Error {
    /// Ours: `context` failed because of `source` (an error, kept with its own causes, or a
    /// message).
    pub fn failed(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Failed {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
