//! An in-memory `SharedStore` with Envoy's semantics, for the tests of `shared` and `keyed`.

use std::collections::{HashMap, HashSet};

use super::{SharedStore, Written};

/// Shared data with Envoy's semantics: every write gets a fresh cas; a non-zero cas must match
/// an existing entry; writing a missing key always creates it.
#[derive(Default, Clone)]
pub struct FakeStore {
    pub entries: HashMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    /// Conflicts to inject before writes succeed.
    pub conflicts: u32,
    pub writes: u32,
    /// Reads made (each is a host call in the filter).
    pub reads: u32,
    /// Refuse a non-zero cas on a missing key, as Envoy does not (for the fallback).
    pub refuse_cas_create: bool,
}

impl SharedStore for FakeStore {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.reads += 1;
        self.entries.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        if self.conflicts > 0 {
            self.conflicts -= 1;
            return Written::Conflict;
        }
        if self.refuse_cas_create && cas != 0 && !self.entries.contains_key(key) {
            return Written::Conflict;
        }
        if let Some((_, current)) = self.entries.get(key)
            && cas != 0
            && cas != *current
        {
            return Written::Conflict;
        }
        self.next_cas += 1;
        self.writes += 1;
        self.entries
            .insert(key.to_string(), (value.to_vec(), self.next_cas));
        Written::Stored
    }
}

/// A worker that read every key before another worker wrote: its first read of each key sees
/// `before`; later reads and every write go to the live store.
pub struct ReadBefore<'a> {
    live: &'a mut FakeStore,
    before: FakeStore,
    read: HashSet<String>,
}

impl<'a> ReadBefore<'a> {
    pub fn new(live: &'a mut FakeStore, before: FakeStore) -> ReadBefore<'a> {
        ReadBefore {
            live,
            before,
            read: HashSet::new(),
        }
    }
}

impl SharedStore for ReadBefore<'_> {
    fn get(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        if self.read.insert(key.to_string()) {
            self.before.get(key)
        } else {
            self.live.get(key)
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Written {
        self.live.set(key, value, cas)
    }
}
