//! Where a warehouse lives: a folder of this machine or a prefix of a bucket behind an S3 API
//! ([`storage`]), and where each of its files is there ([`layout`]).
//!
//! Uses nothing of the crate but its errors.

pub mod layout;
pub mod storage;
