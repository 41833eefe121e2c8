//! Operator settings the tests share. Part of `support`, and included on its own by the tests
//! without a mocked API server (istio_schema.rs, render.rs).

#![allow(dead_code)] // each test binary uses a part

use hrl_operator::plan::{RlsSettings, Settings};

/// The default settings plus a rate limit service, which `scope: Cluster` policies need:
/// `ratelimit.hrl-system.svc.cluster.local:8081`, domain `hrl`, timeout 100ms.
pub fn with_rate_limit_service() -> Settings {
    let rls = RlsSettings::new(
        "ratelimit.hrl-system.svc.cluster.local:8081",
        "hrl",
        "100ms",
    );
    Settings {
        rls: Some(rls.expect("a valid rate limit service")),
        ..Settings::default()
    }
}
