//! Findings files (`aws inspector2 list-findings` output, `promote gate --findings-file`):
//! `gate::FileSource::from_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promotion_core::gate::FileSource;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(source) = FileSource::from_json(text) {
        for f in source.all() {
            let _ = f.vulnerability_id();
            let _ = f.package_names().count();
            let _ = f.ecr_images().count();
            let _ = f.is_for_digest(
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            );
        }
    }
});
