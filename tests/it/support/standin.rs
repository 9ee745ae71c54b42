//! A stand-in registry: a tiny hand-written HTTP/1.1 server on 127.0.0.1 (random port) that
//! answers each request as its handler says and records every request, `Authorization` header
//! included. It reproduces what no real registry does on demand: redirecting to loopback,
//! naming a token realm on another host, answering 500 to every blob request, and stalling
//! before the first byte of an answer. One request per connection (`Connection: close`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// How to answer.
pub enum Reply {
    /// A status line, headers and a body (`Content-Length` and `Connection: close` are added).
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Say nothing and keep the connection open (for an hour).
    Stall,
}

impl Reply {
    /// An answer without extra headers.
    pub fn status(code: u16) -> Reply {
        Reply::Answer(code, Vec::new(), Vec::new())
    }

    /// A JSON (or any typed) body.
    pub fn body(content_type: &str, body: &[u8]) -> Reply {
        Reply::Answer(
            200,
            vec![("Content-Type".into(), content_type.into())],
            body.to_vec(),
        )
    }

    /// An answer with one header.
    pub fn with_header(code: u16, name: &str, value: &str) -> Reply {
        Reply::Answer(code, vec![(name.into(), value.into())], Vec::new())
    }
}

/// The running stand-in.
pub struct StandIn {
    /// `127.0.0.1:PORT`.
    pub host: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl StandIn {
    /// Starts answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let host = listener.local_addr().expect("addr").to_string();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let log = requests.clone();
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(sock) = conn else { return };
                let log = log.clone();
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(sock.try_clone().expect("clone socket"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let path = parts.next().unwrap_or_default().to_owned();
                    let mut authorization = None;
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            let k = k.trim().to_ascii_lowercase();
                            if k == "authorization" {
                                authorization = Some(v.trim().to_owned());
                            } else if k == "content-length" {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length.min(1 << 20)];
                    let _ = reader.read_exact(&mut body);
                    let req = Request {
                        method,
                        path,
                        authorization,
                    };
                    log.lock().expect("log").push(req.clone());
                    let mut sock = sock;
                    match handler(&req) {
                        Reply::Stall => std::thread::sleep(Duration::from_secs(3600)),
                        Reply::Answer(code, headers, body) => {
                            let mut out = format!(
                                "HTTP/1.1 {code} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                                body.len()
                            );
                            for (k, v) in headers {
                                out.push_str(&format!("{k}: {v}\r\n"));
                            }
                            out.push_str("\r\n");
                            let _ = sock.write_all(out.as_bytes());
                            if req.method != "HEAD" {
                                let _ = sock.write_all(&body);
                            }
                        }
                    }
                });
            }
        });
        StandIn { host, requests }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("log").clone()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.host
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}
