//! Load shedding: a cap on the requests one process serves at once, across all its connections.
//!
//! Past the cap a request is answered at once with a cheap refusal (gRPC `UNAVAILABLE`, HTTP `503`), never queued:
//! a queue only turns an overload into timeouts for everyone, while a fast refusal lets a client back off and
//! retry, or a load balancer pick another replica. Per-connection limits (HTTP/2 streams) stop one client from
//! taking the whole cap on a single connection; this one protects the process from many.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::{BoxFuture, FutureExt};
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tower::{Layer, Service};

/// How long a refused client is advised to wait before it retries.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Wraps services in an [`InFlightLimit`], all of them sharing one cap of `max_in_flight` requests.
pub struct InFlightLimitLayer<B> {
    permits: Arc<Semaphore>,
    refusal: fn() -> http::Response<B>,
}

// By hand: a derive would ask the body type to be `Clone`, which response bodies are not.
impl<B> Clone for InFlightLimitLayer<B> {
    fn clone(&self) -> Self {
        Self { permits: self.permits.clone(), refusal: self.refusal }
    }
}

impl<S: Clone, B> Clone for InFlightLimit<S, B> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), permits: self.permits.clone(), refusal: self.refusal }
    }
}

impl<B> std::fmt::Debug for InFlightLimitLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightLimitLayer").field("available", &self.permits.available_permits()).finish()
    }
}

impl<B> InFlightLimitLayer<B> {
    /// At most `max_in_flight` requests at once; the others get `refusal()`.
    pub fn new(max_in_flight: usize, refusal: fn() -> http::Response<B>) -> Self {
        Self { permits: Arc::new(Semaphore::new(max_in_flight)), refusal }
    }
}

impl<S, B> Layer<S> for InFlightLimitLayer<B> {
    type Service = InFlightLimit<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit { inner, permits: self.permits.clone(), refusal: self.refusal }
    }
}

/// A service that serves at most as many requests at once as its shared semaphore has permits.
pub struct InFlightLimit<S, B> {
    inner: S,
    permits: Arc<Semaphore>,
    refusal: fn() -> http::Response<B>,
}

impl<S, B> std::fmt::Debug for InFlightLimit<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlightLimit").field("available", &self.permits.available_permits()).finish()
    }
}

impl<S, ReqBody, B> Service<http::Request<ReqBody>> for InFlightLimit<S, B>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<B>> + Send,
    S::Future: Send + 'static,
    S::Error: Send,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::warn!(path = %request.uri().path(), "Overloaded: refused a request.");
            let refusal = (self.refusal)();
            return async move { Ok(refusal) }.boxed();
        };
        let response = self.inner.call(request);
        async move {
            let response = response.await;
            // Held until the handler answers (a streamed body goes on without it: its work is done).
            drop(permit);
            response
        }
        .boxed()
    }
}

/// The gRPC refusal: `UNAVAILABLE`, which every gRPC client treats as safe to retry, with the advice in the message.
pub fn grpc_refusal() -> http::Response<tonic::body::Body> {
    tonic::Status::unavailable(format!("the server is overloaded; retry after {} s", RETRY_AFTER.as_secs()))
        .into_http()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::oneshot;
    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn past_the_cap_a_request_is_refused_at_once_with_unavailable_and_served_again_after() {
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let service = service_fn(move |_: http::Request<()>| {
            let released = released.clone();
            async move {
                if let Some(released) = released.lock().await.take() {
                    let _ = released.await;
                }
                Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
            }
        });
        let limited = InFlightLimitLayer::new(1, grpc_refusal).layer(service);

        let first = tokio::spawn(limited.clone().oneshot(http::Request::new(())));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = limited.clone().oneshot(http::Request::new(())).await.unwrap();
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        let served = limited.oneshot(http::Request::new(())).await.unwrap();

        let status = tonic::Status::from_header_map(refused.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("retry"), "{}", status.message());
        assert!(tonic::Status::from_header_map(served.headers()).is_none());
    }
}
