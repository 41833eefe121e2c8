//! The filter's configuration for one HeaderRateLimit: each spec field checked under its CRD
//! path and translated to the `hrl-plugin-config` contract, the scope applied, then the
//! contract's own validation as a backstop with its field paths mapped back to the CRD.

use std::collections::BTreeMap;

use hrl_plugin_config::{
    DEFAULT_BODY, DEFAULT_MAX_KEYS, DEFAULT_STATUS_CODE, Header, Key, MAX_BODY_BYTES, MAX_BURST,
    MAX_HEADERS, MAX_MAX_KEYS, MAX_TOKENS, MAX_TOKENS_PER_SECOND, MIN_MAX_KEYS, PluginConfig,
    RateLimit, RateLimitHeaders, check_header_name, check_header_value,
};
use kube::ResourceExt;

use super::matching::matches;
use super::{InvalidSpec, Observed, Scoped, Settings, invalid, namespace, scoped};
use crate::crd::{
    HeaderRateLimit, HeaderRateLimitSpec, KeyType, MAX_HEADER_NAME_BYTES, RateLimitHeadersSpec,
    RateLimitSpec,
};
use crate::rate;

/// The filter configuration for `hrl` with default settings (no rate limit service: a Cluster
/// policy is refused) and nothing observed (a Workload policy gets the whole rate, as one
/// proxy of one); errors name the CRD field. What one proxy alone would run, for the
/// playground.
pub fn plugin_config(hrl: &HeaderRateLimit) -> Result<PluginConfig, InvalidSpec> {
    scoped_plugin_config(hrl, &Settings::default(), &Observed::default()).map(|(c, _)| c)
}

/// The filter configuration for `hrl` as `plan` writes it: the rate as its scope configures
/// each proxy, validated; errors name the CRD field.
pub fn scoped_plugin_config(
    hrl: &HeaderRateLimit,
    settings: &Settings,
    observed: &Observed,
) -> Result<(PluginConfig, Scoped), InvalidSpec> {
    let spec = &hrl.spec;
    let response_headers = headers("spec.headers", &spec.headers)?;
    let remove_response_headers = removed(spec)?;
    let mut scoped = Scoped::default();
    let rate_limit = match &spec.rate_limit {
        Some(limit_spec) => {
            let mut limit = rate_limit(limit_spec)?;
            scoped = scoped::apply(limit_spec, &mut limit, settings, observed)?;
            Some(limit)
        }
        None => None,
    };
    let config = PluginConfig {
        policy: format!("{}/{}", namespace(hrl), hrl.name_any()),
        response_headers,
        remove_response_headers,
        rate_limit,
        matches: spec.matches.as_ref().map(matches).transpose()?.flatten(),
    };
    // Backstop: the contract's own validation, its field path mapped back to the CRD.
    config
        .validate()
        .map_err(|e| invalid(crd_path(spec, &e.field), e.rule))?;
    Ok((config, scoped))
}

pub(super) fn header_name(field: &str, name: &str) -> Result<(), InvalidSpec> {
    check_header_name(name).map_err(|rule| invalid(field, rule))?;
    if name.len() > MAX_HEADER_NAME_BYTES {
        return Err(invalid(field, "must be at most 256 bytes"));
    }
    Ok(())
}

fn headers(field: &str, map: &BTreeMap<String, String>) -> Result<Vec<Header>, InvalidSpec> {
    if map.len() > MAX_HEADERS {
        return Err(invalid(
            field,
            format!("must have at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let item = format!("{field}[{name:?}]");
        header_name(&item, name)?;
        check_header_value(value).map_err(|rule| invalid(&item, rule))?;
        out.push(Header {
            name: name.clone(),
            value: value.clone(),
        });
    }
    Ok(out)
}

fn removed(spec: &HeaderRateLimitSpec) -> Result<Vec<String>, InvalidSpec> {
    if spec.remove_headers.len() > MAX_HEADERS {
        let rule = format!("must have at most {MAX_HEADERS} headers");
        return Err(invalid("spec.removeHeaders", rule));
    }
    for (i, name) in spec.remove_headers.iter().enumerate() {
        let field = format!("spec.removeHeaders[{i}]");
        header_name(&field, name)?;
        if spec.headers.contains_key(name) {
            let rule =
                format!("{name:?} is also in spec.headers: a header is either set or removed");
            return Err(invalid(field, rule));
        }
    }
    Ok(spec.remove_headers.clone())
}

/// The rate as tokens per period in seconds, checked; errors name the CRD field.
pub(super) fn tokens_per_period(spec: &RateLimitSpec) -> Result<(u32, u32), InvalidSpec> {
    let f = |name: &str| format!("spec.rateLimit.{name}");
    match (spec.tokens_per_second, spec.tokens, &spec.per) {
        (Some(tokens), None, None) => {
            in_range(&f("tokensPerSecond"), tokens, 1, MAX_TOKENS_PER_SECOND)?;
            Ok((tokens, 1))
        }
        (None, Some(tokens), Some(per)) => {
            in_range(&f("tokens"), tokens, 1, MAX_TOKENS)?;
            let period = rate::parse_period(per).map_err(|rule| invalid(f("per"), rule))?;
            if u64::from(tokens) > u64::from(MAX_TOKENS_PER_SECOND) * u64::from(period) {
                let rule =
                    format!("tokens per per must be at most {MAX_TOKENS_PER_SECOND} per second");
                return Err(invalid(f("tokens"), rule));
            }
            Ok((tokens, period))
        }
        (None, Some(_), None) | (None, None, Some(_)) => {
            Err(invalid(f("tokens"), "tokens and per go together"))
        }
        _ => Err(invalid(
            f("tokensPerSecond"),
            "set either tokensPerSecond, or tokens and per",
        )),
    }
}

fn rate_limit(spec: &RateLimitSpec) -> Result<RateLimit, InvalidSpec> {
    let f = |name: &str| format!("spec.rateLimit.{name}");
    let (tokens, period_seconds) = tokens_per_period(spec)?;
    let burst = spec.burst.unwrap_or(tokens);
    in_range(&f("burst"), burst, 1, MAX_BURST)?;
    let max_keys = spec.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
    in_range(&f("maxKeys"), max_keys, MIN_MAX_KEYS, MAX_MAX_KEYS)?;
    let status_code = spec.status_code.unwrap_or(DEFAULT_STATUS_CODE);
    if !(400..=599).contains(&status_code) {
        return Err(invalid(f("statusCode"), "must be between 400 and 599"));
    }
    let body = spec.body.clone().unwrap_or_else(|| DEFAULT_BODY.into());
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid(
            f("body"),
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let key = match &spec.key {
        None => Key::None,
        Some(key) => match (key.type_, &key.header) {
            (KeyType::Header, Some(name)) => {
                header_name(&f("key.header"), name)?;
                Key::Header(name.clone())
            }
            (KeyType::Header, None) => {
                return Err(invalid(f("key.header"), "is required when type is Header"));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    f("key.header"),
                    "must not be set unless type is Header",
                ));
            }
            (KeyType::None, None) => Key::None,
            (KeyType::ClientAddress, None) => Key::ClientAddress,
        },
    };
    Ok(RateLimit {
        tokens,
        period_seconds,
        burst,
        key,
        max_keys,
        status_code,
        body,
        headers: headers(&f("responseHeaders"), &spec.response_headers)?,
        rate_limit_headers: match spec.rate_limit_headers {
            None | Some(RateLimitHeadersSpec::Ietf) => RateLimitHeaders::Ietf,
            Some(RateLimitHeadersSpec::Draft03) => RateLimitHeaders::Draft03,
            Some(RateLimitHeadersSpec::None) => RateLimitHeaders::None,
        },
        enforce: spec.enforce.unwrap_or(true),
        service: None,
    })
}

fn in_range(field: &str, value: u32, min: u32, max: u32) -> Result<(), InvalidSpec> {
    if value < min {
        return Err(invalid(field, format!("must be at least {min}")));
    }
    if value > max {
        return Err(invalid(field, format!("must be at most {max}")));
    }
    Ok(())
}

/// Maps a pluginConfig field path (`responseHeaders[2].name`) to the CRD field it came from.
fn crd_path(spec: &HeaderRateLimitSpec, field: &str) -> String {
    let indexed = |prefix: &str, map: &BTreeMap<String, String>, crd: &str| -> Option<String> {
        let rest = field.strip_prefix(prefix)?.strip_prefix('[')?;
        let (index, _) = rest.split_once(']')?;
        let name = map.keys().nth(index.parse().ok()?)?;
        Some(format!("{crd}[{name:?}]"))
    };
    let empty = BTreeMap::new();
    let limit_headers = spec
        .rate_limit
        .as_ref()
        .map_or(&empty, |r| &r.response_headers);
    if let Some(path) = indexed("responseHeaders", &spec.headers, "spec.headers") {
        return path;
    }
    if let Some(path) = indexed(
        "rateLimit.headers",
        limit_headers,
        "spec.rateLimit.responseHeaders",
    ) {
        return path;
    }
    if let Some(rest) = field.strip_prefix("removeResponseHeaders") {
        return format!("spec.removeHeaders{rest}");
    }
    // No arm for the rate fields (`tokensPerSecond`, `tokens`, `periodSeconds`): they are the
    // wire form's names, and `tokens_per_period` has checked the rate under the CRD's names.
    // Written from the operator's --rls-* settings, which are checked at startup.
    if field.starts_with("rateLimit.service") {
        return format!("spec.rateLimit.scope ({field}, from the operator's --rls-* settings)");
    }
    if let Some(rest) = field.strip_prefix("match.") {
        return format!("spec.match.{rest}");
    }
    if let Some(rest) = field.strip_prefix("rateLimit.") {
        return format!("spec.rateLimit.{rest}");
    }
    if field == "policy" {
        return "metadata".into();
    }
    format!("spec ({field})")
}
