use super::*;
use crate::limiter::NANOS_PER_TOKEN;

const SECOND: u64 = 1_000_000_000;

fn rate() -> Rate {
    Rate::new(1, 2)
}

/// A bucket with one of its two tokens left at `at_ns` (in use until `at_ns + 1 s`).
fn used(at_ns: u64) -> Bucket {
    Bucket {
        tokens: NANOS_PER_TOKEN,
        updated_ns: at_ns,
    }
}

/// `value` with `owner` added at `now_ns` (a used bucket), if it had room.
fn added(value: &[u8], now_ns: u64, owner: &[u8]) -> Option<Vec<u8>> {
    let mut value = value.to_vec();
    let before = value.clone();
    let ok = add(&mut value, &rate(), now_ns, owner, &used(now_ns));
    if !ok {
        assert_eq!(value, before, "a refused add leaves the value alone");
    }
    ok.then_some(value)
}

/// A group holding `owners`, each with a used bucket at 0.
fn group_of(owners: &[&[u8]]) -> Vec<u8> {
    let mut buf = [0u8; FIRST_GROUP_BYTES];
    let start = first(owners[0], &used(0), &mut buf).unwrap().to_vec();
    owners[1..]
        .iter()
        .fold(start, |value, owner| added(&value, 0, owner).unwrap())
}

fn owners(value: &[u8]) -> Vec<&[u8]> {
    Group::decode(Some(value))
        .records()
        .map(|r| r.owner)
        .collect()
}

#[test]
fn a_missing_or_foreign_value_is_an_empty_group() {
    for value in [
        None,
        Some(&b""[..]),
        Some(&[1u8, 0, 0][..]),
        Some(&[2u8][..]),
    ] {
        let group = Group::decode(value);
        assert_eq!(group.records().count(), 0, "{value:?}");
        assert!(!group.spilled());
        assert!(group.has_room(&rate(), 0));
    }
}

#[test]
fn a_first_value_is_the_same_as_adding_to_an_empty_group() {
    let mut buf = [0u8; FIRST_GROUP_BYTES];
    let one = first(b"halice", &used(0), &mut buf).unwrap().to_vec();
    assert_eq!(Some(one.clone()), added(&[VERSION, 0], 0, b"halice"));
    assert_eq!(Some(one), added(b"foreign value", 0, b"halice"));
    assert!(first(&[b'x'; 256], &used(0), &mut buf).is_none());
}

#[test]
fn an_added_bucket_is_found_by_its_owner_only() {
    let value = group_of(&[b"halice", b"hbob"]);
    let group = Group::decode(Some(&value));
    let alice = group.find(b"halice").unwrap();
    assert_eq!(alice.bucket(), used(0));
    assert_eq!(alice.at, HEADER);
    let bob = group.find(b"hbob").unwrap();
    assert_eq!(bob.at, HEADER + RECORD_HEAD + 6);
    assert!(group.find(b"hcarol").is_none());
    assert!(group.find(b"hali").is_none(), "a prefix is another owner");
    assert_eq!(value.len(), HEADER + 2 * RECORD_HEAD + 6 + 4);
}

#[test]
fn patch_rewrites_one_bucket_and_nothing_else() {
    let mut value = group_of(&[b"ha", b"hb", b"hc"]);
    let before = value.clone();
    let at = Group::decode(Some(&value)).find(b"hb").unwrap().at;
    let new = Bucket {
        tokens: 7,
        updated_ns: u64::MAX,
    };
    assert!(patch(&mut value, at, &new));
    let group = Group::decode(Some(&value));
    assert_eq!(group.find(b"hb").unwrap().bucket(), new);
    assert_eq!(group.find(b"ha").unwrap().bucket(), used(0));
    assert_eq!(group.find(b"hc").unwrap().bucket(), used(0));
    let changed = value.iter().zip(&before).filter(|(a, b)| a != b).count();
    assert!(changed <= LEVEL);
    assert!(!patch(&mut value, before.len() - 3, &new), "past the end");
    assert!(!patch(&mut value, usize::MAX, &new));
}

#[test]
fn a_group_has_room_for_eight_buckets_in_use() {
    let names: Vec<Vec<u8>> = (0..GROUP_BUCKETS)
        .map(|i| format!("h{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let full = group_of(&refs);
    let group = Group::decode(Some(&full));
    assert_eq!(group.records().count(), GROUP_BUCKETS);
    assert!(!group.has_room(&rate(), 0));
    assert!(added(&full, 0, b"hlate").is_none());
    // One second later every bucket is back at burst: nobody uses them any more.
    assert!(group.has_room(&rate(), SECOND));
    let fresh = added(&full, SECOND, b"hlate").unwrap();
    assert_eq!(
        owners(&fresh),
        [&b"hlate"[..]],
        "idle buckets are dropped when a key is added"
    );
}

#[test]
fn adding_keeps_buckets_in_use_in_order_and_drops_idle_ones() {
    let mut value = group_of(&[b"hidle1", b"hbusy", b"hidle2", b"hbusy-too"]);
    for busy in [&b"hbusy"[..], b"hbusy-too"] {
        let at = Group::decode(Some(&value)).find(busy).unwrap().at;
        // Took another token at 0.5 s: in use until 2 s.
        let later = Bucket {
            tokens: 0,
            updated_ns: SECOND / 2,
        };
        assert!(patch(&mut value, at, &later));
    }
    let grown = added(&value, SECOND, b"hnew").unwrap();
    assert_eq!(owners(&grown), [&b"hbusy"[..], b"hbusy-too", b"hnew"]);
    let group = Group::decode(Some(&grown));
    assert_eq!(
        group.find(b"hbusy-too").unwrap().bucket().updated_ns,
        SECOND / 2
    );
    assert_eq!(group.find(b"hnew").unwrap().bucket(), used(SECOND));
}

#[test]
fn the_spilled_flag_survives_adding_and_patching() {
    let mut value = group_of(&[b"ha"]);
    assert!(!Group::decode(Some(&value)).spilled());
    mark_spilled(&mut value);
    let group = Group::decode(Some(&value));
    assert!(group.spilled());
    assert_eq!(group.find(b"ha").unwrap().bucket(), used(0), "records kept");
    let grown = added(&value, 0, b"hb").unwrap();
    assert!(Group::decode(Some(&grown)).spilled());
    let emptied = added(&value, 5 * SECOND, b"hc").unwrap();
    assert!(
        Group::decode(Some(&emptied)).spilled(),
        "with every bucket idle"
    );
    let mut foreign = b"not a group".to_vec();
    mark_spilled(&mut foreign);
    assert!(Group::decode(Some(&foreign)).spilled());
    assert_eq!(Group::decode(Some(&foreign)).records().count(), 0);
}

#[test]
fn a_truncated_record_ends_the_group() {
    let mut value = group_of(&[b"ha", b"hb"]);
    value.truncate(value.len() - 1);
    assert_eq!(owners(&value), [&b"ha"[..]]);
    // Adding rewrites the group without the broken tail.
    let grown = added(&value, 0, b"hc").unwrap();
    assert_eq!(owners(&grown), [&b"ha"[..], b"hc"]);
}

#[test]
fn the_largest_group_value_is_658_bytes() {
    let names: Vec<Vec<u8>> = (0..GROUP_BUCKETS)
        .map(|i| vec![b'a' + i as u8; MAX_KEY_BYTES + 1])
        .collect();
    let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let value = group_of(&refs);
    assert_eq!(value.len(), 658);
    assert_eq!(value.len(), MAX_GROUP_BYTES);
    assert!(
        added(&[VERSION, 0], 0, &[b'x'; 256]).is_none(),
        "an owner longer than its length byte is refused, not truncated"
    );
}
