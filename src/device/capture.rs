//! The bookkeeping of CUDA Graph capture per batch size: whether to try a capture, what a
//! failure or success turns the record into, and the line `Plan::graph_status` shows.
//!
//! It holds no GPU objects, so the retry policy compiles and is tested without the `cuda`
//! feature; the CUDA backend keeps one [`CaptureRecord`] beside each captured graph.

/// Captures tried per batch size: the first, and one retry on a later call (a capture can
/// fail once on a cold start, when something still loads on first use).
pub(crate) const CAPTURE_ATTEMPTS: u32 = 2;

/// What happened to one batch size's capture so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum CaptureRecord {
    /// Not tried yet.
    #[default]
    NotYet,
    /// Captured; `first_failure` is why an earlier attempt failed, if one did.
    Captured {
        replays: u64,
        first_failure: Option<String>,
    },
    /// The last attempt failed for `reason`, after `attempts` attempts.
    Failed { reason: String, attempts: u32 },
}

impl CaptureRecord {
    /// Whether the next call with this batch size should try to capture.
    pub(crate) fn should_try(&self) -> bool {
        match self {
            CaptureRecord::NotYet => true,
            CaptureRecord::Captured { .. } => false,
            CaptureRecord::Failed { attempts, .. } => *attempts < CAPTURE_ATTEMPTS,
        }
    }

    /// The record after an attempt that captured.
    pub(crate) fn captured(&self) -> CaptureRecord {
        let first_failure = match self {
            CaptureRecord::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        CaptureRecord::Captured {
            replays: 0,
            first_failure,
        }
    }

    /// The record after an attempt that failed for `reason`.
    pub(crate) fn failed(&self, reason: String) -> CaptureRecord {
        let attempts = match self {
            CaptureRecord::Failed { attempts, .. } => attempts + 1,
            _ => 1,
        };
        CaptureRecord::Failed { reason, attempts }
    }

    /// Counts one replay of a captured graph.
    pub(crate) fn replayed(&mut self) {
        if let CaptureRecord::Captured { replays, .. } = self {
            *replays += 1;
        }
    }

    /// The status line for batch size `rows`.
    pub(crate) fn describe(&self, rows: usize) -> String {
        match self {
            CaptureRecord::NotYet => format!("rows {rows}: not captured yet"),
            CaptureRecord::Captured {
                replays,
                first_failure: None,
            } => format!("rows {rows}: captured, replayed {replays} time(s)"),
            CaptureRecord::Captured {
                replays,
                first_failure: Some(reason),
            } => format!(
                "rows {rows}: captured on the second try, replayed {replays} time(s); the \
                 first capture failed: {reason}"
            ),
            CaptureRecord::Failed { reason, attempts } if self.should_try() => format!(
                "rows {rows}: capture failed ({attempts} of {CAPTURE_ATTEMPTS} tries), plain \
                 path, will try again on the next call: {reason}"
            ),
            CaptureRecord::Failed { reason, attempts } => {
                format!("rows {rows}: capture failed {attempts} times, plain path: {reason}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_failure_is_retried_once_then_left_alone() {
        let record = CaptureRecord::default();
        assert!(record.should_try());
        let once = record.failed("CUBLAS_STATUS_EXECUTION_FAILED".into());
        assert!(once.should_try(), "one retry after the first failure");
        let line = once.describe(1);
        assert!(
            line.contains("will try again") && line.contains("EXECUTION_FAILED"),
            "{line}"
        );
        let twice = once.failed("again".into());
        assert!(!twice.should_try(), "no third attempt");
        assert_eq!(
            twice.describe(1),
            "rows 1: capture failed 2 times, plain path: again"
        );
    }

    #[test]
    fn a_retry_that_captures_says_why_the_first_failed() {
        let mut record = CaptureRecord::NotYet.failed("cold start".into()).captured();
        assert!(!record.should_try());
        record.replayed();
        record.replayed();
        assert_eq!(
            record.describe(8),
            "rows 8: captured on the second try, replayed 2 time(s); the first capture \
             failed: cold start"
        );
    }

    #[test]
    fn a_first_capture_reads_as_before() {
        let mut record = CaptureRecord::NotYet.captured();
        record.replayed();
        record.replayed();
        assert_eq!(record.describe(17), "rows 17: captured, replayed 2 time(s)");
        assert_eq!(
            CaptureRecord::NotYet.describe(3),
            "rows 3: not captured yet"
        );
        // Replays of a record that is not captured change nothing.
        let mut failed = CaptureRecord::NotYet.failed("x".into());
        let before = failed.clone();
        failed.replayed();
        assert_eq!(failed, before);
    }
}
