//! Serving the router as a plain HTTP server (the local stack, the console proxy, the tests), with the one
//! answer hyper writes itself made a problem document too.
//!
//! hyper refuses a request target over 65,534 bytes before the router sees it, with a bare
//! `414 URI Too Long` and no body. Every other error of this API is `application/problem+json`, so each
//! connection is watched: when a line of the request has outgrown hyper's limit and hyper then writes its
//! bodiless 414, that answer is replaced by a 414 problem document. In Lambda, API Gateway refuses long
//! request lines itself, before the function.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::problem::{Problem, PROBLEM_JSON};

/// The longest request target hyper takes, in bytes.
pub const MAX_REQUEST_TARGET: usize = u16::MAX as usize - 1;

/// Serves `app` on `listener`: await it, or give it a graceful shutdown first.
pub fn serve(listener: TcpListener, app: axum::Router) -> axum::serve::Serve<Guarded, axum::Router, axum::Router> {
    axum::serve(Guarded(listener), app)
}

/// The listener that hands out watched connections.
pub struct Guarded(pub TcpListener);

impl axum::serve::Listener for Guarded {
    type Io = Watched<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (Watched::new(stream), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The 414 answer, as a problem document.
pub fn uri_too_long_response() -> Vec<u8> {
    let body = Problem::new(
        axum::http::StatusCode::URI_TOO_LONG,
        format!(
            "the request target is longer than the {MAX_REQUEST_TARGET} bytes this server reads; ids are at most \
             8192 bytes, and API Gateway refuses request lines over 10240 bytes"
        ),
    )
    .to_json();
    let mut response = format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// Whether `head` is hyper's own answer to a request target it refused: a 414 with no body. The application never
/// answers one (its 414s, like every error of this API, carry a problem document).
fn is_bare_414(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.1 414 URI Too Long\r\n")
        && head.ends_with(b"\r\n\r\n")
        && head
            .windows(b"content-length: 0\r\n".len())
            .any(|w| w.eq_ignore_ascii_case(b"content-length: 0\r\n"))
}

/// A connection whose bodiless 414 from hyper is answered with a problem document instead.
pub struct Watched<S> {
    inner: S,
    /// Bytes read since the last line feed.
    line: usize,
    /// A line of the request has been longer than hyper takes.
    overlong: bool,
    /// The replacement answer still to write, and how much of it is written.
    pending: Vec<u8>,
    written: usize,
}

impl<S> Watched<S> {
    pub fn new(inner: S) -> Self {
        Watched {
            inner,
            line: 0,
            overlong: false,
            pending: Vec::new(),
            written: 0,
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.line = 0;
            } else {
                self.line += 1;
                if self.line > MAX_REQUEST_TARGET {
                    self.overlong = true;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Writes what is left of the replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        this.saw(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            // The replacement is the last answer on this connection: what hyper writes after it is dropped.
            ready!(this.drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if this.overlong && is_bare_414(buf) {
            this.pending = uri_too_long_response();
            // hyper's own answer is taken whole and replaced; the replacement goes out now or on flush.
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    // hyper then writes each answer's head as one buffer, which is what the 414 is recognized by.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::future::IntoFuture;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn exchange(request: Vec<u8>) -> (String, String) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(serve(listener, app).into_future());
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        server.abort();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        (head.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn a_request_target_over_hypers_limit_gets_a_problem_document() {
        let request = format!("GET /health?q={} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100_000));
        let (head, body) = exchange(request.into_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("content-type: application/problem+json"), "{head}");
        let problem: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(problem["status"], 414);
        assert!(problem["detail"].as_str().unwrap_or_default().contains("65534"));
    }

    #[tokio::test]
    async fn answers_on_a_kept_alive_connection_are_left_alone() {
        let request =
            "GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        let (head, body) = exchange(request.as_bytes().to_vec()).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body.matches("HTTP/1.1 200 OK").count(), 1, "{body}");
    }

    #[tokio::test]
    async fn a_long_line_after_a_good_request_is_refused_with_a_problem_too() {
        let request = format!(
            "GET /health HTTP/1.1\r\nhost: x\r\n\r\nGET /health?q={} HTTP/1.1\r\nhost: x\r\n\r\n",
            "b".repeat(70_000)
        );
        let (head, body) = exchange(request.into_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            body.contains("HTTP/1.1 414 URI Too Long\r\ncontent-type: application/problem+json"),
            "{body}"
        );
    }
}
