//! The generated CRDs are accepted as they are: structural, names accepted,
//! established, and stable when applied again.

use image_promoter::api::crds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use crate::cluster::{Cluster, install_crds};

fn condition<'a>(crd: &'a CustomResourceDefinition, type_: &str) -> Option<&'a str> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[tokio::test]
async fn crds_install_and_are_established() {
    let cluster = Cluster::start("api-install").await;
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let mut generations = Vec::new();
    for generated in crds() {
        let name = generated.metadata.name.clone().unwrap();
        let served = api.get(&name).await.unwrap();
        assert_eq!(condition(&served, "Established"), Some("True"), "{name}");
        assert_eq!(condition(&served, "NamesAccepted"), Some("True"), "{name}");
        assert_ne!(
            condition(&served, "NonStructuralSchema"),
            Some("True"),
            "{name}"
        );
        let accepted = served
            .status
            .as_ref()
            .unwrap()
            .accepted_names
            .clone()
            .unwrap();
        assert_eq!(
            accepted.short_names, generated.spec.names.short_names,
            "{name}"
        );
        assert_eq!(
            accepted.categories,
            Some(vec!["imagepromoter".to_string()]),
            "{name}"
        );
        let version = &served.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{name}"
        );
        assert_eq!(
            version.additional_printer_columns,
            generated.spec.versions[0].additional_printer_columns,
            "{name}"
        );
        generations.push((name, served.metadata.generation));
    }

    install_crds(&cluster.client).await;
    for (name, generation) in generations {
        let served = api.get(&name).await.unwrap();
        assert_eq!(
            served.metadata.generation, generation,
            "{name}: applying again changed it"
        );
    }
}
