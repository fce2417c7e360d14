//! The tag filter of the OCI input providers: include/exclude regular expressions, a semver
//! constraint, and a limit, ordered as the incumbent orders them (newest version first with
//! a constraint, reverse lexical order without).

use std::cmp::Reverse;

use crate::bundle::version::Constraint;

/// The providers' default and largest `filter.limit`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub struct TagFilter<'a> {
    pub include: Option<&'a str>,
    pub exclude: Option<&'a str>,
    pub semver: Option<&'a str>,
    /// `filter.limit`; zero or less means the default.
    pub limit: i64,
}

/// A version as tags spell it: an optional `v`, and missing minor/patch parts as zero.
fn tag_version(tag: &str) -> Option<semver::Version> {
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(bare) {
        return Some(v);
    }
    let (core, rest) = match bare.find(['-', '+']) {
        Some(i) => bare.split_at(i),
        None => (bare, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let padded = [parts.first(), parts.get(1), parts.get(2)]
        .map(|p| p.copied().unwrap_or("0"))
        .join(".");
    semver::Version::parse(&format!("{padded}{rest}")).ok()
}

/// The tags the filter keeps, in the order exported.
pub fn filter_tags(tags: &[String], filter: &TagFilter<'_>) -> Result<Vec<String>, String> {
    let compile = |what: &str, pattern: Option<&str>| {
        pattern
            .filter(|p| !p.is_empty())
            .map(|p| {
                regex::Regex::new(p)
                    .map_err(|e| format!("invalid {what} regular expression {p:?}: {e}"))
            })
            .transpose()
    };
    let include = compile("include", filter.include)?;
    let exclude = compile("exclude", filter.exclude)?;
    let limit = if filter.limit <= 0 {
        DEFAULT_LIMIT
    } else {
        (filter.limit as usize).min(MAX_LIMIT)
    };
    let mut kept: Vec<&String> = tags
        .iter()
        .filter(|t| include.as_ref().is_none_or(|r| r.is_match(t)))
        .filter(|t| exclude.as_ref().is_none_or(|r| !r.is_match(t)))
        .collect();
    match filter.semver.filter(|s| !s.is_empty()) {
        Some(constraint) => {
            let constraint = Constraint::parse(constraint)
                .map_err(|e| format!("invalid semver constraint: {e}"))?;
            let mut versioned: Vec<(semver::Version, &String)> = kept
                .into_iter()
                .filter_map(|t| tag_version(t).map(|v| (v, t)))
                .filter(|(v, _)| constraint.matches(v))
                .collect();
            // Stable: equal versions keep the registry's order.
            versioned.sort_by(|(a, _), (b, _)| b.cmp(a));
            Ok(versioned
                .into_iter()
                .take(limit)
                .map(|(_, t)| t.clone())
                .collect())
        }
        None => {
            kept.sort_by_key(|t| Reverse(*t));
            Ok(kept.into_iter().take(limit).cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn semver_keeps_matching_versions_newest_first() {
        let all = tags(&[
            "v1.0.0",
            "1.2.0",
            "v1.10.0",
            "latest",
            "v2.0.0",
            "1.5",
            "v1.3.0-rc.1",
        ]);
        let got = filter_tags(
            &all,
            &TagFilter {
                semver: Some(">=1.0.0 <2.0.0"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got, ["v1.10.0", "1.5", "1.2.0", "v1.0.0"]);
    }

    #[test]
    fn without_semver_tags_are_in_reverse_lexical_order_and_limited() {
        let all = tags(&["a", "c", "b", "d"]);
        let got = filter_tags(
            &all,
            &TagFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got, ["d", "c"]);
    }

    #[test]
    fn include_and_exclude_apply_before_the_order() {
        let all = tags(&["env-prod", "env-dev", "env-dev-old", "other"]);
        let got = filter_tags(
            &all,
            &TagFilter {
                include: Some("^env-"),
                exclude: Some("-old$"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got, ["env-prod", "env-dev"]);
    }

    #[test]
    fn a_bad_expression_or_constraint_is_an_error_naming_it() {
        let err = filter_tags(
            &tags(&["a"]),
            &TagFilter {
                include: Some("("),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("invalid include regular expression"), "{err}");
        let err = filter_tags(
            &tags(&["a"]),
            &TagFilter {
                semver: Some(">=banana"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("invalid semver constraint"), "{err}");
    }
}
