//! The header maps the host keeps while a stream runs.
//!
//! Names and values live in one byte buffer, addressed by spans, so header edits do not
//! allocate, and neither does a whole stream once a worker's buffers have grown (Envoy keeps
//! header strings inline for the same reason). Names are stored lowercase, as Envoy's
//! `LowerCaseString` keys are; values are bytes, as Envoy's `HeaderString` is.

use crate::http::Headers;

/// Once this many bytes are dead and they are over half the buffer, the buffer is compacted.
const COMPACT_AFTER: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// These bytes of `buffer` (empty if out of range, which the map never produces).
    fn of(self, buffer: &[u8]) -> &[u8] {
        buffer
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    name: Span,
    value: Span,
}

/// An ordered multimap of header name to value.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeaderMap {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Bytes no entry points at any more (removed and replaced headers).
    dead: usize,
}

impl HeaderMap {
    /// Removes every header; the buffers keep their capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
        self.dead = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn bytes_of(&self, span: Span) -> &[u8] {
        span.of(&self.bytes)
    }

    fn store(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len(),
        }
    }

    /// Appends a header (the name is lowercased).
    pub fn add(&mut self, name: &[u8], value: &[u8]) {
        let name = self.store(name);
        if let Some(stored) = self.bytes.get_mut(name.start..) {
            stored.make_ascii_lowercase();
        }
        let value = self.store(value);
        self.entries.push(Entry { name, value });
    }

    /// The header at `index` as (name, value).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        let entry = self.entries.get(index)?;
        Some((self.bytes_of(entry.name), self.bytes_of(entry.value)))
    }

    /// Every header in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|entry| (self.bytes_of(entry.name), self.bytes_of(entry.value)))
    }

    /// The index of the first header called `name` (any case).
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.entries
            .iter()
            .position(|entry| self.bytes_of(entry.name).eq_ignore_ascii_case(name))
    }

    /// The first value of `name` (any case).
    pub fn first(&self, name: &[u8]) -> Option<&[u8]> {
        self.get(self.position(name)?).map(|(_, value)| value)
    }

    /// Envoy's `setCopy` (since 1.16): removes every value of `name`, then appends one.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every header called `name` (any case).
    pub fn remove(&mut self, name: &[u8]) {
        let bytes = &self.bytes;
        let mut dead = 0;
        self.entries.retain(|entry| {
            let name_matches = entry.name.of(bytes).eq_ignore_ascii_case(name);
            if name_matches {
                dead += entry.name.len + entry.value.len;
            }
            !name_matches
        });
        self.dead += dead;
        self.compact_if_mostly_dead();
    }

    /// Replaces the whole map with `headers` (names lowercased).
    pub fn assign(&mut self, headers: &Headers) {
        self.clear();
        for (name, value) in headers {
            self.add(name.as_bytes(), value.as_bytes());
        }
    }

    /// Copies the headers into `out` (invalid UTF-8 replaced), pseudo headers (`:status`)
    /// left out when `skip_pseudo`. `out`'s strings are reused, so a warm `out` does not
    /// allocate.
    pub fn write_to(&self, out: &mut Headers, skip_pseudo: bool) {
        let mut kept = 0;
        for (name, value) in self.iter() {
            if skip_pseudo && name.starts_with(b":") {
                continue;
            }
            match out.get_mut(kept) {
                Some((out_name, out_value)) => {
                    set_text(out_name, name);
                    set_text(out_value, value);
                }
                None => out.push((text(name), text(value))),
            }
            kept += 1;
        }
        out.truncate(kept);
    }

    /// The headers as owned pairs.
    pub fn to_headers(&self) -> Headers {
        let mut headers = Vec::with_capacity(self.len());
        self.write_to(&mut headers, false);
        headers
    }

    fn compact_if_mostly_dead(&mut self) {
        if self.dead < COMPACT_AFTER || self.dead * 2 < self.bytes.len() {
            return;
        }
        let old = std::mem::take(&mut self.bytes);
        let entries = std::mem::take(&mut self.entries);
        self.dead = 0;
        for entry in entries {
            let name = self.store(entry.name.of(&old));
            let value = self.store(entry.value.of(&old));
            self.entries.push(Entry { name, value });
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn set_text(out: &mut String, bytes: &[u8]) {
    out.clear();
    match std::str::from_utf8(bytes) {
        Ok(valid) => out.push_str(valid),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
        map.to_headers()
    }

    fn owned(list: &[(&str, &str)]) -> Headers {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_lowercases_names_and_keeps_order_and_duplicates() {
        let mut map = HeaderMap::default();
        map.add(b"X-One", b"1");
        map.add(b"x-two", b"2");
        map.add(b"X-ONE", b"3");
        assert_eq!(
            pairs(&map),
            owned(&[("x-one", "1"), ("x-two", "2"), ("x-one", "3")])
        );
        assert_eq!(map.first(b"x-ONE"), Some(&b"1"[..]));
        assert_eq!(map.position(b"X-Two"), Some(1));
        assert_eq!(map.first(b"absent"), None);
    }

    #[test]
    fn replace_removes_every_value_and_appends_one_like_envoy_set_copy() {
        let mut map = HeaderMap::default();
        map.add(b"a", b"first");
        map.add(b"b", b"kept");
        map.add(b"A", b"second");
        map.replace(b"A", b"only");
        assert_eq!(pairs(&map), owned(&[("b", "kept"), ("a", "only")]));
        map.replace(b"c", b"new");
        assert_eq!(
            pairs(&map),
            owned(&[("b", "kept"), ("a", "only"), ("c", "new")])
        );
    }

    #[test]
    fn compaction_keeps_order_and_values() {
        let mut map = HeaderMap::default();
        for i in 0..300 {
            map.add(format!("h{i}").as_bytes(), &[b'v'; 32]);
        }
        for i in (0..300).step_by(2) {
            map.remove(format!("h{i}").as_bytes());
        }
        assert!(map.dead < COMPACT_AFTER, "compacted after the removals");
        let names: Vec<String> = pairs(&map).into_iter().map(|(n, _)| n).collect();
        let expected: Vec<String> = (1..300).step_by(2).map(|i| format!("h{i}")).collect();
        assert_eq!(names, expected);
        assert!(map.iter().all(|(_, v)| v == [b'v'; 32]));
    }

    #[test]
    fn remove_drops_every_value_of_the_name() {
        let mut map = HeaderMap::default();
        map.assign(&owned(&[("a", "1"), ("B", "2"), ("a", "3")]));
        map.remove(b"A");
        assert_eq!(pairs(&map), owned(&[("b", "2")]));
        map.remove(b"absent");
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn many_edits_compact_the_buffer_and_keep_the_values() {
        let mut map = HeaderMap::default();
        map.add(b"keep", b"me");
        for i in 0..10_000 {
            map.replace(
                b"grow",
                format!("value-{i:0>width$}", width = i % 50).as_bytes(),
            );
            map.add(b"gone", b"xxxxxxxxxxxxxxxx");
            map.remove(b"gone");
        }
        assert!(
            map.bytes.len() < 4 * COMPACT_AFTER,
            "buffer not compacted: {} bytes",
            map.bytes.len()
        );
        assert_eq!(map.first(b"keep"), Some(&b"me"[..]));
        let expected = format!("value-{:0>width$}", 9_999, width = 9_999 % 50);
        assert_eq!(map.first(b"grow"), Some(expected.as_bytes()));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn write_to_reuses_strings_skips_pseudo_headers_and_replaces_bad_utf8() {
        let mut map = HeaderMap::default();
        map.add(b":status", b"200");
        map.add(b"x", b"\xff");
        let mut out = owned(&[("old", "value"), ("extra", "gone")]);
        map.write_to(&mut out, true);
        assert_eq!(out, owned(&[("x", "\u{fffd}")]));
        map.write_to(&mut out, false);
        assert_eq!(out, owned(&[(":status", "200"), ("x", "\u{fffd}")]));
    }
}
