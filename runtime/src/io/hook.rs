//! The role-change hook: a configured command run on every transition, e.g. to bind or
//! release the service IP (seeds 000 and 002).
//!
//! Hooks never block the loop: the command is spawned and its exit collected by polling.
//! They run one at a time, in the order of the transitions, so that a "release the IP"
//! never overtakes the "bind the IP" before it. A hook that outlives `timeout_ms` is
//! killed. The environment carries `TWINLOOP_NODE_ID`, `TWINLOOP_NODE_NAME`,
//! `TWINLOOP_ROLE`, `TWINLOOP_SYNC`, `TWINLOOP_EPOCH`, `TWINLOOP_FRAME`,
//! `TWINLOOP_REASON`, `TWINLOOP_PREVIOUS_ROLE`, `TWINLOOP_STOPPING` and `TWINLOOP_PEERS`
//! (each peer as `id=role`, as last heard).

use super::log;
use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One transition waiting for its hook run: the environment to run it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookJob {
    /// `(name, value)` pairs added to the environment.
    pub env: Vec<(&'static str, String)>,
    /// A short description for logs (`role primary, reason takeover_after_probe`).
    pub summary: String,
}

/// What happened to a hook run, for the journal.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// It exited with status 0.
    Succeeded(String),
    /// It exited with another status, or by a signal.
    Failed(String),
    /// It could not be started.
    SpawnFailed(String),
    /// It ran past the timeout and was killed.
    TimedOut(String),
    /// The queue was full: the oldest waiting run was dropped.
    Dropped(String),
}

/// Runs hook commands one at a time.
#[derive(Debug)]
pub struct HookRunner {
    command: Vec<String>,
    timeout: Duration,
    queue_max: usize,
    queue: VecDeque<HookJob>,
    running: Option<(Child, Instant, String)>,
}

impl HookRunner {
    /// A runner for `command` (empty: hooks are off).
    pub fn new(command: Vec<String>, timeout: Duration, queue_max: usize) -> Self {
        HookRunner {
            command,
            timeout,
            queue_max: queue_max.max(1),
            queue: VecDeque::new(),
            running: None,
        }
    }

    /// True when a hook is configured.
    pub fn enabled(&self) -> bool {
        !self.command.is_empty()
    }

    /// True when a hook runs or waits to run.
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// Queues a run; starts it at once if nothing runs.
    pub fn enqueue(&mut self, job: HookJob, now: Instant, outcomes: &mut Vec<HookOutcome>) {
        if !self.enabled() {
            return;
        }
        if self.queue.len() == self.queue_max {
            if let Some(dropped) = self.queue.pop_front() {
                outcomes.push(HookOutcome::Dropped(dropped.summary));
            }
        }
        self.queue.push_back(job);
        self.poll(now, outcomes);
    }

    /// Collects a finished run, kills an overdue one, starts the next. Cheap when idle.
    pub fn poll(&mut self, now: Instant, outcomes: &mut Vec<HookOutcome>) {
        if let Some((child, deadline, summary)) = &mut self.running {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    outcomes.push(HookOutcome::Succeeded(summary.clone()));
                    self.running = None;
                }
                Ok(Some(status)) => {
                    outcomes.push(HookOutcome::Failed(format!("{summary}: {status}")));
                    self.running = None;
                }
                Ok(None) if now >= *deadline => {
                    let _ = child.kill();
                    // Reap it: after kill() the wait returns promptly.
                    let _ = child.wait();
                    outcomes.push(HookOutcome::TimedOut(summary.clone()));
                    self.running = None;
                }
                Ok(None) => return,
                Err(e) => {
                    outcomes.push(HookOutcome::Failed(format!("{summary}: cannot wait: {e}")));
                    self.running = None;
                }
            }
        }
        while self.running.is_none() {
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            let mut command = Command::new(&self.command[0]);
            command
                .args(&self.command[1..])
                .envs(job.env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null());
            match command.spawn() {
                Ok(child) => {
                    log::debug(format_args!("hook started ({})", job.summary));
                    self.running = Some((child, now + self.timeout, job.summary));
                }
                Err(e) => outcomes.push(HookOutcome::SpawnFailed(format!(
                    "{}: cannot start {:?}: {e}",
                    job.summary, self.command[0]
                ))),
            }
        }
    }

    /// Gives up on what is left: kills a running hook (reported as timed out) and drops
    /// the waiting ones. At exit, before the last run, which supersedes them.
    pub fn abandon(&mut self, now: Instant, outcomes: &mut Vec<HookOutcome>) {
        self.poll(now, outcomes);
        if let Some((mut child, _, summary)) = self.running.take() {
            let _ = child.kill();
            // Reap it: after kill() the wait returns promptly.
            let _ = child.wait();
            outcomes.push(HookOutcome::TimedOut(summary));
        }
        for job in self.queue.drain(..) {
            outcomes.push(HookOutcome::Dropped(job.summary));
        }
    }

    /// When the next poll is due: soon while a hook runs, never when idle.
    pub fn poll_interval(&self) -> Option<Duration> {
        self.running.as_ref().map(|_| Duration::from_millis(10))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests wait on real processes.
mod tests {
    use super::*;

    fn job(role: &str) -> HookJob {
        HookJob {
            env: vec![("TWINLOOP_ROLE", role.to_string())],
            summary: format!("role {role}"),
        }
    }

    fn run_until_idle(runner: &mut HookRunner, outcomes: &mut Vec<HookOutcome>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while runner.busy() && Instant::now() < deadline {
            runner.poll(Instant::now(), outcomes);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!runner.busy(), "hooks did not finish within 20 s");
    }

    #[test]
    fn hook_runs_in_order_with_environment() {
        let dir = std::env::temp_dir().join(format!("twinloop-hook-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("roles");
        let _ = std::fs::remove_file(&out);
        let script = format!("echo $TWINLOOP_ROLE >> {}", out.display());
        let mut runner = HookRunner::new(vec!["sh".into(), "-c".into(), script], Duration::from_secs(10), 8);
        let mut outcomes = Vec::new();
        runner.enqueue(job("primary"), Instant::now(), &mut outcomes);
        runner.enqueue(job("backup"), Instant::now(), &mut outcomes);
        run_until_idle(&mut runner, &mut outcomes);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "primary\nbackup\n");
        assert!(outcomes.iter().all(|o| matches!(o, HookOutcome::Succeeded(_))));
    }

    #[test]
    fn hook_failure_and_timeout_are_reported() {
        let mut runner = HookRunner::new(
            vec!["sh".into(), "-c".into(), "exit 3".into()],
            Duration::from_secs(10),
            8,
        );
        let mut outcomes = Vec::new();
        runner.enqueue(job("primary"), Instant::now(), &mut outcomes);
        run_until_idle(&mut runner, &mut outcomes);
        assert!(matches!(&outcomes[..], [HookOutcome::Failed(_)]));

        let mut runner = HookRunner::new(vec!["sleep".into(), "30".into()], Duration::from_millis(50), 8);
        let mut outcomes = Vec::new();
        runner.enqueue(job("primary"), Instant::now(), &mut outcomes);
        run_until_idle(&mut runner, &mut outcomes);
        assert!(matches!(&outcomes[..], [HookOutcome::TimedOut(_)]));
    }

    #[test]
    fn hook_missing_program_is_reported() {
        let mut runner = HookRunner::new(vec!["/nonexistent/twinloop-hook".into()], Duration::from_secs(1), 8);
        let mut outcomes = Vec::new();
        runner.enqueue(job("primary"), Instant::now(), &mut outcomes);
        assert!(matches!(&outcomes[..], [HookOutcome::SpawnFailed(_)]));
        assert!(!runner.busy());
    }

    #[test]
    fn hook_abandon_kills_the_running_one_and_drops_the_queue() {
        let mut runner = HookRunner::new(vec!["sleep".into(), "30".into()], Duration::from_secs(60), 8);
        let mut outcomes = Vec::new();
        runner.enqueue(job("primary"), Instant::now(), &mut outcomes);
        runner.enqueue(job("backup"), Instant::now(), &mut outcomes);
        runner.abandon(Instant::now(), &mut outcomes);
        assert!(!runner.busy());
        assert!(
            matches!(&outcomes[..], [HookOutcome::TimedOut(a), HookOutcome::Dropped(b)] if a == "role primary" && b == "role backup"),
            "{outcomes:?}"
        );
    }
}
