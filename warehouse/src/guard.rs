//! The read-only guard every SQL path goes through: only statements that read are let in.

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::{Error, Result};

/// Bounds on one user query, the same on every path (web, API, wire, CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Wall-clock time, planning and running; past it the work is cancelled.
    pub timeout: std::time::Duration,
    /// Memory the query may hold; past it, operators that can spill to disk do, the others fail.
    pub memory_bytes: usize,
    /// Size of the query text.
    pub max_text_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(30),
            memory_bytes: 1024 * 1024 * 1024,
            max_text_bytes: 1024 * 1024,
        }
    }
}

impl QueryLimits {
    /// The error of a query that ran out of time.
    pub fn timed_out(&self) -> Error {
        Error::Sql(format!(
            "the query ran longer than {} s and was stopped: narrow it (WHERE, LIMIT, fewer joins)",
            self.timeout.as_secs()
        ))
    }

    /// A query's error, said plainly when it is the memory limit.
    pub fn explain(&self, error: Error) -> Error {
        match error {
            Error::Sql(message) if message.contains("Resources exhausted") => Error::Sql(format!(
                "the query needed more than {} MB of memory and was stopped: narrow it (WHERE, LIMIT, \
                 aggregate first) ({message})",
                self.memory_bytes / (1024 * 1024)
            )),
            other => other,
        }
    }

    /// Refuses a query text over the size limit.
    pub fn check_text(&self, sql: &str) -> Result<()> {
        if sql.len() > self.max_text_bytes {
            return Err(Error::Sql(format!(
                "the query is {} KB long; the limit is {} KB",
                sql.len() / 1024,
                self.max_text_bytes / 1024
            )));
        }
        Ok(())
    }
}

/// The options DataFusion enforces when planning a user's query: no DDL, no DML (COPY is DML),
/// no `SET` or other statements. A second line of defence behind [`check_read_only`].
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Accepts one reading statement (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE); refuses anything that
/// creates, changes, copies, sets or reads files, with a message saying why.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql(sql).map_err(|e| located(sql, Error::Sql(e.to_string())))?;
    match statements.len() {
        0 => return Err(Error::Sql("the query is empty".into())),
        1 => {}
        n => {
            return Err(Error::Sql(format!("send one statement at a time ({n} found)")));
        }
    }
    for statement in &statements {
        check_statement(statement)?;
    }
    Ok(())
}

fn check_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_)
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowVariable { .. }
            | Statement::ExplainTable { .. } => Ok(()),
            Statement::Explain { statement, analyze, .. } => {
                if *analyze {
                    // EXPLAIN ANALYZE runs its statement: it must itself be a query.
                    check_statement(&DfStatement::Statement(statement.clone()))
                } else {
                    Ok(())
                }
            }
            other => Err(refused(first_words(&other.to_string()))),
        },
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE".into())),
        DfStatement::CopyTo(_) => Err(refused("COPY".into())),
        DfStatement::Reset(_) => Err(refused("RESET".into())),
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

fn refused(what: String) -> Error {
    Error::ReadOnly(what)
}

/// Where in a query's text an error points: a line and a column, both counted from 1 (the
/// column in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl Position {
    /// Where an engine's error `message` about `sql` points, when that can be told: the
    /// parser's own "Line: L, Column: C", the end of the text for a query that ends too soon, or
    /// the first place the unknown column, table or function the message names appears.
    pub fn of_error(sql: &str, message: &str) -> Option<Position> {
        if let Some(position) = Self::stated(message) {
            return Some(position);
        }
        if message.contains("found: EOF") {
            let text = sql.trim_end();
            return Some(Self::at(text, text.len()));
        }
        let named = [
            ("No field named ", None),
            ("table '", Some('\'')),
            ("Invalid function '", Some('\'')),
        ]
        .iter()
        .find_map(|(before, until)| {
            let rest = &message[message.find(before)? + before.len()..];
            let name = match until {
                Some(quote) => &rest[..rest.find(*quote)?],
                None => rest.split_whitespace().next()?.trim_end_matches('.'),
            };
            Some(name.rsplit('.').next()?.trim_matches('"').to_string())
        })?;
        find_word(sql, &named).map(|offset| Self::at(sql, offset))
    }

    /// The parser's "Line: L, Column: C".
    fn stated(message: &str) -> Option<Position> {
        let rest = &message[message.find("Line: ")? + "Line: ".len()..];
        let (line, rest) = rest.split_once(", Column: ")?;
        let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(Position {
            line: line.parse().ok()?,
            column: column.parse().ok()?,
        })
    }

    /// The position of byte `offset` of `sql`.
    fn at(sql: &str, offset: usize) -> Position {
        let before = &sql[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// The line of `sql` it points at, and under it a caret below the column.
    pub fn marked(&self, sql: &str) -> String {
        let line = sql.lines().nth(self.line - 1).unwrap_or_default();
        format!("{line}\n{}^", " ".repeat(self.column.saturating_sub(1)))
    }
}

/// The byte offset of the first whole-word, case-insensitive occurrence of `word` in `sql`.
fn find_word(sql: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    sql.char_indices().map(|(i, _)| i).find(|&i| {
        sql.get(i..i + word.len())
            .is_some_and(|found| found.eq_ignore_ascii_case(word))
            && !sql[..i].chars().next_back().is_some_and(is_word)
            && !sql[i + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// A query's error made plain — a parser error says "syntax error" — and, when the message
/// does not say where, with the position it points at.
pub fn located(sql: &str, error: Error) -> Error {
    let Error::Sql(message) = error else {
        return error;
    };
    let message = match message
        .strip_prefix("SQL error: ParserError(\"")
        .and_then(|m| m.strip_suffix("\")"))
    {
        Some(parser) => format!("syntax error: {}", parser.replace("\\\"", "\"")),
        None => message,
    };
    match Position::of_error(sql, &message) {
        Some(Position { line, column }) if Position::stated(&message).is_none() => {
            Error::Sql(format!("{message} (at line {line}, column {column})"))
        }
        _ => Error::Sql(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_into_the_query() {
        let cases = [
            (
                "SELEC 1",
                "syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1",
                (1, 1),
            ),
            (
                "SELECT code\nFROM provinces WHERE",
                "syntax error: Expected: an expression, found: EOF",
                (2, 21),
            ),
            (
                "SELECT code,\n  nope FROM provinces",
                "Schema error: No field named nope. Valid fields are …",
                (2, 3),
            ),
            (
                "SELECT p.code FROM provinces p WHERE p.Nope_x > 1",
                "No field named p.nope_x.",
                (1, 40),
            ),
            (
                "SELECT 1\nFROM provincez",
                "Error during planning: table 'datafusion.public.provincez' not found",
                (2, 6),
            ),
            (
                "SELECT sums(x) FROM t",
                "Error during planning: Invalid function 'sums'.",
                (1, 8),
            ),
        ];
        for (sql, message, (line, column)) in cases {
            assert_eq!(
                Position::of_error(sql, message),
                Some(Position { line, column }),
                "{sql}: {message}"
            );
        }
        assert_eq!(Position::of_error("SELECT 1", "Resources exhausted"), None);
        // "code" inside "province_code" is not the word "code".
        assert_eq!(find_word("SELECT province_code, code FROM t", "code"), Some(22));
        let marked = Position { line: 2, column: 6 }.marked("SELECT 1\nFROM provincez");
        assert_eq!(marked, "FROM provincez\n     ^");
    }

    #[test]
    fn query_errors_are_located_and_plain() {
        let error = check_read_only("SELECT code FROM provinces WHERE").expect_err("unfinished");
        assert_eq!(
            error.to_string(),
            "SQL error: syntax error: Expected: an expression, found: EOF (at line 1, column 33)"
        );
        let located = located("SELECT nope FROM provinces", Error::Sql("No field named nope.".into()));
        assert_eq!(
            located.to_string(),
            "SQL error: No field named nope. (at line 1, column 8)"
        );
    }

    #[test]
    fn reading_statements_pass() {
        for sql in [
            "SELECT 1",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE school_reports",
            "select count(*) from school_reports;",
        ] {
            assert!(check_read_only(sql).is_ok(), "{sql}: {:?}", check_read_only(sql));
        }
    }

    #[test]
    fn writing_statements_are_refused() {
        for sql in [
            "CREATE TABLE t AS SELECT 1",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE VIEW v AS SELECT 1",
            "INSERT INTO school_reports SELECT * FROM school_reports",
            "DELETE FROM submissions",
            "UPDATE submissions SET rows = 0",
            "DROP TABLE submissions",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "SELECT 1; DROP TABLE submissions",
        ] {
            let err = check_read_only(sql).expect_err(sql);
            assert!(matches!(err, Error::ReadOnly(_) | Error::Sql(_)), "{sql}: {err}");
        }
    }
}
