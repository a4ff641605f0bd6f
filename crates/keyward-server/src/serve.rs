//! Serving HTTP with bounded resources: a client that sends its headers slowly, never
//! finishes its body, or holds idle connections open cannot starve everyone else.
//!
//! - headers must arrive within `header_read_timeout` of the first byte of a request (or of
//!   the connection's start), else the connection is dropped;
//! - a body must arrive within `body_read_timeout` of its request's start, else 408;
//! - a keep-alive connection idle for `idle_timeout` is closed;
//! - at most `max_connections` are served at once; further ones wait in the listen queue;
//! - HTTP/2 allows 100 concurrent streams and 16 KiB of headers per connection;
//! - with TLS, the handshake must finish within `header_read_timeout` too; requests that
//!   arrive over TLS carry the [`OverTls`] extension.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::tls::Tls;

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: u32,
}

/// Streams per HTTP/2 connection.
const H2_MAX_STREAMS: u32 = 100;
/// Header bytes per HTTP/2 request.
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// Marks a request that arrived over TLS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Serves `router` on `listener` (over TLS when `tls` is set) until `shutdown` completes,
/// then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Accept only with a free slot: further clients wait in the kernel's queue.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let stopping = stopping.clone();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        connections.spawn(async move {
            serve_connection(stream, peer, router, limits, acceptor, stopping).await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while let Some(joined) = connections.try_join_next() {
            report_connection_end(joined);
        }
    }
    // Fails only when no connection is left to tell.
    let _ = stop.send(true);
    while let Some(joined) = connections.join_next().await {
        report_connection_end(joined);
    }
    Ok(())
}

/// What one connection is doing, shared by its reader, its requests and its watchdog.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    /// Requests being served.
    active: AtomicU32,
    /// Milliseconds (+1) since `epoch` of the first byte of a request whose headers are not
    /// complete yet; 0 when none is being read.
    reading_since: AtomicU64,
    /// Milliseconds since `epoch` the last request finished.
    last_done: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            active: AtomicU32::new(0),
            // A new connection owes its first request's headers from the start.
            reading_since: AtomicU64::new(1),
            last_done: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn bytes_read(&self) {
        if self.active.load(Ordering::Relaxed) == 0
            && self.reading_since.load(Ordering::Relaxed) == 0
        {
            self.reading_since.store(self.now() + 1, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.reading_since.store(0, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.last_done.store(self.now(), Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// What the watchdog should do now.
    fn verdict(&self, limits: &ConnectionLimits) -> Verdict {
        if self.active.load(Ordering::Relaxed) > 0 {
            return Verdict::Keep;
        }
        let now = self.now();
        let reading_since = self.reading_since.load(Ordering::Relaxed);
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if reading_since > 0 {
            if now.saturating_sub(reading_since - 1) > millis(limits.header_read_timeout) {
                return Verdict::Drop;
            }
        } else if now.saturating_sub(self.last_done.load(Ordering::Relaxed))
            > millis(limits.idle_timeout)
        {
            return Verdict::CloseIdle;
        }
        Verdict::Keep
    }
}

enum Verdict {
    Keep,
    /// Idle between requests: close cleanly.
    CloseIdle,
    /// Headers too slow: drop the connection.
    Drop,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    acceptor: Option<Arc<TlsAcceptor>>,
    stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let watched = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let Some(acceptor) = acceptor else {
        let io = TokioIo::new(watched);
        return drive(io, peer, router, limits, activity, false, stopping).await;
    };
    // The handshake owes its bytes like a request's headers.
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(watched)).await {
        Ok(Ok(stream)) => {
            let io = TokioIo::new(stream);
            drive(io, peer, router, limits, activity, true, stopping).await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake did not finish in time"),
    }
}

/// Serves the requests of one connection (`tls`: it arrived over TLS).
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    tls: bool,
    mut stopping: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let activity = service_activity.clone();
        activity.request_started();
        let mut request = request.map(|body| {
            Body::new(DeadlineBody {
                inner: body,
                deadline: Instant::now() + limits.body_read_timeout,
                timer: None,
            })
        });
        request.extensions_mut().insert(ConnectInfo(peer));
        if tls {
            request.extensions_mut().insert(OverTls);
        }
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await;
            activity.request_finished();
            response
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when the connection has been closing (a client that stops reading the response
    // must not hold its slot forever: it is dropped one idle timeout later).
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            // The connection first: it is what wakes this task almost every time.
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = stopping.changed(), if closing.is_none() => {
                if changed.is_err() || *stopping.borrow() {
                    closing = Some(Instant::now());
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = watchdog.tick() => {
                if closing.is_some_and(|since| since.elapsed() > limits.idle_timeout) {
                    tracing::debug!(%peer, "dropping a connection that did not finish closing");
                    return;
                }
                match activity.verdict(&limits) {
                    Verdict::Keep => {}
                    Verdict::CloseIdle => {
                        if closing.is_none() {
                            closing = Some(Instant::now());
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    Verdict::Drop => {
                        tracing::debug!(%peer, "closing a connection whose request headers did not arrive in time");
                        return;
                    }
                }
            }
        }
    }
}

/// The socket, noting when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The request body did not arrive within `--body-read-timeout` (answered 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body that fails with [`BodyTimeout`] once its deadline passes. The timer is
/// armed only when the body is not ready at once: most bodies are (or there is none), and
/// they cost no timer.
struct DeadlineBody {
    inner: Incoming,
    deadline: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                deadline,
            )))
        });
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error (or one of its causes) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A connection task that panicked is logged (its client saw the connection close).
fn report_connection_end(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "a connection task panicked");
    }
}
