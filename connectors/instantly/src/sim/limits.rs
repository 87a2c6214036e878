//! Rate limits as the real API enforces them: a workspace-wide
//! budget per second and per minute shared by every endpoint, and a separate
//! 20-per-minute budget for `GET /emails`. Sliding windows; requests answered
//! with 429 do not consume budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// A sliding-window budget of `per_sec` and/or `per_min` requests.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    per_sec: Option<u32>,
    per_min: Option<u32>,
    accepted: VecDeque<Instant>,
}

impl Budget {
    pub(crate) fn new(per_sec: Option<u32>, per_min: Option<u32>) -> Self {
        Budget { per_sec, per_min, accepted: VecDeque::new() }
    }

    fn enabled(&self) -> bool {
        self.per_sec.is_some() || self.per_min.is_some()
    }

    fn prune(&mut self, now: Instant) {
        let keep = if self.per_min.is_some() { MINUTE } else { SECOND };
        while self.accepted.front().is_some_and(|t| now.duration_since(*t) >= keep) {
            self.accepted.pop_front();
        }
    }

    /// `Err(wait)` when one more request now would exceed the budget, where
    /// `wait` is how long until it would not.
    fn check(&mut self, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        self.prune(now);
        let mut wait = Duration::ZERO;
        // The request that must leave the window before one more fits: the
        // max-th most recent (with a budget of 0, nothing ever fits).
        let blocker = |max: u32| self.accepted.len().checked_sub(max as usize).and_then(|i| self.accepted.get(i));
        if let Some(max) = self.per_min
            && self.accepted.len() >= max as usize
        {
            let left = blocker(max).map_or(Duration::ZERO, |t| now.duration_since(*t));
            wait = wait.max(MINUTE.saturating_sub(left));
        }
        if let Some(max) = self.per_sec {
            let in_last_sec = self.accepted.iter().rev().take_while(|t| now.duration_since(**t) < SECOND).count();
            if in_last_sec >= max as usize {
                let left = blocker(max).map_or(Duration::ZERO, |t| now.duration_since(*t));
                wait = wait.max(SECOND.saturating_sub(left));
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    fn record(&mut self, now: Instant) {
        if self.enabled() {
            self.accepted.push_back(now);
        }
    }
}

/// The workspace budget plus the `/emails` budget.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub workspace: Budget,
    pub emails: Budget,
}

impl Limits {
    /// Admits a request (recording it) or returns the wait before retrying,
    /// rounded up to whole seconds (at least 1), as a `Retry-After` would say.
    pub(crate) fn admit(&mut self, now: Instant, is_emails: bool) -> Result<(), u64> {
        let mut verdict = self.workspace.check(now);
        if is_emails && let Err(w) = self.emails.check(now) {
            verdict = Err(verdict.err().unwrap_or_default().max(w));
        }
        match verdict {
            Ok(()) => {
                self.workspace.record(now);
                if is_emails {
                    self.emails.record(now);
                }
                Ok(())
            }
            Err(wait) => Err(wait.as_millis().div_ceil(1000).max(1) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_second_budget() {
        let mut l = Limits { workspace: Budget::new(Some(2), None), emails: Budget::default() };
        let t = Instant::now();
        assert!(l.admit(t, false).is_ok());
        assert!(l.admit(t, false).is_ok());
        assert_eq!(l.admit(t, false), Err(1));
        assert!(l.admit(t + SECOND, false).is_ok());
    }

    #[test]
    fn zero_budget_rejects_without_panicking() {
        let mut l = Limits { workspace: Budget::new(Some(0), Some(0)), emails: Budget::default() };
        assert_eq!(l.admit(Instant::now(), false), Err(60));
    }

    #[test]
    fn emails_budget_is_separate_and_shared() {
        let mut l = Limits { workspace: Budget::new(None, Some(3)), emails: Budget::new(None, Some(1)) };
        let t = Instant::now();
        assert!(l.admit(t, true).is_ok());
        assert_eq!(l.admit(t, true), Err(60));
        assert!(l.admit(t, false).is_ok());
        assert!(l.admit(t, false).is_ok());
        assert!(l.admit(t, false).is_err());
        assert!(l.admit(t + MINUTE, true).is_ok());
    }
}
