//! What PostgreSQL clients take for granted, answered truthfully: `version()` in PostgreSQL's
//! form with khoso's own name in it (SQLAlchemy and pgjdbc read the version from it), the
//! `server_version` and `server_version_num` settings agreeing with it, `current_user` and
//! `session_user` naming the signed-in account, and the transaction statements that change
//! nothing in a read-only session (`SAVEPOINT`, `RELEASE SAVEPOINT`, `ROLLBACK TO SAVEPOINT`,
//! `SET TRANSACTION …`, `DISCARD`, `DEALLOCATE`) answered as done. Every other statement
//! goes on to the read-only guard, which refuses what writes.
//!
//! A client's text is rewritten here ([`for_client`]) where what the catalogue queries of
//! SQLAlchemy, pgjdbc and psql ask cannot be planned by DataFusion as written; a text
//! datafusion-postgres replaces whole is left as sent.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Int32Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
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
    ctx.register_udf(ScalarUDF::from(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
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
    let has_subquery = lower.contains("(select");
    let rewritten_functions = ["generate_subscripts", "array("]
        .iter()
        .any(|name| lower.contains(name));
    if !names_account && !has_subquery && !rewritten_functions {
        return Cow::Borrowed(sql);
    }
    let Ok(mut statements) = SqlParser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Cow::Borrowed(sql);
    };
    if replaced_upstream(sql, &statements) {
        return Cow::Borrowed(sql);
    }
    let mut rewrite = ClientRewrite {
        account,
        replaced: false,
    };
    for statement in &mut statements {
        let _ = statement.visit(&mut rewrite);
    }
    match rewrite.replaced {
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

/// `information_schema._pg_expandarray(array)` (a row `(x, n)` per element: the element and its
/// subscript; pgjdbc's key and index metadata read it) as DataFusion writes it:
/// `unnest(khoso_expand_array(array))`, an unnest of `{x, n}` structs.
fn expanded_array(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    let Some(ObjectNamePart::Identifier(name)) = function.name.0.last() else {
        return None;
    };
    if !name.value.eq_ignore_ascii_case("_pg_expandarray") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let [array] = list.args.as_slice() else {
        return None;
    };
    let text = format!("unnest(khoso_expand_array({array}))");
    SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()
}

/// `(expression).field` (a field of a composite value, as pgjdbc reads `_pg_expandarray`'s)
/// as DataFusion writes it: `get_field(expression, 'field')`.
fn field_of(expr: &Expr) -> Option<Expr> {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else {
        return None;
    };
    let (Expr::Nested(_), [datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(field))]) =
        (root.as_ref(), access_chain.as_slice())
    else {
        return None;
    };
    let text = format!("get_field({root}, '{}')", field.value.replace('\'', "''"));
    SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .ok()
}

/// `'pg_catalog.array_in'::regproc` as the procedure's name, `'array_in'`: the catalogue keeps
/// a type's procedures (`pg_type.typinput`, …) by name, so a name is what they compare with.
fn procedure_name(expr: &Expr) -> Option<Expr> {
    let Expr::Cast {
        expr: value, data_type, ..
    } = expr
    else {
        return None;
    };
    if !data_type.to_string().eq_ignore_ascii_case("regproc") {
        return None;
    }
    let Expr::Value(value) = value.as_ref() else {
        return None;
    };
    let Value::SingleQuotedString(name) = &value.value else {
        return None;
    };
    let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
    Some(Expr::value(Value::SingleQuotedString(name.to_string())))
}

/// Aggregate functions: a subquery selecting one of them is aggregated already.
const AGGREGATES: [&str; 9] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "bool_and",
    "bool_or",
    "array_agg",
    "string_agg",
];

/// A scalar subquery selecting one value without aggregating (`(SELECT c.relkind = 'c' FROM
/// pg_class c WHERE c.oid = t.typrelid)`, as pgjdbc's type metadata asks), aggregated with `max`:
/// DataFusion runs a correlated scalar subquery only when it aggregates. The value is the same
/// for no row (null) and one row; where PostgreSQL refuses a subquery of several rows, this
/// gives the greatest.
fn aggregated_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Subquery(query) = expr else { return None };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let grouped = !matches!(
        &select.group_by,
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(expressions, _) if expressions.is_empty()
    );
    if grouped || select.having.is_some() || query.limit_clause.is_some() || select.distinct.is_some() {
        return None;
    }
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] = select.projection.as_slice()
    else {
        return None;
    };
    let text = value.to_string().to_lowercase();
    if AGGREGATES
        .iter()
        .any(|aggregate| text.contains(&format!("{aggregate}(")))
    {
        return None;
    }
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    let [SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. }] =
        select.projection.as_mut_slice()
    else {
        return None;
    };
    *value = SqlParser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("max({value})"))
        .and_then(|mut parser| parser.parse_expr())
        .ok()?;
    Some(Expr::Subquery(query))
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

/// What [`for_client`] changes in a client's statement: the account functions replaced by the
/// account's name (a selected one keeps its column name), a selected subquery with parameters
/// by [`null_keeping_parameters`], and the expressions DataFusion cannot plan as written by
/// what it can ([`subscripts_of`], [`array_of_rows`], [`expanded_array`], [`aggregated_subquery`],
/// [`field_of`], [`procedure_name`]).
struct ClientRewrite<'a> {
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

impl VisitorMut for ClientRewrite<'_> {
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
        if let Some(rewritten) = subscripts_of(expr)
            .or_else(|| array_of_rows(expr))
            .or_else(|| expanded_array(expr))
            .or_else(|| aggregated_subquery(expr))
            .or_else(|| field_of(expr))
            .or_else(|| procedure_name(expr))
        {
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

/// `khoso_expand_array(array)`: each element with its subscript, as `{x, n}` structs (see
/// [`expanded_array`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ExpandArray {
    fn element_fields(element: &DataType) -> Fields {
        Fields::from(vec![
            Field::new("x", element.clone(), true),
            Field::new("n", DataType::Int32, false),
        ])
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        "khoso_expand_array"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[DataType]) -> datafusion::common::Result<DataType> {
        let element = match arguments.first() {
            Some(DataType::List(field) | DataType::LargeList(field)) => field.data_type().clone(),
            _ => return datafusion::common::exec_err!("khoso_expand_array takes an array"),
        };
        Ok(DataType::new_list(
            DataType::Struct(Self::element_fields(&element)),
            true,
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(arrays) = columns.first() else {
            return datafusion::common::exec_err!("khoso_expand_array takes an array");
        };
        let arrays = datafusion::arrow::compute::cast(
            arrays,
            &DataType::List(Arc::new(Field::new_list_field(
                match arrays.data_type() {
                    DataType::List(field) | DataType::LargeList(field) => field.data_type().clone(),
                    _ => return datafusion::common::exec_err!("khoso_expand_array takes an array"),
                },
                true,
            ))),
        )?;
        let lists = arrays.as_list::<i32>();
        let element = lists.value_type();
        // The subscripts, 1-based within each array; the elements as they are.
        let subscripts: Vec<i32> = lists
            .offsets()
            .windows(2)
            .flat_map(|window| 1..=window[1] - window[0])
            .collect();
        let pairs = datafusion::arrow::array::StructArray::try_new(
            Self::element_fields(&element),
            vec![
                Arc::clone(lists.values()),
                Arc::new(datafusion::arrow::array::Int32Array::from(subscripts)),
            ],
            None,
        )?;
        let expanded = datafusion::arrow::array::ListArray::try_new(
            Arc::new(Field::new_list_field(
                DataType::Struct(Self::element_fields(&element)),
                true,
            )),
            lists.offsets().clone(),
            Arc::new(pairs),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(expanded)))
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
    fn a_scalar_subquery_is_aggregated() {
        let sql = for_client(
            "SELECT t.typname FROM pg_type t WHERE t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_class c \
             WHERE c.oid = t.typrelid)",
            "x",
        );
        assert_eq!(
            sql,
            "SELECT t.typname FROM pg_type t WHERE t.typrelid = 0 OR (SELECT max(c.relkind = 'c') FROM pg_class c \
             WHERE c.oid = t.typrelid)"
        );
        // One that aggregates, groups or limits is left as it is.
        for sql in [
            "SELECT (SELECT count(*) FROM b WHERE b.k = a.k) FROM a",
            "SELECT 1 FROM a WHERE a.x = (SELECT b.x FROM b WHERE b.k = a.k LIMIT 1)",
        ] {
            assert!(matches!(for_client(sql, "x"), Cow::Borrowed(_)), "{sql}");
        }
    }

    #[test]
    fn pgjdbcs_expanded_keys_and_procedures_read_as_datafusion_reads_them() {
        let sql = for_client(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS k, (r.keys).x FROM i, r \
             WHERE typinput = 'pg_catalog.array_in'::regproc",
            "x",
        );
        assert_eq!(
            sql,
            "SELECT get_field((unnest(khoso_expand_array(i.indkey))), 'n') AS k, get_field((r.keys), 'x') FROM i, r \
             WHERE typinput = 'array_in'"
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
