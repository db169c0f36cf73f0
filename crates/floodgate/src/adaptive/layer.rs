//! [`AdaptiveLimitLayer`]: Tower middleware under an [`AdaptiveLimiter`].
//!
//! Each call waits for a permit (in the response future), and reports its sample when it
//! ends: `Ok` is a success, `Err` a drop (override with [`AdaptiveLimitLayer::classify`]); a
//! response future dropped before it ends is ignored, not counted as a drop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service, ServiceExt};

use super::{AdaptiveLimiter, SampleOutcome};

type Classifier<R, E> = Arc<dyn Fn(&Result<R, E>) -> SampleOutcome + Send + Sync>;

/// Wraps services in [`AdaptiveLimitService`].
pub struct AdaptiveLimitLayer<R, E> {
    limiter: AdaptiveLimiter,
    classify: Classifier<R, E>,
}

impl<R, E> Clone for AdaptiveLimitLayer<R, E> {
    fn clone(&self) -> Self {
        AdaptiveLimitLayer {
            limiter: self.limiter.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<R, E> std::fmt::Debug for AdaptiveLimitLayer<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimitLayer")
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl<R, E> AdaptiveLimitLayer<R, E> {
    /// `Ok` is a success, `Err` a drop.
    pub fn new(limiter: AdaptiveLimiter) -> Self {
        AdaptiveLimitLayer {
            limiter,
            classify: Arc::new(|r: &Result<R, E>| {
                if r.is_ok() {
                    SampleOutcome::Success
                } else {
                    SampleOutcome::Dropped
                }
            }),
        }
    }

    /// Classifies results with `classify` instead.
    pub fn classify(
        mut self,
        classify: impl Fn(&Result<R, E>) -> SampleOutcome + Send + Sync + 'static,
    ) -> Self {
        self.classify = Arc::new(classify);
        self
    }
}

impl<S, R, E> Layer<S> for AdaptiveLimitLayer<R, E> {
    type Service = AdaptiveLimitService<S, R, E>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service under an adaptive limit; made by [`AdaptiveLimitLayer`].
pub struct AdaptiveLimitService<S, R, E> {
    inner: S,
    layer: AdaptiveLimitLayer<R, E>,
}

impl<S: Clone, R, E> Clone for AdaptiveLimitService<S, R, E> {
    fn clone(&self) -> Self {
        AdaptiveLimitService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, R, E> std::fmt::Debug for AdaptiveLimitService<S, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptiveLimitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, Req, R, E> Service<Req> for AdaptiveLimitService<S, R, E>
where
    S: Service<Req, Response = R, Error = E> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
    E: Into<BoxError> + Send + 'static,
    Req: Send + 'static,
{
    type Response = R;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

    /// Always ready: the permit is awaited in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let inner = self.inner.clone();
        let layer = self.layer.clone();
        Box::pin(async move {
            let permit = layer.limiter.acquire().await?;
            // Dropped before the end (cancelled): ignored rather than recorded as a success.
            let mut guard = IgnoreOnDrop(Some(permit));
            let result = inner.oneshot(req).await;
            let outcome = (layer.classify)(&result);
            if let Some(p) = guard.0.take() {
                p.complete(outcome);
            }
            result.map_err(Into::into)
        })
    }
}

struct IgnoreOnDrop(Option<super::AdaptivePermit>);

impl Drop for IgnoreOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.ignore();
        }
    }
}
