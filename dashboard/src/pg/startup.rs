//! Signing in: an account's name as user and its token as password, analyst and admin accounts
//! only; every attempt audited, every connection given a cancel key.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{ClientInfo, PgWireConnectionState};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::{Sink, SinkExt};
use warehouse::people::rights::Action;
use warehouse::tables::rows::AuditEvent;

use super::connection::CancelKeys;
use super::errors::user_error;
use super::state::{ACCOUNT_ID, ROLE, WireState};

/// Signs clients in with an account's token as password; every attempt is audited. A client
/// signed in is given a cancel key of its own.
pub(super) struct TokenStartup {
    pub(super) state: WireState,
    pub(super) parameters: DefaultServerParameterProvider,
    pub(super) cancel_keys: Arc<CancelKeys>,
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = LoginInfo::from_client_info(client)
                    .user()
                    .unwrap_or_default()
                    .to_string();
                let source = client.socket_addr().ip();
                let account = crate::auth::from_source(source, self.state.auth.verify(&password.password))
                    .await
                    .map_err(|e| match e {
                        crate::auth::AuthError::TooMany(_) => user_error("53300", e.to_string()),
                        other => PgWireError::ApiError(Box::new(other)),
                    })?;
                match account {
                    Some(account) if account.name == user && account.role.may(Action::Query) => {
                        let mut event = AuditEvent::now("sign_in", "ok");
                        event.actor = Some(account.name.clone());
                        event.role = Some(account.role.as_str().to_string());
                        event.detail = Some("a PostgreSQL client".into());
                        self.state.audit.record(event);
                        let metadata = client.metadata_mut();
                        metadata.insert(ROLE.to_string(), account.role.as_str().to_string());
                        metadata.insert(ACCOUNT_ID.to_string(), account.id.clone());
                        let connection = self.cancel_keys.open(client);
                        client.session_extensions().get_or_insert_with(|| connection);
                        finish_authentication(client, &self.parameters).await?;
                    }
                    refused => {
                        let (outcome, why) = match refused {
                            Some(account) if account.name == user => (
                                "forbidden",
                                warehouse::people::rights::refusal(account.role, Action::Query).0,
                            ),
                            _ => ("unauthorized", "a token that matches no active account of that name"),
                        };
                        let mut event = AuditEvent::now("sign_in", outcome);
                        event.detail = Some(format!("a PostgreSQL client as {user:?}: {why}"));
                        self.state.audit.record(event);
                        return Err(PgWireError::InvalidPassword(user));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
