//! Argo CD syncs a folder of ImagePromotions and a RegistryMirror from Git:
//! the operator's verdicts show as health in the Application's resource tree,
//! a commit adds or removes a promotion (pruned, no image deleted), and the
//! status the operator writes never makes the Application OutOfSync.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::argocd::{ArgoCd, GitRepository};
use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, public_key_secret};
use crate::oci::{Auth, Registry, TestImage};
use crate::support::unique_name;
use crate::world::{GOOD, Key, Source, TAG, World, promotion, quay_target, signed_kms_policy};
use image_promoter::api::ImagePromotion;

/// A signed, scanned source (`findings` in its scan) and a promotion of it to a
/// new Quay repository: the source, the promotion (its `metadata.name` is the
/// file name) and the Quay repository's name.
pub async fn promotion_in_git(
    world: &World,
    prefix: &str,
    findings: &[(&str, &str)],
) -> (Source, Value, String) {
    let source = world.source(prefix, GOOD).await;
    world.scan(&source, "COMPLETE", findings).await;
    world.sign(&source, Key::Signer);
    let (quay_name, quay_repository) = world.quay_target(prefix);
    let object = promotion(
        world,
        &source,
        signed_kms_policy(),
        json!([quay_target("quay", &quay_repository)]),
    );
    (source, object, quay_name)
}

pub fn name_of(object: &Value) -> String {
    object["metadata"]["name"].as_str().unwrap().to_string()
}

/// A Quay repository holding `tags` of new test images and a RegistryMirror
/// of it to another Quay repository: the mirror, the source and the target.
pub async fn mirror_in_git(cluster: &Cluster, tags: &[&str]) -> (Value, String, String) {
    let env = &cluster.env;
    let host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = quay_registry(cluster);
    let source = unique_name("gitops/mirror-source");
    for tag in tags {
        push_tag(&quay, &source, tag).await;
    }
    let target = unique_name("gitops/mirror-target");
    let mirror = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": unique_name("mirror")},
        "spec": {
            "source": {"repository": format!("{host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{host}/{target}")}],
            "tier": "Bronze",
            "interval": "1m",
        },
    });
    (mirror, source, target)
}

pub fn quay_registry(cluster: &Cluster) -> Registry {
    let env = &cluster.env;
    Registry::new(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    )
}

pub async fn push_tag(quay: &Registry, repository: &str, tag: &str) -> String {
    let image = TestImage::new(&format!("{repository}-{tag}"));
    quay.push_image(repository, &image, tag)
        .await
        .expect("pushing to Quay")
}

/// Everything a test here starts with: the world, its namespace with the
/// cosign key Secret, Argo CD with the customizations, the operator, a Git
/// repository.
pub struct Setup {
    pub world: World,
    pub cluster: Cluster,
    pub argocd: ArgoCd,
    /// Runs for as long as the test (killed when dropped).
    pub _operator: Operator,
    pub repository: GitRepository,
}

impl Setup {
    pub async fn start(test: &str) -> Self {
        let world = World::new().await;
        let cluster = Cluster::start(test).await;
        let argocd = ArgoCd::find(&cluster);
        public_key_secret(&cluster, &world).await;
        let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
        operator.wait_ready().await;
        let repository = GitRepository::new(test);
        Self {
            world,
            cluster,
            argocd,
            _operator: operator,
            repository,
        }
    }

    /// Waits until `kind`/`name` shows `health` in the resource tree; its message.
    pub async fn wait_health(
        &self,
        application: &str,
        kind: &str,
        name: &str,
        health: &str,
    ) -> String {
        self.argocd
            .eventually(
                application,
                &format!("{kind} {name} {health} in the resource tree"),
                || async {
                    let (status, message) = self.argocd.health(application, kind, name).await?;
                    (status == health).then_some(message)
                },
            )
            .await
    }
}

#[tokio::test]
async fn a_folder_of_promotions_and_a_mirror_is_synced_with_the_operators_verdicts_as_health() {
    let setup = Setup::start("gitops-synced").await;
    let (_, good, good_quay) = promotion_in_git(&setup.world, "gitops-good", &[]).await;
    let (_, refused, refused_quay) = promotion_in_git(
        &setup.world,
        "gitops-refused",
        &[("CVE-2026-4343", "CRITICAL")],
    )
    .await;
    let (mirror, _, _) = mirror_in_git(&setup.cluster, &["1.0.0", "1.1.0"]).await;
    let repository = &setup.repository;
    repository.write("good.yaml", &good);
    repository.write("refused.yaml", &refused);
    repository.write("mirror.yaml", &mirror);
    let revision = repository.commit("Promote the app, the refused app, and mirror");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;

    let message = setup
        .wait_health(&application, "ImagePromotion", &name_of(&good), "Healthy")
        .await;
    assert_eq!(message, "1/1 targets promoted");
    let message = setup
        .wait_health(
            &application,
            "ImagePromotion",
            &name_of(&refused),
            "Degraded",
        )
        .await;
    assert!(
        message.contains("CVE-2026-4343"),
        "the operator's message, not {message:?}"
    );
    setup
        .wait_health(&application, "RegistryMirror", &name_of(&mirror), "Healthy")
        .await;
    assert!(
        setup.world.quay_tag(&good_quay, TAG).await.is_ok(),
        "the good image was promoted"
    );
    assert!(
        setup.world.quay_tag(&refused_quay, TAG).await.is_err(),
        "the refused one was not"
    );
    let app = setup.argocd.application(&application).await;
    assert_eq!(
        app["status"]["health"]["status"], "Degraded",
        "{:#}",
        app["status"]
    );
}

#[tokio::test]
async fn a_commit_that_adds_a_promotion_is_synced_and_promoted() {
    let setup = Setup::start("gitops-added").await;
    let (_, first, _) = promotion_in_git(&setup.world, "gitops-first", &[]).await;
    let repository = &setup.repository;
    repository.write("first.yaml", &first);
    let revision = repository.commit("Promote the first release");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;
    setup
        .wait_health(&application, "ImagePromotion", &name_of(&first), "Healthy")
        .await;

    let (source, second, second_quay) = promotion_in_git(&setup.world, "gitops-second", &[]).await;
    repository.write("second.yaml", &second);
    let revision = repository.commit("Promote the second release");
    setup.argocd.refresh(&application).await;
    setup.argocd.wait_synced(&application, &revision).await;
    setup
        .wait_health(&application, "ImagePromotion", &name_of(&second), "Healthy")
        .await;
    assert_eq!(
        setup.world.quay_tag(&second_quay, TAG).await.as_deref(),
        Ok(source.digest.as_str()),
        "the added promotion's image is at its target"
    );
}

#[tokio::test]
async fn a_commit_that_deletes_a_promotion_prunes_it_and_deletes_no_image() {
    let setup = Setup::start("gitops-pruned").await;
    let (kept_source, kept, kept_quay) = promotion_in_git(&setup.world, "gitops-kept", &[]).await;
    let (gone_source, gone, gone_quay) = promotion_in_git(&setup.world, "gitops-gone", &[]).await;
    let repository = &setup.repository;
    repository.write("kept.yaml", &kept);
    repository.write("gone.yaml", &gone);
    let revision = repository.commit("Promote two releases");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;
    for object in [&kept, &gone] {
        setup
            .wait_health(&application, "ImagePromotion", &name_of(object), "Healthy")
            .await;
    }

    repository.remove("gone.yaml");
    let revision = repository.commit("Forget the second release");
    setup.argocd.refresh(&application).await;
    setup.argocd.wait_synced(&application, &revision).await;
    let promotions: Api<ImagePromotion> = setup.cluster.typed();
    let gone_name = name_of(&gone);
    setup
        .argocd
        .eventually(&application, "the deleted promotion pruned", || async {
            let absent = matches!(promotions.get(&gone_name).await, Err(kube::Error::Api(e)) if e.code == 404);
            let tree = setup.argocd.resource_tree(&application).await?;
            let listed = tree["nodes"].as_array()?.iter().any(|n| n["name"] == gone_name.as_str());
            (absent && !listed).then_some(())
        })
        .await;
    assert!(
        promotions.get(&name_of(&kept)).await.is_ok(),
        "the other promotion stays"
    );
    for (quay, source) in [(&kept_quay, &kept_source), (&gone_quay, &gone_source)] {
        assert_eq!(
            setup.world.quay_tag(quay, TAG).await.as_deref(),
            Ok(source.digest.as_str()),
            "{quay}: pruning a promotion deletes no image"
        );
    }
}

#[tokio::test]
async fn the_status_the_operator_writes_never_makes_the_application_out_of_sync() {
    let setup = Setup::start("gitops-status").await;
    let (_, good, _) = promotion_in_git(&setup.world, "gitops-status", &[]).await;
    let (mirror, _, _) = mirror_in_git(&setup.cluster, &["1.0.0"]).await;
    let repository = &setup.repository;
    repository.write("good.yaml", &good);
    repository.write("mirror.yaml", &mirror);
    let revision = repository.commit("Promote and mirror");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;
    setup
        .wait_health(&application, "ImagePromotion", &name_of(&good), "Healthy")
        .await;
    setup
        .wait_health(&application, "RegistryMirror", &name_of(&mirror), "Healthy")
        .await;

    // More status writes: ask the operator to look again (as `image-promoter
    // reconcile` does, outside Git) and wait until its status says it did.
    let promotions: Api<ImagePromotion> = setup.cluster.typed();
    let requested = "2026-12-07T00:00:00Z";
    let patch = json!({"metadata": {"annotations": {"imagepromoter.dev/reconcile-requested-at": requested}}});
    promotions
        .patch(
            &name_of(&good),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    setup
        .argocd
        .eventually(
            &application,
            "the operator's status for the request",
            || async {
                let status = promotions.get(&name_of(&good)).await.ok()?.status?;
                (status.last_handled_reconcile_at.as_deref() == Some(requested)).then_some(())
            },
        )
        .await;
    // Argo CD compares again after the writes.
    let app = setup.argocd.compared_again(&application).await;
    let status = &app["status"];
    assert_eq!(status["sync"]["status"], "Synced", "{status:#}");
    assert_eq!(status["sync"]["revision"], revision.as_str());
    for resource in status["resources"].as_array().unwrap() {
        assert_eq!(resource["status"], "Synced", "{resource:#}");
    }
    assert!(
        app["spec"]["ignoreDifferences"].is_null(),
        "no diffing customization is needed, and docs/argocd.md's Application has none"
    );
    assert_eq!(
        status["operationState"]["syncResult"]["revision"],
        revision.as_str(),
        "no sync since the first: the status writes made no difference to sync"
    );
}
