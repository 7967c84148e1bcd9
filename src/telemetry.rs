//! Logging setup and the metric names of the public contract (all prefixed `idsync_`).
//!
//! Metric labels come from small bounded sets (target, job, kind, outcome, class): never an
//! account name, a task id or a raw message.

use crate::config::{LogConfig, LogFormat};

/// `idsync_job_runs_total{job,target,kind,outcome}`.
pub const JOB_RUNS_TOTAL: &str = "idsync_job_runs_total";
/// `idsync_job_duration_seconds{job,target,kind}` (histogram).
pub const JOB_DURATION_SECONDS: &str = "idsync_job_duration_seconds";
/// `idsync_job_skipped_total{job,target}`.
pub const JOB_SKIPPED_TOTAL: &str = "idsync_job_skipped_total";
/// `idsync_job_last_success_timestamp_seconds{job,target}` (gauge).
pub const JOB_LAST_SUCCESS: &str = "idsync_job_last_success_timestamp_seconds";
/// `idsync_import_objects_total{target,object,change}`.
pub const IMPORT_OBJECTS_TOTAL: &str = "idsync_import_objects_total";
/// `idsync_import_anomalies_total{target,object,anomaly}`; anomaly
/// `unknown_status|bad_field`: what an import's mapping tolerated instead of failing the
/// read (counted for runs that record, i.e. not dry runs).
pub const IMPORT_ANOMALIES_TOTAL: &str = "idsync_import_anomalies_total";
/// `idsync_target_requests_total{target,status_class}`; status_class
/// `2xx|3xx|4xx|429|5xx|timeout|connect`.
pub const TARGET_REQUESTS_TOTAL: &str = "idsync_target_requests_total";
/// `idsync_target_request_duration_seconds{target}` (histogram).
pub const TARGET_REQUEST_DURATION_SECONDS: &str = "idsync_target_request_duration_seconds";
/// `idsync_target_circuit_open{target}` (gauge, 0/1).
pub const TARGET_CIRCUIT_OPEN: &str = "idsync_target_circuit_open";
/// `idsync_token_refreshes_total{target,outcome}`; outcome
/// `success|auth|transient|malformed|permanent` (one per refresh, after its retries).
pub const TOKEN_REFRESHES_TOTAL: &str = "idsync_token_refreshes_total";
/// `idsync_tasks{target,status}` (gauge): tasks per status, refreshed after each
/// provisioning pass.
pub const TASKS: &str = "idsync_tasks";
/// `idsync_task_attempts_total{target,operation,outcome}`; outcome
/// `succeeded|already_done|transient|rate_limited|auth|permanent` (attempts that called the
/// target; attempts refused by an open circuit are not counted).
pub const TASK_ATTEMPTS_TOTAL: &str = "idsync_task_attempts_total";
/// `idsync_task_oldest_pending_age_seconds{target}` (gauge; 0 when nothing is pending).
pub const TASK_OLDEST_PENDING_AGE_SECONDS: &str = "idsync_task_oldest_pending_age_seconds";
/// `idsync_build_info{version}` (gauge, always 1).
pub const BUILD_INFO: &str = "idsync_build_info";

/// The kind of a metric family, for its description.
#[derive(Debug, Clone, Copy)]
enum Family {
    Counter,
    Gauge,
    Histogram,
}

/// The HELP text of every metric family.
const DESCRIPTIONS: &[(&str, Family, &str)] = &[
    (JOB_RUNS_TOTAL, Family::Counter, "Job runs, by job, target, kind and outcome."),
    (JOB_DURATION_SECONDS, Family::Histogram, "How long job runs took, in seconds."),
    (JOB_SKIPPED_TOTAL, Family::Counter, "Scheduled ticks skipped because the job was still running."),
    (JOB_LAST_SUCCESS, Family::Gauge, "When the job last succeeded, as a Unix timestamp."),
    (IMPORT_OBJECTS_TOTAL, Family::Counter, "Records an import changed (or left unchanged), by object and change."),
    (IMPORT_ANOMALIES_TOTAL, Family::Counter, "Anomalies an import tolerated in the records it read: unknown_status (read as inactive) or bad_field (field left out)."),
    (TARGET_REQUESTS_TOTAL, Family::Counter, "Requests to targets, by status class."),
    (TARGET_REQUEST_DURATION_SECONDS, Family::Histogram, "How long target requests took, in seconds."),
    (TARGET_CIRCUIT_OPEN, Family::Gauge, "1 while the target's circuit is open (tasks wait), else 0."),
    (TOKEN_REFRESHES_TOTAL, Family::Counter, "OAuth token refreshes, by outcome."),
    (TASKS, Family::Gauge, "Provisioning tasks, by status."),
    (TASK_ATTEMPTS_TOTAL, Family::Counter, "Provisioning attempts that called the target, by operation and outcome."),
    (TASK_OLDEST_PENDING_AGE_SECONDS, Family::Gauge, "Age of the oldest pending task, in seconds (0 when none)."),
    (BUILD_INFO, Family::Gauge, "The running build (always 1)."),
];

/// Gives `recorder` the HELP text of every metric family.
fn describe(recorder: &impl metrics::Recorder) {
    for (name, family, text) in DESCRIPTIONS {
        let (key, text) = (
            metrics::KeyName::from(*name),
            metrics::SharedString::from(*text),
        );
        match family {
            Family::Counter => recorder.describe_counter(key, None, text),
            Family::Gauge => recorder.describe_gauge(key, None, text),
            Family::Histogram => recorder.describe_histogram(key, None, text),
        }
    }
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
#[error("invalid log level or filter `{level}`: {message}")]
pub struct LogInitError {
    /// The configured level.
    pub level: String,
    /// The parser's message.
    pub message: String,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides the configured level.
/// Logs go to stderr so that stdout stays clean for command output.
pub fn init_logging(config: &LogConfig) -> Result<(), LogInitError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(&from_env),
        _ => EnvFilter::try_new(&config.level),
    }
    .map_err(|err| LogInitError {
        level: config.level.clone(),
        message: err.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, demo re-entry) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(colours_on_stderr())
            .fmt_fields(terminal_safe_fields())
            .try_init(),
    };
    Ok(())
}

/// Whether text logs may colour their level names: only on a terminal, and not when
/// `NO_COLOR` is set. A log file or journald then holds no escape sequence at all.
fn colours_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The field formatter of text logs: `message name=value …` like tracing's default, with
/// every control and bidi character of a message or value escaped by [`crate::visible`]
/// (a `%` field is written with `Display`, which escapes nothing by itself), so target data
/// in a log line cannot act on the terminal or start a forged line. JSON logs do not use it:
/// they stay exact JSON.
fn terminal_safe_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use std::fmt::Write;
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let mut out = crate::visible::EscapingWriter::new(writer);
        if field.name() == "message" {
            write!(out, "{value:?}")
        } else {
            write!(out, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// The process-wide Prometheus recorder, installed on first use (later calls, e.g. from
/// tests that start several daemons in one process, share it).
pub fn metrics_handle() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(JOB_DURATION_SECONDS.to_string()),
                &[0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0],
            )
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full(TARGET_REQUEST_DURATION_SECONDS.to_string()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        describe(&recorder);
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What one event (inside one span) looks like in the text format.
    fn text_log_of(emit: impl FnOnce()) -> String {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(terminal_safe_fields())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    const HOSTILE: &str = "\u{1b}[2J\u{1b}[31mEVIL\u{202e}txt.exe\nFORGED line";

    #[test]
    fn text_logs_escape_messages_and_every_kind_of_field() {
        let log = text_log_of(|| {
            let span = tracing::info_span!("import", account = %HOSTILE);
            let _entered = span.enter();
            tracing::warn!(
                display = %HOSTILE,
                debug = ?HOSTILE,
                plain = HOSTILE,
                "could not map {HOSTILE}"
            );
        });
        assert!(!log.contains('\u{1b}'), "{log:?}");
        assert!(!log.contains('\u{202e}'), "{log:?}");
        assert_eq!(log.lines().count(), 1, "{log:?}");
        assert!(
            log.contains(
                "could not map \\u{1b}[2J\\u{1b}[31mEVIL\\u{202e}txt.exe\\u{a}FORGED line"
            ),
            "{log}"
        );
        assert!(log.contains("display=\\u{1b}[2J"), "{log}");
        assert!(log.contains("import{account=\\u{1b}[2J"), "{log}");
        assert!(log.contains("plain=\"\\u{1b}[2J"), "{log}");
    }

    #[test]
    fn text_logs_leave_ordinary_values_alone() {
        let log = text_log_of(|| {
            tracing::info!(target_name = "jama", name = %"Zoë 山田 🙂", count = 3, "imported");
        });
        assert!(
            log.contains("imported target_name=\"jama\" name=Zoë 山田 🙂 count=3"),
            "{log}"
        );
    }
}
