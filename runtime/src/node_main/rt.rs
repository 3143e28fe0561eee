//! Real-time settings for Linux IPCs: CPU pinning, `SCHED_FIFO` and `mlockall`.
//!
//! This is the runtime's only `unsafe` code (the node binary's, never the core's): three
//! libc calls, each behind a safe function that checks its arguments and turns the OS
//! error into a message naming the setting and what is missing (usually `CAP_SYS_NICE` /
//! `CAP_IPC_LOCK`, or an `rtprio` / `memlock` limit). On other systems every setting
//! reports "not supported".

use super::config::RtConfig;

/// A real-time setting that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtError {
    /// The configuration key (`rt.cpu_affinity`).
    pub key: &'static str,
    /// Why, in words an operator can act on.
    pub problem: String,
}

impl core::fmt::Display for RtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cannot apply `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for RtError {}

/// Applies every configured setting, in the order pinning, priority, memory lock. Returns
/// one line per setting applied, and the errors of those that failed.
pub fn apply(config: &RtConfig) -> (Vec<String>, Vec<RtError>) {
    let mut applied = Vec::new();
    let mut failed = Vec::new();
    if !config.cpu_affinity.is_empty() {
        match pin_to_cpus(&config.cpu_affinity) {
            Ok(()) => applied.push(format!("pinned to CPUs {:?}", config.cpu_affinity)),
            Err(e) => failed.push(e),
        }
    }
    if config.sched_fifo_priority > 0 {
        match sched_fifo(config.sched_fifo_priority) {
            Ok(()) => applied.push(format!("SCHED_FIFO priority {}", config.sched_fifo_priority)),
            Err(e) => failed.push(e),
        }
    }
    if config.mlockall {
        match lock_memory() {
            Ok(()) => applied.push("memory locked (mlockall)".into()),
            Err(e) => failed.push(e),
        }
    }
    (applied, failed)
}

#[cfg(target_os = "linux")]
fn os_error(key: &'static str, hint: &str) -> RtError {
    let error = std::io::Error::last_os_error();
    let problem = match error.raw_os_error() {
        Some(libc::EPERM) => format!("not permitted ({error}): {hint}"),
        _ => error.to_string(),
    };
    RtError { key, problem }
}

/// Pins the whole process (every thread it starts later inherits it) to `cpus`.
#[cfg(target_os = "linux")]
pub fn pin_to_cpus(cpus: &[usize]) -> Result<(), RtError> {
    let key = "rt.cpu_affinity";
    let max = libc::CPU_SETSIZE as usize;
    if let Some(&bad) = cpus.iter().find(|&&c| c >= max) {
        return Err(RtError {
            key,
            problem: format!("CPU {bad} is beyond the largest CPU number {}", max - 1),
        });
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the valid empty set;
    // CPU_SET writes within it because every index was checked against CPU_SETSIZE above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: see above; `set` is a valid, exclusively borrowed cpu_set_t.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling process; the size and pointer describe `set`, which
    // lives for the duration of the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        // EINVAL here means none of the CPUs is online or allowed (cpuset).
        return Err(os_error(key, "the CPUs must be online and allowed by the cpuset"));
    }
    Ok(())
}

/// Switches the calling thread to `SCHED_FIFO` at `priority` (1..=99). Call it from the
/// thread that runs the event loop, before it starts.
#[cfg(target_os = "linux")]
pub fn sched_fifo(priority: u8) -> Result<(), RtError> {
    let key = "rt.sched_fifo_priority";
    if !(1..=99).contains(&priority) {
        return Err(RtError {
            key,
            problem: "must be 1..=99".into(),
        });
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(os_error(
            key,
            "needs CAP_SYS_NICE (run as root, `setcap cap_sys_nice+ep`) or an rtprio limit in /etc/security/limits.conf",
        ));
    }
    Ok(())
}

/// Locks all current and future pages in memory.
#[cfg(target_os = "linux")]
pub fn lock_memory() -> Result<(), RtError> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        let hint = "needs CAP_IPC_LOCK or a large enough memlock limit (ulimit -l, limits.conf)";
        let problem = match error.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOMEM) | Some(libc::EAGAIN) => format!("not permitted ({error}): {hint}"),
            _ => error.to_string(),
        };
        return Err(RtError {
            key: "rt.mlockall",
            problem,
        });
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn unsupported(key: &'static str) -> RtError {
    RtError {
        key,
        problem: "not supported on this operating system".into(),
    }
}

/// Not available outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn pin_to_cpus(_cpus: &[usize]) -> Result<(), RtError> {
    Err(unsupported("rt.cpu_affinity"))
}

/// Not available outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn sched_fifo(_priority: u8) -> Result<(), RtError> {
    Err(unsupported("rt.sched_fifo_priority"))
}

/// Not available outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn lock_memory() -> Result<(), RtError> {
    Err(unsupported("rt.mlockall"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn rt_nothing_configured_does_nothing() {
        let (applied, failed) = apply(&RtConfig::default());
        assert!(applied.is_empty() && failed.is_empty());
    }

    #[test]
    fn rt_cpu_out_of_range_is_named() {
        let e = pin_to_cpus(&[1 << 20]).unwrap_err();
        assert_eq!(e.key, "rt.cpu_affinity");
    }

    #[test]
    fn rt_priority_out_of_range_is_refused_before_the_call() {
        assert_eq!(sched_fifo(0).unwrap_err().key, "rt.sched_fifo_priority");
        assert_eq!(sched_fifo(100).unwrap_err().key, "rt.sched_fifo_priority");
    }
}
