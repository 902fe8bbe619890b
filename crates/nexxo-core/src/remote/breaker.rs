//! A circuit breaker per remote: after a request fails for the server's sake (timeout,
//! no connection, a 5xx after its retries), the remote is skipped for a cooldown; then
//! one request probes it, and its outcome closes the breaker or opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

pub struct Breaker {
    cooldown: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// When an open breaker lets its probe through.
    until: Instant,
    /// Times it opened, lifetime of the handle.
    trips: u64,
}

impl Breaker {
    pub fn new(cooldown: Duration) -> Breaker {
        Breaker { cooldown, inner: Mutex::new(Inner { state: State::Closed, until: Instant::now(), trips: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go out now. A `true` obliges the caller to report the
    /// request's outcome with [`Breaker::success`] or [`Breaker::failure`].
    pub fn allow(&self) -> bool {
        let mut b = self.lock();
        match b.state {
            State::Closed => true,
            State::Open if Instant::now() >= b.until => {
                b.state = State::HalfOpen;
                true
            }
            State::Open | State::HalfOpen => false,
        }
    }

    pub fn success(&self) {
        self.lock().state = State::Closed;
    }

    pub fn failure(&self) {
        let mut b = self.lock();
        if b.state != State::Open {
            b.trips += 1;
        }
        b.state = State::Open;
        b.until = Instant::now() + self.cooldown;
    }

    /// Whether an open breaker's cooldown has passed (its probe may go out).
    pub fn probe_due(&self) -> bool {
        let b = self.lock();
        b.state == State::Open && Instant::now() >= b.until
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    pub fn trips(&self) -> u64 {
        self.lock().trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_then_probes_once_then_closes() {
        let b = Breaker::new(Duration::from_millis(30));
        assert!(b.allow());
        b.failure();
        assert_eq!(b.state(), State::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "the probe goes out after the cooldown");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(!b.allow(), "only one probe at a time");
        b.failure();
        assert!(!b.allow(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert!(b.allow() && b.allow());
        assert_eq!(b.trips(), 2);
    }
}
