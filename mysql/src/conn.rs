//! Connections to the source and the target, with errors that name the server and the job-file field.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};

use crate::error::{codes, MysqlError, Result};

/// Which side of the job a server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// Where a MySQL/MariaDB server is and how to log in. `field` names the job-file block it came from, for errors.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub role: Role,
    pub field: &'static str,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

impl Endpoint {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens a connection; `setup` statements run first (session variables).
    pub async fn connect(&self, setup: &[&str]) -> Result<Conn> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
            .client_found_rows(true)
            .stmt_cache_size(64)
            .tcp_keepalive(Some(Duration::from_secs(30)));
        let connecting = Conn::new(opts);
        match tokio::time::timeout(Duration::from_secs(15), connecting).await {
            Ok(Ok(mut conn)) => {
                // Run in the order given (mysql_async's own init/setup lists run in reverse).
                for statement in setup {
                    conn.query_drop(*statement).await.map_err(|e| {
                        MysqlError::query(format!("setting up the {} session ({statement})", self.role.as_str()), e)
                    })?;
                }
                Ok(conn)
            }
            Ok(Err(source)) => Err(self.classify(source)),
            Err(_) => Err(MysqlError::Connect {
                role: self.role.as_str(),
                addr: self.addr(),
                field: self.field,
                source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out after 15 s",
                ))),
            }),
        }
    }

    fn classify(&self, source: mysql_async::Error) -> MysqlError {
        match &source {
            mysql_async::Error::Server(e) if e.code == codes::ACCESS_DENIED || e.code == codes::DB_ACCESS_DENIED => {
                MysqlError::AccessDenied {
                    role: self.role.as_str(),
                    addr: self.addr(),
                    user: self.user.clone(),
                    field: self.field,
                    source,
                }
            }
            _ => MysqlError::Connect { role: self.role.as_str(), addr: self.addr(), field: self.field, source },
        }
    }
}

/// MySQL or MariaDB: they differ in GTIDs, binlog events and snapshot statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Mysql,
    Mariadb,
}

/// Server facts read once per connection.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub flavor: Flavor,
    pub version: String,
    pub server_id: u32,
}

pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo> {
    let row: Option<(String, u32)> = conn
        .query_first("SELECT VERSION(), @@server_id")
        .await
        .map_err(|e| MysqlError::query("reading the server version", e))?;
    let (version, server_id) = row.unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") { Flavor::Mariadb } else { Flavor::Mysql };
    Ok(ServerInfo { flavor, version, server_id })
}

/// Reads one global variable as text (`None` when the server does not have it).
pub async fn global_variable(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    let row: Option<(String, Option<String>)> = conn
        .exec_first(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = ?",
            (name.to_ascii_uppercase(),),
        )
        .await
        .or_else(|_| Ok::<_, mysql_async::Error>(None))
        .map_err(|e| MysqlError::query(format!("reading @@{name}"), e))?;
    if let Some((_, value)) = row {
        return Ok(Some(value.unwrap_or_default()));
    }
    // MySQL 5.7+/8 moved variables to performance_schema; ask with SHOW, which both flavours accept.
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW GLOBAL VARIABLES LIKE '{}'", name.replace('\'', "")))
        .await
        .map_err(|e| MysqlError::query(format!("reading @@{name}"), e))?;
    Ok(row.map(|(_, v)| v))
}
