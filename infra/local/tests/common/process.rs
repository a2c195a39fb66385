//! The real `imghost` binary as a process of its own, for tests that measure its memory.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The `imghost` binary serving a fresh data directory on a loopback port; killed and reaped
/// when dropped, also when a test fails midway.
pub struct Process {
    child: Child,
    pub base: String,
    log: PathBuf,
    _stdout: BufReader<ChildStdout>,
    _dirs: [tempfile::TempDir; 2],
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `imghost serve` with `admin_token` and waits until it says where it listens.
    pub fn start(admin_token: &str) -> Process {
        Process::start_logging(admin_token, "warn")
    }

    /// [`Process::start`], logging what `filter` (a `RUST_LOG` value) lets through.
    pub fn start_logging(admin_token: &str, filter: &str) -> Process {
        let (data, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let log = logs.path().join("imghost.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_imghost"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("IMGHOST_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let log_tail = |log: &PathBuf| tail(&std::fs::read_to_string(log).unwrap_or_default());
        // The listening line is read on another thread, so that a server that never prints it
        // fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = BufReader::new(stdout);
            let mut printed = String::new();
            loop {
                let mut line = String::new();
                if out.read_line(&mut line).unwrap_or(0) == 0 {
                    let _ = tx.send(Err(printed));
                    return;
                }
                if let Some(base) = line.trim().strip_prefix("imghost listening on ") {
                    let _ = tx.send(Ok((base.to_owned(), out)));
                    return;
                }
                printed.push_str(&line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok((base, out))) => Process { child, base, log, _stdout: out, _dirs: [data, logs] },
            Ok(Err(printed)) => {
                let _ = child.kill();
                panic!("the server exited early, printing {printed:?}; log:\n{}", log_tail(&log))
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the server did not say where it listens ({e}); log:\n{}", log_tail(&log))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines the server logged.
    pub fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Its resident memory now and at its peak.
    pub fn memory(&self) -> Option<Memory> {
        memory(self.pid())
    }

    /// Forgets the peak so far (Linux's `clear_refs`), so that the next reading of the peak
    /// measures only what comes after.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").unwrap();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Resident memory now and at its peak, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        Some(line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()? * 1024)
    };
    Some(Memory { rss: field("VmRSS:")?, hwm: field("VmHWM:")? })
}
