//! The read-only guard every SQL path goes through: only statements that read are let in.

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Set, Statement};

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
        Error::Sql(crate::query::engine::timed_out_message(self.timeout))
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

    /// Refuses a query text over the size limit, or of a shape past [`QueryShape`]'s bounds,
    /// before anything parses it.
    pub fn check_text(&self, sql: &str) -> Result<QueryShape> {
        if sql.len() > self.max_text_bytes {
            return Err(Error::Sql(format!(
                "the query is {} KB long; the limit is {} KB",
                sql.len() / 1024,
                self.max_text_bytes / 1024
            )));
        }
        let shape = QueryShape::of(sql)?;
        shape.check()?;
        Ok(shape)
    }
}

/// The shape of a query's text, measured on its tokens (without parsing, which recurses):
/// how deep its parentheses nest, how many operators, list items and query blocks it has.
/// Planning and evaluating recurse on these; bounding them bounds the stack and the work of
/// planning whatever the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryShape {
    /// The deepest nesting of parentheses and brackets.
    pub depth: usize,
    /// Operators: arithmetic, comparison, logical (AND, OR, NOT, LIKE, IS, BETWEEN, CASE arms),
    /// casts.
    pub operators: usize,
    /// Commas: items of lists (`IN (…)`, select lists, function arguments).
    pub list_items: usize,
    /// Query blocks and joins: SELECT, JOIN, UNION, INTERSECT, EXCEPT.
    pub blocks: usize,
    /// Calls of the functions whose result can outgrow their arguments (`repeat`, `lpad`,
    /// `||`, `range`, …, see [`crate::query::bounds`]): each call makes at most
    /// [`crate::query::bounds::MAX_CALL_BYTES`] a batch, so together they stay within the query's memory.
    pub growth_calls: usize,
    /// The statement is an `EXPLAIN` (its answer is a plan).
    pub explain: bool,
}

impl QueryShape {
    /// Nesting of parentheses allowed (the parser's own limit, 50 levels of any nesting, comes
    /// after it).
    pub const MAX_DEPTH: usize = 40;
    /// Operators allowed in one query.
    pub const MAX_OPERATORS: usize = 1_000;
    /// List items allowed in one query (an `IN` list of ten thousand codes passes).
    pub const MAX_LIST_ITEMS: usize = 10_000;
    /// Query blocks and joins allowed in one query.
    pub const MAX_BLOCKS: usize = 256;
    /// Calls of functions that grow text or arrays allowed in one query.
    pub const MAX_GROWTH_CALLS: usize = 32;

    /// Measures a query's text.
    pub fn of(sql: &str) -> Result<QueryShape> {
        use datafusion::sql::sqlparser::dialect::GenericDialect;
        use datafusion::sql::sqlparser::keywords::Keyword;
        use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

        let tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize()
            .map_err(|e| Error::Sql(format!("syntax error: {e}")))?;
        let mut shape = QueryShape::default();
        let mut depth = 0usize;
        shape.explain = tokens
            .iter()
            .find(|t| !matches!(t, Token::Whitespace(_)))
            .is_some_and(|t| matches!(t, Token::Word(w) if w.keyword == Keyword::EXPLAIN));
        for token in &tokens {
            match token {
                Token::LParen | Token::LBracket | Token::LBrace => {
                    depth += 1;
                    shape.depth = shape.depth.max(depth);
                }
                Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
                Token::Comma => shape.list_items += 1,
                Token::Word(word) if crate::query::bounds::grows(&word.value.to_lowercase()) => shape.growth_calls += 1,
                Token::StringConcat => {
                    shape.operators += 1;
                    shape.growth_calls += 1;
                }
                Token::Word(word) => match word.keyword {
                    Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::SIMILAR
                    | Keyword::BETWEEN
                    | Keyword::IS
                    | Keyword::WHEN
                    | Keyword::CAST
                    | Keyword::TRY_CAST => shape.operators += 1,
                    Keyword::SELECT | Keyword::JOIN | Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT => {
                        shape.blocks += 1
                    }
                    _ => {}
                },
                Token::Whitespace(_)
                | Token::EOF
                | Token::Number(..)
                | Token::Char(_)
                | Token::Placeholder(_)
                | Token::Period
                | Token::SemiColon
                | Token::Colon
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::TripleSingleQuotedString(_)
                | Token::TripleDoubleQuotedString(_)
                | Token::DollarQuotedString(_)
                | Token::SingleQuotedByteStringLiteral(_)
                | Token::DoubleQuotedByteStringLiteral(_)
                | Token::TripleSingleQuotedByteStringLiteral(_)
                | Token::TripleDoubleQuotedByteStringLiteral(_)
                | Token::SingleQuotedRawStringLiteral(_)
                | Token::DoubleQuotedRawStringLiteral(_)
                | Token::TripleSingleQuotedRawStringLiteral(_)
                | Token::TripleDoubleQuotedRawStringLiteral(_)
                | Token::NationalStringLiteral(_)
                | Token::QuoteDelimitedStringLiteral(_)
                | Token::NationalQuoteDelimitedStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::UnicodeStringLiteral(_)
                | Token::HexStringLiteral(_) => {}
                _ => shape.operators += 1,
            }
        }
        Ok(shape)
    }

    /// Refuses a shape past the bounds, naming the bound.
    pub fn check(&self) -> Result<()> {
        let over = [
            (self.depth, Self::MAX_DEPTH, "levels of nested parentheses"),
            (self.operators, Self::MAX_OPERATORS, "operators"),
            (self.list_items, Self::MAX_LIST_ITEMS, "list items (commas)"),
            (self.blocks, Self::MAX_BLOCKS, "SELECT, JOIN and set-operation blocks"),
            (
                self.growth_calls,
                Self::MAX_GROWTH_CALLS,
                "calls of functions that lengthen text or arrays (repeat, lpad, rpad, replace, concat, ||, range, …)",
            ),
        ]
        .into_iter()
        .find(|(count, max, _)| count > max);
        match over {
            Some((count, max, what)) => Err(Error::Sql(format!(
                "the query is too complex: {count} {what}; the limit is {max}. Split it, or put long \
                 lists in a join"
            ))),
            None => Ok(()),
        }
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
        check_df_statement(statement)?;
    }
    Ok(())
}

fn check_df_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(inner) => check_statement(inner, Channel::Query),
        DfStatement::Explain(explain) => check_df_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE".into())),
        DfStatement::CopyTo(_) => Err(refused("COPY".into())),
        DfStatement::Reset(_) => Err(refused("RESET".into())),
    }
}

/// Where a statement comes from: a query (the web, the API, `khoso sql`), or a PostgreSQL
/// client's connection, which also sends the session statements its driver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// One query at a time.
    Query,
    /// A PostgreSQL client: also its own session parameters (SET of a client parameter,
    /// SHOW), transactions, and cursors over reading queries.
    Wire,
}

/// The session parameters a PostgreSQL client may set for itself. Anything else — the
/// engine's options (`datafusion.…`, however quoted), which every client shares — is refused.
const CLIENT_PARAMETERS: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "extra_float_digits",
    "idle_in_transaction_session_timeout",
    "intervalstyle",
    "lock_timeout",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
    "timezone",
    "transaction_isolation",
    "transaction_read_only",
];

/// The one read-only rule, for a parsed statement: reading statements pass (a query that
/// makes a table, `SELECT … INTO`, does not); on the wire, also a client's session statements.
pub fn check_statement(statement: &Statement, channel: Channel) -> Result<()> {
    let wire = channel == Channel::Wire;
    match statement {
        Statement::Query(query) => check_query(query),
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowVariable { .. }
        | Statement::ExplainTable { .. } => Ok(()),
        // EXPLAIN ANALYZE runs its statement, and EXPLAIN of a write is no reading either.
        Statement::Explain { statement, .. } => check_statement(statement, Channel::Query),
        Statement::Set(set) if wire => check_set(set),
        Statement::Declare { stmts } if wire => stmts
            .iter()
            .filter_map(|declare| declare.for_query.as_deref())
            .try_for_each(check_query),
        Statement::ShowVariables { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
            if wire =>
        {
            Ok(())
        }
        other => Err(refused(first_words(&other.to_string()))),
    }
}

/// A query, refused when any of its blocks writes its rows into a table (`SELECT … INTO t`).
fn check_query(query: &datafusion::sql::sqlparser::ast::Query) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{Query, SetExpr, Visit, Visitor};
    use std::ops::ControlFlow;

    fn writes(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(select) => select.into.is_some(),
            SetExpr::SetOperation { left, right, .. } => writes(left) || writes(right),
            SetExpr::Query(query) => writes(&query.body),
            _ => false,
        }
    }
    struct Into;
    impl Visitor for Into {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            match writes(&query.body) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        }
    }
    match query.visit(&mut Into) {
        ControlFlow::Break(()) => Err(refused("SELECT … INTO".into())),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// A SET a client may send: one of its own parameters, the time zone only to UTC.
fn check_set(set: &Set) -> Result<()> {
    let allowed = |name: &ObjectName, value: Option<&Expr>| {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|part| part.as_ident().map_or_else(String::new, |i| i.value.to_lowercase()))
            .collect();
        let name = parts.join(".");
        CLIENT_PARAMETERS.contains(&name.as_str()) && (name != "timezone" || value.is_none_or(is_utc))
    };
    let ok = match set {
        Set::SingleAssignment { variable, values, .. } => allowed(variable, values.first()),
        Set::ParenthesizedAssignments { variables, .. } => variables.iter().all(|name| allowed(name, None)),
        Set::MultipleAssignments { assignments } => assignments
            .iter()
            .all(|assignment| allowed(&assignment.name, Some(&assignment.value))),
        Set::SetTimeZone { value, .. } => is_utc(value),
        Set::SetTransaction { .. } | Set::SetNames { .. } | Set::SetNamesDefault {} => true,
        Set::SetSessionAuthorization(_) | Set::SetSessionParam(_) | Set::SetRole { .. } => false,
    };
    match ok {
        true => Ok(()),
        false => Err(Error::ReadOnly(format!(
            "{} (a client may set only its own session parameters: {}; the time zone only to UTC)",
            first_words(&set.to_string()),
            CLIENT_PARAMETERS.join(", ")
        ))),
    }
}

/// Whether a time zone value names UTC.
fn is_utc(value: &Expr) -> bool {
    let value = value.to_string();
    let value = value.trim_matches(['\'', '"']);
    ["utc", "etc/utc", "z", "+00:00", "0"].contains(&value.to_lowercase().as_str())
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
            // The message may quote the user's text, numbers and all: a position outside the
            // query is not one.
            return position.within(sql).then_some(position);
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

    /// Whether the position is a place of `sql` (its end included).
    fn within(&self, sql: &str) -> bool {
        self.line >= 1
            && self.column >= 1
            && sql
                .lines()
                .nth(self.line - 1)
                .map_or(self.line == 1 && self.column == 1, |line| {
                    self.column <= line.chars().count() + 1
                })
    }

    /// The parser's "Line: L, Column: C" (the last, which the parser adds after the text).
    fn stated(message: &str) -> Option<Position> {
        let rest = &message[message.rfind("Line: ")? + "Line: ".len()..];
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
        let line = sql.lines().nth(self.line.saturating_sub(1)).unwrap_or_default();
        let column = self.column.clamp(1, line.chars().count() + 1);
        format!("{line}\n{}^", " ".repeat(column - 1))
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
        None if message.contains("RecursionLimitExceeded") => {
            "the query is too complex: it nests more than 50 levels deep (subqueries, parentheses, \
             function calls). Split it"
                .to_string()
        }
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
        // A position the message states but the query does not have (a name that quotes one).
        let odd = "SELECT * FROM \"Line: 99999999999, Column: 99999999999\"";
        let message = "table 'Line: 99999999999, Column: 99999999999' not found";
        assert_eq!(Position::of_error(odd, message), None);
        assert_eq!(
            Position {
                line: 1,
                column: usize::MAX
            }
            .marked("ab"),
            "ab\n  ^"
        );
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
    fn query_shapes_are_measured_on_tokens_and_bounded() {
        let shape = QueryShape::of("SELECT (a + 2) * 3 FROM t WHERE a IN (1, 2, 3) AND b LIKE 'x'").expect("tokens");
        assert_eq!(
            (shape.depth, shape.operators, shape.list_items, shape.blocks),
            (1, 4, 2, 1),
            "{shape:?}"
        );
        assert!(!shape.explain);
        let shape = QueryShape::of("-- why\nEXPLAIN SELECT repeat(x, 2) || lpad(y, 3) FROM t").expect("tokens");
        assert!(shape.explain);
        assert_eq!(shape.growth_calls, 3);
        let limits = QueryLimits::default();
        let flat = format!("SELECT 1{}", "+1".repeat(QueryShape::MAX_OPERATORS));
        assert!(limits.check_text(&flat).is_ok(), "exactly at the bound");
        let flat = format!("SELECT 1{}", "+1".repeat(QueryShape::MAX_OPERATORS + 1));
        let error = limits.check_text(&flat).expect_err("past the bound").to_string();
        assert!(error.contains("1001 operators; the limit is 1000"), "{error}");
        let deep = format!(
            "SELECT {}1{}",
            "(".repeat(QueryShape::MAX_DEPTH + 1),
            ")".repeat(QueryShape::MAX_DEPTH + 1)
        );
        assert!(
            limits
                .check_text(&deep)
                .expect_err("deep")
                .to_string()
                .contains("nested parentheses")
        );
        let grown = format!("SELECT {}", vec!["repeat('x', 2)"; 33].join(", "));
        assert!(
            limits
                .check_text(&grown)
                .expect_err("grown")
                .to_string()
                .contains("lengthen text")
        );
    }

    fn parsed(sql: &str) -> Statement {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses").remove(0)
    }

    #[test]
    fn the_wire_sets_only_a_clients_own_parameters() {
        for sql in [
            "SET application_name = 'bao-cao'",
            "SET extra_float_digits = 3",
            "SET TIME ZONE 'UTC'",
            "SET timezone = 'Etc/UTC'",
            "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "DECLARE c CURSOR FOR SELECT 1",
            "BEGIN",
        ] {
            assert!(check_statement(&parsed(sql), Channel::Wire).is_ok(), "{sql}");
        }
        for sql in [
            "SET datafusion.execution.batch_size = 1",
            "SET \"datafusion.execution.batch_size\" = 1",
            "SET \"DataFusion\".execution.batch_size = 1",
            "SET TIME ZONE 'Asia/Ho_Chi_Minh'",
            "SET ROLE postgres",
            "SELECT * INTO kept FROM t",
            "SELECT 1 UNION SELECT 2 INTO kept",
            "DECLARE c CURSOR FOR SELECT * INTO kept FROM t",
            "EXPLAIN SELECT * INTO kept FROM t",
        ] {
            assert!(check_statement(&parsed(sql), Channel::Wire).is_err(), "{sql}");
        }
        // A query path takes no session statement at all.
        for sql in ["SET application_name = 'x'", "DECLARE c CURSOR FOR SELECT 1", "BEGIN"] {
            assert!(check_statement(&parsed(sql), Channel::Query).is_err(), "{sql}");
        }
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
