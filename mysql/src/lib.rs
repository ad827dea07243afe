//! dtle-mysql: everything that talks to MySQL/MariaDB. Must not import Nomad, NATS, Consul or Kafka code:
//! `driver/` connects this crate to those.
//!
//! Two halves that never import each other (checked by a test below):
//! - [`source`]: connection checks ([`source::prereq`]), the table filter, `Where` and `SqlFilter`, the consistent
//!   snapshot reader ([`source::snapshot`]), the binlog stream ([`source::stream`]) and decoder
//!   ([`source::binlog`]), DDL routing ([`source::ddl`]); [`source::run_source`] ties them into the changes a src
//!   task sends.
//! - [`target`]: the applier ([`target::applier`]: statements, grouping, the position table, two-way markers), the
//!   full copy's writers and LOAD DATA ([`target::snapshot_apply`], [`target::load_data`]), parallel apply
//!   ([`target::parallel`]).
//!
//! Both use the foundations — [`change`] (what flows from one half to the other), [`conn`], [`error`], [`schema`],
//! [`sql`], [`value`], [`checksum`] — and [`shared`] (an interrupted copy's records, DDL markers, SQL tokens).
//! The old flat paths (`dtle_mysql::applier`, `dtle_mysql::snapshot`, ...) are kept as re-exports.

pub mod change;
pub mod checksum;
pub mod conn;
pub mod error;
pub mod schema;
pub mod shared;
pub mod source;
pub mod sql;
pub mod target;
pub mod value;

pub use source::{binlog, ddl, filter, prereq, snapshot, sql_filter, stream, where_expr};
pub use target::{applier, load_data, net_effect, parallel, snapshot_apply};

pub use change::{Change, EventSource, RowChange, Transaction, TxEvent};
pub use conn::{Endpoint, Flavor, Role};
pub use error::MysqlError;
pub use value::Value;

#[cfg(test)]
mod layout_tests {
    use std::path::{Path, PathBuf};

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every path of the other half a file of `half` names, as `file: path`.
    fn crossings(half: &str, other: &[&str]) -> Vec<String> {
        let mut paths = Vec::new();
        files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(half), &mut paths);
        let mut found = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            for name in other {
                for needle in [format!("crate::{name}::"), format!("crate::{name}}}"), format!("crate::{name};")] {
                    if text.contains(&needle) {
                        found.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_source_and_target_halves_do_not_import_each_other() {
        let target = ["target", "applier", "load_data", "parallel", "snapshot_apply"];
        let source = ["source", "binlog", "ddl", "filter", "prereq", "snapshot", "sql_filter", "stream", "where_expr"];
        assert_eq!(crossings("source", &target), Vec::<String>::new());
        assert_eq!(crossings("target", &source), Vec::<String>::new());
    }
}
