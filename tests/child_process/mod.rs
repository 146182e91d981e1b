//! The harness of the kill tests: this test binary re-run as a child process
//! for one `#[ignore]`d test, its stdout lines delivered on a channel so the
//! parent can kill it at a moment of its choosing.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

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
