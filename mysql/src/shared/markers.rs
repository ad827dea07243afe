//! dtle's DDL markers: the comment dtle puts into every DDL it applies, so that a job reading the target's binlog
//! (two-way sync) recognises the statement as dtle's.

use crate::shared::sql_tokens::{tokenize, Statement, Token, TokenKind};

/// The marker dtle appends to every DDL it applies, so that a job reading the target's binlog (two-way sync)
/// recognises the statement as dtle's: `/*dtle_gtid1 <job> <origin> <gno> dtle_gtid*/` (dtle's format).
pub fn ddl_marker(job: &str, origin: &str, gno: u64) -> String {
    let clean = |s: &str| s.replace(['*', '/', ' '], "_");
    format!("/*dtle_gtid1 {} {} {gno} dtle_gtid*/", clean(job), clean(origin))
}

/// `sql` with dtle's marker where the server keeps it in its binlog: right after `DROP [TEMPORARY] TABLE
/// [IF EXISTS]` for DROP TABLE (the server logs that statement rebuilt, keeping only a comment in that place),
/// else at the end.
pub fn with_marker(sql: &str, marker: &str) -> String {
    if let Some(tokens) = tokenize(sql) {
        let tokens: Vec<Token> =
            tokens.into_iter().filter(|t| !matches!(t.kind, TokenKind::Space | TokenKind::Comment)).collect();
        let st = Statement { sql, tokens };
        if st.is_word(0, "DROP") {
            let mut i = 1;
            i = st.skip_words(i, &["TEMPORARY"]);
            if st.is_word(i, "TABLE") || st.is_word(i, "TABLES") {
                i = st.skip_words(i + 1, &["IF", "EXISTS"]);
                if let Some(t) = st.tokens.get(i) {
                    return format!("{}{marker} {}", &sql[..t.start], &sql[t.start..]);
                }
            }
        }
    }
    format!("{sql} {marker}")
}

/// The origin named by a dtle DDL marker in `sql`, if it has one.
pub fn ddl_marker_origin(sql: &str) -> Option<String> {
    let start = sql.rfind("/*dtle_gtid1 ")?;
    let rest = &sql[start + "/*dtle_gtid1 ".len()..];
    let end = rest.find(" dtle_gtid*/")?;
    let mut parts = rest[..end].split(' ');
    let _job = parts.next()?;
    parts.next().map(str::to_string)
}
