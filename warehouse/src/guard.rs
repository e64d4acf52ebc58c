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
    let statements = DFParser::parse_sql(sql).map_err(|e| Error::Sql(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
