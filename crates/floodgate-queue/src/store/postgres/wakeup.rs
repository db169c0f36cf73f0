//! PostgreSQL's wake-ups: LISTEN on the store's channel, which a statement-level trigger
//! NOTIFYs once per inserting statement and queue; a dropped connection reconnects on the next
//! wait.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};

use super::PgStore;
use crate::error::StoreError;
use crate::store::wakeup::Wakeup;

/// Where a PostgreSQL listener's wake-ups come from: its LISTEN connection.
#[derive(Debug)]
pub(crate) struct Source(Box<PgListener>);

/// A listener on `store`'s channel.
pub(super) async fn listen(store: &PgStore) -> Result<Source, StoreError> {
    // A pool of one of its own: a listener holds its connection for as long as it lives,
    // which must neither shrink the store's pool nor keep `close()` waiting.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(store.inner.options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(&store.inner.channel).await?;
    Ok(Source(Box::new(listener)))
}

impl Source {
    /// The next notification; `Poll` after the connection dropped (anything notified
    /// meanwhile is lost, so look everywhere).
    pub(crate) async fn recv(&mut self) -> Wakeup {
        match self.0.try_recv().await {
            Ok(Some(notification)) => Wakeup::Enqueued {
                queue: notification.payload().to_owned(),
            },
            // The connection dropped (it reconnects on the next call).
            Ok(None) => {
                tracing::warn!("LISTEN connection lost; reconnecting and polling");
                Wakeup::Poll
            }
            Err(error) => {
                tracing::warn!(%error, "LISTEN reconnect failed; polling until it works");
                tokio::time::sleep(Duration::from_secs(1)).await;
                Wakeup::Poll
            }
        }
    }
}
