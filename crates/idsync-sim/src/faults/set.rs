//! The installed fault rules of one simulator: the status a request gets, or how its
//! successful answer is broken, spending each rule's `times`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;

use super::effects;
use super::{FaultEffect, FaultRule};

/// What a fault rule looks at in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    /// The method, e.g. `GET`.
    pub(crate) method: &'a str,
    /// The API root the simulator serves under, e.g. `/services/v2`.
    pub(crate) api_root: &'a str,
    /// The whole request path.
    pub(crate) full_path: &'a str,
    /// The path below the API root, starting with `/`.
    pub(crate) api_path: &'a str,
    /// The raw query string, if any.
    pub(crate) query: Option<&'a str>,
    /// The local names of the request elements the call carries (a SOAP batch's inner
    /// requests); empty where the simulator does not read them.
    pub(crate) requests: &'a [&'a str],
}

/// How the fault layer is to break one successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Breakage {
    /// Send half the body, then reset the connection.
    Reset,
    /// Declare the whole length, send half, close.
    Truncate,
    /// Send the body slowly.
    Drip {
        interval: Duration,
        chunk_bytes: usize,
    },
    /// Send this body (whole) instead.
    Replace(Bytes),
}

/// The installed rules, checked in the order they were added, and what `RepeatPage` rules
/// need: the last successful body per method and path.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<FaultRule>,
    /// The last successful body of each `(method, path)` a `RepeatPage` rule may serve
    /// again; kept only while such a rule is installed.
    pub(super) pages: BTreeMap<(String, String), Bytes>,
}

impl FaultSet {
    /// Installs a rule (call [`FaultRule::validate`] first). A rule with `times = 0` is a no-op.
    pub(crate) fn push(&mut self, rule: FaultRule) {
        if rule.times != Some(0) {
            self.rules.push(rule);
        }
    }

    /// Removes every rule.
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.pages.clear();
    }

    /// The rules still installed, with `times` counting what is left.
    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// Whether any rule breaks answers (anything but `Status`): the fault layer has work.
    pub(crate) fn breaks_answers(&self) -> bool {
        self.rules.iter().any(|rule| !rule.effect.is_status())
    }

    /// The status of the first `Status` rule matching `request`, spending one of its `times`.
    pub(crate) fn take_match(&mut self, request: &RequestFacts<'_>) -> Option<u16> {
        self.take_status(request, |_| true)
    }

    /// Like [`take_match`](Self::take_match), but only rules that name a path prefix are
    /// considered: for endpoints outside the API root (an OAuth token endpoint), which a
    /// catch-all rule such as `fail_next` should not hit.
    pub(crate) fn take_path_match(&mut self, request: &RequestFacts<'_>) -> Option<u16> {
        self.take_status(request, |rule| rule.path_prefix.is_some())
    }

    fn take_status(
        &mut self,
        request: &RequestFacts<'_>,
        eligible: impl Fn(&FaultRule) -> bool,
    ) -> Option<u16> {
        let index = self
            .rules
            .iter()
            .position(|rule| rule.effect.is_status() && eligible(rule) && rule.matches(request))?;
        let status = self.rules.get(index)?.status();
        self.spend(index);
        status
    }

    /// Decides how to break a successful answer to `request` whose body is `body` (its media
    /// type `media`): the first matching rule that can apply, spending one of its `times`,
    /// with the effect's name. `outside_root`: the request is outside the API root, where
    /// only rules naming a path prefix apply. Remembers the body for `RepeatPage` rules.
    pub(crate) fn break_answer(
        &mut self,
        request: &RequestFacts<'_>,
        outside_root: bool,
        body: &Bytes,
        media: &str,
    ) -> Option<(&'static str, Breakage)> {
        let key = (request.method.to_owned(), request.full_path.to_owned());
        let eligible = |rule: &FaultRule| {
            !rule.effect.is_status() && (!outside_root || rule.path_prefix.is_some())
        };
        let chosen = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| eligible(rule) && rule.matches(request))
            .find_map(|(index, rule)| {
                let breakage = self.breakage(&rule.effect, &key, body, media)?;
                Some((index, rule.effect.name(), breakage))
            });
        // Remember this answer for a later repeat, unless it is itself a repeat.
        let remembers = self.rules.iter().any(|rule| {
            rule.effect == FaultEffect::RepeatPage
                && eligible(rule)
                && rule.matches_but_query(request)
        });
        if remembers && !matches!(&chosen, Some((_, "repeat_page", _))) {
            self.pages.insert(key, body.clone());
        }
        let spent = chosen.map(|(index, name, breakage)| {
            self.spend(index);
            (name, breakage)
        });
        if !self
            .rules
            .iter()
            .any(|rule| rule.effect == FaultEffect::RepeatPage)
        {
            self.pages.clear();
        }
        spent
    }

    /// How `effect` breaks the answer `body` (to the request `key`), or `None` when it cannot
    /// apply to it (no earlier page to repeat, no total to move, nothing to rewrite).
    fn breakage(
        &self,
        effect: &FaultEffect,
        key: &(String, String),
        body: &Bytes,
        media: &str,
    ) -> Option<Breakage> {
        match effect {
            FaultEffect::Status(_) => None,
            FaultEffect::Reset => Some(Breakage::Reset),
            FaultEffect::Truncate => Some(Breakage::Truncate),
            FaultEffect::Malformed => Some(Breakage::Replace(effects::malformed(body, media))),
            FaultEffect::Drip {
                interval,
                chunk_bytes,
            } => Some(Breakage::Drip {
                interval: *interval,
                chunk_bytes: *chunk_bytes,
            }),
            FaultEffect::RepeatPage => self.pages.get(key).cloned().map(Breakage::Replace),
            FaultEffect::TotalDrift { delta } => {
                effects::drift_total(body, *delta).map(Breakage::Replace)
            }
            FaultEffect::Rewrite { find, replace } => {
                effects::rewrite(body, find, replace).map(Breakage::Replace)
            }
        }
    }

    /// Spends one of the `times` of rule `index`, retiring it when none are left.
    fn spend(&mut self, index: usize) {
        let Some(rule) = self.rules.get_mut(index) else {
            return;
        };
        if let Some(left) = rule.times.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.rules.remove(index);
            }
        }
    }
}
