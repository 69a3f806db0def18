//! Tag listing: `GET /v2/<name>/tags/list`, page after page as the registry's
//! `Link: <…>; rel="next"` headers lead, on the same registry only, with a
//! bounded number of pages and a bounded body per page.

use super::RegistryClient;
use crate::registry::auth::Scope;
use crate::registry::error::RegistryError;
use reqwest::{StatusCode, header};

/// Tags asked for per page (ECR rejects more than 1,000; Quay caps at 100).
pub const TAGS_PAGE_SIZE: usize = 1000;
/// The largest page body read (1,000 tags of 128 characters fit easily).
pub const MAX_TAGS_PAGE_BYTES: usize = 1 << 20;

/// A repository's tags as the registry listed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagListing {
    /// The tags, in the registry's order; None when the repository does not exist.
    pub tags: Option<Vec<String>>,
    /// Pages read.
    pub pages: u32,
}

#[derive(serde::Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The `rel="next"` target of a `Link` header value.
pub fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let next = params.split(';').any(|param| {
            let param = param.trim().to_ascii_lowercase();
            param == "rel=\"next\"" || param == "rel=next"
        });
        next.then_some(target)
    })
}

impl RegistryClient {
    /// Every tag of `repository`, reading at most `max_pages` pages; a
    /// registry that leads further, or off its own host, gets an error.
    pub async fn list_tags(
        &self,
        repository: &str,
        max_pages: u32,
    ) -> Result<TagListing, RegistryError> {
        const OPERATION: &str = "GET tags";
        let mut url = self.url(&format!("/v2/{repository}/tags/list?n={TAGS_PAGE_SIZE}"));
        let mut listing = TagListing {
            tags: Some(Vec::new()),
            pages: 0,
        };
        loop {
            if listing.pages >= max_pages {
                return Err(RegistryError::Transport {
                    operation: OPERATION,
                    host: self.inner.host.clone(),
                    message: format!(
                        "{repository} lists more than {max_pages} pages of tags; refused"
                    ),
                    transient: false,
                });
            }
            listing.pages += 1;
            let answer = self
                .fetch(
                    OPERATION,
                    &Scope::pull(repository),
                    MAX_TAGS_PAGE_BYTES,
                    || {
                        self.inner
                            .http
                            .get(&url)
                            .header(header::ACCEPT, "application/json")
                    },
                )
                .await?;
            match answer.status {
                StatusCode::NOT_FOUND if listing.pages == 1 => {
                    listing.tags = None;
                    return Ok(listing);
                }
                status if !status.is_success() => {
                    return Err(self.status_error(OPERATION, status, &answer.body));
                }
                _ => {}
            }
            let page: TagsPage =
                serde_json::from_slice(&answer.body).map_err(|e| RegistryError::Transport {
                    operation: OPERATION,
                    host: self.inner.host.clone(),
                    message: format!("the tag list of {repository} is not JSON: {e}"),
                    transient: false,
                })?;
            let tags = listing.tags.get_or_insert_with(Vec::new);
            tags.extend(page.tags.unwrap_or_default());
            let next = answer
                .headers
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            match next {
                None => return Ok(listing),
                Some(next) => url = self.on_this_registry(OPERATION, next)?.to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::{Reply, TestServer};
    use super::*;
    use crate::registry::auth::{Credential, Secret, StaticCredential};
    use crate::registry::client::ClientSettings;
    use std::sync::Arc;

    #[test]
    fn next_links() {
        let cases = [
            (
                r#"</v2/a/tags/list?last=b&n=2>; rel="next""#,
                Some("/v2/a/tags/list?last=b&n=2"),
            ),
            (
                r#"<https://r/v2/a/tags/list?n=2&last=x>; rel=next"#,
                Some("https://r/v2/a/tags/list?n=2&last=x"),
            ),
            (r#"</x>; rel="prev", </y>; rel="next""#, Some("/y")),
            (r#"</x>; rel="prev""#, None),
            ("garbage", None),
        ];
        for (value, expected) in cases {
            assert_eq!(next_link(value), expected, "{value}");
        }
    }

    fn client(host: &str) -> RegistryClient {
        let source = Arc::new(StaticCredential(Credential::Basic {
            username: "u".into(),
            password: Secret::new("pw"),
        }));
        let settings = ClientSettings {
            plain_http: true,
            ..ClientSettings::default()
        };
        RegistryClient::new(host, source, settings).unwrap()
    }

    #[tokio::test]
    async fn follows_pages_on_the_same_registry_and_refuses_others() {
        let registry = TestServer::start(|request| {
            let target = request.target.clone();
            if target.contains("/offsite/") {
                return Reply::new(200)
                    .header("link", "<https://elsewhere.example/v2/x>; rel=\"next\"")
                    .body(br#"{"tags":["a"]}"#.to_vec());
            }
            if target.contains("/endless/") {
                return Reply::new(200)
                    .header("link", "</v2/team/endless/tags/list?last=a>; rel=\"next\"")
                    .body(br#"{"tags":["a"]}"#.to_vec());
            }
            if target.contains("/missing/") {
                return Reply::new(404).body(b"{}".to_vec());
            }
            if target.contains("last=b") {
                Reply::new(200).body(br#"{"name":"team/app","tags":["c"]}"#.to_vec())
            } else {
                Reply::new(200)
                    .header("link", "</v2/team/app/tags/list?last=b&n=2>; rel=\"next\"")
                    .body(br#"{"name":"team/app","tags":["a","b"]}"#.to_vec())
            }
        })
        .await;
        let client = client(&registry.host());
        let listing = client.list_tags("team/app", 10).await.unwrap();
        assert_eq!(listing.tags.unwrap(), ["a", "b", "c"]);
        assert_eq!(listing.pages, 2);
        let missing = client.list_tags("team/missing", 10).await.unwrap();
        assert_eq!(missing.tags, None);
        let error = client.list_tags("team/offsite", 10).await.unwrap_err();
        assert_eq!(error.reason(), "RegistryProtocolError", "{error}");
        let error = client.list_tags("team/endless", 5).await.unwrap_err();
        assert!(error.to_string().contains("more than 5 pages"), "{error}");
        assert!(!error.is_transient());
    }
}
