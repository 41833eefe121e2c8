//! The `grpc_service` argument of `proxy_grpc_call`, decided as Envoy decides it
//! (`source/extensions/common/wasm/context.cc`, `Context::grpcCall`): bytes that parse as a
//! serialized `envoy.config.core.v3.GrpcService` are one; any other bytes are a cluster name.

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Service {
    /// A serialized `GrpcService` with `envoy_grpc` set: the cluster and its `authority`
    /// (empty = none). Envoy skips the cluster check here: an unknown cluster fails the call
    /// itself (`Cluster not available`), not the argument.
    EnvoyGrpc { cluster: String, authority: String },
    /// A serialized `GrpcService` that names no Envoy cluster (`google_grpc`, or nothing).
    Other,
    /// Bytes that are not a `GrpcService`: a cluster name (Envoy: `ParseFailure` when no such
    /// cluster exists).
    ClusterName(String),
}

/// Decides what `bytes` are.
pub(crate) fn parse(bytes: &[u8]) -> Service {
    match grpc_service(bytes) {
        Some(Target::Envoy(envoy)) => Service::EnvoyGrpc {
            cluster: envoy.cluster_name,
            authority: envoy.authority,
        },
        Some(Target::None | Target::Google) => Service::Other,
        None => Service::ClusterName(String::from_utf8_lossy(bytes).into_owned()),
    }
}

#[derive(Debug, Default)]
struct EnvoyGrpc {
    cluster_name: String,
    authority: String,
}

/// The `target_specifier` oneof; the last member on the wire wins, as protobuf merges it.
#[derive(Debug)]
enum Target {
    None,
    Envoy(EnvoyGrpc),
    Google,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const START_GROUP: u64 = 3;
const END_GROUP: u64 = 4;
const FIXED32: u64 = 5;

/// `GrpcService`: `envoy_grpc = 1`, `google_grpc = 2`; other fields (timeout,
/// initial_metadata, retry_policy, unknown ones) must be well-formed and are otherwise unused.
fn grpc_service(bytes: &[u8]) -> Option<Target> {
    let mut target = Target::None;
    let mut reader = Reader { bytes, at: 0 };
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, LEN) => {
                // A repeated sub-message merges into the one before (protobuf semantics).
                let mut envoy = match target {
                    Target::Envoy(envoy) => envoy,
                    _ => EnvoyGrpc::default(),
                };
                envoy_grpc(reader.len_delimited()?, &mut envoy)?;
                target = Target::Envoy(envoy);
            }
            (2, LEN) => {
                well_formed(reader.len_delimited()?)?;
                target = Target::Google;
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Some(target)
}

/// `GrpcService.EnvoyGrpc`: `cluster_name = 1`, `authority = 2` (proto3 strings: UTF-8 or the
/// message does not parse).
fn envoy_grpc(bytes: &[u8], out: &mut EnvoyGrpc) -> Option<()> {
    let mut reader = Reader { bytes, at: 0 };
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (1, LEN) => out.cluster_name = utf8(reader.len_delimited()?)?,
            (2, LEN) => out.authority = utf8(reader.len_delimited()?)?,
            _ => reader.skip(field, wire)?,
        }
    }
    Some(())
}

fn utf8(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// Any message: every field well-formed.
fn well_formed(bytes: &[u8]) -> Option<()> {
    let mut reader = Reader { bytes, at: 0 };
    while let Some((field, wire)) = reader.tag()? {
        reader.skip(field, wire)?;
    }
    Some(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The next (field number, wire type); `Some(None)` at the end; `None` when malformed
    /// (field 0, wire types 6 and 7, an END_GROUP with no group open).
    fn tag(&mut self) -> Option<Option<(u64, u64)>> {
        if self.at == self.bytes.len() {
            return Some(None);
        }
        let tag = self.varint()?;
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 || field > u64::from(u32::MAX >> 3) || wire > FIXED32 || wire == END_GROUP {
            return None;
        }
        Some(Some((field, wire)))
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let bytes = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    /// Skips one field's value; a group up to its matching END_GROUP.
    fn skip(&mut self, field: u64, wire: u64) -> Option<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => loop {
                let tag = self.varint()?;
                let (inner, inner_wire) = (tag >> 3, tag & 7);
                if inner_wire == END_GROUP {
                    return (inner == field).then_some(());
                }
                if inner == 0 || inner_wire > FIXED32 {
                    return None;
                }
                self.skip(inner, inner_wire)?;
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A serialized GrpcService { envoy_grpc { cluster_name, authority } }.
    fn envoy(cluster: &str, authority: &str) -> Vec<u8> {
        let mut inner = vec![0x0a, cluster.len() as u8];
        inner.extend_from_slice(cluster.as_bytes());
        if !authority.is_empty() {
            inner.extend_from_slice(&[0x12, authority.len() as u8]);
            inner.extend_from_slice(authority.as_bytes());
        }
        let mut outer = vec![0x0a, inner.len() as u8];
        outer.extend_from_slice(&inner);
        outer
    }

    #[test]
    fn a_serialized_grpc_service_names_its_cluster_and_authority() {
        assert_eq!(
            parse(&envoy("rls", "rls.example")),
            Service::EnvoyGrpc {
                cluster: "rls".into(),
                authority: "rls.example".into()
            }
        );
        // A timeout (field 3, google.protobuf.Duration) beside it changes nothing.
        let mut with_timeout = envoy("rls", "");
        with_timeout.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01]);
        assert_eq!(
            parse(&with_timeout),
            Service::EnvoyGrpc {
                cluster: "rls".into(),
                authority: String::new()
            }
        );
    }

    #[test]
    fn bytes_that_are_not_a_grpc_service_are_a_cluster_name() {
        for name in [
            "rls",
            "ratelimit",
            "outbound|8081||ratelimit.default.svc.cluster.local",
        ] {
            assert_eq!(parse(name.as_bytes()), Service::ClusterName(name.into()));
        }
    }

    #[test]
    fn a_grpc_service_without_an_envoy_cluster_is_other() {
        assert_eq!(
            parse(&[]),
            Service::Other,
            "empty bytes parse as an empty message"
        );
        assert_eq!(parse(&[0x12, 0x00]), Service::Other, "google_grpc {{}}");
        // envoy_grpc then google_grpc: the oneof keeps the last.
        let mut both = envoy("rls", "");
        both.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(parse(&both), Service::Other);
    }

    #[test]
    fn malformed_wire_data_is_a_cluster_name() {
        for bytes in [
            &[0x0a, 0x05, 0x0a][..],             // length past the end
            &[0x0f][..],                         // wire type 7
            &[0x0c][..],                         // END_GROUP with no group
            &[0x00, 0x00][..],                   // field 0
            &[0x0a, 0x02, 0x0a, 0x80][..],       // truncated varint inside envoy_grpc
            &[0x0a, 0x03, 0x0a, 0x01, 0xff][..], // cluster_name not UTF-8
        ] {
            assert!(matches!(parse(bytes), Service::ClusterName(_)), "{bytes:?}");
        }
    }

    #[test]
    fn groups_and_unknown_fields_are_skipped_when_well_formed() {
        // field 9 group { field 1 varint 5 } end group, then envoy_grpc.
        let mut bytes = vec![0x4b, 0x08, 0x05, 0x4c];
        bytes.extend_from_slice(&envoy("c", ""));
        assert!(matches!(parse(&bytes), Service::EnvoyGrpc { .. }));
        // The group closes with another field's END_GROUP: malformed.
        assert!(matches!(
            parse(&[0x4b, 0x08, 0x05, 0x54]),
            Service::ClusterName(_)
        ));
    }
}
