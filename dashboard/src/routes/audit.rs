//! The web's audit events: who did what through the server, written as they happen.

use crate::AppState;

/// An audit event of the web, by the caller when there is one.
pub(super) fn audit_event(
    caller: Option<&crate::auth::Caller>,
    action: &str,
    outcome: &str,
) -> warehouse::tables::rows::AuditEvent {
    let mut event = warehouse::tables::rows::AuditEvent::now(action, outcome);
    if let Some(caller) = caller {
        event.actor = Some(caller.account.name.clone());
        event.role = Some(caller.role().as_str().to_string());
    }
    event
}

/// Writes an audit event now, and counts it (an error is logged: the request goes on).
pub(super) async fn audit(state: &AppState, event: warehouse::tables::rows::AuditEvent) {
    state.telemetry.event(&event);
    if let Err(e) = state.warehouse.record_audit(&[event]).await {
        tracing::error!(cause = %e, "the audit log could not be written");
    }
}
