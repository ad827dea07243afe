//! Prerequisite checks, run before anything is written: binlog settings and privileges on the source,
//! reachability and privileges on the target. Each failure is one message naming the setting, its value,
//! the value needed and the fix. `dtle validate` runs the same checks.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::conn::{global_variable, server_info, Endpoint, Flavor, ServerInfo};
use crate::error::{MysqlError, Result};

#[derive(Clone, Copy, Debug, Default)]
pub struct SourceRequirements {
    /// A GTID start (or resume) is used: MySQL needs gtid_mode=ON.
    pub needs_gtid: bool,
    pub skip_privilege_check: bool,
    /// Full copy only: binlog settings do not matter.
    pub snapshot_only: bool,
}

/// Checks the source. Connection failures are the `Err`; failed checks are the returned list (empty = fine).
pub async fn check_source(ep: &Endpoint, req: SourceRequirements) -> Result<(ServerInfo, Vec<MysqlError>)> {
    let mut conn = ep.connect(&[]).await?;
    let info = server_info(&mut conn).await?;
    let mut failures = Vec::new();
    let fail = |setting: &str, actual: &str, expected: &str, fix: &str| MysqlError::Prerequisite {
        role: "source",
        addr: ep.addr(),
        setting: setting.into(),
        actual: actual.into(),
        expected: expected.into(),
        fix: fix.into(),
    };
    if !req.snapshot_only {
        let log_bin = global_variable(&mut conn, "log_bin").await?.unwrap_or_default();
        if !is_on(&log_bin) {
            failures.push(fail(
                "log_bin",
                &log_bin,
                "ON",
                "add log_bin=<basename> to the [mysqld] section of my.cnf and restart the server",
            ));
        }
        let format = global_variable(&mut conn, "binlog_format").await?.unwrap_or_default();
        if !format.eq_ignore_ascii_case("ROW") {
            failures.push(fail(
                "binlog_format",
                &format,
                "ROW",
                "SET GLOBAL binlog_format='ROW' and add binlog_format=ROW to my.cnf",
            ));
        }
        let image = global_variable(&mut conn, "binlog_row_image").await?.unwrap_or_else(|| "FULL".into());
        if !image.eq_ignore_ascii_case("FULL") {
            failures.push(fail(
                "binlog_row_image",
                &image,
                "FULL",
                "SET GLOBAL binlog_row_image='FULL' and add binlog_row_image=FULL to my.cnf",
            ));
        }
        // Not required, but without it rows written before a later DDL are decoded with today's definition.
        if let Some(metadata) = global_variable(&mut conn, "binlog_row_metadata").await? {
            if !metadata.eq_ignore_ascii_case("FULL") {
                tracing::warn!(
                    source = %ep.addr(),
                    binlog_row_metadata = %metadata,
                    "binlog_row_metadata is not FULL: a backlog crossing a DDL that changed a replicated table's columns cannot be decoded and stops the job. Fix: SET GLOBAL binlog_row_metadata='FULL' and add binlog_row_metadata=FULL to my.cnf"
                );
            }
        }
        let server_id = info.server_id.to_string();
        if info.server_id == 0 {
            failures.push(fail("server_id", &server_id, "a non-zero number", "set server_id in my.cnf"));
        }
        match info.flavor {
            Flavor::Mysql => {
                if req.needs_gtid {
                    let gtid_mode = global_variable(&mut conn, "gtid_mode").await?.unwrap_or_else(|| "OFF".into());
                    if !gtid_mode.eq_ignore_ascii_case("ON") {
                        failures.push(fail("gtid_mode", &gtid_mode, "ON", "set gtid_mode=ON and enforce_gtid_consistency=ON, or start the job from BinlogFile/BinlogPos"));
                    }
                }
                if let Some(options) = global_variable(&mut conn, "binlog_row_value_options").await? {
                    if options.to_ascii_uppercase().contains("PARTIAL_JSON") {
                        failures.push(fail(
                            "binlog_row_value_options",
                            &options,
                            "empty",
                            "SET GLOBAL binlog_row_value_options='' (partial JSON updates carry no full row image)",
                        ));
                    }
                }
            }
            Flavor::Mariadb => {
                if let Some(compress) = global_variable(&mut conn, "log_bin_compress").await? {
                    if is_on(&compress) {
                        failures.push(fail(
                            "log_bin_compress",
                            &compress,
                            "OFF",
                            "SET GLOBAL log_bin_compress=OFF (compressed binlog events are not supported yet)",
                        ));
                    }
                }
            }
        }
    }
    if !req.skip_privilege_check {
        let grants = grants(&mut conn).await?;
        let mut needed = vec!["SELECT"];
        if !req.snapshot_only {
            needed.extend(["REPLICATION SLAVE", "REPLICATION CLIENT|BINLOG MONITOR"]);
        }
        for privilege in needed {
            if !has_privilege(&grants, privilege) {
                failures.push(fail(
                    &format!("privilege {privilege} for user {:?}", ep.user),
                    "missing",
                    "granted",
                    &format!(
                        "GRANT {} ON *.* TO '{}'@'<host>'",
                        privilege.split('|').next().unwrap_or(privilege),
                        ep.user
                    ),
                ));
            }
        }
    }
    let _ = conn.disconnect().await;
    Ok((info, failures))
}

/// Checks the target: reachable, and the user may create the `dtle` schema and write the replicated tables.
pub async fn check_target(ep: &Endpoint, skip_privilege_check: bool) -> Result<(ServerInfo, Vec<MysqlError>)> {
    let mut conn = ep.connect(&[]).await?;
    let info = server_info(&mut conn).await?;
    let mut failures = Vec::new();
    if !skip_privilege_check {
        let grants = grants(&mut conn).await?;
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX"] {
            if !has_privilege(&grants, privilege) {
                failures.push(MysqlError::Prerequisite {
                    role: "target",
                    addr: ep.addr(),
                    setting: format!("privilege {privilege} for user {:?}", ep.user),
                    actual: "missing".into(),
                    expected: "granted".into(),
                    fix: format!(
                        "GRANT {privilege} ON *.* TO '{}'@'<host>' (the replicated schemas and `dtle` need it)",
                        ep.user
                    ),
                });
            }
        }
    }
    let _ = conn.disconnect().await;
    Ok((info, failures))
}

/// The source's schemas and base tables (system schemas left out), for telling which selection entries match
/// nothing.
pub async fn source_tables(ep: &Endpoint) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let mut conn = ep.connect(&[]).await?;
    let system = crate::filter::SYSTEM_SCHEMAS.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let schemas_sql = format!(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({system}) ORDER BY 1"
    );
    let schemas: Vec<String> =
        conn.query(&schemas_sql).await.map_err(|e| MysqlError::query("listing the source's schemas", e))?;
    let tables_sql = format!(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ({system}) ORDER BY 1, 2"
    );
    let tables: Vec<(String, String)> =
        conn.query(&tables_sql).await.map_err(|e| MysqlError::query("listing the source's tables", e))?;
    let _ = conn.disconnect().await;
    Ok((schemas, tables))
}

async fn grants(conn: &mut Conn) -> Result<String> {
    let rows: Vec<String> = conn.query("SHOW GRANTS").await.map_err(|e| MysqlError::query("SHOW GRANTS", e))?;
    Ok(rows.join("\n").to_ascii_uppercase())
}

/// Whether `SHOW GRANTS` output gives a privilege globally (`ON *.*`); `a|b` accepts either name.
fn has_privilege(grants: &str, privilege: &str) -> bool {
    grants
        .lines()
        .filter(|l| l.contains(" ON *.* "))
        .any(|line| line.contains("ALL PRIVILEGES") || privilege.split('|').any(|p| line.contains(p)))
}

fn is_on(v: &str) -> bool {
    matches!(v.to_ascii_uppercase().as_str(), "ON" | "1" | "YES" | "TRUE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_from_grants() {
        let g = "GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`".to_ascii_uppercase();
        assert!(has_privilege(&g, "SELECT"));
        assert!(has_privilege(&g, "REPLICATION CLIENT|BINLOG MONITOR"));
        assert!(!has_privilege(&g, "INSERT"));
        let all = "GRANT ALL PRIVILEGES ON *.* TO `dtle`@`%` WITH GRANT OPTION".to_ascii_uppercase();
        assert!(has_privilege(&all, "DROP"));
        let db_only = "GRANT ALL PRIVILEGES ON `test`.* TO `u`@`%`".to_ascii_uppercase();
        assert!(!has_privilege(&db_only, "SELECT"));
    }
}
