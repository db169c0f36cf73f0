//! [`BreakerLayer`]: Tower middleware that fails fast while a breaker is open.
//!
//! Each call asks the breaker for a permit; while open, the call fails at once with
//! [`BreakerError::Open`](super::BreakerError::Open) (boxed) without reaching the inner service. The inner result is
//! classified (by default `Ok` is a success and `Err` a failure) and reported when the response
//! future completes; a response future dropped before that counts as `Ignored`.
//!
//! ```
//! use floodgate::breaker::{CircuitBreaker, layer::BreakerLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder().consecutive_failures(1).build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(BreakerLayer::new(breaker.clone()))
//!     .service(service_fn(|fail: bool| async move { if fail { Err("down") } else { Ok(()) } }));
//! assert!(svc.clone().oneshot(true).await.is_err());
//! let err = svc.oneshot(false).await.unwrap_err();
//! assert!(err.to_string().contains("is open"));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{CircuitBreaker, Outcome};

/// How a [`BreakerService`] classifies its inner service's results.
pub trait Classify<R, E>: Send + Sync + 'static {
    /// The outcome of `result`.
    fn outcome(&self, result: &Result<R, E>) -> Outcome;
}

/// `Ok` is a success, `Err` a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkIsSuccess;

impl<R, E> Classify<R, E> for OkIsSuccess {
    fn outcome(&self, result: &Result<R, E>) -> Outcome {
        Outcome::of(result)
    }
}

impl<R, E, F> Classify<R, E> for F
where
    F: Fn(&Result<R, E>) -> Outcome + Send + Sync + 'static,
{
    fn outcome(&self, result: &Result<R, E>) -> Outcome {
        self(result)
    }
}

/// Wraps services in [`BreakerService`].
#[derive(Clone)]
pub struct BreakerLayer<C = OkIsSuccess> {
    breaker: CircuitBreaker,
    classify: Arc<C>,
}

impl<C> fmt::Debug for BreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.breaker.name())
            .finish()
    }
}

impl BreakerLayer {
    /// `Ok` is a success, `Err` a failure.
    pub fn new(breaker: CircuitBreaker) -> Self {
        BreakerLayer {
            breaker,
            classify: Arc::new(OkIsSuccess),
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Classifies each result of the inner service with `classify` instead.
    pub fn classify<C2>(self, classify: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            classify: Arc::new(classify),
        }
    }
}

impl<S, C> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// A service guarded by a circuit breaker; made by [`BreakerLayer`].
#[derive(Clone)]
pub struct BreakerService<S, C = OkIsSuccess> {
    inner: S,
    breaker: CircuitBreaker,
    classify: Arc<C>,
}

impl<S: fmt::Debug, C> fmt::Debug for BreakerService<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.name())
            .finish()
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + fmt::Display + Send + 'static,
    C: Classify<S::Response, S::Error>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let permit = match self.breaker.try_acquire() {
            Ok(p) => p,
            Err(open) => return Box::pin(std::future::ready(Err(BoxError::from(open)))),
        };
        let classify = self.classify.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let outcome = classify.outcome(&result);
            match &result {
                Err(e) => permit.record(outcome, Some(e)),
                Ok(_) => permit.record(outcome, None),
            }
            result.map_err(Into::into)
        })
    }
}
