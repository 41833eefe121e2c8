//! Leader election on one `coordination.k8s.io/v1` Lease, so two replicas never both write.
//!
//! A small module of our own (get, create, update with optimistic concurrency) rather than a
//! crate: the RBAC in `rbac::API_CALLS` must be exactly what the binary does, and this is
//! the whole algorithm. Like client-go, expiry is judged by the local monotonic clock from
//! the moment this replica last saw the Lease change, so clock skew between nodes does not
//! matter. Every attempt has a time limit (kube's client has no read timeout), and the
//! leader stops at the renew deadline even when the API server never answers.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

mod lead;
pub use lead::{Shutdown, lead, stopped};

/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews (and a follower retries).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A leader that could not renew for this long stops writing (before the lease expires).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Longest one attempt (read, then create or update) may take; a leader's attempt is also cut
/// at the renew deadline.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// Wait before the next attempt after a failed one (client-go's retry period).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Why an attempt on the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed the request.
    #[error("Lease request failed: {0}")]
    Api(#[from] kube::Error),
    /// No answer within the attempt's time limit.
    #[error("no answer from the API server within {0:?}")]
    Timeout(Duration),
}

/// The Lease holder identity of this process, like client-go's: the pod name (else the host
/// name), `_`, and a random UUID, so two processes with the same name (on one host, or
/// `hostNetwork` pods on one node) never both take themselves for the holder.
pub fn identity(pod_name: Option<&str>, host_name: Option<&str>) -> String {
    format!("{}_{}", base_name(pod_name, host_name), random_uuid())
}

/// The pod name, else the host name, else `hrl-operator` (also the events' reporting instance).
pub fn base_name(pod_name: Option<&str>, host_name: Option<&str>) -> String {
    [pod_name, host_name]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("hrl-operator")
        .to_string()
}

/// A random (version 4) UUID. std's `RandomState` is keyed from the operating system's random
/// source; two of its hashes give the 128 bits without another dependency.
fn random_uuid() -> String {
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        hasher.finish()
    };
    let bits = (u128::from(half()) << 64) | u128::from(half());
    // Version 4 and the RFC 9562 variant, as a UUID parser expects.
    let bits = (bits & !(0xf_u128 << 76) & !(0x3_u128 << 62)) | (0x4_u128 << 76) | (0x2_u128 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// What to do with the Lease as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: write a new renewTime.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Someone else holds a live lease.
    Follow,
}

/// PURE: decides from the Lease spec, our identity, and whether it expired by our clock.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, expired: bool) -> Decision {
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or("");
    if holder == identity {
        Decision::Renew
    } else if holder.is_empty() || expired {
        Decision::Acquire
    } else {
        Decision::Follow
    }
}

/// One replica's view of the Lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// resourceVersion last seen, and when (local clock) it was first seen.
    observed: Option<(String, Instant)>,
}

impl LeaderElector {
    /// An elector for Lease `name` in the namespace of `api`.
    pub fn new(api: Api<Lease>, name: String, identity: String) -> Self {
        LeaderElector {
            api,
            name,
            identity,
            observed: None,
        }
    }

    /// Our identity (the Lease holder while we lead).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Tries to become or stay leader within [`ATTEMPT_TIMEOUT`]; `Ok(true)` while we hold
    /// the Lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, Error> {
        self.try_within(ATTEMPT_TIMEOUT).await
    }

    /// [`Self::try_acquire_or_renew`] with its own time limit.
    pub async fn try_within(&mut self, limit: Duration) -> Result<bool, Error> {
        within(limit, self.acquire_or_renew()).await
    }

    async fn acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => return self.create().await,
        };
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let now = Instant::now();
        let seen_at = match &self.observed {
            Some((v, at)) if *v == version => *at,
            _ => now,
        };
        self.observed = Some((version, seen_at));
        let spec = current.spec.as_ref();
        let duration = spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(LEASE_DURATION, Duration::from_secs);
        let expired = now.duration_since(seen_at) > duration;
        let decision = decide(spec, &self.identity, expired);
        if decision == Decision::Follow {
            return Ok(false);
        }
        let mut lease = current;
        let mut spec = lease.spec.take().unwrap_or_default();
        let stamp = MicroTime(Timestamp::now());
        if decision == Decision::Acquire {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(stamp.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.lease_duration_seconds = Some(duration_seconds());
        spec.renew_time = Some(stamp);
        lease.spec = Some(spec);
        // `replace` carries the resourceVersion we read: a concurrent writer makes it fail
        // with 409 instead of both replicas believing they lead.
        let written = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
        won(written)
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let stamp = MicroTime(Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(duration_seconds()),
                acquire_time: Some(stamp.clone()),
                renew_time: Some(stamp),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        won(self.api.create(&PostParams::default(), &lease).await)
    }

    /// Gives the Lease up on shutdown so another replica takes over at once, not after expiry.
    pub async fn release(&mut self) -> Result<(), Error> {
        within(ATTEMPT_TIMEOUT, self.release_now()).await
    }

    async fn release_now(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

/// Whether a write of the Lease made us its holder: a 409 Conflict means another replica wrote
/// first, which is an answer, not an error.
fn won(written: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match written {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// `call`'s result, or [`Error::Timeout`] once `limit` has passed without one: kube's client
/// has no read timeout of its own.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(Error::Api),
        Err(_) => Err(Error::Timeout(limit)),
    }
}

fn duration_seconds() -> i32 {
    i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_or_empty_lease_is_acquired() {
        assert_eq!(decide(None, "a", false), Decision::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", false),
            Decision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(decide(Some(&held_by("a")), "a", true), Decision::Renew);
    }

    #[test]
    fn a_live_lease_of_another_replica_is_followed() {
        assert_eq!(decide(Some(&held_by("b")), "a", false), Decision::Follow);
    }

    #[test]
    fn an_expired_lease_of_another_replica_is_taken_over() {
        assert_eq!(decide(Some(&held_by("b")), "a", true), Decision::Acquire);
    }

    #[test]
    fn the_identity_is_the_pod_or_host_name_and_a_random_uuid_per_process() {
        let a = identity(None, Some("node-1\n"));
        let b = identity(None, Some("node-1"));
        assert_ne!(a, b);
        for id in [&a, &b] {
            let (name, uuid) = id.split_once('_').expect("name_uuid");
            assert_eq!(name, "node-1");
            let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
            assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
            assert!(
                matches!(&uuid[19..20], "8" | "9" | "a" | "b"),
                "variant: {uuid}"
            );
        }
        assert!(identity(Some("pod-a"), Some("node-1")).starts_with("pod-a_"));
        assert!(identity(Some(" "), None).starts_with("hrl-operator_"));
    }
}
