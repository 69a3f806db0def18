//! No panic is reachable from untrusted bytes: every parser that reads what a
//! registry, a token realm, a Secret or a configuration file sends gets
//! arbitrary input and input shaped like the real thing, and must answer with
//! a value or an error. (Parsers private to the crate have the same
//! properties in their own modules.) Nothing here needs the test world.

use image_promoter::config::Config;
use image_promoter::registry::auth::{challenge, dockerconfig};
use image_promoter::registry::manifest::{self, Manifest};
use image_promoter::registry::{Digest, ImageReference, Repository, retry};
use proptest::prelude::*;
use std::time::{Duration, SystemTime};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings made of the characters references are made of, and a few others.
fn reference_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r"([a-z0-9.\-]{0,12}(:[0-9]{0,6})?/)?([a-z0-9._\-]{0,10}/){0,3}[a-zA-Z0-9._\-]{0,12}(:[A-Za-z0-9._\-]{0,20})?(@[a-z0-9]{0,7}:[0-9a-fA-F]{0,70})?",
    )
    .unwrap()
}

fn digest_like() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex(r"(sha256|sha512|md5|)?:?[0-9a-f]{0,130}").unwrap(),
        "[a-z0-9]{1,8}:[0-9a-f]{64}",
        "sha512:[0-9a-f]{128}",
    ]
}

/// Descriptors and manifests with every field present, missing or of a wrong type.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
        digest_like().prop_map(serde_json::Value::from),
        proptest::sample::select(manifest::ACCEPTED.to_vec()).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("mediaType".to_string()),
                    Just("digest".to_string()),
                    Just("size".to_string()),
                    Just("config".to_string()),
                    Just("layers".to_string()),
                    Just("manifests".to_string()),
                    Just("subject".to_string()),
                    Just("platform".to_string()),
                    Just("annotations".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn descriptor() -> impl Strategy<Value = serde_json::Value> {
    (
        proptest::sample::select(manifest::ACCEPTED.to_vec()),
        digest_like(),
        any::<i64>(),
        proptest::option::of(("[a-z0-9]{0,8}", "[a-z0-9]{0,8}")),
    )
        .prop_map(|(media_type, digest, size, platform)| {
            let mut d =
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": size});
            if let Some((os, arch)) = platform {
                d["platform"] = serde_json::json!({"os": os, "architecture": arch});
            }
            d
        })
}

fn manifest_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (descriptor(), proptest::collection::vec(descriptor(), 0..4)).prop_map(|(c, l)| {
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "config": c, "layers": l}))
                .unwrap()
        }),
        proptest::collection::vec(descriptor(), 0..4).prop_map(|m| {
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": m})).unwrap()
        }),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

fn challenge_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        ".{0,20}",
        r#""[^"\\]{0,20}""#,
        r#""([^"]|\\.){0,20}"?"#,
        "(https?|file|ftp)://[a-z0-9.:/?=&]{0,20}",
    ];
    (
        prop_oneof![
            Just("Bearer".to_string()),
            Just("Basic".to_string()),
            Just("bEaReR".to_string()),
            ".{0,8}"
        ],
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("realm".to_string()),
                    Just("service".to_string()),
                    Just("scope".to_string()),
                    ".{0,6}"
                ],
                value,
            ),
            0..5,
        ),
        prop_oneof![Just(","), Just(", "), Just(" "), Just(",,")],
    )
        .prop_map(|(scheme, params, separator)| {
            let params: Vec<String> = params
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{scheme} {}", params.join(separator))
        })
}

fn docker_config_like() -> impl Strategy<Value = Vec<u8>> {
    let entry = prop_oneof![
        json_value(),
        (
            proptest::option::of(prop_oneof![
                "[A-Za-z0-9+/=]{0,24}".prop_map(serde_json::Value::from),
                json_value()
            ]),
            proptest::option::of(json_value()),
            proptest::option::of(".{0,12}".prop_map(serde_json::Value::from)),
        )
            .prop_map(|(auth, username, password)| {
                let mut e = serde_json::Map::new();
                if let Some(a) = auth {
                    e.insert("auth".into(), a);
                }
                if let Some(u) = username {
                    e.insert("username".into(), u);
                }
                if let Some(p) = password {
                    e.insert("password".into(), p);
                }
                serde_json::Value::Object(e)
            }),
    ];
    prop_oneof![
        proptest::collection::btree_map("(https?://)?[a-z.]{0,10}(/v1/)?", entry, 0..4)
            .prop_map(|auths| serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap()),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A configuration file: known keys with values of the right or a wrong type.
fn config_like() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        6 => (1u64..64).prop_map(|n| n.to_string()),
        1 => Just((5u64 << 20).to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
        1 => Just("1e-300".to_string()),
        1 => Just("5e-324".to_string()),
        1 => Just(".nan".to_string()),
        1 => Just(".inf".to_string()),
        1 => Just("0".to_string()),
        1 => Just("x".to_string()),
    ];
    let auth = prop_oneof![
        Just("{}".to_string()),
        "[a-z]{0,5}".prop_map(|u| format!("{{basic: {{username: '{u}'}}}}")),
        "[a-z]{0,5}".prop_map(|u| format!(
            "{{basic: {{username: '{u}', passwordEnv: PROPTEST_UNSET_VARIABLE}}}}"
        )),
        Just("{basic: {username: u, passwordFile: /nonexistent/p}}".to_string()),
        Just("{dockerConfig: {path: /nonexistent/config.json}}".to_string()),
        Just("{basic: {username: u, passwordEnv: P}, dockerConfig: {path: /x}}".to_string()),
        Just("[]".to_string()),
    ];
    let registry = (
        prop_oneof!["[a-z0-9.:\\-]{0,16}", Just("127.0.0.1:5000".to_string())],
        auth,
        number.clone(),
        number.clone(),
        number.clone(),
        proptest::option::of(number),
        proptest::option::of(any::<bool>()),
        prop_oneof![Just("generic"), Just("ecr"), Just("ecrPublic"), Just("gcr")],
    )
        .prop_map(
            |(host, auth, concurrency, rps, chunk, stall, plain, kind)| {
                let mut fields = vec![format!("host: '{host}'"), format!("auth: {auth}")];
                fields.push(format!("maxConcurrentRequests: {concurrency}"));
                fields.push(format!("requestsPerSecond: {rps}"));
                fields.push(format!("chunkBytes: {chunk}"));
                if let Some(stall) = stall {
                    fields.push(format!("stallTimeoutSeconds: {stall}"));
                }
                if let Some(plain) = plain {
                    fields.push(format!("plainHttp: {plain}"));
                }
                fields.push(format!("kind: {kind}"));
                format!("{{{}}}", fields.join(", "))
            },
        );
    prop_oneof![
        proptest::collection::vec(registry, 0..3)
            .prop_map(|r| format!("registries: [{}]", r.join(", "))),
        ".{0,80}",
        Just("verify: {signature: {publicKeys: ['-----BEGIN PUBLIC KEY-----']}}".to_string()),
    ]
}

/// Builds every registry of a configuration that serde accepted, as the
/// operator does after reading it.
fn build(config: &Config) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = runtime.block_on(config.registries());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_never_panic(text in prop_oneof![reference_like(), ".{0,300}"]) {
        if let Ok(image) = ImageReference::parse_any(&text) {
            // What parses prints back to something that parses the same.
            prop_assert_eq!(ImageReference::parse_any(&image.to_string()).ok(), Some(image.clone()));
            let _ = image.reference();
            let _ = image.repository.api_host();
        }
        let _ = ImageReference::parse_image(&text);
        let _ = text.parse::<Repository>();
    }

    #[test]
    fn digests_never_panic(text in prop_oneof![digest_like(), ".{0,200}"]) {
        if let Ok(digest) = text.parse::<Digest>() {
            prop_assert_eq!(digest.to_string(), text);
            let _ = digest.tag_form();
        }
    }

    #[test]
    fn manifests_never_panic(
        bytes in manifest_like(),
        media_type in prop_oneof![proptest::sample::select(manifest::ACCEPTED.to_vec()).prop_map(str::to_string), ".{0,30}"],
        header in proptest::option::of(".{0,40}"),
    ) {
        let _ = manifest::media_type_of(header.as_deref(), &bytes);
        if let Ok(parsed) = Manifest::parse(&media_type, &bytes) {
            let _ = parsed.blobs();
            let _ = parsed.children();
        }
    }

    #[test]
    fn challenges_never_panic(header in prop_oneof![challenge_like(), ".{0,120}"]) {
        let _ = challenge::parse(&header);
    }

    #[test]
    fn docker_configs_never_panic(document in docker_config_like(), host in "[a-z.]{0,10}") {
        let _ = dockerconfig::credential_for(&document, &host);
    }

    #[test]
    fn retry_after_never_panics(
        value in prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            "[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
            ".{0,40}",
        ],
        now in any::<u32>(),
    ) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now));
        if let Some(delay) = retry::parse_retry_after(&value, now) {
            let policy = retry::RetryPolicy::default();
            prop_assert!(policy.delay(1, Some(delay), 0.5) <= policy.max_delay);
        }
    }

    #[test]
    fn config_files_never_panic(text in config_like()) {
        // Through the loader, as the operator and the CLI read it.
        let dir = std::env::temp_dir().join(format!("untrusted-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:016x}.yaml", fastrand_like(&text)));
        std::fs::write(&path, &text).unwrap();
        if let Ok(config) = Config::load(&path) {
            build(&config);
        }
        let _ = std::fs::remove_file(&path);
        // And through serde alone, without the loader's validation.
        if let Ok(config) = serde_yaml_ng::from_str::<Config>(&text) {
            build(&config);
        }
    }
}

/// Inputs that panicked before: built through serde alone (no validation),
/// each must give a value or an error.
#[test]
fn configurations_that_used_to_panic_are_refused_or_built() {
    let cases = [
        // Basic auth without a password source: `unreachable!("validated")`.
        "registries: [{host: a.io, auth: {basic: {username: u}}}]",
        // A tiny rate: `Duration::from_secs_f64(1 / rps)` overflowed.
        "registries: [{host: a.io, requestsPerSecond: 1e-300}]",
        "registries: [{host: a.io, requestsPerSecond: 5e-324}]",
        // More permits than a semaphore holds.
        "registries: [{host: a.io, maxConcurrentRequests: 18446744073709551615}]",
        // A host that is no URL authority.
        "registries: [{host: 'a b'}]",
    ];
    for text in cases {
        let config: Config = serde_yaml_ng::from_str(text).unwrap();
        build(&config);
    }
}

/// A file name per input, so parallel cases never share a file.
fn fastrand_like(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    std::thread::current().id().hash(&mut hasher);
    hasher.finish()
}
