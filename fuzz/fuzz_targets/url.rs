//! Fuzzes the URL parser: arbitrary text never panics, and an accepted URL's
//! password never shows in its `Debug` form.
#![no_main]

use greenhub_redis::ConnectionInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(info) = ConnectionInfo::from_url(text) {
        if let Some(password) = info.password.as_deref().filter(|p| p.len() >= 4) {
            // The password may also occur inside other fields (the user name):
            // only what `Debug` adds because of the password counts.
            let without = ConnectionInfo { password: None, ..info.clone() };
            if !format!("{without:?}").contains(password) {
                assert!(!format!("{info:?}").contains(password));
            }
        }
    }
});
