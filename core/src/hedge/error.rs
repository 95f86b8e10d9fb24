use std::fmt;

/// Every attempt of a hedged call failed; here are their errors.
///
/// Errors are in the order the attempts failed, so [`last`](HedgeError::last) is the most recent
/// word from the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HedgeError<E> {
    errors: Vec<E>,
}

impl<E> HedgeError<E> {
    pub(crate) fn new(errors: Vec<E>) -> Self {
        debug_assert!(!errors.is_empty());
        HedgeError { errors }
    }

    /// The errors, in the order the attempts failed (never empty).
    pub fn errors(&self) -> &[E] {
        &self.errors
    }

    /// The errors, owned.
    pub fn into_errors(self) -> Vec<E> {
        self.errors
    }

    /// The error of the attempt that failed last.
    pub fn last(&self) -> &E {
        // Never empty: built only once at least one attempt failed.
        &self.errors[self.errors.len() - 1]
    }

    /// How many attempts were made (and failed).
    pub fn attempts(&self) -> usize {
        self.errors.len()
    }
}

impl<E: fmt::Display> fmt::Display for HedgeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        let attempts = if n == 1 { "attempt" } else { "attempts" };
        write!(
            f,
            "all {n} hedged {attempts} failed (raise `max_attempts` or the budget to try more); last error: {}",
            self.last()
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for HedgeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.last())
    }
}
