//! Judging answers that mean "already in place": a duplicate create, a delete of something
//! already gone, a grant already held. Idempotent where the target allows, never at the cost
//! of the wrong person.

use super::core::Core;
use crate::connector::{ConnectorError, ProvisionOutcome};
use crate::model::AccountRecord;

/// Whether the target answered HTTP 404 (the account or the membership is not there).
pub fn is_not_found(err: &ConnectorError) -> bool {
    matches!(
        err,
        ConnectorError::Permanent {
            status: Some(404),
            ..
        }
    )
}

/// Whether the target refused the request with HTTP 400 and a message containing `phrase`
/// (without letter case): how a REST target says "duplicate" or "already exists".
pub fn is_refusal_saying(err: &ConnectorError, phrase: &str) -> bool {
    matches!(
        err,
        ConnectorError::Permanent { status: Some(400), message, .. }
            if message.to_ascii_lowercase().contains(&phrase.to_ascii_lowercase())
    )
}

/// The outcome of a call whose error `already` recognises as "already in place": that error
/// becomes `AlreadyDone` (no account id), any other passes through.
pub fn already_done_if(
    result: Result<ProvisionOutcome, ConnectorError>,
    already: impl Fn(&ConnectorError) -> bool,
) -> Result<ProvisionOutcome, ConnectorError> {
    match result {
        Err(err) if already(&err) => Ok(ProvisionOutcome::AlreadyDone { account_id: None }),
        other => other,
    }
}

/// An account the target holds under the login name a create wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its target-native id.
    pub id: String,
    /// Its email, when the target has one.
    pub email: Option<String>,
}

impl From<AccountRecord> for Holder {
    /// The holder an account record describes (what `Reads::find_account` returns).
    fn from(account: AccountRecord) -> Self {
        Self {
            id: account.id,
            email: account.email,
        }
    }
}

/// Judges a create that the target refused as a duplicate (`original`), knowing who holds
/// the name (`holder`, looked up by the adapter):
/// * the same person (the task's `email`, compared without case and surrounding spaces) is
///   `AlreadyDone` with the holder's id;
/// * anyone else is `Permanent` "username X taken by account id N";
/// * nobody holding the name keeps the target's own words (`original`).
pub fn judge_duplicate(
    core: &Core,
    username: &str,
    email: Option<&str>,
    holder: Option<Holder>,
    original: ConnectorError,
) -> Result<ProvisionOutcome, ConnectorError> {
    let Some(holder) = holder else {
        return Err(original);
    };
    let same_email = match (email, holder.email.as_deref()) {
        (Some(wanted), Some(found)) => wanted.trim().eq_ignore_ascii_case(found.trim()),
        _ => false,
    };
    if same_email {
        tracing::info!(
            target = %core.target(),
            account_id = %holder.id,
            "The user to create already exists with the task's email; counting it as done."
        );
        Ok(ProvisionOutcome::AlreadyDone {
            account_id: Some(holder.id),
        })
    } else {
        Err(ConnectorError::Permanent {
            target: core.target().to_string(),
            status: Some(400),
            message: format!("username {username} taken by account id {}", holder.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::kit::testing::assert_error;
    use crate::connector::template::{Escape, TemplateCatalog, TemplateSet};
    use crate::connector::{Capabilities, ErrorClass};

    fn core() -> Core {
        let catalog = TemplateCatalog {
            defaults: &[],
            optional: &[],
            escape: Escape::Json,
        };
        let templates = TemplateSet::from_catalog("t", &catalog, &Default::default()).unwrap();
        Core::new::<crate::connector::jama::JamaConnector>(
            "t",
            50,
            Capabilities::default(),
            templates,
        )
    }

    fn refused(status: u16, message: &str) -> ConnectorError {
        ConnectorError::Permanent {
            target: "t".into(),
            status: Some(status),
            message: message.into(),
        }
    }

    fn holder(email: Option<&str>) -> Option<Holder> {
        Some(Holder {
            id: "7".into(),
            email: email.map(str::to_string),
        })
    }

    #[test]
    fn refusals_are_recognised_by_status_and_words() {
        assert!(is_refusal_saying(
            &refused(400, "User Already EXISTS"),
            "already exists"
        ));
        assert!(!is_refusal_saying(
            &refused(409, "already exists"),
            "already exists"
        ));
        assert!(!is_refusal_saying(
            &refused(400, "invalid email"),
            "already exists"
        ));
        assert!(is_not_found(&refused(404, "gone")));
        assert!(!is_not_found(&refused(400, "gone")));
        let done = already_done_if(Err(refused(404, "gone")), is_not_found).unwrap();
        assert_eq!(done, ProvisionOutcome::AlreadyDone { account_id: None });
        let err = already_done_if(Err(refused(400, "bad")), is_not_found).unwrap_err();
        assert_error(&err, ErrorClass::Permanent, "bad");
    }

    #[test]
    fn a_duplicate_is_done_only_for_the_same_person() {
        let core = core();
        let original = || refused(400, "duplicate username");
        let same = judge_duplicate(
            &core,
            "jane",
            Some(" Jane@Example.com "),
            holder(Some("jane@example.com")),
            original(),
        );
        assert_eq!(
            same.unwrap(),
            ProvisionOutcome::AlreadyDone {
                account_id: Some("7".into())
            }
        );
        for found in [holder(Some("other@example.com")), holder(None)] {
            let err = judge_duplicate(&core, "jane", Some("jane@example.com"), found, original())
                .unwrap_err();
            assert_error(
                &err,
                ErrorClass::Permanent,
                "username jane taken by account id 7",
            );
        }
        let err = judge_duplicate(
            &core,
            "jane",
            None,
            holder(Some("jane@example.com")),
            original(),
        )
        .unwrap_err();
        assert_error(&err, ErrorClass::Permanent, "taken by account id 7");
        let err =
            judge_duplicate(&core, "jane", Some("jane@example.com"), None, original()).unwrap_err();
        assert_error(&err, ErrorClass::Permanent, "duplicate username");
    }
}
