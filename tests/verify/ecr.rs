//! ECR inspection against moto: tag → digest, repository settings, scans
//! with injected findings, errors; and the policy's verdict on what was read.

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageIdentifier, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType,
};
use image_promoter::api::{EncryptionRequirement, IgnoredFinding, Severity, VerificationPolicy};
use image_promoter::aws::{EcrInspector, ScanStatus, TagMutability};
use image_promoter::verify::{
    Observations, RequiredBy, SignatureChecks, Verdict, VerificationFloor, evaluate,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::oci::TestImage;
use crate::support::{TestEnv, unique_name};
use crate::world;

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/verify-tests";

/// One repository in moto, made for one test.
struct Repository {
    env: TestEnv,
    ecr: aws_sdk_ecr::Client,
    name: String,
}

impl Repository {
    async fn create(
        prefix: &str,
        mutability: ImageTagMutability,
        exclusions: &[&str],
        kms: bool,
    ) -> Self {
        let env = TestEnv::load();
        let ecr = world::ecr_client(&env).await;
        let name = unique_name(prefix);
        let encryption = if kms {
            EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Kms)
                .kms_key(KMS_KEY)
        } else {
            EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256)
        };
        let filters = exclusions.iter().map(|f| {
            ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(*f)
                .build()
                .unwrap()
        });
        ecr.create_repository()
            .repository_name(&name)
            .image_tag_mutability(mutability)
            .set_image_tag_mutability_exclusion_filters(
                (!exclusions.is_empty()).then(|| filters.collect()),
            )
            .encryption_configuration(encryption.build().unwrap())
            .send()
            .await
            .expect("CreateRepository in moto");
        Self { env, ecr, name }
    }

    /// Registers an image with its real digest under `tag`.
    async fn put(&self, seed: &str, tag: &str) -> String {
        let image = TestImage::new(&format!("{}-{seed}", self.name));
        self.ecr
            .put_image()
            .repository_name(&self.name)
            .image_manifest(String::from_utf8(image.manifest.clone()).unwrap())
            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
            .image_tag(tag)
            .image_digest(image.digest())
            .send()
            .await
            .expect("PutImage in moto");
        image.digest()
    }

    async fn start_scan(&self, digest: &str) {
        self.ecr
            .start_image_scan()
            .repository_name(&self.name)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await
            .expect("StartImageScan in moto");
    }

    /// Starts a scan of `digest` and queues its result.
    async fn scan(&self, digest: &str, status: &str, findings: Value) {
        self.start_scan(digest).await;
        let mut result = json!({
            "registryId": self.env.get("PROMOTER_TEST_ECR_ACCOUNT"),
            "repositoryName": self.name,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": format!("scan {status}")},
        });
        if status == "COMPLETE" || status == "ACTIVE" {
            result["imageScanFindings"] = findings;
        }
        world::inject_scan_result(&self.env, result).await;
    }

    /// What verification observes of `digest` (named by `tag`), read through the product.
    async fn observe(&self, tag: &str) -> Observations {
        let inspector = world::inspector(&self.env).await;
        let digest = inspector
            .resolve_tag(&self.name, tag)
            .await
            .expect("resolving the tag");
        Observations {
            repository: Some(
                inspector
                    .repository_settings(&self.name)
                    .await
                    .expect("repository settings"),
            ),
            scan: inspector
                .scan_report(&self.name, &digest)
                .await
                .expect("scan report"),
            digest,
            source_tag: Some(tag.to_string()),
            signatures: SignatureChecks::default(),
        }
    }
}

fn basic(findings: &[(&str, &str)]) -> Value {
    let mut counts = serde_json::Map::new();
    for (_, severity) in findings {
        let count = counts.entry(severity.to_string()).or_insert(json!(0));
        *count = json!(count.as_i64().unwrap() + 1);
    }
    json!({
        "imageScanCompletedAt": 1_781_000_000,
        "vulnerabilitySourceUpdatedAt": 1_781_000_000,
        "findingSeverityCounts": counts,
        "findings": findings.iter().map(|(id, severity)| json!({
            "name": id,
            "uri": format!("https://cve.example/{id}"),
            "severity": severity,
            "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.1"}],
        })).collect::<Vec<_>>(),
    })
}

/// The default policy (immutable tags, completed scan, fail on HIGH) plus KMS.
fn policy(ignore: Vec<IgnoredFinding>) -> VerificationPolicy {
    let mut policy = VerificationPolicy {
        encryption: EncryptionRequirement::Kms,
        ..VerificationPolicy::default()
    };
    policy.scan.ignore = ignore;
    policy
}

fn now() -> Timestamp {
    "2026-06-15T12:00:00Z".parse().unwrap()
}

fn reasons(verdict: &Verdict) -> Vec<(&'static str, RequiredBy)> {
    verdict
        .failures
        .iter()
        .map(|f| (f.reason, f.required_by))
        .collect()
}

#[tokio::test]
async fn an_immutable_kms_repository_with_a_clean_scan_passes() {
    let repo = Repository::create("verify/clean", ImageTagMutability::Immutable, &[], true).await;
    let digest = repo.put("clean", "1.0.0").await;
    repo.scan(&digest, "COMPLETE", basic(&[("CVE-2026-1000", "LOW")]))
        .await;

    let observed = repo.observe("1.0.0").await;
    assert_eq!(
        observed.digest, digest,
        "the tag resolves to the real digest"
    );
    assert_eq!(
        observed.repository.as_ref().unwrap().tag_mutability,
        TagMutability::Immutable
    );
    assert_eq!(
        observed
            .repository
            .as_ref()
            .unwrap()
            .encryption
            .kind
            .as_str(),
        "KMS"
    );
    assert_eq!(
        observed
            .repository
            .as_ref()
            .unwrap()
            .encryption
            .kms_key
            .as_deref(),
        Some(KMS_KEY)
    );
    assert_eq!(observed.scan.status, ScanStatus::Complete);
    assert_eq!(observed.scan.findings.len(), 1);

    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert!(verdict.passed(), "{:?}", verdict.failures);
    let scan = verdict.evidence.scan.unwrap();
    assert_eq!((scan.status.as_str(), scan.findings.low), ("COMPLETE", 1));
    assert_eq!(scan.completed_at.unwrap().0.as_second(), 1_781_000_000);
}

#[tokio::test]
async fn a_mutable_aes256_repository_is_refused_on_both_counts() {
    let repo = Repository::create("verify/mutable", ImageTagMutability::Mutable, &[], false).await;
    let digest = repo.put("mutable", "1.0.0").await;
    repo.scan(&digest, "COMPLETE", basic(&[])).await;

    let observed = repo.observe("1.0.0").await;
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert_eq!(
        reasons(&verdict),
        [
            ("TagMutable", RequiredBy::Object),
            ("EncryptionTooWeak", RequiredBy::Object),
        ]
    );
    assert!(verdict.failures[0].message.contains("tag 1.0.0"));
    assert!(
        verdict.failures[1]
            .message
            .contains("encrypted with AES256")
    );
    assert_eq!(verdict.evidence.tag_mutability.as_deref(), Some("MUTABLE"));

    // The floor alone refuses what a lax object accepts, and says so.
    let lax = VerificationPolicy {
        require_tag_immutability: false,
        ..VerificationPolicy::default()
    };
    let floor: VerificationFloor =
        serde_yaml_ng::from_str("requireTagImmutability: true\nencryption: KMS").unwrap();
    let verdict = evaluate(&lax, &floor, &observed, now());
    assert_eq!(
        reasons(&verdict),
        [
            ("TagMutable", RequiredBy::Floor),
            ("EncryptionTooWeak", RequiredBy::Floor),
        ]
    );
}

#[tokio::test]
async fn a_tag_excluded_from_immutability_can_move() {
    let repo = Repository::create(
        "verify/exclusion",
        ImageTagMutability::ImmutableWithExclusion,
        &["dev-*"],
        true,
    )
    .await;
    let release = repo.put("release", "1.0.0").await;
    let dev = repo.put("dev", "dev-7").await;
    repo.scan(&release, "COMPLETE", basic(&[])).await;
    repo.scan(&dev, "COMPLETE", basic(&[])).await;

    let observed = repo.observe("1.0.0").await;
    assert_eq!(
        observed.repository.as_ref().unwrap().exclusion_filters,
        ["dev-*"]
    );
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert!(verdict.passed(), "{:?}", verdict.failures);

    let observed = repo.observe("dev-7").await;
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert_eq!(reasons(&verdict), [("TagMutable", RequiredBy::Object)]);
    assert!(
        verdict.failures[0]
            .message
            .contains("exclusion filter \"dev-*\""),
        "{}",
        verdict.failures[0].message
    );
}

/// cosign's signature tags excluded from immutability (`sha256-*`): moto keeps
/// the filter, the release tag passes with a Verified message saying why, a
/// source named by digest passes too; a filter that could free release tags
/// refuses the digest-only source, naming the filter.
#[tokio::test]
async fn signature_tags_excluded_from_immutability_are_accepted_and_said_so() {
    let repo = Repository::create(
        "verify/signatures",
        ImageTagMutability::ImmutableWithExclusion,
        &["sha256-*"],
        true,
    )
    .await;
    let release = repo.put("release", "1.0.0").await;
    repo.scan(&release, "COMPLETE", basic(&[])).await;
    let observed = repo.observe("1.0.0").await;
    let settings = observed.repository.as_ref().unwrap();
    assert_eq!(
        (
            &settings.tag_mutability,
            settings.exclusion_filters.as_slice()
        ),
        (
            &TagMutability::ImmutableWithExclusion,
            &["sha256-*".to_string()][..]
        )
    );
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert!(verdict.passed(), "{:?}", verdict.failures);
    let message = verdict.condition().message;
    assert!(
        message.contains("IMMUTABLE_WITH_EXCLUSION")
            && message.contains("(sha256-*) cover only cosign's signature tags"),
        "{message}"
    );
    let by_digest = Observations {
        source_tag: None,
        ..observed.clone()
    };
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &by_digest,
        now(),
    );
    assert!(verdict.passed(), "{:?}", verdict.failures);

    let loose = Repository::create(
        "verify/loose",
        ImageTagMutability::ImmutableWithExclusion,
        &["sha256-*", "latest"],
        true,
    )
    .await;
    let digest = loose.put("loose", "latest").await;
    loose.scan(&digest, "COMPLETE", basic(&[])).await;
    let observed = Observations {
        source_tag: None,
        ..loose.observe("latest").await
    };
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert_eq!(reasons(&verdict), [("TagMutable", RequiredBy::Object)]);
    assert!(
        verdict.failures[0]
            .message
            .contains("exclusion filter \"latest\" can free release tags"),
        "{}",
        verdict.failures[0].message
    );
}

#[tokio::test]
async fn critical_and_high_findings_refuse_until_ignored_and_again_after_expiry() {
    let repo =
        Repository::create("verify/findings", ImageTagMutability::Immutable, &[], true).await;
    let digest = repo.put("findings", "2.0.0").await;
    repo.scan(
        &digest,
        "COMPLETE",
        basic(&[
            ("CVE-2026-2001", "CRITICAL"),
            ("CVE-2026-2002", "HIGH"),
            ("CVE-2026-2003", "MEDIUM"),
        ]),
    )
    .await;
    let observed = repo.observe("2.0.0").await;
    let counts = observed.scan.counts();
    assert_eq!((counts.critical, counts.high, counts.medium), (1, 1, 1));

    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert_eq!(
        reasons(&verdict),
        [("VulnerabilitiesFound", RequiredBy::Object)]
    );
    let message = &verdict.failures[0].message;
    assert!(
        message.contains("2 vulnerabilities at or above HIGH")
            && message.contains("CVE-2026-2001 (CRITICAL, openssl), CVE-2026-2002 (HIGH, openssl)")
            && !message.contains("CVE-2026-2003"),
        "{message}"
    );

    let ignore = |id: &str, expires: &str| IgnoredFinding {
        id: id.into(),
        reason: "not reachable from the entry point".into(),
        expires: expires.into(),
    };
    let both = vec![
        ignore("CVE-2026-2001", "2026-12-31"),
        ignore("CVE-2026-2002", "2026-06-15"),
    ];
    let verdict = evaluate(
        &policy(both.clone()),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert!(verdict.passed(), "{:?}", verdict.failures);
    assert_eq!(verdict.evidence.scan.as_ref().unwrap().ignored, 2);

    // The next day the HIGH finding's entry has expired.
    let tomorrow: Timestamp = "2026-06-16T00:00:00Z".parse().unwrap();
    let verdict = evaluate(
        &policy(both),
        &VerificationFloor::default(),
        &observed,
        tomorrow,
    );
    assert_eq!(
        reasons(&verdict),
        [("VulnerabilitiesFound", RequiredBy::Object)]
    );
    let message = &verdict.failures[0].message;
    assert!(
        message.contains("CVE-2026-2002 (HIGH, openssl; its ignore entry expired on 2026-06-15)")
            && !message.contains("CVE-2026-2001"),
        "{message}"
    );

    // A floor at CRITICAL that refuses ignore entries refuses the CRITICAL one.
    let floor: VerificationFloor =
        serde_yaml_ng::from_str("scan: {failOnSeverity: CRITICAL, allowIgnores: false}").unwrap();
    let verdict = evaluate(
        &policy(vec![
            ignore("CVE-2026-2001", "2026-12-31"),
            ignore("CVE-2026-2002", "2026-12-31"),
        ]),
        &floor,
        &observed,
        now(),
    );
    assert_eq!(
        reasons(&verdict),
        [("VulnerabilitiesFound", RequiredBy::Floor)]
    );
    assert!(verdict.failures[0].message.contains("CVE-2026-2001"));
}

#[tokio::test]
async fn enhanced_findings_are_read_and_suppressed_ones_left_out() {
    let repo =
        Repository::create("verify/enhanced", ImageTagMutability::Immutable, &[], true).await;
    let digest = repo.put("enhanced", "3.0.0").await;
    let finding = |id: &str, severity: &str, status: &str| {
        json!({
            "awsAccountId": "123456789012",
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            "title": format!("{id} - libexample"),
            "severity": severity,
            "status": status,
            "type": "PACKAGE_VULNERABILITY",
            "score": 9.1,
            "packageVulnerabilityDetails": {
                "vulnerabilityId": id,
                "source": "NVD",
                "vulnerablePackages": [{"name": "libexample", "version": "1.0"}],
            },
        })
    };
    repo.scan(
        &digest,
        "ACTIVE",
        json!({
            "imageScanCompletedAt": 1_781_000_000,
            "findingSeverityCounts": {"CRITICAL": 1, "UNTRIAGED": 1},
            "enhancedFindings": [
                finding("CVE-2026-3001", "CRITICAL", "ACTIVE"),
                finding("GHSA-abcd-efgh-ijkl", "UNTRIAGED", "ACTIVE"),
                finding("CVE-2026-3003", "CRITICAL", "SUPPRESSED"),
            ],
        }),
    )
    .await;

    let observed = repo.observe("3.0.0").await;
    assert_eq!(observed.scan.status, ScanStatus::Active);
    let ids: Vec<_> = observed
        .scan
        .findings
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(ids, ["CVE-2026-3001", "GHSA-abcd-efgh-ijkl"]);
    assert_eq!(observed.scan.findings[0].severity, Some(Severity::Critical));
    assert_eq!(observed.scan.findings[1].severity, None);
    assert_eq!(
        observed.scan.findings[0].package.as_deref(),
        Some("libexample")
    );

    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert_eq!(
        reasons(&verdict),
        [("VulnerabilitiesFound", RequiredBy::Object)]
    );
    let message = &verdict.failures[0].message;
    assert!(
        message.contains("1 vulnerability at or above HIGH")
            && message.contains("CVE-2026-3001 (CRITICAL, libexample)")
            && !message.contains("GHSA"),
        "{message}"
    );
}

#[tokio::test]
async fn unscanned_running_and_failed_scans() {
    let repo = Repository::create("verify/scans", ImageTagMutability::Immutable, &[], true).await;
    let never = repo.put("never", "never").await;
    let running = repo.put("running", "running").await;
    let failed = repo.put("failed", "failed").await;
    let unsupported = repo.put("unsupported", "unsupported").await;
    repo.scan(&running, "IN_PROGRESS", json!(null)).await;
    repo.scan(&failed, "FAILED", json!(null)).await;
    repo.scan(&unsupported, "UNSUPPORTED_IMAGE", json!(null))
        .await;

    let inspector: EcrInspector = world::inspector(&repo.env).await;
    assert_eq!(
        inspector
            .scan_report(&repo.name, &never)
            .await
            .unwrap()
            .status,
        ScanStatus::NotScanned
    );
    let cases = [
        ("never", None, Some("ScanMissing")),
        ("running", Some("ScanPending"), None),
        ("failed", None, Some("ScanFailed")),
        ("unsupported", None, Some("ScanFailed")),
    ];
    for (tag, pending, failure) in cases {
        let observed = repo.observe(tag).await;
        let verdict = evaluate(
            &policy(vec![]),
            &VerificationFloor::default(),
            &observed,
            now(),
        );
        assert_eq!(verdict.pending.first().map(|f| f.reason), pending, "{tag}");
        assert_eq!(verdict.failures.first().map(|f| f.reason), failure, "{tag}");
        assert_eq!(verdict.waiting(), pending.is_some(), "{tag}");
    }
    let observed = repo.observe("failed").await;
    let verdict = evaluate(
        &policy(vec![]),
        &VerificationFloor::default(),
        &observed,
        now(),
    );
    assert!(verdict.failures[0].message.contains("FAILED: scan FAILED"));

    // Without a scan requirement, none of these blocks.
    let mut lax = policy(vec![]);
    lax.scan.required = false;
    for tag in ["never", "running", "failed", "unsupported"] {
        let observed = repo.observe(tag).await;
        assert!(evaluate(&lax, &VerificationFloor::default(), &observed, now()).passed());
    }
}

#[tokio::test]
async fn missing_repositories_and_tags_are_permanent_source_not_found() {
    let repo = Repository::create("verify/missing", ImageTagMutability::Immutable, &[], true).await;
    repo.put("present", "present").await;
    let inspector = world::inspector(&repo.env).await;

    let err = inspector
        .resolve_tag(&repo.name, "absent")
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason(), err.is_transient()),
        ("SourceNotFound", false),
        "{err}"
    );
    assert!(err.to_string().contains("absent"), "{err}");

    let nowhere = unique_name("verify/nowhere");
    let err = inspector.repository_settings(&nowhere).await.unwrap_err();
    assert_eq!(
        (err.reason(), err.is_transient()),
        ("SourceNotFound", false),
        "{err}"
    );
    assert!(
        err.to_string().contains("RepositoryNotFoundException"),
        "{err}"
    );

    let err = inspector
        .scan_report(
            &nowhere,
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "SourceNotFound", "{err}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient_and_the_token_is_redacted() {
    let env = TestEnv::load();
    let sdk = world::sdk_config(&env).await;
    let sdk = sdk
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let unreachable =
        EcrInspector::new(&sdk, world::ecr_registry(&env), Some("http://127.0.0.1:9"));
    let err = unreachable.repository_settings("any").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.reason(), "RegistryUnavailable");

    let token = world::inspector(&env)
        .await
        .authorization_token()
        .await
        .unwrap();
    assert_eq!(token.username(), "AWS");
    assert!(!token.password().is_empty());
    assert!(!format!("{token:?}").contains(token.password()));
}
