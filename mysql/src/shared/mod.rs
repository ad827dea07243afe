//! What the source half and the target half both use, beyond the crate's foundations (`change`, `conn`, `error`,
//! `schema`, `sql`, `value`): the records of an interrupted full copy, dtle's DDL markers, SQL tokens, and the
//! text of a position.

pub mod markers;
pub mod resume;
pub(crate) mod sql_tokens;

use dtle_metadata::Position;

/// Short text of a position for logs.
pub fn describe(position: &Position) -> String {
    match &position.gtid {
        Some(g) => format!("{g} ({}:{})", position.binlog_file, position.binlog_pos),
        None => format!("{}:{}", position.binlog_file, position.binlog_pos),
    }
}
