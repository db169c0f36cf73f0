//! The listener's side of the server: accept connections, serve HTTP/1.1 on each, and never
//! let a client hold one for free.
//!
//! - **Headers in time**: a request whose head is not complete within `header_read_timeout`
//!   (10 s by default) is answered by closing the connection. The same clock runs while a
//!   keep-alive connection waits for its next request, so an idle connection closes after it
//!   too.
//! - **A bound on open connections** (`max_connections`, 8,192 by default): at the bound, the
//!   connection idle the longest (no request being answered: a keep-alive connection between
//!   requests, or one still sending a head) is closed to admit the new one. A connection whose
//!   request is being answered, a long poll or an event stream included, is never chosen;
//!   when every one is busy, new connections wait in the kernel's backlog until one ends.
//!   Running out of file descriptors is handled the same way.
//! - **Graceful drain**: at shutdown, accepting stops, idle connections close, and the ones
//!   answering a request finish it first.
//!
//! The request body's own deadline is a layer of the router (`request_body_timeout`).
//!
//! ```no_run
//! # async fn run(app: axum::Router) -> std::io::Result<()> {
//! use std::time::Duration;
//! use floodgate_server::connections::{Connections, Limits};
//! use tokio_util::sync::CancellationToken;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let limits = Limits { max_connections: 1_000, header_read_timeout: Duration::from_secs(10) };
//! let connections = Connections::new(limits);
//! connections.serve(listener, app, CancellationToken::new()).await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

/// The limits on connections (from the server's settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past it the one idle the longest is closed.
    pub max_connections: usize,
    /// How long a request's head may take to arrive, and a keep-alive connection may wait
    /// for its next request.
    pub header_read_timeout: Duration,
}

/// Listens on `addr` with a backlog of 4,096 (the kernel may cap it, at `somaxconn`), so a
/// burst of connections waits in the kernel instead of being refused, and clients are not
/// made to retry their handshake a second later.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4_096)
}

/// How long a connection chosen to close may take to finish writing.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// A snapshot of the connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: usize,
    /// Of those, the ones answering a request now.
    pub busy: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections closed idle to make room under `max_connections` since start.
    pub evicted: u64,
}

/// The server's connections: accepted, bounded, tracked and drained (see the module docs).
/// Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Woken when a connection closes or turns idle: the accept loop may have room.
    changed: Arc<Notify>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    evicted: AtomicU64,
    epoch: Instant,
}

/// One connection's state, shared by its task and its requests.
struct Conn {
    /// Requests being answered (a response body still streaming counts).
    busy: AtomicUsize,
    /// When it last turned idle, in milliseconds since `epoch`.
    idle_since: AtomicU64,
    epoch: Instant,
    /// Set when chosen to close; `close` wakes its task.
    closing: AtomicBool,
    close: Notify,
    /// The accept loop's: notified when this connection turns idle.
    changed: Arc<Notify>,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Connections {
    /// Connections under `limits`; nothing is accepted until [`Connections::serve`].
    pub fn new(limits: Limits) -> Connections {
        Connections {
            inner: Arc::new(Inner {
                limits,
                open: Mutex::new(HashMap::new()),
                changed: Arc::new(Notify::new()),
                next_id: AtomicU64::new(0),
                accepted: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// A snapshot of the connections.
    pub fn stats(&self) -> ConnectionStats {
        let open = self.inner.lock();
        ConnectionStats {
            open: open.len(),
            busy: open
                .values()
                .filter(|c| c.busy.load(Ordering::Acquire) > 0)
                .count(),
            accepted: self.inner.accepted.load(Ordering::Relaxed),
            evicted: self.inner.evicted.load(Ordering::Relaxed),
        }
    }

    /// Serves `app` on `listener` until `shutdown` is cancelled, then drains: returns when
    /// every connection has closed (idle ones at once, busy ones when their answers end).
    pub async fn serve(&self, listener: TcpListener, app: Router, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.inner.limits.header_read_timeout);
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.room() => tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                },
            };
            match accepted {
                Ok((stream, _)) => {
                    let (id, conn) = self.inner.admit();
                    let task =
                        serve_one(stream, app.clone(), builder.clone(), conn, shutdown.clone());
                    let inner = self.inner.clone();
                    tracker.spawn(async move {
                        task.await;
                        inner.remove(id);
                    });
                }
                Err(e) => self.accept_failed(e).await,
            }
        }
        tracker.close();
        tracker.wait().await;
    }

    /// Returns when a connection may be accepted: under the bound, after choosing the
    /// connection idle the longest to close if need be. A connection chosen to close no
    /// longer counts, so the accept loop never waits on an idle one's task.
    async fn room(&self) {
        loop {
            let changed = self.inner.changed.notified();
            if self.inner.make_room() {
                return;
            }
            changed.await;
        }
    }

    async fn accept_failed(&self, e: io::Error) {
        // Out of file descriptors (or another transient failure): make room as at the bound,
        // and breathe, as a busy loop would not help.
        tracing::warn!(error = %e, "accepting a connection failed");
        if is_out_of_files(&e) {
            self.inner.close_oldest_idle();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_out_of_files(e: &io::Error) -> bool {
    // EMFILE and ENFILE, which `io::ErrorKind` does not name.
    matches!(e.raw_os_error(), Some(23 | 24))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding this lock leaves a consistent map: nothing to repair.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            epoch: self.epoch,
            closing: AtomicBool::new(false),
            close: Notify::new(),
            changed: self.changed.clone(),
        });
        conn.idle_since.store(conn.now_ms(), Ordering::Release);
        let open = {
            let mut open = self.lock();
            open.insert(id, conn.clone());
            open.len()
        };
        self.accepted.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("floodgate_http_connections").set(open as f64);
        (id, conn)
    }

    fn remove(&self, id: u64) {
        let open = {
            let mut open = self.lock();
            open.remove(&id);
            open.len()
        };
        metrics::gauge!("floodgate_http_connections").set(open as f64);
        self.changed.notify_one();
    }

    /// Whether another connection fits under the bound, closing the one idle the longest if
    /// that makes it fit; false when every connection is busy.
    fn make_room(&self) -> bool {
        let open = self.lock();
        let (live, oldest) = live_and_oldest_idle(&open);
        if live < self.limits.max_connections {
            return true;
        }
        match oldest {
            Some(conn) => {
                self.close(conn);
                live - 1 < self.limits.max_connections
            }
            None => false,
        }
    }

    /// Closes the connection idle the longest, if any (out of file descriptors).
    fn close_oldest_idle(&self) {
        if let (_, Some(conn)) = live_and_oldest_idle(&self.lock()) {
            self.close(conn);
        }
    }

    fn close(&self, conn: &Conn) {
        conn.closing.store(true, Ordering::Release);
        conn.close.notify_one();
        self.evicted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("floodgate_http_connections_evicted_total").increment(1);
    }
}

/// The connections not chosen to close, and of those the one idle the longest.
fn live_and_oldest_idle(open: &HashMap<u64, Arc<Conn>>) -> (usize, Option<&Arc<Conn>>) {
    let mut live = 0;
    let mut oldest: Option<(&Arc<Conn>, u64)> = None;
    for conn in open.values() {
        if conn.closing.load(Ordering::Acquire) {
            continue;
        }
        live += 1;
        if conn.busy.load(Ordering::Acquire) > 0 {
            continue;
        }
        let since = conn.idle_since.load(Ordering::Acquire);
        if oldest.is_none_or(|(_, s)| since < s) {
            oldest = Some((conn, since));
        }
    }
    (live, oldest.map(|(conn, _)| conn))
}

/// Serves one connection until it ends, is chosen to close while idle, or the server drains.
async fn serve_one(
    stream: TcpStream,
    app: Router,
    builder: http1::Builder,
    conn: Arc<Conn>,
    shutdown: CancellationToken,
) {
    {
        // Answers are written whole; small ones should not wait for an ACK.
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn({
            let conn = conn.clone();
            move |request: hyper::Request<Incoming>| {
                let busy = Busy::begin(conn.clone());
                let mut app = app.clone();
                async move {
                    let response = app.call(Request::from(request.map(Body::new))).await;
                    Ok::<_, Infallible>(with_guard(response.unwrap_or_else(|e| match e {}), busy))
                }
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    return;
                }
                // Chosen while idle: closed gracefully, so the last answer's bytes still being
                // flushed are not cut; one still sending its head is dropped after a moment
                // (a request that began since is cancelled like a vanished client's).
                () = conn.close.notified() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await;
                    return;
                }
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Marks a connection busy from a request's start until its answer's body is done.
struct Busy(Arc<Conn>);

impl Busy {
    fn begin(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Release);
            // At the bound, the accept loop may close this one now.
            self.0.changed.notify_one();
        }
    }
}

/// Keeps `busy` until the response's body has been sent (or dropped).
fn with_guard(response: Response, busy: Busy) -> Response {
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _busy = &busy;
            frame
        }))
    })
}
