//! The article's log format, `HH:MM:SS,mmm.m (name) message`, on stdout.
//!
//! The name is the coroutine's (`main`, `cron`) in coroutines mode and the OS
//! thread's in threads mode: `greenhub::current_name` gives either. Times are
//! UTC wall-clock time, as a log line shows them; every duration the demo
//! measures uses `Instant`.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Installs env_logger with the article's format; `RUST_LOG` overrides the
/// default level (info).
pub(crate) fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stdout)
        .format(|buf, record| {
            let since_epoch = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let secs = since_epoch.as_secs();
            let millis = f64::from(since_epoch.subsec_micros()) / 1000.0;
            writeln!(
                buf,
                "{:02}:{:02}:{:02},{:05.1} ({}) {}",
                secs / 3600 % 24,
                secs / 60 % 60,
                secs % 60,
                millis,
                greenhub::current_name(),
                record.args()
            )
        })
        .init();
}
