//! SQL text as tokens (comments, quoted identifiers and string literals kept intact), for DDL routing on the
//! source side and dtle's DDL markers on the target side.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Word,
    Quoted,
    Str,
    Number,
    Punct,
    Comment,
    Space,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Splits a statement into tokens; `None` when a quote or comment is not closed.
pub(crate) fn tokenize(sql: &str) -> Option<Vec<Token>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let kind = if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            TokenKind::Space
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let close = sql[i + 2..].find("*/")?;
            i += 2 + close + 2;
            TokenKind::Comment
        } else if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| *c <= b' ')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            TokenKind::Comment
        } else if c == b'`' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'`') if b.get(i + 1) == Some(&b'`') => i += 2,
                    Some(b'`') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            TokenKind::Quoted
        } else if c == b'\'' || c == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'\\') => i += 2,
                    Some(&q) if q == c && b.get(i + 1) == Some(&c) => i += 2,
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            TokenKind::Str
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            TokenKind::Number
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                i += 1;
            }
            TokenKind::Word
        } else {
            i += 1;
            TokenKind::Punct
        };
        out.push(Token { kind, start, end: i.min(b.len()) });
    }
    Some(out)
}

/// The significant tokens (no spaces or comments) with the text they stand for.
pub(crate) struct Statement<'a> {
    pub(crate) sql: &'a str,
    pub(crate) tokens: Vec<Token>,
}

impl<'a> Statement<'a> {
    pub(crate) fn text(&self, i: usize) -> &'a str {
        self.tokens.get(i).map(|t| &self.sql[t.start..t.end]).unwrap_or("")
    }
    pub(crate) fn is_word(&self, i: usize, word: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == TokenKind::Word) && self.text(i).eq_ignore_ascii_case(word)
    }
    pub(crate) fn is_punct(&self, i: usize, p: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.kind == TokenKind::Punct) && self.text(i) == p
    }
    pub(crate) fn is_ident(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::Quoted))
    }
    pub(crate) fn ident(&self, i: usize) -> String {
        let s = self.text(i);
        match self.tokens.get(i).map(|t| t.kind) {
            Some(TokenKind::Quoted) if s.len() >= 2 => s[1..s.len() - 1].replace("``", "`"),
            _ => s.to_string(),
        }
    }
    /// Skips the optional words in order (`IF NOT EXISTS`, ...); returns the index after them.
    pub(crate) fn skip_words(&self, mut i: usize, words: &[&str]) -> usize {
        if words.iter().enumerate().all(|(k, w)| self.is_word(i + k, w)) {
            i += words.len();
        }
        i
    }
    /// After MariaDB's `WAIT n` / `NOWAIT` at `i`, if there.
    pub(crate) fn skip_wait(&self, i: usize) -> usize {
        if self.is_word(i, "NOWAIT") {
            i + 1
        } else if self.is_word(i, "WAIT") {
            i + 2
        } else {
            i
        }
    }
    /// +1 for `(`, -1 for `)`, else 0.
    pub(crate) fn depth_change(&self, i: usize) -> i32 {
        if self.is_punct(i, "(") {
            1
        } else if self.is_punct(i, ")") {
            -1
        } else {
            0
        }
    }

    /// When an `ALTER TABLE` clause at `i` renames the table (`RENAME [TO|AS] name`, not RENAME COLUMN/INDEX/KEY),
    /// the index of the new name.
    pub(crate) fn alter_rename_at(&self, i: usize, clause_start: usize, depth: i32) -> Option<usize> {
        let renames_table = depth == 0
            && self.is_word(i, "RENAME")
            && (i == clause_start || self.is_punct(i - 1, ","))
            && !["COLUMN", "INDEX", "KEY"].iter().any(|w| self.is_word(i + 1, w));
        renames_table.then(|| if self.is_word(i + 1, "TO") || self.is_word(i + 1, "AS") { i + 2 } else { i + 1 })
    }

    /// Reads `[schema.]table` at `i`.
    pub(crate) fn name_at(&self, i: usize, default_schema: &str) -> Option<NameRef> {
        if !self.is_ident(i) {
            return None;
        }
        if self.is_punct(i + 1, ".") && self.is_ident(i + 2) {
            Some(NameRef { first: i, last: i + 2, schema: self.ident(i), table: self.ident(i + 2), qualified: true })
        } else {
            Some(NameRef {
                first: i,
                last: i,
                schema: default_schema.to_string(),
                table: self.ident(i),
                qualified: false,
            })
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct NameRef {
    /// Significant-token indexes of the name's first and last token.
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) schema: String,
    pub(crate) table: String,
    pub(crate) qualified: bool,
}
