//! Input sets of a ResourceSet: its own `spec.inputs` and the exported inputs of the
//! providers it references, combined by the input strategy (Flatten or Permute) exactly as
//! the incumbent combines them, so templates see the same `inputs` and the same ids.

use serde_json::{Map, Value as Json};

pub type InputSet = Map<String, Json>;

/// Permute refuses to go past this many combinations (the incumbent's limit).
pub const MAX_PERMUTATIONS: u64 = 10_000;

/// One source of inputs: the ResourceSet itself first, then each provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub inputs: Vec<InputSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Flatten,
    Permute {
        include_empty_providers: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "failed to get inputs from {kind}/{name}: adding provider '{name}' with {count} inputs would exceed the maximum allowed permutations. max: {MAX_PERMUTATIONS}, got: {total}"
    )]
    TooManyPermutations {
        kind: String,
        name: String,
        count: usize,
        total: u64,
    },
    #[error("failed to get inputs from {kind}/{name}: normalized provider name is empty: '{name}'")]
    EmptyName { kind: String, name: String },
}

/// The id of an input: the decimal Adler-32 checksum of `s` (the incumbent's `inputs.ID`).
pub fn id(s: &str) -> String {
    adler32(s.as_bytes()).to_string()
}

pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before b overflows.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A provider's name as a template key under Permute: lower case, spaces and punctuation
/// become `_`, everything else outside `[a-z0-9]` is dropped, runs of `_` collapse.
pub fn template_key(name: &str) -> String {
    let mapped: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| {
            if c.is_whitespace() || is_punctuation(c) {
                Some('_')
            } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    mapped
        .split('_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// Unicode category P for ASCII (Kubernetes names are ASCII); `$+<=>^`|~` are symbols (S),
/// which the incumbent drops rather than maps.
fn is_punctuation(c: char) -> bool {
    matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
    ) || (!c.is_ascii()
        && matches!(c, '\u{2010}'..='\u{2027}' | '\u{3001}'..='\u{3003}' | '\u{00A1}' | '\u{00A7}' | '\u{00AB}' | '\u{00B6}' | '\u{00B7}' | '\u{00BB}' | '\u{00BF}'))
}

/// Every input set, each with `provider` naming where it came from (overriding any key of
/// that name), combined by `strategy`. `sources[0]` is the ResourceSet.
pub fn combine(sources: &[Source], strategy: Strategy) -> Result<Vec<InputSet>, Error> {
    let tagged: Vec<(&Source, Vec<InputSet>)> = sources
        .iter()
        .map(|source| {
            let provider = serde_json::json!({
                "apiVersion": source.api_version,
                "kind": source.kind,
                "name": source.name,
                "namespace": source.namespace,
            });
            let sets = source
                .inputs
                .iter()
                .map(|set| {
                    let mut set = set.clone();
                    set.insert("provider".into(), provider.clone());
                    set
                })
                .collect();
            (source, sets)
        })
        .collect();
    match strategy {
        Strategy::Flatten => Ok(tagged.into_iter().flat_map(|(_, sets)| sets).collect()),
        Strategy::Permute {
            include_empty_providers,
        } => permute(tagged, include_empty_providers),
    }
}

fn permute(
    tagged: Vec<(&Source, Vec<InputSet>)>,
    include_empty: bool,
) -> Result<Vec<InputSet>, Error> {
    let mut scoped: Vec<(String, Vec<InputSet>)> = Vec::new();
    let mut expected: u64 = 0;
    for (source, sets) in tagged {
        if !include_empty && sets.is_empty() {
            continue;
        }
        expected = if scoped.is_empty() {
            sets.len() as u64
        } else {
            expected * sets.len() as u64
        };
        if expected > MAX_PERMUTATIONS {
            return Err(Error::TooManyPermutations {
                kind: source.kind.clone(),
                name: source.name.clone(),
                count: sets.len(),
                total: expected,
            });
        }
        let key = template_key(&source.name);
        if key.is_empty() {
            return Err(Error::EmptyName {
                kind: source.kind.clone(),
                name: source.name.clone(),
            });
        }
        scoped.push((key, sets));
    }
    if scoped.is_empty() || scoped.iter().any(|(_, sets)| sets.is_empty()) {
        return Ok(Vec::new());
    }
    // Odometer order: the last source turns fastest.
    let mut result = Vec::with_capacity(expected as usize);
    let mut selected = vec![0usize; scoped.len()];
    loop {
        let mut permutation = InputSet::new();
        let mut id_parts = Vec::with_capacity(scoped.len());
        for (i, (key, sets)) in scoped.iter().enumerate() {
            permutation.insert(key.clone(), Json::Object(sets[selected[i]].clone()));
            id_parts.push(format!("{key}={}", selected[i]));
        }
        permutation.insert("id".into(), Json::String(id(&id_parts.join("/"))));
        result.push(permutation);
        let mut digit = scoped.len();
        loop {
            if digit == 0 {
                return Ok(result);
            }
            digit -= 1;
            selected[digit] += 1;
            if selected[digit] < scoped[digit].1.len() {
                break;
            }
            selected[digit] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_adler32_in_decimal() {
        assert_eq!(id("foo"), "42074437");
        assert_eq!(id("rset=0/rsip=0"), "563152006");
        assert_eq!(adler32(&vec![0xffu8; 100_000]), {
            // Reference value by the definition, without chunking.
            let (mut a, mut b) = (1u64, 0u64);
            for _ in 0..100_000 {
                a = (a + 0xff) % 65_521;
                b = (b + a) % 65_521;
            }
            ((b << 16) | a) as u32
        });
    }

    #[test]
    fn template_keys_map_punctuation_and_drop_symbols() {
        assert_eq!(template_key("my-app.v2"), "my_app_v2");
        assert_eq!(template_key("--A  b__c"), "a_b_c");
        assert_eq!(template_key("a+b$c"), "abc");
        assert_eq!(template_key("+++"), "");
    }

    fn source(name: &str, n: usize) -> Source {
        Source {
            api_version: "fluxcd.controlplane.io/v1".into(),
            kind: "ResourceSetInputProvider".into(),
            name: name.into(),
            namespace: "ns".into(),
            inputs: (0..n)
                .map(|i| serde_json::json!({ "i": i }).as_object().cloned().unwrap())
                .collect(),
        }
    }

    #[test]
    fn permute_turns_the_last_source_fastest_and_ids_each_permutation() {
        let sets = combine(
            &[source("a", 2), source("b", 3)],
            Strategy::Permute {
                include_empty_providers: false,
            },
        )
        .unwrap();
        assert_eq!(sets.len(), 6);
        assert_eq!(sets[1]["a"]["i"], 0);
        assert_eq!(sets[1]["b"]["i"], 1);
        assert_eq!(sets[1]["id"], id("a=0/b=1"));
        assert_eq!(sets[3]["a"]["i"], 1);
        assert_eq!(sets[0]["a"]["provider"]["name"], "a");
    }

    #[test]
    fn empty_sources_are_skipped_unless_included() {
        let skip = combine(
            &[source("a", 0), source("b", 2)],
            Strategy::Permute {
                include_empty_providers: false,
            },
        )
        .unwrap();
        assert_eq!(skip.len(), 2);
        let include = combine(
            &[source("a", 0), source("b", 2)],
            Strategy::Permute {
                include_empty_providers: true,
            },
        )
        .unwrap();
        assert!(include.is_empty());
    }

    #[test]
    fn permutations_are_capped() {
        let err = combine(
            &[source("a", 101), source("b", 100)],
            Strategy::Permute {
                include_empty_providers: false,
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to get inputs from ResourceSetInputProvider/b: adding provider 'b' with 100 inputs would exceed the maximum allowed permutations. max: 10000, got: 10100"
        );
    }

    #[test]
    fn flatten_concatenates_in_source_order_and_overrides_provider() {
        let mut first = source("a", 1);
        first.inputs[0].insert("provider".into(), Json::String("mine".into()));
        let sets = combine(&[first, source("b", 2)], Strategy::Flatten).unwrap();
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0]["provider"]["name"], "a");
        assert_eq!(sets[2]["provider"]["name"], "b");
    }
}
