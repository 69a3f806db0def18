//! The node: a real kubelet on containerd and runc runs pods from the test world's
//! registries under Pod Security admission, and the apiserver reaches it for
//! logs, exec and port-forward.
//!
//! Pods that must reach the world's services on 127.0.0.1 use hostNetwork, which
//! `restricted` allows only with the test world's exempt RuntimeClass; every other
//! pod gets an address on the node's bridge, inside its own network namespace.

use crate::aws;
use crate::support::{TestEnv, eventually, unique_name};
use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// From creation to a running container: scheduling, an image pull, a sandbox.
const POD_START: Duration = Duration::from_secs(120);
/// From deleting a workload to the kubelet having removed its containers.
const CLEANUP: Duration = Duration::from_secs(180);
const UID: i64 = 65532;

/// A new namespace that enforces the `restricted` Pod Security standard, once
/// the controller manager gave it the `default` ServiceAccount pods run as.
async fn restricted_namespace(client: &kube::Client) -> String {
    let name = unique_name("node");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {
        "name": name,
        "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    }}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a namespace as admin");
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
    eventually(
        "the namespace's default ServiceAccount",
        POD_START,
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    name
}

/// Deletes a test's namespace once it passed, so that pods do not pile up on the
/// node of a test world reused run after run (a failed test keeps its namespace
/// for inspection).
async fn delete_namespace(client: &kube::Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .expect("deleting the test's namespace");
}

/// The busybox image `make env-up` built and pushed to the "Quay" registry, copied
/// with the project's own `copy` into a new repository of the "internal ECR".
fn image_in_internal_ecr(env: &TestEnv) -> String {
    let source = env.get("PROMOTER_TEST_BUSYBOX_IMAGE");
    let (_, tag) = source.rsplit_once(':').expect("a tagged reference");
    let repository = format!(
        "{}/{}",
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        unique_name("node/busybox")
    );
    let output = Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .args(["copy", "--config", env.get("PROMOTER_TEST_CONFIG")])
        .args([source, &repository])
        .output()
        .expect("running image-promoter copy");
    assert!(
        output.status.success(),
        "image-promoter copy {source} {repository}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("{repository}:{tag}")
}

/// A `kubernetes.io/dockerconfigjson` Secret with the internal ECR's credentials.
async fn ecr_pull_secret(env: &TestEnv, client: &kube::Client, ns: &str) -> &'static str {
    let (user, password) = aws::ecr_registry_credentials(env).await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {env.get("PROMOTER_TEST_ECR_REGISTRY"): {"auth": auth}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "internal-ecr"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the pull secret");
    "internal-ecr"
}

/// A pod spec that satisfies `restricted`: a non-root uid, a read-only root
/// filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp.
fn restricted_pod_spec(image: &str, script: &str, pull_secret: Option<&str>) -> Value {
    let mut spec = json!({
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": UID,
            "runAsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main",
            "image": image,
            "command": ["/bin/busybox", "sh", "-c", script],
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
        }],
    });
    if let Some(secret) = pull_secret {
        spec["imagePullSecrets"] = json!([{ "name": secret }]);
    }
    spec
}

fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Waits until `accept` holds for the pod; on timeout, fails with its status.
async fn wait_for_pod(
    pods: &Api<Pod>,
    name: &str,
    what: &str,
    accept: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + POD_START;
    let mut pause = Duration::from_millis(100);
    loop {
        let pod = pods.get(name).await.expect("reading the pod");
        if accept(&pod) {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name}: {what} did not happen within {POD_START:?}; status: {}",
            serde_json::to_string_pretty(&pod.status).unwrap()
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

fn phase_is(pod: &Pod, phase: &str) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(phase)
}

/// `kubectl args…`, which must succeed; its stdout.
fn kubectl(env: &TestEnv, args: &[&str]) -> String {
    let output = env.kubectl(args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until `kubectl logs` of the pod shows `expected`.
async fn logs_show(env: &TestEnv, ns: &str, pod: &str, expected: &str) {
    eventually(
        &format!("kubectl logs {pod} to show {expected:?}"),
        POD_START,
        || async {
            let output = env.kubectl(&["logs", "-n", ns, pod]);
            String::from_utf8_lossy(&output.stdout)
                .contains(expected)
                .then_some(())
        },
    )
    .await;
}

/// The containers (pod sandboxes included) containerd holds for a namespace's pods.
fn containers_of(env: &TestEnv, ns: &str) -> Vec<String> {
    let output = Command::new(env.tool("ctr"))
        .args(["--address", env.get("PROMOTER_TEST_CONTAINERD_ADDRESS")])
        .args(["--namespace", "k8s.io", "containers", "ls", "-q"])
        .arg(format!("labels.\"io.kubernetes.pod.namespace\"=={ns}"))
        .output()
        .expect("running ctr");
    assert!(
        output.status.success(),
        "ctr containers ls: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn node_is_ready_on_containerd_with_the_apiservers_version() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let name = env.get("PROMOTER_TEST_NODE_NAME");
    let node = Api::<Node>::all(client.clone())
        .get(name)
        .await
        .unwrap_or_else(|err| panic!("node {name} is not registered: {err}"));
    let status = node.status.expect("node status");
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready, "node {name} is not Ready");
    let info = status.node_info.expect("node info");
    let apiserver = client.apiserver_version().await.expect("/version");
    assert_eq!(info.kubelet_version, apiserver.git_version);
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1.6."),
        "{}",
        info.container_runtime_version
    );
    // The apiserver dials the kubelet by this address (127.0.0.1).
    let addresses = status.addresses.unwrap_or_default();
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == "localhost"),
        "{addresses:?}"
    );
}

#[tokio::test]
async fn deployment_from_internal_ecr_runs_restricted_replicas_and_leaves_no_container() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let ns = restricted_namespace(&client).await;
    let secret = ecr_pull_secret(&env, &client, &ns).await;
    let image = image_in_internal_ecr(&env);
    let script = "echo \"started as uid $(/bin/busybox id -u)\"; exec /bin/busybox sleep inf";
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "busybox"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "busybox"}},
            "template": {
                "metadata": {"labels": {"app": "busybox"}},
                "spec": restricted_pod_spec(&image, script, Some(secret)),
            },
        },
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("creating the Deployment");
    eventually(
        "the Deployment to be Available with 2 replicas",
        POD_START,
        || async {
            let status = deployments.get("busybox").await.ok()?.status?;
            let available = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            (available && status.available_replicas == Some(2)).then_some(())
        },
    )
    .await;

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let listed = pods
        .list(&ListParams::default().labels("app=busybox"))
        .await
        .expect("listing the pods");
    assert_eq!(listed.items.len(), 2);
    for pod in &listed.items {
        let name = pod.metadata.name.as_deref().unwrap();
        assert!(phase_is(pod, "Running"), "{name} is not Running");
        logs_show(&env, &ns, name, &format!("started as uid {UID}")).await;
        let uid = kubectl(
            &env,
            &["exec", "-n", &ns, name, "--", "/bin/busybox", "id", "-u"],
        );
        assert_eq!(uid.trim(), UID.to_string());
        let write = env.kubectl(&[
            "exec",
            "-n",
            &ns,
            name,
            "--",
            "/bin/busybox",
            "touch",
            "/written",
        ]);
        assert!(
            !write.status.success(),
            "{name} could write to its root filesystem"
        );
        assert!(
            String::from_utf8_lossy(&write.stderr).contains("Read-only file system"),
            "{}",
            String::from_utf8_lossy(&write.stderr)
        );
    }
    // Two pods: each at least a sandbox and a container (more if one restarted).
    let before = containers_of(&env, &ns);
    assert!(before.len() >= 4, "{before:?}");

    let foreground = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..Default::default()
    };
    deployments
        .delete("busybox", &foreground)
        .await
        .expect("deleting the Deployment");
    eventually(
        "containerd to hold no container of the namespace",
        CLEANUP,
        || async { containers_of(&env, &ns).is_empty().then_some(()) },
    )
    .await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn restricted_namespace_refuses_a_root_pod_and_host_network_without_the_exempt_class() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let ns = restricted_namespace(&client).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let image = env.get("PROMOTER_TEST_BUSYBOX_IMAGE");

    let root = pod(
        "root",
        json!({"containers": [{"name": "main", "image": image}]}),
    );
    match pods.create(&PostParams::default(), &root).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status
                    .message
                    .contains("violates PodSecurity \"restricted:latest\"")
                    && status.message.contains("runAsNonRoot"),
                "{}",
                status.message
            );
        }
        other => panic!("a root pod was not refused: {other:?}"),
    }

    // The operator's pod reaches the apiserver on 127.0.0.1 through the host's network.
    let port = env.get("PROMOTER_TEST_APISERVER_PORT");
    let script = "/bin/busybox nc -w 5 \"$KUBERNETES_SERVICE_HOST\" \"$KUBERNETES_SERVICE_PORT\" </dev/null \
        && echo \"reached $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\"; exec /bin/busybox sleep inf";
    let secret = ecr_pull_secret(&env, &client, &ns).await;
    let mut spec = restricted_pod_spec(&image_in_internal_ecr(&env), script, Some(secret));
    spec["hostNetwork"] = json!(true);
    spec["containers"][0]["env"] = json!([
        {"name": "KUBERNETES_SERVICE_HOST", "value": env.get("PROMOTER_TEST_APISERVER_HOST")},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ]);
    match pods
        .create(&PostParams::default(), &pod("host", spec.clone()))
        .await
    {
        Err(kube::Error::Api(status)) => assert!(
            status.code == 403 && status.message.contains("host namespaces"),
            "{status:?}"
        ),
        other => panic!("a hostNetwork pod was not refused: {other:?}"),
    }
    spec["runtimeClassName"] = json!(env.get("PROMOTER_TEST_HOST_NETWORK_RUNTIME_CLASS"));
    pods.create(&PostParams::default(), &pod("host", spec))
        .await
        .expect("a hostNetwork pod of the exempt RuntimeClass is admitted");
    logs_show(&env, &ns, "host", &format!("reached 127.0.0.1:{port}")).await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn image_from_internal_ecr_pulls_only_with_the_pull_secret() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let ns = restricted_namespace(&client).await;
    let image = image_in_internal_ecr(&env);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let script = "echo pulled with the secret; exec /bin/busybox sleep inf";

    pods.create(
        &PostParams::default(),
        &pod("without", restricted_pod_spec(&image, script, None)),
    )
    .await
    .expect("creating the pod without a pull secret");
    let refused = wait_for_pod(&pods, "without", "an image pull refusal", |pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first()?.state.as_ref()?.waiting.clone())
            .is_some_and(|w| {
                matches!(
                    w.reason.as_deref(),
                    Some("ErrImagePull" | "ImagePullBackOff")
                )
            })
    })
    .await;
    let waiting = refused.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap();
    let message = waiting.message.unwrap_or_default().to_lowercase();
    assert!(
        message.contains("401") || message.contains("unauthorized"),
        "{message}"
    );

    let secret = ecr_pull_secret(&env, &client, &ns).await;
    pods.create(
        &PostParams::default(),
        &pod("with", restricted_pod_spec(&image, script, Some(secret))),
    )
    .await
    .expect("creating the pod with a pull secret");
    wait_for_pod(&pods, "with", "Running", |pod| phase_is(pod, "Running")).await;
    logs_show(&env, &ns, "with", "pulled with the secret").await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn pod_on_the_bridge_is_apart_from_the_host_and_reached_by_port_forward() {
    let env = TestEnv::load();
    let client = env.kube_admin().await;
    let ns = restricted_namespace(&client).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let script = "while true; do echo \"hello from $(/bin/busybox hostname)\" | /bin/busybox nc -l -p 8080; done";
    let secret = ecr_pull_secret(&env, &client, &ns).await;
    let spec = restricted_pod_spec(&image_in_internal_ecr(&env), script, Some(secret));
    pods.create(&PostParams::default(), &pod("server", spec))
        .await
        .expect("creating the pod");
    let running = wait_for_pod(&pods, "server", "Running", |pod| phase_is(pod, "Running")).await;
    let pod_ip = running.status.unwrap().pod_ip.expect("a pod IP");
    let subnet = env.get("PROMOTER_TEST_POD_SUBNET");
    let prefix = subnet.rsplit_once('.').unwrap().0;
    assert!(
        pod_ip.starts_with(&format!("{prefix}.")),
        "{pod_ip} is not in {subnet}"
    );
    // Its loopback is its own: the world's services on the host's 127.0.0.1 are out of reach.
    let dial = format!(
        "/bin/busybox nc -w 2 127.0.0.1 {} </dev/null",
        env.get("PROMOTER_TEST_APISERVER_PORT")
    );
    let reach = env.kubectl(&[
        "exec",
        "-n",
        &ns,
        "server",
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        &dial,
    ]);
    let stderr = String::from_utf8_lossy(&reach.stderr);
    assert!(
        !reach.status.success() && stderr.contains("Connection refused"),
        "a pod on the bridge dialled the host's 127.0.0.1: {stderr}"
    );

    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut forward = tokio::process::Command::new(env.tool("kubectl"))
        .args([
            "--kubeconfig",
            env.get("KUBECONFIG"),
            "port-forward",
            "-n",
            &ns,
        ])
        .args([
            "--address",
            "127.0.0.1",
            "pod/server",
            &format!("{local}:8080"),
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting kubectl port-forward");
    let greeting = eventually(
        "a greeting through kubectl port-forward",
        POD_START,
        || async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", local))
                .await
                .ok()?;
            let mut line = String::new();
            let mut reader = BufReader::new(stream);
            let read = reader.read_line(&mut line);
            tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .ok()?
                .ok()?;
            (!line.is_empty()).then_some(line)
        },
    )
    .await;
    assert_eq!(greeting.trim(), "hello from server");
    forward.kill().await.expect("stopping kubectl port-forward");
    delete_namespace(&client, &ns).await;
}
