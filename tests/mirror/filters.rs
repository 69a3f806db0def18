//! Tag selection against the real listing of the big source: each filter of
//! the table selects exactly the expected tags (a dry run: nothing is copied),
//! and signature tags are never selected.

use serde_json::json;

use crate::support::TestEnv;
use crate::world::{
    big_source, big_source_tags, mirror, quay_target, run, selected_tags, world_config,
};

fn is_release(tag: &str) -> bool {
    let plain = tag.strip_prefix('v').unwrap_or(tag);
    let parts: Vec<&str> = plain.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn version(tag: &str) -> (u32, u32, u32) {
    let core = tag.strip_prefix('v').unwrap_or(tag);
    let core = core.split('-').next().unwrap();
    let n: Vec<u32> = core.split('.').map(|p| p.parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

fn is_commit(tag: &str) -> bool {
    tag.len() == 7
        && tag
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn each_filter_selects_exactly_its_tags_and_never_a_signature() {
    let env = TestEnv::load();
    let source = big_source(&env).await;
    let all = big_source_tags();
    let pick = |keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut tags: Vec<String> = all.iter().filter(|t| keep(t)).cloned().collect();
        tags.sort();
        tags
    };
    let cases: Vec<(serde_json::Value, Vec<String>)> = vec![
        (json!({}), pick(&|_| true)),
        (
            json!({"semver": "^1"}),
            pick(&|t| is_release(t) && version(t).0 == 1),
        ),
        (
            json!({"semver": ">=2.5.0 <3.0.0"}),
            pick(&|t| is_release(t) && version(t).0 == 2 && version(t).1 >= 5),
        ),
        (
            json!({"semver": "~3.2"}),
            pick(&|t| is_release(t) && version(t).0 == 3 && version(t).1 == 2),
        ),
        (
            json!({"semver": ">=1.9.0-rc.0, <2.0.0"}),
            pick(&|t| t.starts_with("1.9.")),
        ),
        (
            json!({"include": ["^[0-9a-f]{7}$"]}),
            pick(&|t| is_commit(t)),
        ),
        (
            json!({"exclude": ["-rc", "^[0-9a-f]{7}$"]}),
            pick(&|t| is_release(t) || t == "latest"),
        ),
        (
            json!({"semver": "*", "newest": 5}),
            pick(&|t| ["v3.9.4", "v3.9.3", "v3.9.2", "v3.9.1", "v3.9.0"].contains(&t)),
        ),
        (
            json!({"semver": "^1 || ^2", "exclude": ["\\.[1-4]$"]}),
            pick(&|t| is_release(t) && version(t).0 < 3 && version(t).2 == 0),
        ),
    ];
    let (_, target) = quay_target(&env, "filters");
    let host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    for (tags, expected) in cases {
        let object = mirror(
            &source.reference(host),
            &[("quay", &target)],
            json!({"tags": tags}),
        );
        let synced = run(&world_config(&env), &object, &["--dry-run"]);
        synced.expect_exit(0);
        let report = synced.report();
        let mut selected = selected_tags(&report);
        selected.sort();
        assert_eq!(selected, expected, "filter {tags}");
        assert_eq!(report["selected"], expected.len(), "filter {tags}");
        assert!(
            selected.iter().all(|t| !t.starts_with("sha256-")),
            "a signature tag was selected by {tags}"
        );
        assert!(
            report["copies"].as_array().unwrap().is_empty(),
            "a dry run copies nothing"
        );
    }
    assert!(
        crate::fixtures::quay(&env)
            .manifest_digest(target.split_once('/').unwrap().1, "1.0.0")
            .await
            .is_err(),
        "dry runs wrote nothing"
    );
}

#[tokio::test]
async fn an_invalid_filter_is_bad_input_that_names_the_field() {
    let env = TestEnv::load();
    let (_, target) = quay_target(&env, "invalid");
    let object = mirror(
        &format!("{}/mirror/none", env.get("PROMOTER_TEST_QUAY_REGISTRY")),
        &[("quay", &target)],
        json!({"tags": {"semver": ">=banana"}}),
    );
    let synced = run(&world_config(&env), &object, &[]);
    synced.expect_exit(2);
    assert!(
        synced.stderr.contains("InvalidTagFilter"),
        "{}",
        synced.stderr
    );
    assert!(
        synced.stderr.contains("spec.tags.semver"),
        "{}",
        synced.stderr
    );
}

#[tokio::test]
async fn a_suspended_mirror_does_nothing() {
    let env = TestEnv::load();
    let source = crate::world::seed(&env, "suspended", &["1.0.0"]).await;
    let (target_name, target) = quay_target(&env, "suspended");
    let host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let object = mirror(
        &source.reference(host),
        &[("quay", &target)],
        json!({"suspend": true}),
    );
    let synced = run(&world_config(&env), &object, &[]);
    synced.expect_exit(0);
    assert_eq!(synced.report()["suspended"], true);
    assert!(
        crate::fixtures::quay(&env)
            .manifest_digest(&target_name, "1.0.0")
            .await
            .is_err(),
        "nothing was copied"
    );
}
