//! Per-client rate limiting: each client gets a sustained rate and a burst (GCRA, from `governor`); past them its
//! requests are answered `429 Too Many Requests` with `Retry-After`, while every other client goes on unaffected.
//!
//! This is fairness between clients, not protection of the process: the in-flight cap (outside this layer) sheds
//! load whoever sends it. Who a client is ([`Client`]): the authenticated subject when the authentication layer
//! (outside this one) recorded the request's [`Caller`] as authenticated, else the peer's IP address (which the
//! connection loop puts there as [`ConnectInfo`]). Behind a proxy or load balancer every anonymous client has the
//! proxy's address and shares one budget; trusting `X-Forwarded-For` would need the proxy's address configured, which nothing here has yet.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Weak},
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, MonotonicClock},
    middleware::NoOpMiddleware,
    state::keyed::DashMapStateStore,
};

use super::{HEALTH_PATHS, refusal};
use crate::auth::Caller;

/// How often the limiter forgets the clients whose state is back to fresh (idle for at least the time a full burst
/// takes to refill). Between two sweeps the map holds at most the clients seen in the last interval plus that
/// refill time, and the in-flight cap bounds how fast new clients can arrive: memory stays proportional to the
/// recent request rate, never to every address ever seen.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Who a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Client {
    /// An authenticated end user, by the token's subject: one budget whatever address the user comes from.
    Subject(String),
    /// An anonymous caller, by its IP address. An IPv6 host is given a whole /64 by its network and can rotate
    /// through it at will, so IPv6 addresses count by their /64 prefix; IPv4-mapped IPv6 addresses count as the
    /// IPv4 address they carry.
    Address(IpAddr),
}

impl Client {
    /// The client `request` comes from: its identity if an outer layer authenticated it, else its peer address.
    /// `None` only for a request that did not come through the connection loop (which always records the peer).
    pub(super) fn of(request: &Request) -> Option<Self> {
        if let Some(Caller::Authenticated(identity)) = request.extensions().get::<Caller>() {
            return Some(Self::Subject(identity.subject.clone()));
        }
        let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
        Some(Self::from_address(peer.ip()))
    }

    fn from_address(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = v6.to_bits() & !u128::from(u64::MAX);
                Self::Address(IpAddr::V6(Ipv6Addr::from_bits(prefix)))
            }
            v4 => Self::Address(v4),
        }
    }
}

/// The sustained rate and the burst each client is allowed.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateLimitSettings {
    /// Requests per second, sustained.
    pub(super) per_second: u32,
    /// Requests a client may send at once after it has been quiet.
    pub(super) burst: u32,
}

impl RateLimitSettings {
    /// The quota, or `None` when either number is 0 (rate limiting off).
    fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// One budget per [`Client`], shared by every connection.
pub(super) struct RateLimit<C: Clock = MonotonicClock> {
    limiter: RateLimiter<Client, DashMapStateStore<Client>, C, NoOpMiddleware<C::Instant>>,
}

impl<C: Clock> std::fmt::Debug for RateLimit<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").field("clients", &self.limiter.len()).finish()
    }
}

impl RateLimit {
    /// The limit `settings` ask for, `None` when they turn it off. Starts the task that forgets idle clients; it
    /// holds only a weak reference and ends at its first tick after the router (the last owner) is dropped. Must
    /// be called inside a Tokio runtime.
    pub(super) fn new(settings: RateLimitSettings) -> Option<Arc<Self>> {
        let limit = Arc::new(Self::with_clock(settings.quota()?, MonotonicClock));
        tokio::spawn(sweep(Arc::downgrade(&limit)));
        Some(limit)
    }
}

impl<C: Clock> RateLimit<C> {
    fn with_clock(quota: Quota, clock: C) -> Self {
        Self { limiter: RateLimiter::new(quota, DashMapStateStore::default(), clock) }
    }

    /// Counts one request of `client`: `Err` with how long it must wait when it is over its limit.
    pub(super) fn check(&self, client: &Client) -> Result<(), Duration> {
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets the clients whose budget is full again (they are indistinguishable from new ones).
    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

async fn sweep(limit: Weak<RateLimit>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(limit) = limit.upgrade() else { return };
        limit.forget_idle();
    }
}

/// The middleware: 429 with `Retry-After` for a client over its limit. Health checks pass uncounted (load
/// balancers poll them, often from one address, and must not be told a healthy gateway is refusing). It reads the
/// [`Caller`] an outer layer (authentication) put in the request, so it must sit inside that layer.
pub(super) async fn limit(
    State(limit): State<Option<Arc<RateLimit>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limit) = limit.filter(|_| !HEALTH_PATHS.contains(&request.uri().path())) else {
        return next.run(request).await;
    };
    let Some(client) = Client::of(&request) else {
        return next.run(request).await;
    };
    match limit.check(&client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            // DEBUG, not WARN: a client flooding us would otherwise flood the logs too.
            tracing::debug!(path = %request.uri().path(), "Rate limited: refused a request.");
            refusal::too_many_requests(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limit(per_second: u32, burst: u32) -> (RateLimit<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let quota = RateLimitSettings { per_second, burst }.quota().unwrap();
        (RateLimit::with_clock(quota, clock.clone()), clock)
    }

    fn address(text: &str) -> Client {
        Client::from_address(text.parse().unwrap())
    }

    #[test]
    fn past_its_burst_a_client_waits_while_another_is_unaffected() {
        // Arrange
        let (limit, clock) = limit(2, 3);
        let greedy = Client::Subject("greedy".into());
        let other = Client::Subject("other".into());

        // Act
        let burst: Vec<_> = (0..3).map(|_| limit.check(&greedy)).collect();
        let refused = limit.check(&greedy);
        let others = limit.check(&other);
        clock.advance(Duration::from_millis(500));
        let after_waiting = limit.check(&greedy);

        // Assert
        assert!(burst.iter().all(Result::is_ok), "{burst:?}");
        assert_eq!(refused, Err(Duration::from_millis(500)));
        assert_eq!(others, Ok(()));
        assert_eq!(after_waiting, Ok(()));
    }

    #[test]
    fn a_zero_rate_or_burst_turns_the_limit_off() {
        assert!(RateLimitSettings { per_second: 0, burst: 10 }.quota().is_none());
        assert!(RateLimitSettings { per_second: 10, burst: 0 }.quota().is_none());
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address("2001:db8:1:2::1"), address("2001:db8:1:2:ffff::9"));
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_eq!(address("::ffff:192.0.2.7"), address("192.0.2.7"));
        assert_ne!(address("192.0.2.7"), address("192.0.2.8"));
    }

    #[test]
    fn idle_clients_are_forgotten_and_busy_ones_kept() {
        // Arrange
        let (limit, clock) = limit(10, 10);
        limit.check(&address("192.0.2.1")).unwrap();
        clock.advance(Duration::from_secs(5));
        limit.check(&address("192.0.2.2")).unwrap();

        // Act
        limit.forget_idle();

        // Assert
        assert_eq!(limit.limiter.len(), 1);
    }
}
