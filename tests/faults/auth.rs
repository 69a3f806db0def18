//! A registry that stops accepting a credential mid-copy (an expired token):
//! the client renews it once and goes on; one that keeps refusing fails the
//! copy clearly after that single renewal, without a retry storm.

use crate::proxy::Proxy;
use crate::proxy::{Fault, Rule};
use crate::support::TestEnv;
use crate::world::{self, Kind, Upstream};
use image_promoter::registry::copy::report::CopyReport;
use image_promoter::registry::{CopyOptions, Target};

fn unauthorized() -> Fault {
    Fault::Status {
        status: 401,
        retry_after: None,
    }
}

/// Copies a freshly seeded image from Quay to a new repository behind `proxy`.
async fn copy_through(
    env: &TestEnv,
    proxy: &Proxy,
    case: &str,
) -> (crate::fixtures::Seeded, Target, CopyReport) {
    let seeded = world::seed(env, case, &[50_000]).await;
    let config = world::config_file(env, &[(proxy, Upstream::Ecr, Kind::Generic)]);
    let target = world::target(&proxy.host(), case);
    let report = world::engine(&config)
        .await
        .copy(
            &world::source(Upstream::Quay.host(env), &seeded),
            std::slice::from_ref(&target),
            &CopyOptions::default(),
        )
        .await
        .expect("the source is readable");
    (seeded, target, report)
}

#[tokio::test]
async fn a_refused_credential_is_renewed_once_and_the_copy_goes_on() {
    let env = TestEnv::load();
    let proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![Rule::new("HEAD", r"/manifests/", unauthorized()).times(1)],
    )
    .await;
    let (seeded, target, report) = copy_through(&env, &proxy, "auth-renew").await;
    assert!(
        report.succeeded(),
        "{:?}\n{}",
        report.targets[0].error,
        proxy.summary()
    );
    let heads: Vec<u16> = proxy
        .exchanges()
        .iter()
        .filter(|e| e.method == "HEAD" && e.path.contains("/manifests/"))
        .map(|e| e.status)
        .collect();
    assert_eq!(heads.first(), Some(&401), "{}", proxy.summary());
    assert!(
        heads[1..].iter().all(|s| *s == 404 || *s == 200),
        "{}",
        proxy.summary()
    );
    let registry = Upstream::Ecr.client(&env).await;
    assert_eq!(
        world::assert_consistent(&registry, &target.repository.name, &seeded).await,
        world::Outcome::Complete
    );
}

#[tokio::test]
async fn a_registry_that_keeps_refusing_fails_after_one_renewal() {
    let env = TestEnv::load();
    let proxy = world::proxy(
        &env,
        Upstream::Ecr,
        vec![Rule::new("HEAD", r"/manifests/", unauthorized())],
    )
    .await;
    let (_, _, report) = copy_through(&env, &proxy, "auth-refused").await;
    let failure = report.targets[0]
        .error
        .as_ref()
        .expect("the target refuses");
    assert_eq!(
        failure.reason, "RegistryUnauthorized",
        "{}",
        failure.message
    );
    assert!(!failure.transient);
    assert_eq!(
        proxy.faulted().len(),
        2,
        "one renewal, then give up ({} requests): {}",
        report.targets[0].requests,
        proxy.summary()
    );
}
