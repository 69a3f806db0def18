//! Every object in examples/ is accepted by the apiserver, and comes back with
//! the same spec the Rust types read from the file: the schema's defaults and
//! the types' defaults agree.

use image_promoter::api::{ImagePromotion, RegistryMirror};
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::Cluster;

fn examples() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut objects = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            objects.push((path.display().to_string(), value));
        }
    }
    objects
}

#[tokio::test]
async fn every_example_is_accepted() {
    let cluster = Cluster::start("api-examples").await;
    let examples = examples();
    assert!(
        examples.len() >= 3,
        "examples/ holds {} objects",
        examples.len()
    );
    for (path, object) in examples {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        cluster
            .create(&object)
            .await
            .unwrap_or_else(|err| panic!("{path}: {name} refused: {err}"));
        match object["kind"].as_str().unwrap() {
            "ImagePromotion" => {
                let local: ImagePromotion = serde_json::from_value(object).unwrap();
                let served = cluster.typed::<ImagePromotion>().get(&name).await.unwrap();
                assert_eq!(served.spec, local.spec, "{path}: defaults differ");
            }
            "RegistryMirror" => {
                let local: RegistryMirror = serde_json::from_value(object).unwrap();
                let served = cluster.typed::<RegistryMirror>().get(&name).await.unwrap();
                assert_eq!(served.spec, local.spec, "{path}: defaults differ");
            }
            other => panic!("{path}: unexpected kind {other}"),
        }
    }
}
