//! Objects the apiserver would refuse, and what the command line cannot do
//! (read Secrets): exit 2 with the message, nothing printed on stdout.

use serde_json::{Value, json};

use crate::world::{Key, Source, World, promotion, public_key_file, quay_target};

#[tokio::test]
async fn an_invalid_object_or_unusable_input_exits_2_with_the_message() {
    let world = World::new().await;
    // No request is made for an invalid object, so the source need not exist.
    let source = Source {
        name: "promote/never-read".into(),
        digest: String::new(),
    };
    let (_, quay_repository) = world.quay_target("invalid");
    let valid = promotion(
        &world,
        &source,
        json!({}),
        json!([quay_target("quay", &quay_repository)]),
    );
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut object = valid.clone();
        change(&mut object);
        object
    };
    let key = public_key_file(&world.env, Key::Signer);
    let key = key.to_str().unwrap();
    let cases: Vec<(Value, Vec<&str>, &str)> = vec![
        (
            edit(&|o| o["spec"]["targets"][0]["tagz"] = json!(["x"])),
            vec![],
            "spec.targets[0].tagz: unknown field \"tagz\"",
        ),
        (
            edit(&|o| o["spec"]["targets"][0]["name"] = json!("Quay")),
            vec![],
            "spec.targets[0].name: must be a DNS label",
        ),
        (
            edit(&|o| o["spec"]["targets"][0]["floatingTags"] = json!(["edge"])),
            vec![],
            "spec.targets[0].floatingTags: every floating tag must also be listed in tags",
        ),
        (
            edit(&|o| o["spec"]["targets"][0]["createRepository"] = json!({"description": "x"})),
            vec![],
            "createRepository works only for ECR Public targets",
        ),
        (
            edit(&|o| {
                o["spec"]["source"]["image"] = json!(format!(
                    "{}/{}",
                    world.env.get("PROMOTER_TEST_ECR_REGISTRY"),
                    "app"
                ))
            }),
            vec![],
            "spec.source.image: must be a full image reference",
        ),
        (
            edit(&|o| o["spec"]["verify"] = json!({"scan": {"failOnSeverity": "SEVERE"}})),
            vec![],
            "spec.verify.scan.failOnSeverity: unsupported value \"SEVERE\"",
        ),
        (
            edit(&|o| {
                o["spec"]["verify"] = json!({"signature": {"publicKey": {"secretRef": {"name": "cosign-public-key"}}}})
            }),
            vec![],
            "give the PEM public key with --public-key FILE",
        ),
        (
            valid.clone(),
            vec!["--public-key", key],
            "leave out --public-key",
        ),
        (
            edit(&|o| {
                o["spec"]["targets"][0]["repository"] = json!("quay.example.com/acme/app");
                o["spec"]["targets"][0]["credentials"] =
                    json!({"secretRef": {"name": "quay-robot"}});
            }),
            vec![],
            "names Secret \"quay-robot\", which the command line cannot read",
        ),
        (
            edit(&|o| o["kind"] = json!("RegistryMirror")),
            vec![],
            "kind: must be ImagePromotion",
        ),
    ];
    for (object, args, expected) in cases {
        let run = world.promote(&object, &args);
        run.expect_exit(2);
        assert!(
            run.stderr.contains(expected),
            "expected {expected:?} in:\n{}",
            run.stderr
        );
        assert!(
            run.stdout.is_empty(),
            "nothing is printed on stdout: {}",
            run.stdout
        );
    }

    let not_yaml = world.promote_text("spec: [", &[]);
    not_yaml.expect_exit(2);
    assert!(
        not_yaml.stderr.contains("not valid YAML"),
        "{}",
        not_yaml.stderr
    );
}
