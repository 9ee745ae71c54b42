//! Test support for the HTTP adapter: a loopback HTTP server that plays faults.
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
                if let Some(resp) = respond(n, &head) {
                    let _ = sock.write_all(resp.as_bytes()).await;
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
