//! The typed stream commands (`redis-client/src/commands/streams.rs`)
//! against the real server, in RESP2 and RESP3.

use std::time::Duration;

use greenhub_redis::commands::{ReadOptions, StreamEntry};
use greenhub_redis::prelude::*;
use greenhub_redis::Client;
use greenhub_tests::with_client;

fn field(entry: &StreamEntry, name: &str) -> Option<String> {
    entry
        .fields
        .iter()
        .find(|(f, _)| f == name.as_bytes())
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
}

fn both_protocols(body: fn(Client)) {
    with_client("", body);
    with_client("?protocol=3", body);
}

#[test]
fn xadd_xlen_and_xrange_round_trip_entries() {
    both_protocols(|mut r| {
        let first = r
            .xadd("s", "*", &[("sensor", "a"), ("value", "1")])
            .unwrap();
        let second = r
            .xadd("s", "*", &[("sensor", "b"), ("value", "\r\n\0")])
            .unwrap();
        assert!(second > first || second.len() > first.len());
        assert_eq!(r.xlen("s").unwrap(), 2);
        let all = r.xrange("s", "-", "+", None).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].id.as_str(), field(&all[0], "sensor")),
            (first.as_str(), Some("a".into()))
        );
        assert_eq!(field(&all[1], "value").as_deref(), Some("\r\n\0"));
        assert_eq!(r.xrange("s", "-", "+", Some(1)).unwrap().len(), 1);
        r.xadd_maxlen("capped", 10, "*", &[("n", 1)]).unwrap();
        assert_eq!(r.xlen("capped").unwrap(), 1);
    });
}

#[test]
fn xread_returns_new_entries_or_none_after_its_block() {
    both_protocols(|mut r| {
        let none = r
            .xread(
                &["quiet"],
                &["$"],
                ReadOptions {
                    block: Some(Duration::from_millis(50)),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(none, None);
        let id = r.xadd("news", "*", &[("headline", "hello")]).unwrap();
        let read = r
            .xread(&["news", "quiet"], &["0", "0"], ReadOptions::default())
            .unwrap()
            .expect("an entry is there");
        assert_eq!(read.len(), 1, "only streams with entries are listed");
        assert_eq!(read[0].key, b"news");
        assert_eq!(read[0].entries[0].id, id);
        // A blocked XREAD is woken by an XADD from another coroutine.
        let mut writer = r.clone();
        let adder = greenhub::spawn(move || {
            loop {
                let info: String = writer.cmd("INFO").arg("clients").query().unwrap();
                if info.lines().any(|l| l.trim() == "blocked_clients:1") {
                    break;
                }
                greenhub::sleep(Duration::from_millis(2));
            }
            writer.xadd("news", "*", &[("headline", "later")]).unwrap()
        });
        let later = r
            .xread(
                &["news"],
                &["$"],
                ReadOptions {
                    block: Some(Duration::ZERO),
                    count: Some(10),
                    ..Default::default()
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!(later[0].entries[0].id, adder.join().unwrap());
    });
}

#[test]
fn consumer_groups_read_acknowledge_and_claim() {
    both_protocols(|mut r| {
        r.xgroup_create("jobs", "workers", "$", true).unwrap();
        let ids: Vec<String> = (0..3)
            .map(|i| r.xadd("jobs", "*", &[("job", i)]).unwrap())
            .collect();
        let got = r
            .xreadgroup(
                "workers",
                "alice",
                &["jobs"],
                &[">"],
                ReadOptions::default(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(got[0].entries.len(), 3);
        assert_eq!(r.xack("jobs", "workers", &[&ids[0]]).unwrap(), 1);
        let summary = r.xpending("jobs", "workers").unwrap();
        assert_eq!(summary.count, 2);
        assert_eq!(summary.first_id.as_deref(), Some(ids[1].as_str()));
        assert_eq!(summary.consumers, [("alice".to_owned(), 2)]);
        let pending = r
            .xpending_range("jobs", "workers", "-", "+", 10, Some("alice"))
            .unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(
            (pending[0].id.as_str(), pending[0].deliveries),
            (ids[1].as_str(), 1)
        );
        let claimed = r
            .xclaim("jobs", "workers", "bob", Duration::ZERO, &[&ids[1]])
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(field(&claimed[0], "job").as_deref(), Some("1"));
        let auto = r
            .xautoclaim("jobs", "workers", "carol", Duration::ZERO, "0-0", Some(10))
            .unwrap();
        assert_eq!(auto.next, "0-0");
        assert_eq!(auto.entries.len(), 2);
        assert!(auto.deleted.is_empty());
        let by_consumer = r.xpending("jobs", "workers").unwrap().consumers;
        assert_eq!(by_consumer, [("carol".to_owned(), 2)]);
        // A group named "block" is not the BLOCK option.
        r.xgroup_create("jobs", "block", "$", false).unwrap();
        let nothing = r
            .xreadgroup(
                "block",
                "block",
                &["jobs"],
                &[">"],
                ReadOptions {
                    block: Some(Duration::from_millis(20)),
                    noack: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(nothing, None);
    });
}

#[test]
fn a_stream_read_with_ids_that_do_not_match_the_keys_is_refused_before_sending() {
    with_client("", |mut r| {
        let err = r
            .xread(&["a", "b"], &["0"], ReadOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("one id per key"), "{err}");
        assert_eq!(r.stats().created, 0, "nothing was sent");
    });
}
