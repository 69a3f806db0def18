//! Stalled is not forever: what can change outside the cluster is looked at
//! again. A promotion refused because its ECR repository is mutable is
//! promoted once the repository is made immutable, at the resync interval
//! or at once when a reconcile is requested (`image-promoter reconcile`,
//! the annotation echoed in `lastHandledReconcileAt`); a mirror waiting for
//! a missing Secret syncs once the Secret exists.

use std::process::Command;

use image_promoter::api::{ImagePromotion, RegistryMirror};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is};
use crate::mirrored::{create_mirror, quay_registry};
use crate::oci::TestImage;
use crate::support::unique_name;
use crate::world::{SourceRepository, TAG, World, promotion, quay_target};

/// A source whose repository is mutable: refused with `TagMutable`.
const MUTABLE: SourceRepository = SourceRepository {
    immutable: false,
    kms: true,
};

#[tokio::test]
async fn a_promotion_refused_for_a_mutable_repository_is_promoted_once_ecr_is_fixed() {
    let world = World::new().await;
    let cluster = Cluster::start("op-recheck").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &["--resync-interval", "3s"]).await;
    let source = world.source("op-recheck", MUTABLE).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-recheck");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &name, "Stalled=True TagMutable", |s| {
            is(s, "Stalled", ("True", "TagMutable"))
        })
        .await;

    // The status write woke the promotion once more; only then is ECR fixed,
    // and nothing about the object changes.
    operator.wait_reconciles(2.0).await;
    world.set_immutable(&source).await;
    let status = operator
        .wait_status(&cluster, &name, "Ready=True after the fix in ECR", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}

/// Runs `image-promoter reconcile promotion NAME` against the cluster.
fn reconcile(cluster: &Cluster, kind: &str, name: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .args(["reconcile", kind, name, "-n", &cluster.namespace])
        .args(["--timeout", "90s"])
        .env("KUBECONFIG", cluster.env.get("KUBECONFIG"))
        .output()
        .expect("running image-promoter reconcile");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_requested_reconcile_runs_at_once_and_the_command_reports_it() {
    let world = World::new().await;
    let cluster = Cluster::start("op-request").await;
    // The resync is an hour away: only the request can bring the object back.
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-request", MUTABLE).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-request");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &name, "Stalled=True TagMutable", |s| {
            is(s, "Stalled", ("True", "TagMutable"))
        })
        .await;

    // Still mutable: the request is handled and the command says it is not Ready.
    let (code, text) = reconcile(&cluster, "promotion", &name);
    assert_eq!(code, 1, "{text}\n{}", operator.log());
    assert!(text.contains("Ready=False TagMutable"), "{text}");
    let api: Api<ImagePromotion> = cluster.typed();
    let object = api.get(&name).await.unwrap();
    let requested = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("imagepromoter.dev/reconcile-requested-at"))
        .cloned()
        .expect("the annotation is set");
    assert_eq!(
        object.status.unwrap().last_handled_reconcile_at,
        Some(requested),
        "the status echoes the request"
    );

    world.set_immutable(&source).await;
    let (code, text) = reconcile(&cluster, "promotion", &name);
    assert_eq!(code, 0, "{text}\n{}", operator.log());
    assert!(text.contains("Ready=True Promoted"), "{text}");
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );

    let (code, text) = reconcile(&cluster, "promotion", "no-such-promotion");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not found"), "{text}");
}

#[tokio::test]
async fn a_mirror_waiting_for_its_secret_syncs_once_the_secret_exists() {
    let cluster = Cluster::start("op-mirror-secret").await;
    let env = &cluster.env;
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/op-secret-source");
    let image = TestImage::new(&source);
    let digest = quay.push_image(&source, &image, "1.0.0").await.unwrap();
    // The Quay registry under a name the configuration does not declare:
    // only the mirror's own Secret authenticates there.
    let host = env
        .get("PROMOTER_TEST_QUAY_REGISTRY")
        .replace("127.0.0.1", "localhost");
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let target = unique_name("mirror/op-secret-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{
                "name": "quay",
                "repository": format!("{host}/{target}"),
                "credentials": {"secretRef": {"name": "mirror-robot"}},
            }],
            "interval": "1h",
        }),
    )
    .await;
    let api: Api<RegistryMirror> = cluster.typed();
    let ready_reason = |status: &image_promoter::api::RegistryMirrorStatus| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    operator
        .eventually("the mirror CredentialsNotFound", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (ready_reason(&status)? == ("False".into(), "CredentialsNotFound".into()))
                    .then_some(())
            }
        })
        .await;

    // The status write woke the mirror once more; only then is the Secret created.
    operator.wait_reconciles(2.0).await;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!(
            "{}:{}",
            env.get("PROMOTER_TEST_QUAY_USER"),
            env.get("PROMOTER_TEST_QUAY_PASSWORD")
        ),
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "mirror-robot"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": {host.clone(): {"auth": auth}}}).to_string()},
    }))
    .unwrap();
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the Secret");
    operator
        .eventually("the mirror Ready once its Secret exists", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (ready_reason(&status)?.0 == "True").then_some(())
            }
        })
        .await;
    assert_eq!(
        quay.manifest_digest(&target, "1.0.0").await.unwrap(),
        digest
    );
}
