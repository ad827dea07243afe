//! dtle-mysql: everything that talks to MySQL/MariaDB — prerequisite checks, schema reading, the consistent
//! snapshot, the binlog reader and row decoder, and the applier that writes rows and the position in one target
//! transaction. Must not import Nomad, NATS, Consul or Kafka code: `driver/` connects this crate to those.

pub mod applier;
pub mod binlog;
pub mod change;
pub mod checksum;
pub mod conn;
pub mod ddl;
pub mod error;
pub mod filter;
pub mod load_data;
pub mod parallel;
pub mod prereq;
pub mod schema;
pub mod snapshot;
pub mod snapshot_apply;
pub mod source;
pub mod sql;
pub mod sql_filter;
pub mod stream;
pub mod value;
pub mod where_expr;

pub use change::{Change, RowChange, Transaction, TxEvent};
pub use conn::{Endpoint, Flavor, Role};
pub use error::MysqlError;
pub use value::Value;
