//! The test world's apiserver as these tests use it: CRDs installed, a fresh
//! namespace, dynamic access to both kinds, and the real kubectl.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use image_promoter::api::{ImagePromotion, RegistryMirror, crds};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::support::{TestEnv, unique_name};

/// The field manager of everything these tests apply.
pub const MANAGER: &str = "image-promoter-api-tests";

/// How long the apiserver gets to establish a CRD.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the test world with the CRDs installed and a namespace of
/// this test's own.
pub struct Cluster {
    pub env: TestEnv,
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    /// Connects as administrator, installs the CRDs, creates a namespace.
    pub async fn start(test: &str) -> Self {
        Self::start_in(TestEnv::load(), test).await
    }

    /// The same against the apiserver `env` names (a private control plane).
    pub async fn start_in(env: TestEnv, test: &str) -> Self {
        let client = env.kube_admin().await;
        install_crds(&client).await;
        let namespace = unique_name(test);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let object: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))
            .expect("a namespace object");
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|err| panic!("creating namespace {namespace}: {err}"));
        Self {
            env,
            client,
            namespace,
        }
    }

    /// Dynamic access to ImagePromotions in this test's namespace, for
    /// objects the Rust types cannot express (invalid ones).
    pub fn promotions(&self) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<ImagePromotion>(&());
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// Dynamic access to RegistryMirrors in this test's namespace.
    pub fn mirrors(&self) -> Api<DynamicObject> {
        let resource = ApiResource::erase::<RegistryMirror>(&());
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    /// Dynamic access to the kind of `object` (its `kind` field).
    pub fn api_for(&self, object: &Value) -> Api<DynamicObject> {
        match object["kind"].as_str() {
            Some("ImagePromotion") => self.promotions(),
            Some("RegistryMirror") => self.mirrors(),
            other => panic!("unexpected kind {other:?}"),
        }
    }

    /// Typed access to one of the kinds in this test's namespace.
    pub fn typed<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates `object` (JSON) in this test's namespace; the apiserver's error on refusal.
    pub async fn create(&self, object: &Value) -> Result<DynamicObject, kube::Error> {
        let dynamic: DynamicObject = serde_json::from_value(object.clone())
            .expect("test objects are well-formed JSON objects");
        self.api_for(object)
            .create(&PostParams::default(), &dynamic)
            .await
    }

    /// Runs the test world's kubectl with its kubeconfig, a private discovery
    /// cache and `args`; returns stdout, failing the test on a non-zero exit.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("kubectl-cache"));
        let output = Command::new(self.env.tool("kubectl"))
            .arg("--kubeconfig")
            .arg(self.env.get("KUBECONFIG"))
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .expect("running kubectl");
        let _ = std::fs::remove_dir_all(&cache);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed ({}):\n{stdout}\n{stderr}",
            output.status
        );
        stdout
    }
}

/// Applies both generated CRDs with server-side apply and waits until the
/// apiserver reports them Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    for crd in crds() {
        let name = crd.metadata.name.clone().expect("generated CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|err| panic!("applying CRD {name}: {err}"));
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(ESTABLISH_TIMEOUT, established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within {ESTABLISH_TIMEOUT:?}"))
            .unwrap_or_else(|err| panic!("watching CRD {name}: {err}"));
    }
}

/// The apiserver's message for a refused request; panics on anything else.
pub fn refusal(result: Result<DynamicObject, kube::Error>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: the apiserver accepted it"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                status.code, 422,
                "{what}: expected 422 Invalid, got {status:?}"
            );
            status.message
        }
        Err(err) => panic!("{what}: {err}"),
    }
}
