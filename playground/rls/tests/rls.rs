//! The RLS server over real gRPC on loopback, counting with Limitador in a real
//! `redis-server` (started per test on a free port; the test fails if it is not installed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use hrl_rls::testing::{Counters, Rls, RlsWithRedis};
use tonic::transport::Channel;

type Client = RateLimitServiceClient<Channel>;

/// One descriptor as the filter sends it: the policy, maybe a key, and the limit override.
fn descriptor(policy: &str, key: Option<&str>, limit: u32, unit: Unit) -> RateLimitDescriptor {
    let mut entries = vec![Entry {
        key: "hrl_policy".to_owned(),
        value: policy.to_owned(),
    }];
    if let Some(key) = key {
        entries.push(Entry {
            key: "hrl_key".to_owned(),
            value: key.to_owned(),
        });
    }
    RateLimitDescriptor {
        entries,
        limit: Some(RateLimitOverride {
            requests_per_unit: limit,
            unit: unit.into(),
        }),
        ..RateLimitDescriptor::default()
    }
}

fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: "hrl".to_owned(),
        descriptors,
        hits_addend: 0,
    }
}

async fn client(stack: &Rls) -> Client {
    RateLimitServiceClient::connect(format!("http://{}", stack.addr()))
        .await
        .unwrap()
}

async fn ask(client: &mut Client, descriptors: Vec<RateLimitDescriptor>) -> RateLimitResponse {
    client
        .should_rate_limit(request(descriptors))
        .await
        .unwrap()
        .into_inner()
}

fn code(response: &RateLimitResponse) -> Code {
    Code::try_from(response.overall_code).unwrap()
}

fn start() -> RlsWithRedis {
    // Display, not Debug: "redis-server is not installed … apt-get install -y redis-server".
    RlsWithRedis::start(&["hrl"]).unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn n_requests_per_window_are_admitted_then_over_limit_with_nothing_remaining() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let policy = || vec![descriptor("default/api", None, 3, Unit::Hour)];
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let answer = ask(&mut client, policy()).await;
        assert_eq!(code(&answer), Code::Ok, "{answer:?}");
        remaining.push(answer.statuses[0].limit_remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);

    for _ in 0..2 {
        let answer = ask(&mut client, policy()).await;
        assert_eq!(code(&answer), Code::OverLimit, "{answer:?}");
        let status = &answer.statuses[0];
        assert_eq!(status.code, i32::from(Code::OverLimit));
        assert_eq!(status.limit_remaining, 0);
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (3, i32::from(Unit::Hour))
        );
        let reset = status.duration_until_reset.unwrap();
        assert!(
            (1..=3600).contains(&reset.seconds) && reset.nanos == 0,
            "{reset:?}"
        );
    }
}

#[tokio::test]
async fn the_next_window_admits_again() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let policy = || vec![descriptor("default/api", None, 1, Unit::Second)];
    // Two requests may straddle a second boundary: ask until one is refused.
    let refused = loop {
        let answer = ask(&mut client, policy()).await;
        if code(&answer) == Code::OverLimit {
            break answer;
        }
    };
    let reset = refused.statuses[0].duration_until_reset.unwrap();
    assert_eq!(reset.seconds, 1, "a second's window resets within it");
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(code(&ask(&mut client, policy()).await), Code::Ok);
}

#[tokio::test]
async fn each_key_of_a_policy_is_counted_on_its_own() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let keyed = |key| vec![descriptor("default/api", Some(key), 1, Unit::Hour)];
    assert_eq!(code(&ask(&mut client, keyed("0a")).await), Code::Ok);
    assert_eq!(code(&ask(&mut client, keyed("0a")).await), Code::OverLimit);
    assert_eq!(code(&ask(&mut client, keyed("0b")).await), Code::Ok);
    assert_eq!(code(&ask(&mut client, keyed("0b")).await), Code::OverLimit);
}

#[tokio::test]
async fn different_policies_are_counted_apart() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let policy = |name| vec![descriptor(name, None, 1, Unit::Hour)];
    assert_eq!(code(&ask(&mut client, policy("default/a")).await), Code::Ok);
    assert_eq!(code(&ask(&mut client, policy("default/b")).await), Code::Ok);
    assert_eq!(
        code(&ask(&mut client, policy("default/a")).await),
        Code::OverLimit
    );
}

#[tokio::test]
async fn two_clients_on_two_connections_share_one_count() {
    let stack = start();
    let mut clients = [client(&stack.rls).await, client(&stack.rls).await];
    let policy = || vec![descriptor("default/api", Some("0a"), 4, Unit::Hour)];
    for turn in 0..4 {
        let answer = ask(&mut clients[turn % 2], policy()).await;
        assert_eq!(code(&answer), Code::Ok, "request {turn}");
    }
    for client in &mut clients {
        assert_eq!(code(&ask(client, policy()).await), Code::OverLimit);
    }
}

#[tokio::test]
async fn two_servers_on_one_redis_share_one_count() {
    let stack = start();
    let second = Rls::start(Counters::Redis(stack.redis.url()), &["hrl"], Duration::ZERO).unwrap();
    let mut clients = [client(&stack.rls).await, client(&second).await];
    let policy = || vec![descriptor("default/api", None, 2, Unit::Hour)];
    assert_eq!(code(&ask(&mut clients[0], policy()).await), Code::Ok);
    assert_eq!(code(&ask(&mut clients[1], policy()).await), Code::Ok);
    assert_eq!(code(&ask(&mut clients[0], policy()).await), Code::OverLimit);
    assert_eq!(code(&ask(&mut clients[1], policy()).await), Code::OverLimit);
}

#[tokio::test]
async fn concurrent_requests_admit_exactly_the_limit() {
    let stack = start();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut client = client(&stack.rls).await;
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..10 {
                let policy = vec![descriptor("default/api", None, 15, Unit::Hour)];
                if code(&ask(&mut client, policy).await) == Code::Ok {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, 15);
}

#[tokio::test]
async fn one_descriptor_over_its_limit_makes_the_answer_over_limit() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let both = || {
        vec![
            descriptor("default/tight", None, 1, Unit::Hour),
            descriptor("default/loose", None, 10, Unit::Hour),
        ]
    };
    assert_eq!(code(&ask(&mut client, both()).await), Code::Ok);
    let answer = ask(&mut client, both()).await;
    assert_eq!(code(&answer), Code::OverLimit);
    let codes: Vec<i32> = answer.statuses.iter().map(|status| status.code).collect();
    assert_eq!(codes, [i32::from(Code::OverLimit), i32::from(Code::Ok)]);
    assert_eq!(answer.statuses[1].limit_remaining, 8);
}

#[tokio::test]
async fn a_domain_not_served_and_a_descriptor_without_override_are_not_limited() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let mut without_override = descriptor("default/api", None, 1, Unit::Hour);
    without_override.limit = None;
    for _ in 0..3 {
        let mut other = request(vec![descriptor("default/api", None, 1, Unit::Hour)]);
        other.domain = "other".to_owned();
        let answer = client.should_rate_limit(other).await.unwrap().into_inner();
        assert_eq!(code(&answer), Code::Ok);
        assert_eq!(answer.statuses[0].current_limit, None);

        let answer = ask(&mut client, vec![without_override.clone()]).await;
        assert_eq!(code(&answer), Code::Ok);
        assert_eq!(answer.statuses[0].current_limit, None);
    }
}

#[tokio::test]
async fn an_unknown_unit_is_an_invalid_argument() {
    let stack = start();
    let mut client = client(&stack.rls).await;
    let mut bad = descriptor("default/api", None, 1, Unit::Hour);
    bad.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: 0,
    });
    let status = client
        .should_rate_limit(request(vec![bad]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("descriptors[0].limit.unit"),
        "{status:?}"
    );
}

#[tokio::test]
async fn with_redis_stopped_the_service_answers_unavailable() {
    let mut stack = start();
    let mut client = client(&stack.rls).await;
    let policy = || vec![descriptor("default/api", None, 5, Unit::Hour)];
    assert_eq!(code(&ask(&mut client, policy()).await), Code::Ok);
    stack.redis.stop();
    for _ in 0..2 {
        let status = client
            .should_rate_limit(request(policy()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status.message().starts_with("counter storage: "),
            "{status:?}"
        );
    }
}

#[tokio::test]
async fn a_stopped_server_refuses_calls() {
    let mut stack = start();
    let mut client = client(&stack.rls).await;
    let policy = || vec![descriptor("default/api", None, 5, Unit::Hour)];
    assert_eq!(code(&ask(&mut client, policy()).await), Code::Ok);
    stack.rls.stop();
    // The open connection breaks (tonic: UNKNOWN "transport error"); new ones are refused.
    let broken = client
        .should_rate_limit(request(policy()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            broken.code(),
            tonic::Code::Unknown | tonic::Code::Unavailable
        ),
        "{broken:?}"
    );
    let refused = client
        .should_rate_limit(request(policy()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
}

#[tokio::test]
async fn a_delayed_server_answers_after_its_delay() {
    let stack = RlsWithRedis::start_with_delay(&["hrl"], Duration::from_millis(300))
        .unwrap_or_else(|error| panic!("{error}"));
    let mut client = client(&stack.rls).await;
    let policy = || vec![descriptor("default/api", None, 5, Unit::Hour)];
    let started = Instant::now();
    assert_eq!(code(&ask(&mut client, policy()).await), Code::Ok);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let mut call = tonic::Request::new(request(policy()));
    call.set_timeout(Duration::from_millis(50));
    let status = client.should_rate_limit(call).await.unwrap_err();
    // tonic's client timeout answers CANCELLED "Timeout expired".
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
}

#[tokio::test]
async fn memory_counters_limit_the_same_way() {
    let rls = Rls::start(Counters::Memory, &["hrl"], Duration::ZERO).unwrap();
    let mut client = client(&rls).await;
    let policy = || vec![descriptor("default/api", Some("0a"), 2, Unit::Hour)];
    let remaining: Vec<(Code, u32)> = {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let answer = ask(&mut client, policy()).await;
            seen.push((code(&answer), answer.statuses[0].limit_remaining));
        }
        seen
    };
    assert_eq!(
        remaining,
        [(Code::Ok, 1), (Code::Ok, 0), (Code::OverLimit, 0)]
    );
}
