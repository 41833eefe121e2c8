//! The validation rules of a pluginConfig, one function each so the operator can apply the
//! same rules under its own field paths.

use crate::{
    Header, Invalid, Key, MAX_TOKENS, MAX_WIRE_PERIOD_SECONDS, MIN_PERIOD_SECONDS, PluginConfig,
    RateLimit,
};

/// Most headers in any one list (`responseHeaders`, `removeResponseHeaders`, `rateLimit.headers`).
pub const MAX_HEADERS: usize = 64;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Longest limited-response body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest `policy` (`namespace/name`): a 63-byte namespace, `/`, a 253-byte name.
pub const MAX_POLICY_BYTES: usize = 63 + 1 + 253;
/// Fewest keyed buckets a policy may keep.
pub const MIN_MAX_KEYS: u32 = 1;
/// Most keyed buckets a policy may keep per proxy (bounds shared-data memory).
pub const MAX_MAX_KEYS: u32 = 1_000_000;
/// Highest refill rate, in tokens per second (`tokens / periodSeconds` for the general form).
pub const MAX_TOKENS_PER_SECOND: u32 = 1_000_000;
/// Largest bucket capacity.
pub const MAX_BURST: u32 = 10_000_000;

/// Headers the filter writes itself for rate-limited policies; configuring them would conflict.
const RESERVED: &[&str] = &[
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// Connection-specific, framing or routing headers a filter must not set or remove.
const FORBIDDEN: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Checks that `name` is a header a filter may set or remove; `Err` is the broken rule.
pub fn check_header_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.starts_with(':') {
        return Err("must not be a pseudo-header (names starting with ':')");
    }
    if !name.bytes().all(is_lowercase_tchar) {
        return Err("must be a lowercase RFC 9110 token (a-z, 0-9 and !#$%&'*+-.^_`|~)");
    }
    if FORBIDDEN.contains(&name) {
        return Err("must not be a framing or hop-by-hop header");
    }
    Ok(())
}

/// Checks that `value` is a header value a proxy can send; `Err` is the broken rule.
pub fn check_header_value(value: &str) -> Result<(), &'static str> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err("must be at most 4096 bytes");
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("must not contain CR, LF, NUL or other control characters");
    }
    Ok(())
}

/// Checks that `policy` is `namespace/name` with Kubernetes name characters.
pub fn check_policy(policy: &str) -> Result<(), &'static str> {
    let rule = "must be namespace/name of the HeaderRateLimit (lowercase a-z, 0-9, '-' and '.')";
    let Some((namespace, name)) = policy.split_once('/') else {
        return Err(rule);
    };
    let part_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if policy.len() > MAX_POLICY_BYTES || !part_ok(namespace) || !part_ok(name) {
        return Err(rule);
    }
    Ok(())
}

fn is_lowercase_tchar(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn validate(config: &PluginConfig) -> Result<(), Invalid> {
    check_policy(&config.policy).map_err(|rule| Invalid::new("policy", rule))?;
    check_headers("responseHeaders", &config.response_headers)?;
    check_removed(config)?;
    if let Some(rate_limit) = &config.rate_limit {
        check_rate_limit(rate_limit)?;
    }
    if let Some(matches) = &config.matches {
        crate::matching::check_match(matches)?;
    }
    Ok(())
}

fn check_headers(field: &str, headers: &[Header]) -> Result<(), Invalid> {
    if headers.len() > MAX_HEADERS {
        return Err(Invalid::new(field, "must have at most 64 headers"));
    }
    for (i, header) in headers.iter().enumerate() {
        let name_field = || format!("{field}[{i}].name");
        check_header_name(&header.name).map_err(|rule| Invalid::new(name_field(), rule))?;
        if RESERVED.contains(&header.name.as_str()) {
            return Err(Invalid::new(
                name_field(),
                "must not be a header the filter sets itself (retry-after, ratelimit*, x-ratelimit-*)",
            ));
        }
        if headers.iter().take(i).any(|h| h.name == header.name) {
            return Err(Invalid::new(
                name_field(),
                format!("duplicate header name '{}'", header.name),
            ));
        }
        check_header_value(&header.value)
            .map_err(|rule| Invalid::new(format!("{field}[{i}].value"), rule))?;
    }
    Ok(())
}

fn check_removed(config: &PluginConfig) -> Result<(), Invalid> {
    let field = "removeResponseHeaders";
    let names = &config.remove_response_headers;
    if names.len() > MAX_HEADERS {
        return Err(Invalid::new(field, "must have at most 64 headers"));
    }
    for (i, name) in names.iter().enumerate() {
        let item = || format!("{field}[{i}]");
        check_header_name(name).map_err(|rule| Invalid::new(item(), rule))?;
        if names.iter().take(i).any(|n| n == name) {
            return Err(Invalid::new(
                item(),
                format!("duplicate header name '{name}'"),
            ));
        }
        if config.response_headers.iter().any(|h| &h.name == name) {
            return Err(Invalid::new(
                item(),
                format!("'{name}' is also in responseHeaders: a header is either set or removed"),
            ));
        }
    }
    Ok(())
}

fn check_rate_limit(limit: &RateLimit) -> Result<(), Invalid> {
    check_rate(limit.tokens, limit.period_seconds)?;
    in_range("rateLimit.burst", limit.burst, 1, MAX_BURST)?;
    in_range(
        "rateLimit.maxKeys",
        limit.max_keys,
        MIN_MAX_KEYS,
        MAX_MAX_KEYS,
    )?;
    if !(400..=599).contains(&limit.status_code) {
        return Err(Invalid::new(
            "rateLimit.statusCode",
            "must be between 400 and 599",
        ));
    }
    if limit.body.len() > MAX_BODY_BYTES {
        return Err(Invalid::new(
            "rateLimit.body",
            "must be at most 16384 bytes",
        ));
    }
    if let Key::Header(name) = &limit.key {
        check_header_name(name).map_err(|rule| Invalid::new("rateLimit.key.header", rule))?;
    }
    if let Some(service) = &limit.service {
        crate::service::check_service(service, limit.period_seconds)?;
    }
    check_headers("rateLimit.headers", &limit.headers)
}

/// The rate rules, under the field names of the wire form the rate is written in.
fn check_rate(tokens: u32, period_seconds: u32) -> Result<(), Invalid> {
    if period_seconds == 1 {
        return in_range(
            "rateLimit.tokensPerSecond",
            tokens,
            1,
            MAX_TOKENS_PER_SECOND,
        );
    }
    in_range(
        "rateLimit.periodSeconds",
        period_seconds,
        MIN_PERIOD_SECONDS,
        MAX_WIRE_PERIOD_SECONDS,
    )?;
    in_range("rateLimit.tokens", tokens, 1, MAX_TOKENS)?;
    if u64::from(tokens) > u64::from(MAX_TOKENS_PER_SECOND) * u64::from(period_seconds) {
        return Err(Invalid::new(
            "rateLimit.tokens",
            "must be at most 1000000 per second (tokens / periodSeconds)",
        ));
    }
    Ok(())
}

fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), Invalid> {
    if value < min {
        return Err(Invalid::new(field, format!("must be at least {min}")));
    }
    if value > max {
        return Err(Invalid::new(field, format!("must be at most {max}")));
    }
    Ok(())
}
