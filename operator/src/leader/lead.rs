//! The leader's term: stand by until elected, run the controllers while the Lease is renewed,
//! stop them at the renew deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{ATTEMPT_TIMEOUT, LeaderElector, RENEW_DEADLINE, RENEW_EVERY, RETRY_AFTER_FAILURE};
use crate::metrics::Metrics;

/// What the controllers get to watch for the end of their term: shutdown, or the Lease lost.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Stands by until elected, runs `work` while the Lease is renewed, and stands by again when
/// it is lost; returns once `stop` is set. `metrics.leader` is 1 exactly while we hold the
/// Lease: it drops the moment renewal fails for [`RENEW_DEADLINE`] (or another replica holds
/// the Lease), and `work`'s shutdown future fires then too.
pub async fn lead<W, F>(
    elector: &mut LeaderElector,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
    mut work: W,
) where
    W: FnMut(Shutdown) -> F,
    F: Future<Output = ()>,
{
    while !*stop.borrow() {
        match elector.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                metrics.ready.store(true, Ordering::Relaxed);
                sleep_or_stop(RENEW_EVERY, &stop).await;
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "leader election: cannot take or read the Lease");
                sleep_or_stop(RETRY_AFTER_FAILURE, &stop).await;
                continue;
            }
        }
        tracing::info!(identity = elector.identity(), "became leader");
        metrics.ready.store(true, Ordering::Relaxed);
        metrics.leader.set(1);
        let (lost_tx, lost_rx) = watch::channel(false);
        let controllers = work(Box::pin(stopped_either(stop.clone(), lost_rx)));
        let mut controllers = std::pin::pin!(controllers);
        let renewing = hold(elector, controllers.as_mut());
        if renewing.await {
            // Lost: nothing writes from now on; let in-flight reconciliations end.
            metrics.leader.set(0);
            let _ = lost_tx.send(true);
            controllers.await;
        }
        metrics.leader.set(0);
    }
}

/// Renews while `controllers` run; true when the Lease is lost (they are still running then),
/// false when they finished (shutdown).
async fn hold<F: Future<Output = ()>>(
    elector: &mut LeaderElector,
    mut controllers: Pin<&mut F>,
) -> bool {
    let mut last_renewed = Instant::now();
    let mut wait = RENEW_EVERY;
    loop {
        let left = RENEW_DEADLINE.saturating_sub(last_renewed.elapsed());
        tokio::select! {
            () = controllers.as_mut() => return false,
            () = tokio::time::sleep(wait.min(left)) => {}
        }
        let left = RENEW_DEADLINE.saturating_sub(last_renewed.elapsed());
        if left.is_zero() {
            tracing::warn!("could not renew the leader lease in time; stopping the controllers");
            return true;
        }
        let attempt = elector.try_within(ATTEMPT_TIMEOUT.min(left));
        let result = tokio::select! {
            () = controllers.as_mut() => return false,
            result = attempt => result,
        };
        match result {
            Ok(true) => {
                last_renewed = Instant::now();
                wait = RENEW_EVERY;
            }
            Ok(false) => {
                tracing::warn!("lost the leader lease; stopping the controllers");
                return true;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the leader lease; retrying");
                wait = RETRY_AFTER_FAILURE;
            }
        }
    }
}

async fn sleep_or_stop(duration: Duration, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Resolves once `stop` is set (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn stopped_either(a: watch::Receiver<bool>, b: watch::Receiver<bool>) {
    tokio::select! {
        () = stopped(a) => {}
        () = stopped(b) => {}
    }
}
