//! One real Debian `docker-registry` (distribution 2.8) per test, on 127.0.0.1 with a random port
//! and a fresh temporary directory (../shared/reference/test-infra.md §1).

use super::{digest_hex, require_program, run_checked};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a registry may take to answer `GET /v2/` (it is usually ready in ~90 ms).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often to start again on a new port when the chosen one was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// A running `docker-registry serve`; killed, reaped and deleted on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: TempDir,
    credentials: Option<(String, String)>,
}

impl TestRegistry {
    /// Starts an anonymous registry.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Starts a registry that requires HTTP basic auth (htpasswd, bcrypt), the stand-in for ECR's
    /// `AWS:<token>`. bcrypt reads only the first 72 bytes, so keep `password` at most that long.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Self {
        assert!(
            password.len() <= 72,
            "bcrypt checks only the first 72 bytes of a password; use a shorter test password"
        );
        Self::start_inner(Some((user.to_owned(), password.to_owned())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> Self {
        require_program("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("it-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let root = dir.path();
        fs::create_dir_all(root.join("data")).expect("create registry data dir");

        let auth = match &credentials {
            None => String::new(),
            Some((user, password)) => {
                require_program("htpasswd", "apache2-utils");
                let htpasswd = root.join("htpasswd");
                // -B bcrypt, -b password from argv (test-only secret), -c create the file.
                run_checked(
                    Command::new("htpasswd")
                        .arg("-Bbc")
                        .arg(&htpasswd)
                        .arg(user)
                        .arg(password),
                );
                format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };

        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let config = root.join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: info\n  accesslog:\n    disabled: false\n\
                     storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
                     cache:\n    blobdescriptor: inmemory\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: integration-test-secret\n\
                     {auth}",
                    data = root.join("data").display(),
                ),
            )
            .expect("write registry config");
            let log = fs::File::create(root.join("registry.log")).expect("create registry log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
            match wait_ready(&mut child, port, &root.join("registry.log")) {
                Ok(()) => {
                    return TestRegistry {
                        child,
                        port,
                        dir,
                        credentials,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(root.join("registry.log")).unwrap_or_default();
                    last_failure = format!("{why}\n--- registry log ---\n{log}");
                }
            }
        }
        panic!("docker-registry did not start after {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `user:password` when this registry requires basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the registry keeps the bytes of `digest` on disk.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest_hex(digest);
        self.data_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Overwrites the stored bytes of `digest` with different bytes of the same length, so the
    /// registry still serves the advertised size but the content no longer hashes to the digest.
    pub fn corrupt_blob(&self, digest: &str) {
        let path = self.blob_path(digest);
        let mut bytes =
            fs::read(&path).unwrap_or_else(|e| panic!("read blob {}: {e}", path.display()));
        assert!(!bytes.is_empty(), "cannot corrupt an empty blob");
        for b in &mut bytes {
            *b ^= 0xA5;
        }
        fs::write(&path, &bytes).unwrap_or_else(|e| panic!("write blob {}: {e}", path.display()));
    }

    /// The registry's own log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() && std::env::var_os("IT_KEEP_LOGS").is_some() {
            eprintln!(
                "--- docker-registry {} log ---\n{}",
                self.host(),
                self.log()
            );
        }
    }
}

/// A port nothing listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Polls `GET /v2/` until the registry answers 200 or 401 and its own log says it listens (so an
/// answer from another process that grabbed the same port in the meantime does not count).
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("build HTTP client");
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("docker-registry exited early with {status}"));
        }
        let listening = fs::read_to_string(log)
            .map(|l| l.contains(&format!("listening on 127.0.0.1:{port}")))
            .unwrap_or(false);
        if !listening {
            // not bound yet
        } else if let Ok(resp) = client.get(&url).send() {
            let code = resp.status().as_u16();
            if code == 200 || code == 401 {
                return Ok(());
            }
            return Err(format!("GET {url} answered {code}"));
        }
        if Instant::now() > deadline {
            return Err(format!("GET {url} did not answer within {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
