//! Credentials renewed because their time is up, not because a registry
//! refused them: bearer tokens from the ECR Public realm and the realm's own
//! credential (an ECR Public authorization token), against the live realm and
//! registry, with the session's clock moved forward instead of waiting.

use crate::fixtures;
use crate::support::{TestEnv, unique_name};
use base64::Engine as _;
use futures::future::BoxFuture;
use image_promoter::aws::{EcrPublic, EcrPublicTokenSource};
use image_promoter::registry::auth::credentials::RENEW_BEFORE;
use image_promoter::registry::auth::{
    AuthSession, Clock, CredentialError, CredentialSource, Lease, Scope,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The system's time plus however far the test has moved it on.
#[derive(Default)]
struct ManualClock {
    ahead: Mutex<Duration>,
}

impl ManualClock {
    fn set_ahead(&self, by: Duration) {
        *self.ahead.lock().unwrap() = by;
    }
}

impl Clock for ManualClock {
    fn instant(&self) -> Instant {
        Instant::now() + *self.ahead.lock().unwrap()
    }

    fn system(&self) -> SystemTime {
        SystemTime::now() + *self.ahead.lock().unwrap()
    }
}

/// The product's ECR Public token source, counting how often it is asked.
#[derive(Debug)]
struct Counting {
    inner: EcrPublicTokenSource,
    fetches: AtomicUsize,
}

impl CredentialSource for Counting {
    fn fetch(&self) -> BoxFuture<'_, Result<Lease, CredentialError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch()
    }
}

/// The lifetime the realm gave a bearer token (`exp - iat` of its JWT claims).
fn lifetime(header: &reqwest::header::HeaderValue) -> Duration {
    let jwt = header
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    let claims = jwt.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    Duration::from_secs(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap())
}

/// The status the registry answers a manifest read with `authorization`.
async fn status_with(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    authorization: &reqwest::header::HeaderValue,
) -> u16 {
    http.get(format!("{base}/v2/{repo}/manifests/absent"))
        .header(reqwest::header::AUTHORIZATION, authorization)
        .send()
        .await
        .expect("the registry answers")
        .status()
        .as_u16()
}

#[tokio::test]
async fn bearer_tokens_and_the_realm_credential_are_renewed_when_their_time_is_up() {
    let env = TestEnv::load();
    let host = env.get("PROMOTER_TEST_PUBLIC_REGISTRY");
    let base = format!("https://{host}");
    let repo = format!(
        "{}/{}",
        env.get("PROMOTER_TEST_PUBLIC_ALIAS"),
        unique_name("expiry")
    );
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&env.ca_pem()).unwrap())
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::default());
    let source = Arc::new(Counting {
        inner: EcrPublicTokenSource(EcrPublic::from_client(fixtures::ecr_public_client(&env))),
        fetches: AtomicUsize::new(0),
    });
    let session = AuthSession::with_clock(host, source.clone(), clock.clone());
    let scope = Scope::pull(&repo);
    let authorize = || async {
        session
            .authorization(&http, &base, &scope)
            .await
            .expect("a token")
            .expect("the registry asks for a bearer token")
    };

    let first = authorize().await;
    assert_eq!(
        status_with(&http, &base, &repo, &first).await,
        404,
        "accepted: the repository is just empty"
    );
    assert_eq!(authorize().await, first, "cached while valid");
    let ttl = lifetime(&first);

    // Shortly before the token expires the session stops using it, without a 401.
    clock.set_ahead(ttl - Duration::from_secs(30));
    assert_eq!(authorize().await, first, "still valid");
    clock.set_ahead(ttl - Duration::from_secs(5));
    let second = authorize().await;
    assert_ne!(second, first, "a fresh token before the old one expires");
    assert_eq!(status_with(&http, &base, &repo, &second).await, 404);
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        1,
        "the realm credential (a 12 h token) is still good"
    );

    // Once the realm credential itself nears its expiry, it is renewed too.
    let lease = source.inner.fetch().await.expect("a credential lease");
    let credential_left = lease
        .expires
        .expect("ECR Public tokens expire")
        .duration_since(SystemTime::now())
        .unwrap();
    clock.set_ahead(credential_left - RENEW_BEFORE + Duration::from_secs(60));
    let third = authorize().await;
    assert_eq!(
        source.fetches.load(Ordering::SeqCst),
        2,
        "a new credential from GetAuthorizationToken"
    );
    assert_eq!(status_with(&http, &base, &repo, &third).await, 404);
}
