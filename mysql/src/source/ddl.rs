//! DDL routing and rewriting: which selected tables or schema a statement touches, and the statement as the target
//! must run it, with the job's schema and table renames applied to every table reference.
//!
//! The statement is tokenised (comments, quoted identifiers and string literals kept intact), its kind recognised
//! from its leading words, and the table names at the places that kind has them (the statement's subject,
//! `LIKE`, `REFERENCES`, `RENAME TO`, every name of `DROP TABLE` and `RENAME TABLE`) are replaced by the fully
//! qualified target names. Names of unselected tables are dropped from multi-table statements (`DROP TABLE a, b`)
//! or, when the statement cannot be expressed without them, reported as [`DdlRoute::Unreplayable`].
//!
//! Online schema change tools work on shadow tables (`_t_gho`, `_t_del`, `_t_ghc` for gh-ost, `_t_new`, `_t_old`
//! for pt-osc); [`crate::filter::TableFilter`] selects those with their base table, so the copy, the triggers'
//! rows and the final rename swap replicate like any other statement.

use crate::schema::quote_ident;
pub use crate::shared::markers::{ddl_marker, ddl_marker_origin, with_marker};
use crate::shared::sql_tokens::{tokenize, NameRef, Statement, Token, TokenKind};
use crate::source::filter::TableFilter;

/// What the applier should do with a QUERY event that is not BEGIN/COMMIT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DdlRoute {
    /// Not DDL, or DDL on nothing the job replicates, or a kind dtle never replicates (views, triggers, ...).
    Ignore,
    /// Run `sql` on the target (with `use_schema` as the default database when not empty).
    Replay {
        sql: String,
        use_schema: String,
        /// Source (schema, table) of every selected table the statement names (their definitions change).
        source_tables: Vec<(String, String)>,
    },
    /// DDL on selected objects that dtle cannot replay faithfully; the job stops unless told to skip it.
    Unreplayable { reason: String },
    /// A data change the source logged as a statement (a session with `binlog_format=STATEMENT` or `MIXED`) that
    /// writes (or may write) replicated tables. Its rows are not in the binlog, so dtle cannot replay it exactly.
    StatementDml {
        /// Source (schema, table) of the replicated tables it writes; empty when the statement's tables were not
        /// recognised and the session's schema is replicated.
        tables: Vec<(String, String)>,
        kinds: DmlKinds,
    },
}

/// The kinds of row change a DML statement may make (so that a `SqlFilter` leaving all of them out can ignore it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmlKinds {
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
}

impl DmlKinds {
    const ALL: DmlKinds = DmlKinds { insert: true, update: true, delete: true };
}

/// A change to the statement text: replace significant tokens `first..=last` by `text`.
struct Edit {
    first: usize,
    last: usize,
    text: String,
}

fn apply_edits(st: &Statement<'_>, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| e.first);
    let mut out = String::with_capacity(st.sql.len() + 32);
    let mut at = 0usize;
    for e in edits {
        let (Some(first), Some(last)) = (st.tokens.get(e.first), st.tokens.get(e.last)) else {
            continue;
        };
        if first.start < at {
            continue;
        }
        out.push_str(&st.sql[at..first.start]);
        out.push_str(&e.text);
        at = last.end;
    }
    out.push_str(&st.sql[at..]);
    out
}

fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Words that start the options of `ALTER DATABASE` (without a name, it changes the session's database).
const DATABASE_OPTIONS: &[&str] =
    &["CHARACTER", "CHARSET", "DEFAULT", "COLLATE", "COMMENT", "READ", "ENCRYPTION", "UPGRADE"];

/// The statement's first words, upper case, without `OR REPLACE` after CREATE and without the clauses that may
/// precede the object kind (`DEFINER = user`, `ALGORITHM = x`, `SQL SECURITY x`, `AGGREGATE`), so that
/// `CREATE OR REPLACE DEFINER=u PROCEDURE` reads as `CREATE PROCEDURE`.
fn normalized_head(st: &Statement<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < st.tokens.len() && out.len() < 6 {
        if out.len() == 1 {
            if st.is_word(i, "OR") && st.is_word(i + 1, "REPLACE") {
                i += 2;
                continue;
            }
            if (st.is_word(i, "DEFINER") || st.is_word(i, "ALGORITHM")) && st.is_punct(i + 1, "=") {
                i += 3;
                // user@host
                if st.is_punct(i, "@") {
                    i += 2;
                }
                continue;
            }
            if st.is_word(i, "SQL") && st.is_word(i + 1, "SECURITY") {
                i += 3;
                continue;
            }
            if st.is_word(i, "AGGREGATE") {
                i += 1;
                continue;
            }
        }
        out.push(st.text(i).to_ascii_uppercase());
        i += 1;
    }
    out
}

const NEVER_REPLICATED: &[&[&str]] = &[
    &["CREATE", "VIEW"],
    &["ALTER", "VIEW"],
    &["DROP", "VIEW"],
    &["CREATE", "TRIGGER"],
    &["DROP", "TRIGGER"],
    &["CREATE", "EVENT"],
    &["ALTER", "EVENT"],
    &["DROP", "EVENT"],
    &["CREATE", "PROCEDURE"],
    &["DROP", "PROCEDURE"],
    &["ALTER", "PROCEDURE"],
    &["CREATE", "FUNCTION"],
    &["DROP", "FUNCTION"],
    &["ALTER", "FUNCTION"],
    &["CREATE", "USER"],
    &["DROP", "USER"],
    &["ALTER", "USER"],
    &["RENAME", "USER"],
    &["CREATE", "ROLE"],
    &["DROP", "ROLE"],
    &["CREATE", "SERVER"],
    &["DROP", "SERVER"],
    &["ALTER", "SERVER"],
    &["CREATE", "SEQUENCE"],
    &["DROP", "SEQUENCE"],
    &["ALTER", "SEQUENCE"],
    &["CREATE", "TEMPORARY"],
    &["DROP", "TEMPORARY"],
];

/// Decides how a statement from a QUERY event is replicated under `filter`, `default_schema` being the
/// session's database on the source.
pub fn route(sql: &str, default_schema: &str, filter: &TableFilter) -> DdlRoute {
    let Some(all) = tokenize(sql) else {
        return if looks_like_ddl(sql) {
            DdlRoute::Unreplayable { reason: "an unterminated quote or comment".into() }
        } else if looks_like_dml(sql) && filter.selects_schema(default_schema) {
            DdlRoute::StatementDml { tables: Vec::new(), kinds: DmlKinds::ALL }
        } else {
            DdlRoute::Ignore
        };
    };
    let tokens: Vec<Token> =
        all.into_iter().filter(|t| !matches!(t.kind, TokenKind::Space | TokenKind::Comment)).collect();
    let st = Statement { sql, tokens };
    if let Some(dml) = route_dml(&st, default_schema, filter) {
        return dml;
    }
    let head = normalized_head(&st);
    let starts = |words: &[&str]| words.iter().enumerate().all(|(i, w)| head.get(i).is_some_and(|h| h == w));
    if NEVER_REPLICATED.iter().any(|w| starts(w)) {
        return DdlRoute::Ignore;
    }
    // CREATE [OR REPLACE]/DROP/ALTER DATABASE|SCHEMA
    let database_at = if st.is_word(1, "DATABASE") || st.is_word(1, "SCHEMA") {
        Some(2)
    } else if st.is_word(1, "OR") && st.is_word(2, "REPLACE") && (st.is_word(3, "DATABASE") || st.is_word(3, "SCHEMA"))
    {
        Some(4)
    } else {
        None
    };
    if let (true, Some(at)) = (starts(&["CREATE"]) || starts(&["DROP"]) || starts(&["ALTER"]), database_at) {
        let mut i = st.skip_words(at, &["IF", "NOT", "EXISTS"]);
        i = st.skip_words(i, &["IF", "EXISTS"]);
        let option = DATABASE_OPTIONS.iter().any(|o| st.is_word(i, o));
        if !st.is_ident(i) || option {
            // ALTER DATABASE without a name changes the default schema.
            if starts(&["ALTER"]) && filter.selects_schema(default_schema) {
                let sql = sql.to_string();
                return DdlRoute::Replay {
                    sql,
                    use_schema: filter.target_schema_of(default_schema),
                    source_tables: Vec::new(),
                };
            }
            return if filter.selects_schema(default_schema) {
                DdlRoute::Unreplayable { reason: "no schema name after DATABASE/SCHEMA".into() }
            } else {
                DdlRoute::Ignore
            };
        }
        let name = st.ident(i);
        if !filter.selects_schema(&name) {
            return DdlRoute::Ignore;
        }
        let target = filter.target_schema_of(&name);
        let sql = apply_edits(&st, vec![Edit { first: i, last: i, text: quote_ident(&target) }]);
        return DdlRoute::Replay { sql, use_schema: String::new(), source_tables: Vec::new() };
    }

    let mut subject_at = None;
    if starts(&["CREATE"]) {
        let mut i = 1;
        i = st.skip_words(i, &["OR", "REPLACE"]);
        if st.is_word(i, "TABLE") {
            subject_at = Some(st.skip_words(i + 1, &["IF", "NOT", "EXISTS"]));
        } else {
            for w in ["UNIQUE", "FULLTEXT", "SPATIAL"] {
                i = st.skip_words(i, &[w]);
            }
            if st.is_word(i, "INDEX") {
                // CREATE INDEX [IF NOT EXISTS] name [USING ...] ON table
                return route_index(&st, i + 1, default_schema, filter);
            }
        }
    } else if starts(&["ALTER"]) {
        let mut i = 1;
        i = st.skip_words(i, &["ONLINE"]);
        i = st.skip_words(i, &["IGNORE"]);
        if st.is_word(i, "TABLE") {
            subject_at = Some(st.skip_words(i + 1, &["IF", "EXISTS"]));
        }
    } else if starts(&["TRUNCATE"]) {
        subject_at = Some(st.skip_words(1, &["TABLE"]));
    } else if starts(&["DROP", "TABLE"]) {
        return route_drop_tables(&st, st.skip_words(2, &["IF", "EXISTS"]), default_schema, filter);
    } else if starts(&["DROP", "INDEX"]) {
        return route_index(&st, 2, default_schema, filter);
    } else if starts(&["RENAME", "TABLE"]) || starts(&["RENAME", "TABLES"]) {
        return route_rename_tables(&st, 2, default_schema, filter);
    }

    let Some(at) = subject_at else {
        return if looks_like_ddl(sql) && filter.selects_schema(default_schema) && starts_with_table_ddl(&head) {
            DdlRoute::Unreplayable { reason: "the statement's form is not recognised".into() }
        } else {
            DdlRoute::Ignore
        };
    };
    let Some(subject) = st.name_at(at, default_schema) else {
        return if filter.selects_schema(default_schema) {
            DdlRoute::Unreplayable { reason: "no table name where one was expected".into() }
        } else {
            DdlRoute::Ignore
        };
    };
    // MariaDB's `ALTER TABLE t WAIT n | NOWAIT ...`: the clauses start after them.
    let clause_start = st.skip_wait(subject.last + 1);
    let Some((ts, tt)) = filter.target_of(&subject.schema, &subject.table) else {
        // An unreplicated table renamed to a replicated name: its rows were never copied.
        if starts(&["ALTER"]) {
            let mut depth = 0i32;
            for i in clause_start..st.tokens.len() {
                depth += st.depth_change(i);
                if let Some(name) =
                    st.alter_rename_at(i, clause_start, depth).and_then(|at| st.name_at(at, default_schema))
                {
                    if filter.target_of(&name.schema, &name.table).is_some() {
                        return DdlRoute::Unreplayable {
                            reason: format!(
                                "it renames {}.{}, which the job does not replicate (its rows were never copied), to the replicated name {}.{}",
                                subject.schema, subject.table, name.schema, name.table
                            ),
                        };
                    }
                }
            }
        }
        return DdlRoute::Ignore;
    };
    let mut edits = vec![Edit { first: subject.first, last: subject.last, text: qualified(&ts, &tt) }];
    let mut source_tables = vec![(subject.schema.clone(), subject.table.clone())];
    // Other table references: LIKE t, REFERENCES t, RENAME [TO|AS] t (ALTER TABLE), the parts of CREATE ... SELECT
    // are left alone (a SELECT from other tables runs on the target as written).
    let mut i = subject.last + 1;
    let mut depth = 0i32;
    while i < st.tokens.len() {
        depth += st.depth_change(i);
        let like = st.is_word(i, "LIKE") && (i == clause_start || (depth == 1 && st.is_punct(i - 1, "(")));
        // (index of the referenced name, whether it is the table's new name)
        let reference_at = if like || st.is_word(i, "REFERENCES") {
            Some((i + 1, false))
        } else if starts(&["ALTER"]) {
            st.alter_rename_at(i, clause_start, depth).map(|at| (at, true))
        } else {
            None
        };
        if let Some((at, is_rename)) = reference_at {
            if let Some(name) = st.name_at(at, default_schema) {
                match filter.target_of(&name.schema, &name.table) {
                    Some((s, t)) => {
                        edits.push(Edit { first: name.first, last: name.last, text: qualified(&s, &t) });
                        if is_rename {
                            source_tables.push((name.schema.clone(), name.table.clone()));
                        }
                    }
                    None if is_rename => {
                        return DdlRoute::Unreplayable {
                            reason: format!(
                                "it renames the replicated table {}.{} to {}.{}, which the job does not replicate",
                                subject.schema, subject.table, name.schema, name.table
                            ),
                        };
                    }
                    // A LIKE or REFERENCES to an unselected table: the target must have it under the same name.
                    None if name.qualified => {}
                    None => edits.push(Edit {
                        first: name.first,
                        last: name.last,
                        text: qualified(&filter.target_schema_of(&name.schema), &name.table),
                    }),
                }
                i = name.last;
            }
        }
        i += 1;
    }
    DdlRoute::Replay { sql: apply_edits(&st, edits), use_schema: use_schema(filter, default_schema), source_tables }
}

/// The target's default schema for a replayed statement: the renamed session schema when it is replicated
/// (statement parts we do not rewrite, such as a SELECT, then resolve there), else none.
fn use_schema(filter: &TableFilter, default_schema: &str) -> String {
    if !default_schema.is_empty() && filter.selects_schema(default_schema) {
        filter.target_schema_of(default_schema)
    } else {
        String::new()
    }
}

fn starts_with_table_ddl(head: &[String]) -> bool {
    let second = head.get(1).map(String::as_str).unwrap_or("");
    matches!(head.first().map(String::as_str), Some("CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE"))
        && matches!(
            second,
            "TABLE" | "TABLES" | "INDEX" | "UNIQUE" | "FULLTEXT" | "SPATIAL" | "ONLINE" | "IGNORE" | "OR"
        )
}

fn looks_like_ddl(sql: &str) -> bool {
    let head = sql.trim_start().get(..8).unwrap_or("").to_ascii_uppercase();
    ["CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"].iter().any(|k| head.starts_with(k))
}

fn looks_like_dml(sql: &str) -> bool {
    let head = sql.trim_start().get(..7).unwrap_or(sql.trim_start()).to_ascii_uppercase();
    ["INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD", "WITH"].iter().any(|k| head.starts_with(k))
}

/// Words that may follow a table reference and are not its alias.
const NOT_AN_ALIAS: &[&str] = &[
    "ON",
    "USING",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "CROSS",
    "NATURAL",
    "STRAIGHT_JOIN",
    "OUTER",
    "WHERE",
    "SET",
    "PARTITION",
    "USE",
    "IGNORE",
    "FORCE",
    "ORDER",
    "LIMIT",
    "FROM",
    "RETURNING",
    "VALUES",
    "VALUE",
    "SELECT",
    "DEFAULT",
    "FOR",
    "GROUP",
    "HAVING",
    "WINDOW",
    "UNION",
];

/// A table named in a DML statement's table references, with its alias.
struct TableRef {
    name: NameRef,
    alias: Option<String>,
}

/// The index of a DML statement's verb: 0, or after MySQL's `WITH ... ` common table expressions or MariaDB's
/// `SET STATEMENT ... FOR`. `None` when the statement is not DML.
fn dml_verb_at(st: &Statement<'_>) -> Option<usize> {
    const VERBS: &[&str] = &["INSERT", "REPLACE", "UPDATE", "DELETE"];
    // Inside a statement, `INSERT(`/`REPLACE(` are functions.
    let is_verb = |i: usize| {
        (VERBS.iter().any(|v| st.is_word(i, v)) && (i == 0 || !st.is_punct(i + 1, "(")))
            || (st.is_word(i, "LOAD") && (st.is_word(i + 1, "DATA") || st.is_word(i + 1, "XML")))
    };
    if is_verb(0) {
        return Some(0);
    }
    let after = if st.is_word(0, "WITH") {
        1
    } else if st.is_word(0, "SET") && st.is_word(1, "STATEMENT") {
        2
    } else {
        return None;
    };
    let mut depth = 0i32;
    for i in after..st.tokens.len() {
        depth += st.depth_change(i);
        if depth != 0 {
            continue;
        }
        if st.is_word(0, "SET") && st.is_word(i, "FOR") {
            return is_verb(i + 1).then_some(i + 1);
        }
        if st.is_word(0, "WITH") && is_verb(i) {
            return Some(i);
        }
    }
    None
}

/// Reads table references (`t [AS] a, s.u JOIN v ON ...`) from `i` until one of the `stop` words outside
/// parentheses; returns them and where it stopped. Derived tables (`(SELECT ...) x`) are only read, so they are
/// left out. `None` when a reference is not recognised (a parenthesised join, a missing name).
fn table_refs(st: &Statement<'_>, mut i: usize, default_schema: &str, stop: &[&str]) -> Option<(Vec<TableRef>, usize)> {
    let mut refs = Vec::new();
    let mut depth = 0i32;
    let mut expect_name = true;
    while i < st.tokens.len() {
        if depth == 0 && (stop.iter().any(|w| st.is_word(i, w)) || st.is_punct(i, ";")) {
            break;
        }
        if depth == 0 && expect_name {
            expect_name = false;
            if st.is_punct(i, "(") {
                if !(st.is_word(i + 1, "SELECT") || st.is_word(i + 1, "WITH") || st.is_word(i + 1, "VALUES")) {
                    return None;
                }
            } else {
                let name = st.name_at(i, default_schema)?;
                i = name.last + 1;
                let mut alias = None;
                if st.is_word(i, "AS") && st.is_ident(i + 1) {
                    alias = Some(st.ident(i + 1));
                    i += 2;
                } else if st.is_ident(i) && !NOT_AN_ALIAS.iter().any(|w| st.is_word(i, w)) {
                    alias = Some(st.ident(i));
                    i += 1;
                }
                refs.push(TableRef { name, alias });
                continue;
            }
        }
        depth += st.depth_change(i);
        if depth == 0 && (st.is_punct(i, ",") || st.is_word(i, "JOIN") || st.is_word(i, "STRAIGHT_JOIN")) {
            expect_name = true;
        }
        i += 1;
    }
    if refs.is_empty() {
        return None;
    }
    Some((refs, i))
}

/// The table a name in a multi-table statement stands for: a reference's alias, or a table named as written.
fn resolve_ref<'r>(refs: &'r [TableRef], qualifier: Option<&str>, table: &str) -> Option<&'r NameRef> {
    refs.iter()
        .find(|r| qualifier.is_none() && r.alias.as_deref() == Some(table))
        .or_else(|| refs.iter().find(|r| r.name.table == table && qualifier.is_none_or(|q| r.name.schema == q)))
        .map(|r| &r.name)
}

/// The tables a multi-table `UPDATE` writes: those named by the `SET` assignments' qualified columns (all of them
/// when a column is not qualified).
fn updated_tables(st: &Statement<'_>, mut i: usize, refs: &[TableRef]) -> Vec<NameRef> {
    let all = || refs.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if refs.len() == 1 {
        return all();
    }
    let mut out = Vec::new();
    while i < st.tokens.len() {
        let target = if st.is_ident(i) && st.is_punct(i + 1, ".") && st.is_ident(i + 2) {
            if st.is_punct(i + 3, ".") && st.is_ident(i + 4) {
                resolve_ref(refs, Some(&st.ident(i)), &st.ident(i + 2))
            } else {
                resolve_ref(refs, None, &st.ident(i))
            }
        } else {
            None
        };
        let Some(target) = target else { return all() };
        out.push(target.clone());
        // The next assignment, after a comma outside parentheses.
        let mut depth = 0i32;
        let mut next = None;
        while i < st.tokens.len() {
            depth += st.depth_change(i);
            if depth == 0 && st.is_punct(i, ",") {
                next = Some(i + 1);
                break;
            }
            if depth == 0 && ["WHERE", "ORDER", "LIMIT"].iter().any(|w| st.is_word(i, w)) {
                break;
            }
            i += 1;
        }
        match next {
            Some(n) => i = n,
            None => break,
        }
    }
    out
}

/// DML in a QUERY event (`INSERT`, `REPLACE`, `UPDATE`, `DELETE`, `LOAD DATA`, multi-table forms included): the
/// replicated tables it writes. `None` when the statement is not DML.
fn route_dml(st: &Statement<'_>, default_schema: &str, filter: &TableFilter) -> Option<DdlRoute> {
    let verb_at = dml_verb_at(st)?;
    let skip_all = |mut i: usize, words: &[&str]| {
        while words.iter().any(|w| st.is_word(i, w)) {
            i += 1;
        }
        i
    };
    let at_depth_zero = |from: usize, word: &str| {
        let mut depth = 0i32;
        (from..st.tokens.len()).find(|&i| {
            depth += st.depth_change(i);
            depth == 0 && st.is_word(i, word)
        })
    };
    let mut i = verb_at + 1;
    let verb = st.text(verb_at).to_ascii_uppercase();
    let (written, kinds): (Option<Vec<NameRef>>, DmlKinds) = match verb.as_str() {
        "INSERT" | "REPLACE" => {
            i = skip_all(i, &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"]);
            i = st.skip_words(i, &["INTO"]);
            let upserts = verb == "REPLACE"
                || at_depth_zero(i, "DUPLICATE").is_some_and(|d| st.is_word(d - 1, "ON") && st.is_word(d + 1, "KEY"));
            let kinds = if upserts { DmlKinds::ALL } else { DmlKinds { insert: true, ..Default::default() } };
            (st.name_at(i, default_schema).map(|n| vec![n]), kinds)
        }
        "UPDATE" => {
            i = skip_all(i, &["LOW_PRIORITY", "IGNORE"]);
            let written = table_refs(st, i, default_schema, &["SET"])
                .filter(|(_, at)| st.is_word(*at, "SET"))
                .map(|(refs, at)| updated_tables(st, at + 1, &refs));
            (written, DmlKinds { update: true, ..Default::default() })
        }
        "DELETE" => {
            i = skip_all(i, &["LOW_PRIORITY", "QUICK", "IGNORE"]);
            const END: &[&str] = &["WHERE", "ORDER", "LIMIT", "RETURNING"];
            let resolve = |targets: Vec<TableRef>, refs: Vec<TableRef>| {
                targets
                    .iter()
                    .map(|t| {
                        let qualifier = t.name.qualified.then_some(t.name.schema.as_str());
                        resolve_ref(&refs, qualifier, &t.name.table).unwrap_or(&t.name).clone()
                    })
                    .collect::<Vec<_>>()
            };
            let written = if st.is_word(i, "FROM") {
                // DELETE FROM t ... | DELETE FROM t1, t2 USING references ...
                table_refs(st, i + 1, default_schema, &["USING", "WHERE", "ORDER", "LIMIT", "RETURNING"]).and_then(
                    |(targets, at)| {
                        if st.is_word(at, "USING") {
                            table_refs(st, at + 1, default_schema, END).map(|(refs, _)| resolve(targets, refs))
                        } else {
                            Some(targets.into_iter().map(|t| t.name).collect())
                        }
                    },
                )
            } else {
                // DELETE t1, t2 FROM references ...
                table_refs(st, i, default_schema, &["FROM"]).filter(|(_, at)| st.is_word(*at, "FROM")).and_then(
                    |(targets, at)| table_refs(st, at + 1, default_schema, END).map(|(refs, _)| resolve(targets, refs)),
                )
            };
            (written, DmlKinds { delete: true, ..Default::default() })
        }
        _ => {
            // LOAD DATA|XML ... [REPLACE|IGNORE] INTO TABLE t
            let into = at_depth_zero(i, "INTO").filter(|&at| st.is_word(at + 1, "TABLE"));
            let replaces = into.is_some_and(|at| st.is_word(at - 1, "REPLACE"));
            let kinds = if replaces { DmlKinds::ALL } else { DmlKinds { insert: true, ..Default::default() } };
            (into.and_then(|at| st.name_at(at + 2, default_schema)).map(|n| vec![n]), kinds)
        }
    };
    let Some(written) = written else {
        return Some(if filter.selects_schema(default_schema) {
            DdlRoute::StatementDml { tables: Vec::new(), kinds }
        } else {
            DdlRoute::Ignore
        });
    };
    let mut tables: Vec<(String, String)> = Vec::new();
    for name in written {
        let key = (name.schema, name.table);
        if filter.target_of(&key.0, &key.1).is_some() && !tables.contains(&key) {
            tables.push(key);
        }
    }
    Some(if tables.is_empty() { DdlRoute::Ignore } else { DdlRoute::StatementDml { tables, kinds } })
}

/// `CREATE INDEX name ... ON table ...` / `DROP INDEX name ON table`, starting after INDEX.
fn route_index(st: &Statement<'_>, mut i: usize, default_schema: &str, filter: &TableFilter) -> DdlRoute {
    i = st.skip_words(i, &["IF", "NOT", "EXISTS"]);
    i = st.skip_words(i, &["IF", "EXISTS"]);
    while i < st.tokens.len() && !st.is_word(i, "ON") {
        i += 1;
    }
    let Some(name) = st.name_at(i + 1, default_schema) else {
        return if filter.selects_schema(default_schema) {
            DdlRoute::Unreplayable { reason: "no table name after ON".into() }
        } else {
            DdlRoute::Ignore
        };
    };
    match filter.target_of(&name.schema, &name.table) {
        None => DdlRoute::Ignore,
        Some((s, t)) => DdlRoute::Replay {
            sql: apply_edits(st, vec![Edit { first: name.first, last: name.last, text: qualified(&s, &t) }]),
            use_schema: use_schema(filter, default_schema),
            source_tables: vec![(name.schema, name.table)],
        },
    }
}

/// `DROP TABLE [IF EXISTS] a, b, ...`: only the replicated tables are dropped on the target.
fn route_drop_tables(st: &Statement<'_>, mut i: usize, default_schema: &str, filter: &TableFilter) -> DdlRoute {
    let first = i;
    let mut kept = Vec::new();
    let mut source_tables = Vec::new();
    let mut names_end = i;
    while let Some(name) = st.name_at(i, default_schema) {
        if let Some((s, t)) = filter.target_of(&name.schema, &name.table) {
            kept.push(qualified(&s, &t));
            source_tables.push((name.schema.clone(), name.table.clone()));
        }
        names_end = name.last + 1;
        if st.is_punct(name.last + 1, ",") {
            i = name.last + 2;
        } else {
            break;
        }
    }
    if kept.is_empty() {
        return DdlRoute::Ignore;
    }
    // The list of names is replaced; the statement's head (DROP TABLE IF EXISTS) and tail (RESTRICT/CASCADE,
    // comments) stay.
    let edits = vec![Edit { first, last: names_end - 1, text: kept.join(", ") }];
    DdlRoute::Replay { sql: apply_edits(st, edits), use_schema: use_schema(filter, default_schema), source_tables }
}

/// `RENAME TABLE a TO b, c TO d`: every pair must stay inside or outside the selection.
fn route_rename_tables(st: &Statement<'_>, mut i: usize, default_schema: &str, filter: &TableFilter) -> DdlRoute {
    let mut pairs = Vec::new();
    let mut source_tables = Vec::new();
    // MariaDB: RENAME TABLE [IF EXISTS] a [WAIT n | NOWAIT] TO b, ...
    i = st.skip_words(i, &["IF", "EXISTS"]);
    let names_start = i;
    let mut last = i;
    let mut complete = false;
    while let Some(from) = st.name_at(i, default_schema) {
        let to_at = st.skip_wait(from.last + 1);
        if !st.is_word(to_at, "TO") {
            break;
        }
        let Some(to) = st.name_at(to_at + 1, default_schema) else { break };
        last = to.last;
        match (filter.target_of(&from.schema, &from.table), filter.target_of(&to.schema, &to.table)) {
            (None, None) => {}
            (Some((fs, ft)), Some((ts, tt))) => {
                pairs.push(format!("{} TO {}", qualified(&fs, &ft), qualified(&ts, &tt)));
                source_tables.push((from.schema.clone(), from.table.clone()));
                source_tables.push((to.schema.clone(), to.table.clone()));
            }
            (Some(_), None) => {
                return DdlRoute::Unreplayable {
                    reason: format!(
                        "it renames the replicated table {}.{} to {}.{}, which the job does not replicate",
                        from.schema, from.table, to.schema, to.table
                    ),
                }
            }
            (None, Some(_)) => {
                return DdlRoute::Unreplayable {
                    reason: format!(
                        "it renames {}.{}, which the job does not replicate (its rows were never copied), to the replicated name {}.{}",
                        from.schema, from.table, to.schema, to.table
                    ),
                }
            }
        }
        if st.is_punct(to.last + 1, ",") {
            i = to.last + 2;
        } else {
            complete = to.last + 1 >= st.tokens.len() || st.is_punct(to.last + 1, ";");
            break;
        }
    }
    if !complete && (filter.selects_schema(default_schema) || !pairs.is_empty()) {
        return DdlRoute::Unreplayable { reason: "the list of RENAME TABLE pairs is not recognised".into() };
    }
    if pairs.is_empty() {
        return DdlRoute::Ignore;
    }
    let edits = vec![Edit { first: names_start, last, text: pairs.join(", ") }];
    DdlRoute::Replay { sql: apply_edits(st, edits), use_schema: use_schema(filter, default_schema), source_tables }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{NameMatch, SchemaRule, TableRule};

    fn rule(table: &str, rename: Option<&str>) -> TableRule {
        TableRule {
            table: NameMatch::Exact(table.into()),
            rename: rename.map(String::from),
            row_filter: None,
            column_map: None,
        }
    }

    fn filter() -> TableFilter {
        TableFilter {
            replicate: vec![
                SchemaRule {
                    schema: NameMatch::Exact("test".into()),
                    rename: Some("test_t".into()),
                    tables: vec![rule("t1", Some("t1_t")), rule("t2", None)],
                },
                SchemaRule {
                    schema: NameMatch::Regex(TableFilter::compile_regex(r"shop_(\w+)").unwrap()),
                    rename: Some("all_${1}".into()),
                    tables: vec![],
                },
            ],
            ignore: vec![],
        }
    }

    fn replay(sql: &str, default: &str) -> (String, String, Vec<(String, String)>) {
        match route(sql, default, &filter()) {
            DdlRoute::Replay { sql, use_schema, source_tables } => (sql, use_schema, source_tables),
            other => panic!("{sql}: expected a replay, got {other:?}"),
        }
    }

    fn st(s: &str, t: &str) -> (String, String) {
        (s.into(), t.into())
    }

    #[test]
    fn renames_the_subject_of_table_ddl() {
        let (sql, use_schema, tables) = replay("ALTER TABLE t1 ADD COLUMN c int", "test");
        assert_eq!(sql, "ALTER TABLE `test_t`.`t1_t` ADD COLUMN c int");
        assert_eq!(use_schema, "test_t");
        assert_eq!(tables, vec![st("test", "t1")]);
        let (sql, _, _) = replay("create table if not exists `test`.`t2` (id int primary key) /* c */", "other");
        assert_eq!(sql, "create table if not exists `test_t`.`t2` (id int primary key) /* c */");
        let (sql, use_schema, _) = replay("TRUNCATE shop_eu.orders", "");
        assert_eq!(sql, "TRUNCATE `all_eu`.`orders`");
        assert_eq!(use_schema, "");
        let (sql, _, _) = replay("CREATE UNIQUE INDEX k ON t2 (a)", "test");
        assert_eq!(sql, "CREATE UNIQUE INDEX k ON `test_t`.`t2` (a)");
        let (sql, _, _) = replay("DROP INDEX k ON test.t1", "");
        assert_eq!(sql, "DROP INDEX k ON `test_t`.`t1_t`");
        let (sql, _, _) = replay("ALTER ONLINE TABLE t1 MODIFY c bigint, RENAME COLUMN a TO b", "test");
        assert_eq!(sql, "ALTER ONLINE TABLE `test_t`.`t1_t` MODIFY c bigint, RENAME COLUMN a TO b");
    }

    #[test]
    fn renames_other_references() {
        let (sql, _, _) = replay("CREATE TABLE t2 LIKE t1", "test");
        assert_eq!(sql, "CREATE TABLE `test_t`.`t2` LIKE `test_t`.`t1_t`");
        let (sql, _, _) =
            replay("CREATE TABLE shop_eu.o (id int, c int, FOREIGN KEY (c) REFERENCES customers (id))", "shop_eu");
        assert_eq!(
            sql,
            "CREATE TABLE `all_eu`.`o` (id int, c int, FOREIGN KEY (c) REFERENCES `all_eu`.`customers` (id))"
        );
        let (sql, _, tables) = replay("ALTER TABLE t1 RENAME TO t2", "test");
        assert_eq!(sql, "ALTER TABLE `test_t`.`t1_t` RENAME TO `test_t`.`t2`");
        assert_eq!(tables, vec![st("test", "t1"), st("test", "t2")]);
        // A string that looks like a name is left alone.
        let (sql, _, _) = replay("ALTER TABLE t1 COMMENT 'REFERENCES t1'", "test");
        assert_eq!(sql, "ALTER TABLE `test_t`.`t1_t` COMMENT 'REFERENCES t1'");
    }

    #[test]
    fn multi_table_statements_keep_only_replicated_tables() {
        let (sql, _, tables) = replay("DROP TABLE IF EXISTS t1, other, test.t2 /* generated by server */", "test");
        assert_eq!(sql, "DROP TABLE IF EXISTS `test_t`.`t1_t`, `test_t`.`t2` /* generated by server */");
        assert_eq!(tables, vec![st("test", "t1"), st("test", "t2")]);
        assert_eq!(route("DROP TABLE x, y", "test", &filter()), DdlRoute::Ignore);
        let (sql, _, _) = replay("RENAME TABLE t1 TO t2, x TO y", "test");
        assert_eq!(sql, "RENAME TABLE `test_t`.`t1_t` TO `test_t`.`t2`");
        assert!(matches!(route("RENAME TABLE t1 TO x", "test", &filter()), DdlRoute::Unreplayable { .. }));
        assert!(matches!(route("RENAME TABLE x TO t1", "test", &filter()), DdlRoute::Unreplayable { .. }));
    }

    #[test]
    fn gh_ost_shadow_tables_follow_their_table() {
        let (sql, _, _) = replay("create /* gh-ost */ table `test`.`_t1_gho` like `test`.`t1`", "test");
        assert_eq!(sql, "create /* gh-ost */ table `test_t`.`_t1_t_gho` like `test_t`.`t1_t`");
        let (sql, _, _) = replay(
            "rename /* gh-ost */ table `test`.`t1` to `test`.`_t1_del`, `test`.`_t1_gho` to `test`.`t1`",
            "test",
        );
        assert_eq!(
            sql,
            "rename /* gh-ost */ table `test_t`.`t1_t` TO `test_t`.`_t1_t_del`, `test_t`.`_t1_t_gho` TO `test_t`.`t1_t`"
        );
    }

    #[test]
    fn schema_ddl_and_what_is_never_replicated() {
        let (sql, use_schema, _) = replay("CREATE DATABASE IF NOT EXISTS `shop_us`", "");
        assert_eq!(sql, "CREATE DATABASE IF NOT EXISTS `all_us`");
        assert_eq!(use_schema, "");
        assert_eq!(route("drop schema other", "", &filter()), DdlRoute::Ignore);
        assert_eq!(route("CREATE VIEW v AS SELECT 1", "test", &filter()), DdlRoute::Ignore);
        assert_eq!(
            route("CREATE DEFINER=`a`@`%` TRIGGER x BEFORE INSERT ON t1 FOR EACH ROW SET @a=1", "test", &filter()),
            DdlRoute::Ignore
        );
        assert_eq!(route("GRANT ALL ON *.* TO u", "test", &filter()), DdlRoute::Ignore);
        assert_eq!(route("ALTER TABLE x ADD c int", "test", &filter()), DdlRoute::Ignore);
        assert_eq!(route("DROP TEMPORARY TABLE t1", "test", &filter()), DdlRoute::Ignore);
    }

    #[test]
    fn unparseable_ddl_on_selected_schemas_is_reported() {
        assert!(matches!(route("ALTER TABLE `t1 ADD c int", "test", &filter()), DdlRoute::Unreplayable { .. }));
        assert!(matches!(route("ALTER TABLE (oops)", "test", &filter()), DdlRoute::Unreplayable { .. }));
        assert_eq!(route("ALTER TABLE (oops)", "elsewhere", &filter()), DdlRoute::Ignore);
    }

    #[test]
    fn mariadb_forms_and_what_the_head_hides() {
        let f = filter();
        for sql in [
            "CREATE OR REPLACE PROCEDURE p() SELECT 1",
            "CREATE OR REPLACE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON t1 FOR EACH ROW SET @a = 1",
            "CREATE DEFINER = root@localhost SQL SECURITY INVOKER VIEW v AS SELECT 1",
            "CREATE OR REPLACE ALGORITHM=MERGE VIEW v AS SELECT 1",
            "CREATE OR REPLACE SEQUENCE s",
            "CREATE AGGREGATE FUNCTION f() RETURNS INT RETURN 1",
        ] {
            assert_eq!(route(sql, "test", &f), DdlRoute::Ignore, "{sql}");
        }
        let (sql, _, _) = replay("CREATE OR REPLACE DATABASE shop_eu", "");
        assert_eq!(sql, "CREATE OR REPLACE DATABASE `all_eu`");
        let (sql, use_schema, _) = replay("ALTER DATABASE CHARACTER SET utf8mb4", "test");
        assert_eq!((sql.as_str(), use_schema.as_str()), ("ALTER DATABASE CHARACTER SET utf8mb4", "test_t"));
        assert_eq!(route("ALTER DATABASE DEFAULT CHARSET latin1", "elsewhere", &f), DdlRoute::Ignore);
        let (sql, _, _) = replay("RENAME TABLE IF EXISTS t1 NOWAIT TO t2", "test");
        assert_eq!(sql, "RENAME TABLE IF EXISTS `test_t`.`t1_t` TO `test_t`.`t2`");
        let (sql, _, _) = replay("RENAME TABLE t1 WAIT 5 TO t2", "test");
        assert_eq!(sql, "RENAME TABLE `test_t`.`t1_t` TO `test_t`.`t2`");
        assert!(matches!(route("RENAME TABLE t1 TO", "test", &f), DdlRoute::Unreplayable { .. }));
        let (sql, _, tables) = replay("ALTER TABLE t1 WAIT 5 RENAME TO t2", "test");
        assert_eq!(sql, "ALTER TABLE `test_t`.`t1_t` WAIT 5 RENAME TO `test_t`.`t2`");
        assert_eq!(tables.len(), 2);
        assert!(matches!(route("ALTER TABLE other RENAME TO t1", "test", &f), DdlRoute::Unreplayable { .. }));
        assert_eq!(route("ALTER TABLE other RENAME TO other2", "test", &f), DdlRoute::Ignore);
    }

    #[test]
    fn markers_go_where_the_server_keeps_them() {
        let m = "/*dtle_gtid1 j 1 5 dtle_gtid*/";
        assert_eq!(with_marker("DROP TABLE IF EXISTS `a`.`b`", m), format!("DROP TABLE IF EXISTS {m} `a`.`b`"));
        assert_eq!(with_marker("drop table t", m), format!("drop table {m} t"));
        assert_eq!(with_marker("ALTER TABLE t ADD c int", m), format!("ALTER TABLE t ADD c int {m}"));
        assert_eq!(ddl_marker_origin(&with_marker("DROP TABLE t", m)).as_deref(), Some("1"));
    }

    #[test]
    fn markers_round_trip() {
        let m = ddl_marker("job 1", "0-1", 42);
        assert_eq!(m, "/*dtle_gtid1 job_1 0-1 42 dtle_gtid*/");
        assert_eq!(ddl_marker_origin(&format!("ALTER TABLE t ADD c int {m}")).as_deref(), Some("0-1"));
        assert_eq!(ddl_marker_origin("ALTER TABLE t ADD c int"), None);
    }

    fn dml(sql: &str, default: &str) -> Vec<(String, String)> {
        match route(sql, default, &filter()) {
            DdlRoute::StatementDml { tables, .. } => tables,
            other => panic!("{sql}: expected statement DML, got {other:?}"),
        }
    }

    #[test]
    fn statement_dml_on_replicated_tables_is_reported() {
        let t1 = || vec![st("test", "t1")];
        // Single-table forms, with the session's schema or a qualified name.
        assert_eq!(dml("UPDATE t1 SET a = 1 WHERE id = 2", "test"), t1());
        assert_eq!(dml("update LOW_PRIORITY IGNORE `test`.`t1` set a = 1", "other"), t1());
        assert_eq!(dml("INSERT INTO t1 VALUES (1)", "test"), t1());
        assert_eq!(dml("INSERT /* c */ IGNORE test.t1 (a) SELECT a FROM other.x", "other"), t1());
        assert_eq!(dml("REPLACE INTO test.t1 SET a = 1", ""), t1());
        assert_eq!(dml("DELETE FROM t1 WHERE id = 1", "test"), t1());
        assert_eq!(dml("DELETE QUICK FROM test.t1 AS x WHERE x.id = 1 LIMIT 3", ""), t1());
        assert_eq!(
            dml("LOAD DATA LOCAL INFILE '/tmp/SQL_LOAD-1' REPLACE INTO TABLE t1 FIELDS TERMINATED BY ','", "test"),
            t1()
        );
        assert_eq!(dml("INSERT INTO shop_eu.orders VALUES (1)", ""), vec![st("shop_eu", "orders")]);
        assert_eq!(dml("SET STATEMENT max_statement_time=10 FOR DELETE FROM t1", "test"), t1());
        assert_eq!(dml("WITH c AS (SELECT 1 AS id) UPDATE t1 JOIN c USING (id) SET t1.a = 1", "test"), t1());
        // Multi-table forms: the tables written, through their aliases.
        assert_eq!(dml("UPDATE t1 a JOIN other.x b ON a.id = b.id SET a.v = b.v", "test"), t1());
        assert_eq!(dml("UPDATE other.x b, test.t1 SET t1.v = b.v, b.w = 2", ""), t1());
        assert_eq!(
            dml("UPDATE t1, t2 SET v = 1", "test"),
            vec![st("test", "t1"), st("test", "t2")],
            "an unqualified column: every table may be written"
        );
        assert_eq!(dml("DELETE a, b FROM t1 AS a INNER JOIN other.x b ON a.id = b.id", "test"), t1());
        assert_eq!(dml("DELETE FROM a.* USING test.t1 AS a, other.x", "other"), t1());
        assert_eq!(
            dml("DELETE t1 FROM t1 LEFT JOIN (SELECT id FROM t2) d ON d.id = t1.id WHERE d.id IS NULL", "test"),
            t1()
        );
        // Not recognised, in a replicated schema: reported without tables.
        assert_eq!(dml("UPDATE (t1 JOIN t2 ON t1.id = t2.id) SET t1.a = 1", "test"), Vec::new());
        assert_eq!(dml("INSERT INTO t1 VALUES ('unterminated)", "test"), Vec::new());
        // What it may do, for SqlFilter.
        let kinds = |sql: &str| match route(sql, "test", &filter()) {
            DdlRoute::StatementDml { kinds, .. } => kinds,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(kinds("INSERT INTO t1 VALUES (1)"), DmlKinds { insert: true, update: false, delete: false });
        assert_eq!(kinds("INSERT INTO t1 VALUES (1) ON DUPLICATE KEY UPDATE a = 2"), DmlKinds::ALL);
        assert_eq!(kinds("REPLACE t1 VALUES (1)"), DmlKinds::ALL);
        assert_eq!(kinds("DELETE FROM t1"), DmlKinds { insert: false, update: false, delete: true });
    }

    #[test]
    fn statement_dml_elsewhere_is_ignored() {
        for (sql, default) in [
            ("UPDATE x SET a = 1", "test"),
            ("UPDATE other.t1 SET a = 1", "test"),
            ("INSERT INTO t3 VALUES (1)", "test"),
            ("INSERT INTO other.x SELECT * FROM test.t1", "test"),
            ("UPDATE other.x o JOIN test.t1 r ON o.id = r.id SET o.v = r.v", "test"),
            ("DELETE o FROM other.x o JOIN test.t1 r ON o.id = r.id", "test"),
            ("DELETE FROM mysql.user WHERE user = 'x'", "test"),
            ("UPDATE (a JOIN b ON a.id = b.id) SET a.x = 1", "elsewhere"),
            ("SELECT REPLACE(a, 'x', 'y') FROM t1", "test"),
            ("WITH c AS (SELECT 1) SELECT * FROM c", "test"),
            ("INSERT INTO dtle.replication_position VALUES (1)", "test"),
        ] {
            assert_eq!(route(sql, default, &filter()), DdlRoute::Ignore, "{sql}");
        }
    }
}
