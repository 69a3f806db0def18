//! The resource actions through Argo CD's API (`argocd app actions run`):
//! `reconcile` makes the operator check a refused promotion again at once,
//! `suspend` stops a mirror (Argo CD shows it Suspended) and `resume` starts it.

use kube::api::Api;

use crate::synced::{Setup, mirror_in_git, name_of, promotion_in_git, push_tag, quay_registry};
use image_promoter::api::{ImagePromotion, RegistryMirror};

const RECONCILE_REQUESTED_AT: &str = "imagepromoter.dev/reconcile-requested-at";

#[tokio::test]
async fn the_reconcile_action_makes_the_operator_check_a_refused_promotion_again() {
    let setup = Setup::start("gitops-reconcile").await;
    let (source, refused, _) = promotion_in_git(
        &setup.world,
        "gitops-rescanned",
        &[("CVE-2026-4444", "CRITICAL")],
    )
    .await;
    let repository = &setup.repository;
    repository.write("refused.yaml", &refused);
    let revision = repository.commit("Promote an image with a critical finding");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;
    let name = name_of(&refused);
    setup
        .wait_health(&application, "ImagePromotion", &name, "Degraded")
        .await;

    // Fixed outside the cluster: a new scan without the finding. The operator
    // would look again only at its slow stalled schedule; the action asks now.
    setup.world.rescan(&source, "COMPLETE", &[]).await;
    setup.argocd.run_action(
        &application,
        "reconcile",
        "ImagePromotion",
        &name,
        &setup.cluster.namespace,
    );
    let promotions: Api<ImagePromotion> = setup.cluster.typed();
    let object = promotions.get(&name).await.unwrap();
    let requested = object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECONCILE_REQUESTED_AT))
        .cloned()
        .expect("the action set the annotation");
    let at = requested
        .parse::<k8s_openapi::jiff::Timestamp>()
        .expect("an RFC 3339 time");
    let age = k8s_openapi::jiff::Timestamp::now().duration_since(at);
    assert!(
        age.as_secs() >= 0 && age.as_secs() < 120,
        "the current time, not {requested}"
    );

    let message = setup
        .wait_health(&application, "ImagePromotion", &name, "Healthy")
        .await;
    assert_eq!(message, "1/1 targets promoted");
    let status = promotions.get(&name).await.unwrap().status.unwrap();
    assert_eq!(
        status.last_handled_reconcile_at.as_deref(),
        Some(requested.as_str())
    );
}

#[tokio::test]
async fn the_suspend_action_stops_a_mirror_shown_suspended_and_resume_starts_it() {
    let setup = Setup::start("gitops-suspend").await;
    let (mirror, source, target) = mirror_in_git(&setup.cluster, &["1.0.0"]).await;
    let repository = &setup.repository;
    repository.write("mirror.yaml", &mirror);
    let revision = repository.commit("Mirror a repository");
    let application = setup
        .argocd
        .create_application(&setup.cluster, repository)
        .await;
    setup.argocd.wait_synced(&application, &revision).await;
    let name = name_of(&mirror);
    setup
        .wait_health(&application, "RegistryMirror", &name, "Healthy")
        .await;

    setup.argocd.run_action(
        &application,
        "suspend",
        "RegistryMirror",
        &name,
        &setup.cluster.namespace,
    );
    let message = setup
        .wait_health(&application, "RegistryMirror", &name, "Suspended")
        .await;
    assert_eq!(message, "Mirror is suspended (spec.suspend is true)");
    let mirrors: Api<RegistryMirror> = setup.cluster.typed();
    let suspended = setup
        .argocd
        .eventually(
            &application,
            "the operator acknowledging the suspension",
            || async {
                let object = mirrors.get(&name).await.ok()?;
                let generation = object.metadata.generation;
                let status = object.status.clone()?;
                (object.spec.suspend && status.observed_generation == generation).then_some(object)
            },
        )
        .await;
    let synced_before = suspended.status.as_ref().unwrap().last_sync_time.clone();
    // Git does not set spec.suspend: Argo CD leaves it alone (self-heal included)
    // and the Application stays Synced, as docs/argocd.md says.
    let app = setup.argocd.compared_again(&application).await;
    assert_eq!(
        app["status"]["sync"]["status"], "Synced",
        "{:#}",
        app["status"]
    );
    assert!(
        mirrors.get(&name).await.unwrap().spec.suspend,
        "still suspended after a comparison"
    );

    // A tag pushed while suspended is not copied until the mirror is resumed.
    let quay = quay_registry(&setup.cluster);
    let digest = push_tag(&quay, &source, "1.2.0").await;
    let object = mirrors.get(&name).await.unwrap();
    assert_eq!(
        object.status.unwrap().last_sync_time,
        synced_before,
        "no sync while suspended"
    );
    assert!(
        quay.manifest_digest(&target, "1.2.0").await.is_err(),
        "nothing copied while suspended"
    );

    setup.argocd.run_action(
        &application,
        "resume",
        "RegistryMirror",
        &name,
        &setup.cluster.namespace,
    );
    setup
        .argocd
        .eventually(
            &application,
            "the tag pushed while suspended copied after resume",
            || async {
                quay.manifest_digest(&target, "1.2.0")
                    .await
                    .ok()
                    .filter(|d| *d == digest)
            },
        )
        .await;
    setup
        .wait_health(&application, "RegistryMirror", &name, "Healthy")
        .await;
}
