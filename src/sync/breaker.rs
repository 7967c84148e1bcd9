//! The per-target circuit breaker of the provisioning engine.
//!
//! A target's circuit opens after [`BreakerSettings::failure_threshold`] consecutive
//! transient failures, for a cool-down that starts at [`BreakerSettings::cooldown`] and
//! doubles (up to [`BreakerSettings::max_cooldown`]) each time the circuit opens again
//! without having closed; or at once when the target rejects our credentials (401), until a
//! probe (`test_connection`) succeeds. While a circuit is open, tasks of that target are put
//! back in the queue without calling the target and without counting the attempt; other
//! targets are unaffected.
//!
//! When the cool-down ends, the circuit is *half open*: exactly one caller is let through
//! (an attempt after transient failures, a probe after an auth failure); its result closes
//! the circuit or opens it again with a longer cool-down. Everything here is pure state over
//! times passed in, so transitions are unit-tested without a clock.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::telemetry;

/// Why a circuit opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// Too many consecutive transient failures.
    Transient,
    /// The target rejected our credentials (`auth_failed`).
    AuthFailed,
}

impl OpenReason {
    /// The contract spelling (`transient`, `auth_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpenReason::Transient => "transient",
            OpenReason::AuthFailed => "auth_failed",
        }
    }
}

/// What the breaker says about calling a target now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: call the target.
    Closed,
    /// Open: do not call the target before `until`.
    Open {
        /// Why it is open.
        reason: OpenReason,
        /// When the next probe or trial is due.
        until: DateTime<Utc>,
    },
    /// Half open: this caller (and only this one) may try. After `AuthFailed`, probe with
    /// `test_connection` first and report with [`Breakers::probe_result`]; after
    /// `Transient`, make the attempt and report its outcome as usual.
    HalfOpen {
        /// Why it was open.
        reason: OpenReason,
    },
}

/// Tuning of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open the circuit.
    pub failure_threshold: u32,
    /// The first cool-down.
    pub cooldown: Duration,
    /// The longest cool-down.
    pub max_cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// The state of one target's circuit, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CircuitState {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// Why it is open (null when closed).
    pub reason: Option<OpenReason>,
    /// When the next probe or trial is due (null when closed).
    pub until: Option<DateTime<Utc>>,
    /// Consecutive transient failures counted so far.
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Default)]
struct Circuit {
    consecutive_failures: u32,
    open: Option<Opened>,
}

#[derive(Debug, Clone, Copy)]
struct Opened {
    reason: OpenReason,
    until: DateTime<Utc>,
    cooldown: Duration,
    /// A half-open trial or probe is in flight.
    trial: bool,
}

/// The circuits of every target, shared by all workers of an engine.
#[derive(Debug, Default)]
pub struct Breakers {
    settings: BreakerSettings,
    circuits: Mutex<BTreeMap<String, Circuit>>,
}

impl Breakers {
    /// Breakers with the given settings, every circuit closed.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            circuits: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<T>(&self, target: &str, f: impl FnOnce(&mut Circuit) -> T) -> T {
        let mut circuits = self
            .circuits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let circuit = circuits.entry(target.to_string()).or_default();
        let was_open = circuit.open.is_some();
        let out = f(circuit);
        let is_open = circuit.open.is_some();
        if was_open != is_open {
            set_gauge(target, is_open);
        }
        out
    }

    /// Sets the circuit gauge of `target` to its current state (0 for a target never seen).
    pub fn publish(&self, target: &str) {
        let open = self.with(target, |circuit| circuit.open.is_some());
        set_gauge(target, open);
    }

    /// Whether `target` may be called now. A `HalfOpen` answer admits only this caller;
    /// others see `Open` until it reports.
    pub fn check(&self, target: &str, now: DateTime<Utc>) -> Gate {
        let cooldown = self.settings.cooldown;
        self.with(target, |circuit| match circuit.open.as_mut() {
            None => Gate::Closed,
            Some(opened) if opened.trial || now < opened.until => Gate::Open {
                reason: opened.reason,
                until: if opened.trial {
                    opened.until.max(now + chrono_duration(cooldown))
                } else {
                    opened.until
                },
            },
            Some(opened) => {
                opened.trial = true;
                Gate::HalfOpen {
                    reason: opened.reason,
                }
            }
        })
    }

    /// The target answered (success, already done, or a refusal of this request): the
    /// circuit closes and the failure count restarts.
    pub fn record_success(&self, target: &str) {
        self.with(target, |circuit| {
            circuit.consecutive_failures = 0;
            circuit.open = None;
        });
    }

    /// A transient failure. Returns whether the circuit opened because of it.
    pub fn record_transient(&self, target: &str, now: DateTime<Utc>) -> bool {
        let settings = self.settings;
        self.with(target, |circuit| {
            circuit.consecutive_failures = circuit.consecutive_failures.saturating_add(1);
            match circuit.open.as_mut() {
                // A failed half-open trial: open again, for longer.
                Some(opened) if opened.trial => {
                    reopen(opened, now, settings);
                    true
                }
                Some(_) => false,
                None if circuit.consecutive_failures >= settings.failure_threshold => {
                    circuit.open = Some(Opened {
                        reason: OpenReason::Transient,
                        until: now + chrono_duration(settings.cooldown),
                        cooldown: settings.cooldown,
                        trial: false,
                    });
                    true
                }
                None => false,
            }
        })
    }

    /// The target rejected our credentials: the circuit opens (`auth_failed`) until a probe
    /// succeeds. Returns when the first probe is due.
    pub fn record_auth_failure(&self, target: &str, now: DateTime<Utc>) -> DateTime<Utc> {
        let settings = self.settings;
        self.with(target, |circuit| match circuit.open.as_mut() {
            Some(opened) if opened.reason == OpenReason::AuthFailed && !opened.trial => {
                opened.until
            }
            Some(opened) if opened.reason == OpenReason::AuthFailed => {
                reopen(opened, now, settings);
                opened.until
            }
            _ => {
                let until = now + chrono_duration(settings.cooldown);
                circuit.open = Some(Opened {
                    reason: OpenReason::AuthFailed,
                    until,
                    cooldown: settings.cooldown,
                    trial: false,
                });
                until
            }
        })
    }

    /// The result of a half-open probe: success closes the circuit; failure opens it again
    /// with a doubled cool-down. Returns when the next probe is due (None when closed).
    pub fn probe_result(
        &self,
        target: &str,
        ok: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let settings = self.settings;
        self.with(target, |circuit| {
            if ok {
                circuit.consecutive_failures = 0;
                circuit.open = None;
                return None;
            }
            match circuit.open.as_mut() {
                Some(opened) => {
                    reopen(opened, now, settings);
                    Some(opened.until)
                }
                None => None,
            }
        })
    }

    /// Releases a half-open slot without a verdict (the trial could not run): the next
    /// caller may try.
    pub fn release_trial(&self, target: &str) {
        self.with(target, |circuit| {
            if let Some(opened) = circuit.open.as_mut() {
                opened.trial = false;
            }
        });
    }

    /// The circuit of `target`, for the API.
    pub fn state(&self, target: &str, now: DateTime<Utc>) -> CircuitState {
        self.with(target, |circuit| match circuit.open {
            None => CircuitState {
                state: "closed",
                reason: None,
                until: None,
                consecutive_failures: circuit.consecutive_failures,
            },
            Some(opened) => CircuitState {
                state: if opened.trial || now >= opened.until {
                    "half_open"
                } else {
                    "open"
                },
                reason: Some(opened.reason),
                until: Some(opened.until),
                consecutive_failures: circuit.consecutive_failures,
            },
        })
    }
}

/// Opens an open circuit again after a failed trial, doubling its cool-down.
fn reopen(opened: &mut Opened, now: DateTime<Utc>, settings: BreakerSettings) {
    opened.cooldown = next_cooldown(opened.cooldown, settings.max_cooldown);
    opened.until = now + chrono_duration(opened.cooldown);
    opened.trial = false;
}

/// The cool-down after `current`: doubled, at most `max`.
pub fn next_cooldown(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).min(max)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

fn set_gauge(target: &str, open: bool) {
    metrics::gauge!(telemetry::TARGET_CIRCUIT_OPEN, "target" => target.to_string()).set(if open {
        1.0
    } else {
        0.0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        crate::clock::parse("2026-11-25T10:00:00Z").unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    #[test]
    fn opens_after_consecutive_transient_failures_and_success_resets() {
        let breakers = Breakers::new(BreakerSettings::default());
        for _ in 0..4 {
            assert!(!breakers.record_transient("dc", t0()));
        }
        breakers.record_success("dc");
        for _ in 0..4 {
            assert!(!breakers.record_transient("dc", t0()));
        }
        assert_eq!(breakers.check("dc", t0()), Gate::Closed);
        assert!(breakers.record_transient("dc", t0()));
        assert_eq!(
            breakers.check("dc", t0() + secs(10)),
            Gate::Open {
                reason: OpenReason::Transient,
                until: t0() + secs(30)
            }
        );
        // Other targets are unaffected.
        assert_eq!(breakers.check("jama", t0()), Gate::Closed);
    }

    #[test]
    fn half_open_admits_one_trial_and_doubles_the_cooldown_on_failure() {
        let breakers = Breakers::new(BreakerSettings::default());
        for _ in 0..5 {
            breakers.record_transient("dc", t0());
        }
        let later = t0() + secs(30);
        assert_eq!(
            breakers.check("dc", later),
            Gate::HalfOpen {
                reason: OpenReason::Transient
            }
        );
        assert!(matches!(breakers.check("dc", later), Gate::Open { .. }));
        assert!(breakers.record_transient("dc", later));
        assert_eq!(
            breakers.check("dc", later + secs(59)),
            Gate::Open {
                reason: OpenReason::Transient,
                until: later + secs(60)
            }
        );
        assert!(matches!(
            breakers.check("dc", later + secs(60)),
            Gate::HalfOpen { .. }
        ));
        breakers.record_success("dc");
        assert_eq!(breakers.check("dc", later + secs(60)), Gate::Closed);
        assert_eq!(breakers.state("dc", later).state, "closed");
    }

    #[test]
    fn auth_failure_opens_until_a_probe_succeeds() {
        let breakers = Breakers::new(BreakerSettings::default());
        let until = breakers.record_auth_failure("jama", t0());
        assert_eq!(until, t0() + secs(30));
        // A second 401 from another worker keeps the same probe time.
        assert_eq!(breakers.record_auth_failure("jama", t0() + secs(1)), until);
        assert_eq!(
            breakers.check("jama", until),
            Gate::HalfOpen {
                reason: OpenReason::AuthFailed
            }
        );
        let next = breakers.probe_result("jama", false, until);
        assert_eq!(next, Some(until + secs(60)));
        assert_eq!(breakers.state("jama", until).state, "open");
        assert!(matches!(
            breakers.check("jama", until + secs(60)),
            Gate::HalfOpen { .. }
        ));
        assert_eq!(breakers.probe_result("jama", true, until + secs(60)), None);
        assert_eq!(breakers.check("jama", until + secs(60)), Gate::Closed);
    }

    #[test]
    fn cooldown_doubles_up_to_the_cap() {
        let max = Duration::from_secs(600);
        let mut cooldown = Duration::from_secs(30);
        let mut seen = Vec::new();
        for _ in 0..7 {
            cooldown = next_cooldown(cooldown, max);
            seen.push(cooldown.as_secs());
        }
        assert_eq!(seen, [60, 120, 240, 480, 600, 600, 600]);
    }

    #[test]
    fn released_trial_lets_the_next_caller_try() {
        let breakers = Breakers::new(BreakerSettings::default());
        let until = breakers.record_auth_failure("dc", t0());
        assert!(matches!(breakers.check("dc", until), Gate::HalfOpen { .. }));
        breakers.release_trial("dc");
        assert!(matches!(breakers.check("dc", until), Gate::HalfOpen { .. }));
    }
}
