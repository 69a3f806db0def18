//! ECR Public against the stand-in: the registry token, repositories
//! created with catalog data, and no write when nothing differs — proven on
//! the wire by recording every action the client sends.

use std::sync::{Arc, Mutex};

use aws_sdk_ecrpublic::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ecrpublic::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_ecrpublic::error::BoxError;
use image_promoter::api::{Architecture, EcrPublicRepository, OperatingSystem};
use image_promoter::aws::{CatalogChange, EcrPublic, RepositoryCreation, RepositoryEnsured};

use crate::support::{TestEnv, unique_name};
use crate::world;

/// Records the action (`X-Amz-Target`) of every request sent.
#[derive(Clone, Debug, Default)]
struct Actions(Arc<Mutex<Vec<String>>>);

impl Actions {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for Actions {
    fn name(&self) -> &'static str {
        "RecordActions"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or_default();
        let action = target.rsplit('.').next().unwrap_or_default().to_string();
        self.0.lock().unwrap().push(action);
        Ok(())
    }
}

/// The product's client, with the recorder on the wire.
async fn recorded(env: &TestEnv) -> (EcrPublic, Actions) {
    let actions = Actions::default();
    let config = aws_sdk_ecrpublic::config::Builder::from(&world::sdk_config(env).await)
        .region(aws_sdk_ecrpublic::config::Region::new(EcrPublic::REGION))
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC"))
        .interceptor(actions.clone())
        .build();
    (
        EcrPublic::from_client(aws_sdk_ecrpublic::Client::from_conf(config)),
        actions,
    )
}

fn catalog() -> EcrPublicRepository {
    EcrPublicRepository {
        description: Some("The app, promoted from internal ECR".into()),
        about_text: Some("# App\nBuilt and scanned internally.".into()),
        usage_text: Some("docker pull public.ecr.aws/acme/app:1.0.0".into()),
        architectures: vec![Architecture::X86_64, Architecture::Arm64],
        operating_systems: vec![OperatingSystem::Linux],
    }
}

/// The catalog data the stand-in holds, read with a plain SDK client.
async fn stored_catalog(
    env: &TestEnv,
    name: &str,
) -> aws_sdk_ecrpublic::types::RepositoryCatalogData {
    let config = aws_sdk_ecrpublic::config::Builder::from(&world::sdk_config(env).await)
        .region(aws_sdk_ecrpublic::config::Region::new(EcrPublic::REGION))
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC"))
        .build();
    aws_sdk_ecrpublic::Client::from_conf(config)
        .get_repository_catalog_data()
        .repository_name(name)
        .send()
        .await
        .expect("GetRepositoryCatalogData")
        .catalog_data()
        .cloned()
        .expect("catalog data")
}

#[tokio::test]
async fn a_missing_repository_is_created_with_catalog_data_and_left_alone_after() {
    let env = TestEnv::load();
    let (public, actions) = recorded(&env).await;
    let name = unique_name("verify-created");
    assert_eq!(public.repository(&name).await.unwrap(), None);
    actions.take();

    let first = public.ensure_repository(&name, &catalog()).await.unwrap();
    assert_eq!(first, RepositoryEnsured::Created);
    assert_eq!(actions.take(), ["DescribeRepositories", "CreateRepository"]);
    let stored = stored_catalog(&env, &name).await;
    assert_eq!(stored.description(), catalog().description.as_deref());
    assert_eq!(stored.about_text(), catalog().about_text.as_deref());
    assert_eq!(stored.usage_text(), catalog().usage_text.as_deref());
    assert_eq!(stored.architectures(), ["x86-64", "ARM 64"]);
    assert_eq!(stored.operating_systems(), ["Linux"]);

    let second = public.ensure_repository(&name, &catalog()).await.unwrap();
    assert_eq!(second, RepositoryEnsured::Unchanged);
    assert_eq!(
        actions.take(),
        ["DescribeRepositories", "GetRepositoryCatalogData"],
        "the second run must only read"
    );

    let repository = public.repository(&name).await.unwrap().expect("it exists");
    let alias = env.get("PROMOTER_TEST_PUBLIC_ALIAS");
    assert_eq!(
        repository.uri.as_deref(),
        Some(
            format!(
                "{}/{alias}/{name}",
                env.get("PROMOTER_TEST_PUBLIC_REGISTRY")
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn changed_catalog_data_is_written_once_keeping_unset_fields() {
    let env = TestEnv::load();
    let (public, actions) = recorded(&env).await;
    let name = unique_name("verify-catalog");
    public.ensure_repository(&name, &catalog()).await.unwrap();
    actions.take();

    let changed = EcrPublicRepository {
        description: Some("A new description".into()),
        ..EcrPublicRepository::default()
    };
    assert_eq!(
        public.ensure_repository(&name, &changed).await.unwrap(),
        RepositoryEnsured::CatalogUpdated
    );
    assert_eq!(
        actions.take(),
        [
            "DescribeRepositories",
            "GetRepositoryCatalogData",
            "PutRepositoryCatalogData"
        ]
    );
    let stored = stored_catalog(&env, &name).await;
    assert_eq!(stored.description(), Some("A new description"));
    assert_eq!(
        stored.usage_text(),
        catalog().usage_text.as_deref(),
        "unset fields are kept"
    );
    assert_eq!(stored.architectures(), ["x86-64", "ARM 64"]);

    assert_eq!(
        public.sync_catalog_data(&name, &changed).await.unwrap(),
        CatalogChange::Unchanged
    );
    assert_eq!(actions.take(), ["GetRepositoryCatalogData"]);
}

#[tokio::test]
async fn creation_races_tokens_and_missing_repositories() {
    let env = TestEnv::load();
    let public = world::ecr_public(&env).await;
    let name = unique_name("verify-race");
    assert!(matches!(
        public.create_repository(&name, &catalog()).await.unwrap(),
        RepositoryCreation::Created(_)
    ));
    // Created meanwhile by someone else: not an error, nothing written.
    assert_eq!(
        public.create_repository(&name, &catalog()).await.unwrap(),
        RepositoryCreation::AlreadyExists
    );

    let err = public
        .sync_catalog_data(&unique_name("verify-absent"), &catalog())
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason(), err.is_transient()),
        ("RepositoryNotFound", false),
        "{err}"
    );

    let token = public.authorization_token().await.unwrap();
    assert_eq!(token.username(), "AWS");
    assert!(token.expires_at().is_some());
    let debug = format!("{token:?}");
    assert!(
        !debug.contains(token.password()) && debug.contains("<redacted>"),
        "{debug}"
    );
}
