//! Rate-limit response headers. Pure: the fixed parts are rendered once per configuration, the
//! per-request parts (`r`, `t`) from the [`Level`] a request left behind: the local bucket's
//! after the take, or the rate limit service's answer.

use std::borrow::Cow;

use crate::limiter::{Bucket, Rate};

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT: &str = "ratelimit";
/// Draft 03 / Envoy local rate limit names.
pub const X_RATELIMIT_LIMIT: &str = "x-ratelimit-limit";
/// Draft 03 remaining.
pub const X_RATELIMIT_REMAINING: &str = "x-ratelimit-remaining";
/// Draft 03 reset.
pub const X_RATELIMIT_RESET: &str = "x-ratelimit-reset";
/// On limited responses.
pub const RETRY_AFTER: &str = "retry-after";

/// What the per-request headers say: whole tokens left (`r`) and whole seconds until the next
/// one (`t`, 0 when nothing is missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    /// Whole tokens left.
    pub remaining: u64,
    /// Whole seconds until more are available (a token, or the service's window reset).
    pub reset_seconds: u64,
}

impl Level {
    /// The level of a local bucket.
    #[inline(always)]
    pub fn of(rate: &Rate, bucket: &Bucket) -> Level {
        Level {
            remaining: bucket.remaining(),
            reset_seconds: bucket.reset_seconds(rate),
        }
    }

    /// `t` for draft 03 (Envoy's local rate limit): 0 while a token is left.
    #[inline(always)]
    fn draft03_reset(&self) -> u64 {
        if self.remaining > 0 {
            0
        } else {
            self.reset_seconds
        }
    }
}

/// Where the response path writes headers, one at a time.
pub trait HeaderSink {
    /// Sets (replaces) a header.
    fn set(&mut self, name: &str, value: &str);

    /// Adds this policy's `item` to a list header (`RateLimit`, `RateLimit-Policy`) as a field
    /// line of its own, next to members already there: a second field line is the same list
    /// (RFC 9110 §5.3). Setting it outright is right where nothing else can be there.
    fn add_list_member(&mut self, name: &str, item: &str) {
        self.set(name, item);
    }
}

impl<F: FnMut(&str, &str)> HeaderSink for F {
    fn set(&mut self, name: &str, value: &str) {
        self(name, value);
    }
}

/// Which rate-limit headers a policy sends, with their fixed parts pre-rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderStyle {
    /// `RateLimit-Policy: "name";q=..;w=..` and `RateLimit: "name";r=..;t=..`.
    Ietf {
        /// The whole `ratelimit-policy` value.
        policy: String,
        /// The sf-string item `"name"` that starts the `ratelimit` value.
        item: String,
    },
    /// `X-RateLimit-Limit/-Remaining/-Reset`.
    Draft03 {
        /// The `x-ratelimit-limit` value.
        limit: String,
    },
    /// No rate-limit headers.
    None,
}

/// Which family of headers to render (mirrors `hrl_plugin_config::RateLimitHeaders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IETF draft 10 structured fields.
    Ietf,
    /// Draft 03 / Envoy `X-RateLimit-*`.
    Draft03,
    /// Nothing.
    None,
}

impl HeaderStyle {
    /// Render the fixed parts for a policy named `name` with this rate.
    pub fn compile(family: Family, name: &str, rate: &Rate) -> HeaderStyle {
        match family {
            Family::Ietf => {
                let item = sf_string(name);
                let mut policy = item.clone();
                policy.push_str(";q=");
                push_decimal(&mut policy, rate.burst());
                policy.push_str(";w=");
                push_decimal(&mut policy, rate.window_seconds());
                HeaderStyle::Ietf { policy, item }
            }
            Family::Draft03 => HeaderStyle::Draft03 {
                limit: decimal(rate.burst()),
            },
            Family::None => HeaderStyle::None,
        }
    }

    /// The headers for a response whose request left `level` behind. Values fixed by the
    /// configuration are borrowed, not rebuilt per request.
    pub fn render(&self, level: &Level) -> Vec<(&str, Cow<'_, str>)> {
        let mut out = Vec::with_capacity(3);
        self.render_into(level, &mut out);
        out
    }

    /// `render`, appended to `out` (no `Vec` of its own: the local reply path).
    pub fn render_into<'a>(&'a self, level: &Level, out: &mut Vec<(&'a str, Cow<'a, str>)>) {
        match self {
            HeaderStyle::Ietf { policy, item } => {
                let (remaining, reset) = (level.remaining, level.reset_seconds);
                let mut value = String::with_capacity(item.len().saturating_add(48));
                value.push_str(item);
                value.push_str(";r=");
                push_decimal(&mut value, remaining);
                value.push_str(";t=");
                push_decimal(&mut value, reset);
                out.push((RATELIMIT_POLICY, Cow::Borrowed(policy.as_str())));
                out.push((RATELIMIT, Cow::Owned(value)));
            }
            // Envoy's local rate limit: reset is 0 while a token is available.
            HeaderStyle::Draft03 { limit } => {
                out.push((X_RATELIMIT_LIMIT, Cow::Borrowed(limit.as_str())));
                out.push((X_RATELIMIT_REMAINING, Cow::Owned(decimal(level.remaining))));
                let reset = match level.draft03_reset() {
                    0 => Cow::Borrowed("0"),
                    seconds => Cow::Owned(decimal(seconds)),
                };
                out.push((X_RATELIMIT_RESET, reset));
            }
            HeaderStyle::None => {}
        }
    }

    /// `render` without allocating (the response path runs it per request): each header is
    /// handed to `sink` in the same order (the IETF ones as list members), per-request values
    /// taken from `scratch`, which formats a number only when it differs from the previous
    /// response's.
    #[inline(always)]
    pub fn render_each(&self, level: &Level, scratch: &mut Scratch, sink: &mut impl HeaderSink) {
        match self {
            HeaderStyle::Ietf { policy, item } => {
                sink.add_list_member(RATELIMIT_POLICY, policy);
                let value = scratch
                    .ratelimit
                    .ietf(item, level.remaining, level.reset_seconds);
                sink.add_list_member(RATELIMIT, value);
            }
            HeaderStyle::Draft03 { limit } => {
                sink.set(X_RATELIMIT_LIMIT, limit);
                sink.set(
                    X_RATELIMIT_REMAINING,
                    scratch.ratelimit.decimal(level.remaining),
                );
                sink.set(
                    X_RATELIMIT_RESET,
                    scratch.reset.decimal(level.draft03_reset()),
                );
            }
            HeaderStyle::None => {}
        }
    }

    /// The names `render` returns, in order (the same for every bucket level).
    pub fn names(&self) -> &'static [&'static str] {
        match self {
            HeaderStyle::Ietf { .. } => &[RATELIMIT_POLICY, RATELIMIT],
            HeaderStyle::Draft03 { .. } => {
                &[X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING, X_RATELIMIT_RESET]
            }
            HeaderStyle::None => &[],
        }
    }

    /// The values `render` returns, in `names` order, all at once (the local reply needs them
    /// together); entries past `names().len()` are empty. Per-request values come from the
    /// scratch memos, as in `render_each`.
    pub fn values<'a>(
        &'a self,
        level: &Level,
        ratelimit: &'a mut Memo,
        reset: &'a mut Memo,
    ) -> [&'a str; 3] {
        match self {
            HeaderStyle::Ietf { policy, item } => [
                policy,
                ratelimit.ietf(item, level.remaining, level.reset_seconds),
                "",
            ],
            HeaderStyle::Draft03 { limit } => [
                limit,
                ratelimit.decimal(level.remaining),
                reset.decimal(level.draft03_reset()),
            ],
            HeaderStyle::None => ["", "", ""],
        }
    }
}

/// The per-request header values of the response path, kept per VM between responses.
#[derive(Debug, Clone, Default)]
pub struct Scratch {
    /// `ratelimit` (IETF) or `x-ratelimit-remaining` (draft 03).
    pub ratelimit: Memo,
    /// `x-ratelimit-reset` (draft 03).
    pub reset: Memo,
    /// `retry-after`.
    pub retry_after: Memo,
}

/// A header value made of per-request numbers, kept from one response to the next and rebuilt
/// only when what it is made of changes: `r` and `t` mostly repeat between requests, so most
/// responses format no number at all.
#[derive(Debug, Clone, Default)]
pub struct Memo {
    /// The numbers `value` was rendered from (`t` only for an IETF value); `None` until the
    /// first render.
    numbers: Option<(u64, Option<u64>)>,
    /// The fixed text `value` was rendered with (the sf-string item, empty for a number).
    item: String,
    /// The rendered value.
    value: String,
}

impl Memo {
    /// The IETF `ratelimit` value `item;r=<remaining>;t=<reset>`.
    #[inline(always)]
    pub fn ietf(&mut self, item: &str, remaining: u64, reset: u64) -> &str {
        self.render(item, remaining, Some(reset))
    }

    /// `n` in decimal.
    pub fn decimal(&mut self, n: u64) -> &str {
        self.render("", n, None)
    }

    fn render(&mut self, item: &str, first: u64, reset: Option<u64>) -> &str {
        let numbers = Some((first, reset));
        if self.numbers != numbers || !same_bytes(self.item.as_bytes(), item.as_bytes()) {
            self.value.clear();
            match reset {
                Some(reset) => {
                    self.value.push_str(item);
                    self.value.push_str(";r=");
                    push_decimal(&mut self.value, first);
                    self.value.push_str(";t=");
                    push_decimal(&mut self.value, reset);
                }
                None => push_decimal(&mut self.value, first),
            }
            self.item.clear();
            self.item.push_str(item);
            self.numbers = numbers;
        }
        &self.value
    }
}

/// `a == b`, eight bytes at a time: slice equality calls the C library's `memcmp`, a byte
/// loop (~15 wasm instructions per byte), and the memo compares its item on every response.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..)
            .and_then(<[u8]>::first_chunk::<8>)
            .map(|w| u64::from_ne_bytes(*w))
    };
    let Some(last) = a.len().checked_sub(8) else {
        // Shorter than a word: bytewise.
        let mut i = 0;
        while let (Some(x), Some(y)) = (a.get(i), b.get(i)) {
            if x != y {
                return false;
            }
            i = i.saturating_add(1);
        }
        return true;
    };
    // Whole words, then the last word (overlapping the one before when the length is not a
    // multiple of 8).
    let mut at = 0;
    while at < last {
        if word(a, at) != word(b, at) {
            return false;
        }
        at = at.saturating_add(8);
    }
    word(a, last) == word(b, last)
}

/// `Retry-After` for a limited request: whole seconds until a token, at least 1 (and >= `t`).
pub fn retry_after(level: &Level) -> String {
    decimal(retry_after_seconds(level))
}

/// The number `retry_after` renders.
pub fn retry_after_seconds(level: &Level) -> u64 {
    level.reset_seconds.max(1)
}

/// `n` in decimal. Per request, so without `core::fmt` (several hundred wasm instructions per
/// integer at `opt-level = "z"`).
pub fn decimal(n: u64) -> String {
    let mut out = String::with_capacity(20);
    push_decimal(&mut out, n);
    out
}

/// Append `n` in decimal (same digits as `n.to_string()`).
pub fn push_decimal(out: &mut String, n: u64) {
    // u64::MAX has 20 digits; filled from the end, without iterator adapters (this runs per
    // request).
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n;
    while start > 0 {
        start = start.saturating_sub(1);
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' | u8::try_from(rest % 10).unwrap_or(0);
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    // One `push_str` rather than a `String::push` call per digit; the digits are ASCII, so
    // the check cannot fail.
    let digits = digits.get(start..).unwrap_or_default();
    out.push_str(core::str::from_utf8(digits).unwrap_or_default());
}

/// The policy identifier clients see: the HeaderRateLimit name, not its namespace.
pub fn policy_name(policy: &str) -> &str {
    policy.rsplit('/').next().unwrap_or(policy)
}

/// An RFC 8941 sf-string: printable ASCII with `\` and `"` escaped; anything else becomes `_`.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::limiter::NANOS_PER_TOKEN;

    fn render<'a>(style: &'a HeaderStyle, rate: &Rate, bucket: &Bucket) -> Vec<(&'a str, String)> {
        style
            .render(&Level::of(rate, bucket))
            .into_iter()
            .map(|(n, v)| (n, v.into_owned()))
            .collect()
    }

    fn after(rate: &Rate, takes: u32) -> Bucket {
        let mut bucket = Bucket::full(rate, 0);
        for _ in 0..takes {
            bucket = bucket.take(rate, 0).bucket;
        }
        bucket
    }

    #[test]
    fn an_allowed_request_gets_the_ietf_policy_and_its_remaining_tokens() {
        let rate = Rate::new(2, 2);
        let style = HeaderStyle::compile(Family::Ietf, "httpbin", &rate);
        assert_eq!(
            render(&style, &rate, &after(&rate, 1)),
            vec![
                ("ratelimit-policy", r#""httpbin";q=2;w=1"#.to_string()),
                ("ratelimit", r#""httpbin";r=1;t=1"#.to_string()),
            ]
        );
    }

    #[test]
    fn ietf_headers_for_a_limited_request_agree_with_retry_after() {
        let rate = Rate::new(1, 10);
        let style = HeaderStyle::compile(Family::Ietf, "slow", &rate);
        let empty = after(&rate, 10);
        assert!(!empty.take(&rate, 0).allowed);
        assert_eq!(
            render(&style, &rate, &empty),
            vec![
                ("ratelimit-policy", r#""slow";q=10;w=10"#.to_string()),
                ("ratelimit", r#""slow";r=0;t=1"#.to_string()),
            ]
        );
        assert_eq!(retry_after(&Level::of(&rate, &empty)), "1");
    }

    #[test]
    fn draft03_headers_count_down_and_show_a_reset_only_when_empty() {
        let rate = Rate::new(5, 3);
        let style = HeaderStyle::compile(Family::Draft03, "x", &rate);
        assert_eq!(
            render(&style, &rate, &after(&rate, 1)),
            vec![
                ("x-ratelimit-limit", "3".to_string()),
                ("x-ratelimit-remaining", "2".to_string()),
                ("x-ratelimit-reset", "0".to_string()),
            ]
        );
        let empty = after(&rate, 3);
        assert_eq!(
            render(&style, &rate, &empty),
            vec![
                ("x-ratelimit-limit", "3".to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", "1".to_string()),
            ]
        );
    }

    #[test]
    fn reset_is_zero_when_the_bucket_is_full() {
        let rate = Rate::new(1, 1);
        let style = HeaderStyle::compile(Family::Draft03, "x", &rate);
        let full = Bucket::full(&rate, 0);
        assert_eq!(
            render(&style, &rate, &full)[2],
            ("x-ratelimit-reset", "0".to_string())
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second_and_rounds_up() {
        let rate = Rate::new(1, 5);
        let nearly = Bucket {
            tokens: NANOS_PER_TOKEN - 1,
            updated_ns: 0,
        };
        assert_eq!(retry_after(&Level::of(&rate, &nearly)), "1");
        let slow = Rate::new(1, 1);
        let tenth = Bucket {
            tokens: NANOS_PER_TOKEN / 10,
            updated_ns: 0,
        };
        assert_eq!(retry_after(&Level::of(&slow, &tenth)), "1");
        assert_eq!(retry_after(&Level::of(&slow, &Bucket::full(&slow, 0))), "1");
    }

    #[test]
    fn values_fixed_by_the_configuration_are_borrowed_not_rebuilt_per_request() {
        let rate = Rate::new(2, 2);
        let ietf = HeaderStyle::compile(Family::Ietf, "n", &rate);
        let draft03 = HeaderStyle::compile(Family::Draft03, "n", &rate);
        let bucket = after(&rate, 1);
        assert!(matches!(
            ietf.render(&Level::of(&rate, &bucket))[0].1,
            Cow::Borrowed(_)
        ));
        let headers = draft03.render(&Level::of(&rate, &bucket));
        assert!(matches!(headers[0].1, Cow::Borrowed(_)));
        assert!(matches!(headers[2].1, Cow::Borrowed("0")));
    }

    #[test]
    fn decimal_writes_the_same_digits_as_to_string() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(decimal(n), n.to_string());
            let mut out = String::from("x=");
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x={n}"));
        }
    }

    #[test]
    fn a_memo_renders_like_render_and_is_rebuilt_whenever_an_input_changes() {
        let mut memo = Memo::default();
        assert_eq!(memo.ietf(r#""a""#, 1, 1), r#""a";r=1;t=1"#);
        assert_eq!(memo.ietf(r#""a""#, 1, 1), r#""a";r=1;t=1"#);
        assert_eq!(memo.ietf(r#""a""#, 0, 1), r#""a";r=0;t=1"#);
        assert_eq!(memo.ietf(r#""a""#, 0, 2), r#""a";r=0;t=2"#);
        assert_eq!(memo.ietf(r#""b""#, 0, 2), r#""b";r=0;t=2"#);
        assert_eq!(
            memo.ietf(r#""b""#, u64::MAX, u64::MAX),
            format!(r#""b";r={0};t={0}"#, u64::MAX)
        );
        // A number after an IETF value with the same first number, and back.
        assert_eq!(memo.decimal(u64::MAX), u64::MAX.to_string());
        assert_eq!(memo.decimal(0), "0");
        assert_eq!(memo.decimal(0), "0");
        assert_eq!(memo.ietf("", 0, 0), ";r=0;t=0");
        assert_eq!(memo.decimal(0), "0");
        assert_eq!(memo.decimal(10), "10");
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let text = b"\"httpbin\";r=1;t=1 and a little more to go past two words";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a));
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!same_bytes(a, &b), "len {len}, byte {at}");
            }
            assert!(!same_bytes(a, &text[..len + 1]));
        }
    }

    #[test]
    fn render_each_sets_what_render_returns_for_every_bucket_level() {
        let rate = Rate::new(1, 3);
        let styles = [
            HeaderStyle::compile(Family::Ietf, "one", &rate),
            HeaderStyle::compile(Family::Ietf, "two", &rate),
            HeaderStyle::compile(Family::Draft03, "x", &rate),
            HeaderStyle::compile(Family::None, "x", &rate),
        ];
        // One scratch for every style and level, in an order where values repeat and change.
        let mut scratch = Scratch::default();
        for takes in [0, 0, 1, 1, 3, 2, 3, 3, 0] {
            for style in styles.iter().chain(styles.iter().rev()) {
                let bucket = after(&rate, takes);
                let mut seen = Vec::new();
                style.render_each(
                    &Level::of(&rate, &bucket),
                    &mut scratch,
                    &mut |n: &str, v: &str| {
                        seen.push((n.to_string(), v.to_string()));
                    },
                );
                let expected: Vec<(String, String)> = render(style, &rate, &bucket)
                    .into_iter()
                    .map(|(n, v)| (n.to_string(), v))
                    .collect();
                assert_eq!(seen, expected, "{style:?} after {takes}");
            }
        }
    }

    #[test]
    fn names_and_values_are_what_render_returns() {
        let rate = Rate::new(1, 3);
        let mut scratch = Scratch::default();
        for family in [Family::Ietf, Family::Draft03, Family::None] {
            let style = HeaderStyle::compile(family, "n", &rate);
            for takes in [0, 1, 3, 2] {
                let bucket = after(&rate, takes);
                let names = style.names();
                let values = style.values(
                    &Level::of(&rate, &bucket),
                    &mut scratch.ratelimit,
                    &mut scratch.reset,
                );
                let pairs: Vec<(&str, String)> = names
                    .iter()
                    .zip(values)
                    .map(|(n, v)| (*n, v.to_string()))
                    .collect();
                assert_eq!(pairs, render(&style, &rate, &bucket));
                assert!(values[names.len()..].iter().all(|v| v.is_empty()));
            }
        }
    }

    #[test]
    fn none_renders_no_headers() {
        let rate = Rate::new(1, 1);
        let style = HeaderStyle::compile(Family::None, "x", &rate);
        assert!(render(&style, &rate, &after(&rate, 1)).is_empty());
    }

    #[test]
    fn policy_name_drops_the_namespace_and_is_escaped_as_an_sf_string() {
        assert_eq!(policy_name("default/httpbin"), "httpbin");
        assert_eq!(policy_name("plain"), "plain");
        assert_eq!(sf_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(sf_string("é\n"), r#""__""#);
    }
}
