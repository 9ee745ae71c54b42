//! Environments documents (`--environments-file`, the Lambdas' `ENVIRONMENTS`):
//! `environment::Environments::parse`, and the lookups the steps make on a parsed one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::environment::Environments;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(envs) = Environments::parse(text) else {
        return;
    };
    let _ = envs.first();
    let _ = envs.get("prod");
    let _ = envs.owner_of("prod-1.0.0");
    for env in envs.all() {
        assert!(envs.get(&env.name).is_ok(), "{} is listed", env.name);
        for template in std::iter::once(&env.template).chain(&env.extra) {
            // A tag the template renders is one it (or an earlier environment) owns.
            if let Ok(tag) = template.render("1.0.0") {
                assert_eq!(template.build_of(&tag), Some("1.0.0"), "{tag}");
                assert!(envs.owner_of(&tag).is_some(), "{tag}");
            }
        }
    }
});
