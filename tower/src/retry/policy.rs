use tailguard::retry::Decision;

/// Decides, from a request and what its attempt returned, whether to retry.
///
/// [`Decision::Stop`] hands the outcome to the caller as it is: a response is returned, an
/// error fails the call. [`Decision::Retry`] and [`Decision::RetryAfter`] ask for another
/// attempt, which the core's [`RetryState`](tailguard::retry::RetryState) grants or refuses
/// (attempts, deadline, budget); a retryable response that cannot be retried is returned as the
/// answer, so a `503` after the last attempt reaches the caller as a `503`.
///
/// Implemented for every `Fn(&Req, Result<&Res, &E>) -> Decision`:
///
/// ```
/// use tailguard::retry::Decision;
/// use tailguard_tower::retry::Policy;
///
/// // Retry errors, and responses that say "busy"; never retry a "POST".
/// let policy = |request: &&str, result: Result<&u16, &std::io::Error>| {
///     if request.starts_with("POST") {
///         return Decision::Stop;
///     }
///     match result {
///         Ok(&503) | Err(_) => Decision::Retry,
///         Ok(_) => Decision::Stop,
///     }
/// };
/// assert_eq!(policy.decide(&"GET /", Ok(&503)), Decision::Retry);
/// assert_eq!(policy.decide(&"GET /", Ok(&200)), Decision::Stop);
/// assert_eq!(policy.decide(&"POST /", Ok(&503)), Decision::Stop);
/// ```
pub trait Policy<Req, Res, E> {
    /// The decision for `result`, the outcome of an attempt at `request`.
    fn decide(&self, request: &Req, result: Result<&Res, &E>) -> Decision;
}

impl<F, Req, Res, E> Policy<Req, Res, E> for F
where
    F: Fn(&Req, Result<&Res, &E>) -> Decision,
{
    #[inline]
    fn decide(&self, request: &Req, result: Result<&Res, &E>) -> Decision {
        self(request, result)
    }
}

/// The default policy: retry every error, accept every response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryErrors;

impl<Req, Res, E> Policy<Req, Res, E> for RetryErrors {
    #[inline]
    fn decide(&self, _: &Req, result: Result<&Res, &E>) -> Decision {
        match result {
            Ok(_) => Decision::Stop,
            Err(_) => Decision::Retry,
        }
    }
}
