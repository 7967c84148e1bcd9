//! What an import's mapping tolerated (see [`crate::connector::Anomaly`]): each anomaly is
//! logged at DEBUG as its page arrives and tallied per object and anomaly kind; when the
//! read ends, one WARN per object and kind sums them up with a few examples. A tenant with
//! 5,000 odd users logs one line, not 5,000, and the run's counts carry the totals.

use std::collections::BTreeMap;

use tracing::{debug, warn};

use crate::connector::Anomaly;
use crate::model::{AnomalyKind, ObjectKind, RunAnomalies};

/// How many examples a summary quotes.
const EXAMPLES: usize = 5;

/// The anomalies of one run so far.
#[derive(Debug, Default)]
pub(super) struct AnomalyTally {
    seen: BTreeMap<(ObjectKind, AnomalyKind), Seen>,
}

/// The anomalies of one object and kind: how many, and the first few.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    examples: Vec<String>,
}

/// The tally of one object kind's read: where the pages of one stream note their anomalies.
pub(super) struct ObjectTally<'a> {
    object: ObjectKind,
    tally: &'a mut AnomalyTally,
}

impl ObjectTally<'_> {
    /// Tallies the anomalies of one page, logging each at DEBUG.
    pub(super) fn note(&mut self, anomalies: &[Anomaly]) {
        self.tally.note(self.object, anomalies);
    }
}

impl AnomalyTally {
    /// Where the read of `object` records notes its anomalies.
    pub(super) fn of(&mut self, object: ObjectKind) -> ObjectTally<'_> {
        ObjectTally {
            object,
            tally: self,
        }
    }

    /// Tallies the anomalies of one page of `object` records, logging each at DEBUG.
    fn note(&mut self, object: ObjectKind, anomalies: &[Anomaly]) {
        for anomaly in anomalies {
            debug!(
                object = %object,
                anomaly = %anomaly.kind,
                record = %anomaly.record,
                field = %anomaly.field,
                detail = %anomaly.detail,
                "Record read with an anomaly."
            );
            let seen = self.seen.entry((object, anomaly.kind)).or_default();
            seen.count += 1;
            if seen.examples.len() < EXAMPLES {
                seen.examples.push(anomaly.to_string());
            }
        }
    }

    /// Logs one WARN per object and anomaly kind seen: the count and a few examples
    /// (`record (field: detail)`).
    pub(super) fn warn(&self) {
        for ((object, kind), seen) in &self.seen {
            let examples = seen.examples.join(", ");
            match kind {
                AnomalyKind::UnknownStatus => warn!(
                    object = %object,
                    anomaly = %kind,
                    count = seen.count,
                    examples = %examples,
                    "Records with a status idsync does not know were read as inactive; the raw \
                     value is in attributes.raw_status."
                ),
                AnomalyKind::BadField => warn!(
                    object = %object,
                    anomaly = %kind,
                    count = seen.count,
                    examples = %examples,
                    "Fields of an unexpected type were left out; the rest of each record was \
                     read."
                ),
            }
        }
    }

    /// The totals, per object and kind.
    pub(super) fn counts(&self) -> RunAnomalies {
        let mut counts = RunAnomalies::default();
        for ((object, kind), seen) in &self.seen {
            *counts.of_mut(*object).get_mut(*kind) += seen.count;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_per_object_and_kind_and_keeps_the_first_examples() {
        let mut tally = AnomalyTally::default();
        let statuses: Vec<Anomaly> = (0..7)
            .map(|n| Anomaly::unknown_status(&n.to_string(), "status", Some("pending")))
            .collect();
        tally.of(ObjectKind::Account).note(&statuses[..3]);
        tally.of(ObjectKind::Account).note(&statuses[3..]);
        tally.of(ObjectKind::Grant).note(&[Anomaly::bad_field(
            "9",
            "container",
            "an object",
            "text",
        )]);
        let counts = tally.counts();
        assert_eq!(counts.account.unknown_status, 7);
        assert_eq!(counts.account.bad_field, 0);
        assert_eq!(counts.grant.bad_field, 1);
        assert_eq!(counts.total(), 8);
        let seen = &tally.seen[&(ObjectKind::Account, AnomalyKind::UnknownStatus)];
        assert_eq!(
            seen.examples,
            ["0", "1", "2", "3", "4"]
                .map(|id| format!("{id} (status: `pending`)"))
                .to_vec()
        );
    }

    #[test]
    fn nothing_noted_counts_nothing() {
        let mut tally = AnomalyTally::default();
        tally.of(ObjectKind::Account).note(&[]);
        assert_eq!(tally.counts(), RunAnomalies::default());
    }
}
