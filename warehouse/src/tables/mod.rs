//! The tables: the catalogue of every table the warehouse keeps or shows and who reads it
//! ([`catalogue`]), the fact tables' schemas and batches ([`schemas`]), the rows khoso writes
//! itself ([`rows`]), the reference tables ([`reference`]), reading a Delta table's files
//! ([`scan`]), data files added as they are ([`data_files`]) and the `submissions` table
//! ([`submissions`]).
//!
//! Uses `place` and `people` (a table's readers are roles).

pub mod catalogue;
pub(crate) mod data_files;
pub mod reference;
pub mod rows;
pub mod scan;
pub mod schemas;
pub mod stored;
pub mod submissions;
