//! The application trait: the control program a control engineer writes.
//!
//! The runtime calls [`App::step`] once per frame, on the primary and (one cycle behind)
//! on the backup. `step` must be deterministic: the same state and the same frame must give
//! the same outputs and the same next state on any machine. No clock, no randomness, no
//! I/O, no iteration over hash maps with a random seed.

use crate::digest::Fnv64;
use crate::hmi::HmiTag;
use heapless::Vec;

/// The largest input payload of one frame, in bytes.
pub const FRAME_PAYLOAD_MAX: usize = 512;
/// The largest payload of one output message, in bytes.
pub const OUTPUT_PAYLOAD_MAX: usize = 64;
/// The most outputs one frame may produce.
pub const OUTPUTS_PER_FRAME_MAX: usize = 16;

/// One cycle's input, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The frame number, strictly increasing.
    pub number: u64,
    /// The input payload (sensor values, as the I/O source encoded them).
    pub payload: &'a [u8],
}

/// The payload of one output message.
pub type OutputPayload = Vec<u8, OUTPUT_PAYLOAD_MAX>;

/// Why an output could not be queued.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxError {
    /// The frame already produced [`OUTPUTS_PER_FRAME_MAX`] outputs.
    Full,
    /// The payload is longer than [`OUTPUT_PAYLOAD_MAX`].
    TooLong,
}

impl core::fmt::Display for OutboxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OutboxError::Full => write!(f, "outbox full ({OUTPUTS_PER_FRAME_MAX} outputs per frame)"),
            OutboxError::TooLong => write!(f, "output longer than {OUTPUT_PAYLOAD_MAX} bytes"),
        }
    }
}

/// What an output is to the plant, declared by the program when it queues it
/// (docs/GATEWAY.md, "Level and event outputs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum OutputKind {
    /// Every one matters (a pulse, a count, an alarm): delivered once each, in order; a
    /// takeover replays the unsent ones in order.
    #[default]
    Event,
    /// A value of which only the latest per `key` matters (a coil, a register): a sink
    /// keeps the newest by `(frame, index)` and refuses an older one; a takeover emits
    /// only the latest unsent value of each key.
    Level {
        /// What the value is of (e.g. the out tag's position in the tag map).
        key: u16,
    },
}

impl OutputKind {
    /// The level's key, `None` for an event.
    pub fn level_key(self) -> Option<u16> {
        match self {
            OutputKind::Event => None,
            OutputKind::Level { key } => Some(key),
        }
    }
}

/// The outputs of one cycle, in order; output `i` gets id `(frame, i)`. Fixed capacity.
#[derive(Debug, Default, Clone)]
pub struct Outbox {
    outputs: Vec<OutputPayload, OUTPUTS_PER_FRAME_MAX>,
    /// The kind of each output, by index (as long as `outputs`).
    kinds: Vec<OutputKind, OUTPUTS_PER_FRAME_MAX>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one output message, an event: every one matters, each is delivered once
    /// and a takeover replays the unsent ones in order (what every output was before
    /// outputs had kinds, so existing programs keep their meaning).
    pub fn push(&mut self, payload: &[u8]) -> Result<(), OutboxError> {
        self.push_kind(OutputKind::Event, payload)
    }

    /// Queues a level: the value `payload` of `key`, of which only the latest matters.
    pub fn push_level(&mut self, key: u16, payload: &[u8]) -> Result<(), OutboxError> {
        self.push_kind(OutputKind::Level { key }, payload)
    }

    /// Queues one output of the given kind.
    pub fn push_kind(&mut self, kind: OutputKind, payload: &[u8]) -> Result<(), OutboxError> {
        let bytes = OutputPayload::from_slice(payload).map_err(|_| OutboxError::TooLong)?;
        self.outputs.push(bytes).map_err(|_| OutboxError::Full)?;
        // Cannot fail: `kinds` is as long as `outputs`, with the same capacity.
        let _ = self.kinds.push(kind);
        Ok(())
    }

    /// The queued outputs' payloads.
    pub fn as_slice(&self) -> &[OutputPayload] {
        &self.outputs
    }

    /// The queued outputs' kinds, by index.
    pub fn kinds(&self) -> &[OutputKind] {
        &self.kinds
    }

    /// The kind of output `index` (an event when there is none).
    pub fn kind(&self, index: usize) -> OutputKind {
        self.kinds.get(index).copied().unwrap_or_default()
    }

    /// Number of queued outputs.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Empties the outbox (the runtime does this before every step).
    pub fn clear(&mut self) {
        self.outputs.clear();
        self.kinds.clear();
    }

    /// Digest over the frame number and every output (kind, key and payload), in order:
    /// what primary and backup compare per frame. An event hashes as every output did
    /// before kinds (its length, then its bytes); a level first hashes `2^32 | key`, which
    /// no length (at most [`OUTPUT_PAYLOAD_MAX`]) can equal.
    pub fn digest(&self, frame: u64) -> u64 {
        let mut h = Fnv64::new();
        h.write_u64(frame);
        for (i, output) in self.outputs.iter().enumerate() {
            if let Some(key) = self.kind(i).level_key() {
                h.write_u64(1 << 32 | u64::from(key));
            }
            h.write_u64(output.len() as u64);
            h.write(output);
        }
        h.finish()
    }
}

/// Why a snapshot could not be taken or installed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotError {
    /// The state does not fit the configured `state_bytes_max`.
    TooLarge,
    /// The bytes do not decode as this application's state.
    Malformed,
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::TooLarge => write!(f, "application state larger than state_bytes_max"),
            SnapshotError::Malformed => write!(f, "snapshot bytes do not decode as the application state"),
        }
    }
}

/// Which program a node runs, as the pair compares it at first contact: two nodes pair
/// only when they run the same program, at the same version, with the same settings (a
/// backup that follows another program diverges at once, and a state transfer does not
/// cure that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppIdentity {
    /// The program's name (only its digest travels).
    pub name: &'static str,
    /// The program's version, as the application counts it: a change of the state layout
    /// or of what `step` does is a new version.
    pub version: u32,
    /// A digest of the settings `step` depends on (the demo's `[app]` section); 0 when
    /// the program has none.
    pub settings_digest: u64,
}

impl Default for AppIdentity {
    fn default() -> Self {
        AppIdentity {
            name: "unnamed",
            version: 0,
            settings_digest: 0,
        }
    }
}

/// A deterministic control program.
pub trait App {
    /// Runs one cycle: reads the frame, updates the state, queues outputs.
    ///
    /// Must be deterministic and must not allocate in steady state. A frame that was
    /// skipped (no node received it) is not stepped: the application sees a gap in
    /// frame numbers and decides itself how to treat it (hold last input, count it).
    fn step(&mut self, frame: Frame<'_>, outbox: &mut Outbox);

    /// Writes the whole state into `buf`, returning the number of bytes written.
    /// [`snapshot_postcard`] does this for any `serde::Serialize` state.
    fn snapshot(&self, buf: &mut [u8]) -> Result<usize, SnapshotError>;

    /// Replaces the whole state with one written by [`App::snapshot`].
    /// [`restore_postcard`] does this for any `serde::Deserialize` state.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError>;

    /// A cheap digest of the state: equal states give equal digests on every machine.
    fn digest(&self) -> u64;

    /// The program's name, version and settings digest, compared with the peer's before
    /// the two pair. The default names no program: two applications that keep it pair
    /// with each other whatever they run, so every real program should say who it is.
    fn identity(&self) -> AppIdentity {
        AppIdentity::default()
    }

    /// The tags operators see over the HMI server and may write (docs/HMI.md); their order
    /// is the register map. None by default. Must be the same on every node, at every
    /// call (the map is read at start-up and on every request).
    fn hmi_tags(&self) -> &[HmiTag] {
        &[]
    }

    /// The current value of readable or writable tag `tag` (its index in
    /// [`App::hmi_tags`]), `None` when the program has none to show. Called by the HMI
    /// server between steps: must not change the state.
    fn hmi_read(&self, tag: u16) -> Option<i64> {
        let _ = tag;
        None
    }

    /// Applies an operator's write of `value` to writable tag `tag`, before the step of
    /// the frame whose commit carries it, on every node alike: part of the deterministic
    /// state change, like `step`. The value is within the tag's declared limits (the
    /// runtime refused the others). Ignored by default.
    fn hmi_write(&mut self, tag: u16, value: i64) {
        let _ = (tag, value);
    }
}

/// A settings digest for [`AppIdentity::settings_digest`]: FNV-1a over the postcard bytes
/// of `settings`, hashed as they are written (no buffer, no size limit).
pub fn settings_digest<T: serde::Serialize>(settings: &T) -> u64 {
    struct Hashing(Fnv64);
    impl postcard::ser_flavors::Flavor for Hashing {
        type Output = u64;
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.write(data);
            Ok(())
        }
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.0.write(&[data]);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<u64> {
            Ok(self.0.finish())
        }
    }
    // A serializer error (a type serde cannot describe) leaves a constant digest: such
    // settings cannot be compared, and that is the program's to fix.
    postcard::serialize_with_flavor(settings, Hashing(Fnv64::new())).unwrap_or(0)
}

/// [`App::snapshot`] for a state that implements `serde::Serialize`: postcard into `buf`.
pub fn snapshot_postcard<T: serde::Serialize>(state: &T, buf: &mut [u8]) -> Result<usize, SnapshotError> {
    postcard::to_slice(state, buf)
        .map(|written| written.len())
        .map_err(|_| SnapshotError::TooLarge)
}

/// [`App::restore`] for a state that implements `serde::Deserialize`.
pub fn restore_postcard<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    postcard::from_bytes(bytes).map_err(|_| SnapshotError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_digest_depends_on_every_setting() {
        #[derive(serde::Serialize)]
        struct Settings {
            setpoint_um: u32,
            name: &'static str,
        }
        let a = settings_digest(&Settings {
            setpoint_um: 1,
            name: "a",
        });
        assert_eq!(
            a,
            settings_digest(&Settings {
                setpoint_um: 1,
                name: "a"
            })
        );
        assert_ne!(
            a,
            settings_digest(&Settings {
                setpoint_um: 2,
                name: "a"
            })
        );
        assert_ne!(
            a,
            settings_digest(&Settings {
                setpoint_um: 1,
                name: "b"
            })
        );
    }

    #[test]
    fn outbox_full_is_an_error() {
        let mut outbox = Outbox::new();
        for _ in 0..OUTPUTS_PER_FRAME_MAX {
            outbox.push(b"x").unwrap();
        }
        assert_eq!(outbox.push(b"x"), Err(OutboxError::Full));
        assert_eq!(outbox.len(), OUTPUTS_PER_FRAME_MAX);
    }

    #[test]
    fn outbox_too_long_is_an_error() {
        let mut outbox = Outbox::new();
        assert_eq!(outbox.push(&[0u8; OUTPUT_PAYLOAD_MAX + 1]), Err(OutboxError::TooLong));
        assert!(outbox.is_empty());
    }

    #[test]
    fn outbox_digest_depends_on_frame_and_content() {
        let mut a = Outbox::new();
        a.push(b"open").unwrap();
        let mut b = Outbox::new();
        b.push(b"shut").unwrap();
        assert_ne!(a.digest(1), b.digest(1));
        assert_ne!(a.digest(1), a.digest(2));
    }

    #[test]
    fn outbox_digest_covers_kind_and_key() {
        let mut event = Outbox::new();
        event.push(b"open").unwrap();
        let mut level = Outbox::new();
        level.push_level(3, b"open").unwrap();
        let mut other_key = Outbox::new();
        other_key.push_level(4, b"open").unwrap();
        assert_ne!(event.digest(1), level.digest(1));
        assert_ne!(level.digest(1), other_key.digest(1));
        assert_eq!(level.kinds(), &[OutputKind::Level { key: 3 }]);
        level.clear();
        assert!(level.kinds().is_empty());
    }
}
