use tailguard::breaker::Outcome;

/// Says what a call's result tells the breaker about the dependency's health.
///
/// Implemented for every `Fn(Result<&Res, &E>) -> Outcome`. A response can be a failure (a
/// `5xx`), an error can say nothing about the dependency ([`Outcome::Ignored`], for a request
/// the caller got wrong):
///
/// ```
/// use tailguard::breaker::Outcome;
/// use tailguard_tower::breaker::Classify;
///
/// let status = |result: Result<&u16, &std::io::Error>| match result {
///     Ok(code) if *code >= 500 => Outcome::Failure,
///     Ok(_) => Outcome::Success,
///     Err(_) => Outcome::Failure,
/// };
/// assert_eq!(status.classify(Ok(&503)), Outcome::Failure);
/// assert_eq!(status.classify(Ok(&404)), Outcome::Success);
/// ```
pub trait Classify<Res, E> {
    /// What `result` says about the dependency.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: a response is a success, an error a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsFail;

impl<Res, E> Classify<Res, E> for ErrorsFail {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}
