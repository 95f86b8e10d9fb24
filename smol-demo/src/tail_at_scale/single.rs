//! One run of `tailguard-demo tail-at-scale` as the command runs it: a progress line on a
//! terminal, and on SIGINT (Ctrl-C) or SIGTERM the modes that finished, printed.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_signal::Signal;
use futures_lite::future;

use super::command::Args;
use super::interleave;
use super::live::{self, LiveConfig, LiveModeReport};
use super::sim::{self, Mode, ModeReport, SimConfig};
use super::{table, to_json, write_plot};
use crate::load::tidy;
use crate::rt::{self, Runtime};
use crate::signals::{interrupted_status, interruption, signal_name};

/// Which modes an interrupted run finished, and which it did not (the one it was running,
/// `during`, first).
fn interrupted_note(
    signal: Signal,
    finished: &[Mode],
    during: Option<Mode>,
    elapsed: Duration,
) -> String {
    let unfinished: Vec<&str> = Mode::ALL
        .iter()
        .filter(|mode| !finished.contains(mode))
        .map(|mode| mode.name())
        .collect();
    format!(
        "interrupted by {} after {:.1} s{}: {} not measured{}",
        signal_name(signal),
        elapsed.as_secs_f64(),
        during.map_or_else(String::new, |mode| format!(" during {}", mode.name())),
        unfinished.join(", "),
        if finished.is_empty() {
            " (no mode had finished)"
        } else {
            ""
        }
    )
}

/// The CPU time the default simulation takes in a release build, measured (the work grows with
/// requests x keys): five modes on one worker per replica, about 18 s (issue 15's event loop;
/// 47 s before it).
const DEFAULT_SIM_SECONDS: f64 = 18.0;

/// How long the simulation should take, as a note for the progress line: scaled from the
/// default size's CPU time in a release build.
fn expected_time(config: &SimConfig) -> String {
    let defaults = SimConfig::default();
    let size = |c: &SimConfig| c.requests as f64 * c.keys_per_request as f64;
    let seconds = DEFAULT_SIM_SECONDS * size(config) / size(&defaults);
    let threads = Mode::ALL.len();
    if cfg!(debug_assertions) {
        format!(
            " (about {seconds:.0} s of CPU over {threads} threads in a release build; this \
             debug build is several times slower)"
        )
    } else {
        format!(" (about {seconds:.0} s of CPU over {threads} threads; longer on a busy machine)")
    }
}

enum Event {
    /// A mode's report, boxed: it is large, and the channel holds events of either kind.
    Done(usize, Box<Result<ModeReport, String>>),
    Signal(Signal),
}

/// `--sim`: every mode in parallel, one thread each, with a progress line on a terminal.
pub(super) fn run_sim(args: &Args, config: &SimConfig) -> ExitCode {
    let (events, received) = mpsc::channel();
    match interruption() {
        Ok(interrupted) => {
            let events = events.clone();
            std::thread::spawn(move || {
                let _ = events.send(Event::Signal(smol::block_on(interrupted)));
            });
        }
        Err(error) => eprintln!("tail-at-scale: cannot listen for SIGINT/SIGTERM: {error}"),
    }
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let (events, config) = (events.clone(), config.clone());
        std::thread::spawn(move || {
            let report = std::panic::catch_unwind(|| sim::run_mode(&config, mode));
            let report = match report {
                Ok(report) => report.map_err(|e| e.to_string()),
                Err(_) => Err(format!("the simulation of {} panicked", mode.name())),
            };
            let _ = events.send(Event::Done(i, Box::new(report)));
        });
    }
    drop(events);

    let started = Instant::now();
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let expected = expected_time(config);
    if !progress.enabled {
        // No progress line off a terminal: one line, so a log shows what is running.
        eprintln!(
            "tail-at-scale --sim: {} requests x {} keys in each mode, the modes in parallel{expected}...",
            config.requests, config.keys_per_request
        );
    }
    let mut done: Vec<Option<ModeReport>> = Mode::ALL.iter().map(|_| None).collect();
    let mut signal = None;
    while signal.is_none() && done.iter().any(Option::is_none) {
        match received.recv_timeout(Duration::from_millis(250)) {
            Ok(Event::Done(i, report)) => match *report {
                Ok(report) => done[i] = Some(report),
                Err(message) => {
                    progress.clear();
                    eprintln!("tail-at-scale: {message}");
                    return ExitCode::FAILURE;
                }
            },
            Ok(Event::Signal(received)) => signal = Some(received),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let finished = done.iter().filter(|r| r.is_some()).count();
        progress.draw(&format!(
            "tail-at-scale --sim: {finished} of {} modes done, {:.0} s elapsed{expected}",
            Mode::ALL.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    progress.clear();
    let reports: Vec<ModeReport> = done.into_iter().flatten().collect();
    let note = signal.map(|signal| {
        let finished: Vec<Mode> = reports.iter().map(|r| r.mode).collect();
        (
            signal,
            interrupted_note(signal, &finished, None, started.elapsed()),
        )
    });
    if args.json {
        let mut json = to_json(&reports);
        if let Some((_, note)) = &note {
            json["interrupted"] = serde_json::Value::String(note.clone());
        }
        println!("{}", tidy(json));
    } else {
        if !reports.is_empty() {
            print!("{}", table(config, &reports));
        }
        if let Some((_, note)) = &note {
            println!("{note}");
        }
    }
    match note {
        Some((signal, note)) => {
            if args.json {
                eprintln!("tail-at-scale: {note}");
            }
            interrupted_status(signal)
        }
        None => ExitCode::SUCCESS,
    }
}

/// The live experiment: the modes interleaved (or one after the other with `--sequential`),
/// then the plot and the table (or JSON).
pub(super) fn run_live(args: &Args, config: &LiveConfig) -> ExitCode {
    let path = args.out_path();
    let runtime = Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let interrupted = match interruption() {
        Ok(interrupted) => interrupted,
        Err(error) => {
            eprintln!("tail-at-scale: cannot listen for SIGINT/SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let mut interrupted = std::pin::pin!(interrupted);
        if !config.sequential {
            eprintln!(
                "tail-at-scale: {} interleaved ({} fan-outs/s in all, {:?} of load per mode)...",
                config
                    .modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                config.rate,
                config.duration
            );
            let signal = std::cell::Cell::new(None);
            let stop = async {
                signal.set(Some(interrupted.as_mut().await));
            };
            let run = interleave::run_until(runtime.executor(), config, |_| {}, stop).await;
            return match run {
                Ok((reports, _)) => Ok((reports, signal.take().map(|s| (s, None)))),
                Err(error) => Err(error.to_string()),
            };
        }
        let mut reports: Vec<LiveModeReport> = Vec::with_capacity(config.modes.len());
        for &mode in &config.modes {
            eprintln!(
                "tail-at-scale: {} ({} fan-outs/s for {:?})...",
                mode.name(),
                config.rate,
                config.duration
            );
            let measured = async { Ok(live::run_mode(runtime.executor(), config, mode).await) };
            let stopped = async { Err(interrupted.as_mut().await) };
            match future::or(measured, stopped).await {
                Ok(Ok(report)) => reports.push(report),
                Ok(Err(error)) => return Err(error.to_string()),
                Err(signal) => return Ok((reports, Some((signal, Some(mode))))),
            }
        }
        Ok((reports, None))
    });
    drop(runtime);
    let (reports, signal) = match outcome {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("tail-at-scale: {message}");
            return ExitCode::FAILURE;
        }
    };
    let note = signal.map(|(signal, during)| match during {
        Some(during) => {
            let finished: Vec<Mode> = reports.iter().map(|r| r.mode).collect();
            interrupted_note(signal, &finished, Some(during), started.elapsed())
        }
        // Interleaved: every mode measured until the signal.
        None => format!(
            "interrupted by {} after {:.1} s: every mode measured up to then",
            signal_name(signal),
            started.elapsed().as_secs_f64()
        ),
    });
    if !reports.is_empty() {
        if let Err(message) = write_plot(config, &reports, &path) {
            eprintln!("tail-at-scale: {message}");
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        let mut json = live::to_json(&reports);
        if !reports.is_empty() {
            json["svg"] = serde_json::Value::String(path.display().to_string());
        }
        if let Some(note) = &note {
            json["interrupted"] = serde_json::Value::String(note.clone());
        }
        println!("{}", tidy(json));
    } else {
        let mut text = String::new();
        if !reports.is_empty() {
            text = live::table(config, &reports);
            let _ = writeln!(
                text,
                "latency CDF of the modes measured: {}",
                path.display()
            );
        }
        if let Some(note) = &note {
            let _ = writeln!(text, "{note}");
        }
        print!("{text}");
    }
    match (signal, note) {
        (Some((signal, _)), Some(note)) => {
            if args.json {
                eprintln!("tail-at-scale: {note}");
            }
            interrupted_status(signal)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// One line of progress on stderr, redrawn in place, drawn only on a terminal.
struct Progress {
    enabled: bool,
    width: usize,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress { enabled, width: 0 }
    }

    fn draw(&mut self, line: &str) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{line:<width$}", width = self.width);
            let _ = stderr.flush();
            self.width = self.width.max(line.chars().count());
        }
    }

    fn clear(&mut self) {
        if self.enabled && self.width > 0 {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{}\r", " ".repeat(self.width));
            let _ = stderr.flush();
            self.width = 0;
        }
    }
}
