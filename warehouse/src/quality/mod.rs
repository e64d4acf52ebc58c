//! Figures that look wrong, flagged before anyone relies on them: the plausibility checks of
//! `metrics.toml` ([`checks`]), the flags they raise on the warehouse or on a file in a dry run
//! ([`flags`]), the explanations people give for them ([`explanations`]), and a school's report
//! beside its counted learner records ([`reconcile`]). A flag is a warning: it never stops a file.
//!
//! Uses `place`, `tables`, `query` and `kpi` (the checks are read with the KPIs).

pub mod checks;
pub mod explanations;
pub mod flags;
pub mod reconcile;
