//! Authenticated `/metrics` (`fluxop run --metrics-auth`), as controller-runtime's secure
//! metrics serving does it: the caller's bearer token is checked with a TokenReview, and the
//! user it names must be allowed `get` on the non-resource URL `/metrics` (a
//! SubjectAccessReview; deploy/rbac.yaml has the ClusterRole `fluxop-metrics-reader`).
//! Verdicts are kept briefly, so a scrape every few seconds costs the API server little.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};
use sha2::{Digest, Sha256};

/// How long a verdict on a token is kept, and how many are.
const VERDICT_TTL: Duration = Duration::from_secs(10);
const MAX_VERDICTS: usize = 256;

/// What a request to `/metrics` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401: no bearer token, or one the API server does not accept.
    Unauthenticated(String),
    /// 403: a valid token whose user may not read `/metrics`.
    Forbidden(String),
    /// 503: the API server could not be asked (not kept).
    Unavailable(String),
}

pub struct MetricsAuth {
    client: Client,
    verdicts: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
}

impl MetricsAuth {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict on a request whose `Authorization` header is `authorization`.
    pub async fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some(token) = bearer_token(authorization) else {
            return Verdict::Unauthenticated(
                "/metrics needs a bearer token (Authorization: Bearer <service account token>)"
                    .into(),
            );
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.kept(&key) {
            return verdict;
        }
        let verdict = self.review(token).await;
        if !matches!(verdict, Verdict::Unavailable(_)) {
            let mut verdicts = self
                .verdicts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if verdicts.len() >= MAX_VERDICTS {
                verdicts.clear();
            }
            verdicts.insert(key, (verdict.clone(), Instant::now()));
        }
        verdict
    }

    fn kept(&self, key: &[u8; 32]) -> Option<Verdict> {
        let verdicts = self
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verdicts
            .get(key)
            .filter(|(_, at)| at.elapsed() < VERDICT_TTL)
            .map(|(verdict, _)| verdict.clone())
    }

    async fn review(&self, token: &str) -> Verdict {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let reviewed = match Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(reviewed) => reviewed,
            Err(error) => return Verdict::Unavailable(format!("TokenReview failed: {error}")),
        };
        let status = reviewed.status.unwrap_or_default();
        let user = match status.user.filter(|_| status.authenticated == Some(true)) {
            Some(user) => user,
            None => {
                return Verdict::Unauthenticated(format!(
                    "the token is not valid{}",
                    status.error.map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
        };
        let name = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => Verdict::Allowed,
            Ok(_) => Verdict::Forbidden(format!(
                "{name} may not get /metrics (bind the ClusterRole fluxop-metrics-reader)"
            )),
            Err(error) => Verdict::Unavailable(format!("SubjectAccessReview failed: {error}")),
        }
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_token_is_taken() {
        assert_eq!(bearer_token(Some("Bearer abc.def")), Some("abc.def"));
        assert_eq!(bearer_token(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic dTpw")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }
}
