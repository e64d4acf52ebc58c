//! From a file to a table: the steps every file takes ([`steps`]: validation, preview, then
//! commit, hold or discard), what a report would change ([`preview`], with the plausibility
//! checks of [`crate::quality`]), pseudonyms of personal identifiers ([`pseudonym`]), Parquet files
//! as cells ([`parquet_file`]), the commit ([`commit`]), repair after a kill ([`recovery`]), the
//! archive of accepted files ([`archive`]) and a slice's history ([`history`]).
//!
//! Uses `place`, `people`, `tables`, `query`, `kpi`, `quality` and `review` (a held file waits for a
//! decision).

pub mod archive;
pub mod commit;
pub mod history;
pub mod parquet_file;
pub mod preview;
pub mod pseudonym;
pub mod recovery;
pub mod steps;
