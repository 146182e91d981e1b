//! The harness of the kill tests: this test binary re-run as a child process
//! for one `#[ignore]`d test, its stdout lines delivered on a channel so the
//! parent can kill it at a moment of its choosing.

#![allow(dead_code)] // Each kill test uses part of the harness.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running child test.
pub struct Child {
    process: std::process::Child,
    /// The child's stdout, line by line (libtest may prefix the first line
    /// with `test NAME ... `).
    pub lines: mpsc::Receiver<String>,
    reader: JoinHandle<()>,
}

/// Runs the ignored test `test` of this binary in a child process with `envs`.
pub fn spawn(test: &str, envs: &[(&str, String)]) -> Child {
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = process.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Child {
        process,
        lines,
        reader,
    }
}

impl Child {
    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
    }

    /// Waits for the child to end and its output to be drained.
    pub fn wait(mut self) -> ExitStatus {
        let status = self.process.wait().unwrap();
        self.reader.join().unwrap();
        status
    }
}

/// The line as the child printed it: libtest prints `test NAME ... ` before
/// the first line of a test's output.
pub fn strip_libtest_prefix(line: &str) -> &str {
    line.rsplit("... ").next().unwrap_or_default()
}

/// xorshift64: cheap, seedable randomness for kill moments and workloads.
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the clock: every run kills at other moments.
    pub fn from_clock() -> XorShift {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        XorShift::seeded(u64::from(nanos))
    }

    /// Seeded with `seed` (any value; zero is avoided).
    pub fn seeded(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

impl Child {
    /// Feeds the child's lines (without libtest's prefix) to `on_line`,
    /// kills the child `delay` after it prints `READY`, and returns once its
    /// output is drained. Panics (naming `round`) when the child prints
    /// `VERIFY-FAIL`, ends without being killed, or runs past `timeout`.
    pub fn kill_after_ready(
        mut self,
        delay: Duration,
        timeout: Duration,
        round: usize,
        mut on_line: impl FnMut(&str),
    ) {
        let deadline = Instant::now() + timeout;
        let mut killed = false;
        loop {
            assert!(Instant::now() < deadline, "round {round}: the child hangs");
            // Short polls until the kill, then long enough to drain the pipe.
            let wait = Duration::from_millis(if killed { 500 } else { 100 });
            match self.lines.recv_timeout(wait) {
                Ok(line) => {
                    let line = strip_libtest_prefix(&line);
                    if let Some(msg) = line.strip_prefix("VERIFY-FAIL ") {
                        panic!("round {round}: {msg}");
                    }
                    on_line(line);
                    if line.starts_with("READY") && !killed {
                        std::thread::sleep(delay);
                        self.kill();
                        killed = true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !killed => {}
                // Killed and its pipe drained (or closed).
                Err(_) => break,
            }
        }
        assert!(killed, "round {round}: the child exited on its own");
        let status = self.wait();
        assert!(
            !status.success(),
            "round {round}: the child must die by SIGKILL"
        );
    }
}
