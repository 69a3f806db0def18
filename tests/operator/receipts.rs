//! Promotion receipts: with `--attestation-key k8s://…` (a Secret the real
//! `cosign generate-key-pair k8s://…` wrote), every promoted target gets a
//! signed SLSA verification summary in cosign's `.att` layout and as a
//! Sigstore bundle referrer. The real `cosign verify-attestation` (and with
//! `--new-bundle-format`) accepts it and decodes the predicate; a
//! tampered receipt is refused by cosign; resyncs, drift checks and a
//! restarted operator write no second receipt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use image_promoter::api::{ImagePromotionStatus, TargetState};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is, public_key_secret, service_account};
use crate::support::{TestEnv, unique_name};
use crate::world::{GOOD, Key, World, promotion, quay_target, signed_kms_policy};

const VSA: &str = "https://slsa.dev/verification_summary/v1";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

pub(crate) fn cosign(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    Command::new(env.tool("cosign"))
        .args(args)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", "receipt-password")
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .env("DOCKER_CONFIG", env.get("PROMOTER_TEST_DOCKER_CONFIG"))
        .env("SSL_CERT_FILE", env.get("PROMOTER_TEST_CA"))
        .env("SIGSTORE_NO_CACHE", "true")
        .env("TUF_ROOT", dir.join("tuf"))
        .output()
        .expect("running cosign")
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An empty trusted root in `dir`: cosign 2.6 wants one (or a TUF
/// download) as soon as an image has a Sigstore bundle referrer, and a key
/// without log entry uses nothing in it.
fn empty_trusted_root(dir: &Path) -> String {
    let root = dir.join("empty_trusted_root.json");
    std::fs::write(
        &root,
        r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
    )
    .unwrap();
    root.to_str().unwrap().to_string()
}

/// `cosign verify-attestation --type <VSA>` of `reference` with `key`, no
/// log entry (`--insecure-ignore-tlog`), and `extra` arguments. cosign 2.6
/// reads the Sigstore bundle referrer where there is one, else the `.att` tag.
fn verify_attestation_with(
    env: &TestEnv,
    dir: &Path,
    key: &Path,
    reference: &str,
    extra: &[&str],
) -> Output {
    let root = empty_trusted_root(dir);
    let mut args = vec![
        "verify-attestation",
        "--trusted-root",
        &root,
        "--key",
        key.to_str().unwrap(),
        "--type",
        VSA,
        "--insecure-ignore-tlog=true",
    ];
    args.extend_from_slice(extra);
    args.push(reference);
    cosign(env, dir, &args)
}

/// `cosign verify-attestation --type <VSA>` of `reference` with `key`.
pub(crate) fn verify_attestation(env: &TestEnv, dir: &Path, key: &Path, reference: &str) -> Output {
    verify_attestation_with(env, dir, key, reference, &[])
}

/// The same with `--new-bundle-format`: only the Sigstore bundle referrer counts.
fn verify_bundle_attestation(env: &TestEnv, dir: &Path, key: &Path, reference: &str) -> Output {
    verify_attestation_with(env, dir, key, reference, &["--new-bundle-format"])
}

/// The bundle referrers the referrers fallback index of `digest` lists in
/// Quay's `repository` (the test world's registries have no referrers API).
async fn bundle_referrers(world: &World, repository: &str, digest: &str) -> Vec<String> {
    let index = world
        .quay
        .get_manifest(repository, &digest.replace(':', "-"))
        .await
        .unwrap();
    let index: Value = serde_json::from_slice(&index.0).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == BUNDLE)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The statements of `cosign verify-attestation`'s output (one DSSE envelope per line).
pub(crate) fn statements(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|envelope| {
            let payload = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str()?)
                .ok()?;
            serde_json::from_slice(&payload).ok()
        })
        .collect()
}

/// The sum of the series of `name` whose labels contain `filter`.
fn total(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Registry writes the operator made: PUT and POST requests.
fn writes(metrics: &str) -> f64 {
    ["method=\"PUT\"", "method=\"POST\"", "method=\"PATCH\""]
        .iter()
        .map(|m| total(metrics, "image_promoter_registry_requests_total", m))
        .sum()
}

fn receipts_of(status: &ImagePromotionStatus) -> Vec<(String, Option<String>)> {
    status
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.receipt.clone()))
        .collect()
}

#[tokio::test]
async fn every_target_gets_a_receipt_cosign_verifies_and_resyncs_write_no_other() {
    let world = World::new().await;
    let cluster = Cluster::start("op-receipts").await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("receipts"));
    std::fs::create_dir_all(&dir).unwrap();

    // The operator's key, written by cosign into a Secret of the namespace.
    let reference = format!("k8s://{}/receipt-key", cluster.namespace);
    let generated = cosign(&cluster.env, &dir, &["generate-key-pair", &reference]);
    assert!(generated.status.success(), "{}", text(&generated));
    let secrets: kube::Api<Secret> = cluster.typed();
    let secret = secrets
        .get("receipt-key")
        .await
        .expect("cosign wrote the Secret");
    let data = secret.data.unwrap_or_default();
    for field in ["cosign.key", "cosign.password", "cosign.pub"] {
        assert!(data.contains_key(field), "cosign's Secret has {field}");
    }
    let public_key = dir.join("receipt.pub");
    std::fs::write(&public_key, &data["cosign.pub"].0).unwrap();

    let source = world.source("op-receipts", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-0001", "LOW")])
        .await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (quay_a_name, quay_a) = world.quay_target("op-receipts-a");
    let (quay_b_name, quay_b) = world.quay_target("op-receipts-b");
    let mut verify = signed_kms_policy();
    verify["scan"] = json!({"ignore": [
        {"id": "CVE-2026-0002", "reason": "not reachable from the app", "expires": "2099-01-01"},
        {"id": "CVE-2026-0003", "reason": "expired entry", "expires": "2020-01-01"},
    ]});
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            verify,
            json!([quay_target("a", &quay_a), quay_target("b", &quay_b)]),
        ),
    )
    .await;
    let args = [
        "--attestation-key",
        reference.as_str(),
        "--resync-interval",
        "2s",
    ];
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut operator = Operator::start_with(&cluster, &kubeconfig, &args);

    let status = operator
        .wait_status(&cluster, &name, "Ready with a receipt per target", |s| {
            is(s, "Ready", ("True", "Promoted")) && s.targets.iter().all(|t| t.receipt.is_some())
        })
        .await;
    let receipts = receipts_of(&status);
    assert_eq!(receipts.len(), 2);
    let signature = status
        .verification
        .as_ref()
        .and_then(|v| v.signature.as_ref())
        .and_then(|s| s.signature_digest.clone())
        .expect("the verified signature's digest");

    // The real cosign verifies each target's receipt with the operator's public key.
    let uid = {
        let api: kube::Api<image_promoter::api::ImagePromotion> = cluster.typed();
        api.get(&name).await.unwrap().metadata.uid.unwrap()
    };
    for (target, repository) in [("a", &quay_a), ("b", &quay_b)] {
        let result = status.targets.iter().find(|t| t.name == target).unwrap();
        assert_eq!(result.state, TargetState::Promoted);
        let reference = format!("{repository}@{}", source.digest);
        let verified = verify_attestation(&cluster.env, &dir, &public_key, &reference);
        assert!(verified.status.success(), "{target}: {}", text(&verified));
        let found = statements(&verified);
        assert_eq!(found.len(), 1, "one receipt at {target}: {found:?}");
        let statement = &found[0];
        assert_eq!(statement["predicateType"], VSA);
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"],
            source.digest[7..]
        );
        let predicate = &statement["predicate"];
        assert_eq!(predicate["verificationResult"], "PASSED");
        assert_eq!(predicate["verifier"]["id"], "image-promoter");
        assert_eq!(predicate["resourceUri"], reference);
        assert_eq!(
            predicate["policy"]["uri"],
            format!(
                "imagepromoter.dev/ImagePromotion/{}/{name}",
                cluster.namespace
            )
        );
        assert_eq!(predicate["policy"]["uid"], uid.as_str());
        assert_eq!(predicate["policy"]["generation"], 1);
        assert!(predicate["policy"]["digest"]["sha256"].is_string());
        assert_eq!(
            predicate["inputAttestations"][0]["digest"]["sha256"],
            signature[7..]
        );
        let promotion = &predicate["https://imagepromoter.dev/promotion/v1"];
        assert_eq!(
            promotion["source"],
            format!("{}@{}", world.source_repository(&source), source.digest)
        );
        assert_eq!(promotion["scan"]["status"], "COMPLETE");
        let ignored: Vec<&str> = promotion["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["id"].as_str())
            .collect();
        assert_eq!(ignored, ["CVE-2026-0002"], "only the entries in force");

        // A consumer's policy (CUE, as cosign takes it) naming this object passes; another fails.
        for (object, passes) in [(name.as_str(), true), ("someone-else", false)] {
            let policy = dir.join(format!("{target}-{object}.cue"));
            std::fs::write(
                &policy,
                format!(
                    "predicate: {{\n  verificationResult: \"PASSED\"\n  policy: uri: \"imagepromoter.dev/ImagePromotion/{}/{object}\"\n}}\n",
                    cluster.namespace
                ),
            )
            .unwrap();
            let checked = verify_attestation_with(
                &cluster.env,
                &dir,
                &public_key,
                &reference,
                &["--policy", policy.to_str().unwrap()],
            );
            assert_eq!(
                checked.status.success(),
                passes,
                "{object}: {}",
                text(&checked)
            );
        }

        // Another key does not verify it.
        let other = crate::world::public_key_file(&world.env, Key::Other);
        let refused = verify_attestation(&cluster.env, &dir, &other, &reference);
        assert!(
            !refused.status.success(),
            "another key verified the receipt"
        );

        // The same receipt as a Sigstore bundle referrer: cosign's new format verifies it.
        let bundled = verify_bundle_attestation(&cluster.env, &dir, &public_key, &reference);
        assert!(bundled.status.success(), "{target}: {}", text(&bundled));
        let found = statements(&bundled);
        assert_eq!(found.len(), 1, "one bundle receipt at {target}: {found:?}");
        assert_eq!(found[0]["predicate"]["policy"]["uid"], uid.as_str());
        assert_eq!(found[0]["predicate"]["resourceUri"], reference);
        let refused = verify_bundle_attestation(&cluster.env, &dir, &other, &reference);
        assert!(
            !refused.status.success(),
            "another key verified the bundle receipt"
        );
    }
    let bundles_a = bundle_referrers(&world, &quay_a_name, &source.digest).await;
    let bundles_b = bundle_referrers(&world, &quay_b_name, &source.digest).await;
    assert_eq!(
        (bundles_a.len(), bundles_b.len()),
        (1, 1),
        "one bundle referrer per target"
    );
    // Its subject is the promoted manifest, with its size.
    let image = world
        .quay
        .get_manifest(&quay_a_name, &source.digest)
        .await
        .unwrap();
    let referrer = world
        .quay
        .get_manifest(&quay_a_name, &bundles_a[0])
        .await
        .unwrap();
    let referrer: Value = serde_json::from_slice(&referrer.0).unwrap();
    assert_eq!(referrer["subject"]["digest"], source.digest.as_str());
    assert_eq!(referrer["subject"]["size"], image.0.len());

    // Resyncs and drift checks (every 2 s) write nothing.
    let att_tag = format!("{}.att", source.digest.replace(':', "-"));
    let att_a = world
        .quay
        .manifest_digest(&quay_a_name, &att_tag)
        .await
        .unwrap();
    let att_b = world
        .quay
        .manifest_digest(&quay_b_name, &att_tag)
        .await
        .unwrap();
    let text_before = operator.metrics().await;
    let written = writes(&text_before);
    let reconciles = total(&text_before, "controller_runtime_reconcile_total", "");
    operator
        .wait_metric_at_least(
            "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}",
            reconciles + 4.0,
        )
        .await;
    let text_after = operator.metrics().await;
    assert_eq!(
        writes(&text_after),
        written,
        "a resync wrote to a registry:\n{}",
        operator.log()
    );
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_a_name, &att_tag)
            .await
            .unwrap(),
        att_a
    );
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_b_name, &att_tag)
            .await
            .unwrap(),
        att_b
    );

    // A restarted operator finds its receipts at the targets: none written again.
    operator.kill();
    let mut restarted = Operator::start_with(&cluster, &kubeconfig, &args);
    restarted.wait_ready().await;
    restarted.wait_reconciles(3.0).await;
    let status = restarted
        .wait_status(&cluster, &name, "the receipts found again", |s| {
            s.targets.iter().all(|t| t.receipt.is_some())
        })
        .await;
    assert_eq!(
        receipts_of(&status),
        receipts,
        "the same receipts, observed"
    );
    assert_eq!(
        writes(&restarted.metrics().await),
        0.0,
        "{}",
        restarted.log()
    );
    assert_eq!(
        world
            .quay
            .manifest_digest(&quay_a_name, &att_tag)
            .await
            .unwrap(),
        att_a
    );
    assert_eq!(
        bundle_referrers(&world, &quay_a_name, &source.digest).await,
        bundles_a,
        "no second bundle referrer after a restart"
    );

    // A receipt altered at the registry is refused by cosign.
    let manifest = world
        .quay
        .get_manifest(&quay_a_name, &att_tag)
        .await
        .unwrap();
    let mut manifest: Value = serde_json::from_slice(&manifest.0).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["annotations"]["predicateType"] == VSA)
        .unwrap();
    let receipt_digest = manifest["layers"][layer]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let envelope = world
        .quay
        .pull_blob(&quay_a_name, &receipt_digest)
        .await
        .unwrap();
    let mut envelope: Value = serde_json::from_slice(&envelope).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut statement: Value =
        serde_json::from_slice(&b64.decode(envelope["payload"].as_str().unwrap()).unwrap())
            .unwrap();
    statement["predicate"]["policy"]["uri"] = json!("imagepromoter.dev/ImagePromotion/other/other");
    envelope["payload"] = json!(b64.encode(serde_json::to_vec(&statement).unwrap()));
    let tampered = serde_json::to_vec(&envelope).unwrap();
    let tampered_digest = world.quay.push_blob(&quay_a_name, &tampered).await.unwrap();
    manifest["layers"][layer]["digest"] = json!(tampered_digest);
    manifest["layers"][layer]["size"] = json!(tampered.len());
    world
        .quay
        .put_manifest(
            &quay_a_name,
            &att_tag,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await
        .unwrap();
    // cosign 2.6 reads the bundle referrer where there is one: alter it the same way.
    let referrer = world
        .quay
        .get_manifest(&quay_a_name, &bundles_a[0])
        .await
        .unwrap();
    let mut referrer: Value = serde_json::from_slice(&referrer.0).unwrap();
    let bundle_digest = referrer["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bundle = world
        .quay
        .pull_blob(&quay_a_name, &bundle_digest)
        .await
        .unwrap();
    let mut bundle: Value = serde_json::from_slice(&bundle).unwrap();
    bundle["dsseEnvelope"]["payload"] = envelope["payload"].clone();
    let tampered = serde_json::to_vec(&bundle).unwrap();
    referrer["layers"][0]["digest"] =
        json!(world.quay.push_blob(&quay_a_name, &tampered).await.unwrap());
    referrer["layers"][0]["size"] = json!(tampered.len());
    let referrer = serde_json::to_vec(&referrer).unwrap();
    let referrer_digest = format!("sha256:{}", sha256_hex(&referrer));
    world
        .quay
        .put_manifest(
            &quay_a_name,
            &referrer_digest,
            "application/vnd.oci.image.manifest.v1+json",
            &referrer,
        )
        .await
        .unwrap();
    let fallback = source.digest.replace(':', "-");
    let index = world
        .quay
        .get_manifest(&quay_a_name, &fallback)
        .await
        .unwrap();
    let mut index: Value = serde_json::from_slice(&index.0).unwrap();
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["digest"] == bundles_a[0].as_str() {
            entry["digest"] = json!(referrer_digest);
            entry["size"] = json!(referrer.len());
        }
    }
    let index = serde_json::to_vec(&index).unwrap();
    world
        .quay
        .put_manifest(
            &quay_a_name,
            &fallback,
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await
        .unwrap();
    let reference = format!("{quay_a}@{}", source.digest);
    for verify in [verify_attestation, verify_bundle_attestation] {
        let refused = verify(&cluster.env, &dir, &public_key, &reference);
        assert!(
            !refused.status.success() && text(&refused).contains("failed to verify signature"),
            "cosign accepted a tampered receipt, or refused it for another reason: {}",
            text(&refused)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `awskms:///alias/…`: moto's KMS signs with an ECC_NIST_P256 key (through the
/// AWS SDK, as the operator does), the receipt is written to a Quay target
/// through the library, and the real cosign verifies it with the KMS public key.
#[tokio::test]
async fn a_kms_key_signs_a_receipt_cosign_verifies() {
    use aws_config::BehaviorVersion;
    use image_promoter::receipt::{
        Ensured, InputAttestation, KeyReference, PolicyObject, ReceiptFacts, Receipts,
    };

    let world = World::new().await;
    let env = &world.env;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("receipts-kms"));
    std::fs::create_dir_all(&dir).unwrap();
    // moto serves every AWS API on one endpoint.
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR"))
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let created = kms
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .send()
        .await
        .expect("moto creates an ECC_NIST_P256 key");
    let alias = format!("alias/{}", unique_name("receipts"));
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(created.key_metadata().unwrap().key_id())
        .send()
        .await
        .unwrap();
    let public = kms.get_public_key().key_id(&alias).send().await.unwrap();
    let der = public.public_key().unwrap().as_ref().to_vec();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let public_key = dir.join("kms.pub");
    std::fs::write(&public_key, pem).unwrap();

    let reference = KeyReference::parse(&format!("awskms:///{alias}")).unwrap();
    let receipts = Receipts::load(&reference, None, &sdk)
        .await
        .expect("the KMS key");

    // An image at a Quay target, as a promotion leaves it.
    let source = world.source("op-receipts-kms", GOOD).await;
    let (quay_name, quay) = world.quay_target("op-receipts-kms");
    let image = crate::oci::TestImage::new(&quay_name);
    let digest = world
        .quay
        .push_image(&quay_name, &image, "1.0.0")
        .await
        .unwrap();
    let config =
        image_promoter::config::Config::load(Path::new(env.get("PROMOTER_TEST_CONFIG"))).unwrap();
    let registries = config.registries_with(Some(&sdk)).unwrap();
    let client = registries
        .client(env.get("PROMOTER_TEST_QUAY_REGISTRY"))
        .unwrap();
    let repository: image_promoter::registry::Repository = quay.parse().unwrap();
    let facts = ReceiptFacts {
        object: PolicyObject {
            kind: "ImagePromotion".into(),
            namespace: "kms".into(),
            name: "app".into(),
            uid: "kms-uid".into(),
            generation: 1,
        },
        policy_digest: format!("sha256:{}", "ab".repeat(32)),
        target: quay.clone(),
        digest: digest.clone(),
        source: format!("{}@{}", world.source_repository(&source), source.digest),
        inputs: vec![InputAttestation {
            uri: format!("{}@{}", world.source_repository(&source), source.digest),
            digest: source.digest.clone(),
            key_id: "sha256:00".into(),
        }],
        scan: None,
        ignored: vec![],
        time_verified: "2026-12-07T04:00:00Z".into(),
    };
    let written = receipts
        .ensure(&client, &repository, "quay", &facts)
        .await
        .expect("the receipt is written");
    assert!(matches!(written, Ensured::Written(_)), "{written:?}");
    // Write-once: the same object generation finds what it wrote.
    let again = receipts
        .ensure(&client, &repository, "quay", &facts)
        .await
        .unwrap();
    assert_eq!(again, Ensured::Known(written.digest().to_string()));

    let verified = verify_attestation(env, &dir, &public_key, &format!("{quay}@{digest}"));
    assert!(verified.status.success(), "{}", text(&verified));
    let found = statements(&verified);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["predicate"]["policy"]["uri"],
        "imagepromoter.dev/ImagePromotion/kms/app"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A RegistryMirror: each mirrored tag gets a receipt at the target that the
/// real cosign verifies, naming the mirror; later syncs write nothing.
#[tokio::test]
async fn each_mirrored_tag_gets_a_receipt_and_later_syncs_write_none() {
    use crate::mirrored::{create_mirror, quay_registry};
    use image_promoter::api::RegistryMirror;

    let cluster = Cluster::start("op-receipts-mirror").await;
    let env = &cluster.env;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("receipts-mirror"));
    std::fs::create_dir_all(&dir).unwrap();
    let reference = format!("k8s://{}/receipt-key", cluster.namespace);
    let generated = cosign(env, &dir, &["generate-key-pair", &reference]);
    assert!(generated.status.success(), "{}", text(&generated));
    let secrets: kube::Api<Secret> = cluster.typed();
    let data = secrets
        .get("receipt-key")
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    let public_key = dir.join("receipt.pub");
    std::fs::write(&public_key, &data["cosign.pub"].0).unwrap();

    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/receipts-source");
    let mut digests = Vec::new();
    for tag in ["1.0.0", "1.1.0"] {
        let image = crate::oci::TestImage::new(&format!("{source}-{tag}"));
        digests.push(quay.push_image(&source, &image, tag).await.expect("push"));
    }
    let target = unique_name("mirror/receipts-target");
    let args = ["--attestation-key", reference.as_str()];
    let mut operator = Operator::start(&cluster, Rbac::Full, &args).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "tier": "Bronze",
            "interval": "1m",
        }),
    )
    .await;
    let api: kube::Api<RegistryMirror> = cluster.typed();
    operator
        .eventually("the mirror with 2 tags in sync", || {
            let (api, name) = (api.clone(), name.clone());
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (status.tags.as_ref()?.in_sync == 2).then_some(())
            }
        })
        .await;
    for digest in &digests {
        let image = format!("{quay_host}/{target}@{digest}");
        let verified = verify_attestation(env, &dir, &public_key, &image);
        assert!(
            verified.status.success(),
            "{image}: {}\n{}",
            text(&verified),
            operator.log()
        );
        let found = statements(&verified);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0]["predicate"]["policy"]["uri"],
            format!(
                "imagepromoter.dev/RegistryMirror/{}/{name}",
                cluster.namespace
            )
        );
        assert_eq!(
            found[0]["predicate"]["https://imagepromoter.dev/promotion/v1"]["source"],
            format!("{quay_host}/{source}@{digest}")
        );
    }

    // Later syncs (asked for with the reconcile annotation) copy nothing and write no receipt.
    let written = writes(&operator.metrics().await);
    for round in 0..2 {
        let requested = format!("receipts-{round}");
        api.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
                "imagepromoter.dev/reconcile-requested-at": requested
            }}})),
        )
        .await
        .unwrap();
        operator
            .eventually("another sync of the mirror", || {
                let (api, name, requested) = (api.clone(), name.clone(), requested.clone());
                async move {
                    let status = api.get(&name).await.ok()?.status?;
                    (status.last_handled_reconcile_at.as_deref() == Some(requested.as_str()))
                        .then_some(())
                }
            })
            .await;
    }
    assert_eq!(
        writes(&operator.metrics().await),
        written,
        "{}",
        operator.log()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
