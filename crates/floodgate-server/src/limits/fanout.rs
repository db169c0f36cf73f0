//! Breaker transitions shared between servers through Redis pub/sub: when a breaker opens,
//! closes or is forced open on one server, the others follow within about a second.
//!
//! Each server still decides locally: a follower *trips* its breaker (open for its own open
//! wait, then half-open with its own probes) or *resets* it. This is eventually consistent: a
//! message lost while Redis is unreachable is not replayed, and two servers may disagree until
//! their own calls or the next transition settle it. A transition applied from another server
//! is not published again (so two servers never echo one change back and forth).
//!
//! Messages are JSON on the channel `floodgate:breakers`:
//! `{"node": "host-1234", "breaker": "payments", "state": "open"}`.
//!
//! ```no_run
//! # async fn demo(breakers: std::sync::Arc<floodgate_server::limits::breakers::Breakers>) {
//! use floodgate_server::limits::fanout::Fanout;
//! use tokio_util::sync::CancellationToken;
//!
//! let fanout = Fanout::new("redis://127.0.0.1:6379", "node-a").unwrap();
//! fanout.run(breakers, CancellationToken::new()).await;
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate::breaker::{RegistryEvent, State};
use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::breakers::Breakers;

/// The channel transitions are published on.
pub const CHANNEL: &str = "floodgate:breakers";

/// How long a transition applied from another server is recognised as its own echo.
const ECHO_WINDOW: Duration = Duration::from_secs(2);

/// One published transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The server that saw it.
    pub node: String,
    /// The breaker.
    pub breaker: String,
    /// `open`, `closed` or `forced_open`.
    pub state: String,
}

/// Publishes this server's transitions and follows the others'; see the [module docs](self).
pub struct Fanout {
    client: redis::Client,
    node: String,
    /// Transitions applied from another server, not to be published again.
    applied: Mutex<HashMap<(String, State), Instant>>,
}

impl Fanout {
    /// Fan-out through the Redis at `url`, as the server `node`.
    pub fn new(url: &str, node: &str) -> Result<Fanout, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Fanout {
            client,
            node: node.to_owned(),
            applied: Mutex::new(HashMap::new()),
        })
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, HashMap<(String, State), Instant>> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes and follows until `stop`, reconnecting with backoff while Redis is away.
    pub async fn run(&self, breakers: Arc<Breakers>, stop: CancellationToken) {
        tokio::join!(
            self.publish(&breakers, stop.clone()),
            self.follow(&breakers, stop)
        );
    }

    async fn publish(&self, breakers: &Breakers, stop: CancellationToken) {
        let mut events = breakers.registry().subscribe();
        let mut conn = None;
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = events.recv() => event,
            };
            let event = match event {
                Ok(RegistryEvent::Breaker(event)) => event,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            if !matches!(event.to, State::Open | State::Closed | State::ForcedOpen) {
                continue;
            }
            let key = (event.breaker.to_string(), event.to);
            if self
                .applied()
                .remove(&key)
                .is_some_and(|at| at.elapsed() < ECHO_WINDOW)
            {
                continue;
            }
            let message = Transition {
                node: self.node.clone(),
                breaker: key.0,
                state: event.to.as_str().to_owned(),
            };
            let Ok(text) = serde_json::to_string(&message) else {
                continue;
            };
            if conn.is_none() {
                let connect = self.client.get_multiplexed_async_connection();
                conn = match tokio::time::timeout(Duration::from_secs(1), connect).await {
                    Ok(Ok(c)) => Some(c),
                    _ => None,
                };
            }
            let sent = match conn.as_mut() {
                Some(c) => tokio::time::timeout(
                    Duration::from_secs(1),
                    c.publish::<_, _, i64>(CHANNEL, text),
                )
                .await
                .is_ok_and(|r| r.is_ok()),
                None => false,
            };
            if !sent {
                conn = None;
                tracing::warn!(breaker = %message.breaker, state = %message.state, "could not publish a breaker transition: other servers will not follow it");
            }
        }
    }

    async fn follow(&self, breakers: &Breakers, stop: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        loop {
            let followed = tokio::select! {
                () = stop.cancelled() => return,
                result = self.follow_once(breakers, &mut pause) => result,
            };
            if let Err(e) = followed {
                tracing::warn!(error = %e, "following other servers' breaker transitions failed; retrying");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Subscribes and applies transitions until the connection ends (a subscription that
    /// took resets the reconnection `pause`).
    async fn follow_once(&self, breakers: &Breakers, pause: &mut Duration) -> Result<(), String> {
        let subscribe = async {
            let mut pubsub = self
                .client
                .get_async_pubsub()
                .await
                .map_err(|e| e.to_string())?;
            pubsub.subscribe(CHANNEL).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        };
        let mut pubsub = tokio::time::timeout(Duration::from_secs(5), subscribe)
            .await
            .map_err(|_| "no answer from Redis within 5 s".to_owned())??;
        *pause = Duration::from_millis(100);
        tracing::info!("following other servers' breaker transitions");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(transition) = serde_json::from_slice::<Transition>(message.get_payload_bytes())
            else {
                continue;
            };
            if transition.node != self.node {
                self.apply(breakers, &transition);
            }
        }
        Err("the subscription ended".to_owned())
    }

    /// Applies another server's transition to this server's breaker of the same name.
    pub fn apply(&self, breakers: &Breakers, transition: &Transition) {
        let Ok(breaker) = breakers.breaker(&transition.breaker) else {
            return;
        };
        let now = breaker.state();
        let target = match transition.state.as_str() {
            "open" if !now.is_open() => State::Open,
            "forced_open" if now != State::ForcedOpen => State::ForcedOpen,
            "closed" if matches!(now, State::Open | State::HalfOpen | State::ForcedOpen) => {
                State::Closed
            }
            _ => return,
        };
        self.applied()
            .insert((transition.breaker.clone(), target), Instant::now());
        tracing::info!(breaker = %transition.breaker, from = %transition.node, state = %target, "following another server's breaker");
        match target {
            State::Open => breaker.trip(),
            State::ForcedOpen => breaker.force_open(),
            _ => breaker.reset(),
        }
    }
}
