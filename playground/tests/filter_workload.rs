//! ABI tests of the real module for `scope: Workload`: the operator writes each proxy's share
//! of the rate (`hrl_operator::scope::split`) and rewrites it when the pod count changes. The
//! proxy then configures the filter again; the bucket in shared data keeps its level (capped
//! at the new burst), so a scale event neither refills nor empties anyone's bucket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test crate

mod common;

use std::time::Duration;

use common::{filter, filter_host, limit_config, plugin};
use hrl_operator::scope::split;
use hrl_playground::{Host, Request};
use hrl_plugin_config::{PluginConfig, RateLimit};

const POLICY: &str = "default/api";

/// The pluginConfig of 100/s, burst 100, split across `replicas` proxies.
fn share(replicas: u32) -> PluginConfig {
    let share = split(100, 1, 100, replicas);
    limit_config(
        POLICY,
        RateLimit::per_period(share.tokens, share.period_seconds, share.burst),
    )
}

fn ratelimit(host: &mut Host) -> (u16, String, String) {
    let response = host.http_stream(Request::get("/")).unwrap();
    (
        response.status,
        response.header("ratelimit").unwrap_or_default().to_owned(),
        response
            .header("ratelimit-policy")
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn a_bucket_keeps_its_level_when_the_share_changes_and_is_capped_at_the_new_burst() {
    // The clock stands still: only the reconfigurations change anything.
    let mut one = filter_host(&[share(1)], 2);
    for _ in 0..59 {
        assert_eq!(one.http_stream(Request::get("/")).unwrap().status, 200);
    }
    let (_, level, policy) = ratelimit(&mut one);
    assert_eq!(level, r#""api";r=40;t=1"#);
    assert_eq!(policy, r#""api";q=100;w=1"#);

    // Two pods: 100 per 2 s, burst 50. The 40 tokens left stay.
    let mut two = one.reconfigure(filter(), vec![plugin(&share(2))]).unwrap();
    let (status, level, policy) = ratelimit(&mut two);
    assert_eq!(status, 200);
    assert_eq!(level, r#""api";r=39;t=1"#, "40 kept, one taken");
    assert_eq!(policy, r#""api";q=50;w=1"#);

    // Four pods: 25/s, burst 25. 39 tokens is more than the bucket holds now: 25.
    let mut four = two.reconfigure(filter(), vec![plugin(&share(4))]).unwrap();
    let (_, level, policy) = ratelimit(&mut four);
    assert_eq!(
        level, r#""api";r=24;t=1"#,
        "capped at the new burst, one taken"
    );
    assert_eq!(policy, r#""api";q=25;w=1"#);

    // And the share is the rate: 25 tokens a second from empty.
    for _ in 0..24 {
        assert_eq!(four.http_stream(Request::get("/")).unwrap().status, 200);
    }
    assert_eq!(four.http_stream(Request::get("/")).unwrap().status, 429);
    four.clock().advance(Duration::from_secs(1));
    let admitted = (0..30)
        .filter(|_| four.http_stream(Request::get("/")).unwrap().status == 200)
        .count();
    assert_eq!(admitted, 25);
}

#[test]
fn shares_of_a_rate_that_does_not_divide_add_up_to_it_over_time() {
    // 100/s over 3 proxies: each 100 per 3 s (burst 34). Three proxies, ten minutes, from empty.
    let mut pods: Vec<Host> = (0..3).map(|_| filter_host(&[share(3)], 1)).collect();
    for pod in &mut pods {
        while pod.http_stream(Request::get("/")).unwrap().status == 200 {}
    }
    let mut admitted = 0u64;
    for _ in 0..600 {
        for pod in &mut pods {
            pod.clock().advance(Duration::from_secs(1));
            for _ in 0..40 {
                admitted += u64::from(pod.http_stream(Request::get("/")).unwrap().status == 200);
            }
        }
    }
    assert_eq!(admitted, 100 * 600, "exactly the rate, split");
}
