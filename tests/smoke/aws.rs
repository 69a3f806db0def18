//! The AWS stand-ins: moto for the ECR API and the ECR Public stand-in, called
//! through the same SDK crates the product uses.

use crate::oci::{Auth, Registry, TestImage};
use crate::support::{TestEnv, unique_name};
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageIdentifier, ImageScanningConfiguration,
    ImageTagMutability,
};
use aws_sdk_ecrpublic::types::RepositoryCatalogDataInput;
use base64::Engine as _;

fn credentials(env: &TestEnv) -> aws_sdk_ecr::config::Credentials {
    aws_sdk_ecr::config::Credentials::new(
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
        None,
        None,
        "testenv",
    )
}

pub fn ecr_client(env: &TestEnv) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::Config::builder()
        .behavior_version(aws_sdk_ecr::config::BehaviorVersion::latest())
        .region(aws_sdk_ecr::config::Region::new(
            env.get("AWS_REGION").to_string(),
        ))
        .credentials_provider(credentials(env))
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR"))
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

pub async fn ecr_public_client(env: &TestEnv) -> aws_sdk_ecrpublic::Client {
    let config = aws_sdk_ecrpublic::Config::builder()
        .behavior_version(aws_sdk_ecrpublic::config::BehaviorVersion::latest())
        .region(aws_sdk_ecrpublic::config::Region::new("us-east-1"))
        .credentials_provider(credentials(env))
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC"))
        .build();
    aws_sdk_ecrpublic::Client::from_conf(config)
}

fn split_basic(token: &str) -> (String, String) {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("authorization token is base64");
    let text = String::from_utf8(decoded).expect("authorization token is UTF-8");
    let (user, password) = text
        .split_once(':')
        .expect("authorization token is user:password");
    (user.to_string(), password.to_string())
}

/// `(user, password)` for the internal ECR registry, from GetAuthorizationToken.
pub async fn ecr_registry_credentials(env: &TestEnv) -> (String, String) {
    let response = ecr_client(env)
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken on moto");
    let data = &response.authorization_data()[0];
    split_basic(data.authorization_token().expect("a token"))
}

/// The password (`AWS:<password>`) the ECR Public registry's token realm accepts.
pub async fn ecr_public_registry_password(env: &TestEnv) -> String {
    let response = ecr_public_client(env)
        .await
        .get_authorization_token()
        .send()
        .await
        .expect("GetAuthorizationToken on the ECR Public stand-in");
    let data = response.authorization_data().expect("authorization data");
    let (user, password) = split_basic(data.authorization_token().expect("a token"));
    assert_eq!(user, "AWS");
    password
}

#[tokio::test]
async fn ecr_api_keeps_immutable_encrypted_repositories_and_real_digests() {
    let env = TestEnv::load();
    let ecr = ecr_client(&env);
    let name = unique_name("smoke/immutable");
    ecr.create_repository()
        .repository_name(&name)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Kms)
                .kms_key("arn:aws:kms:us-east-1:123456789012:key/smoke")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateRepository");

    let described = ecr
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .expect("DescribeRepositories");
    let repo = &described.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    let encryption = repo
        .encryption_configuration()
        .expect("encryption configuration");
    assert_eq!(encryption.encryption_type(), &EncryptionType::Kms);
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());

    let image = TestImage::new(&name);
    let manifest = String::from_utf8(image.manifest.clone()).unwrap();
    ecr.put_image()
        .repository_name(&name)
        .image_manifest(&manifest)
        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
        .image_tag("v1")
        .image_digest(image.digest())
        .send()
        .await
        .expect("PutImage with the real digest");

    let images = ecr
        .describe_images()
        .repository_name(&name)
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .send()
        .await
        .expect("DescribeImages");
    let details = &images.image_details()[0];
    assert_eq!(details.image_digest(), Some(image.digest().as_str()));
    assert_eq!(details.image_tags(), ["v1".to_string()]);

    // Immutability is enforced: the tag cannot be pointed at other bytes.
    let other = TestImage::new(&format!("{name}-other"));
    let moved = ecr
        .put_image()
        .repository_name(&name)
        .image_manifest(String::from_utf8(other.manifest.clone()).unwrap())
        .image_tag("v1")
        .image_digest(other.digest())
        .send()
        .await;
    assert!(moved.is_err(), "an IMMUTABLE repository let tag v1 move");

    let missing = ecr
        .describe_repositories()
        .repository_names(unique_name("smoke/missing"))
        .send()
        .await
        .expect_err("a repository that does not exist");
    assert!(
        missing
            .into_service_error()
            .is_repository_not_found_exception(),
        "missing repository must be RepositoryNotFoundException"
    );
}

#[tokio::test]
async fn ecr_public_stand_in_speaks_the_actions_the_product_uses() {
    let env = TestEnv::load();
    let public = ecr_public_client(&env).await;
    let name = unique_name("smoke-catalog");
    let created = public
        .create_repository()
        .repository_name(&name)
        .catalog_data(
            RepositoryCatalogDataInput::builder()
                .description("smoke test image")
                .architectures("x86-64")
                .operating_systems("Linux")
                .build(),
        )
        .send()
        .await
        .expect("CreateRepository");
    let uri = created
        .repository()
        .unwrap()
        .repository_uri()
        .unwrap()
        .to_string();
    let alias = env.get("PROMOTER_TEST_PUBLIC_ALIAS");
    assert_eq!(
        uri,
        format!(
            "{}/{alias}/{name}",
            env.get("PROMOTER_TEST_PUBLIC_REGISTRY")
        )
    );

    let again = public
        .create_repository()
        .repository_name(&name)
        .send()
        .await;
    assert!(
        again
            .unwrap_err()
            .into_service_error()
            .is_repository_already_exists_exception(),
        "creating a repository twice must fail as ECR Public does"
    );

    let described = public
        .describe_repositories()
        .repository_names(&name)
        .send()
        .await
        .expect("DescribeRepositories");
    assert_eq!(
        described.repositories()[0].repository_name(),
        Some(name.as_str())
    );

    public
        .put_repository_catalog_data()
        .repository_name(&name)
        .catalog_data(
            RepositoryCatalogDataInput::builder()
                .description("updated")
                .about_text("# About")
                .usage_text("docker pull it")
                .build(),
        )
        .send()
        .await
        .expect("PutRepositoryCatalogData");
    let catalog = public
        .get_repository_catalog_data()
        .repository_name(&name)
        .send()
        .await
        .expect("GetRepositoryCatalogData");
    let data = catalog.catalog_data().unwrap();
    assert_eq!(data.description(), Some("updated"));
    assert_eq!(data.about_text(), Some("# About"));
    assert_eq!(data.usage_text(), Some("docker pull it"));

    // DescribeImages reads what is really in the registry.
    let registry = Registry::new(
        env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
        &env.ca_pem(),
        Auth::Bearer {
            basic: Some(("AWS".into(), ecr_public_registry_password(&env).await)),
        },
    );
    let image = TestImage::new(&name);
    let digest = registry
        .push_image(&format!("{alias}/{name}"), &image, "1.0.0")
        .await
        .expect("push to the public registry");
    let images = public
        .describe_images()
        .repository_name(&name)
        .send()
        .await
        .expect("DescribeImages");
    let details = images.image_details();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0].image_digest(), Some(digest.as_str()));
    assert_eq!(details[0].image_tags(), ["1.0.0".to_string()]);

    let missing = public
        .describe_repositories()
        .repository_names(unique_name("nope"))
        .send()
        .await;
    assert!(
        missing
            .unwrap_err()
            .into_service_error()
            .is_repository_not_found_exception()
    );
}
