//! Objects the apiserver must refuse at `kubectl apply`, each with a message
//! that names the field and what is allowed.
//!
//! Every case starts from a valid object (created first, to prove it valid)
//! and changes one thing.

use serde_json::{Value, json};

use crate::cluster::{Cluster, refusal};

const SHA_A: &str = "sha256:6b3c1e0a4f2d8c9b7a5e3f1d0c2b4a6987e5d3c1b0a2f4e6d8c0b2a4f6e8d0c2";
const SHA_B: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
const SOURCE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app";

fn promotion() -> Value {
    json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": "valid"},
        "spec": {
            "source": {"image": format!("{SOURCE}:1.2.3")},
            "verify": {
                "scan": {"ignore": [
                    {"id": "CVE-2025-1", "reason": "not reachable", "expires": "2027-01-31"}
                ]},
                "signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}}
            },
            "targets": [
                {
                    "name": "ecr-public",
                    "repository": "public.ecr.aws/acme/app",
                    "tags": ["1.2.3", "latest"],
                    "floatingTags": ["latest"],
                    "createRepository": {"description": "app"}
                },
                {
                    "name": "quay",
                    "repository": "quay.io/acme/app",
                    "credentials": {"secretRef": {"name": "quay-robot"}}
                }
            ]
        }
    })
}

fn mirror() -> Value {
    json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": "valid"},
        "spec": {
            "source": {"repository": "quay.io/acme/app"},
            "targets": [{"name": "ecr-public", "repository": "public.ecr.aws/acme/app"}],
            "tags": {"include": ["^v[0-9]"], "semver": ">=1.0.0", "newest": 10},
            "interval": "5m",
            "tier": "Gold"
        }
    })
}

/// `object` with the value at JSON pointer `path` replaced or added.
fn set(mut object: Value, path: &str, value: Value) -> Value {
    let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
    let parent = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the base object"));
    match parent {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => {
            let index: usize = key.parse().expect("an array index");
            if index == items.len() {
                items.push(value);
            } else {
                items[index] = value;
            }
        }
        _ => panic!("{path}: parent is not a container"),
    }
    object
}

/// `object` without the value at JSON pointer `path`.
fn remove(mut object: Value, path: &str) -> Value {
    let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
    match object.pointer_mut(parent) {
        Some(Value::Object(map)) => assert!(map.remove(key).is_some(), "no {path}"),
        _ => panic!("no {parent} in the base object"),
    }
    object
}

struct Case {
    name: &'static str,
    object: Value,
    /// Fragments the apiserver's message must contain: the field, and what is allowed.
    expect: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let p = promotion;
    let m = mirror;
    let target = |name: &str, repository: &str| json!({"name": name, "repository": repository, "tags": ["1"]});
    vec![
        Case {
            name: "no targets",
            object: set(p(), "/spec/targets", json!([])),
            expect: &["spec.targets", "should have at least 1 items"],
        },
        Case {
            name: "targets missing",
            object: remove(p(), "/spec/targets"),
            expect: &["spec.targets: Required value"],
        },
        Case {
            name: "seventeen targets",
            object: set(
                p(),
                "/spec/targets",
                (0..17)
                    .map(|i| target(&format!("t{i}"), &format!("quay.io/acme/app{i}")))
                    .collect(),
            ),
            expect: &["spec.targets", "must have at most 16 items"],
        },
        Case {
            name: "duplicate target names",
            object: set(p(), "/spec/targets/1/name", json!("ecr-public")),
            expect: &["spec.targets[1]", "Duplicate value", "ecr-public"],
        },
        Case {
            name: "duplicate target repositories",
            object: set(
                p(),
                "/spec/targets/1/repository",
                json!("public.ecr.aws/acme/app"),
            ),
            expect: &[
                "spec.targets",
                "each target repository may appear only once",
            ],
        },
        Case {
            name: "target equal to source",
            object: set(p(), "/spec/targets/1/repository", json!(SOURCE)),
            expect: &[
                "spec.targets",
                "a target repository must differ from the source repository",
            ],
        },
        Case {
            name: "source without registry host",
            object: set(p(), "/spec/source/image", json!("team/app:1.2.3")),
            expect: &["spec.source.image", "must be a full image reference"],
        },
        Case {
            name: "source without tag or digest",
            object: set(p(), "/spec/source/image", json!(SOURCE)),
            expect: &["spec.source.image", "must be a full image reference"],
        },
        Case {
            name: "source with a short digest",
            object: set(
                p(),
                "/spec/source/image",
                json!(format!("{SOURCE}@sha256:6b3c1e0a")),
            ),
            expect: &["spec.source.image", "@sha256:<64 hex>"],
        },
        Case {
            name: "malformed source digest",
            object: set(p(), "/spec/source/digest", json!("sha256:XYZ")),
            expect: &[
                "spec.source.digest",
                "must be a digest: sha256: followed by 64 lowercase hex",
            ],
        },
        Case {
            name: "tag with a digest that disagrees",
            object: set(
                set(
                    p(),
                    "/spec/source/image",
                    json!(format!("{SOURCE}:1.2.3@{SHA_A}")),
                ),
                "/spec/source/digest",
                json!(SHA_B),
            ),
            expect: &[
                "spec.source.digest",
                "digest disagrees with the digest in image",
            ],
        },
        Case {
            name: "untagged source and a target without tags",
            object: set(
                p(),
                "/spec/source/image",
                json!(format!("{SOURCE}@{SHA_A}")),
            ),
            expect: &[
                "spec.targets",
                "the source image has no tag, so every target must list its tags",
            ],
        },
        Case {
            name: "target repository with a tag",
            object: set(
                p(),
                "/spec/targets/1/repository",
                json!("quay.io/acme/app:1.2.3"),
            ),
            expect: &[
                "spec.targets[1].repository",
                "must be a repository with its registry host and no tag",
            ],
        },
        Case {
            name: "target name that is not a DNS label",
            object: set(p(), "/spec/targets/1/name", json!("Quay_IO")),
            expect: &["spec.targets[1].name", "must be a DNS label"],
        },
        Case {
            name: "malformed tag",
            object: set(p(), "/spec/targets/0/tags", json!(["1.2.3", "-latest"])),
            expect: &["spec.targets[0].tags", "each tag must be 1-128 characters"],
        },
        Case {
            name: "duplicate tag",
            object: set(p(), "/spec/targets/0/tags", json!(["1.2.3", "1.2.3"])),
            expect: &["spec.targets[0].tags[1]", "Duplicate value"],
        },
        Case {
            name: "floating tag not among the tags",
            object: set(p(), "/spec/targets/0/floatingTags", json!(["latest", "17"])),
            expect: &[
                "spec.targets[0].floatingTags",
                "every floating tag must also be listed in tags",
            ],
        },
        Case {
            name: "floating tag with default tags",
            object: set(p(), "/spec/targets/1/floatingTags", json!(["1.2.3"])),
            expect: &[
                "spec.targets[1].floatingTags",
                "every floating tag must also be listed in tags",
            ],
        },
        Case {
            name: "two kinds of credentials",
            object: set(p(), "/spec/targets/1/credentials/ecrPublic", json!({})),
            expect: &[
                "spec.targets[1].credentials",
                "set exactly one of ecr, ecrPublic, secretRef",
            ],
        },
        Case {
            name: "createRepository on a Quay target",
            object: set(
                p(),
                "/spec/targets/1/createRepository",
                json!({"description": "app"}),
            ),
            expect: &[
                "spec.targets[1].createRepository",
                "createRepository works only for ECR Public targets",
            ],
        },
        Case {
            name: "unknown catalog architecture",
            object: set(
                p(),
                "/spec/targets/0/createRepository/architectures",
                json!(["amd64"]),
            ),
            expect: &[
                "spec.targets[0].createRepository.architectures[0]",
                "Unsupported value",
                "\"x86-64\"",
            ],
        },
        Case {
            name: "ignore entry without reason",
            object: remove(p(), "/spec/verify/scan/ignore/0/reason"),
            expect: &["spec.verify.scan.ignore[0].reason: Required value"],
        },
        Case {
            name: "ignore entry with an empty reason",
            object: set(p(), "/spec/verify/scan/ignore/0/reason", json!("")),
            expect: &[
                "spec.verify.scan.ignore[0].reason",
                "should be at least 1 chars long",
            ],
        },
        Case {
            name: "ignore entry without expiry",
            object: remove(p(), "/spec/verify/scan/ignore/0/expires"),
            expect: &["spec.verify.scan.ignore[0].expires: Required value"],
        },
        Case {
            name: "ignore entry with a malformed expiry",
            object: set(
                p(),
                "/spec/verify/scan/ignore/0/expires",
                json!("next year"),
            ),
            expect: &["spec.verify.scan.ignore[0].expires", "must be of type date"],
        },
        Case {
            name: "duplicate ignore entry",
            object: set(
                p(),
                "/spec/verify/scan/ignore/1",
                json!({"id": "CVE-2025-1", "reason": "again", "expires": "2027-01-31"}),
            ),
            expect: &["spec.verify.scan.ignore[1]", "Duplicate value"],
        },
        Case {
            name: "unknown severity",
            object: set(p(), "/spec/verify/scan/failOnSeverity", json!("SEVERE")),
            expect: &[
                "spec.verify.scan.failOnSeverity",
                "Unsupported value: \"SEVERE\"",
                "\"CRITICAL\"",
            ],
        },
        Case {
            name: "unknown encryption",
            object: set(p(), "/spec/verify/encryption", json!("RSA")),
            expect: &[
                "spec.verify.encryption",
                "Unsupported value: \"RSA\"",
                "\"KMS\"",
            ],
        },
        Case {
            name: "public key and keyless signature at once",
            object: set(
                p(),
                "/spec/verify/signature/keyless",
                json!({"issuer": "https://token.actions.githubusercontent.com", "subject": "x"}),
            ),
            expect: &[
                "spec.verify.signature",
                "set exactly one of publicKey, keyless",
            ],
        },
        Case {
            name: "keyless issuer that is not https",
            object: set(
                p(),
                "/spec/verify/signature",
                json!({"keyless": {"issuer": "http://issuer.example", "subject": "x"}}),
            ),
            expect: &[
                "spec.verify.signature.keyless.issuer",
                "must be an https:// URL",
            ],
        },
        Case {
            name: "keyless subject given exactly and as an expression",
            object: set(
                p(),
                "/spec/verify/signature",
                json!({"keyless": {"issuer": "https://token.actions.githubusercontent.com",
                    "subject": "x", "subjectRegExp": "^x$"}}),
            ),
            expect: &[
                "spec.verify.signature.keyless",
                "set exactly one of subject, subjectRegExp",
            ],
        },
        Case {
            name: "keyless without issuer",
            object: set(
                p(),
                "/spec/verify/signature",
                json!({"keyless": {"subject": "x"}}),
            ),
            expect: &[
                "spec.verify.signature.keyless",
                "set exactly one of issuer, issuerRegExp",
            ],
        },
        Case {
            name: "keyless trusted root in a Secret and a ConfigMap at once",
            object: set(
                p(),
                "/spec/verify/signature",
                json!({"keyless": {"issuerRegExp": "^https://", "subject": "x", "trustedRoot": {
                    "secretRef": {"name": "sigstore"}, "configMapRef": {"name": "sigstore"}}}}),
            ),
            expect: &[
                "spec.verify.signature.keyless.trustedRoot",
                "set exactly one of secretRef, configMapRef",
            ],
        },
        Case {
            name: "malformed platform",
            object: set(p(), "/spec/copy", json!({"platforms": ["linux"]})),
            expect: &[
                "spec.copy.platforms",
                "each platform must be os/arch or os/arch/variant",
            ],
        },
        Case {
            name: "compliance interval that is not a duration",
            object: set(p(), "/spec/compliance", json!({"interval": "1d"})),
            expect: &[
                "spec.compliance.interval",
                "must be a duration of at least 1s",
            ],
        },
        Case {
            name: "compliance interval under a second",
            object: set(p(), "/spec/compliance", json!({"interval": "500ms"})),
            expect: &[
                "spec.compliance.interval",
                "must be a duration of at least 1s",
            ],
        },
        Case {
            name: "mirror interval under the minimum",
            object: set(m(), "/spec/interval", json!("30s")),
            expect: &["spec.interval", "must be a duration of at least 1m"],
        },
        Case {
            name: "mirror interval that is not a duration",
            object: set(m(), "/spec/interval", json!("1d")),
            expect: &["spec.interval", "must be a duration of at least 1m"],
        },
        Case {
            name: "empty include regex",
            object: set(m(), "/spec/tags/include", json!(["^v[0-9]", ""])),
            expect: &["spec.tags.include", "regular expressions must not be empty"],
        },
        Case {
            name: "empty exclude regex",
            object: set(m(), "/spec/tags/exclude", json!([""])),
            expect: &["spec.tags.exclude", "regular expressions must not be empty"],
        },
        Case {
            name: "empty floating regex",
            object: set(m(), "/spec/tags/floating", json!([""])),
            expect: &[
                "spec.tags.floating",
                "regular expressions must not be empty",
            ],
        },
        Case {
            name: "newest zero",
            object: set(m(), "/spec/tags/newest", json!(0)),
            expect: &["spec.tags.newest", "should be greater than or equal to 1"],
        },
        Case {
            name: "mirror target equal to source",
            object: set(m(), "/spec/targets/0/repository", json!("quay.io/acme/app")),
            expect: &[
                "spec.targets",
                "a target repository must differ from the source repository",
            ],
        },
        Case {
            name: "mirror source with a tag",
            object: set(
                m(),
                "/spec/source/repository",
                json!("quay.io/acme/app:latest"),
            ),
            expect: &[
                "spec.source.repository",
                "must be a repository with its registry host",
            ],
        },
        Case {
            name: "mirror without targets",
            object: set(m(), "/spec/targets", json!([])),
            expect: &["spec.targets", "should have at least 1 items"],
        },
        Case {
            name: "tier that is not a label value",
            object: set(m(), "/spec/tier", json!("Gold Plus")),
            expect: &[
                "spec.tier",
                "must be a label value such as Gold, Silver or Bronze",
            ],
        },
    ]
}

#[tokio::test]
async fn invalid_objects_are_refused_with_a_message_naming_the_field() {
    let cluster = Cluster::start("api-invalid").await;
    for valid in [promotion(), mirror()] {
        cluster
            .create(&valid)
            .await
            .unwrap_or_else(|err| panic!("the base {} is refused: {err}", valid["kind"]));
    }

    let cases = cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let object = set(case.object, "/metadata/name", json!(format!("case-{i}")));
        let message = refusal(cluster.create(&object).await, case.name);
        let missing: Vec<_> = case
            .expect
            .iter()
            .filter(|f| !message.contains(**f))
            .collect();
        if !missing.is_empty() {
            failures.push(format!("{}: missing {missing:?} in: {message}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_source_of_a_promotion_is_immutable() {
    let cluster = Cluster::start("api-immutable").await;
    cluster
        .create(&promotion())
        .await
        .expect("the base promotion");
    let api = cluster.promotions();
    let params = kube::api::PatchParams::default();

    let other_image = json!({"spec": {"source": {"image": format!("{SOURCE}:1.2.4")}}});
    let result = api
        .patch("valid", &params, &kube::api::Patch::Merge(&other_image))
        .await;
    let message = refusal(result, "changing spec.source.image");
    for fragment in [
        "spec.source",
        "Forbidden",
        "spec.source is immutable: create a new ImagePromotion",
    ] {
        assert!(
            message.contains(fragment),
            "missing {fragment:?} in: {message}"
        );
    }

    let digest = json!({"spec": {"source": {"digest": SHA_A}}});
    let result = api
        .patch("valid", &params, &kube::api::Patch::Merge(&digest))
        .await;
    let message = refusal(result, "adding spec.source.digest");
    assert!(message.contains("spec.source is immutable"), "{message}");

    let new_tags = json!({"spec": {"targets": [
        {"name": "ecr-public", "repository": "public.ecr.aws/acme/app", "tags": ["1.2.3", "1.2"]}
    ]}});
    api.patch("valid", &params, &kube::api::Patch::Merge(&new_tags))
        .await
        .expect("targets may change");
}
