//! Hash slots: which of Redis Cluster's 16,384 slots a key lives in. The
//! router (`routing.rs`) calls [`key_slot`] for every key of every command;
//! nothing here does I/O.
//!
//! A key's slot is CRC16 (the XMODEM variant: polynomial 0x1021, initial
//! value 0) of the key, modulo 16,384. A *hash tag* pins related keys to one
//! slot: when the key holds a `{` followed later by a `}` with at least one
//! byte between them, only the bytes between the first `{` and the first `}`
//! after it are hashed, so `{user:1}:name` and `{user:1}:mail` share a slot
//! and one MULTI, script or MGET may use both. This is the rule of the
//! Redis Cluster specification, `keyHashSlot` in Redis's `cluster.c`.
//! See `docs/cluster.md`, "Routing".

/// How many hash slots a cluster has.
pub const SLOT_COUNT: u16 = 16384;

/// The slot of `key`, honouring a `{hash tag}`.
///
/// ```
/// use greenhub_redis::cluster::key_slot;
/// assert_eq!(key_slot(b"foo"), 12182);
/// assert_eq!(key_slot(b"{user:1}:name"), key_slot(b"user:1"));
/// assert_ne!(key_slot(b"{}a"), key_slot(b"{}b")); // an empty tag: the whole key is hashed
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}

/// The part of `key` that is hashed: the first non-empty `{tag}`, else all.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// CRC16-XMODEM of `bytes`, one table lookup per byte.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The 256 remainders of polynomial 0x1021, computed at compile time: a
/// byte-at-a-time CRC costs one lookup instead of eight shifts per byte.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_xmodem_variant() {
        // The check value of CRC-16/XMODEM, and the specification's example.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_what_redis_computes() {
        // From `CLUSTER KEYSLOT` on Redis 7.0.
        for (key, slot) in [
            (&b"foo"[..], 12182),
            (b"bar", 5061),
            (b"a", 15495),
            (b"key:1", 6657),
            (b"user1000", 3443),
            (b"", 0),
        ] {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tags_follow_the_specification() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(
            hash_tag(b"foo{}{bar}"),
            b"foo{}{bar}",
            "empty first tag: whole key"
        );
        assert_eq!(
            hash_tag(b"foo{{bar}}zap"),
            b"{bar",
            "the first }} after the first {{"
        );
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar", "only the first tag");
        assert_eq!(hash_tag(b"no tag}{"), b"no tag}{");
        assert_eq!(hash_tag(b"{unclosed"), b"{unclosed");
    }
}
