//! [`RetryLayer`]: retries a Tower service's failed calls with a [`Retry`] strategy.
//!
//! The request must be `Clone` (each attempt sends a clone) and so must the service (each
//! call drives its own clone). The service's error becomes [`RetryError`].
//!
//! ```
//! use std::time::Duration;
//! use floodgate::retry::layer::RetryLayer;
//! use floodgate::retry::{ExponentialBackoff, Retry, RetryDecision};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let retry = Retry::new(ExponentialBackoff::new(Duration::from_millis(10)));
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(retry, |status: &u16| RetryDecision::from_http_status(*status, None)))
//!     .service(service_fn(|n: u32| async move { if n > 0 { Ok(n) } else { Err(503u16) } }));
//! assert_eq!(svc.oneshot(5).await.unwrap(), 5);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt};

use super::{Retry, RetryDecision, RetryError, RetryPolicy};

/// Wraps services in [`RetryService`].
pub struct RetryLayer<P, C> {
    retry: Arc<Retry<P>>,
    classify: Arc<C>,
}

impl<P, C> Clone for RetryLayer<P, C> {
    fn clone(&self) -> Self {
        RetryLayer {
            retry: self.retry.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<P, C> fmt::Debug for RetryLayer<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer").finish_non_exhaustive()
    }
}

impl<P, C> RetryLayer<P, C> {
    /// Retries with `retry`, classifying errors with `classify`.
    pub fn new(retry: Retry<P>, classify: C) -> Self {
        RetryLayer {
            retry: Arc::new(retry),
            classify: Arc::new(classify),
        }
    }
}

impl<S, P, C> Layer<S> for RetryLayer<P, C> {
    type Service = RetryService<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            retry: self.retry.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// A service whose calls are retried; made by [`RetryLayer`].
pub struct RetryService<S, P, C> {
    inner: S,
    retry: Arc<Retry<P>>,
    classify: Arc<C>,
}

impl<S: Clone, P, C> Clone for RetryService<S, P, C> {
    fn clone(&self) -> Self {
        RetryService {
            inner: self.inner.clone(),
            retry: self.retry.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, P, C> fmt::Debug for RetryService<S, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P, C, Req> Service<Req> for RetryService<S, P, C>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    Req: Clone + Send + 'static,
    P: RetryPolicy + 'static,
    C: Fn(&S::Error) -> RetryDecision + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    /// Always ready: each call waits for its own clone of the service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = self.inner.clone();
        let retry = self.retry.clone();
        let classify = self.classify.clone();
        Box::pin(async move {
            retry
                .run_classified(
                    move || inner.clone().oneshot(req.clone()),
                    move |e| classify(e),
                )
                .await
        })
    }
}
