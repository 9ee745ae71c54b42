//! One delivery in, one answer out.
//!
//! The function URL has no authorizer (GitHub cannot sign AWS requests): the delivery's
//! `X-Hub-Signature-256`, an HMAC of the body under the webhook's secret, is the authentication,
//! and it is checked before the body is read (`promotion_core::webhook::signature_valid`,
//! constant-time). Anything unsigned or signed otherwise, a replayed body with another
//! signature included, gets 401 and no detail. A genuine delivery that asks for a promotion
//! (a published, tagged GHCR container version) becomes one `Promotion Requested` event (202);
//! a genuine one that asks for nothing (a ping, another action or package type, an untagged
//! version) gets 204. A genuine delivery that cannot be named is 400 with the reason; a secret
//! or bus that cannot be reached is 500, so the delivery shows as failed in GitHub and can be
//! redelivered. Nothing logged carries the secret, the signature or the body.

use aws_lambda_events::event::lambda_function_urls::{
    LambdaFunctionUrlRequest, LambdaFunctionUrlResponse,
};
use base64::Engine as _;
use promotion_core::registry::secrets::SecretStore;
use promotion_core::webhook::{PromotionRequests, published_image, signature_valid};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The webhook: its secret (read once, again after a bad signature at most every
/// `refresh_after`, for rotation) and where requests go.
pub struct Webhook {
    store: Arc<dyn SecretStore>,
    secret_id: String,
    secret: Mutex<Option<(Vec<u8>, Instant)>>,
    refresh_after: Duration,
    requests: Box<dyn PromotionRequests>,
    registry: String,
}

/// Why the secret could not be had (a 500, logged).
struct NoSecret(String);

impl Webhook {
    /// A webhook whose secret is `secret_id` in `store`, for packages in `registry`.
    pub fn new(
        store: Arc<dyn SecretStore>,
        secret_id: String,
        requests: Box<dyn PromotionRequests>,
        registry: String,
        refresh_after: Duration,
    ) -> Self {
        Webhook {
            store,
            secret_id,
            secret: Mutex::new(None),
            refresh_after,
            requests,
            registry,
        }
    }

    /// The secret, read now if never read or if `stale` and not read for `refresh_after`.
    async fn secret(&self, stale: bool) -> Result<Option<Vec<u8>>, NoSecret> {
        let mut cached = self.secret.lock().await;
        if let Some((s, at)) = cached.as_ref()
            && !(stale && at.elapsed() >= self.refresh_after)
        {
            return Ok((!stale).then(|| s.clone()));
        }
        let text = self
            .store
            .secret_text(&self.secret_id)
            .await
            .map_err(|e| NoSecret(e.to_string()))?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| NoSecret(format!("secret {} is absent or empty", self.secret_id)))?;
        let s = text.into_bytes();
        *cached = Some((s.clone(), Instant::now()));
        Ok(Some(s))
    }

    /// Whether `body` carries a valid signature: against the cached secret, then (at most every
    /// `refresh_after`) against the secret read again.
    async fn genuine(&self, body: &[u8], signature: Option<&str>) -> Result<bool, NoSecret> {
        if let Some(s) = self.secret(false).await?
            && signature_valid(&s, body, signature)
        {
            return Ok(true);
        }
        Ok(match self.secret(true).await? {
            Some(s) => signature_valid(&s, body, signature),
            None => false,
        })
    }

    /// Answer one delivery.
    pub async fn handle(&self, req: &LambdaFunctionUrlRequest) -> LambdaFunctionUrlResponse {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let delivery = header("x-github-delivery").unwrap_or("-").to_owned();
        let event = header("x-github-event").unwrap_or_default().to_owned();
        let raw = req.body.as_deref().unwrap_or_default();
        let body = if req.is_base64_encoded {
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(b) => b,
                Err(_) => return answer(401, None),
            }
        } else {
            raw.as_bytes().to_vec()
        };
        match self.genuine(&body, header("x-hub-signature-256")).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %delivery, event = %event, outcome = "refused",
                    "a delivery without a valid signature");
                return answer(401, None);
            }
            Err(NoSecret(why)) => {
                tracing::error!(delivery = %delivery, outcome = "failed", error = %why,
                    "cannot read the webhook secret");
                return answer(500, Some("cannot verify deliveries now".into()));
            }
        }
        let image = match published_image(&event, &body, &self.registry) {
            Ok(Some(image)) => image,
            Ok(None) => {
                tracing::info!(delivery = %delivery, event = %event, outcome = "ignored",
                    "asks for no promotion");
                return answer(204, None);
            }
            Err(e) => {
                tracing::warn!(delivery = %delivery, event = %event, outcome = "refused",
                    error = %e, "a genuine delivery that names no image");
                return answer(400, Some(e.to_string()));
            }
        };
        match self.requests.request(&image).await {
            Ok(()) => {
                tracing::info!(delivery = %delivery, event = %event, outcome = "requested",
                    image = %image, "promotion requested");
                answer(
                    202,
                    Some(serde_json::json!({"requested": image.to_string()}).to_string()),
                )
            }
            Err(why) => {
                tracing::error!(delivery = %delivery, outcome = "failed", error = %why,
                    image = %image, "cannot request the promotion");
                answer(500, Some("cannot request the promotion now".into()))
            }
        }
    }
}

fn answer(status: i64, body: Option<String>) -> LambdaFunctionUrlResponse {
    let mut r = LambdaFunctionUrlResponse::default();
    r.status_code = status;
    r.body = body;
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hmac::{Hmac, Mac};
    use promotion_core::ImageRef;
    use promotion_core::registry::auth::async_trait;
    use promotion_core::registry::secrets::SecretError;
    use std::sync::Mutex as StdMutex;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[derive(Default)]
    struct Store(StdMutex<(String, usize)>);

    #[async_trait]
    impl SecretStore for Store {
        async fn secret_text(&self, _: &str) -> Result<Option<String>, SecretError> {
            let mut s = self.0.lock().unwrap();
            s.1 += 1;
            Ok(Some(s.0.clone()))
        }
    }

    #[derive(Default, Clone)]
    struct Requests(Arc<StdMutex<Vec<String>>>);

    #[async_trait]
    impl PromotionRequests for Requests {
        async fn request(&self, image: &ImageRef) -> Result<(), String> {
            self.0.lock().unwrap().push(image.to_string());
            Ok(())
        }
    }

    fn hook(secret: &str, refresh_after: Duration) -> (Webhook, Arc<Store>, Requests) {
        let store = Arc::new(Store(StdMutex::new((secret.to_owned(), 0))));
        let requests = Requests::default();
        let hook = Webhook::new(
            store.clone(),
            "webhook".into(),
            Box::new(requests.clone()),
            "ghcr.io".into(),
            refresh_after,
        );
        (hook, store, requests)
    }

    fn sign(secret: &str, body: &str) -> String {
        let mut mac = Hmac::<sha2_10::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn delivery(event: &str, body: &str, signature: Option<&str>) -> LambdaFunctionUrlRequest {
        let mut req = LambdaFunctionUrlRequest::default();
        req.headers.insert("x-github-event", event.parse().unwrap());
        req.headers
            .insert("x-github-delivery", "d-1".parse().unwrap());
        if let Some(s) = signature {
            req.headers
                .insert("x-hub-signature-256", s.parse().unwrap());
        }
        req.body = Some(body.to_owned());
        req
    }

    fn published(tag: &str) -> String {
        serde_json::json!({"action": "published", "registry_package": {
            "name": "app", "namespace": "acme", "package_type": "CONTAINER",
            "package_version": {"version": DIGEST, "container_metadata": {"tag": {"name": tag}}}}})
        .to_string()
    }

    #[tokio::test]
    async fn a_signed_publication_requests_exactly_one_promotion_and_nothing_else_does() {
        let (hook, _, requests) = hook("s3cret", Duration::from_secs(300));
        let body = published("1.4.2");
        let ok = hook
            .handle(&delivery(
                "registry_package",
                &body,
                Some(&sign("s3cret", &body)),
            ))
            .await;
        assert_eq!(ok.status_code, 202);
        assert_eq!(
            *requests.0.lock().unwrap(),
            [format!("ghcr.io/acme/app:1.4.2@{DIGEST}")]
        );

        // The same body with another signature (a replay under a guessed secret), none, or a
        // signature of another body: 401, no detail, nothing requested.
        let other = published("9.9.9");
        for signature in [
            Some(sign("guess", &body)),
            None,
            Some(sign("s3cret", &other)),
        ] {
            let r = hook
                .handle(&delivery("registry_package", &body, signature.as_deref()))
                .await;
            assert_eq!((r.status_code, r.body.is_none()), (401, true));
        }
        // Genuine deliveries that ask for nothing: a ping, an untagged version.
        let ping = r#"{"zen": "Design for failure."}"#;
        let r = hook
            .handle(&delivery("ping", ping, Some(&sign("s3cret", ping))))
            .await;
        assert_eq!(r.status_code, 204);
        let untagged = published("");
        let r = hook
            .handle(&delivery(
                "registry_package",
                &untagged,
                Some(&sign("s3cret", &untagged)),
            ))
            .await;
        assert_eq!(r.status_code, 204);
        assert_eq!(requests.0.lock().unwrap().len(), 1, "exactly one request");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_secret_is_read_again_but_not_on_every_bad_signature() {
        let (hook, store, requests) = hook("old", Duration::from_secs(300));
        let body = published("1.0");
        let r = hook
            .handle(&delivery(
                "registry_package",
                &body,
                Some(&sign("old", &body)),
            ))
            .await;
        assert_eq!(r.status_code, 202);
        // Rotated: within the refresh interval the new secret is not read yet.
        store.0.lock().unwrap().0 = "new".into();
        let signed_new = delivery("registry_package", &body, Some(&sign("new", &body)));
        assert_eq!(hook.handle(&signed_new).await.status_code, 401);
        for _ in 0..5 {
            hook.handle(&delivery("registry_package", &body, Some("sha256=00")))
                .await;
        }
        assert_eq!(
            store.0.lock().unwrap().1,
            1,
            "bad signatures read no secret"
        );
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(hook.handle(&signed_new).await.status_code, 202);
        assert_eq!(store.0.lock().unwrap().1, 2);
        assert_eq!(requests.0.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_base64_body_is_verified_as_decoded() {
        let (hook, _, requests) = hook("s3cret", Duration::from_secs(300));
        let body = published("2.0");
        let mut req = delivery("registry_package", "", Some(&sign("s3cret", &body)));
        req.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
        req.is_base64_encoded = true;
        assert_eq!(hook.handle(&req).await.status_code, 202);
        assert_eq!(requests.0.lock().unwrap().len(), 1);
    }
}
