//! Listing page by page (`limit` and `continue`), so a cluster with many objects of a kind is
//! never read in one response. Pure: the caller sends the requests.

use kube::api::ListParams;

/// The parameters of each page of a list, from the first to the last.
///
/// ```ignore
/// let mut pages = Pager::new(policy::kube::LIST_PAGE);
/// while let Some(params) = pages.next_params() {
///     let list = api.list(&params).await?;
///     pages.advance(list.metadata.continue_.as_deref());
///     for item in list.items { ... }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Pager {
    params: ListParams,
    done: bool,
    restarted: bool,
}

impl Pager {
    pub fn new(limit: u32) -> Self {
        Self {
            params: ListParams::default().limit(limit.max(1)),
            done: false,
            restarted: false,
        }
    }

    /// After `error` listing a page: starts over from the first page when the continue
    /// token expired (410 Gone: the API server compacted the history the list was read
    /// at), once; `false` when the error stands. Only for work that may be done twice.
    pub fn restart_after(&mut self, error: &kube::Error) -> bool {
        let expired = matches!(error, kube::Error::Api(status) if status.code == 410);
        if !expired || self.restarted || self.params.continue_token.is_none() {
            return false;
        }
        self.restarted = true;
        self.params.continue_token = None;
        true
    }

    /// The parameters of the next page, `None` once the last page was read.
    pub fn next_params(&self) -> Option<ListParams> {
        (!self.done).then(|| self.params.clone())
    }

    /// Takes the `continue` token of the page just read: none (or empty) means it was the last.
    pub fn advance(&mut self, continue_token: Option<&str>) {
        match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => self.params = self.params.clone().continue_token(token),
            None => self.done = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_continue_token_until_the_server_gives_none() {
        // A server holding 5 objects, 2 per page: tokens "2" and "4", then none.
        let objects: Vec<u32> = (0..5).collect();
        let mut pages = Pager::new(2);
        let mut seen = Vec::new();
        let mut requests = Vec::new();
        while let Some(params) = pages.next_params() {
            assert_eq!(params.limit, Some(2));
            requests.push(params.continue_token.clone());
            let start: usize = params
                .continue_token
                .as_deref()
                .map_or(0, |t| t.parse().unwrap());
            let end = (start + 2).min(objects.len());
            seen.extend_from_slice(&objects[start..end]);
            let next = (end < objects.len()).then(|| end.to_string());
            pages.advance(next.as_deref());
        }
        assert_eq!(seen, objects);
        assert_eq!(requests, [None, Some("2".into()), Some("4".into())]);
    }

    #[test]
    fn an_expired_continue_token_starts_the_list_over_once() {
        let gone = || {
            kube::Error::Api(Box::new(
                serde_json::from_value(serde_json::json!({
                    "status": "Failure", "code": 410, "reason": "Expired",
                    "message": "The provided continue parameter is too old to display a consistent list result."
                }))
                .unwrap(),
            ))
        };
        let mut pages = Pager::new(2);
        // On the first page there is no token to expire.
        assert!(!pages.restart_after(&gone()));
        pages.advance(Some("2"));
        assert!(pages.restart_after(&gone()));
        assert_eq!(pages.next_params().unwrap().continue_token, None);
        pages.advance(Some("2"));
        assert!(!pages.restart_after(&gone()), "only once");
    }

    #[test]
    fn an_empty_continue_token_ends_the_list() {
        let mut pages = Pager::new(0);
        assert_eq!(pages.next_params().unwrap().limit, Some(1));
        pages.advance(Some(""));
        assert!(pages.next_params().is_none());
    }
}
