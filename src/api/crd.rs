//! The CustomResourceDefinitions, generated from the Rust types.
//!
//! `image-promoter crds` prints [`crds_yaml`]; `make crds` stores it in
//! `crds/imagepromoter.dev.yaml`, and a test fails when the stored file and
//! the types disagree, so the schema the apiserver enforces is always the one
//! the controller was compiled against.
//!
//! One adjustment is made to what kube-derive generates: `nullable: true` is
//! removed from every optional field. Without it the apiserver drops an
//! explicit `null` instead of storing it, so CEL rules can rely on `has()`
//! and an absent field and a null one mean the same thing.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use super::{ImagePromotion, RegistryMirror};

/// Both CRDs, ImagePromotion first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [ImagePromotion::crd(), RegistryMirror::crd()]
        .into_iter()
        .map(without_nullable)
        .collect()
}

/// Both CRDs as one YAML stream, documents separated by `---`.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml_ng::to_string(crd).expect("a CRD serializes to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn without_nullable(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(crd).expect("a CRD serializes to JSON");
    remove_key(&mut value, "nullable");
    serde_json::from_value(value).expect("a CRD without nullable is still a CRD")
}

fn remove_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_has_both_crds() {
        let yaml = crds_yaml();
        let docs: Vec<CustomResourceDefinition> = yaml
            .split("---\n")
            .map(|doc| serde_yaml_ng::from_str(doc).unwrap())
            .collect();
        let names: Vec<_> = docs
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "imagepromotions.imagepromoter.dev",
                "registrymirrors.imagepromoter.dev"
            ]
        );
    }

    #[test]
    fn no_field_is_nullable() {
        assert!(!crds_yaml().contains("nullable"));
    }

    #[test]
    fn kubectl_names_avoid_kargo() {
        for crd in crds() {
            let names = &crd.spec.names;
            assert_eq!(
                names.categories.as_deref(),
                Some(&["imagepromoter".to_string()][..])
            );
            let short = names.short_names.clone().unwrap_or_default();
            assert!(
                !short.iter().any(|s| s == "promo" || s == "promos"),
                "{short:?}"
            );
            assert_ne!(
                names.plural, "promotions",
                "Kargo owns the plural promotions"
            );
        }
        let [promotion, mirror] = &crds()[..] else {
            panic!("two CRDs")
        };
        assert!(
            promotion
                .spec
                .names
                .short_names
                .as_ref()
                .unwrap()
                .contains(&"promotions".into())
        );
        assert!(
            mirror
                .spec
                .names
                .short_names
                .as_ref()
                .unwrap()
                .contains(&"mirrors".into())
        );
    }

    #[test]
    fn the_stored_crds_match_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/imagepromoter.dev.yaml");
        let stored = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            stored == crds_yaml(),
            "{path} is out of date with src/api; run `make crds`"
        );
    }
}
