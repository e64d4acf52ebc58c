//! What PostgreSQL clients take for granted, answered truthfully: `version()` in PostgreSQL's
//! form with khoso's own name in it (SQLAlchemy and pgjdbc read the version from it), the
//! `server_version` and `server_version_num` settings agreeing with it, `current_user` and
//! `session_user` naming the signed-in account, and the transaction statements that change
//! nothing in a read-only session (`SAVEPOINT`, `RELEASE SAVEPOINT`, `ROLLBACK TO SAVEPOINT`,
//! `SET TRANSACTION …`, `DISCARD`, `DEALLOCATE`) answered as done. Every other statement
//! goes on to the read-only guard, which refuses what writes.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Int32Builder, ListBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{
    ColumnarValue, EmptyRelation, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Ident, ObjectNamePart, SelectItem, Set, SetExpr, Statement, Value, Visit, VisitMut,
    Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser as SqlParser;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};

/// The PostgreSQL release whose behaviour clients may expect: its catalogue's shape, its type
/// names and its protocol.
pub(super) const POSTGRES_VERSION: &str = "16.6";

/// [`POSTGRES_VERSION`] as a number, as `server_version_num` gives it.
const POSTGRES_VERSION_NUM: &str = "160006";

/// What `version()` answers: PostgreSQL's form, then what really answers.
pub(super) fn version_text() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (khoso {}, Apache DataFusion {}) on {}-{}, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// What a client is told when it signs in: the PostgreSQL version it may expect, and that its
/// transactions are read-only.
pub(super) fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = POSTGRES_VERSION.to_string();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    parameters
}

/// Gives a session khoso's `version()` in place of DataFusion's, and `khoso_subscripts`
/// (see [`subscripts_of`]).
pub(super) fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(Subscripts {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    let text = version_text();
    let version = move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))));
    let udf: ScalarUDF = create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(version),
    );
    ctx.register_udf(udf);
}

/// The functions that name the account: `current_user`, `session_user`, `user`,
/// `current_role`.
const ACCOUNT_FUNCTIONS: [&str; 4] = ["current_user", "session_user", "user", "current_role"];

/// A client's SQL as khoso answers it: the functions that name the account replaced by its
/// name, and the parameters of a subquery the engine cannot run kept in place; the text itself
/// when neither applies (or it does not parse: the guard says why later).
pub(super) fn for_client<'a>(sql: &'a str, account: &str) -> Cow<'a, str> {
    let lower = sql.to_ascii_lowercase();
    let names_account = ACCOUNT_FUNCTIONS.iter().any(|name| lower.contains(name));
    let may_have_subquery_parameters = lower.contains("(select") && (sql.contains('$') || sql.contains('?'));
    let rewritten_functions = ["generate_subscripts", "array("]
        .iter()
        .any(|name| lower.contains(name));
    if !names_account && !may_have_subquery_parameters && !rewritten_functions {
        return Cow::Borrowed(sql);
    }
    let Ok(mut statements) = SqlParser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    if replaced_upstream(sql, &statements) {
        return Cow::Borrowed(sql);
    }
    let mut naming = NameAccount {
        account,
        replaced: false,
    };
    for statement in &mut statements {
        let _ = statement.visit(&mut naming);
    }
    match naming.replaced {
        true => Cow::Owned(
            statements
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        false => Cow::Borrowed(sql),
    }
}

/// Whether datafusion-postgres answers this text with a query of its own: it replaces some
/// whole client queries it knows (psql's, DBeaver's) token by token, which a text written anew
/// would no longer match. Its rules rewrite a statement the same way however it is written, so
/// a text it replaces is one its parse does not give as the rules give.
fn replaced_upstream(sql: &str, statements: &[Statement]) -> bool {
    static UPSTREAM: std::sync::LazyLock<PostgresCompatibilityParser> =
        std::sync::LazyLock::new(PostgresCompatibilityParser::new);
    let Ok(upstream) = UPSTREAM.parse(sql) else {
        return true;
    };
    let ruled: Vec<Statement> = statements.iter().cloned().map(|s| UPSTREAM.rewrite(s)).collect();
    upstream != ruled
}

/// The parameters (`$1`, or `$1::VARCHAR`) in an expression, in order.
fn parameters_in(expr: &Expr) -> Vec<Expr> {
    struct Parameters(Vec<Expr>);
    impl Visitor for Parameters {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Value(value) = expr
                && matches!(value.value, Value::Placeholder(_))
            {
                self.0.push(expr.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Parameters(Vec::new());
    let _ = expr.visit(&mut found);
    found.0
}

/// A selected subquery with parameters, which datafusion-postgres answers with NULL (DataFusion
/// cannot run a correlated one there), as a NULL that still names its parameters: the values a
/// client binds are matched to parameters by number, and dropping some would shift the rest.
fn null_keeping_parameters(expr: &Expr) -> Option<Expr> {
    let Expr::Subquery(_) = expr else { return None };
    let parameters = parameters_in(expr);
    let checks = parameters
        .into_iter()
        .map(|parameter| Expr::IsNull(Box::new(parameter)));
    let any = checks.reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: datafusion::sql::sqlparser::ast::BinaryOperator::Or,
        right: Box::new(right),
    })?;
    Some(Expr::Case {
        case_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
            condition: any,
            result: Expr::value(Value::Null),
        }],
        else_result: None,
    })
}

/// `generate_subscripts(array, dimension)` (a row per subscript, alongside `unnest(array)` in
/// the same select list) as DataFusion writes it: `unnest(khoso_subscripts(array,
/// dimension))`; DataFusion's unnests in one list advance together, as PostgreSQL's
/// set-returning functions do.
fn subscripts_of(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
        return None;
    };
    if !name.value.eq_ignore_ascii_case("generate_subscripts") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [array, dimension] = list.args.as_slice() else {
        return None;
    };
    let text = format!("unnest(khoso_subscripts({array}, {dimension}))");
    SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()
}

/// `ARRAY(SELECT e FROM …)` (an array of a subquery's rows) as DataFusion writes it:
/// `(SELECT array_agg(e) FROM …)`.
fn array_of_rows(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
        return None;
    };
    let FunctionArguments::Subquery(query) = &function.args else {
        return None;
    };
    if !name.value.eq_ignore_ascii_case("array") {
        return None;
    }
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let [item] = select.projection.as_mut_slice() else {
        return None;
    };
    let (SelectItem::UnnamedExpr(element) | SelectItem::ExprWithAlias { expr: element, .. }) = item else {
        return None;
    };
    let text = format!("array_agg({element})");
    *element = SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()?;
    Some(Expr::Subquery(query))
}

/// Replaces the account functions by the account's name, keeping a selected one's column name,
/// and a selected subquery with parameters by [`null_keeping_parameters`].
struct NameAccount<'a> {
    account: &'a str,
    replaced: bool,
}

/// The name of an account function called without arguments, if `expr` is one.
fn account_function(expr: &Expr) -> Option<String> {
    let Expr::Function(function) = expr else { return None };
    let [ObjectNamePart::Identifier(name)] = function.name.0.as_slice() else {
        return None;
    };
    let name = name.value.to_lowercase();
    let no_arguments = match &function.args {
        FunctionArguments::None => true,
        FunctionArguments::List(list) => list.args.is_empty(),
        FunctionArguments::Subquery(_) => false,
    };
    (no_arguments && ACCOUNT_FUNCTIONS.contains(&name.as_str())).then_some(name)
}

impl VisitorMut for NameAccount<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                // A selected `current_user` keeps its column name, as PostgreSQL gives it.
                if let SelectItem::UnnamedExpr(expr) = item
                    && let Some(name) = account_function(expr)
                {
                    *item = SelectItem::ExprWithAlias {
                        expr: expr.clone(),
                        alias: Ident::with_quote('"', name),
                    };
                }
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                    && let Some(null) = null_keeping_parameters(expr)
                {
                    *expr = null;
                    self.replaced = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if account_function(expr).is_some() {
            *expr = Expr::value(Value::SingleQuotedString(self.account.to_string()));
            self.replaced = true;
        }
        if let Some(rewritten) = subscripts_of(expr).or_else(|| array_of_rows(expr)) {
            *expr = rewritten;
            self.replaced = true;
        }
        ControlFlow::Continue(())
    }
}

/// `khoso_subscripts(array, dimension)`: the subscripts of a one-dimensional array's
/// `dimension` (1), as an array; none for another dimension, as PostgreSQL gives none.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Subscripts {
    signature: Signature,
}

impl ScalarUDFImpl for Subscripts {
    fn name(&self) -> &str {
        "khoso_subscripts"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::new_list(DataType::Int32, true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let [arrays, dimensions] = columns.as_slice() else {
            return datafusion::common::exec_err!("khoso_subscripts takes an array and a dimension");
        };
        let dimensions = datafusion::arrow::compute::cast(dimensions, &DataType::Int64)?;
        let dimensions = dimensions
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| datafusion::error::DataFusionError::Execution("a dimension is a number".into()))?;
        let mut subscripts = ListBuilder::new(Int32Builder::new());
        for row in 0..arrays.len() {
            let length = match arrays.data_type() {
                DataType::List(_) => arrays.as_list::<i32>().value_length(row),
                DataType::LargeList(_) => i32::try_from(arrays.as_list::<i64>().value_length(row)).unwrap_or(0),
                _ => 0,
            };
            if arrays.is_null(row) || dimensions.is_null(row) {
                subscripts.append(false);
                continue;
            }
            if dimensions.value(row) == 1 {
                subscripts.values().extend((1..=length).map(Some));
            }
            subscripts.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(subscripts.finish())))
    }
}

/// Answers the statements a read-only session does nothing for, and the version settings.
pub(super) struct PostgresLook;

impl PostgresLook {
    fn answer(statement: &Statement) -> Option<Response> {
        let done = |tag: &str| Some(Response::Execution(Tag::new(tag)));
        match statement {
            Statement::Savepoint { .. } => done("SAVEPOINT"),
            Statement::ReleaseSavepoint { .. } => done("RELEASE"),
            // Nothing was written since the savepoint: there is nothing to undo.
            Statement::Rollback { savepoint: Some(_), .. } => done("ROLLBACK"),
            Statement::Set(Set::SetTransaction { .. }) => done("SET"),
            Statement::Discard { object_type } => done(&format!("DISCARD {object_type}")),
            Statement::Deallocate { .. } => done("DEALLOCATE"),
            _ => None,
        }
    }

    /// The version setting a `SHOW` asks for (`server_version`, `server_version_num`), with
    /// its value.
    fn version_setting(statement: &Statement) -> Option<(String, &'static str)> {
        let Statement::ShowVariable { variable } = statement else {
            return None;
        };
        let name = variable
            .iter()
            .map(|part| part.value.to_lowercase())
            .collect::<Vec<_>>()
            .join("_");
        let value = match name.as_str() {
            "server_version" => POSTGRES_VERSION,
            "server_version_num" => POSTGRES_VERSION_NUM,
            _ => return None,
        };
        Some((name, value))
    }

    /// The answer to a statement this hook answers, when it runs.
    fn respond(statement: &Statement) -> Option<PgWireResult<Response>> {
        if let Some(done) = Self::answer(statement) {
            return Some(Ok(done));
        }
        let (name, value) = Self::version_setting(statement)?;
        Some(setting(&name, value).map(Response::Query))
    }
}

/// A setting's value as `SHOW` answers it: one text column named after it, one row.
fn setting(name: &str, value: &str) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(QueryResponse::new(fields, futures::stream::iter([Ok(row)])))
}

#[async_trait]
impl QueryHook for PostgresLook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::respond(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        if Self::answer(statement).is_some() {
            // Planned as nothing: the answer is given when it runs.
            return Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            })));
        }
        // A setting is described as the one text column it answers with.
        let (name, _) = Self::version_setting(statement)?;
        let planned = ctx.sql(&format!("SELECT '' AS {name}")).await;
        Some(
            planned
                .map(|frame| frame.into_unoptimized_plan())
                .map_err(|e| PgWireError::ApiError(Box::new(e))),
        )
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::respond(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_functions_name_the_account() {
        let sql = for_client("SELECT current_user, session_user AS who, user", "phan-tich");
        assert_eq!(
            sql,
            "SELECT 'phan-tich' AS \"current_user\", 'phan-tich' AS who, 'phan-tich' AS \"user\""
        );
        let sql = for_client("SELECT 1 WHERE current_user = 'a'", "o'brien");
        assert_eq!(sql, "SELECT 1 WHERE 'o''brien' = 'a'");
    }

    #[test]
    fn a_selected_subquery_keeps_its_parameters() {
        let sql = for_client(
            "SELECT a, (SELECT b FROM t WHERE t.x = u.x AND t.k = $1::VARCHAR) AS c FROM u WHERE a > $2",
            "x",
        );
        assert_eq!(
            sql,
            "SELECT a, CASE WHEN $1 IS NULL THEN NULL END AS c FROM u WHERE a > $2"
        );
    }

    #[test]
    fn subscripts_are_a_range_unnested() {
        let sql = for_client("SELECT unnest(k) AS a, generate_subscripts(k, 1) AS o FROM i", "x");
        assert_eq!(sql, "SELECT unnest(k) AS a, unnest(khoso_subscripts(k, 1)) AS o FROM i");
    }

    #[test]
    fn an_array_of_rows_is_an_aggregate() {
        let sql = for_client("SELECT ARRAY(SELECT b.n FROM b WHERE b.r = r.oid) AS m FROM r", "x");
        assert_eq!(
            sql,
            "SELECT (SELECT array_agg(b.n) FROM b WHERE b.r = r.oid) AS m FROM r"
        );
    }

    #[test]
    fn other_text_is_left_as_sent() {
        // A column or a string that only looks like one is not a call.
        for sql in [
            "SELECT 1",
            "SELECT usename FROM pg_user",
            "SELECT 'current_user'",
            "SELECT \"user\" FROM t",
            "not sql at all current_user(",
        ] {
            assert!(matches!(for_client(sql, "x"), Cow::Borrowed(_)), "{sql}");
        }
    }

    #[test]
    fn the_version_reads_as_postgresql_and_says_what_answers() {
        let text = version_text();
        assert!(
            text.starts_with(&format!("PostgreSQL {POSTGRES_VERSION} (khoso ")),
            "{text}"
        );
        assert!(text.contains("Apache DataFusion"), "{text}");
        assert!(POSTGRES_VERSION_NUM.starts_with("16"));
    }
}
