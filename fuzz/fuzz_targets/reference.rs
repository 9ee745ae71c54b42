//! Image references from requests and the command line (`ImageRef`'s `FromStr`) and repository
//! settings (`pipeline::parse_repository`). A reference that parses must print as a reference
//! that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::ImageRef;
use promotion_core::pipeline::parse_repository;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<ImageRef>() {
        let printed = r.to_string();
        let again = printed.parse::<ImageRef>().unwrap_or_else(|e| {
            panic!("{s:?} parsed, but its printed form {printed:?} did not: {e}")
        });
        assert_eq!(r, again, "{s:?} printed as {printed:?}");
        // The accessors the steps use on a parsed reference.
        let _ = (
            r.reference(),
            r.repo_path(),
            r.api_host(),
            r.at(&r.reference()),
        );
    }
    if let Ok(r) = parse_repository("fuzz", s) {
        let _ = (r.to_string(), r.repo_path(), r.reference());
        assert!(
            r.digest().is_none(),
            "{s:?}: a repository setting has no digest"
        );
    }
});
