//! `spec.rateLimit.scope`: a proxy's share of a Workload rate, or the rate limit service that
//! counts a Cluster one. The whole rate comes in (already checked), the rate one proxy is
//! configured with goes out, with what status reports about it.

use hrl_plugin_config::{FailureMode, RateLimit, RateLimitService, SERVICE_PERIODS};

use super::{InvalidSpec, Observed, Settings, invalid};
use crate::conditions::reason;
use crate::crd::{
    CLUSTER_BURST_MESSAGE, CLUSTER_PERIOD_MESSAGE, FAILURE_MODE_MESSAGE, FailureModeSpec,
    RateLimitSpec, Scope,
};
use crate::{rate, scope};

/// What a scope did to the rate, for status and conditions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scoped {
    /// Workload: the serving pods counted (none until counted).
    pub replicas: Option<u32>,
    /// Workload: one proxy's share as a person reads it (`100/3s`).
    pub share: Option<String>,
    /// Cluster: the rate limit service that keeps the count (`HOST:PORT (domain D)`).
    pub service: Option<String>,
}

/// Rewrites `limit` (the whole rate of `spec`) into what each proxy is configured with.
pub(super) fn apply(
    spec: &RateLimitSpec,
    limit: &mut RateLimit,
    settings: &Settings,
    observed: &Observed,
) -> Result<Scoped, InvalidSpec> {
    let f = |name: &str| format!("spec.rateLimit.{name}");
    let scope = spec.scope.unwrap_or_default();
    if spec.failure_mode.is_some() && scope != Scope::Cluster {
        return Err(invalid(f("failureMode"), FAILURE_MODE_MESSAGE));
    }
    match scope {
        Scope::Proxy => Ok(Scoped::default()),
        Scope::Workload => {
            // Not counted yet: as one proxy of one (the controller counts before it applies).
            let share = scope::split(
                limit.tokens,
                limit.period_seconds,
                limit.burst,
                observed.replicas.unwrap_or(1),
            );
            limit.tokens = share.tokens;
            limit.period_seconds = share.period_seconds;
            limit.burst = share.burst;
            Ok(Scoped {
                replicas: observed.replicas,
                share: Some(rate::display(share.tokens, share.period_seconds)),
                service: None,
            })
        }
        Scope::Cluster => {
            if spec.burst.is_some() {
                return Err(invalid(f("burst"), CLUSTER_BURST_MESSAGE));
            }
            if !SERVICE_PERIODS.contains(&limit.period_seconds) {
                return Err(invalid(f("per"), CLUSTER_PERIOD_MESSAGE));
            }
            let Some(rls) = &settings.rls else {
                return Err(InvalidSpec {
                    field: f("scope"),
                    rule: "Cluster needs the installation's rate limit service, and none is \
                           configured: set chart value rateLimitService.address (or \
                           rateLimitService.bundled.enabled=true), operator flag \
                           --rls-service HOST:PORT"
                        .into(),
                    reason: reason::RATE_LIMIT_SERVICE_NOT_CONFIGURED,
                });
            };
            limit.service = Some(RateLimitService {
                cluster: rls.cluster(),
                authority: rls.authority().to_string(),
                domain: rls.domain.clone(),
                timeout_ms: rls.timeout_ms,
                failure_mode: match spec.failure_mode.unwrap_or_default() {
                    FailureModeSpec::Allow => FailureMode::Allow,
                    FailureModeSpec::Deny => FailureMode::Deny,
                },
            });
            Ok(Scoped {
                service: Some(rls.describe()),
                ..Scoped::default()
            })
        }
    }
}
