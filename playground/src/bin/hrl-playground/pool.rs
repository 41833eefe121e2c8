//! Worker VMs on their own threads (a wasmtime Store is driven by one thread at a time),
//! fed by channels, like Envoy's worker threads each running their own VM.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hrl_playground::{Error, Request, Response, Started, Worker};
use tokio::sync::oneshot;

/// Work for one worker VM.
pub enum Job {
    Start(Request, oneshot::Sender<Result<Started, Error>>),
    Finish(u64, Response, oneshot::Sender<Result<Response, Error>>),
}

/// Senders to every worker thread; connections are assigned round-robin.
#[derive(Clone)]
pub struct Pool {
    senders: Arc<[mpsc::Sender<Job>]>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    pub fn start(workers: Vec<Worker>) -> Pool {
        let senders = workers
            .into_iter()
            .map(|worker| {
                let (sender, receiver) = mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("vm-{}", worker.index()))
                    .spawn(move || run(worker, &receiver))
                    .map(|_| sender)
            })
            .filter_map(|spawned| {
                spawned
                    .map_err(|e| eprintln!("cannot start worker: {e}"))
                    .ok()
            })
            .collect();
        Pool {
            senders,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The worker for a new connection (Envoy balances connections, not requests).
    pub fn pick(&self) -> Option<mpsc::Sender<Job>> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.senders.get(index % self.senders.len().max(1)).cloned()
    }
}

fn run(mut worker: Worker, jobs: &mpsc::Receiver<Job>) {
    let mut next_tick = worker.tick_period().map(|period| Instant::now() + period);
    loop {
        let wait = next_tick.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        match jobs.recv_timeout(wait) {
            Ok(Job::Start(request, reply)) => {
                let _ = reply.send(worker.start_stream(request));
            }
            Ok(Job::Finish(stream, response, reply)) => {
                let _ = reply.send(worker.finish_stream(stream, response));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(error) = worker.tick() {
                    eprintln!("hrl-playground: worker {}: {error}", worker.index());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if next_tick.is_some_and(|at| at <= Instant::now()) || next_tick.is_none() {
            next_tick = worker.tick_period().map(|period| Instant::now() + period);
        }
    }
}
