//! Running SQL: the runtime queries run on, its deadlines and memory ceiling ([`engine`]), the
//! read-only guard ([`guard`]), the bounds on functions' work ([`bounds`]), the Ballista cluster
//! ([`cluster`]), sessions over the warehouse's tables ([`session`]), writing results
//! ([`output`]) and reading their columns ([`columns`]).
//!
//! Uses `place`, `people` (a session reads as a role), `tables` and the KPI definitions (their
//! views join a session).

pub mod bounds;
pub mod cluster;
pub mod columns;
pub mod engine;
pub mod guard;
pub mod output;
pub mod session;
