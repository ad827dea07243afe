//! The target half: writes changes to a MySQL/MariaDB target exactly once — the applier (statements, grouping,
//! the position row in the same target transaction, two-way markers), the full copy's parallel writers and
//! `LOAD DATA`, parallel apply of independent transactions, and groups written as their net effect per row. Must
//! not import the source half ([`crate::source`]); what both need is in the crate's foundations and
//! [`crate::shared`].

pub mod applier;
pub mod load_data;
pub mod net_effect;
pub mod parallel;
pub mod snapshot_apply;
#[cfg(test)]
mod test_rows;
