//! Gate policies (`--policy`, the Lambdas' `POLICY`): JSON or YAML text through
//! `gate::Policy::parse`, and the effective rules of a parsed policy, base and for `prod`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::gate::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::parse(text) {
        let _ = policy.rules(None);
        let _ = policy.rules(Some("prod"));
        for env in policy.environments().map(str::to_owned).collect::<Vec<_>>() {
            let _ = policy.rules(Some(&env));
        }
        let _ = (policy.limits(), policy.digest());
    }
});
