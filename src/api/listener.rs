//! The listening socket's guard: at most `max_connections` connections are served at once
//! (more wait in the kernel's listen queue, so a flood of idle sockets cannot take every file
//! descriptor the server has), a failed `accept` (no file descriptors left, say) backs off
//! instead of spinning, and a request's head (request line and headers) must arrive within
//! the header timeout, so a client trickling header bytes cannot hold a connection (the idle
//! timeout alone would be reset by every byte). Owns [`LimitedAcceptor`].

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
use std::future::Future;
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
    header_timeout: Duration,
}

impl<A> LimitedAcceptor<A> {
    pub fn new(inner: A, max_connections: usize, header_timeout: Duration) -> Self {
        LimitedAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            last_warning: None,
            header_timeout,
        }
    }
}

/// A connection that holds one of the acceptor's permits until it is dropped, and closes
/// when a request head takes longer than the header timeout.
pub struct Limited<Io> {
    io: Io,
    _permit: OwnedSemaphorePermit,
    head: HeadClock,
}

/// Where a connection is in reading a request head. A head starts at accept and at the first
/// byte read after the server has written (an answer); it ends at the blank line.
struct HeadClock {
    timeout: Duration,
    /// Set while a head is being read: when it must be complete.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last bytes of the head so far, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
    /// The server wrote since the last head ended: the next byte starts a new head.
    answered: bool,
}

impl HeadClock {
    fn new(timeout: Duration) -> Self {
        HeadClock {
            timeout,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            tail: [0; 3],
            answered: false,
        }
    }

    /// Takes in bytes just read.
    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.deadline.is_none() && self.answered {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
            self.tail = [0; 3];
            self.answered = false;
        }
        if self.deadline.is_none() {
            return;
        }
        let mut window = self.tail.to_vec();
        window.extend_from_slice(bytes);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            self.deadline = None;
        } else {
            let n = window.len();
            self.tail.copy_from_slice(&window[n - 3..]);
        }
    }

    /// True when the head being read is late (and registers for the deadline otherwise).
    fn late(&mut self, cx: &mut Context<'_>) -> bool {
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
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
                            head: HeadClock::new(self.header_timeout),
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
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = &buf.filled()[before..];
            self.head.read(fresh);
            if !fresh.is_empty() || self.head.deadline.is_none() {
                return polled;
            }
        }
        if self.head.late(cx) {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request head did not arrive within the header timeout",
            )));
        }
        polled
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Limited<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.head.answered = true;
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
        self.head.answered = true;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
