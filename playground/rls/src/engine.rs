//! Counting in Limitador's storage: one counter per domain, descriptor entries and window.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use limitador::counter::Counter;
use limitador::limit::{Context, Expression};
use limitador::storage::in_memory::InMemoryStorage;
use limitador::storage::redis::AsyncRedisStorage;
use limitador::storage::{AsyncCounterStorage, Authorization, CounterStorage, StorageErr};
use tokio::sync::Mutex;

use crate::Error;
use crate::request::{Check, Count, Descriptor, Limit, descriptor_status, response};

/// Counters the in-memory storage keeps (Limitador's cache size).
const MEMORY_COUNTERS: u64 = 100_000;
/// How long a count may take by default before the answer is UNAVAILABLE.
pub const STORAGE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where counters live.
pub enum Storage {
    /// Redis through Limitador's `AsyncRedisStorage` (shared by every server on that Redis).
    Redis(AsyncRedisStorage),
    /// This process' memory (Limitador's `InMemoryStorage`).
    Memory(InMemoryStorage),
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Redis(_) => "Storage::Redis",
            Self::Memory(_) => "Storage::Memory",
        })
    }
}

impl Storage {
    /// Connects to Redis (`redis://host:port`) and loads Limitador's scripts.
    pub async fn redis(url: &str) -> Result<Self, Error> {
        AsyncRedisStorage::new(url)
            .await
            .map(Self::Redis)
            .map_err(|error| Error::ConnectRedis {
                url: url.to_owned(),
                message: error.to_string(),
            })
    }

    /// Counters in this process only.
    pub fn memory() -> Self {
        Self::Memory(InMemoryStorage::new(MEMORY_COUNTERS))
    }

    async fn check_and_update(
        &self,
        counters: &mut Vec<Counter>,
        hits: u64,
    ) -> Result<Authorization, StorageErr> {
        match self {
            Self::Redis(redis) => redis.check_and_update(counters, hits).await,
            Self::Memory(memory) => memory.check_and_update(counters, hits),
        }
    }
}

/// The rate limit engine: configured domains and a storage.
#[derive(Debug)]
pub struct Engine {
    storage: Storage,
    domains: Vec<String>,
    // Without it a call waits out the Redis client's reconnection backoff (about 13 s).
    timeout: Duration,
    // Limitador's Redis storage reads, then increments in a second round trip: two requests
    // for one counter at once could both pass. One count at a time per counter makes this
    // process exact; several processes on one Redis can still over-admit (README). Striped:
    // counters that share a lock wait for each other, others count at once.
    counting: [Mutex<()>; COUNTING_LOCKS],
}

/// Locks the counters are spread over.
const COUNTING_LOCKS: usize = 64;

impl Engine {
    /// An engine limiting the `domains` (others answer OK without counting).
    pub fn new(storage: Storage, domains: Vec<String>) -> Self {
        Self {
            storage,
            domains,
            timeout: STORAGE_TIMEOUT,
            counting: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    /// Gives up on a count after `timeout` (default [`STORAGE_TIMEOUT`]): UNAVAILABLE.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Answers one `ShouldRateLimit` request at the current time.
    pub async fn should_rate_limit(
        &self,
        request: RateLimitRequest,
    ) -> Result<RateLimitResponse, Error> {
        let check = Check::parse(request, &self.domains)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut statuses = Vec::with_capacity(check.descriptors.len());
        for (index, descriptor) in check.descriptors.iter().enumerate() {
            let count = match &descriptor.limit {
                None => Count::Unlimited,
                Some(limit) => {
                    self.count(&check.domain, index, descriptor, limit, now)
                        .await?
                }
            };
            statuses.push(descriptor_status(descriptor.limit.as_ref(), count, now));
        }
        Ok(response(statuses))
    }

    /// The lock of a descriptor's counters (every window of them: the window is left out).
    fn lock_of(&self, domain: &str, descriptor: &Descriptor) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (domain, &descriptor.entries).hash(&mut hasher);
        // The remainder is below the array's length.
        let stripe = (hasher.finish() % self.counting.len() as u64) as usize;
        &self.counting[stripe]
    }

    /// Counts one descriptor on its own, as envoyproxy/ratelimit does (one over-limit
    /// descriptor does not stop another from counting).
    async fn count(
        &self,
        domain: &str,
        index: usize,
        descriptor: &Descriptor,
        limit: &Limit,
        now: u64,
    ) -> Result<Count, Error> {
        let mut counters = vec![counter(domain, index, descriptor, limit, now)?];
        let authorization = {
            let _one_at_a_time = self.lock_of(domain, descriptor).lock().await;
            tokio::time::timeout(
                self.timeout,
                self.storage
                    .check_and_update(&mut counters, descriptor.hits),
            )
            .await
            .map_err(|_| Error::Count {
                transient: true,
                message: format!("no answer within {:?}", self.timeout),
            })?
            .map_err(|error| Error::Count {
                transient: error.is_transient(),
                message: error.to_string(),
            })?
        };
        Ok(match authorization {
            Authorization::Limited(_) => Count::Over,
            // The storage reports what remained before this request's hits were added.
            Authorization::Ok => Count::Within {
                remaining: counters
                    .first()
                    .and_then(Counter::remaining)
                    .unwrap_or(u64::from(limit.requests_per_unit))
                    .saturating_sub(descriptor.hits),
            },
        })
    }
}

/// The Limitador counter of a descriptor in `now`'s window. Its identity (the Redis key) is
/// the domain (namespace), the window length, and the variables: the window start and each
/// entry's key and value by position, so any entry key works without CEL quoting.
fn counter(
    domain: &str,
    index: usize,
    descriptor: &Descriptor,
    limit: &Limit,
    now: u64,
) -> Result<Counter, Error> {
    let build = |message: String| Error::BuildCounter { index, message };
    let mut values = HashMap::with_capacity(1 + 2 * descriptor.entries.len());
    values.insert("window".to_owned(), limit.window(now).start.to_string());
    for (position, (key, value)) in descriptor.entries.iter().enumerate() {
        values.insert(format!("key_{position}"), key.clone());
        values.insert(format!("value_{position}"), value.clone());
    }
    let variables = values
        .keys()
        .map(|name| Expression::parse(name).map_err(|error| build(error.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let limitador_limit = limitador::limit::Limit::new(
        domain,
        u64::from(limit.requests_per_unit),
        limit.window_seconds(),
        [],
        variables,
    );
    Counter::new(limitador_limit, &Context::from(values))
        .map_err(|error| build(error.to_string()))?
        .ok_or_else(|| build("a variable has no value".to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

    use std::time::Duration;

    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
        Entry, RateLimitOverride,
    };
    use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
    use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;

    use super::{Engine, Storage};
    use crate::request::Check;

    fn request(policy: &str) -> RateLimitRequest {
        RateLimitRequest {
            domain: "hrl".to_owned(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: "hrl_policy".to_owned(),
                    value: policy.to_owned(),
                }],
                limit: Some(RateLimitOverride {
                    requests_per_unit: 10,
                    unit: Unit::Minute.into(),
                }),
                ..RateLimitDescriptor::default()
            }],
            hits_addend: 0,
        }
    }

    /// The lock a request's (only) descriptor counts under.
    fn lock<'e>(engine: &'e Engine, policy: &str) -> &'e tokio::sync::Mutex<()> {
        let check = Check::parse(request(policy), &engine.domains).unwrap();
        engine.lock_of(&check.domain, &check.descriptors[0])
    }

    #[tokio::test]
    async fn a_count_waits_only_for_counts_of_its_own_counter() {
        let engine = Engine::new(Storage::memory(), vec!["hrl".to_owned()]);
        let held = lock(&engine, "default/a").lock().await;
        let other = (0..1000)
            .map(|i| format!("default/b{i}"))
            .find(|b| !std::ptr::eq(lock(&engine, b), lock(&engine, "default/a")))
            .expect("counters are spread over several locks");

        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            engine.should_rate_limit(request(&other)),
        )
        .await
        .expect("another counter is counted while `default/a`'s lock is held")
        .unwrap();
        assert_eq!(answered.overall_code(), Code::Ok);
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            engine.should_rate_limit(request("default/a")),
        )
        .await;
        assert!(waiting.is_err(), "`default/a` waits for its lock");

        drop(held);
        let answered = engine
            .should_rate_limit(request("default/a"))
            .await
            .unwrap();
        assert_eq!(answered.overall_code(), Code::Ok);
    }
}
