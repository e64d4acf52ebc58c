//! What belongs to one wire connection: its cancel key, and the signal a `CancelRequest` with
//! that key gives the queries it runs.
//!
//! Each connection is given a process id and a random secret key at sign-in (sent in
//! `BackendKeyData`), kept in [`CancelKeys`] while the connection lives. A client cancels its
//! running query by opening a second connection and sending both: the query's rows stop with
//! SQLSTATE 57014 and its work is dropped. A key that matches no open connection does nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion_postgres::pgwire::api::{ClientInfo, PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;

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
}

impl Connection {
    /// The signal that the client asked to cancel: it fires for every query started before the
    /// request.
    pub(super) fn cancelled(&self) -> tokio::sync::futures::OwnedNotified {
        Arc::clone(&self.cancel).notified_owned()
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
}
