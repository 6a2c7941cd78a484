//! The blocking, sans-IO view of the link to the other party.
//!
//! A protocol round is one [`Transport::exchange`]: both parties send one
//! message and receive the other's. Implementations count rounds and bytes.
//! [`MemTransport`] is an in-memory duplex for tests and single-process runs;
//! the gRPC transport lives in `crates/net`.

use crate::error::MpcError;
use ariann_fss::Party;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// Counters of a transport, from the point of view of one party.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommStats {
    /// Completed exchanges (protocol rounds).
    pub rounds: u64,
    /// Payload bytes sent to the peer.
    pub bytes_sent: u64,
    /// Payload bytes received from the peer.
    pub bytes_received: u64,
}

impl CommStats {
    /// Counters accumulated since `earlier`.
    pub fn since(&self, earlier: &CommStats) -> CommStats {
        CommStats {
            rounds: self.rounds - earlier.rounds,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }
}

/// A synchronous link to the other party.
pub trait Transport {
    /// Which party this end belongs to.
    fn party(&self) -> Party;
    /// Sends `msg` to the peer and returns the peer's message of the same round.
    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError>;
    /// Counters so far.
    fn stats(&self) -> CommStats;
    /// Time spent inside [`Transport::exchange`] so far, if this transport
    /// counts it ([`TimedTransport`]); zero otherwise. On a link where
    /// sending does not block (the in-memory one) that is the time blocked
    /// waiting for the peer's message: the peer's compute, the network.
    fn exchange_time(&self) -> Duration {
        Duration::ZERO
    }
}

/// One end of an in-memory duplex (std channels), with a receive deadline so a
/// vanished peer gives [`MpcError::PeerGone`] or [`MpcError::Timeout`], never a hang.
#[derive(Debug)]
pub struct MemTransport {
    party: Party,
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    stats: CommStats,
    timeout: Duration,
}

impl MemTransport {
    /// Default receive deadline.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    /// Two connected ends: (party 0, party 1).
    pub fn pair() -> (MemTransport, MemTransport) {
        let (tx0, rx1) = channel();
        let (tx1, rx0) = channel();
        let end = |party, tx, rx| MemTransport {
            party,
            tx,
            rx,
            stats: CommStats::default(),
            timeout: Self::DEFAULT_TIMEOUT,
        };
        (end(Party::P0, tx0, rx0), end(Party::P1, tx1, rx1))
    }

    /// Sets the receive deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Transport for MemTransport {
    fn party(&self) -> Party {
        self.party
    }

    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        self.tx.send(msg.to_vec()).map_err(|_| MpcError::PeerGone)?;
        let got = self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => MpcError::Timeout(self.timeout),
            RecvTimeoutError::Disconnected => MpcError::PeerGone,
        })?;
        self.stats.rounds += 1;
        self.stats.bytes_sent += msg.len() as u64;
        self.stats.bytes_received += got.len() as u64;
        Ok(got)
    }

    fn stats(&self) -> CommStats {
        self.stats
    }
}

/// Runs `f0` as party 0 and `f1` as party 1 on two threads over a fresh
/// [`MemTransport`] pair and returns both results (for tests and
/// single-process runs).
pub fn run_two_party<A, B, F0, F1>(f0: F0, f1: F1) -> (A, B)
where
    A: Send,
    B: Send,
    F0: FnOnce(&mut MemTransport) -> A + Send,
    F1: FnOnce(&mut MemTransport) -> B + Send,
{
    let (mut t0, mut t1) = MemTransport::pair();
    std::thread::scope(|s| {
        let h1 = s.spawn(move || f1(&mut t1));
        let a = f0(&mut t0);
        // A panic in party 1 is re-raised here: this helper is for tests and
        // in-process runs where a panic is already a bug.
        let b = h1.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (a, b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_counts_and_delivers() {
        let (a, b) = run_two_party(
            |t| {
                let r = t.exchange(b"hello").expect("peer present");
                (r, t.stats())
            },
            |t| {
                let r = t.exchange(b"hi").expect("peer present");
                (r, t.stats())
            },
        );
        assert_eq!(a.0, b"hi");
        assert_eq!(b.0, b"hello");
        assert_eq!(
            a.1,
            CommStats {
                rounds: 1,
                bytes_sent: 5,
                bytes_received: 2
            }
        );
    }

    #[test]
    fn vanished_peer_is_an_error_not_a_hang() {
        let (mut t0, t1) = MemTransport::pair();
        drop(t1);
        assert_eq!(t0.exchange(b"x"), Err(MpcError::PeerGone));
        let (t0, _t1) = MemTransport::pair();
        let mut t0 = t0.with_timeout(Duration::from_millis(20));
        assert!(matches!(t0.exchange(b"x"), Err(MpcError::Timeout(_))));
    }

    #[test]
    fn timed_transport_counts_the_wait_for_the_peer() {
        let (p0, p1) = run_two_party(
            |t| {
                let mut t = TimedTransport::new(t);
                t.exchange(b"ab").expect("peer present");
                (t.exchange_time(), t.stats(), Duration::ZERO)
            },
            |t| {
                std::thread::sleep(Duration::from_millis(30));
                t.exchange(b"c").expect("peer present");
                (Duration::ZERO, t.stats(), t.exchange_time())
            },
        );
        // Party 0 waited for the sleeping peer; its counters are the
        // inner transport's; an untimed transport reports zero.
        assert!(p0.0 >= Duration::from_millis(30), "{:?}", p0.0);
        assert_eq!(p0.1.bytes_sent, 2);
        assert_eq!(p1.2, Duration::ZERO);
    }
}

/// Wraps a transport to emulate a wide-area link: every exchange waits one
/// round-trip time, plus the time to push the larger of the two messages
/// through `bytes_per_sec` (this machine has no netem; the shaping lives in
/// the transport). Counters are those of the inner transport.
#[derive(Debug)]
pub struct ShapedTransport<T: Transport> {
    inner: T,
    rtt: Duration,
    bytes_per_sec: f64,
}

impl<T: Transport> ShapedTransport<T> {
    /// `rtt` per exchange, bandwidth `bytes_per_sec` per direction.
    pub fn new(inner: T, rtt: Duration, bytes_per_sec: f64) -> Self {
        Self {
            inner,
            rtt,
            bytes_per_sec,
        }
    }
}

impl<T: Transport> Transport for ShapedTransport<T> {
    fn party(&self) -> Party {
        self.inner.party()
    }

    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        let start = Instant::now();
        let got = self.inner.exchange(msg)?;
        let bytes = msg.len().max(got.len()) as f64;
        let wire = Duration::from_secs_f64(bytes / self.bytes_per_sec.max(1.0));
        let target = self.rtt + wire;
        if let Some(rest) = target.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
        Ok(got)
    }

    fn stats(&self) -> CommStats {
        self.inner.stats()
    }

    fn exchange_time(&self) -> Duration {
        self.inner.exchange_time()
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn party(&self) -> Party {
        (**self).party()
    }
    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        (**self).exchange(msg)
    }
    fn stats(&self) -> CommStats {
        (**self).stats()
    }
    fn exchange_time(&self) -> Duration {
        (**self).exchange_time()
    }
}

/// Wraps a transport to count the time spent inside its exchanges
/// ([`Transport::exchange_time`]), for profiling: two clock reads per
/// exchange. Everything else is the inner transport's.
#[derive(Debug)]
pub struct TimedTransport<T: Transport> {
    inner: T,
    time: Duration,
}

impl<T: Transport> TimedTransport<T> {
    /// `inner`, with its exchanges timed from now on.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            time: Duration::ZERO,
        }
    }
}

impl<T: Transport> Transport for TimedTransport<T> {
    fn party(&self) -> Party {
        self.inner.party()
    }

    fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, MpcError> {
        let start = Instant::now();
        let got = self.inner.exchange(msg);
        self.time += start.elapsed();
        got
    }

    fn stats(&self) -> CommStats {
        self.inner.stats()
    }

    fn exchange_time(&self) -> Duration {
        self.time
    }
}
