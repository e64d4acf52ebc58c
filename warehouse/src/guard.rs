//! The read-only guard every SQL path goes through: only statements that read are let in.

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::{Error, Result};

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
