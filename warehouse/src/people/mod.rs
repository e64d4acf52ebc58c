//! Who acts: accounts and their secrets ([`accounts`]), their roles and what each role may do
//! through each way in ([`rights`]), and what each account's SQL workbench remembers
//! ([`workbench`]).
//!
//! Uses `place` (accounts and the workbench are files of the warehouse).

pub mod accounts;
pub mod rights;
pub mod workbench;
