//! Regression tests for what the fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`) found: each
//! test feeds the minimised input of one finding, inline, to the API its target calls and
//! asserts a clean result instead of the panic. How to add one: the header of scripts/fuzz.sh.

use promotion_core::ImageRef;

/// Target `reference`, minimised input `W/a` (found as `Wod/teuam/app`, `2T/2`): a first
/// component with an uppercase letter and no `.`, `:` or `localhost` is not a registry host, so
/// it is part of the repository, which must be lowercase. It parsed as `docker.io/W/a:latest`,
/// an uppercase repository, and that printed form was then refused by the same parser (the
/// target asserts that a parsed reference's `to_string()` parses back to an equal value).
#[test]
fn an_uppercase_first_component_is_refused_like_any_uppercase_repository() {
    for input in [
        &b"W/a"[..],
        b"2T/2",
        b"Wod/teuam/app",
        b"docker.io/W/a",
        b"Team/app:1.0",
    ] {
        let input = std::str::from_utf8(input).expect("UTF-8");
        match input.parse::<ImageRef>() {
            Err(e) => assert!(e.to_string().contains("lowercase"), "{input:?}: {e}"),
            Ok(r) => panic!("{input:?} parsed as {r} (repository {:?})", r.repository()),
        }
    }
}

/// The property the target checks, on the seeds' shapes: what parses prints as a reference that
/// parses back to the same value.
#[test]
fn parsed_references_print_as_references_that_parse_back() {
    for input in [
        "busybox",
        "docker.io/library/busybox:1.36",
        "localhost:5000/team/app:1.0",
        "Registry.Example:5000/team/app:V1",
        "reg.example/incoming/app:1.4.2@sha256:a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa",
    ] {
        let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        let again: ImageRef = r
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{input} printed as {r}: {e}"));
        assert_eq!(r, again, "{input}");
    }
}
