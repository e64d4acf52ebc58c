//! The catalogue a Flight SQL client reads (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`, `GetSqlInfo`): the tables and views of a session as the caller's account
//! sees it — the same session its queries run in, so an analyst's lists hold no admin table —
//! and what the server is and does.

use arrow_flight::sql::metadata::{
    GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder,
};
use arrow_flight::sql::{SqlInfo, SqlSupportedTransaction};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;
use warehouse::people::accounts::Account;

use super::rows::{slot, status_of};
use crate::pg::WireState;
use crate::routes::QuerySlot;

/// The kinds of relation a client may filter `GetTables` by.
pub(super) const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

fn table_type(kind: TableType) -> &'static str {
    match kind {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// The session `account`'s queries run in, and one of its query slots for the time it is read
/// (making it is work like a query's).
async fn session(state: &WireState, account: &Account) -> Result<(SessionContext, QuerySlot), Status> {
    let taken = slot(state, account).await.map_err(|(status, _)| status)?;
    let ctx = state
        .warehouse
        .wire_session(&state.limits, account.role)
        .await
        .map_err(|e| status_of(&state.limits, e).0)?;
    Ok((ctx, taken))
}

fn built(batch: arrow_flight::error::Result<RecordBatch>) -> Result<RecordBatch, Status> {
    batch.map_err(Status::from)
}

/// Every catalog of the session.
pub(super) async fn catalogs(
    state: &WireState,
    account: &Account,
    mut builder: GetCatalogsBuilder,
) -> Result<RecordBatch, Status> {
    let (ctx, _slot) = session(state, account).await?;
    for catalog in ctx.catalog_names() {
        builder.append(catalog);
    }
    built(builder.build())
}

/// Every schema of every catalog (the builder keeps those its filters match).
pub(super) async fn schemas(
    state: &WireState,
    account: &Account,
    mut builder: GetDbSchemasBuilder,
) -> Result<RecordBatch, Status> {
    let (ctx, _slot) = session(state, account).await?;
    for name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&name) else { continue };
        for schema in catalog.schema_names() {
            builder.append(&name, schema);
        }
    }
    built(builder.build())
}

/// Every table and view the account sees, with its kind and, when asked, its columns.
pub(super) async fn tables(
    state: &WireState,
    account: &Account,
    mut builder: GetTablesBuilder,
) -> Result<RecordBatch, Status> {
    let (ctx, _slot) = session(state, account).await?;
    for name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&name) else { continue };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in schema.table_names() {
                let table = schema
                    .table(&table_name)
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?;
                let Some(table) = table else { continue };
                builder
                    .append(
                        &name,
                        &schema_name,
                        &table_name,
                        table_type(table.table_type()),
                        &warehouse::plain_schema(&table.schema()),
                    )
                    .map_err(|e| Status::internal(e.to_string()))?;
            }
        }
    }
    built(builder.build())
}

/// What the server is and does, for `GetSqlInfo`.
pub(super) fn sql_info(limits: &warehouse::query::guard::QueryLimits) -> std::io::Result<SqlInfoData> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "khoso");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    info.append(
        SqlInfo::FlightSqlServerStatementTimeout,
        i32::try_from(limits.timeout.as_millis()).unwrap_or(i32::MAX),
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, false);
    info.build().map_err(std::io::Error::other)
}
