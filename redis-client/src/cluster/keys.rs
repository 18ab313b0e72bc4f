//! Which arguments of a command are keys, and whether the command only
//! reads. The router (`routing.rs`) asks this for every command before it
//! picks a slot: a key is what decides the node, so a value or an option
//! taken for a key would send the command to the wrong place.
//!
//! Most commands keep their keys at fixed positions, described by Redis's
//! own `(first, last, step)` triple in `command_table.rs`. The ones whose
//! keys move with their arguments (EVAL's numkeys, XREAD's STREAMS, SORT's
//! STORE, ...) are parsed here as Redis parses them. A command the table
//! does not know (a module's, a newer server's) is [`Found::Unknown`]: the
//! client then asks a node once with `COMMAND INFO` and, for movable keys,
//! `COMMAND GETKEYS` (`routing.rs`). See `docs/cluster.md`, "Routing".

use super::command_table::COMMANDS;

/// Where a command's keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spec {
    /// No keys: PING, INFO, PUBLISH, ...
    NoKeys,
    /// Keys at `first`, `first + step`, ... up to `last` (negative: from
    /// the end, -1 being the last argument).
    Keys(u8, i8, u8),
    /// Positions that depend on the arguments: parsed by [`movable_keys`].
    Movable,
    /// A container whose subcommand takes the key next (OBJECT ENCODING key).
    Sub,
}

/// What [`find_keys`] learned about a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// The command is in the table.
    Known {
        /// The keys, in argument order (repeats kept).
        keys: Vec<&'a [u8]>,
        /// It only reads, so it may be sent again after an unknown outcome.
        readonly: bool,
    },
    /// Not in the table: ask the server.
    Unknown,
}

/// The keys of `args` (the command name first) and whether it only reads.
pub(crate) fn find_keys<'a>(args: &[&'a [u8]]) -> Found<'a> {
    let Some(name) = args.first() else {
        return Found::Known {
            keys: Vec::new(),
            readonly: true,
        };
    };
    let Some((spec, readonly)) = lookup(name) else {
        return Found::Unknown;
    };
    let keys = match spec {
        Spec::NoKeys => Vec::new(),
        Spec::Keys(first, last, step) => keys_by_position(args, first, last, step),
        Spec::Movable => movable_keys(&name.to_ascii_uppercase(), args),
        Spec::Sub => sub_keys(&name.to_ascii_uppercase(), args),
    };
    Found::Known { keys, readonly }
}

/// The table's row for `name` (any case).
pub(crate) fn lookup(name: &[u8]) -> Option<(Spec, bool)> {
    let upper = name.to_ascii_uppercase();
    COMMANDS
        .binary_search_by(|(row, _, _)| row.as_bytes().cmp(&upper))
        .ok()
        .map(|i| (COMMANDS[i].1, COMMANDS[i].2))
}

/// Keys at `first`, `first + step`, ..., `last`, as `COMMAND INFO` gives
/// them; positions past the end are ignored (the server will complain
/// about the arity, not us).
pub(crate) fn keys_by_position<'a>(
    args: &[&'a [u8]],
    first: u8,
    last: i8,
    step: u8,
) -> Vec<&'a [u8]> {
    let argc = args.len() as isize;
    let last = if last < 0 {
        argc + isize::from(last)
    } else {
        isize::from(last)
    };
    let (first, step) = (isize::from(first), isize::from(step.max(1)));
    if first == 0 || last < first {
        return Vec::new();
    }
    (first..=last.min(argc - 1))
        .step_by(step as usize)
        .map(|i| args[i as usize])
        .collect()
}

/// Keys of the commands whose key positions depend on their arguments.
fn movable_keys<'a>(name: &[u8], args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let numkeys_at = |at: usize| -> Vec<&'a [u8]> {
        let n = args.get(at).and_then(|n| parse_count(n)).unwrap_or(0);
        args.iter().skip(at + 1).take(n).copied().collect()
    };
    match name {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => numkeys_at(2),
        b"ZUNION" | b"ZINTER" | b"ZDIFF" | b"ZINTERCARD" | b"SINTERCARD" | b"LMPOP" | b"ZMPOP" => {
            numkeys_at(1)
        }
        b"BLMPOP" | b"BZMPOP" => numkeys_at(2),
        b"ZUNIONSTORE" | b"ZINTERSTORE" | b"ZDIFFSTORE" => {
            let mut keys: Vec<&[u8]> = args.get(1).copied().into_iter().collect();
            keys.extend(numkeys_at(2));
            keys
        }
        b"XREAD" | b"XREADGROUP" => stream_keys(name == b"XREADGROUP", args),
        b"SORT" | b"SORT_RO" => {
            let mut keys: Vec<&[u8]> = args.get(1).copied().into_iter().collect();
            keys.extend(option_keys(
                args,
                2,
                &[(b"BY", 1), (b"GET", 1), (b"LIMIT", 2)],
                b"STORE",
            ));
            keys
        }
        b"GEORADIUS" | b"GEORADIUSBYMEMBER" => {
            let mut keys: Vec<&[u8]> = args.get(1).copied().into_iter().collect();
            keys.extend(option_keys(args, 2, &[(b"COUNT", 1)], b"STORE"));
            keys.extend(option_keys(args, 2, &[(b"COUNT", 1)], b"STOREDIST"));
            keys
        }
        b"MIGRATE" => match args.get(3) {
            Some(key) if !key.is_empty() => vec![*key],
            _ => match args.iter().position(|a| a.eq_ignore_ascii_case(b"KEYS")) {
                Some(at) => args[at + 1..].to_vec(),
                None => Vec::new(),
            },
        },
        _ => Vec::new(),
    }
}

/// XREAD's and XREADGROUP's keys: after the options, `STREAMS k1 k2 id1
/// id2`, the first half of what follows STREAMS. Options are skipped with
/// their values, so a stream named `BLOCK` is still a key.
fn stream_keys<'a>(group: bool, args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let mut i = 1;
    while i < args.len() {
        let option = args[i].to_ascii_uppercase();
        match option.as_slice() {
            b"STREAMS" => {
                let rest = &args[i + 1..];
                return rest[..rest.len() / 2].to_vec();
            }
            b"BLOCK" | b"COUNT" => i += 2,
            b"GROUP" if group => i += 3,
            b"NOACK" => i += 1,
            _ => return Vec::new(),
        }
    }
    Vec::new()
}

/// The argument after `store` among options starting at `from`, skipping
/// the values of the `skip` options (SORT's `BY pattern`, `LIMIT off n`).
fn option_keys<'a>(
    args: &[&'a [u8]],
    from: usize,
    skip: &[(&[u8], usize)],
    store: &[u8],
) -> Option<&'a [u8]> {
    let mut i = from;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(store) {
            return args.get(i + 1).copied();
        }
        let values = skip
            .iter()
            .find(|(option, _)| args[i].eq_ignore_ascii_case(option))
            .map_or(0, |(_, n)| *n);
        i += 1 + values;
    }
    None
}

/// OBJECT, MEMORY USAGE, XINFO and XGROUP take their key right after the
/// subcommand; HELP (and MEMORY's other subcommands) take none.
fn sub_keys<'a>(name: &[u8], args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    let Some(sub) = args.get(1) else {
        return Vec::new();
    };
    let keyed = if name == b"MEMORY" {
        sub.eq_ignore_ascii_case(b"USAGE")
    } else {
        !sub.eq_ignore_ascii_case(b"HELP")
    };
    match args.get(2) {
        Some(key) if keyed => vec![*key],
        _ => Vec::new(),
    }
}

/// A count argument (numkeys); `None` if it is not a small non-negative number.
fn parse_count(bytes: &[u8]) -> Option<usize> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(args: &[&str]) -> Vec<String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        match find_keys(&args) {
            Found::Known { keys, .. } => keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect(),
            Found::Unknown => vec!["?".into()],
        }
    }

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        for pair in COMMANDS.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn fixed_positions_come_from_the_table() {
        assert_eq!(keys(&["get", "k"]), ["k"]);
        assert_eq!(keys(&["SET", "k", "v", "EX", "10"]), ["k"]);
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys(&["BRPOP", "a", "b", "1"]), ["a", "b"]);
        assert_eq!(
            keys(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"]),
            ["a", "b"]
        );
        assert_eq!(keys(&["PING"]), Vec::<String>::new());
        assert_eq!(keys(&["PUBLISH", "channel", "m"]), Vec::<String>::new());
        assert_eq!(keys(&["SPUBLISH", "channel", "m"]), ["channel"]);
        assert_eq!(keys(&["NOSUCHCOMMAND", "x"]), ["?"]);
    }

    #[test]
    fn movable_keys_are_parsed_as_redis_does() {
        assert_eq!(
            keys(&["EVAL", "return 1", "2", "a", "b", "arg"]),
            ["a", "b"]
        );
        assert_eq!(keys(&["EVALSHA", "abc", "0", "arg"]), Vec::<String>::new());
        assert_eq!(
            keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
            ["d", "a", "b"]
        );
        assert_eq!(keys(&["ZINTER", "2", "a", "b"]), ["a", "b"]);
        assert_eq!(keys(&["BLMPOP", "1", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(
            keys(&["XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "s1", "s2", "0", "0"]),
            ["s1", "s2"]
        );
        assert_eq!(
            keys(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "block", ">"]),
            ["block"]
        );
        assert_eq!(
            keys(&["SORT", "l", "BY", "w_*", "LIMIT", "0", "5", "STORE", "d"]),
            ["l", "d"]
        );
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), ["k"]);
        assert_eq!(keys(&["OBJECT", "HELP"]), Vec::<String>::new());
        assert_eq!(keys(&["MEMORY", "USAGE", "k"]), ["k"]);
        assert_eq!(keys(&["MEMORY", "STATS"]), Vec::<String>::new());
        assert_eq!(keys(&["XGROUP", "CREATE", "s", "g", "$"]), ["s"]);
        assert_eq!(
            keys(&["EVAL", "x", "9", "a"]),
            ["a"],
            "numkeys past the end"
        );
        assert_eq!(keys(&["EVAL", "x", "many", "a"]), Vec::<String>::new());
    }

    #[test]
    fn reads_are_told_from_writes() {
        assert_eq!(lookup(b"GET"), Some((Spec::Keys(1, 1, 1), true)));
        assert_eq!(lookup(b"incr"), Some((Spec::Keys(1, 1, 1), false)));
        assert_eq!(lookup(b"PING").map(|r| r.1), Some(true));
        assert_eq!(lookup(b"EVAL_RO").map(|r| r.1), Some(true));
        assert_eq!(lookup(b"EVAL").map(|r| r.1), Some(false));
    }
}
