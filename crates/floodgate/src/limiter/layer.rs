//! Tower middleware that runs each request under a [`Limiter`] permit.
//!
//! * [`LimiterLayer::new`] takes the permit in `poll_ready` and holds it until the response
//!   future completes, as `tower::limit::ConcurrencyLimit` does, but with the limiter's queue
//!   bound, timeout, priorities, stats and sharing across services.
//! * [`LimiterLayer::shed`] never waits: when no permit is free the request fails at once with
//!   [`Rejected`] (load shedding).
//! * [`PriorityLimiterLayer`] picks a [`Priority`] per request. Since a request is only known in
//!   `call`, it waits for the permit inside the response future and needs a `Clone` service.
//!
//! Errors are boxed (`tower::BoxError`); a rejection downcasts to [`Rejected`].
//!
//! ```
//! use floodgate::Limiter;
//! use floodgate::limiter::layer::LimiterLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! let limiter = Limiter::builder().name("api").max_concurrency(2).build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(LimiterLayer::new(limiter.clone()))
//!     .service(service_fn(|x: u32| async move { Ok::<_, tower::BoxError>(x + 1) }));
//! assert_eq!(svc.ready().await?.call(41).await?, 42);
//! assert_eq!(limiter.stats().acquired, 1);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tower::{BoxError, Layer, Service, ServiceExt};

use super::{Limiter, OwnedPermit, Priority, Rejected};

type AcquireFut = Pin<Box<dyn Future<Output = Result<OwnedPermit, Rejected>> + Send + 'static>>;

/// Limits the services it wraps with a shared [`Limiter`].
#[derive(Debug, Clone)]
pub struct LimiterLayer {
    limiter: Limiter,
    shed: bool,
}

impl LimiterLayer {
    /// Waits for a permit in `poll_ready` (rejections surface as `poll_ready` errors).
    pub fn new(limiter: Limiter) -> Self {
        LimiterLayer {
            limiter,
            shed: false,
        }
    }

    /// Never waits: a request that finds no free permit fails at once with
    /// [`Rejected::QueueFull`] (capacity `0`), or [`Rejected::Closed`].
    pub fn shed(limiter: Limiter) -> Self {
        LimiterLayer {
            limiter,
            shed: true,
        }
    }
}

impl<S> Layer<S> for LimiterLayer {
    type Service = LimiterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimiterService {
            inner,
            limiter: self.limiter.clone(),
            shed: self.shed,
            permit: None,
            acquiring: None,
        }
    }
}

/// The service made by [`LimiterLayer`].
pub struct LimiterService<S> {
    inner: S,
    limiter: Limiter,
    shed: bool,
    permit: Option<OwnedPermit>,
    acquiring: Option<AcquireFut>,
}

impl<S: fmt::Debug> fmt::Debug for LimiterService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter.name())
            .field("shed", &self.shed)
            .field("has_permit", &self.permit.is_some())
            .finish()
    }
}

impl<S: Clone> Clone for LimiterService<S> {
    /// The clone shares the limiter but holds no permit of its own.
    fn clone(&self) -> Self {
        LimiterService {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            shed: self.shed,
            permit: None,
            acquiring: None,
        }
    }
}

impl<S, Req> Service<Req> for LimiterService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.shed && self.permit.is_none() {
            if self.acquiring.is_none() {
                match self.limiter.try_take_quiet() {
                    Ok(Some(permit)) => self.permit = Some(permit),
                    Ok(None) => {
                        let limiter = self.limiter.clone();
                        self.acquiring =
                            Some(Box::pin(async move { limiter.acquire_owned().await }));
                    }
                    Err(rejected) => return Poll::Ready(Err(rejected.into())),
                }
            }
            if let Some(acquiring) = &mut self.acquiring {
                let result = ready!(acquiring.as_mut().poll(cx));
                self.acquiring = None;
                self.permit = Some(result?);
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let permit = if self.shed {
            match self.limiter.try_take_quiet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    let rejected = self.limiter.shed_rejection();
                    return ResponseFuture::rejected(rejected);
                }
                Err(rejected) => return ResponseFuture::rejected(rejected),
            }
        } else {
            self.permit
                .take()
                .expect("LimiterService::call without poll_ready: call poll_ready first")
        };
        ResponseFuture {
            state: State::Running {
                future: self.inner.call(req),
                _permit: permit,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`LimiterService`]: holds the permit until the inner future ends.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Running { #[pin] future: F, _permit: OwnedPermit },
        Rejected { rejected: Option<Rejected> },
    }
}

impl<F> ResponseFuture<F> {
    fn rejected(rejected: Rejected) -> Self {
        ResponseFuture {
            state: State::Rejected {
                rejected: Some(rejected),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Running { future, .. } => future.poll(cx).map_err(Into::into),
            StateProj::Rejected { rejected } => {
                let rejected = rejected
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Err(rejected.into()))
            }
        }
    }
}

/// Limits the services it wraps, choosing a [`Priority`] per request with a function.
#[derive(Clone)]
pub struct PriorityLimiterLayer<P> {
    limiter: Limiter,
    priority: Arc<P>,
}

impl<P> PriorityLimiterLayer<P> {
    /// `priority` maps each request to the priority it waits with.
    pub fn new(limiter: Limiter, priority: P) -> Self {
        PriorityLimiterLayer {
            limiter,
            priority: Arc::new(priority),
        }
    }
}

impl<P> fmt::Debug for PriorityLimiterLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityLimiterLayer")
            .field("limiter", &self.limiter.name())
            .finish_non_exhaustive()
    }
}

impl<S, P> Layer<S> for PriorityLimiterLayer<P> {
    type Service = PriorityLimiterService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        PriorityLimiterService {
            inner,
            limiter: self.limiter.clone(),
            priority: self.priority.clone(),
        }
    }
}

/// The service made by [`PriorityLimiterLayer`].
#[derive(Clone)]
pub struct PriorityLimiterService<S, P> {
    inner: S,
    limiter: Limiter,
    priority: Arc<P>,
}

impl<S: fmt::Debug, P> fmt::Debug for PriorityLimiterService<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityLimiterService")
            .field("inner", &self.inner)
            .field("limiter", &self.limiter.name())
            .finish_non_exhaustive()
    }
}

impl<S, P, Req> Service<Req> for PriorityLimiterService<S, P>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    Req: Send + 'static,
    P: Fn(&Req) -> Priority,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    /// Always ready: the permit is awaited in the response future, where the request's
    /// priority is known.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let priority = (self.priority)(&req);
        let limiter = self.limiter.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            let _permit = limiter.acquire_owned_with(priority).await?;
            inner.oneshot(req).await.map_err(Into::into)
        })
    }
}
