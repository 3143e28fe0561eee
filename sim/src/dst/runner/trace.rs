//! The trace: the hash of everything a run did (the same seed gives the same hash) and,
//! with `--trace`, what happened, event by event, for a human.

use super::world::Sim;
use crate::dst::app::Workload;
use twinloop::wire::Body;

impl<'a, W: Workload> Sim<'a, W> {
    pub(super) fn trace_u64(&mut self, value: u64) {
        self.trace.write_u64(value);
    }

    pub(super) fn say(&self, what: core::fmt::Arguments<'_>) {
        if self.run.trace {
            println!("[{:>12.3} ms] {what}", self.now as f64 / 1e6);
        }
    }

    pub(super) fn describe_nodes(&self) -> String {
        let mut out = String::new();
        for (i, sn) in self.nodes.iter().enumerate() {
            match &sn.node {
                None => out.push_str(&format!("node {i}: down; ")),
                Some(n) => {
                    let s = n.status();
                    out.push_str(&format!(
                        "node {i}: {:?}/{:?} epoch {} frame {} lag {} switchover {:?} frozen {}; ",
                        s.role,
                        s.sync,
                        twinloop::EpochText(s.epoch),
                        s.frame,
                        s.lag_frames,
                        s.switchover,
                        sn.frozen_until.is_some()
                    ));
                }
            }
        }
        out
    }
}

/// A short description of a sync-link message, for `--trace-wire`.
pub(super) fn describe_body(body: &Body) -> String {
    match body {
        Body::Heartbeat { .. } => "Heartbeat".to_string(),
        Body::Chunk { id, index, bytes } => format!("Chunk {{ id: {id}, index: {index}, bytes: {} }}", bytes.len()),
        Body::FrameData { commit, payload } => {
            format!("FrameData {{ commit: {commit:?}, payload: {} }}", payload.len())
        }
        other => format!("{other:?}"),
    }
}
