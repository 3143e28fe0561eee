//! The worked example of docs/SYNC-PROTOCOL.md decodes to what the document says.

use twinloop::wire::{self, AuthKey, Body, Envelope, Header, WireRole, WireSync};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn example() -> Envelope {
    Envelope {
        header: Header {
            node_id: 1,
            role: WireRole::Primary,
            epoch: 0x101,
            sync: WireSync::NotApplicable,
            frame: 1000,
            session: 7,
            seq: 42,
            origin: 0x101,
        },
        body: Body::Probe { id: 5 },
    }
}

/// The bytes printed in docs/SYNC-PROTOCOL.md, "Worked example".
const DOC_PLAIN: &str = "05 00 01 01 81 02 03 e8 07 07 2a 81 02 01 05 06 97 95 e6";

#[test]
fn sync_wire_doc_example_decodes() {
    let bytes = hex(DOC_PLAIN);
    assert_eq!(wire::decode(&bytes, None), Ok(example()));
    assert_eq!(wire::encode(&example(), None).unwrap().as_slice(), bytes.as_slice());
}

#[test]
fn sync_wire_doc_example_keyed_is_tagged() {
    let key = AuthKey::derive(b"example key");
    let bytes = wire::encode(&example(), Some(&key)).unwrap();
    assert_eq!(bytes[1], 1, "flags bit 0 marks the tag");
    assert_eq!(bytes.len(), hex(DOC_PLAIN).len() + 16);
    assert_eq!(wire::decode(&bytes, Some(&key)), Ok(example()));
}

/// The vote request of docs/SYNC-PROTOCOL.md, "Worked example" (wire version 5).
const DOC_VOTE_REQUEST: &str = "05 00 02 02 81 02 01 e8 07 07 2b 81 02 13 82 04 e8 07 c2 de ac 20";

#[test]
fn sync_wire_doc_vote_request_decodes() {
    let envelope = Envelope {
        header: Header {
            node_id: 2,
            role: WireRole::Backup,
            sync: WireSync::InSync,
            seq: 43,
            ..example().header
        },
        body: Body::VoteRequest {
            epoch: 0x202,
            commit_highest: 1000,
        },
    };
    let bytes = hex(DOC_VOTE_REQUEST);
    assert_eq!(wire::decode(&bytes, None), Ok(envelope.clone()));
    assert_eq!(wire::encode(&envelope, None).unwrap().as_slice(), bytes.as_slice());
}
