//! Per-tenant request rates (GCRA, `governor`). Each api-server limits its own
//! share; the limits come with every verification, so a change made by an
//! admin applies from the next request on.

use contracts::identity::RateLimit;
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::{InMemoryState, NotKeyed},
};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

#[derive(Default)]
pub struct TenantLimits {
    limiters: Mutex<HashMap<String, (RateLimit, Arc<Limiter>)>>,
}

fn quota(rate: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(rate.per_second).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(NonZeroU32::new(rate.burst).unwrap_or(per_second))
}

impl TenantLimits {
    /// Takes one request from `tenant`'s allowance; `Err` says how long until one is available.
    pub fn check(&self, tenant: &str, rate: RateLimit) -> Result<(), Duration> {
        let limiter = {
            let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(tenant) {
                Some((have, l)) if *have == rate => l.clone(),
                _ => {
                    let l = Arc::new(RateLimiter::direct(quota(rate)));
                    map.insert(tenant.to_owned(), (rate, l.clone()));
                    l
                }
            }
        };
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_a_wait() {
        let limits = TenantLimits::default();
        let rate = RateLimit { per_second: 1, burst: 3 };
        for _ in 0..3 {
            limits.check("a", rate).unwrap();
        }
        let wait = limits.check("a", rate).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        limits.check("b", rate).expect("tenants do not share an allowance");
        let raised = RateLimit { per_second: 100, burst: 100 };
        limits.check("a", raised).expect("new limits apply at once");
    }
}
