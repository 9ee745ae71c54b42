//! Test support: a loopback stub of an AWS JSON-protocol API (Inspector2, ECR), and moto_server
//! as the KMS stand-in.
//!
//! The stub is hand-written because the tests must see exactly what the SDK sent (filters,
//! pages, the signing region), which moto neither checks nor records.
#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One recorded request.
struct Request {
    head: String,
    path: String,
    body: Value,
}

type Handler = Arc<dyn Fn(&str, &Value) -> (u16, Value) + Send + Sync>;

/// A tiny HTTP/1.1 server: JSON in, JSON out, every request recorded (head, path, body).
pub struct Stub {
    /// `http://127.0.0.1:PORT`, the endpoint URL to give the SDK client.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    /// Start answering every request with `handler(path, body)` on a random loopback port.
    pub async fn start(
        handler: impl Fn(&str, &Value) -> (u16, Value) + Send + Sync + 'static,
    ) -> Stub {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, handler.clone(), recorded.clone()));
            }
        });
        Stub {
            url,
            requests,
            task,
        }
    }

    /// The bodies of the requests to `path` so far.
    pub fn requests(&self, path: &str) -> Vec<Value> {
        let all = self.requests.lock().unwrap();
        all.iter()
            .filter(|r| r.path == path)
            .map(|r| r.body.clone())
            .collect()
    }

    /// The request heads (request line and headers) received so far.
    pub fn heads(&self) -> Vec<String> {
        let all = self.requests.lock().unwrap();
        all.iter().map(|r| r.head.clone()).collect()
    }
}

async fn serve(mut sock: TcpStream, handler: Handler, requests: Arc<Mutex<Vec<Request>>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut tmp = [0u8; 8192];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let l = l.to_ascii_lowercase();
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut tmp = [0u8; 8192];
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end + 4..head_end + 4 + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + 4 + len);
        requests.lock().unwrap().push(Request {
            head: head.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        let (status, reply) = handler(&path, &body);
        let error_type = reply["__type"]
            .as_str()
            .map(|t| format!("x-amzn-errortype: {t}\r\n"))
            .unwrap_or_default();
        let text = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{error_type}content-length: {}\r\n\r\n{text}",
            text.len()
        );
        if sock.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// moto_server on a random loopback port, started as the integration tests start it: the venv's
/// python (`.work/venv`, installed by `scripts/install-moto.sh`) running
/// `scripts/moto_server.py`, moto with KMS `MessageType=DIGEST` corrected. Killed and
/// reaped on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`, the endpoint URL to give the SDK client.
    pub url: String,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto and waits until it listens; panics naming the install script when moto is
    /// not installed, and with moto's output when it does not start.
    pub fn start() -> Moto {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join(".work/venv/bin/python");
        let launcher = root.join("scripts/moto_server.py");
        assert!(
            python.is_file() && root.join(".work/venv/bin/moto_server").is_file(),
            "moto is not installed in {}; the KMS adapter tests need it. Run `scripts/test.sh` \
             (or `scripts/install-moto.sh`), which installs PyPI `moto[server]` there.",
            root.join(".work/venv").display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let log = tempfile::NamedTempFile::new().unwrap();
            let child = Command::new(&python)
                .arg(&launcher)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.reopen().unwrap())
                .stderr(log.reopen().unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
            let mut moto = Moto {
                url: format!("http://127.0.0.1:{port}"),
                child,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    last = format!("exited with {status}");
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                if Instant::now() > deadline {
                    last = "did not listen within 60 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last = format!(
                "{last}\n--- moto log ---\n{}",
                std::fs::read_to_string(moto.log.path()).unwrap_or_default()
            );
        }
        panic!("moto did not start: {last}");
    }
}
