//! The operator's trust rules from the command line: an object that names its
//! namespace is held to the configuration's tenancy rules, and the operator's
//! AWS identity goes only to AWS hosts. Refusals exit 1 before any request.
//! ECR Public's API is the operator's own registry only: `createRepository`
//! under another account's alias is refused (against a private stand-in
//! with a second account, [`crate::standin`]).

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::json;

use image_promoter::api::TargetState;

use crate::standin::{FOREIGN_ALIAS, StandIn};
use crate::support::unique_name;
use crate::world::{GOOD, TAG, World, catalog_data, promotion, quay_target};

/// The test world's configuration with a tenancy section granting namespace
/// `team-a` the source repository and the Quay repositories under `allowed`.
fn config_with_tenancy(world: &World, source: &str, allowed: &str) -> PathBuf {
    let base = std::fs::read_to_string(world.env.get("PROMOTER_TEST_CONFIG")).unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.yaml", unique_name("tenancy-config")));
    let rules = format!(
        "tenancy:\n  - namespaces: [team-a]\n    sources: [\"{source}\"]\n    targets: [\"{allowed}/**\"]\n"
    );
    std::fs::write(&path, format!("{base}{rules}")).unwrap();
    path
}

#[tokio::test]
async fn a_namespace_promotes_only_what_its_tenancy_rules_grant() {
    let world = World::new().await;
    let source = world.source("tenancy", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("tenancy");
    let allowed = quay_repository.rsplit_once('/').unwrap().0.to_string();
    let config = config_with_tenancy(&world, &world.source_repository(&source), &allowed);
    let object = |namespace: &str| {
        let mut object = promotion(
            &world,
            &source,
            json!({}),
            json!([quay_target("quay", &quay_repository)]),
        );
        object["metadata"]["namespace"] = json!(namespace);
        serde_yaml_ng::to_string(&object).unwrap()
    };

    let refused = world.promote_configured(&config, &object("team-b"), &[]);
    refused.expect_exit(1);
    assert!(refused.stdout.is_empty(), "nothing ran: {}", refused.stdout);
    assert!(
        refused.stderr.contains("RepositoryNotAllowed")
            && refused
                .stderr
                .contains("namespace team-b may not promote from"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(StatusCode::NOT_FOUND)
    );

    let granted = world.promote_configured(&config, &object("team-a"), &[]);
    granted.expect_exit(0);
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await.as_deref(),
        Ok(source.digest.as_str())
    );
    std::fs::remove_file(&config).ok();
}

#[tokio::test]
async fn the_operators_aws_identity_is_not_sent_to_an_undeclared_host() {
    let world = World::new().await;
    let source = world.source("identity", GOOD).await;
    // A host that would answer if asked: the Quay registry, which the test
    // world's configuration declares as a generic registry, under another
    // name the configuration does not know.
    let quay = world.env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let port = quay.rsplit_once(':').unwrap().1;
    let elsewhere = format!("localhost:{port}/{}", unique_name("identity"));
    let object = promotion(
        &world,
        &source,
        json!({}),
        json!([{
            "name": "elsewhere",
            "repository": elsewhere,
            "tags": [TAG],
            "credentials": {"ecrPublic": {}},
        }]),
    );

    let run = world.promote(&object, &[]);

    run.expect_exit(1);
    assert!(run.stdout.is_empty(), "nothing ran: {}", run.stdout);
    assert!(
        run.stderr.contains("CredentialsNotAllowed")
            && run
                .stderr
                .contains("kind: ecrPublic, auth: {ecrPublic: {}}"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn create_repository_under_another_accounts_alias_is_refused_and_creates_nothing() {
    let world = World::new().await;
    let standin = StandIn::start(&world.env).await;
    let source = world.source("foreign-alias", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let name = unique_name("foreign-alias");
    let registry = world.env.get("PROMOTER_TEST_PUBLIC_REGISTRY");
    let object = promotion(
        &world,
        &source,
        json!({}),
        json!([{
            "name": "public",
            "repository": format!("{registry}/{FOREIGN_ALIAS}/{name}"),
            "tags": [TAG],
            "credentials": {"ecrPublic": {}},
            "createRepository": catalog_data(),
        }]),
    );
    let config = standin.config(&world.env, "");

    let run = world.promote_configured(&config, &serde_yaml_ng::to_string(&object).unwrap(), &[]);

    let status = run.status();
    let target = &status.targets[0];
    assert_eq!(target.state, TargetState::Failed, "{}", run.stdout);
    let message = target.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "alias \"{FOREIGN_ALIAS}\" is not one of the operator's own"
        )),
        "{message}"
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.reason == "RepositoryNotAllowed"),
        "{:?}",
        status.conditions
    );
    // Nothing was created in the operator's own registry under that name.
    let (code, answer) = standin
        .call("DescribeRepositories", json!({"repositoryNames": [name]}))
        .await;
    assert_eq!(
        (code, answer["__type"].as_str()),
        (400, Some("RepositoryNotFoundException")),
        "{answer}"
    );
    std::fs::remove_file(&config).ok();
}
