//! The warehouse: Delta tables on disk, the commit of validated reports, the DataFusion
//! session over every table, and the read-only guard in front of SQL.
//!
//! ```no_run
//! # async fn example() -> warehouse::Result<()> {
//! use warehouse::{TableVersions, Warehouse};
//! let warehouse = Warehouse::init("khoso-data".as_ref()).await?;
//! let batches = warehouse
//!     .query("SELECT province_code, sum(students) FROM school_reports GROUP BY 1", &TableVersions::new())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Only this crate opens tables. It takes reports from `ingest` as plain typed columns and knows
//! nothing of how files are read.
#![warn(missing_docs)]

pub mod accounts;
pub mod approvals;
pub mod audit;
pub mod backup;
pub mod bounds;
pub mod catalogue;
pub mod cluster;
mod data_files;
pub mod engine;
pub mod guard;
pub mod history;
pub mod intake;
pub mod kpi;
pub mod layout;
pub mod metrics;
pub mod output;
pub mod parquet_file;
pub mod preview;
pub mod pseudonym;
pub mod reconcile;
pub mod reference;
pub mod rights;
pub mod scan;
pub mod storage;
pub mod store;
pub mod tables;
pub mod upkeep;
pub mod workbench;

pub use datafusion::arrow::array::RecordBatch;
pub use output::{OutputFormat, csv_header, csv_rows, json_ready, render};
pub use store::{CommitOutcome, KpiSnapshot, TableVersions, Upload, Warehouse, sha256_file};
pub use tables::{Submission, fact_table};

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
    /// A table name that does not exist (among those a query may pin).
    #[error("no table {0:?} to pin: the tables with versions are {tables}", tables = catalogue::source_tables().map(|t| t.name).collect::<Vec<_>>().join(", "))]
    UnknownTable(String),
    /// A table the catalogue keeps from the reader.
    #[error("table {table} is for admin accounts only; an {role} account reads {readable}", role = role.as_str(), readable = catalogue::readable_names(*role))]
    NotReadable {
        /// The table.
        table: String,
        /// The reader's role.
        role: accounts::Role,
    },
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
    /// The Ballista cluster queries are sent to could not run one (see [`cluster`]).
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
                | Error::NotReadable { .. }
                | Error::NoSuchVersion(..)
                | Error::NotAWarehouse(_)
                | Error::Account(_)
                | Error::Refused(_)
                | Error::Forbidden(_)
                | Error::NotFound(_)
        )
    }

    /// An error while planning or running a user's query is the query's fault, unless the
    /// cluster it was sent to failed.
    /// A table kept from the reader stays that error, whatever the engine wrapped it in.
    pub(crate) fn from_query(error: datafusion::error::DataFusionError) -> Self {
        if let Some(trouble) = cluster::trouble(&error) {
            return trouble;
        }
        if let datafusion::error::DataFusionError::External(cause) = error.find_root()
            && let Some(Error::NotReadable { table, role }) = cause.downcast_ref::<Error>()
        {
            return Error::NotReadable {
                table: table.clone(),
                role: *role,
            };
        }
        Error::Sql(error.to_string())
    }

    /// Whether the reader is refused something the query asked for (a table kept from it).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::NotReadable { .. } | Error::Forbidden(_))
    }
}

/// DataFusion's errors are the engine's, or the cluster's when it could not run a query.
impl From<datafusion::error::DataFusionError> for Error {
    fn from(error: datafusion::error::DataFusionError) -> Self {
        cluster::trouble(&error).unwrap_or(Error::DataFusion(error))
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
