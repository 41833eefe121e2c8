//! The shared-data value of a group of keyed buckets. Pure codec: no host calls.
//!
//! ```text
//! [0x02 version][flags][record]*      at most GROUP_BUCKETS records
//! record = [owner length u8][u64 nano-tokens][u64 last update ns][owner bytes]   (little endian)
//! ```
//! One entry holds several keys' buckets, so a key that already has a bucket is found with one
//! read, and the entry's overhead in the host is shared by its keys. Updates edit the value the
//! host returned in place: the request path allocates nothing beyond that read.

use crate::key::{GROUP_BUCKETS, MAX_KEY_BYTES};
use crate::limiter::{Bucket, Rate};

/// First byte of a group value (a single bucket's value starts with 1).
const VERSION: u8 = 2;
/// `flags` bit: some key whose first choice is this group lives in its second group.
const SPILLED: u8 = 1;
/// Version and flags.
const HEADER: usize = 2;
/// Bytes of an encoded level (tokens, timestamp: `Bucket::level_bytes`).
const LEVEL: usize = crate::limiter::LEVEL_LEN;
/// Owner length, then the level.
const RECORD_HEAD: usize = 1 + LEVEL;
/// The largest record: the longest owner `key.rs` makes.
const MAX_RECORD_BYTES: usize = RECORD_HEAD + MAX_KEY_BYTES + 1;
/// The largest group value.
pub const MAX_GROUP_BYTES: usize = HEADER + GROUP_BUCKETS * MAX_RECORD_BYTES;
/// The largest value of a group with one bucket (a group's first write).
pub const FIRST_GROUP_BYTES: usize = HEADER + MAX_RECORD_BYTES;

/// A decoded group value (borrowed). Anything that is not a group reads as an empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group<'a> {
    flags: u8,
    records: &'a [u8],
}

/// One bucket in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record starts in the value (for `patch`).
    pub at: usize,
    /// Whose bucket it is.
    pub owner: &'a [u8],
    /// The encoded level, decoded on demand (`find` skips it for other owners' records).
    level: &'a [u8; LEVEL],
}

impl Record<'_> {
    /// Its bucket.
    #[inline(always)]
    pub fn bucket(&self) -> Bucket {
        let (tokens, updated) = self.level.split_at(8);
        let word = |bytes: &[u8]| {
            bytes
                .first_chunk::<8>()
                .map_or(0, |w| u64::from_le_bytes(*w))
        };
        Bucket {
            tokens: word(tokens),
            updated_ns: word(updated),
        }
    }

    /// Whether its owner still uses it at `now_ns`. A bucket back at `burst` is in nobody's
    /// use: a new key starting with a full bucket cannot tell it from a fresh one.
    fn in_use(&self, rate: &Rate, now_ns: u64) -> bool {
        !self.bucket().is_full_at(rate, now_ns)
    }

    /// Bytes from its start to the next record's.
    fn size(&self) -> usize {
        RECORD_HEAD.saturating_add(self.owner.len())
    }
}

impl<'a> Group<'a> {
    /// The group in `value`; an absent or foreign value is an empty group.
    #[inline(always)]
    pub fn decode(value: Option<&'a [u8]>) -> Group<'a> {
        match value.and_then(|v| v.split_first_chunk::<HEADER>()) {
            Some(([VERSION, flags], records)) => Group {
                flags: *flags,
                records,
            },
            _ => Group {
                flags: 0,
                records: &[],
            },
        }
    }

    /// Whether a key may live in its second group although this is its first.
    pub fn spilled(&self) -> bool {
        self.flags & SPILLED != 0
    }

    /// The records, in order; a truncated tail is ignored.
    pub fn records(&self) -> Records<'a> {
        Records {
            rest: self.records,
            at: HEADER,
        }
    }

    /// `owner`'s record, if it has one here.
    #[inline(always)]
    pub fn find(&self, owner: &[u8]) -> Option<Record<'a>> {
        // Not `==` (the C library's bytewise `memcmp`): this runs for every record.
        self.records()
            .find(|r| crate::headers::same_bytes(r.owner, owner))
    }

    /// Whether a new key fits: fewer than `GROUP_BUCKETS` buckets in use at `now_ns`.
    pub fn has_room(&self, rate: &Rate, now_ns: u64) -> bool {
        self.records().filter(|r| r.in_use(rate, now_ns)).count() < GROUP_BUCKETS
    }
}

/// Iterator over a group's records.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<Record<'a>> {
        let (&len, tail) = self.rest.split_first()?;
        let (level, tail) = tail.split_first_chunk::<LEVEL>()?;
        let (owner, rest) = tail.split_at_checked(usize::from(len))?;
        let record = Record {
            at: self.at,
            owner,
            level,
        };
        self.at = self.at.saturating_add(record.size());
        self.rest = rest;
        Some(record)
    }
}

/// Add `owner`'s bucket to the group `value` in place, dropping the buckets nobody uses at
/// `now_ns` (flags kept; a foreign value becomes an empty group first). False, with `value`
/// unchanged, if the group has no room or the owner is too long for a record (`key.rs`
/// never makes such keys).
pub fn add(value: &mut Vec<u8>, rate: &Rate, now_ns: u64, owner: &[u8], bucket: &Bucket) -> bool {
    let Ok(len) = u8::try_from(owner.len()) else {
        return false;
    };
    let group = Group::decode(Some(value));
    if !group.has_room(rate, now_ns) {
        return false;
    }
    // Empty, foreign or with a broken first record: start over (flags kept if ours).
    let (restart, flags) = (group.records().next().is_none(), group.flags);
    if restart {
        value.clear();
        value.extend_from_slice(&[VERSION, flags]);
    }
    // Slide the records in use down over the idle ones; `to <= from` all along.
    let (mut to, mut from) = (HEADER, HEADER);
    while let Some(record) = value
        .get(from..)
        .and_then(|rest| Records { rest, at: from }.next())
    {
        let (size, keep) = (record.size(), record.in_use(rate, now_ns));
        let end = from.saturating_add(size);
        if keep && to < from {
            // `to..end` holds the gap and the record: the copy stays inside it.
            if let Some(window) = value.get_mut(to..end) {
                window.copy_within(from.saturating_sub(to).., 0);
            }
        }
        if keep {
            to = to.saturating_add(size);
        }
        from = end;
    }
    value.truncate(to);
    value.push(len);
    value.extend_from_slice(&bucket.level_bytes());
    value.extend_from_slice(owner);
    true
}

/// The first value of a group: `owner`'s bucket alone, written into `buf` (on the caller's
/// stack). `None` if the owner is too long for a record.
pub fn first<'b>(
    owner: &[u8],
    bucket: &Bucket,
    buf: &'b mut [u8; FIRST_GROUP_BYTES],
) -> Option<&'b [u8]> {
    let len = u8::try_from(owner.len()).ok()?;
    let end = HEADER.checked_add(RECORD_HEAD)?.checked_add(owner.len())?;
    let out = buf.get_mut(..end)?;
    let (head, rest) = out.split_first_chunk_mut::<{ HEADER + 1 }>()?;
    *head = [VERSION, 0, len];
    let (level, tail) = rest.split_first_chunk_mut::<LEVEL>()?;
    *level = bucket.level_bytes();
    tail.copy_from_slice(owner);
    Some(out)
}

/// Overwrite the bucket of the record at `at` in `value`, in place (the record's size does not
/// change, so the rest of the group stays as read). False if `at` is not inside `value`.
#[inline(always)]
pub fn patch(value: &mut [u8], at: usize, bucket: &Bucket) -> bool {
    let place = at
        .checked_add(1)
        .and_then(|start| value.get_mut(start..)?.first_chunk_mut::<LEVEL>());
    match place {
        Some(place) => {
            *place = bucket.level_bytes();
            true
        }
        None => false,
    }
}

/// Set the spilled flag of a group value in place; an empty or foreign value becomes an empty
/// group with the flag (there is nothing in it to keep).
pub fn mark_spilled(value: &mut Vec<u8>) {
    match value.get_mut(..HEADER) {
        Some([VERSION, flags]) => *flags |= SPILLED,
        _ => {
            value.clear();
            value.extend_from_slice(&[VERSION, SPILLED]);
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
