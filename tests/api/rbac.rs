//! Rights for people: the chart's aggregated ClusterRoles (`<fullname>-view`
//! and `<fullname>-edit`), rendered by helm from charts/image-promoter and
//! applied to the test world, where kube-controller-manager really
//! aggregates them into `view`, `edit` and `admin`. A user bound to `edit` in
//! one namespace creates a promotion there, cannot write its status, and
//! cannot read another namespace's; `kubectl auth can-i --as` agrees with
//! what the apiserver does for that user (impersonated by the administrator).

use std::process::Command;
use std::time::Duration;

use image_promoter::api::ImagePromotion;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::fixtures;
use crate::support::{eventually, unique_name};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/image-promoter");

/// The chart's aggregated ClusterRoles for a release whose full name is `fullname`.
fn aggregated_roles(cluster: &Cluster, fullname: &str) -> String {
    let output = Command::new(cluster.env.tool("helm"))
        .args(["template", "rbac-test", CHART])
        .args(["--show-only", "templates/aggregated-clusterroles.yaml"])
        .args(["--set", &format!("fullnameOverride={fullname}")])
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join(unique_name("helm")),
        )
        .output()
        .expect("running helm");
    assert!(
        output.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `kubectl auth can-i VERB RESOURCE -n NAMESPACE --as USER`: yes or no.
/// `RESOURCE` may name a subresource after a `/` (`--subresource`).
fn can_i(cluster: &Cluster, user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let subresource = format!("--subresource={subresource}");
    let mut args = vec![
        "auth", "can-i", verb, resource, "-n", namespace, "--as", user,
    ];
    if subresource != "--subresource=" {
        args.push(&subresource);
    }
    let output = cluster.env.kubectl(&args);
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i: {answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    answer == "yes"
}

/// A client that acts as `user` (the administrator impersonating it).
async fn as_user(cluster: &Cluster, user: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.env.get("KUBECONFIG"))
        .expect("reading the test world's kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("loading the test world's kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    kube::Client::try_from(config).expect("building a kube client")
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{what}: {status:?}"),
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_bound_to_edit_promotes_in_its_namespace_only_and_never_writes_status() {
    let cluster = Cluster::start("api-rbac").await;
    let other = Cluster::start("api-rbac-other").await;
    let fullname = unique_name("promoter");
    let roles = std::env::temp_dir().join(format!("{fullname}.yaml"));
    std::fs::write(&roles, aggregated_roles(&cluster, &fullname)).unwrap();
    cluster.kubectl(&["apply", "-f", roles.to_str().unwrap()]);
    std::fs::remove_file(&roles).ok();

    let user = unique_name("release-engineer");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "release-engineers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .unwrap();
    cluster
        .typed::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding the user to edit");

    // kube-controller-manager folds the chart's roles into `edit`.
    let namespace = cluster.namespace.clone();
    eventually(
        "the chart's -edit role aggregated into edit",
        Duration::from_secs(60),
        || {
            let yes = can_i(
                &cluster,
                &user,
                "create",
                "imagepromotions.imagepromoter.dev",
                &namespace,
            ) && can_i(
                &cluster,
                &user,
                "list",
                "registrymirrors.imagepromoter.dev",
                &namespace,
            );
            async move { yes.then_some(()) }
        },
    )
    .await;
    let answers = [
        ("get", "imagepromotions.imagepromoter.dev", &namespace, true),
        (
            "watch",
            "registrymirrors.imagepromoter.dev",
            &namespace,
            true,
        ),
        (
            "update",
            "registrymirrors.imagepromoter.dev",
            &namespace,
            true,
        ),
        (
            "delete",
            "imagepromotions.imagepromoter.dev",
            &namespace,
            true,
        ),
        (
            "patch",
            "imagepromotions.imagepromoter.dev/status",
            &namespace,
            false,
        ),
        (
            "update",
            "registrymirrors.imagepromoter.dev/status",
            &namespace,
            false,
        ),
        (
            "get",
            "imagepromotions.imagepromoter.dev",
            &other.namespace,
            false,
        ),
        (
            "create",
            "imagepromotions.imagepromoter.dev",
            &other.namespace,
            false,
        ),
    ];
    for (verb, resource, namespace, expected) in answers {
        assert_eq!(
            can_i(&cluster, &user, verb, resource, namespace),
            expected,
            "can {user} {verb} {resource} in {namespace}?"
        );
    }

    // What the apiserver really does for that user.
    let client = as_user(&cluster, &user).await;
    let mine: Api<ImagePromotion> = Api::namespaced(client.clone(), &namespace);
    mine.create(&PostParams::default(), &fixtures::promotion("app"))
        .await
        .expect("the user creates a promotion in its namespace");
    let status = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "status": fixtures::promoted_status(),
    });
    forbidden(
        mine.patch_status(
            "app",
            &PatchParams::apply("release-engineer").force(),
            &Patch::Apply(&status),
        )
        .await,
        "patching the status",
    );
    let theirs_admin: Api<ImagePromotion> = other.typed();
    theirs_admin
        .create(&PostParams::default(), &fixtures::promotion("theirs"))
        .await
        .unwrap();
    let theirs: Api<ImagePromotion> = Api::namespaced(client, &other.namespace);
    forbidden(
        theirs.get("theirs").await,
        "reading another namespace's promotion",
    );
    forbidden(
        theirs
            .create(&PostParams::default(), &fixtures::promotion("mine"))
            .await,
        "creating in another namespace",
    );
    let read = mine.get("app").await.expect("the user reads its promotion");
    assert!(
        read.status.is_none(),
        "nobody but the operator wrote a status"
    );
}
