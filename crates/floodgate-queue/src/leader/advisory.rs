//! The PostgreSQL advisory-lock role behind [`Singleton::advisory`](crate::Singleton::advisory):
//! `pg_try_advisory_lock` on a connection of its own, detached from the pool and held for as
//! long as the role runs. When that connection dies the server releases the lock at once; the
//! holder learns of the loss at its next check (every `retry`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use super::{Inner, set, terms_ended};

/// Competes for the role with a session advisory lock until the role stops (see
/// [`Singleton::advisory`](crate::Singleton::advisory)).
pub(crate) async fn run(pool: sqlx::PgPool, inner: Arc<Inner>, retry: Duration) {
    let key = format!("floodgate:role:{}", inner.name);
    let mut held: Option<sqlx::PgConnection> = None;
    loop {
        match held.as_mut() {
            Some(conn) => {
                // Still ours while the session lives.
                if let Err(e) = conn.ping().await {
                    // Compete again after one `retry`, like any other node.
                    tracing::warn!(role = %inner.name, error = %e, "advisory lock connection lost");
                    held = None;
                    set(&inner, false);
                }
            }
            None => {
                let attempt = async {
                    let mut conn = pool.acquire().await?.detach();
                    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                        .bind(&key)
                        .fetch_one(&mut conn)
                        .await?;
                    Ok::<_, sqlx::Error>(got.then_some(conn))
                };
                match attempt.await {
                    Ok(Some(conn)) => {
                        held = Some(conn);
                        set(&inner, true);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(role = %inner.name, error = %e, "advisory lock attempt failed")
                    }
                }
            }
        }
        tokio::select! {
            _ = inner.stop.cancelled() => break,
            _ = tokio::time::sleep(retry) => {}
        }
    }
    if let Some(conn) = held {
        set(&inner, false);
        terms_ended(&inner, Duration::from_secs(30)).await;
        // Closing the session releases the lock.
        let _ = conn.close().await;
    }
}
