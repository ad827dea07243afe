//! Binlog reading and decoding. mysql_common frames events and parses FDE/TABLE_MAP/GTID/QUERY/XID;
//! rows are decoded by our own per-table plan ([`rows`]); MariaDB's own events by [`mariadb`].

pub mod file;
pub mod jsonb;
pub mod mariadb;
pub mod rows;

pub use file::{event_data, verify_checksum, BinlogFileReader};
pub use rows::{decode_rows, decode_rows_raw, DecodeError, DecodedRows, RawRows, RowImage, RowsKind, TablePlan};
