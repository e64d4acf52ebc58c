//! What belongs to one wire connection: its cancel key, and the signal a `CancelRequest` with
//! that key gives the queries it runs.
//!
//! Each connection is given a process id and a random secret key at sign-in (sent in
//! `BackendKeyData`), kept in [`CancelKeys`] while the connection lives. A client cancels its
//! running query by opening a second connection and sending both: the query's rows stop with
//! SQLSTATE 57014 and its work is dropped. A key that matches no open connection does nothing.
//!
//! A connection also keeps what its prepared statements take: at most [`MAX_STATEMENTS`] of them
//! and [`MAX_STATEMENT_BYTES`] of their text, so that a flood of Parse messages cannot fill the
//! server's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire::api::{ClientInfo, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;

/// Prepared statements one connection may keep at once (clients close theirs, or replace them).
pub(super) const MAX_STATEMENTS: usize = 1000;

/// The text a connection's prepared statements may hold together.
pub(super) const MAX_STATEMENT_BYTES: usize = 16 * 1024 * 1024;

/// The cancel keys of the open connections.
#[derive(Default)]
pub(super) struct CancelKeys {
    open: Mutex<HashMap<i32, (SecretKey, Arc<Notify>)>>,
    generator: RandomPidSecretKeyGenerator,
}

impl CancelKeys {
    /// Gives `client` a process id and a secret key of its own, kept until the returned
    /// [`Connection`] is dropped.
    pub(super) fn open(self: &Arc<Self>, client: &mut impl ClientInfo) -> Connection {
        let (pid, key) = self.generator.generate(client);
        client.set_pid_and_secret_key(pid, key.clone());
        let cancel = Arc::new(Notify::new());
        self.lock().insert(pid, (key, Arc::clone(&cancel)));
        Connection {
            cancel,
            pid,
            keys: Arc::clone(self),
            statements: Mutex::default(),
        }
    }

    /// Cancels what the connection of `pid` runs, when `key` is its key.
    pub(super) fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let open = self.lock();
        match open.get(&pid) {
            Some((secret, cancel)) if secret.eq_value(key) => {
                cancel.notify_waiters();
                true
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (SecretKey, Arc<Notify>)>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A signed-in connection, kept in its session extensions: dropped with the connection, it
/// takes its key out of [`CancelKeys`].
pub(super) struct Connection {
    cancel: Arc<Notify>,
    pid: i32,
    keys: Arc<CancelKeys>,
    /// The prepared statements kept, by name, and the length of their text.
    statements: Mutex<HashMap<String, usize>>,
}

impl Connection {
    /// The signal that the client asked to cancel: it fires for every query started before the
    /// request.
    pub(super) fn cancelled(&self) -> tokio::sync::futures::OwnedNotified {
        Arc::clone(&self.cancel).notified_owned()
    }
}

impl Connection {
    /// Keeps a prepared statement of `bytes` of text under `name` (replacing one of that name);
    /// refused past [`MAX_STATEMENTS`] or [`MAX_STATEMENT_BYTES`].
    pub(super) fn prepare(&self, name: &str, bytes: usize) -> Result<(), String> {
        let mut statements = self
            .statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let others: usize = statements.iter().filter(|(n, _)| *n != name).map(|(_, b)| b).sum();
        let count = statements.len() + usize::from(!statements.contains_key(name));
        if count > MAX_STATEMENTS || others + bytes > MAX_STATEMENT_BYTES {
            return Err(format!(
                "this connection keeps {} prepared statements ({} KB of text); the limit is {MAX_STATEMENTS} and {} KB: \
                 close the ones no longer needed (DEALLOCATE, or the client's close)",
                statements.len(),
                others / 1024,
                MAX_STATEMENT_BYTES / 1024
            ));
        }
        statements.insert(name.to_string(), bytes);
        Ok(())
    }

    /// Forgets a prepared statement the client closed.
    pub(super) fn forget(&self, name: &str) {
        self.statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.pid);
    }
}

/// The signal a query of `client`'s connection is cancelled by (none before sign-in).
pub(super) fn cancelled(client: &(impl ClientInfo + ?Sized)) -> Option<tokio::sync::futures::OwnedNotified> {
    client
        .session_extensions()
        .get::<Connection>()
        .map(|connection| connection.cancelled())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_the_connection_with_that_key_only() {
        let keys = Arc::new(CancelKeys::default());
        let register = |pid: i32, key: i32| {
            let cancel = Arc::new(Notify::new());
            keys.lock().insert(pid, (SecretKey::I32(key), Arc::clone(&cancel)));
            Connection {
                cancel,
                pid,
                keys: Arc::clone(&keys),
                statements: Mutex::default(),
            }
        };
        let (first, second) = (register(1, 11), register(2, 22));
        assert!(!keys.cancel(1, &SecretKey::I32(22)), "another connection's key");
        assert!(!keys.cancel(3, &SecretKey::I32(11)), "no such connection");
        let waiting = first.cancelled();
        assert!(keys.cancel(1, &SecretKey::I32(11)));
        futures::executor::block_on(waiting);
        drop(first);
        assert!(!keys.cancel(1, &SecretKey::I32(11)), "gone with its connection");
        assert!(keys.cancel(2, &SecretKey::I32(22)));
        drop(second);
        assert!(keys.lock().is_empty());
    }

    #[test]
    fn a_connection_keeps_its_prepared_statements_within_bounds() {
        let keys = Arc::new(CancelKeys::default());
        let connection = Connection {
            cancel: Arc::new(Notify::new()),
            pid: 1,
            keys,
            statements: Mutex::default(),
        };
        for i in 0..MAX_STATEMENTS {
            connection.prepare(&format!("s{i}"), 100).expect("within bounds");
        }
        assert!(connection.prepare("one more", 100).is_err(), "past the count");
        connection.prepare("s0", 200).expect("a name replaced");
        connection.forget("s1");
        connection.prepare("one more", 100).expect("room again");
        connection.forget("one more");
        let refused = connection
            .prepare("huge", MAX_STATEMENT_BYTES)
            .expect_err("past the bytes");
        assert!(refused.contains("prepared statements"), "{refused}");
    }
}
