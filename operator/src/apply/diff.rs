//! What an apply changes: the live object against the server's dry-run result of the apply.
//! Pure.

use serde_json::Value;

/// Fields the server owns or that change on every write: never part of a diff.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
        ] {
            metadata.remove(field);
        }
    }
    object
}

/// The differing leaves of two JSON values, as `path: old -> new` lines.
pub fn differences(before: &Value, after: &Value) -> Vec<String> {
    fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
        match (before, after) {
            (Value::Object(a), Value::Object(b)) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        &child,
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (a, b) if a != b => out.push(format!("{path}: {a} -> {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", &comparable(before), &comparable(after), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_owned_fields_are_ignored_and_leaves_are_reported() {
        let live = json!({
            "metadata": { "name": "a", "resourceVersion": "1", "managedFields": [1], "labels": { "x": "1" } },
            "spec": { "replicas": 1, "args": ["--a"] }, "status": { "ready": 1 }
        });
        let applied = json!({
            "metadata": { "name": "a", "resourceVersion": "2", "managedFields": [2], "labels": { "x": "1", "y": "2" } },
            "spec": { "replicas": 2, "args": ["--a"] }, "status": { "ready": 0 }
        });
        assert_eq!(
            differences(&live, &applied),
            ["metadata.labels.y: null -> \"2\"", "spec.replicas: 1 -> 2"]
        );
        assert!(differences(&live, &live).is_empty());
    }
}
