//! Which source schemas and tables a job replicates, and their names on the target
//! (`ReplicateDoDb` / `ReplicateIgnoreDb` with exact names or regexes and renames).

use std::sync::Arc;

use regex::Regex;

use crate::where_expr::WhereExpr;

/// Schemas never replicated: the server's own and dtle's bookkeeping schema.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "information_schema", "performance_schema", "dtle"];

#[derive(Clone, Debug)]
pub enum NameMatch {
    Exact(String),
    /// Anchored regex, with the rename template applied to captures (`${1}`).
    Regex(Regex),
}

impl NameMatch {
    fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Exact(n) => n == name,
            NameMatch::Regex(r) => r.is_match(name),
        }
    }
    fn rename(&self, name: &str, template: Option<&str>) -> String {
        match (self, template) {
            (_, None) => name.to_string(),
            (NameMatch::Exact(_), Some(t)) => t.to_string(),
            (NameMatch::Regex(r), Some(t)) => r.replace(name, t).into_owned(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TableRule {
    pub table: NameMatch,
    pub rename: Option<String>,
    /// Row filter: only rows for which it is TRUE are replicated (snapshot and binlog alike).
    pub row_filter: Option<Arc<WhereExpr>>,
    /// Column map: these source columns, in this order, are written to the target columns named in `to`.
    pub column_map: Option<Arc<ColumnMap>>,
}

/// `ColumnMapFrom` / `ColumnMapTo` of one table (`to` empty = the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub from: Vec<String>,
    pub to: Vec<String>,
}

/// How a selected source table is replicated.
#[derive(Clone, Debug)]
pub struct Selection {
    pub target_schema: String,
    pub target_name: String,
    pub row_filter: Option<Arc<WhereExpr>>,
    pub column_map: Option<Arc<ColumnMap>>,
}

#[derive(Clone, Debug)]
pub struct SchemaRule {
    pub schema: NameMatch,
    pub rename: Option<String>,
    /// Empty: every table of the schema, including tables created later.
    pub tables: Vec<TableRule>,
}

/// The job's selection. An empty `replicate` list means the whole instance.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    pub replicate: Vec<SchemaRule>,
    pub ignore: Vec<SchemaRule>,
}

impl TableFilter {
    /// Builds an anchored regex for a name pattern; the error text says which pattern is wrong.
    pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))
    }

    /// Why a rename template (`TableSchemaRename` / `TableRename`) cannot work with its regex: it refers to a
    /// capture group the regex does not have (which expands to nothing, so names would silently merge), e.g.
    /// `${2}` with one group, or `$1_x` (read as the group named `1_x`). `None` when every reference resolves.
    pub fn rename_template_problem(regex: &Regex, template: &str) -> Option<String> {
        let groups: Vec<String> = (1..regex.captures_len())
            .map(|n| n.to_string())
            .chain(regex.capture_names().flatten().map(str::to_string))
            .collect();
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let (name, braced) = if let Some(after) = rest.strip_prefix('$') {
                rest = after;
                continue;
            } else if let Some(inner) = rest.strip_prefix('{') {
                let Some(end) = inner.find('}') else { break };
                let name = &inner[..end];
                rest = &inner[end + 1..];
                (name, true)
            } else {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                let name = &rest[..end];
                rest = &rest[end..];
                (name, false)
            };
            if name.is_empty() || name == "0" || groups.iter().any(|g| g == name) {
                continue;
            }
            let have = if groups.is_empty() {
                "it has no capture group: add one, e.g. (.*)".to_string()
            } else {
                format!("its groups: {}", groups.iter().map(|g| format!("${{{g}}}")).collect::<Vec<_>>().join(", "))
            };
            let hint = match name.find(|c: char| !c.is_ascii_digit()) {
                Some(cut) if !braced && cut > 0 => {
                    format!(
                        "; ${} followed by {:?} reads as one name: write ${{{}}}",
                        &name[..cut],
                        &name[cut..],
                        &name[..cut]
                    )
                }
                _ => String::new(),
            };
            // The pattern as written (without the anchors `compile_regex` adds).
            let pattern = regex.as_str();
            let pattern = pattern.strip_prefix("^(?:").and_then(|p| p.strip_suffix(")$")).unwrap_or(pattern);
            return Some(format!(
                "refers to capture group ${{{name}}}, which the regex {pattern:?} does not have ({have}), so it would expand to nothing{hint}"
            ));
        }
        None
    }

    /// Whether any table of this schema may be replicated (for DDL on the schema itself).
    pub fn selects_schema(&self, schema: &str) -> bool {
        if SYSTEM_SCHEMAS.contains(&schema) {
            return false;
        }
        if self.ignore.iter().any(|r| r.tables.is_empty() && r.schema.matches(schema)) {
            return false;
        }
        self.replicate.is_empty() || self.replicate.iter().any(|r| r.schema.matches(schema))
    }

    /// The target (schema, table) when this source table is replicated.
    pub fn target_of(&self, schema: &str, table: &str) -> Option<(String, String)> {
        self.selection_of(schema, table).map(|s| (s.target_schema, s.target_name))
    }

    /// Where and how this source table is replicated, when it is. The shadow tables of online schema change tools
    /// (gh-ost's `_t_gho`, `_t_ghc`, `_t_del`; pt-osc's `_t_new`, `_t_old`) go with their table `t`, under the
    /// same names around its target name, so their copy and the final rename swap replicate.
    pub fn selection_of(&self, schema: &str, table: &str) -> Option<Selection> {
        self.direct_selection_of(schema, table).or_else(|| {
            let (base, suffix) = shadow_table_base(table)?;
            if self.is_ignored(schema, table) {
                return None;
            }
            let mut selection = self.direct_selection_of(schema, base)?;
            selection.target_name = format!("_{}{suffix}", selection.target_name);
            if suffix == "_ghc" {
                // gh-ost's changelog table has its own columns: the table's row filter and column map do not apply.
                selection.row_filter = None;
                selection.column_map = None;
            }
            Some(selection)
        })
    }

    fn direct_selection_of(&self, schema: &str, table: &str) -> Option<Selection> {
        let plain = |target_schema: String, target_name: String| Selection {
            target_schema,
            target_name,
            row_filter: None,
            column_map: None,
        };
        if SYSTEM_SCHEMAS.contains(&schema) || self.is_ignored(schema, table) {
            return None;
        }
        if self.replicate.is_empty() {
            return Some(plain(schema.to_string(), table.to_string()));
        }
        let (i, j) = self.selecting_rule(schema, table)?;
        let rule = self.replicate.get(i)?;
        let target_schema = rule.schema.rename(schema, rule.rename.as_deref());
        let Some(j) = j else {
            return Some(plain(target_schema, table.to_string()));
        };
        let t = rule.tables.get(j)?;
        Some(Selection {
            target_schema,
            target_name: t.table.rename(table, t.rename.as_deref()),
            row_filter: t.row_filter.clone(),
            column_map: t.column_map.clone(),
        })
    }

    /// The `replicate` entry that selects this source table (not a shadow table): the index of its schema rule
    /// and, when that rule lists tables, of the table rule. `None` when the table is not selected, or when the
    /// replicate list is empty (the whole instance: no entry).
    pub fn selecting_rule(&self, schema: &str, table: &str) -> Option<(usize, Option<usize>)> {
        if SYSTEM_SCHEMAS.contains(&schema) || self.is_ignored(schema, table) {
            return None;
        }
        self.replicate.iter().enumerate().filter(|(_, rule)| rule.schema.matches(schema)).find_map(|(i, rule)| {
            if rule.tables.is_empty() {
                Some((i, None))
            } else {
                rule.tables.iter().position(|t| t.table.matches(table)).map(|j| (i, Some(j)))
            }
        })
    }

    fn is_ignored(&self, schema: &str, table: &str) -> bool {
        self.ignore.iter().any(|r| {
            r.schema.matches(schema) && (r.tables.is_empty() || r.tables.iter().any(|t| t.table.matches(table)))
        })
    }

    /// Target schema name for a selected source schema.
    pub fn target_schema_of(&self, schema: &str) -> String {
        self.replicate
            .iter()
            .find(|r| r.schema.matches(schema))
            .map(|r| r.schema.rename(schema, r.rename.as_deref()))
            .unwrap_or_else(|| schema.to_string())
    }
}

/// Why a selection entry selects (or leaves out) nothing on the source today.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnmatchedKind {
    /// No schema of that name (or matching that regex); the source's schemas are listed.
    NoSchema { existing: Vec<String> },
    /// A schema dtle never replicates (the server's own, or `dtle`).
    SystemSchema,
    /// The schema(s) exist but hold no table.
    EmptySchema { schemas: Vec<String> },
    /// No table of that name (or matching that regex) in the entry's schema(s); their tables are listed.
    NoTable { schemas: Vec<String>, existing: Vec<String> },
}

/// A `ReplicateDoDb` / `ReplicateIgnoreDb` entry, or one of its `Tables`, that matches no table of the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmatchedRule {
    /// In the ignore list (`ReplicateIgnoreDb`) rather than the replicate list.
    pub ignore: bool,
    /// Index of the schema entry in its list.
    pub schema_rule: usize,
    /// Index of the table entry in the schema entry's `Tables`, when it is the table that matches nothing.
    pub table_rule: Option<usize>,
    pub kind: UnmatchedKind,
}

impl TableFilter {
    /// The entries of the selection that match no table among the source's `schemas` and `tables` (system schemas
    /// left out): a typo, or tables not created yet. An empty replicate list (the whole instance) is never reported.
    pub fn unmatched_rules(&self, schemas: &[String], tables: &[(String, String)]) -> Vec<UnmatchedRule> {
        let schemas: Vec<&String> = schemas.iter().filter(|s| !SYSTEM_SCHEMAS.contains(&s.as_str())).collect();
        let mut out = Vec::new();
        for (ignore, rules) in [(false, &self.replicate), (true, &self.ignore)] {
            for (i, rule) in rules.iter().enumerate() {
                let matched: Vec<String> =
                    schemas.iter().filter(|s| rule.schema.matches(s)).map(|s| s.to_string()).collect();
                let unmatched = |table_rule, kind| UnmatchedRule { ignore, schema_rule: i, table_rule, kind };
                if matches!(&rule.schema, NameMatch::Exact(name) if SYSTEM_SCHEMAS.contains(&name.as_str())) {
                    out.push(unmatched(None, UnmatchedKind::SystemSchema));
                    continue;
                }
                if matched.is_empty() {
                    let existing = schemas.iter().map(|s| s.to_string()).collect();
                    out.push(unmatched(None, UnmatchedKind::NoSchema { existing }));
                    continue;
                }
                let in_schemas: Vec<&String> =
                    tables.iter().filter(|(s, _)| matched.contains(s)).map(|(_, t)| t).collect();
                if in_schemas.is_empty() {
                    out.push(unmatched(None, UnmatchedKind::EmptySchema { schemas: matched }));
                    continue;
                }
                for (j, t) in rule.tables.iter().enumerate() {
                    if !in_schemas.iter().any(|name| t.table.matches(name)) {
                        let mut existing: Vec<String> = in_schemas.iter().map(|t| t.to_string()).collect();
                        existing.sort();
                        existing.dedup();
                        out.push(unmatched(Some(j), UnmatchedKind::NoTable { schemas: matched.clone(), existing }));
                    }
                }
            }
        }
        out
    }
}

/// Suffixes of the shadow tables of gh-ost and pt-osc.
const SHADOW_TABLE_SUFFIXES: &[&str] = &["_gho", "_ghc", "_del", "_new", "_old"];

/// `_t_gho` → (`t`, `_gho`).
fn shadow_table_base(table: &str) -> Option<(&str, &'static str)> {
    let inner = table.strip_prefix('_')?;
    SHADOW_TABLE_SUFFIXES
        .iter()
        .find_map(|s| inner.strip_suffix(s).filter(|base| !base.is_empty()).map(|base| (base, *s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> NameMatch {
        NameMatch::Exact(s.into())
    }

    #[test]
    fn selection_and_renames() {
        let f = TableFilter {
            replicate: vec![
                SchemaRule {
                    schema: exact("test"),
                    rename: None,
                    tables: vec![TableRule { table: exact("t1"), rename: None, row_filter: None, column_map: None }],
                },
                SchemaRule {
                    schema: NameMatch::Regex(TableFilter::compile_regex(r"(\w*)src(\w*)").unwrap()),
                    rename: Some("rename${1}".into()),
                    tables: vec![],
                },
            ],
            ignore: vec![SchemaRule {
                schema: exact("asrc"),
                rename: None,
                tables: vec![TableRule { table: exact("secret"), rename: None, row_filter: None, column_map: None }],
            }],
        };
        assert_eq!(f.target_of("test", "t1"), Some(("test".into(), "t1".into())));
        assert_eq!(f.target_of("test", "t2"), None);
        assert_eq!(f.target_of("asrc", "x"), Some(("renamea".into(), "x".into())));
        assert_eq!(f.target_of("asrc", "secret"), None);
        assert_eq!(f.target_of("mysql", "user"), None);
        assert!(f.selects_schema("test"));
        assert!(!f.selects_schema("other"));
        let all = TableFilter::default();
        assert_eq!(all.target_of("x", "y"), Some(("x".into(), "y".into())));
        assert_eq!(all.target_of("dtle", "replication_position"), None);
        // Shadow tables of gh-ost / pt-osc go with their table.
        assert_eq!(f.target_of("test", "_t1_gho"), Some(("test".into(), "_t1_gho".into())));
        assert_eq!(f.target_of("test", "_t1_del"), Some(("test".into(), "_t1_del".into())));
        assert_eq!(f.target_of("test", "_t2_gho"), None);
        assert_eq!(f.target_of("test", "_gho"), None);
        let mut f = f;
        f.ignore.push(SchemaRule {
            schema: exact("test"),
            rename: None,
            tables: vec![TableRule { table: exact("_t1_old"), rename: None, row_filter: None, column_map: None }],
        });
        assert_eq!(f.target_of("test", "_t1_old"), None, "an ignore rule wins over the shadow-table rule");
    }

    #[test]
    fn rename_templates_refer_to_groups_the_regex_has() {
        let re = |p: &str| TableFilter::compile_regex(p).unwrap();
        assert_eq!(TableFilter::rename_template_problem(&re("shard_(.*)"), "all_${1}"), None);
        assert_eq!(TableFilter::rename_template_problem(&re("shard_(?P<n>.*)"), "all_${n}_$n"), None);
        assert_eq!(TableFilter::rename_template_problem(&re("shard_.*"), "all"), None);
        assert_eq!(TableFilter::rename_template_problem(&re("shard_.*"), "cost_$$"), None);
        let two = TableFilter::rename_template_problem(&re("shard_(.*)"), "all_${2}").expect("no group 2");
        assert!(two.contains("${2}") && two.contains("${1}"), "{two}");
        let none = TableFilter::rename_template_problem(&re("shard_.*"), "all_${1}").expect("no group at all");
        assert!(none.contains("no capture group"), "{none}");
        let glued = TableFilter::rename_template_problem(&re("shard_(.*)"), "$1_new").expect("$1_new is a name");
        assert!(glued.contains("write ${1}"), "{glued}");
    }

    #[test]
    fn the_selecting_rule_is_the_first_that_selects_the_table() {
        let table = |t: &str| TableRule { table: exact(t), rename: None, row_filter: None, column_map: None };
        let f = TableFilter {
            replicate: vec![
                SchemaRule { schema: exact("a"), rename: None, tables: vec![table("x"), table("y")] },
                SchemaRule { schema: exact("a"), rename: None, tables: vec![] },
            ],
            ignore: vec![SchemaRule { schema: exact("a"), rename: None, tables: vec![table("secret")] }],
        };
        assert_eq!(f.selecting_rule("a", "y"), Some((0, Some(1))));
        assert_eq!(f.selecting_rule("a", "z"), Some((1, None)));
        assert_eq!(f.selecting_rule("a", "secret"), None);
        assert_eq!(f.selecting_rule("b", "x"), None);
        assert_eq!(TableFilter::default().selecting_rule("a", "x"), None);
    }

    #[test]
    fn entries_that_match_no_table_are_found() {
        let table = |t: NameMatch| TableRule { table: t, rename: None, row_filter: None, column_map: None };
        let f = TableFilter {
            replicate: vec![
                SchemaRule {
                    schema: exact("shop"),
                    rename: None,
                    tables: vec![table(exact("orders")), table(exact("ordrs"))],
                },
                SchemaRule { schema: exact("nosuch"), rename: None, tables: vec![] },
                SchemaRule {
                    schema: NameMatch::Regex(TableFilter::compile_regex("shard_.*").unwrap()),
                    rename: None,
                    tables: vec![table(NameMatch::Regex(TableFilter::compile_regex("log_[0-9]+").unwrap()))],
                },
                SchemaRule { schema: exact("empty"), rename: None, tables: vec![] },
                SchemaRule { schema: exact("mysql"), rename: None, tables: vec![] },
            ],
            ignore: vec![SchemaRule { schema: exact("shop"), rename: None, tables: vec![table(exact("secret"))] }],
        };
        let schemas: Vec<String> =
            ["shop", "shard_1", "shard_2", "empty", "mysql"].iter().map(|s| s.to_string()).collect();
        let tables: Vec<(String, String)> =
            [("shop", "orders"), ("shop", "items"), ("shard_1", "log_1"), ("shard_2", "x"), ("mysql", "user")]
                .iter()
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect();
        let found = f.unmatched_rules(&schemas, &tables);
        let existing_schemas: Vec<String> =
            ["shop", "shard_1", "shard_2", "empty"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            found,
            vec![
                UnmatchedRule {
                    ignore: false,
                    schema_rule: 0,
                    table_rule: Some(1),
                    kind: UnmatchedKind::NoTable {
                        schemas: vec!["shop".into()],
                        existing: vec!["items".into(), "orders".into()]
                    },
                },
                UnmatchedRule {
                    ignore: false,
                    schema_rule: 1,
                    table_rule: None,
                    kind: UnmatchedKind::NoSchema { existing: existing_schemas },
                },
                UnmatchedRule {
                    ignore: false,
                    schema_rule: 3,
                    table_rule: None,
                    kind: UnmatchedKind::EmptySchema { schemas: vec!["empty".into()] },
                },
                UnmatchedRule { ignore: false, schema_rule: 4, table_rule: None, kind: UnmatchedKind::SystemSchema },
                UnmatchedRule {
                    ignore: true,
                    schema_rule: 0,
                    table_rule: Some(0),
                    kind: UnmatchedKind::NoTable {
                        schemas: vec!["shop".into()],
                        existing: vec!["items".into(), "orders".into()]
                    },
                },
            ]
        );
        assert!(TableFilter::default().unmatched_rules(&schemas, &tables).is_empty(), "the whole instance");
    }
}
