//! Streams: XADD, XLEN, XRANGE, XREAD, XGROUP CREATE, XREADGROUP, XACK,
//! XPENDING, XCLAIM and XAUTOCLAIM, with their replies as typed values. A
//! read with `block` set is a blocking command: its read deadline is the
//! block time plus one server tick plus the socket timeout (`cmd.rs`), and
//! `Some(Duration::ZERO)` blocks until an entry arrives.

use std::time::Duration;

use super::run;
use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::resp::Value;
use crate::types::{FromValue, ToArg};

/// One stream entry: its id and its field/value pairs, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamEntry {
    /// `<milliseconds>-<sequence>`.
    pub id: String,
    /// The fields and values, as XADD stored them.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The entries XREAD or XREADGROUP returned for one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRead {
    /// The stream's key.
    pub key: Vec<u8>,
    /// Its new entries, oldest first.
    pub entries: Vec<StreamEntry>,
}

/// What XREAD and XREADGROUP may do besides reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// COUNT: at most this many entries per stream.
    pub count: Option<usize>,
    /// BLOCK: wait this long for an entry when there is none
    /// (`Duration::ZERO`: as long as it takes).
    pub block: Option<Duration>,
    /// NOACK (XREADGROUP only): do not add the entries to the pending list.
    pub noack: bool,
}

/// XPENDING's summary form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Entries delivered and not acknowledged.
    pub count: usize,
    /// The smallest and largest pending ids (`None` when nothing is pending).
    pub first_id: Option<String>,
    /// See `first_id`.
    pub last_id: Option<String>,
    /// Each consumer with pending entries, and how many.
    pub consumers: Vec<(String, usize)>,
}

/// One entry of XPENDING's extended form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingEntry {
    /// The entry's id.
    pub id: String,
    /// The consumer it was delivered to.
    pub consumer: String,
    /// Time since it was last delivered.
    pub idle: Duration,
    /// How many times it was delivered.
    pub deliveries: u64,
}

/// What XAUTOCLAIM returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoClaim {
    /// Where the next call should start (`0-0` when the scan is over).
    pub next: String,
    /// The entries claimed.
    pub entries: Vec<StreamEntry>,
    /// Ids that were pending but whose entries no longer exist (and were
    /// removed from the pending list).
    pub deleted: Vec<String>,
}

/// Stream commands.
pub trait StreamCommands: ConnectionLike {
    /// XADD `key` `id` (`"*"`: let the server choose) with the field/value
    /// pairs: the new entry's id.
    fn xadd<F: ToArg, V: ToArg>(
        &mut self,
        key: impl ToArg,
        id: &str,
        fields: &[(F, V)],
    ) -> Result<String> {
        let mut xadd = cmd("XADD");
        xadd.arg(key).arg(id);
        for (field, value) in fields {
            xadd.arg(field).arg(value);
        }
        run(self, &xadd)
    }

    /// XADD with `MAXLEN ~ max` (approximate trimming, cheap): the new id.
    fn xadd_maxlen<F: ToArg, V: ToArg>(
        &mut self,
        key: impl ToArg,
        max: usize,
        id: &str,
        fields: &[(F, V)],
    ) -> Result<String> {
        let mut xadd = cmd("XADD");
        xadd.arg(key).arg("MAXLEN").arg("~").arg(max).arg(id);
        for (field, value) in fields {
            xadd.arg(field).arg(value);
        }
        run(self, &xadd)
    }

    /// XLEN: the number of entries.
    fn xlen(&mut self, key: impl ToArg) -> Result<usize> {
        run(self, cmd("XLEN").arg(key))
    }

    /// XRANGE from `start` to `end` (`"-"` and `"+"` for the ends), at most
    /// `count` entries.
    fn xrange(
        &mut self,
        key: impl ToArg,
        start: &str,
        end: &str,
        count: Option<usize>,
    ) -> Result<Vec<StreamEntry>> {
        let mut xrange = cmd("XRANGE");
        xrange.arg(key).arg(start).arg(end);
        if let Some(count) = count {
            xrange.arg("COUNT").arg(count);
        }
        run(self, &xrange)
    }

    /// XREAD of each key after its id (`"$"`: only entries added from now
    /// on): `None` when `options.block` passed with nothing new.
    fn xread<K: ToArg, I: ToArg>(
        &mut self,
        keys: &[K],
        ids: &[I],
        options: ReadOptions,
    ) -> Result<Option<Vec<StreamRead>>> {
        let mut xread = cmd("XREAD");
        read_options(&mut xread, options, false);
        streams(&mut xread, keys, ids)?;
        let reads: Option<Reads> = run(self, &xread)?;
        Ok(reads.map(|reads| reads.0))
    }

    /// XGROUP CREATE `key` `group` at `id` (`"$"`: new entries only, `"0"`:
    /// all), creating the stream if `mkstream`.
    fn xgroup_create(
        &mut self,
        key: impl ToArg,
        group: impl ToArg,
        id: &str,
        mkstream: bool,
    ) -> Result<()> {
        let mut create = cmd("XGROUP");
        create.arg("CREATE").arg(key).arg(group).arg(id);
        if mkstream {
            create.arg("MKSTREAM");
        }
        run(self, &create)
    }

    /// XREADGROUP as `consumer` of `group`, each key after its id (`">"`:
    /// entries never delivered to the group; an id: this consumer's pending
    /// entries after it): `None` when `options.block` passed with nothing.
    fn xreadgroup<K: ToArg, I: ToArg>(
        &mut self,
        group: impl ToArg,
        consumer: impl ToArg,
        keys: &[K],
        ids: &[I],
        options: ReadOptions,
    ) -> Result<Option<Vec<StreamRead>>> {
        let mut xreadgroup = cmd("XREADGROUP");
        xreadgroup.arg("GROUP").arg(group).arg(consumer);
        read_options(&mut xreadgroup, options, true);
        streams(&mut xreadgroup, keys, ids)?;
        let reads: Option<Reads> = run(self, &xreadgroup)?;
        Ok(reads.map(|reads| reads.0))
    }

    /// XACK: how many of `ids` were pending and are acknowledged now.
    fn xack<I: ToArg>(&mut self, key: impl ToArg, group: impl ToArg, ids: &[I]) -> Result<usize> {
        run(self, cmd("XACK").arg(key).arg(group).args(ids))
    }

    /// XPENDING's summary: how many entries of `group` are pending, and with whom.
    fn xpending(&mut self, key: impl ToArg, group: impl ToArg) -> Result<PendingSummary> {
        run(self, cmd("XPENDING").arg(key).arg(group))
    }

    /// XPENDING's extended form: pending entries from `start` to `end`, at
    /// most `count`, of one consumer if given.
    fn xpending_range(
        &mut self,
        key: impl ToArg,
        group: impl ToArg,
        start: &str,
        end: &str,
        count: usize,
        consumer: Option<&str>,
    ) -> Result<Vec<PendingEntry>> {
        let mut xpending = cmd("XPENDING");
        xpending.arg(key).arg(group).arg(start).arg(end).arg(count);
        if let Some(consumer) = consumer {
            xpending.arg(consumer);
        }
        run(self, &xpending)
    }

    /// XCLAIM: takes `ids` over for `consumer` if they have been idle at
    /// least `min_idle`; the entries claimed.
    fn xclaim<I: ToArg>(
        &mut self,
        key: impl ToArg,
        group: impl ToArg,
        consumer: impl ToArg,
        min_idle: Duration,
        ids: &[I],
    ) -> Result<Vec<StreamEntry>> {
        let mut xclaim = cmd("XCLAIM");
        xclaim
            .arg(key)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .args(ids);
        run(self, &xclaim)
    }

    /// XAUTOCLAIM: takes over for `consumer` the entries idle at least
    /// `min_idle`, scanning from `start` (`"0-0"`), at most `count`.
    fn xautoclaim(
        &mut self,
        key: impl ToArg,
        group: impl ToArg,
        consumer: impl ToArg,
        min_idle: Duration,
        start: &str,
        count: Option<usize>,
    ) -> Result<AutoClaim> {
        let mut xautoclaim = cmd("XAUTOCLAIM");
        xautoclaim
            .arg(key)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(start);
        if let Some(count) = count {
            xautoclaim.arg("COUNT").arg(count);
        }
        run(self, &xautoclaim)
    }
}

impl<C: ConnectionLike + ?Sized> StreamCommands for C {}

/// COUNT, BLOCK and NOACK, before STREAMS.
fn read_options(read: &mut Cmd, options: ReadOptions, group: bool) {
    if let Some(count) = options.count {
        read.arg("COUNT").arg(count);
    }
    if let Some(block) = options.block {
        read.arg("BLOCK").arg(block.as_millis() as u64);
    }
    if group && options.noack {
        read.arg("NOACK");
    }
}

/// `STREAMS key... id...`; as many ids as keys.
fn streams<K: ToArg, I: ToArg>(read: &mut Cmd, keys: &[K], ids: &[I]) -> Result<()> {
    if keys.len() != ids.len() || keys.is_empty() {
        return Err(Error::Usage(format!(
            "a stream read needs one id per key, and at least one key ({} keys, {} ids)",
            keys.len(),
            ids.len()
        )));
    }
    read.arg("STREAMS").args(keys).args(ids);
    Ok(())
}

/// The elements of an array (or a RESP3 set), or a type error.
fn items(value: Value, expected: &'static str) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Error(err) => Err(Error::Server(err)),
        Value::Attribute { data, .. } => items(*data, expected),
        other => Err(Error::type_error(expected, other)),
    }
}

impl FromValue for StreamEntry {
    fn from_value(value: Value) -> Result<Self> {
        let mut parts = items(value, "a stream entry [id, [field, value, ...]]")?.into_iter();
        let id = String::from_value(parts.next().unwrap_or(Value::Nil))?;
        // An entry deleted since it was delivered has nil fields.
        let flat: Vec<Vec<u8>> = match parts.next() {
            Some(Value::Map(pairs)) => pairs
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .map(Vec::<u8>::from_value)
                .collect::<Result<_>>()?,
            Some(fields) => Vec::from_value(fields)?,
            None => Vec::new(),
        };
        if !flat.len().is_multiple_of(2) {
            return Err(Error::type_error("field/value pairs", flat.len()));
        }
        let mut flat = flat.into_iter();
        let mut fields = Vec::with_capacity(flat.len() / 2);
        while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
            fields.push((field, value));
        }
        Ok(StreamEntry { id, fields })
    }
}

impl FromValue for StreamRead {
    fn from_value(value: Value) -> Result<Self> {
        let mut parts = items(value, "a stream's read [key, entries]")?.into_iter();
        Ok(StreamRead {
            key: Vec::from_value(parts.next().unwrap_or(Value::Nil))?,
            entries: Vec::from_value(parts.next().unwrap_or(Value::Nil))?,
        })
    }
}

/// XREAD's reply: an array of `[key, entries]` (RESP2), or a map (RESP3).
impl FromValue for Reads {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|(key, entries)| {
                    Ok(StreamRead {
                        key: Vec::from_value(key)?,
                        entries: Vec::from_value(entries)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Reads),
            other => Vec::<StreamRead>::from_value(other).map(Reads),
        }
    }
}

/// The reads of XREAD/XREADGROUP, whichever protocol brought them.
struct Reads(Vec<StreamRead>);

impl FromValue for PendingSummary {
    fn from_value(value: Value) -> Result<Self> {
        let mut parts = items(value, "XPENDING's summary")?.into_iter();
        let count = usize::from_value(parts.next().unwrap_or(Value::Nil))?;
        let first_id = Option::<String>::from_value(parts.next().unwrap_or(Value::Nil))?;
        let last_id = Option::<String>::from_value(parts.next().unwrap_or(Value::Nil))?;
        let consumers = match parts.next() {
            None | Some(Value::Nil) => Vec::new(),
            Some(list) => items(list, "XPENDING's consumers")?
                .into_iter()
                .map(<(String, usize)>::from_value)
                .collect::<Result<_>>()?,
        };
        Ok(PendingSummary {
            count,
            first_id,
            last_id,
            consumers,
        })
    }
}

impl FromValue for PendingEntry {
    fn from_value(value: Value) -> Result<Self> {
        let (id, consumer, idle, deliveries): (String, String, u64, u64) =
            FromValue::from_value(value)?;
        Ok(PendingEntry {
            id,
            consumer,
            idle: Duration::from_millis(idle),
            deliveries,
        })
    }
}

impl FromValue for AutoClaim {
    fn from_value(value: Value) -> Result<Self> {
        let mut parts = items(value, "XAUTOCLAIM's reply")?.into_iter();
        Ok(AutoClaim {
            next: String::from_value(parts.next().unwrap_or(Value::Nil))?,
            entries: Vec::from_value(parts.next().unwrap_or(Value::Nil))?,
            // Redis 7 adds the deleted ids; Redis 6.2 sends two elements.
            deleted: Vec::from_value(parts.next().unwrap_or(Value::Nil))?,
        })
    }
}
