//! Column defaults read from DDL text: Debezium's schemas carry each column's default (`"default": 5`), and Kafka
//! Connect's JsonConverter writes a null value as that default. The engine's table definitions have no defaults, so
//! the encoder follows them from the `CREATE TABLE` statements of the full copy (`SHOW CREATE TABLE`) and the DDL of
//! the binlog. A small tokenizer, not a SQL parser: what it does not understand leaves the defaults as they were.

use std::collections::HashMap;

/// A column's default as written in DDL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlDefault {
    /// A quoted string literal, unescaped.
    Str(String),
    /// A number, `b'101'`, `x'ff'`, a function call like `current_timestamp()`, or another bare expression.
    Bare(String),
}

/// `None`: `DEFAULT NULL` or no default.
pub type Defaults = HashMap<String, Option<SqlDefault>>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, number or operator.
    Word(String),
    /// `name` in backticks (or double quotes).
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Dot,
}

fn tokenize(sql: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                out.push(Tok::Dot);
                i += 1;
            }
            '`' | '"' => {
                let q = c;
                let mut s = String::new();
                i += 1;
                while i < chars.len() {
                    if chars[i] == q {
                        if chars.get(i + 1) == Some(&q) {
                            s.push(q);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                i += 1;
                out.push(Tok::Ident(s));
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() {
                    match chars[i] {
                        '\'' if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        '\'' => break,
                        '\\' if i + 1 < chars.len() => {
                            s.push(match chars[i + 1] {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                'Z' => '\u{1a}',
                                'b' => '\u{8}',
                                other => other,
                            });
                            i += 2;
                        }
                        ch => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            _ => {
                let mut s = String::new();
                // b'0101' / x'ff' / _utf8mb4'..' literals stay one word with their quotes.
                while i < chars.len() {
                    let ch = chars[i];
                    if ch == '\'' && !s.is_empty() {
                        s.push(ch);
                        i += 1;
                        while i < chars.len() && chars[i] != '\'' {
                            s.push(chars[i]);
                            i += 1;
                        }
                        if i < chars.len() {
                            s.push('\'');
                            i += 1;
                        }
                        break;
                    }
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | ',' | '`' | '"' | '\'') {
                        break;
                    }
                    if ch == '.' && !s.chars().all(|d| d.is_ascii_digit() || d == '-' || d == '+') {
                        break;
                    }
                    s.push(ch);
                    i += 1;
                }
                if s.is_empty() {
                    i += 1;
                } else {
                    out.push(Tok::Word(s));
                }
            }
        }
    }
    out
}

fn is_word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
}

fn name_of(t: Option<&Tok>) -> Option<String> {
    match t {
        Some(Tok::Ident(s)) | Some(Tok::Word(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `[db.]table` at `toks[*i]`; advances past it.
fn table_name(toks: &[Tok], i: &mut usize) -> Option<(Option<String>, String)> {
    let first = name_of(toks.get(*i))?;
    *i += 1;
    if toks.get(*i) == Some(&Tok::Dot) {
        let second = name_of(toks.get(*i + 1))?;
        *i += 2;
        return Some((Some(first), second));
    }
    Some((None, first))
}

/// Splits `toks` (a parenthesised body without its parentheses, or a list of ALTER specifications) at the commas
/// of depth 0.
fn split_top(toks: &[Tok]) -> Vec<&[Tok]> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            Tok::Comma if depth == 0 => {
                out.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < toks.len() {
        out.push(&toks[start..]);
    }
    out
}

const NOT_COLUMNS: &[&str] =
    &["PRIMARY", "KEY", "INDEX", "UNIQUE", "CONSTRAINT", "FOREIGN", "FULLTEXT", "SPATIAL", "CHECK", "PERIOD", "SYSTEM"];

/// The default of a column definition (`type ... DEFAULT x ...`, after the name): `None` when it has none or NULL.
fn column_default(def: &[Tok]) -> Option<SqlDefault> {
    let at = def.iter().position(|t| is_word(Some(t), "DEFAULT"))?;
    match def.get(at + 1)? {
        Tok::Str(s) => Some(SqlDefault::Str(s.clone())),
        Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => None,
        Tok::Word(w) => {
            // A function call: `current_timestamp()`, `current_timestamp(6)`.
            let mut text = w.clone();
            if def.get(at + 2) == Some(&Tok::Open) {
                text.push('(');
                let mut j = at + 3;
                while let Some(t) = def.get(j) {
                    match t {
                        Tok::Close => break,
                        Tok::Word(x) => text.push_str(x),
                        _ => {}
                    }
                    j += 1;
                }
                text.push(')');
            }
            Some(SqlDefault::Bare(text))
        }
        Tok::Open => Some(SqlDefault::Bare("(expression)".into())),
        _ => None,
    }
}

/// A column definition (`name type ...`): its name and default; `None` for an index, key or constraint.
fn column_def(item: &[Tok]) -> Option<(String, Option<SqlDefault>)> {
    match item.first()? {
        Tok::Word(w) if NOT_COLUMNS.iter().any(|k| w.eq_ignore_ascii_case(k)) => None,
        t => Some((name_of(Some(t))?, column_default(&item[1..]))),
    }
}

/// The table name and column defaults of a `CREATE TABLE` statement.
pub fn create_table_defaults(sql: &str) -> Option<(String, Defaults)> {
    let toks = tokenize(sql);
    let (_, table, body) = parse_create(&toks)?;
    Some((table, body))
}

fn parse_create(toks: &[Tok]) -> Option<(Option<String>, String, Defaults)> {
    let mut i = 0;
    if !is_word(toks.first(), "CREATE") {
        return None;
    }
    i += 1;
    while is_word(toks.get(i), "OR") || is_word(toks.get(i), "REPLACE") || is_word(toks.get(i), "TEMPORARY") {
        i += 1;
    }
    if !is_word(toks.get(i), "TABLE") {
        return None;
    }
    i += 1;
    if is_word(toks.get(i), "IF") {
        i += 3;
    }
    let (db, table) = table_name(toks, &mut i)?;
    if toks.get(i) != Some(&Tok::Open) {
        return None; // CREATE TABLE ... LIKE / AS SELECT: not followed.
    }
    let mut depth = 0;
    let mut end = i;
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t {
            Tok::Open => depth += 1,
            Tok::Close => {
                depth -= 1;
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            _ => {}
        }
    }
    let defaults = split_top(&toks[i + 1..end]).into_iter().filter_map(column_def).collect();
    Some((db, table, defaults))
}

/// Follows one DDL statement of the binlog (default database `schema`); true when some defaults changed.
pub fn apply_ddl_defaults(all: &mut HashMap<(String, String), Defaults>, schema: &str, sql: &str) -> bool {
    let toks = tokenize(sql);
    if let Some((db, table, defaults)) = parse_create(&toks) {
        all.insert((db.unwrap_or_else(|| schema.to_string()), table), defaults);
        return true;
    }
    let mut i = 1;
    if is_word(toks.first(), "DROP") && is_word(toks.get(1), "TABLE") {
        i += 1;
        if is_word(toks.get(i), "IF") {
            i += 2;
        }
        let mut changed = false;
        while let Some((db, table)) = table_name(&toks, &mut i) {
            changed |= all.remove(&(db.unwrap_or_else(|| schema.to_string()), table)).is_some();
            if toks.get(i) != Some(&Tok::Comma) {
                break;
            }
            i += 1;
        }
        return changed;
    }
    if is_word(toks.first(), "RENAME") && is_word(toks.get(1), "TABLE") {
        i += 1;
        let mut changed = false;
        while let Some((db, from)) = table_name(&toks, &mut i) {
            if !is_word(toks.get(i), "TO") {
                break;
            }
            i += 1;
            let Some((to_db, to)) = table_name(&toks, &mut i) else { break };
            if let Some(d) = all.remove(&(db.unwrap_or_else(|| schema.to_string()), from)) {
                all.insert((to_db.unwrap_or_else(|| schema.to_string()), to), d);
                changed = true;
            }
            if toks.get(i) != Some(&Tok::Comma) {
                break;
            }
            i += 1;
        }
        return changed;
    }
    if !is_word(toks.first(), "ALTER") {
        return false;
    }
    while i < toks.len() && !is_word(toks.get(i), "TABLE") {
        i += 1; // ALTER [ONLINE] [IGNORE] TABLE
    }
    i += 1;
    if is_word(toks.get(i), "IF") {
        i += 2;
    }
    let Some((db, table)) = table_name(&toks, &mut i) else { return false };
    let key = (db.unwrap_or_else(|| schema.to_string()), table);
    let Some(defaults) = all.get_mut(&key) else { return false };
    let mut changed = false;
    for spec in split_top(&toks[i..]) {
        let mut j = 0;
        let verb = match spec.first() {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            _ => continue,
        };
        j += 1;
        if is_word(spec.get(j), "COLUMN") {
            j += 1;
        }
        if is_word(spec.get(j), "IF") {
            j += if is_word(spec.get(j + 1), "NOT") { 3 } else { 2 };
        }
        match verb.as_str() {
            "ADD" if spec.get(j) == Some(&Tok::Open) => {
                let inner = &spec[j + 1..spec.len().saturating_sub(1)];
                for (name, d) in split_top(inner).into_iter().filter_map(column_def) {
                    defaults.insert(name, d);
                    changed = true;
                }
            }
            "ADD" | "MODIFY" => {
                if let Some((name, d)) = column_def(&spec[j..]) {
                    defaults.insert(name, d);
                    changed = true;
                }
            }
            "CHANGE" => {
                if let (Some(old), Some((name, d))) =
                    (name_of(spec.get(j)), column_def(&spec[(j + 1).min(spec.len())..]))
                {
                    defaults.remove(&old);
                    defaults.insert(name, d);
                    changed = true;
                }
            }
            "ALTER" => {
                let Some(name) = name_of(spec.get(j)) else { continue };
                if is_word(spec.get(j + 1), "SET") && is_word(spec.get(j + 2), "DEFAULT") {
                    defaults.insert(name, column_default(&spec[j + 2..]));
                    changed = true;
                } else if is_word(spec.get(j + 1), "DROP") && is_word(spec.get(j + 2), "DEFAULT") {
                    defaults.insert(name, None);
                    changed = true;
                }
            }
            "DROP" => {
                if let Some(name) = name_of(spec.get(j)) {
                    changed |= defaults.remove(&name).is_some();
                }
            }
            "RENAME" if is_word(spec.get(j + 1), "TO") => {
                if let (Some(old), Some(new)) = (name_of(spec.get(j)), name_of(spec.get(j + 2))) {
                    if let Some(d) = defaults.remove(&old) {
                        defaults.insert(new, d);
                        changed = true;
                    }
                }
            }
            _ => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_of_show_create_table() {
        let sql = "CREATE TABLE `t_int` (\n  `id` int(11) NOT NULL,\n  `dflt` int(11) DEFAULT 5,\n  \
                   `s` varchar(10) DEFAULT 'it''s, (x)',\n  `n` varchar(3) DEFAULT NULL,\n  \
                   `ts` timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),\n  \
                   `b` bit(1) DEFAULT b'1',\n  `d` decimal(5,2) DEFAULT -1.50,\n  \
                   PRIMARY KEY (`id`),\n  KEY `k` (`dflt`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
        let (table, d) = create_table_defaults(sql).unwrap();
        assert_eq!(table, "t_int");
        assert_eq!(d.len(), 7);
        assert_eq!(d["id"], None);
        assert_eq!(d["dflt"], Some(SqlDefault::Bare("5".into())));
        assert_eq!(d["s"], Some(SqlDefault::Str("it's, (x)".into())));
        assert_eq!(d["n"], None);
        assert_eq!(d["ts"], Some(SqlDefault::Bare("current_timestamp()".into())));
        assert_eq!(d["b"], Some(SqlDefault::Bare("b'1'".into())));
        assert_eq!(d["d"], Some(SqlDefault::Bare("-1.50".into())));
    }

    #[test]
    fn alter_table_changes_follow() {
        let mut all = HashMap::new();
        let (t, d) = create_table_defaults("CREATE TABLE `t` (`a` int DEFAULT 1, `b` int)").unwrap();
        all.insert(("db".to_string(), t), d);
        assert!(apply_ddl_defaults(&mut all, "db", "ALTER TABLE db.t ADD COLUMN extra VARCHAR(10) DEFAULT 'x'"));
        assert!(apply_ddl_defaults(&mut all, "db", "alter table `t` alter column b set default 3, drop column a"));
        let d = &all[&("db".to_string(), "t".to_string())];
        assert_eq!(d.get("a"), None);
        assert_eq!(d["b"], Some(SqlDefault::Bare("3".into())));
        assert_eq!(d["extra"], Some(SqlDefault::Str("x".into())));
        assert!(apply_ddl_defaults(&mut all, "db", "RENAME TABLE t TO u"));
        assert!(all.contains_key(&("db".to_string(), "u".to_string())));
        assert!(apply_ddl_defaults(&mut all, "db", "DROP TABLE IF EXISTS `db`.`u`"));
        assert!(all.is_empty());
    }
}
