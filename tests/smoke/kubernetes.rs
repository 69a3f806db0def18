//! The Kubernetes API: a real kube-apiserver over etcd, with RBAC enforced.

use crate::support::{TestEnv, eventually, unique_name};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::json;
use std::time::Duration;

async fn namespace(client: &kube::Client) -> String {
    let name = unique_name("smoke");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a namespace as admin");
    name
}

#[tokio::test]
async fn admin_creates_and_reads_namespaced_objects_and_custom_resources() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let ns = namespace(&client).await;

    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "smoke"},
        "data": {"registry": "internal-ecr"},
    }))
    .unwrap();
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create ConfigMap");
    let read = configmaps.get("smoke").await.expect("get ConfigMap");
    assert_eq!(read.data.unwrap()["registry"], "internal-ecr");

    let group = format!("{}.smoke.imagepromoter.dev", unique_name("g"));
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {"size": {"type": "integer", "minimum": 1}},
                    }},
                }},
            }],
        },
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    eventually(
        "the CRD to be Established",
        Duration::from_secs(30),
        || async {
            let crd = crds.get(&format!("widgets.{group}")).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        },
    )
    .await;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3},
    }))
    .unwrap();
    // Discovery of a new CRD takes a moment: retry the create until it is served.
    eventually(
        "the custom resource to be served",
        Duration::from_secs(30),
        || async {
            widgets
                .create(&PostParams::default(), &widget)
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(
        widgets.get("w1").await.expect("get Widget").data["spec"]["size"],
        3
    );

    // The schema is enforced by the apiserver.
    let invalid: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w2"}, "spec": {"size": 0},
    }))
    .unwrap();
    let err = widgets
        .create(&PostParams::default(), &invalid)
        .await
        .expect_err("size 0 is invalid");
    assert!(
        err.to_string().contains("spec.size"),
        "unexpected error: {err}"
    );

    crds.delete(&format!("widgets.{group}"), &Default::default())
        .await
        .expect("delete CRD");
}

#[tokio::test]
async fn service_account_token_without_rbac_is_forbidden_until_granted() {
    let env = TestEnv::load();
    let admin = env.kube_admin().await;
    let ns = namespace(&admin).await;
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "promoter"}})).unwrap();
    accounts
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("promoter", &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the ServiceAccount")
        .status
        .expect("token status")
        .token;

    let restricted = env.kube_with_token(&token).await;
    let configmaps = Api::<ConfigMap>::namespaced(restricted.clone(), &ns);
    match configmaps.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(
            status.code, 403,
            "a token without RBAC must be authenticated but forbidden: {status:?}"
        ),
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }

    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "promoter-reads-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "promoter", "namespace": ns}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");
    eventually(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        || async {
            configmaps
                .list(&ListParams::default())
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    // Granted exactly what the Role says: still no writes.
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    match configmaps.create(&PostParams::default(), &cm).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("expected 403 on create, got {other:?}"),
    }
}
