//! The state machine's JSON requests to the five steps (`pipeline::parse_request`) for every
//! request type `promotion_core::pipeline` exports, and a copy request's source reference.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::pipeline::{
    CopyRequest, GateRequest, PromoteRequest, RetagRequest, SignRequest, parse_request,
};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(copy) = parse_request::<CopyRequest>("fuzz", value.clone()) {
        let _ = copy.source(Some("ingress.test"));
        let _ = copy.source(None);
    }
    let _ = parse_request::<GateRequest>("fuzz", value.clone());
    let _ = parse_request::<PromoteRequest>("fuzz", value.clone());
    let _ = parse_request::<SignRequest>("fuzz", value.clone());
    let _ = parse_request::<RetagRequest>("fuzz", value);
});
