//! ECR Public under another account's alias: its API sees only the
//! operator's own registry, so a RegistryMirror target under a foreign alias
//! is listed through the registry (not through DescribeImageTags, which
//! would read the operator's same-named repository and call its tags "in
//! sync"), and `createRepository` there is refused. Against a private
//! stand-in API with a second account ([`crate::standin`]).

use base64::Engine as _;
use serde_json::json;

use crate::fixtures::{self, ecr_public_client};
use crate::oci::{Auth, Registry, TestImage};
use crate::standin::{FOREIGN_ALIAS, StandIn};
use crate::support::{TestEnv, unique_name};
use crate::world::{run, states};

#[tokio::test]
async fn a_target_under_another_alias_is_not_read_from_the_operators_registry() {
    let env = TestEnv::load();
    let standin = StandIn::start(&env).await;
    let image = TestImage::new(&unique_name("foreign-alias"));
    let source = unique_name("mirror/foreign-alias-source");
    let digest = fixtures::quay(&env)
        .push_image(&source, &image, "1.0.0")
        .await
        .expect("push the source");

    // The operator's own repository of the same name holds the same image.
    let name = unique_name("foreign-alias");
    fixtures::create_public_repository(&env, &name).await;
    let token = ecr_public_client(&env)
        .get_authorization_token()
        .send()
        .await
        .expect("an ECR Public token");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(
            token
                .authorization_data()
                .unwrap()
                .authorization_token()
                .unwrap(),
        )
        .unwrap();
    let password = String::from_utf8(decoded).unwrap()["AWS:".len()..].to_string();
    let public = env.get("PROMOTER_TEST_PUBLIC_REGISTRY").to_string();
    let own = format!("{}/{name}", env.get("PROMOTER_TEST_PUBLIC_ALIAS"));
    let pushed = Registry::new(
        &public,
        &env.ca_pem(),
        Auth::Bearer {
            basic: Some(("AWS".into(), password)),
        },
    )
    .push_image(&own, &image, "1.0.0")
    .await
    .expect("push to the operator's own repository");
    assert_eq!(pushed, digest);

    let object = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": unique_name("mirror"), "namespace": "migration"},
        "spec": {
            "source": {"repository": format!("{}/{source}", env.get("PROMOTER_TEST_QUAY_REGISTRY"))},
            "targets": [{
                "name": "public",
                "repository": format!("{public}/{FOREIGN_ALIAS}/{name}"),
                "credentials": {"ecrPublic": {}},
                "createRepository": {"description": "not ours to create"},
            }],
        },
    });
    let config = standin.config(&env, "");
    let synced = run(&config, &object, &[]);
    let report = synced.report();
    let state = states(&report)
        .get(&("1.0.0".to_string(), "public".to_string()))
        .cloned();
    assert_ne!(
        state.as_deref(),
        Some("inSync"),
        "the operator's own repository was read for another alias:\n{}",
        synced.stdout
    );
    assert!(
        synced.stdout.contains("RepositoryNotAllowed")
            && synced
                .stdout
                .contains(&format!("alias \\\"{FOREIGN_ALIAS}\\\"")),
        "{}\n{}",
        synced.stdout,
        synced.stderr
    );
    assert!(
        Registry::new(&public, &env.ca_pem(), Auth::Bearer { basic: None })
            .manifest_digest(&format!("{FOREIGN_ALIAS}/{name}"), "1.0.0")
            .await
            .is_err(),
        "nothing was written under the other alias"
    );
    std::fs::remove_file(&config).ok();
}
