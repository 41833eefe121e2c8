//! PURE: the installation's rate limit service (Envoy RLS v3) that `scope: Cluster` policies
//! use: its address, domain and timeout as the operator's flags give them, checked once at
//! startup, and the names the filter calls it by.
//!
//! The address comes from the installation (chart value -> flag -> pluginConfig), never from a
//! HeaderRateLimit: users who can write a policy cannot point proxies at a host of their choice.

use hrl_plugin_config::{DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, MAX_UPSTREAM_BYTES};

/// Default RLS domain (chart value `rateLimitService.domain`).
pub const DEFAULT_DOMAIN: &str = "hrl";
/// Default time a request waits for the service (chart value `rateLimitService.timeout`).
pub const DEFAULT_TIMEOUT: &str = "100ms";
const _: () = assert!(
    DEFAULT_TIMEOUT_MS == 100,
    "DEFAULT_TIMEOUT is the contract's default"
);

/// The rate limit service of the installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsSettings {
    /// Fully qualified host name of its Kubernetes Service
    /// (`ratelimit.hrl-system.svc.cluster.local`).
    pub host: String,
    /// Its gRPC port (the Service port).
    pub port: u16,
    /// The RLS domain the limits live in.
    pub domain: String,
    /// How long a request waits for the answer, in milliseconds (1..=10000).
    pub timeout_ms: u32,
}

impl RlsSettings {
    /// Checks the flags' values: `address` is `FQDN:PORT` of a Service in the mesh, `timeout`
    /// a duration such as `100ms` or `1s`. Err names the flag and the rule.
    pub fn new(address: &str, domain: &str, timeout: &str) -> Result<Self, String> {
        let (host, port) = parse_address(address)?;
        if domain.is_empty()
            || domain.len() > hrl_plugin_config::MAX_SERVICE_NAME_BYTES
            || !domain.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "--rls-domain {domain:?}: must be 1 to 512 visible ASCII characters"
            ));
        }
        let settings = Self {
            host,
            port,
            domain: domain.to_string(),
            timeout_ms: parse_timeout(timeout)?,
        };
        let upstream = settings.cluster().len() + settings.authority().len();
        if upstream > MAX_UPSTREAM_BYTES {
            return Err(format!(
                "--rls-service {address}: the proxy's cluster name ({}) and the authority \
                 ({}) take {upstream} bytes together, more than the {MAX_UPSTREAM_BYTES} the \
                 filter accepts: use a shorter Service or namespace name",
                settings.cluster(),
                settings.authority()
            ));
        }
        Ok(settings)
    }

    /// The proxy's cluster for the service, as Istio names outbound clusters:
    /// `outbound|PORT||FQDN` (istio `pilot/pkg/model/service.go`, `BuildSubsetKey` with
    /// direction `outbound` and no subset).
    pub fn cluster(&self) -> String {
        format!("outbound|{}||{}", self.port, self.host)
    }

    /// `:authority` of the calls: the Service's host name. The receiving sidecar's inbound
    /// route has one virtual host whose domains are `*` (istio
    /// `pilot/pkg/networking/core/httproute.go` `buildSidecarInboundHTTPRouteConfig`, domains
    /// from `buildRouteVHostDomains`), so the host name is accepted.
    pub fn authority(&self) -> &str {
        &self.host
    }

    /// The service as the Programmed condition names it: `HOST:PORT (domain D)`.
    pub fn describe(&self) -> String {
        format!("{}:{} (domain {})", self.host, self.port, self.domain)
    }
}

/// `FQDN:PORT`. The host must be fully qualified (`name.namespace.svc.cluster.local`): Istio
/// names the outbound cluster by the Service's FQDN, and a short name would not match one.
pub fn parse_address(address: &str) -> Result<(String, u16), String> {
    let rule = |why: &str| format!("--rls-service {address:?}: {why}");
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(rule(
            "must be HOST:PORT, e.g. ratelimit.hrl-system.svc.cluster.local:8081",
        ));
    };
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => return Err(rule("the port must be a number from 1 to 65535")),
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(rule("the host must be a DNS name"));
    }
    if host.split('.').count() < 3 {
        return Err(rule(
            "the host must be the Service's fully qualified name, \
             e.g. ratelimit.hrl-system.svc.cluster.local (Istio names its cluster by it)",
        ));
    }
    Ok((host, port))
}

/// A timeout such as `100ms` or `1s` (whole milliseconds or seconds), from 1ms to 10s.
pub fn parse_timeout(text: &str) -> Result<u32, String> {
    let rule = || {
        format!("--rls-timeout {text:?}: must be a duration from 1ms to 10s, such as 100ms or 1s")
    };
    let (number, unit) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1),
        None => (text.strip_suffix('s').ok_or_else(rule)?, 1000),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(rule());
    }
    let millis = number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(rule)?;
    if (1..=MAX_TIMEOUT_MS).contains(&millis) {
        Ok(millis)
    } else {
        Err(rule())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_a_fully_qualified_host_and_a_port() {
        assert_eq!(
            parse_address("ratelimit.hrl-system.svc.cluster.local:8081"),
            Ok(("ratelimit.hrl-system.svc.cluster.local".to_string(), 8081))
        );
        assert_eq!(
            parse_address("RateLimit.Ops.svc.cluster.local.:81"),
            Ok(("ratelimit.ops.svc.cluster.local".to_string(), 81))
        );
        for bad in [
            "ratelimit:8081",
            "ratelimit.ops:8081",
            "ratelimit.ops.svc.cluster.local",
            "ratelimit.ops.svc.cluster.local:0",
            "ratelimit.ops.svc.cluster.local:70000",
            "rate_limit.ops.svc.cluster.local:8081",
            "-r.ops.svc.cluster.local:8081",
            "r..svc.cluster.local:8081",
            ":8081",
        ] {
            let error = parse_address(bad).expect_err(bad);
            assert!(error.starts_with("--rls-service"), "{error}");
        }
    }

    #[test]
    fn timeouts_are_whole_milliseconds_or_seconds_from_1ms_to_10s() {
        for (text, ms) in [
            ("100ms", 100),
            ("1s", 1000),
            ("1500ms", 1500),
            ("10s", 10_000),
        ] {
            assert_eq!(parse_timeout(text), Ok(ms), "{text}");
        }
        for bad in [
            "0ms", "10001ms", "11s", "100", "1m", "1.5s", "ms", "-1ms", "+1s",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout(DEFAULT_TIMEOUT), Ok(DEFAULT_TIMEOUT_MS));
    }

    #[test]
    fn the_cluster_is_istios_outbound_name_and_the_authority_the_host() {
        let rls = RlsSettings::new(
            "ratelimit.hrl-system.svc.cluster.local:8081",
            "hrl",
            "100ms",
        );
        let rls = rls.expect("valid");
        assert_eq!(
            rls.cluster(),
            "outbound|8081||ratelimit.hrl-system.svc.cluster.local"
        );
        assert_eq!(rls.authority(), "ratelimit.hrl-system.svc.cluster.local");
        assert_eq!(
            rls.describe(),
            "ratelimit.hrl-system.svc.cluster.local:8081 (domain hrl)"
        );
    }

    #[test]
    fn a_host_too_long_for_the_filter_and_a_bad_domain_are_refused_at_startup() {
        let long = format!("{}.hrl-system.svc.cluster.local:8081", "r".repeat(40));
        let error = RlsSettings::new(&long, "hrl", "100ms").expect_err("too long");
        assert!(error.contains("more than the 120"), "{error}");
        let error = RlsSettings::new("r.ops.svc.cluster.local:1", "h r l", "100ms")
            .expect_err("bad domain");
        assert!(error.starts_with("--rls-domain"), "{error}");
    }
}
