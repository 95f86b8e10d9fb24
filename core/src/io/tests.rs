//! `TimeoutIo` in virtual time, over an in-memory pipe: each limit, re-arming, and reads and
//! writes that never wait.

use super::*;
use crate::time::ManualTimer;
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use futures::task::noop_waker;
use std::pin::pin;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn read_idle_trips_after_the_limit() {
    let timer = ManualTimer::new();
    let (reader, _writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_idle(ms(100));
    let mut buf = [0u8; 8];
    let err = timer.block_on(io.read(&mut buf)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("read_idle"), "{err}");
    assert_eq!(timer.elapsed(), ms(100));
}

#[test]
fn steady_trickle_passes_read_idle_but_trips_read_total() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone())
        .read_idle(ms(100))
        .read_total(ms(1000));
    let t = timer.clone();
    let out = timer.block_on(async move {
        let sender = async {
            for _ in 0..100 {
                t.sleep(ms(60)).await;
                if writer.write_all(b"x").await.is_err() {
                    break;
                }
            }
        };
        let reader = async {
            let mut buf = [0u8; 8];
            let mut got = 0;
            loop {
                match io.read(&mut buf).await {
                    Ok(n) => got += n,
                    Err(e) => return (got, e),
                }
            }
        };
        futures::pin_mut!(sender);
        futures::pin_mut!(reader);
        match futures::future::select(reader, sender).await {
            futures::future::Either::Left((out, _)) => out,
            futures::future::Either::Right(_) => panic!("sender finished first"),
        }
    });
    let (got, err) = out;
    assert!(err.to_string().contains("read_total"), "{err}");
    // One byte per 60 ms for 1 s: 16 bytes, then the cap.
    assert_eq!(got, 16);
    assert_eq!(timer.elapsed(), ms(1000));
}

#[test]
fn progress_does_not_rearm_the_timer() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_idle(ms(100));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    // First wait arms the timer for t=100.
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    assert_eq!(timer.next_deadline(), Some(timer.now() + ms(100)));
    let armed = timer.next_deadline();
    // Many quick reads: the armed timer stays where it is.
    for _ in 0..10 {
        timer.advance(ms(5));
        futures::executor::block_on(writer.write_all(b"ab")).unwrap();
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
        assert_eq!(timer.next_deadline(), armed);
    }
    // At t=100 the timer fires early (last wait began at t=50): it moves to t=150, no error.
    timer.advance(ms(50));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    assert_eq!(timer.next_deadline(), Some(timer.now() + ms(50)));
    timer.advance(ms(50));
    match Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_pause_by_the_reader_is_not_the_peers_fault() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_idle(ms(100));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    futures::executor::block_on(writer.write_all(b"ab")).unwrap();
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
    // The application stops reading for a long time, then reads again.
    timer.advance(ms(10_000));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    timer.advance(ms(99));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    timer.advance(ms(1));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
}

#[test]
fn restart_read_total_gives_a_fresh_window() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_total(ms(100));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    timer.advance(ms(90));
    futures::executor::block_on(writer.write_all(b"a")).unwrap();
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
    io.restart_read_total();
    timer.advance(ms(90));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    timer.advance(ms(99));
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
    timer.advance(ms(1));
    match Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("read_total")),
        other => panic!("expected read_total, got {other:?}"),
    }
}

#[test]
fn data_arriving_after_the_total_deadline_is_refused() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_total(ms(100));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    futures::executor::block_on(writer.write_all(b"abcdefgh")).unwrap();
    assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_ready());
    timer.advance(ms(100));
    match Pin::new(&mut io).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn an_explicit_read_deadline_trips_and_says_so() {
    let timer = ManualTimer::new();
    let (reader, _writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone());
    io.set_read_deadline(Some(timer.now() + ms(40)));
    let mut buf = [0u8; 4];
    let err = timer.block_on(io.read(&mut buf)).unwrap_err();
    assert!(err.to_string().contains("set_read_deadline"), "{err}");
    assert_eq!(timer.elapsed(), ms(40));
    // Lifting the deadline lifts the limit.
    io.set_read_deadline(None);
    let waker = noop_waker();
    assert!(Pin::new(&mut io)
        .poll_read(&mut Context::from_waker(&waker), &mut buf)
        .is_pending());
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn write_idle_trips_when_the_peer_stops_reading() {
    let timer = ManualTimer::new();
    let (_reader, writer) = crate::test_util::pipe(4);
    let mut io = TimeoutIo::with_timer(writer, timer.clone()).write_idle(ms(250));
    let err = timer
        .block_on(io.write_all(b"more than four bytes"))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert!(err.to_string().contains("write_idle"), "{err}");
    assert_eq!(timer.elapsed(), ms(250));
}

#[test]
fn write_total_caps_a_slow_reader() {
    let timer = ManualTimer::new();
    let (mut reader, writer) = crate::test_util::pipe(1);
    let mut io = TimeoutIo::with_timer(writer, timer.clone())
        .write_idle(ms(100))
        .write_total(ms(300));
    let t = timer.clone();
    let err = timer.block_on(async move {
        let slow_reader = async {
            let mut b = [0u8; 1];
            loop {
                t.sleep(ms(50)).await;
                if reader.read(&mut b).await.unwrap_or(0) == 0 {
                    break;
                }
            }
        };
        let write = io.write_all(&[7u8; 100]);
        futures::pin_mut!(slow_reader);
        match futures::future::select(write, slow_reader).await {
            futures::future::Either::Left((result, _)) => result.unwrap_err(),
            futures::future::Either::Right(_) => panic!("reader ended first"),
        }
    });
    assert!(err.to_string().contains("write_total"), "{err}");
    assert_eq!(timer.elapsed(), ms(300));
}

#[test]
fn buf_read_is_limited_too() {
    let timer = ManualTimer::new();
    let (reader, mut writer) = crate::test_util::pipe(64);
    let io = TimeoutIo::with_timer(BufReader::new(reader), timer.clone()).read_idle(ms(100));
    let mut io = pin!(io);
    futures::executor::block_on(writer.write_all(b"line one\n")).unwrap();
    let mut line = String::new();
    timer.block_on(io.read_line(&mut line)).unwrap();
    assert_eq!(line, "line one\n");
    line.clear();
    let err = timer.block_on(io.read_line(&mut line)).unwrap_err();
    assert!(err.to_string().contains("read_idle"));
}

#[test]
fn no_limits_means_no_timer() {
    let timer = ManualTimer::new();
    let (reader, _writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone());
    let waker = noop_waker();
    let mut buf = [0u8; 4];
    assert!(Pin::new(&mut io)
        .poll_read(&mut Context::from_waker(&waker), &mut buf)
        .is_pending());
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn dropping_mid_wait_leaves_no_timer() {
    let timer = ManualTimer::new();
    let (reader, _writer) = crate::test_util::pipe(64);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_idle(ms(100));
    let waker = noop_waker();
    let mut buf = [0u8; 4];
    assert!(Pin::new(&mut io)
        .poll_read(&mut Context::from_waker(&waker), &mut buf)
        .is_pending());
    assert_eq!(timer.pending_sleeps(), 1);
    drop(io);
    assert_eq!(timer.pending_sleeps(), 0);
}
