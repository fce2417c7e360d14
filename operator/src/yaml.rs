//! The one YAML writer of fluxop's output (CRDs, `-o yaml`, rendered objects): single-line
//! strings such as image references stay plain scalars, multi-line strings are literal blocks.

use serde::Serialize;
use serde_saphyr::{SerializeError, SerializerOptions};

pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    let mut options = SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options)
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_single_line_strings_are_not_folded() {
        let image = format!(
            "ghcr.io/fluxcd/source-controller:v1.9.4@sha256:{}",
            "a".repeat(64)
        );
        let text =
            super::to_string(&serde_json::json!({ "image": image, "text": "one\ntwo\n" })).unwrap();
        assert!(text.contains(&format!("image: {image}")), "{text}");
        assert!(text.contains("text: |"), "{text}");
    }
}
