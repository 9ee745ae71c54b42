//! Test support for the HTTP adapter: a loopback HTTP server that plays faults.
//!
//! A stand-in for a hostile or broken registry (hand-written: no real registry redirects to the
//! metadata service, names a foreign token realm, stalls before its first byte or trickles a
//! body on demand). It records every request head, `Authorization` included, so tests can see
//! which credential went where.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex as StdMutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP/1.1 server answering each request with `respond(n, request_head)`
/// (`None` drops the connection without an answer). Hand-written: the faults it plays
/// (Retry-After, dropped connections, challenges) are exactly what a real registry won't do
/// on demand.
pub struct FaultServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    requests: Arc<StdMutex<Vec<String>>>,
}

impl FaultServer {
    /// Start answering on a random loopback port.
    pub async fn start(
        respond: impl Fn(usize, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests: Arc<StdMutex<Vec<String>>> = Arc::default();
        let log = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let n = {
                    let mut l = log.lock().unwrap();
                    l.push(head.clone());
                    l.len() - 1
                };
                match respond(n, &head) {
                    // Hold the connection open and say nothing.
                    Some(r) if r == STALL => {
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                            drop(sock);
                        });
                        continue;
                    }
                    // The head at once, then the body a byte at a time, 50 ms apart.
                    Some(r) if r.starts_with(TRICKLE) => {
                        tokio::spawn(async move {
                            let r = &r[TRICKLE.len()..];
                            let split = r.find("\r\n\r\n").map_or(r.len(), |i| i + 4);
                            let _ = sock.write_all(&r.as_bytes()[..split]).await;
                            for b in r[split..].bytes() {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                                if sock.write_all(&[b]).await.is_err() {
                                    return;
                                }
                            }
                            let _ = sock.shutdown().await;
                        });
                        continue;
                    }
                    Some(resp) => {
                        let _ = sock.write_all(resp.as_bytes()).await;
                    }
                    None => {}
                }
                let _ = sock.shutdown().await;
            }
        });
        FaultServer { host, requests }
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// An answer that never comes: the connection stays open and silent.
pub const STALL: &str = "\0stall";

/// Prefix of an answer whose body is sent a byte at a time.
pub const TRICKLE: &str = "\0trickle:";

/// The `Authorization` header of a request head, if any.
pub fn authorization(head: &str) -> Option<String> {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .map(|l| l["authorization:".len()..].trim().to_owned())
}

/// A raw response with `headers` and an empty body unless a `Content-Length` is given.
pub fn answer(status: &str, headers: &[&str]) -> Option<String> {
    let mut s = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    if !headers.iter().any(|h| h.starts_with("Content-Length")) {
        s.push_str("Content-Length: 0\r\n");
    }
    s.push_str("\r\n");
    Some(s)
}
