//! Which bucket a request draws from. Pure: the adapter passes in the header value or the
//! `source.address` property it read from the host.

/// Key material longer than this is replaced by a fixed-size digest.
pub const MAX_KEY_BYTES: usize = 64;
/// Buckets one group (one shared-data entry) holds at most.
pub const GROUP_BUCKETS: usize = 8;
/// `maxKeys` per group: groups have room for twice `maxKeys` buckets, the headroom that lets
/// `maxKeys` active keys find a bucket of their own (README: measured overflow share).
pub const KEYS_PER_GROUP: u32 = 4;

/// What a policy keys its buckets on (compiled from `hrl_plugin_config::Key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// One bucket per policy per proxy.
    None,
    /// One bucket per value of this request header (lowercase name).
    Header(String),
    /// One bucket per downstream IP (`source.address`, port stripped).
    ClientAddress,
}

/// The bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketKey {
    /// The policy's only bucket (`key: none`).
    Single,
    /// A keyed policy, but the request has no key: one shared bucket.
    Missing,
    /// A keyed bucket; the bytes identify its owner (bounded by `MAX_KEY_BYTES + 1`).
    Keyed(Material),
}

/// A keyed bucket's owner bytes, inline: building them allocates nothing (each allocation is
/// several hundred wasm instructions per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Material {
    /// Bytes used; the rest of `bytes` stays zero, so the derived equality is the slices'.
    len: usize,
    bytes: [u8; MAX_KEY_BYTES + 1],
}

impl Material {
    const EMPTY: Material = Material {
        len: 0,
        bytes: [0; MAX_KEY_BYTES + 1],
    };

    /// These exact bytes as owner material; `None` if longer than `MAX_KEY_BYTES + 1`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Material> {
        let mut out = Material::EMPTY;
        out.extend(bytes).then_some(out)
    }

    /// The owner bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Append `more`; false (and nothing appended) if it does not fit.
    fn extend(&mut self, more: &[u8]) -> bool {
        let Some(end) = self.len.checked_add(more.len()) else {
            return false;
        };
        let Some(slot) = self.bytes.get_mut(self.len..end) else {
            return false;
        };
        slot.copy_from_slice(more);
        self.len = end;
        true
    }
}

impl std::ops::Deref for Material {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Material")
            .field(&self.as_slice().escape_ascii().to_string())
            .finish()
    }
}

impl BucketKey {
    /// The key for a `header` policy from the request header value, if present.
    pub fn from_header(value: Option<&[u8]>) -> BucketKey {
        match value {
            Some(value) if !value.is_empty() => BucketKey::Keyed(material(b'h', value)),
            _ => BucketKey::Missing,
        }
    }

    /// The key for a `clientAddress` policy from the `source.address` property, if present.
    pub fn from_address(address: Option<&[u8]>) -> BucketKey {
        let host = address.map(strip_port).unwrap_or_default();
        if host.is_empty() {
            BucketKey::Missing
        } else {
            BucketKey::Keyed(material(b'a', host))
        }
    }
}

/// The host part of an address: `10.0.0.1:80` -> `10.0.0.1`, `[::1]:80` -> `::1`,
/// `::1` -> `::1` (bare IPv6 has no port), anything else unchanged.
pub fn strip_port(address: &[u8]) -> &[u8] {
    if let Some(rest) = address.strip_prefix(b"[") {
        return match rest.iter().position(|&b| b == b']') {
            Some(end) => rest.get(..end).unwrap_or(rest),
            None => rest,
        };
    }
    let mut colons = address.iter().enumerate().filter(|(_, b)| **b == b':');
    match (colons.next(), colons.next()) {
        (Some((at, _)), None) => address.get(..at).unwrap_or(address),
        _ => address,
    }
}

/// `tag` + raw bytes, or the upper-case `tag`, `#`, length and FNV-1a digest when the raw key
/// is long. The digest gets its own tag so a short raw value that spells a digest (`#` + 16
/// bytes) can never land in a long key's bucket.
fn material(tag: u8, raw: &[u8]) -> Material {
    // Both shapes fit (at most MAX_KEY_BYTES + 1 bytes), so every `extend` succeeds.
    let mut out = Material::EMPTY;
    if raw.len() <= MAX_KEY_BYTES {
        out.extend(&[tag]);
        out.extend(raw);
    } else {
        out.extend(&[tag.to_ascii_uppercase(), b'#']);
        out.extend(&u64::try_from(raw.len()).unwrap_or(u64::MAX).to_le_bytes());
        out.extend(&fnv1a64(raw).to_le_bytes());
    }
    out
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// 64-bit FNV-1a: cheap, stable across VMs and versions (group placement depends on it).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Groups of a policy with `max_keys`: `ceil(max_keys / KEYS_PER_GROUP)`, at least one.
pub fn group_count(max_keys: u32) -> u32 {
    max_keys.div_ceil(KEYS_PER_GROUP).max(1)
}

/// The two groups a key may live in, first choice first; different whenever there are two
/// groups or more. Both come from the key's FNV-1a hash through MurmurHash3's 64-bit
/// finaliser, the first from its low 32 bits, the second from its high 32 bits. FNV-1a alone
/// clusters keys that differ in a last digit or two: `key-0` .. `key-999` take 530 of 2,500
/// groups with it, 827 with the finaliser (a uniform hash: 824 expected).
pub fn candidate_groups(key: &[u8], max_keys: u32) -> [u32; 2] {
    let groups = u64::from(group_count(max_keys));
    let hash = fmix64(fnv1a64(key));
    let first = (hash & 0xffff_ffff).checked_rem(groups).unwrap_or(0);
    // Any other group: an offset of 1..groups from the first.
    let second = match groups.checked_sub(1) {
        Some(others) if others > 0 => {
            let offset = (hash >> 32).checked_rem(others).unwrap_or(0);
            first
                .saturating_add(1)
                .saturating_add(offset)
                .checked_rem(groups)
                .unwrap_or(0)
        }
        _ => first,
    };
    [first, second].map(|group| u32::try_from(group).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(bytes: &[u8]) -> BucketKey {
        BucketKey::Keyed(Material::from_bytes(bytes).unwrap())
    }

    #[test]
    fn material_holds_up_to_max_key_bytes_plus_one() {
        let most = vec![b'k'; MAX_KEY_BYTES + 1];
        assert_eq!(Material::from_bytes(&most).unwrap().as_slice(), &most[..]);
        assert_eq!(Material::from_bytes(b"").unwrap().as_slice(), b"");
        assert!(Material::from_bytes(&[b'k'; MAX_KEY_BYTES + 2]).is_none());
        assert_ne!(
            Material::from_bytes(b"ab").unwrap(),
            Material::from_bytes(b"ab\0").unwrap()
        );
        assert_eq!(
            format!("{:?}", Material::from_bytes(b"hkey\n").unwrap()),
            r#"Material("hkey\\n")"#
        );
    }

    #[test]
    fn ipv4_address_port_is_stripped() {
        assert_eq!(strip_port(b"10.1.2.3:54321"), b"10.1.2.3");
        assert_eq!(strip_port(b"10.1.2.3"), b"10.1.2.3");
    }

    #[test]
    fn bracketed_ipv6_address_port_is_stripped() {
        assert_eq!(strip_port(b"[::1]:8080"), b"::1");
        assert_eq!(strip_port(b"[2001:db8::7]:443"), b"2001:db8::7");
        assert_eq!(strip_port(b"[2001:db8::7]"), b"2001:db8::7");
        assert_eq!(strip_port(b"[broken"), b"broken");
    }

    #[test]
    fn bare_ipv6_address_is_kept_whole() {
        assert_eq!(strip_port(b"2001:db8::7"), b"2001:db8::7");
        assert_eq!(strip_port(b"::1"), b"::1");
    }

    #[test]
    fn same_ip_with_different_ports_shares_a_bucket() {
        assert_eq!(
            BucketKey::from_address(Some(b"10.0.0.9:1000")),
            BucketKey::from_address(Some(b"10.0.0.9:2000"))
        );
        assert_eq!(BucketKey::from_address(Some(b"[::1]:1")), keyed(b"a::1"));
    }

    #[test]
    fn missing_address_or_header_uses_the_missing_bucket() {
        assert_eq!(BucketKey::from_address(None), BucketKey::Missing);
        assert_eq!(BucketKey::from_address(Some(b"")), BucketKey::Missing);
        assert_eq!(BucketKey::from_header(None), BucketKey::Missing);
        assert_eq!(BucketKey::from_header(Some(b"")), BucketKey::Missing);
    }

    #[test]
    fn header_values_and_addresses_never_share_a_bucket() {
        assert_ne!(
            BucketKey::from_header(Some(b"10.0.0.1")),
            BucketKey::from_address(Some(b"10.0.0.1:1"))
        );
        assert_eq!(BucketKey::from_header(Some(b"team-a")), keyed(b"hteam-a"));
    }

    #[test]
    fn long_keys_are_hashed_to_a_bounded_size() {
        let long = vec![b'x'; 10_000];
        let BucketKey::Keyed(key) = BucketKey::from_header(Some(&long)) else {
            panic!("expected a keyed bucket");
        };
        assert!(key.len() <= MAX_KEY_BYTES + 1);
        let mut other = long.clone();
        other[9_999] = b'y';
        assert_ne!(BucketKey::from_header(Some(&other)), BucketKey::Keyed(key));
        let exact = vec![b'z'; MAX_KEY_BYTES];
        assert_eq!(
            BucketKey::from_header(Some(&exact)),
            keyed(&[&b"h"[..], &exact].concat())
        );
    }

    #[test]
    fn a_short_key_that_spells_a_digest_never_shares_a_long_keys_bucket() {
        let long = vec![b'x'; MAX_KEY_BYTES + 1];
        let BucketKey::Keyed(hashed) = BucketKey::from_header(Some(&long)) else {
            panic!("expected a keyed bucket");
        };
        // A client sends the digest part itself (`#`, length, hash: 17 bytes) as its key.
        let spoof = &hashed[1..];
        assert!(spoof.len() <= MAX_KEY_BYTES);
        assert_ne!(
            BucketKey::from_header(Some(spoof)),
            BucketKey::Keyed(hashed)
        );
        let BucketKey::Keyed(address) = BucketKey::from_address(Some(&long)) else {
            panic!("expected a keyed bucket");
        };
        assert_ne!(address, hashed, "header and address digests stay apart");
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn group_count_is_max_keys_over_four_rounded_up_and_never_zero() {
        assert_eq!(group_count(10_000), 2_500);
        assert_eq!(group_count(10_001), 2_501);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(0), 1);
        assert_eq!(group_count(u32::MAX), u32::MAX.div_ceil(4));
    }

    #[test]
    fn candidate_groups_are_two_different_groups_below_the_group_count() {
        for max_keys in [5, 8, 12, 100, 10_000, 1_000_000] {
            let groups = group_count(max_keys);
            for i in 0..1_000u32 {
                let [first, second] = candidate_groups(&i.to_le_bytes(), max_keys);
                assert!(
                    first < groups && second < groups,
                    "{first} {second} of {groups}"
                );
                assert_ne!(first, second, "max_keys {max_keys}, key {i}");
            }
        }
        assert_eq!(
            candidate_groups(b"hkey", 4),
            [0, 0],
            "one group: both choices"
        );
        assert_eq!(candidate_groups(b"hkey", 0), [0, 0]);
        assert_eq!(
            candidate_groups(b"hkey", 10_000),
            candidate_groups(b"hkey", 10_000),
            "stable: every worker VM finds the same groups"
        );
    }

    #[test]
    fn numbered_keys_and_sequential_addresses_spread_like_random_ones() {
        // 1,000 keys over 2,500 groups: a uniform hash leaves them in 824 groups on average
        // (standard deviation ~12); FNV-1a alone put the numbered keys in 530.
        let groups = |keys: Vec<BucketKey>| {
            let firsts: std::collections::HashSet<u32> = keys
                .iter()
                .map(|k| match k {
                    BucketKey::Keyed(owner) => candidate_groups(owner, 10_000)[0],
                    _ => unreachable!(),
                })
                .collect();
            firsts.len()
        };
        let numbered =
            (0..1000).map(|i| BucketKey::from_header(Some(format!("key-{i}").as_bytes())));
        let addresses = (1..=1000u32).map(|i| {
            let [_, _, c, d] = i.to_be_bytes();
            BucketKey::from_address(Some(format!("192.168.{c}.{d}:5000").as_bytes()))
        });
        for (name, used) in [
            ("numbered", groups(numbered.collect())),
            ("addresses", groups(addresses.collect())),
        ] {
            assert!(used >= 780, "{name}: 1,000 keys in {used} groups");
        }
    }
}
