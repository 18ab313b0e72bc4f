//! Session state: what a command can leave on a connection that the next
//! user of a pooled connection must not inherit (a selected database, an open
//! MULTI, a WATCH, subscriptions, client tracking, READONLY, the protocol).
//!
//! `connection.rs` keeps two sessions. The *predicted* one frames replies
//! (is a command queued inside MULTI, is the connection subscribed): it
//! calls [`Session::note`] for every command it sends, alone or in a
//! pipeline, before the write, and [`Session::confirmed`] for each
//! subscription confirmation it reads. The *known* one decides reuse: the
//! pool reuses a connection only while it equals the *baseline*, the state
//! its handshake set up from the URL (`?db=2` is the baseline, not dirt).
//!
//! A change is sticky. [`Session::effect`] splits what a command would do
//! into what moves the session *away* from the baseline (SELECT of another
//! database, HELLO, WATCH, MULTI, CLIENT TRACKING ON, READONLY, a
//! subscription, a command not followed here such as AUTH, RESET or CLIENT
//! SETNAME, which taints the session for good) and what moves it *back*.
//! The away part counts as soon as the command is sent, refused or not,
//! except inside MULTI: there a session-changing command is only queued,
//! and `connection.rs` notes it in the known session only once it is shown
//! to have run: EXEC's reply is an array (nil or EXECABORT: it never ran,
//! DISCARD: dropped), or its own reply is not `+QUEUED` (the MULTI was
//! refused, so it ran at once). The framing session notes every command
//! when it is sent, in send order, and takes a dropped transaction's HELLO
//! back, and a refused MULTI's `multi`. `RESET` sets a fresh connection's
//! state (and taints the session: the name and user are not the
//! baseline's). The
//! back part counts only when the command's own reply is read and is not an
//! error, and never for a command queued inside MULTI (it may not run, or
//! run later inside EXEC): `SELECT <baseline>` or `HELLO 2` replied OK
//! outside MULTI, `UNWATCH` replied OK, `EXEC` or `DISCARD` answered inside
//! a MULTI, `CLIENT TRACKING OFF` replied OK. A refused `SELECT 0 extra`
//! and a refused `DISCARD` without MULTI leave
//! the connection changed, and it is closed rather than reused.
//! See `docs/connection-pool.md`, "Session state".

use std::fmt;

use crate::cmd::Cmd;

/// The protocol-visible state of one connection's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// The selected database.
    pub(crate) db: i64,
    /// RESP version in use: 2, or 3 after `HELLO 3`.
    pub(crate) protocol: u8,
    /// Inside MULTI: commands are queued until EXEC or DISCARD.
    pub(crate) multi: bool,
    /// Holding a WATCH, until EXEC, DISCARD or UNWATCH.
    pub(crate) watching: bool,
    /// CLIENT TRACKING is on (its options are the baseline's, if it is).
    pub(crate) tracking: bool,
    /// READONLY (cluster replicas) is on.
    pub(crate) readonly: bool,
    /// Channels, patterns and shard channels subscribed, as the server's
    /// last confirmation counted them; `subscribed` stays set once any
    /// subscribe command was sent, since messages may follow at any time.
    pub(crate) subscribed: bool,
    subscriptions: Subscriptions,
    /// A command changed something this file does not follow.
    pub(crate) tainted: Option<&'static str>,
}

/// Subscription counts, derived from the confirmations' running totals
/// (SUBSCRIBE and PSUBSCRIBE confirmations count channels plus patterns;
/// SSUBSCRIBE's count shard channels alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Subscriptions {
    channels: usize,
    patterns: usize,
    shards: usize,
}

/// The kinds of subscribe and unsubscribe commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubscribeKind {
    Channels,
    Patterns,
    Shards,
}

/// What reply framing a command gets, beyond "one reply".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replies {
    /// One reply (every command but the subscribe family).
    One,
    /// This many subscription confirmations, one per channel (at least 1).
    Confirmations(usize),
    /// An unsubscribe from all of a kind: one confirmation per subscription
    /// of that kind, or one when there is none. Counted when its reply is
    /// read, not when it is sent: in a pipeline, the confirmations of a
    /// SUBSCRIBE sent before it are only read (and counted) by then.
    AllOf(SubscribeKind),
}

/// Session fields a command sets (`None`: left alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    db: Option<i64>,
    protocol: Option<u8>,
    multi: Option<bool>,
    watching: Option<bool>,
    tracking: Option<bool>,
    readonly: Option<bool>,
    subscribed: Option<bool>,
    tainted: Option<&'static str>,
}

/// What one command sent does to the known session ([`Session::effect`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Effect {
    /// Away from the baseline: counts once sent, whatever the reply.
    away: Fields,
    /// Back to the baseline: counts only on a reply that is not an error.
    back: Fields,
}

/// Why a connection's session is not its baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Changed(String);

impl fmt::Display for Changed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Session {
    /// A fresh connection's session: database 0, RESP2, nothing else.
    pub(crate) fn new() -> Session {
        Session {
            db: 0,
            protocol: 2,
            multi: false,
            watching: false,
            tracking: false,
            readonly: false,
            subscribed: false,
            subscriptions: Subscriptions::default(),
            tainted: None,
        }
    }

    /// How `self` differs from `baseline`, if it does.
    pub(crate) fn changed_from(&self, baseline: &Session) -> Option<Changed> {
        if self == baseline {
            return None;
        }
        let what = if let Some(command) = self.tainted {
            format!("{command} changed the session")
        } else if self.subscribed {
            "it is subscribed (pub/sub)".to_owned()
        } else if self.multi {
            "it is inside MULTI".to_owned()
        } else if self.watching {
            "it holds a WATCH".to_owned()
        } else if self.db != baseline.db {
            format!("database {} is selected, not {}", self.db, baseline.db)
        } else if self.protocol != baseline.protocol {
            format!(
                "it speaks RESP{}, not RESP{}",
                self.protocol, baseline.protocol
            )
        } else if self.tracking != baseline.tracking {
            "CLIENT TRACKING was switched".to_owned()
        } else {
            "READONLY was switched".to_owned()
        };
        Some(Changed(what))
    }

    /// Notes what `cmd`, about to be sent, does to the session, and how many
    /// replies it gets. Runs for every command: most change nothing, and are
    /// ruled out by their name's first letter and length before anything else.
    #[inline]
    pub(crate) fn note_cmd(&mut self, cmd: &Cmd) -> Replies {
        if may_change_session(cmd.name()) {
            self.note(cmd.arg_bytes())
        } else {
            Replies::One
        }
    }

    /// [`Session::note_cmd`] for a command given as its arguments, name first.
    pub(crate) fn note<'a>(&mut self, mut args: impl Iterator<Item = &'a [u8]>) -> Replies {
        let Some(name) = args.next() else {
            return Replies::One;
        };
        let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
        if is("SELECT") {
            match args.next().and_then(parse_i64) {
                Some(db) => self.db = db,
                None => self.tainted = Some("a SELECT without a database number"),
            }
        } else if is("MULTI") {
            self.multi = true;
        } else if is("EXEC") || is("DISCARD") {
            self.multi = false;
            self.watching = false;
        } else if is("WATCH") {
            self.watching = true;
        } else if is("UNWATCH") {
            self.watching = false;
        } else if is("READONLY") {
            self.readonly = true;
        } else if is("READWRITE") {
            self.readonly = false;
        } else if let Some((kind, subscribe)) = subscribe_kind(name) {
            self.subscribed = true;
            let named = args.count();
            if named == 0 && !subscribe {
                return Replies::AllOf(kind);
            }
            return Replies::Confirmations(named.max(1));
        } else if is("CLIENT") {
            self.client(args);
        } else if is("HELLO") {
            match args.next() {
                Some(version) if version == b"2" || version == b"3" => {
                    self.protocol = version[0] - b'0';
                    if args.next().is_some() {
                        self.tainted = Some("HELLO with AUTH or SETNAME");
                    }
                }
                Some(_) => self.tainted = Some("HELLO"),
                None => {}
            }
        } else if is("AUTH") {
            self.tainted = Some("AUTH");
        } else if is("RESET") {
            // The server ends MULTI and WATCH, unsubscribes, selects
            // database 0, speaks RESP2, ends tracking and READONLY, drops
            // the name and the AUTH: a fresh connection's state, but not
            // the baseline's (name, user), so it stays tainted.
            *self = Session {
                tainted: self.tainted.or(Some("RESET")),
                ..Session::new()
            };
        } else if is("MONITOR") {
            self.tainted = Some("MONITOR");
        } else if is("QUIT") {
            self.tainted = Some("QUIT");
        }
        Replies::One
    }

    fn client<'a>(&mut self, mut args: impl Iterator<Item = &'a [u8]>) {
        let Some(sub) = args.next() else {
            return;
        };
        let is = |word: &str| sub.eq_ignore_ascii_case(word.as_bytes());
        if is("TRACKING") {
            match args.next() {
                Some(on) if on.eq_ignore_ascii_case(b"ON") => {
                    self.tracking = true;
                    // Options (REDIRECT, BCAST, PREFIX, ...) are not compared.
                    if args.next().is_some() {
                        self.tainted = Some("CLIENT TRACKING with options");
                    }
                }
                Some(off) if off.eq_ignore_ascii_case(b"OFF") => self.tracking = false,
                _ => {}
            }
        } else if is("SETNAME") {
            self.tainted = Some("CLIENT SETNAME");
        } else if is("NO-EVICT") || is("NO-TOUCH") || is("SETINFO") {
            self.tainted = Some("a CLIENT flag");
        }
    }

    /// How many confirmations an unsubscribe from all of `kind` gets now:
    /// one per subscription confirmed so far, or one when there is none.
    pub(crate) fn unsubscribe_all_replies(&self, kind: SubscribeKind) -> usize {
        self.subscriptions.of(kind).max(1)
    }

    /// What `cmd`, about to be sent, does to this *known* session, split
    /// into what moves it away from `baseline` (applied now: sticky) and what
    /// moves it back (applied by [`Session::settle`] only on a reply that is
    /// not an error). `queued`: it is sent inside MULTI, so only EXEC and
    /// DISCARD can move anything back. `None` for a command that changes
    /// nothing (most commands: ruled out by its name alone), so that it has
    /// nothing to settle either.
    #[inline]
    pub(crate) fn effect(&mut self, baseline: &Session, queued: bool, cmd: &Cmd) -> Option<Effect> {
        if !may_change_session(cmd.name()) {
            return None;
        }
        Some(self.effect_of(baseline, queued, cmd))
    }

    fn effect_of(&mut self, baseline: &Session, queued: bool, cmd: &Cmd) -> Effect {
        let mut after = self.clone();
        after.note(cmd.arg_bytes());
        let mut effect = Effect::default();
        fn split<T: Copy + PartialEq>(
            now: T,
            after: T,
            baseline: T,
            away: &mut Option<T>,
            back: &mut Option<T>,
        ) {
            if after != now {
                if after == baseline {
                    *back = Some(after);
                } else {
                    *away = Some(after);
                }
            }
        }
        let (a, b) = (&mut effect.away, &mut effect.back);
        split(self.db, after.db, baseline.db, &mut a.db, &mut b.db);
        split(
            self.protocol,
            after.protocol,
            baseline.protocol,
            &mut a.protocol,
            &mut b.protocol,
        );
        split(
            self.multi,
            after.multi,
            baseline.multi,
            &mut a.multi,
            &mut b.multi,
        );
        split(
            self.watching,
            after.watching,
            baseline.watching,
            &mut a.watching,
            &mut b.watching,
        );
        split(
            self.tracking,
            after.tracking,
            baseline.tracking,
            &mut a.tracking,
            &mut b.tracking,
        );
        split(
            self.readonly,
            after.readonly,
            baseline.readonly,
            &mut a.readonly,
            &mut b.readonly,
        );
        if after.subscribed && !self.subscribed {
            a.subscribed = Some(true);
        }
        if self.tainted.is_none() {
            a.tainted = after.tainted;
        }
        if queued {
            let ends_multi = {
                let name = cmd.name();
                name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD")
            };
            effect.back = if ends_multi {
                Fields {
                    multi: effect.back.multi,
                    watching: effect.back.watching,
                    ..Fields::default()
                }
            } else {
                Fields::default()
            };
        }
        self.apply(&effect.away);
        effect
    }

    /// Applies `effect` when its command's reply is read, in the order the
    /// commands were sent: its away part again (a later command's change
    /// outlives an earlier command's move back), then, if the reply is not an
    /// error (`ok`), its move back.
    pub(crate) fn settle(&mut self, effect: &Effect, ok: bool) {
        self.apply(&effect.away);
        if ok {
            self.apply(&effect.back);
        }
    }

    fn apply(&mut self, fields: &Fields) {
        if let Some(db) = fields.db {
            self.db = db;
        }
        if let Some(protocol) = fields.protocol {
            self.protocol = protocol;
        }
        if let Some(multi) = fields.multi {
            self.multi = multi;
        }
        if let Some(watching) = fields.watching {
            self.watching = watching;
        }
        if let Some(tracking) = fields.tracking {
            self.tracking = tracking;
        }
        if let Some(readonly) = fields.readonly {
            self.readonly = readonly;
        }
        if let Some(subscribed) = fields.subscribed {
            self.subscribed = subscribed;
        }
        if fields.tainted.is_some() && self.tainted.is_none() {
            self.tainted = fields.tainted;
        }
    }

    /// Notes a subscription confirmation's kind and running total.
    pub(crate) fn confirmed(&mut self, kind: &[u8], total: i64) {
        let total = usize::try_from(total).unwrap_or(0);
        let subs = &mut self.subscriptions;
        match subscribe_kind(kind) {
            Some((SubscribeKind::Channels, _)) => {
                subs.channels = total.saturating_sub(subs.patterns)
            }
            Some((SubscribeKind::Patterns, _)) => {
                subs.patterns = total.saturating_sub(subs.channels)
            }
            Some((SubscribeKind::Shards, _)) => subs.shards = total,
            None => {}
        }
    }
}

impl Subscriptions {
    fn of(&self, kind: SubscribeKind) -> usize {
        match kind {
            SubscribeKind::Channels => self.channels,
            SubscribeKind::Patterns => self.patterns,
            SubscribeKind::Shards => self.shards,
        }
    }
}

/// Whether a command of this name may change the session: the names noted
/// above start with one of these letters, and are 4 to 12 bytes long.
#[inline]
pub(crate) fn may_change_session(name: &[u8]) -> bool {
    (4..=12).contains(&name.len())
        && matches!(
            name[0].to_ascii_uppercase(),
            b'A' | b'C' | b'D' | b'E' | b'H' | b'M' | b'P' | b'Q' | b'R' | b'S' | b'U' | b'W'
        )
}

/// The kind of a subscribe-family command, and whether it subscribes.
pub(crate) fn subscribe_kind(name: &[u8]) -> Option<(SubscribeKind, bool)> {
    const FAMILY: [(&[u8], SubscribeKind, bool); 6] = [
        (b"SUBSCRIBE", SubscribeKind::Channels, true),
        (b"UNSUBSCRIBE", SubscribeKind::Channels, false),
        (b"PSUBSCRIBE", SubscribeKind::Patterns, true),
        (b"PUNSUBSCRIBE", SubscribeKind::Patterns, false),
        (b"SSUBSCRIBE", SubscribeKind::Shards, true),
        (b"SUNSUBSCRIBE", SubscribeKind::Shards, false),
    ];
    FAMILY
        .iter()
        .find(|(word, _, _)| name.eq_ignore_ascii_case(word))
        .map(|&(_, kind, subscribe)| (kind, subscribe))
}

/// Whether a frame's first element names a subscription confirmation.
pub(crate) fn is_confirmation(kind: &[u8]) -> bool {
    subscribe_kind(kind).is_some()
}

/// Whether a frame's first element names a published message.
pub(crate) fn is_message(kind: &[u8]) -> bool {
    [&b"message"[..], b"pmessage", b"smessage"]
        .iter()
        .any(|word| kind.eq_ignore_ascii_case(word))
}

fn parse_i64(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(session: &mut Session, words: &[&str]) -> Replies {
        session.note(words.iter().map(|w| w.as_bytes()))
    }

    #[test]
    fn every_command_noted_here_passes_the_quick_filter() {
        for name in [
            "SELECT",
            "MULTI",
            "EXEC",
            "DISCARD",
            "WATCH",
            "UNWATCH",
            "READONLY",
            "READWRITE",
            "SUBSCRIBE",
            "UNSUBSCRIBE",
            "PSUBSCRIBE",
            "PUNSUBSCRIBE",
            "SSUBSCRIBE",
            "SUNSUBSCRIBE",
            "CLIENT",
            "HELLO",
            "AUTH",
            "RESET",
            "MONITOR",
            "QUIT",
        ] {
            assert!(may_change_session(name.as_bytes()), "{name}");
            assert!(may_change_session(name.to_lowercase().as_bytes()), "{name}");
        }
        assert!(!may_change_session(b"GET") && !may_change_session(b"SET"));
    }

    #[test]
    fn select_back_to_the_baseline_leaves_the_session_unchanged() {
        let mut baseline = Session::new();
        baseline.db = 2;
        let mut session = baseline.clone();
        note(&mut session, &["SELECT", "5"]);
        assert!(session.changed_from(&baseline).is_some());
        note(&mut session, &["select", "2"]);
        assert_eq!(session.changed_from(&baseline), None);
    }

    #[test]
    fn multi_and_watch_last_until_exec_or_discard() {
        let baseline = Session::new();
        let mut session = baseline.clone();
        note(&mut session, &["WATCH", "k"]);
        note(&mut session, &["MULTI"]);
        assert!(session.changed_from(&baseline).is_some());
        note(&mut session, &["EXEC"]);
        assert_eq!(session.changed_from(&baseline), None);
        note(&mut session, &["MULTI"]);
        note(&mut session, &["DISCARD"]);
        assert_eq!(session.changed_from(&baseline), None);
    }

    fn sent(known: &mut Session, baseline: &Session, queued: bool, words: &[&str]) -> Effect {
        let mut c = crate::cmd::cmd(words[0]);
        for w in &words[1..] {
            c.arg(*w);
        }
        known.effect(baseline, queued, &c).unwrap_or_default()
    }

    #[test]
    fn a_move_back_to_the_baseline_counts_only_on_its_own_successful_reply() {
        let baseline = Session::new();
        let mut known = baseline.clone();
        let away = sent(&mut known, &baseline, false, &["SELECT", "5"]);
        known.settle(&away, true);
        let refused = sent(&mut known, &baseline, false, &["SELECT", "0", "extra"]);
        known.settle(&refused, false);
        assert_eq!(known.db, 5, "a refused SELECT moved nothing back");
        let multi = sent(&mut known, &baseline, false, &["MULTI"]);
        let queued = sent(&mut known, &baseline, true, &["SELECT", "0"]);
        let discard = sent(&mut known, &baseline, true, &["DISCARD"]);
        for effect in [multi, queued, discard] {
            known.settle(&effect, true);
        }
        assert!(!known.multi, "DISCARD answered OK ends the MULTI");
        assert_eq!(known.db, 5, "a queued SELECT never counts");
        let back = sent(&mut known, &baseline, false, &["SELECT", "0"]);
        let later = sent(&mut known, &baseline, false, &["SELECT", "7"]);
        known.settle(&back, true);
        known.settle(&later, true);
        assert_eq!(known.db, 7, "a later change outlives an earlier move back");
        let back = sent(&mut known, &baseline, false, &["SELECT", "0"]);
        known.settle(&back, true);
        assert_eq!(known.changed_from(&baseline), None);
    }

    #[test]
    fn subscribe_commands_expect_one_confirmation_per_channel() {
        let mut session = Session::new();
        assert_eq!(
            note(&mut session, &["SUBSCRIBE", "a", "b"]),
            Replies::Confirmations(2)
        );
        session.confirmed(b"subscribe", 1);
        session.confirmed(b"subscribe", 2);
        assert_eq!(
            note(&mut session, &["PSUBSCRIBE", "p*"]),
            Replies::Confirmations(1)
        );
        session.confirmed(b"psubscribe", 3);
        assert_eq!(
            note(&mut session, &["UNSUBSCRIBE"]),
            Replies::AllOf(SubscribeKind::Channels)
        );
        assert_eq!(session.unsubscribe_all_replies(SubscribeKind::Channels), 2);
        session.confirmed(b"unsubscribe", 2);
        session.confirmed(b"unsubscribe", 1);
        assert_eq!(
            note(&mut session, &["PUNSUBSCRIBE"]),
            Replies::AllOf(SubscribeKind::Patterns)
        );
        assert_eq!(session.unsubscribe_all_replies(SubscribeKind::Patterns), 1);
        assert!(session.changed_from(&Session::new()).is_some());
    }

    #[test]
    fn reset_leaves_a_fresh_sessions_state_tainted() {
        let mut session = Session::new();
        for words in [
            &["HELLO", "3"][..],
            &["SELECT", "5"],
            &["WATCH", "k"],
            &["MULTI"],
            &["READONLY"],
            &["CLIENT", "TRACKING", "ON"],
        ] {
            note(&mut session, words);
        }
        note(&mut session, &["RESET"]);
        assert_eq!(
            session,
            Session {
                tainted: Some("RESET"),
                ..Session::new()
            }
        );
    }
}
