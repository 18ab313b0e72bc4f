//! Fuzzes the RESP parser: arbitrary bytes never panic, and a value that
//! parses whole parses the same when fed in two pieces.
#![no_main]

use greenhub_redis::resp::{parse, Limits, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_bulk: 1 << 20, max_depth: 32 };
    if let Ok(Parsed::Complete(value, used)) = parse(data, &limits) {
        let whole = &data[..used];
        for split in [used / 3, used / 2, used.saturating_sub(1)] {
            match parse(&whole[..split], &limits) {
                Ok(Parsed::Incomplete(need)) => assert!(need > split && need <= used),
                Ok(Parsed::Complete(again, n)) => assert!(n == used && again == value || split == used),
                Err(err) => panic!("a prefix of a valid reply was refused: {err}"),
            }
        }
    }
});
