//! EventBridge `PutEvents`: the real [`PromotionRequests`] of the webhook Lambda. A request is a
//! `Promotion Requested` event (source `ecr-promotion`) on the pipeline's own bus, whose detail
//! is the state machine's manual request `{"source": IMAGE}`; the bus's rule starts the
//! execution, and the bus's policy decides who may put it there.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use promotion_core::ImageRef;
use promotion_core::webhook::PromotionRequests;

/// The source and detail type the template's `PromotionRequestedRule` matches.
pub const SOURCE: &str = "ecr-promotion";
/// See [`SOURCE`].
pub const DETAIL_TYPE: &str = "Promotion Requested";

/// Puts `Promotion Requested` events on one bus.
pub struct EventBusRequests {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBusRequests {
    /// Events go to `bus` (a name or ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        EventBusRequests {
            client,
            bus: bus.to_owned(),
        }
    }
}

/// The detail of a request for `image`: the state machine's manual request shape.
pub fn detail(image: &ImageRef) -> String {
    serde_json::json!({"source": image.to_string()}).to_string()
}

#[async_trait]
impl PromotionRequests for EventBusRequests {
    async fn request(&self, image: &ImageRef) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail(image))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "PutEvents on {} failed: {}",
                    self.bus,
                    aws_sdk_eventbridge::error::DisplayErrorContext(e)
                )
            })?;
        // PutEvents answers 200 with per-entry failures.
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .find_map(|e| {
                    e.error_code()
                        .map(|c| format!("{c}: {}", e.error_message().unwrap_or_default()))
                })
                .unwrap_or_default();
            return Err(format!(
                "PutEvents on {} refused the event: {why}",
                self.bus
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::Stub;
    use serde_json::json;

    fn client(url: &str) -> aws_sdk_eventbridge::Client {
        let conf = aws_sdk_eventbridge::Config::builder()
            .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
            .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .endpoint_url(url)
            .build();
        aws_sdk_eventbridge::Client::from_conf(conf)
    }

    /// The entry the rule matches, on the named bus; a per-entry failure is an error.
    #[tokio::test]
    async fn a_request_is_one_promotion_requested_event_on_the_bus() {
        let stub = Stub::start(|_, body| {
            let refused = body["Entries"][0]["Detail"]
                .as_str()
                .unwrap_or_default()
                .contains("refused");
            if refused {
                (200, json!({"FailedEntryCount": 1, "Entries": [{"ErrorCode": "AccessDeniedException", "ErrorMessage": "bus policy"}]}))
            } else {
                (200, json!({"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}))
            }
        })
        .await;
        let sink = EventBusRequests::new(client(&stub.url), "stack-promotion");
        let image: ImageRef = format!("ghcr.io/acme/app:1.0@sha256:{}", "a".repeat(64))
            .parse()
            .unwrap();
        sink.request(&image).await.unwrap();
        let sent = stub.requests("/");
        assert_eq!(sent.len(), 1);
        let entry = &sent[0]["Entries"][0];
        assert_eq!(
            (
                entry["EventBusName"].as_str(),
                entry["Source"].as_str(),
                entry["DetailType"].as_str()
            ),
            (Some("stack-promotion"), Some(SOURCE), Some(DETAIL_TYPE))
        );
        let detail: serde_json::Value =
            serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail, json!({"source": image.to_string()}));
        let refused: ImageRef = format!("ghcr.io/acme/refused:1@sha256:{}", "b".repeat(64))
            .parse()
            .unwrap();
        let e = sink.request(&refused).await.unwrap_err();
        assert!(e.contains("AccessDeniedException"), "{e}");
    }
}
