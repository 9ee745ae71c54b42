//! A `moto_server` (PyPI `moto[server]`) for the KMS signing tests: one per test on 127.0.0.1,
//! random port, killed on drop (reference/test-infra.md §3).
//!
//! Expects the virtualenv `.work/venv` (`python3 -m venv .work/venv && .work/venv/bin/pip install
//! "moto[server]"`). Keys are created with plain KMS JSON calls, not with the code under test.

use super::registry::free_port;
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// moto answers for this region and any credentials.
pub const REGION: &str = "us-east-1";

/// A running moto_server.
pub struct Moto {
    child: Child,
    port: u16,
    http: reqwest::blocking::Client,
}

fn moto_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let p = root.join(".work/venv/bin/moto_server");
    assert!(
        p.is_file(),
        "{} is missing: the KMS tests need moto_server. Create it with `python3 -m venv .work/venv \
         && .work/venv/bin/pip install \"moto[server]\"`.",
        p.display()
    );
    p
}

impl Moto {
    /// Starts moto_server and waits until it answers.
    pub fn start() -> Self {
        let bin = moto_bin();
        let port = free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTP client");
        let mut moto = Moto { child, port, http };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited early with {status}");
            }
            if moto
                .http
                .get(format!("{}/moto-api/", moto.endpoint()))
                .send()
                .is_ok()
            {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One KMS JSON call.
    pub fn kms(&self, action: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.endpoint())
            .header("X-Amz-Target", format!("TrentService.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/kms/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .expect("KMS call");
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        assert!(status.is_success(), "KMS {action}: {status}: {text}");
        serde_json::from_str(&text).expect("KMS JSON")
    }

    /// Creates a SIGN_VERIFY key of `spec` (`ECC_NIST_P256`, `RSA_2048`) and returns its id.
    pub fn create_signing_key(&self, spec: &str) -> String {
        let v = self.kms(
            "CreateKey",
            json!({"KeySpec": spec, "KeyUsage": "SIGN_VERIFY", "Description": "it"}),
        );
        v["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("KeyId")
            .to_owned()
    }

    /// Creates an ENCRYPT_DECRYPT key (one that cannot sign).
    pub fn create_encryption_key(&self) -> String {
        let v = self.kms("CreateKey", json!({"KeyUsage": "ENCRYPT_DECRYPT"}));
        v["KeyMetadata"]["KeyId"]
            .as_str()
            .expect("KeyId")
            .to_owned()
    }

    /// The key's public key as PEM (`GetPublicKey` → DER SPKI → PEM).
    pub fn public_key_pem(&self, key_id: &str) -> String {
        let v = self.kms("GetPublicKey", json!({"KeyId": key_id}));
        let b64 = v["PublicKey"].as_str().expect("PublicKey");
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64 DER");
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
