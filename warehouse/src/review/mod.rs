//! The ministry's review and the record of what happened: decisions about submissions and the
//! files held for them ([`approvals`]), and the audit log ([`audit`]).
//!
//! Uses `place`, `people` and `tables`.

pub mod approvals;
pub mod audit;
