//! Building SQL text: column literals that keep character data byte-exact and let the server use indexes.

use crate::schema::{quote_ident, ColumnMeta};
use crate::value::Value;

/// Appends `value` as a literal for `column`.
///
/// Character data goes as `_charset X'…'`: the bytes are the column's own (never transcoded), and the literal
/// has the column's character set, so comparisons use the column's collation and its indexes. With
/// `for_comparison`, the column's collation is named too. JSON values for MySQL's JSON type go through
/// `CONVERT(… USING utf8mb4)` because MySQL refuses binary strings there.
pub fn write_column_literal(out: &mut String, value: &Value, column: &ColumnMeta, for_comparison: bool) -> bool {
    if column.data_type == "json" && column.charset.is_none() {
        let json_bytes: Option<&[u8]> = match value {
            Value::Json(text) => Some(text.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        };
        if let Some(bytes) = json_bytes {
            out.push_str("CONVERT(");
            crate::value::write_hex_literal(out, bytes);
            out.push_str(" USING utf8mb4)");
            return true;
        }
    }
    match value {
        Value::Bytes(bytes) if column.charset.is_some() => {
            let charset = column.charset.as_deref().unwrap_or("binary");
            out.push('_');
            out.push_str(charset);
            out.push(' ');
            if bytes.is_empty() {
                out.push_str("''");
            } else {
                value.write_sql_literal(out);
            }
            if for_comparison {
                if let Some(collation) = &column.collation {
                    out.push_str(" COLLATE ");
                    out.push_str(collation);
                }
            }
            true
        }
        _ => value.write_sql_literal(out),
    }
}

/// `a`,`b`,`c` for the given columns.
pub fn column_list<'a>(columns: impl Iterator<Item = &'a ColumnMeta>) -> String {
    let mut out = String::new();
    for (i, c) in columns.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote_ident(&c.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(data_type: &str, charset: Option<&str>) -> ColumnMeta {
        ColumnMeta {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            unsigned: false,
            nullable: true,
            generated: false,
            charset: charset.map(String::from),
            collation: charset.map(|c| format!("{c}_general_ci")),
        }
    }

    #[test]
    fn literals_keep_bytes_and_charset() {
        let mut s = String::new();
        write_column_literal(&mut s, &Value::Bytes(vec![0xe9]), &column("varchar", Some("latin1")), true);
        assert_eq!(s, "_latin1 X'e9' COLLATE latin1_general_ci");
        s.clear();
        write_column_literal(&mut s, &Value::Bytes(vec![1, 2]), &column("varbinary", None), true);
        assert_eq!(s, "X'0102'");
        s.clear();
        write_column_literal(&mut s, &Value::Json("{}".into()), &column("json", None), false);
        assert_eq!(s, "CONVERT(X'7b7d' USING utf8mb4)");
        s.clear();
        write_column_literal(&mut s, &Value::Bytes(vec![]), &column("char", Some("utf8mb4")), false);
        assert_eq!(s, "_utf8mb4 ''");
        s.clear();
        write_column_literal(&mut s, &Value::Int(3), &column("int", None), true);
        assert_eq!(s, "3");
    }
}
