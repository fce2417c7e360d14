//! Which Flux version of a bundle an instance gets: the highest that satisfies
//! `spec.distribution.version`, never a minor downgrade.
//!
//! The constraint syntax is the one the Flux Operator documents (Masterminds semver, as in Go):
//! `2.x`, `2.8.x`, `2.8.8` (exactly), `>=2.7.0 <2.9.0` (space or comma = and), `~2.8`, `^2`,
//! `!=2.8.1`, and `||` between alternatives. The `semver` crate reads a bare `2.8.8` as
//! `^2.8.8`, so the constraint grammar is ours; only versions come from `semver`.

use semver::Version;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid version constraint {constraint:?}: {reason}")]
    InvalidConstraint { constraint: String, reason: String },
    #[error("no Flux version in the bundle satisfies {constraint:?}; the bundle has {available}")]
    NoMatch {
        constraint: String,
        available: String,
    },
    #[error(
        "refusing to downgrade Flux from {from} to {to}: minor downgrades can leave custom resources \
         stored in API versions the older release does not serve; pin {from_minor}.x or later"
    )]
    MinorDowngrade {
        from: Version,
        to: Version,
        from_minor: String,
    },
    #[error(
        "refusing to move Flux back from v{from} to v{to}: the bundle's newest {constraint} is \
         v{to}, while the running v{from} is still in that range (was the tag moved to an older \
         bundle?); to go back on purpose, set spec.distribution.version to a range that leaves \
         v{from} out, such as \"{to}\""
    )]
    SilentDowngrade {
        from: Version,
        to: Version,
        constraint: String,
    },
}

/// One comparison of a constraint, over a version with possibly missing minor/patch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    op: Op,
    major: u64,
    minor: Option<u64>,
    patch: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Exact,
    NotEqual,
    Greater,
    GreaterEq,
    Less,
    LessEq,
    Tilde,
    Caret,
}

/// A parsed `spec.distribution.version`: alternatives (`||`) of conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    source: String,
    alternatives: Vec<Vec<Term>>,
}

impl Constraint {
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidConstraint {
            constraint: input.to_string(),
            reason,
        };
        let mut alternatives = Vec::new();
        for alternative in input.split("||") {
            let mut terms = Vec::new();
            // Operators may be separated from their version by spaces (`>= 2.7.0`).
            let mut pending_op: Option<&str> = None;
            for token in alternative
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
            {
                let token = match pending_op.take() {
                    Some(op) => format!("{op}{token}"),
                    None if token.chars().all(|c| "<>=!~^".contains(c)) => {
                        pending_op = Some(token);
                        continue;
                    }
                    None => token.to_string(),
                };
                terms.push(parse_term(&token).map_err(invalid)?);
            }
            if let Some(op) = pending_op {
                return Err(invalid(format!("operator {op:?} has no version")));
            }
            if terms.is_empty() {
                return Err(invalid("empty constraint".into()));
            }
            alternatives.push(terms);
        }
        Ok(Self {
            source: input.to_string(),
            alternatives,
        })
    }

    /// Pre-releases never match: a bundle's channel may carry release candidates, and an
    /// instance gets one only by a later, explicit extension of this grammar.
    pub fn matches(&self, version: &Version) -> bool {
        version.pre.is_empty()
            && self
                .alternatives
                .iter()
                .any(|terms| terms.iter().all(|t| t.matches_release(version)))
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

fn parse_term(token: &str) -> Result<Term, String> {
    let (op, rest) = [
        (">=", Op::GreaterEq),
        ("<=", Op::LessEq),
        ("!=", Op::NotEqual),
        ("=>", Op::GreaterEq),
        ("=<", Op::LessEq),
        (">", Op::Greater),
        ("<", Op::Less),
        ("~>", Op::Tilde),
        ("~", Op::Tilde),
        ("^", Op::Caret),
        ("=", Op::Exact),
    ]
    .iter()
    .find_map(|(prefix, op)| token.strip_prefix(prefix).map(|rest| (*op, rest)))
    .unwrap_or((Op::Exact, token));
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    // Build metadata never matters; a pre-release suffix is not supported in ranges.
    let rest = rest.split('+').next().unwrap_or(rest);
    if rest.contains('-') {
        return Err(format!(
            "pre-release versions are not supported in constraints ({token:?})"
        ));
    }
    let mut parts = rest.split('.');
    let number = |part: Option<&str>, what: &str| -> Result<Option<u64>, String> {
        match part {
            None | Some("x" | "X" | "*") => Ok(None),
            Some(p) => p
                .parse()
                .map(Some)
                .map_err(|_| format!("{what} {p:?} in {token:?} is not a number or x")),
        }
    };
    let major = number(parts.next(), "major")?;
    let minor = number(parts.next(), "minor")?;
    let patch = number(parts.next(), "patch")?;
    if parts.next().is_some() {
        return Err(format!("{token:?} has more than three version parts"));
    }
    let Some(major) = major else {
        // `*`/`x` alone: any version.
        return Ok(Term {
            op: Op::GreaterEq,
            major: 0,
            minor: Some(0),
            patch: Some(0),
        });
    };
    if minor.is_none() && patch.is_some() {
        return Err(format!("{token:?} has a patch but a wildcard minor"));
    }
    Ok(Term {
        op,
        major,
        minor,
        patch,
    })
}

impl Term {
    /// The half-open range `[low, high)` a partial version like `2.8` stands for.
    fn bounds(&self) -> (Version, Version) {
        let low = Version::new(self.major, self.minor.unwrap_or(0), self.patch.unwrap_or(0));
        let high = match (self.minor, self.patch) {
            (None, _) => Version::new(self.major + 1, 0, 0),
            (Some(minor), None) => Version::new(self.major, minor + 1, 0),
            (Some(minor), Some(patch)) => Version::new(self.major, minor, patch + 1),
        };
        (low, high)
    }

    fn matches_release(&self, v: &Version) -> bool {
        let (low, high) = self.bounds();
        match self.op {
            Op::Exact => *v >= low && *v < high,
            Op::NotEqual => !(*v >= low && *v < high),
            Op::Greater => *v >= high,
            Op::GreaterEq => *v >= low,
            Op::Less => *v < low,
            Op::LessEq => *v < high,
            // ~2.8.1 is >=2.8.1 <2.9.0; ~2 is >=2.0.0 <3.0.0.
            Op::Tilde => {
                let upper = match self.minor {
                    None => Version::new(self.major + 1, 0, 0),
                    Some(minor) => Version::new(self.major, minor + 1, 0),
                };
                *v >= low && *v < upper
            }
            // ^2.8.1 is >=2.8.1 <3.0.0; ^0.8 is >=0.8.0 <0.9.0.
            Op::Caret => {
                let upper = if self.major > 0 {
                    Version::new(self.major + 1, 0, 0)
                } else {
                    match self.minor {
                        None => Version::new(1, 0, 0),
                        Some(minor) => Version::new(0, minor + 1, 0),
                    }
                };
                *v >= low && *v < upper
            }
        }
    }
}

/// Parses a version as found in bundle paths and revisions (`v2.8.8` or `2.8.8`).
pub fn parse_version(text: &str) -> Option<Version> {
    Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// The Flux version of a revision, `<version>@sha256:<digest of the rendered objects>`.
pub fn of_revision(revision: &str) -> Option<Version> {
    parse_version(revision.split('@').next()?)
}

/// The outcome of choosing a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub version: Version,
    /// The newest version in the bundle when it is outside the requested range: worth an
    /// event telling the user an upgrade exists.
    pub newer_outside_range: Option<Version>,
}

/// The highest of `available` that satisfies `requested`. With `installed` (the version of
/// `status.lastAppliedRevision`), a lower minor is refused; a lower patch only when the
/// range leaves the installed version out (asked for on purpose), never because the bundle
/// lost its newest release (a tag moved to an older signed bundle).
pub fn select(
    requested: &str,
    available: &[Version],
    installed: Option<&Version>,
) -> Result<Selection, Error> {
    let constraint = Constraint::parse(requested)?;
    let chosen = available
        .iter()
        .filter(|v| constraint.matches(v))
        .max()
        .cloned()
        .ok_or_else(|| {
            let mut sorted: Vec<_> = available.to_vec();
            sorted.sort();
            let available = if sorted.is_empty() {
                "no versions".to_string()
            } else {
                sorted
                    .iter()
                    .map(|v| format!("v{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Error::NoMatch {
                constraint: requested.to_string(),
                available,
            }
        })?;
    if let Some(installed) = installed
        && (chosen.major, chosen.minor) < (installed.major, installed.minor)
    {
        return Err(Error::MinorDowngrade {
            from: installed.clone(),
            to: chosen,
            from_minor: format!("{}.{}", installed.major, installed.minor),
        });
    }
    if let Some(installed) = installed
        && chosen < *installed
        && constraint.matches(installed)
    {
        return Err(Error::SilentDowngrade {
            from: installed.clone(),
            to: chosen,
            constraint: requested.to_string(),
        });
    }
    let newest = available.iter().filter(|v| v.pre.is_empty()).max();
    let newer_outside_range = newest.filter(|n| **n > chosen).cloned();
    Ok(Selection {
        version: chosen,
        newer_outside_range,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn revisions_name_their_flux_version() {
        assert_eq!(
            super::of_revision("v2.8.8@sha256:abc"),
            Some(semver::Version::new(2, 8, 8))
        );
        assert_eq!(super::of_revision("garbage"), None);
    }

    use super::*;

    /// The four real Flux releases of shared/flux-dist.
    fn flux_releases() -> Vec<Version> {
        ["v2.6.4", "v2.9.4", "v2.7.5", "v2.8.8"]
            .iter()
            .map(|v| parse_version(v).unwrap())
            .collect()
    }

    fn chosen(requested: &str) -> String {
        select(requested, &flux_releases(), None)
            .map(|s| s.version.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn the_documented_constraints_pick_the_highest_matching_release() {
        assert_eq!(chosen("2.x"), "2.9.4");
        assert_eq!(chosen("*"), "2.9.4");
        assert_eq!(chosen("2.8.x"), "2.8.8");
        assert_eq!(chosen("2.8"), "2.8.8");
        assert_eq!(chosen("2.8.8"), "2.8.8");
        assert_eq!(chosen("v2.7.5"), "2.7.5");
        assert_eq!(chosen(">=2.7.0 <2.9.0"), "2.8.8");
        assert_eq!(chosen(">=2.7.0, <2.9.0"), "2.8.8");
        assert_eq!(chosen(">= 2.6.0 < 2.8.0"), "2.7.5");
        assert_eq!(chosen("~2.6"), "2.6.4");
        assert_eq!(chosen("^2.7.0"), "2.9.4");
        assert_eq!(chosen("2.x != 2.9.4"), "2.8.8");
        assert_eq!(chosen("2.6.x || 2.7.x"), "2.7.5");
        assert_eq!(chosen("<=2.7"), "2.7.5");
        assert_eq!(chosen(">2.8"), "2.9.4");
    }

    #[test]
    fn a_constraint_nothing_satisfies_lists_what_the_bundle_has() {
        let message = chosen("2.10.x");
        assert!(
            message.contains("no Flux version in the bundle satisfies \"2.10.x\""),
            "{message}"
        );
        assert!(
            message.contains("v2.6.4, v2.7.5, v2.8.8, v2.9.4"),
            "{message}"
        );
        assert!(chosen("2.8.7").contains("no Flux version"));
    }

    #[test]
    fn malformed_constraints_are_errors_that_name_the_problem() {
        for (input, expected) in [
            ("", "empty constraint"),
            ("two", "not a number or x"),
            ("2.x.1", "wildcard minor"),
            ("2.8.8.1", "more than three"),
            (">=", "has no version"),
            ("2.9.0-rc.1 || 2.x", "pre-release"),
        ] {
            let error = Constraint::parse(input).expect_err(input).to_string();
            assert!(error.contains(expected), "{input:?}: {error}");
        }
    }

    #[test]
    fn patch_downgrades_are_allowed_and_minor_downgrades_refused() {
        let installed = Version::new(2, 8, 9);
        let patch = select("2.8.8", &flux_releases(), Some(&installed)).expect("patch downgrade");
        assert_eq!(patch.version, Version::new(2, 8, 8));
        let error = select("2.7.x", &flux_releases(), Some(&Version::new(2, 8, 8)))
            .expect_err("minor downgrade");
        assert!(
            error
                .to_string()
                .contains("refusing to downgrade Flux from 2.8.8 to 2.7.5"),
            "{error}"
        );
        assert!(
            select("2.9.x", &flux_releases(), Some(&Version::new(2, 8, 8))).is_ok(),
            "upgrades pass"
        );
    }

    #[test]
    fn a_bundle_that_lost_the_running_release_does_not_move_flux_back() {
        // 2.8.9 runs; the tag now points at a bundle whose newest 2.8.x is 2.8.8.
        let running = Version::new(2, 8, 9);
        let error = select("2.8.x", &flux_releases(), Some(&running))
            .expect_err("a silent patch downgrade");
        let text = error.to_string();
        assert!(
            text.contains("refusing to move Flux back from v2.8.9 to v2.8.8")
                && text.contains("such as \"2.8.8\""),
            "{text}"
        );
        // The same bundle with the running release in it selects it, and the same move asked
        // for explicitly passes.
        assert!(select(">=2.8.8 <2.8.9", &flux_releases(), Some(&running)).is_ok());
        assert_eq!(
            select("2.x", &flux_releases(), Some(&Version::new(2, 9, 4)))
                .unwrap()
                .version,
            Version::new(2, 9, 4)
        );
    }

    #[test]
    fn a_newer_release_outside_the_range_is_reported() {
        let selection = select("2.7.x", &flux_releases(), None).unwrap();
        assert_eq!(selection.newer_outside_range, Some(Version::new(2, 9, 4)));
        assert_eq!(
            select("2.x", &flux_releases(), None)
                .unwrap()
                .newer_outside_range,
            None
        );
    }

    #[test]
    fn pre_releases_are_never_chosen() {
        let mut available = flux_releases();
        available.push(Version::parse("2.10.0-rc.1").unwrap());
        assert_eq!(
            select("2.x", &available, None).unwrap().version,
            Version::new(2, 9, 4)
        );
        assert_eq!(
            select(">=2.9.0", &available, None).unwrap().version,
            Version::new(2, 9, 4)
        );
        assert!(select("2.10.0", &available, None).is_err());
    }
}
