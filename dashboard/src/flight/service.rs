//! The Flight SQL calls khoso answers. Every call signs its caller in ([`super::access`]);
//! statements and prepared statements are planned by the warehouse's guard to say what they
//! answer, and run by [`super::rows`] when their ticket is redeemed; the catalogue comes from
//! [`super::catalogue`]. Anything that would write — updates, bulk ingestion, Substrait plans,
//! transactions — is refused and audited.

use std::pin::Pin;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use warehouse::people::accounts::Account;

use super::access::{Signed, caller, signed_in};
use super::catalogue::{self, TABLE_TYPES};
use super::rows::{FlightQuery, FlightStream, described, run, slot};
use super::statement::{Statement, parameter_schema, parameters_of};
use crate::pg::WireState;

/// khoso's Flight SQL service.
pub(super) struct KhosoFlightSql {
    pub(super) state: WireState,
    pub(super) sql_info: SqlInfoData,
}

impl KhosoFlightSql {
    async fn signed<T>(&self, request: &Request<T>) -> Result<Account, Status> {
        caller(&self.state, request.metadata(), request.remote_addr())
            .await
            .map(|signed| signed.account)
    }

    /// Where the rows of `statement` are: a ticket carrying it, redeemed by `DoGet`.
    async fn statement_info(
        &self,
        account: &Account,
        statement: &Statement,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let described = described(&self.state, account, statement).await?;
        let ticket = TicketStatementQuery {
            statement_handle: statement.encode()?.into(),
        };
        info(
            &warehouse::plain_schema(&described.columns),
            ticket.as_any().encode_to_vec(),
            descriptor,
        )
    }

    /// Refuses a statement that would write, in the audit log too.
    fn refuse_write(&self, account: &Account, sql: &str) -> Status {
        let why = match warehouse::query::guard::check_read_only(sql) {
            Err(e) => e.to_string(),
            Ok(()) => {
                "khoso SQL is read-only: this call is for statements that change data; run a query instead".into()
            }
        };
        FlightQuery::new(&self.state, account, sql).refuse((Status::permission_denied(why), "forbidden"))
    }
}

/// A `FlightInfo` answering with `schema` at one endpoint, redeemed with `ticket`.
fn info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// A `FlightInfo` for a catalogue command: its ticket is the command itself.
fn command_info(
    command: &impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    info(schema, command.as_any().encode_to_vec(), descriptor)
}

/// One batch as a `DoGet`'s answer.
fn one_batch(batch: RecordBatch) -> Response<FlightStream> {
    let data = FlightDataEncoderBuilder::new()
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Response::new(Box::pin(data))
}

/// A schema as Flight SQL sends it in a prepared statement's description.
fn schema_bytes(schema: &Schema) -> Result<prost::bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// Parameters for one run: at most this many messages are read (a schema and one row).
const PARAMETER_MESSAGES: usize = 8;

#[tonic::async_trait]
impl FlightSqlService for KhosoFlightSql {
    type FlightService = KhosoFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let Signed { account, token } = caller(&self.state, request.metadata(), request.remote_addr()).await?;
        signed_in(&self.state, &account);
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(answer)])));
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not a header's text"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::new(&query.query)?;
        self.statement_info(&account, &statement, request.into_inner()).await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::decode(&query.prepared_statement_handle)?;
        self.statement_info(&account, &statement, request.into_inner()).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::decode(&ticket.statement_handle)?;
        Ok(Response::new(run(&self.state, &account, statement).await?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::decode(&query.prepared_statement_handle)?;
        Ok(Response::new(run(&self.state, &account, statement).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::new(&query.query)?;
        let described = described(&self.state, &account, &statement).await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: statement.encode()?.into(),
            dataset_schema: schema_bytes(&warehouse::plain_schema(&described.columns))?,
            parameter_schema: schema_bytes(&parameter_schema(&described.parameters))?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.signed(&request).await?;
        // Nothing is kept for a prepared statement: there is nothing to let go.
        Statement::decode(&query.prepared_statement_handle).map(|_| ())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let account = self.signed(&request).await?;
        let Statement { sql, .. } = Statement::decode(&query.prepared_statement_handle)?;
        // The values are read into memory: one of the account's slots bounds how many at once.
        let _slot = slot(&self.state, &account).await.map_err(|(status, _)| status)?;
        let data = request
            .into_inner()
            .take(PARAMETER_MESSAGES)
            .map_err(arrow_flight::error::FlightError::from);
        let read = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data).try_collect::<Vec<_>>();
        let batches = tokio::time::timeout(self.state.limits.timeout, read)
            .await
            .map_err(|_| Status::deadline_exceeded("the parameters did not come in time"))?
            .map_err(|e| Status::invalid_argument(format!("the parameters could not be read: {e}")))?;
        let parameters = match batches.iter().filter(|batch| batch.num_rows() > 0).collect::<Vec<_>>()[..] {
            [] => Vec::new(),
            [batch] => parameters_of(batch)?,
            _ => {
                return Err(Status::invalid_argument(
                    "several batches of parameters were sent: a query runs with one row of values",
                ));
            }
        };
        let bound = Statement { sql, parameters };
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(bound.encode()?.into()),
        })
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let account = self.signed(&request).await?;
        Err(self.refuse_write(&account, &command.query))
    }

    async fn do_put_prepared_statement_update(
        &self,
        command: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let account = self.signed(&request).await?;
        let statement = Statement::decode(&command.prepared_statement_handle)?;
        Err(self.refuse_write(&account, &statement.sql))
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let account = self.signed(&request).await?;
        let what = format!("INSERT INTO {} (bulk ingestion)", command.table);
        Err(self.refuse_write(&account, &what))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.signed(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let account = self.signed(&request).await?;
        let batch = catalogue::catalogs(&self.state, &account, query.into_builder()).await?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.signed(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let account = self.signed(&request).await?;
        let batch = catalogue::schemas(&self.state, &account, query.into_builder()).await?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.signed(&request).await?;
        let schema = query.clone().into_builder().schema();
        command_info(&query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let account = self.signed(&request).await?;
        let batch = catalogue::tables(&self.state, &account, query.into_builder()).await?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.signed(&request).await?;
        let schema = query.into_builder().schema();
        command_info(&query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.signed(&request).await?;
        let mut builder = query.into_builder();
        for kind in TABLE_TYPES {
            builder.append(kind);
        }
        let batch = builder.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.signed(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        command_info(&query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.signed(&request).await?;
        let batch = query
            .into_builder(&self.sql_info)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(one_batch(batch))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
