//! Signals for the subcommands: the serving ones stop at SIGINT or SIGTERM, the measuring ones
//! report what they measured and exit with the status a shell expects after the signal.

use std::future::Future;
use std::io;
use std::process::ExitCode;

use futures_lite::StreamExt;

use crate::server::log;

/// A future that ends at the first SIGINT or SIGTERM (logging which), for the serving commands.
/// Listening starts now, so a signal that arrives before the future is polled is not lost.
pub fn termination() -> io::Result<impl Future<Output = ()>> {
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])?;
    Ok(async move {
        if let Some(Ok(signal)) = signals.next().await {
            log(format_args!("received {}", signal_name(signal)));
        }
    })
}

/// A future that ends at the first SIGINT or SIGTERM with the signal, for the measuring
/// commands, which stop and report what they measured. Listening starts now.
pub fn interruption() -> io::Result<impl Future<Output = async_signal::Signal>> {
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])?;
    Ok(async move {
        while let Some(next) = signals.next().await {
            if let Ok(signal) = next {
                return signal;
            }
        }
        std::future::pending().await
    })
}

/// `SIGINT`, `SIGTERM`: a signal as a shell user knows it.
pub fn signal_name(signal: async_signal::Signal) -> &'static str {
    match signal {
        async_signal::Signal::Int => "SIGINT",
        async_signal::Signal::Term => "SIGTERM",
        _ => "a signal",
    }
}

/// The exit status of a run stopped by `signal` after printing what it measured: 128 plus the
/// signal's number, as a shell reports a process killed by it (130 for SIGINT, 143 for
/// SIGTERM).
pub fn interrupted_status(signal: async_signal::Signal) -> ExitCode {
    match signal {
        async_signal::Signal::Term => ExitCode::from(143),
        _ => ExitCode::from(130),
    }
}
