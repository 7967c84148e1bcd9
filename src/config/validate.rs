//! The validation pass. (Being written.)

/// One problem with the config: which key, its value (unless secret), and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    /// The dotted key, e.g. `jobs.digicert-accounts.schedule`.
    pub key: String,
    /// The offending value, unless it is a secret.
    pub value: Option<String>,
    /// Why it is wrong and what to do.
    pub message: String,
}

/// Something worth telling the operator that does not stop idsync.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigWarning {
    /// The dotted key, or `(file)`.
    pub key: String,
    /// What to do about it.
    pub message: String,
}
