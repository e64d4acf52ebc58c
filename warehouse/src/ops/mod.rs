//! Running a warehouse for years: backups, restores and their checks ([`backup`]), and table
//! upkeep ([`upkeep`]).
//!
//! Uses every other room.

pub mod backup;
pub mod upkeep;
