//! For tests: a real `redis-server` on a free loopback port, and the RLS server in this
//! process on its own thread, both stopped on drop. Usable from plain `#[test]`s.
//!
//! ```no_run
//! let stack = hrl_rls::testing::RlsWithRedis::start(&["hrl"]).unwrap();
//! let cluster = stack.rls.addr(); // give it to the host as the rate limit cluster
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::{Engine, Error, RateLimitServer, Storage};

/// How long `redis-server` may take to answer PING, and the server to start or stop.
const STARTUP: Duration = Duration::from_secs(10);
/// Ports tried when another process takes the free port first.
const PORT_TRIES: usize = 5;

/// A `redis-server` child on `127.0.0.1`, without persistence; killed on drop.
#[derive(Debug)]
pub struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// Starts `redis-server` on a free port and waits until it answers PING. Fails with
    /// [`Error::RedisNotInstalled`] when it is not on PATH: tests never skip.
    pub fn start() -> Result<Self, Error> {
        let mut last = None;
        for _ in 0..PORT_TRIES {
            let port = free_port()?;
            match Self::start_on(port) {
                Ok(redis) => return Ok(redis),
                // Another process took the port between our probe and redis' bind.
                Err(error @ Error::StartRedis { .. }) => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last.unwrap_or(Error::Thread("no port tried".to_owned())))
    }

    fn start_on(port: u16) -> Result<Self, Error> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| match error.kind() {
                ErrorKind::NotFound => Error::RedisNotInstalled,
                _ => Error::StartRedis {
                    port,
                    message: error.to_string(),
                },
            })?;
        let mut redis = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if ping(port) {
                return Ok(redis);
            }
            if let Some(child) = redis.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                return Err(Error::StartRedis {
                    port,
                    message: format!("exited ({exit}) before answering PING"),
                });
            }
            if Instant::now() > deadline {
                redis.stop();
                return Err(Error::StartRedis {
                    port,
                    message: format!("no PONG within {STARTUP:?}"),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL) and reaps it; later calls do nothing.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something on `127.0.0.1:port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        stream.write_all(b"PING\r\n")?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer)?;
        Ok(&answer == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| Error::Bind {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            source: error,
        })
}

/// What the in-process RLS server counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counters {
    /// A Redis URL.
    Redis(String),
    /// Memory.
    Memory,
}

/// The RLS server on `127.0.0.1:0`, on its own thread and tokio runtime; stopped on drop.
#[derive(Debug)]
pub struct Rls {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Rls {
    /// Starts it for `domains`, counting in `counters`, answering after `delay`.
    pub fn start(counters: Counters, domains: &[&str], delay: Duration) -> Result<Self, Error> {
        let domains: Vec<String> = domains.iter().map(|&domain| domain.to_owned()).collect();
        let (started, on_start) = mpsc::channel::<Result<SocketAddr, Error>>();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("hrl-rls".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(Error::Thread(error.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let storage = match counters {
                        Counters::Redis(url) => match Storage::redis(&url).await {
                            Ok(storage) => storage,
                            Err(error) => {
                                let _ = started.send(Err(error));
                                return;
                            }
                        },
                        Counters::Memory => Storage::memory(),
                    };
                    let server =
                        RateLimitServer::new(Engine::new(storage, domains)).with_delay(delay);
                    match server
                        .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                        .await
                    {
                        Ok(running) => {
                            let _ = started.send(Ok(running.addr()));
                            let _ = stopped.await;
                            // No graceful stop: the runtime ends with this thread, closing the
                            // listener and every connection at once, as when the process dies.
                            // (A graceful one would wait for the test's clients to hang up,
                            // while the test waits for this thread.)
                            drop(running);
                        }
                        Err(error) => {
                            let _ = started.send(Err(error));
                        }
                    }
                });
            })
            .map_err(|error| Error::Thread(error.to_string()))?;
        let addr = on_start
            .recv_timeout(STARTUP)
            .map_err(|_| Error::Timeout {
                what: "rls server start",
                waited: STARTUP,
            })??;
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The gRPC address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it at once, as if the process died: calls under way fail, and the port refuses
    /// connections once this returns. Later calls do nothing.
    pub fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Rls {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `redis-server` and the RLS server counting in it, both on loopback.
#[derive(Debug)]
pub struct RlsWithRedis {
    /// The RLS server (dropped first: fields drop in order).
    pub rls: Rls,
    /// Its Redis.
    pub redis: Redis,
}

impl RlsWithRedis {
    /// Starts both for `domains`.
    pub fn start(domains: &[&str]) -> Result<Self, Error> {
        Self::start_with_delay(domains, Duration::ZERO)
    }

    /// Starts both; the server answers after `delay` (a slow engine, for timeout tests).
    pub fn start_with_delay(domains: &[&str], delay: Duration) -> Result<Self, Error> {
        let redis = Redis::start()?;
        let rls = Rls::start(Counters::Redis(redis.url()), domains, delay)?;
        Ok(Self { rls, redis })
    }
}
