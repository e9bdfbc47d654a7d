//! The listening socket's guard: at most `max_connections` connections are served at once
//! (more wait in the kernel's listen queue, so a flood of idle sockets cannot take every file
//! descriptor the server has), and a failed `accept` (no file descriptors left, say) backs off
//! instead of spinning. Owns [`LimitedAcceptor`].

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use poem::{
    http::uri::Scheme,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// Waits after an `accept` error, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    last_warning: Option<Instant>,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, max_connections: usize) -> Self {
        LimitedAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            last_warning: None,
        }
    }
}

/// A connection that holds one of the acceptor's permits until it is dropped.
pub struct Limited<Io> {
    io: Io,
    _permit: OwnedSemaphorePermit,
}

impl<A: Acceptor> Acceptor for LimitedAcceptor<A> {
    type Io = Limited<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| std::io::Error::other("the connection limit was closed"))?;
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.inner.accept().await {
                Ok((io, local, remote, scheme)) => {
                    return Ok((
                        Limited {
                            io,
                            _permit: permit,
                        },
                        local,
                        remote,
                        scheme,
                    ))
                }
                Err(e) => {
                    if self
                        .last_warning
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                    {
                        tracing::warn!(error = %e, "accepting a connection failed; backing off");
                        self.last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Limited<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Limited<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
