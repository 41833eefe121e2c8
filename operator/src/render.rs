//! Offline rendering: HeaderRateLimit YAML in, the WasmPlugins the controller would apply out.
//! Used by `hrl-operator render -f FILE` (GitOps, review) and by the playground.

use serde::Deserialize;
use serde_json::Value;

use crate::crd::HeaderRateLimit;
use crate::plan::{InvalidSpec, Observed, Settings, plan};

/// Why a file could not be rendered; every variant names the document and the field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The YAML does not parse, or a field has the wrong type.
    #[error("document {document}: {message}")]
    Yaml {
        /// 1-based document index in the file.
        document: usize,
        /// Parser message (names the field and line).
        message: String,
    },
    /// The document is not a hrl.dev/v1alpha1 HeaderRateLimit.
    #[error(
        "document {document}: expected apiVersion hrl.dev/v1alpha1, kind HeaderRateLimit; found {found}"
    )]
    NotAHeaderRateLimit {
        /// 1-based document index in the file.
        document: usize,
        /// `apiVersion kind` found.
        found: String,
    },
    /// A field the API would drop (most likely a typo).
    #[error("document {document}: {field}: unknown field")]
    UnknownField {
        /// 1-based document index in the file.
        document: usize,
        /// Path of the unknown field.
        field: String,
    },
    /// The spec breaks a rule.
    #[error("{namespace}/{name}: {source}")]
    Invalid {
        /// Namespace of the HeaderRateLimit.
        namespace: String,
        /// Name of the HeaderRateLimit.
        name: String,
        /// The broken rule, with its CRD field path.
        source: InvalidSpec,
    },
    /// A WasmPlugin could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Output(String),
}

/// Parses every HeaderRateLimit in a multi-document YAML string; a missing namespace is
/// `default`. Empty documents are skipped.
pub fn parse_documents(yaml: &str) -> Result<Vec<HeaderRateLimit>, RenderError> {
    let mut out = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let document_number = i + 1;
        let yaml_err = |e: &dyn std::fmt::Display| RenderError::Yaml {
            document: document_number,
            message: e.to_string(),
        };
        let value = Value::deserialize(document).map_err(|e| yaml_err(&e))?;
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version != "hrl.dev/v1alpha1" || kind != "HeaderRateLimit" {
            return Err(RenderError::NotAHeaderRateLimit {
                document: document_number,
                found: format!("apiVersion {api_version:?}, kind {kind:?}"),
            });
        }
        let mut hrl: HeaderRateLimit =
            serde_json::from_value(value.clone()).map_err(|e| RenderError::Yaml {
                document: document_number,
                message: typed_error(&value).unwrap_or_else(|| e.to_string()),
            })?;
        let typed = serde_json::to_value(&hrl).map_err(|e| yaml_err(&e))?;
        for top in ["spec", "metadata"] {
            if let (Some(original), Some(typed)) = (value.get(top), typed.get(top))
                && let Some(field) = unknown_field(top, original, typed)
            {
                return Err(RenderError::UnknownField {
                    document: document_number,
                    field,
                });
            }
        }
        if hrl.metadata.namespace.is_none() {
            hrl.metadata.namespace = Some("default".into());
        }
        out.push(hrl);
    }
    Ok(out)
}

/// serde_json's error has no field path; the YAML deserialiser's has. Re-reading the document
/// through it names the field (its line numbers would be of the re-serialised text: dropped).
fn typed_error(value: &Value) -> Option<String> {
    let text = serde_norway::to_string(value).ok()?;
    let error = serde_norway::from_str::<HeaderRateLimit>(&text)
        .err()?
        .to_string();
    Some(
        error
            .split(" at line ")
            .next()
            .unwrap_or(&error)
            .to_string(),
    )
}

/// The first field of `original` that did not survive a round trip through the Rust types.
fn unknown_field(path: &str, original: &Value, typed: &Value) -> Option<String> {
    // List items are objects too (`targetRefs[]`, `match.paths[]`): a typo there counts.
    if let (Value::Array(original), Value::Array(typed)) = (original, typed) {
        return original
            .iter()
            .zip(typed)
            .enumerate()
            .find_map(|(i, (o, t))| unknown_field(&format!("{path}[{i}]"), o, t));
    }
    let (Value::Object(original), Value::Object(typed)) = (original, typed) else {
        return None;
    };
    for (key, value) in original {
        let child = format!("{path}.{key}");
        match typed.get(key) {
            Some(t) => {
                if let Some(found) = unknown_field(&child, value, t) {
                    return Some(found);
                }
            }
            None if is_empty(value) => {}
            None => return Some(child),
        }
    }
    None
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Renders the WasmPlugins for every HeaderRateLimit in `yaml` as a multi-document YAML
/// string, in input order, as the controller would with `observed` (the serving pods a
/// Workload policy is split across). Fails on the first invalid resource.
pub fn render(yaml: &str, settings: &Settings, observed: &Observed) -> Result<String, RenderError> {
    let mut out = String::new();
    for hrl in parse_documents(yaml)? {
        let planned = plan(&hrl, settings, observed);
        let wasm_plugin = planned.wasm_plugin.map_err(|source| RenderError::Invalid {
            namespace: hrl.metadata.namespace.clone().unwrap_or_default(),
            name: hrl.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        let text = serde_norway::to_string(&wasm_plugin)
            .map_err(|e| RenderError::Output(e.to_string()))?;
        out.push_str("---\n");
        out.push_str(&text);
    }
    Ok(out)
}
