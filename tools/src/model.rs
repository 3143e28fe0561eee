//! What a node says about itself, as typed values: the console schema's types
//! ([`twinloop::io::schema`], the one definition of the protocol's `status`, `hello`
//! and `events` responses, docs/CONSOLE.md), and what twinctl adds to them.

pub use twinloop::io::schema::*;

/// The epoch as `term/node` (the term counter, and the node that started the term).
pub fn epoch_text(epoch: u64) -> String {
    twinloop::EpochText(epoch).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use twinloop::io::schema::TransferDirection;

    #[test]
    fn status_with_unknown_fields_parses() {
        let status: Status = serde_json::from_value(json!({
            "node_id": 1, "name": "node-a", "role": "primary", "sync": "paired",
            "epoch": 257, "frame": 9, "links": [{"index": 0, "up": true, "future": 1}],
            "something_new": {"a": 1}
        }))
        .unwrap();
        assert!(status.is_primary());
        assert_eq!(status.links.len(), 1);
        assert_eq!(status.peer, None);
    }

    #[test]
    fn status_without_role_is_an_error() {
        let error = serde_json::from_value::<Status>(json!({
            "node_id": 1, "name": "node-a", "sync": "paired", "epoch": 257, "frame": 9
        }))
        .unwrap_err();
        assert!(error.to_string().contains("role"), "{error}");
    }

    #[test]
    fn event_keeps_raw_and_reads_transition_fields() {
        let raw = json!({"seq": 4, "unix_ms": 10, "kind": "transition", "name": "switchover_completed",
            "message": "m", "role": "primary", "epoch": 514, "frame": 77, "reason": "switchover_completed"});
        let event: Event = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(
            (event.kind.name(), event.name.as_str()),
            ("transition", "switchover_completed")
        );
        assert_eq!((event.epoch, event.frame), (Some(514), Some(77)));
        assert_eq!(event.to_value(), raw);
        assert!(serde_json::from_value::<Event>(json!({"seq": "x"})).is_err());
    }

    #[test]
    fn epoch_text_splits_term_and_node() {
        assert_eq!(epoch_text(514), "514 (2.2)");
        let t = Transfer {
            direction: TransferDirection::Receiving,
            bytes_done: 512 * 1024,
            bytes_total: 1024 * 1024,
            elapsed_ms: 40,
            rate_bytes_per_s: 13_107_200,
        };
        assert_eq!(t.text(), "receiving 512.0 / 1024.0 KiB (50 %) at 12.5 MiB/s");
        assert_eq!(epoch_text(0), "0 (none)");
    }
}
