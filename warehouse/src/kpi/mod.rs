//! The KPIs of Decision 131: their definitions in `metrics.toml` ([`metrics`]), computing every
//! KPI for every unit and year ([`compute`]), and keeping the `kpi_values` table fresh
//! ([`refresh`]).
//!
//! Uses `tables` and `query`.

pub mod compute;
pub mod metrics;
pub mod refresh;
