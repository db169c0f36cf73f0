//! [`RateLimitLayer`]: rate-limits a Tower service, rejecting or waiting.
//!
//! In reject mode a call over the rate fails at once with [`NotUntil`] (boxed), whose wait is a
//! Retry-After hint. In wait mode `poll_ready` reserves a cell and waits until it is due; a
//! service dropped with a reserved cell it did not use gives the cell back.
//!
//! ```
//! use floodgate::rate::{Quota, RateClock, RateLimiter, NotUntil, layer::RateLimitLayer};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let limiter = std::sync::Arc::new(RateLimiter::new(Quota::per_second(1).unwrap()).with_clock(RateClock::Tokio));
//! let svc = RateLimitLayer::reject(limiter).layer(service_fn(|x: u8| async move { Ok::<_, tower::BoxError>(x) }));
//! assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
//! let err = svc.oneshot(2).await.unwrap_err();
//! assert!(err.downcast_ref::<NotUntil>().unwrap().retry_after().is_some());
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::time::Sleep;
use tower::{BoxError, Layer, Service};

#[cfg(doc)]
use super::NotUntil;
use super::RateLimiter;

/// Wraps services in [`RateLimitService`].
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
    wait: bool,
}

impl RateLimitLayer {
    /// Calls over the rate fail at once with [`NotUntil`].
    pub fn reject(limiter: Arc<RateLimiter>) -> Self {
        RateLimitLayer {
            limiter,
            wait: false,
        }
    }

    /// `poll_ready` waits until the rate allows a call.
    pub fn wait(limiter: Arc<RateLimiter>) -> Self {
        RateLimitLayer {
            limiter,
            wait: true,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            wait: self.wait,
            reserved: None,
            sleep: None,
        }
    }
}

/// A rate-limited service; made by [`RateLimitLayer`].
#[derive(Debug)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
    wait: bool,
    /// The reservation `poll_ready` took (the TAT it set) and `call` has not used yet; its
    /// cell is due once `sleep` is done.
    reserved: Option<u64>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> Drop for RateLimitService<S> {
    fn drop(&mut self) {
        if let Some(reserved) = self.reserved {
            self.limiter.refund(reserved);
        }
    }
}

impl<S: Clone> Clone for RateLimitService<S> {
    /// The clone shares the limiter but holds no reserved cell.
    fn clone(&self) -> Self {
        RateLimitService {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            wait: self.wait,
            reserved: None,
            sleep: None,
        }
    }
}

impl<S, Req> Service<Req> for RateLimitService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.wait && self.reserved.is_none() {
            let (reserved, wait) = self.limiter.reserve();
            self.reserved = Some(reserved);
            if !wait.is_zero() {
                self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
            }
        }
        if let Some(sleep) = &mut self.sleep {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.wait {
            assert!(
                self.reserved.is_some() && self.sleep.is_none(),
                "RateLimitService::call without poll_ready: call poll_ready first"
            );
            self.reserved = None;
        } else if let Err(refused) = self.limiter.check() {
            return Box::pin(std::future::ready(Err(refused.into())));
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
