//! How one RegistryMirror reaches its registries, decided before any
//! request: pure, from the validated object and the configuration file.
//!
//! The same trust rules as promotions ([`crate::promotion::plan`]): the
//! object's own Secret first, else the configuration file's entry for a
//! host, else what the object's credentials or the host imply (the
//! operator's AWS identity only to ECR and ECR Public hosts), one set of
//! credentials per host, and the tenancy rules for every repository the
//! operator's credentials touch in an object that names its namespace. It
//! also picks how each repository is listed: ECR's DescribeImages for ECR
//! hosts, ECR Public's DescribeImageTags for ECR Public targets (tags with
//! digests, no request per tag; under another account's alias the registry's
//! own listing, decided when the operator's aliases are known), and
//! `/v2/<name>/tags/list` everywhere else, and for any repository read with
//! the object's own Secret (the operator's AWS identity lists nothing for it).

use std::time::Duration;

use crate::api::{RegistryMirror, VerificationPolicy, reasons};
use crate::aws::{ECR_PUBLIC_HOST, EcrRegistry, parse_ecr_host, resolve_ecr_registry};
use crate::config::{Config, RegistryKind};
use crate::promotion::plan::{
    HostAccess, InferredCredentials, PlanError, PublicRepositoryPlan, Reach, SecretAccess,
    SecretCredentials, SignatureMaterial, TargetUse, public_repository, reach_host, tenancy,
    verifiers,
};
use crate::registry::copy::MountSources;
use crate::registry::{CopyOptions, Repository};

use super::selection::TagSelection;
use super::verification::MirrorPolicy;

/// How a repository's tags (and, where the API gives them, digests and push
/// times) are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListingApi {
    /// `/v2/<name>/tags/list`, following `Link` headers.
    Registry,
    /// ECR DescribeImages.
    Ecr {
        registry: EcrRegistry,
        endpoint: Option<String>,
    },
    /// ECR Public DescribeImageTags when `alias` is one of the operator's
    /// own (the API lists only the operator's registry); the registry's
    /// `tags/list` under any other alias. `name` is the repository without
    /// the alias.
    EcrPublic {
        endpoint: Option<String>,
        alias: String,
        name: String,
    },
}

/// One target of the mirror.
#[derive(Clone, Debug)]
pub struct TargetSetup {
    pub name: String,
    pub repository: Repository,
    pub listing: ListingApi,
    /// The ECR Public repository to create when missing.
    pub create: Option<PublicRepositoryPlan>,
}

/// Everything a sync of one mirror needs to know up front.
#[derive(Clone, Debug)]
pub struct MirrorSetup {
    pub name: String,
    pub namespace: Option<String>,
    pub generation: Option<i64>,
    pub source: Repository,
    pub source_listing: ListingApi,
    pub targets: Vec<TargetSetup>,
    pub selection: TagSelection,
    /// `spec.maxCopiesPerSync`.
    pub max_copies: usize,
    /// `spec.interval`.
    pub interval: Duration,
    /// `spec.fullResyncInterval`.
    pub full_resync_every: Duration,
    /// `spec.suspend`.
    pub suspend: bool,
    /// Copies carry every platform, signatures and referrers.
    pub options: CopyOptions,
    /// Token credentials for hosts the configuration file does not list.
    pub inferred: Vec<InferredCredentials>,
    /// dockerconfigjson Secrets to read (the controller only).
    pub secrets: Vec<SecretCredentials>,
    /// What each tag's image must satisfy before it is copied.
    pub verification: MirrorPolicy,
}

fn duration(field: &str, text: &str) -> Result<Duration, PlanError> {
    crate::api::parse_duration(text).map_err(|e| PlanError::invalid(format!("{field}: {e}")))
}

/// Decides how `mirror` reaches and lists its repositories and what its
/// images must satisfy; `public_key` is the key of
/// `spec.verify.signature.publicKey` (the Secret's, or `--public-key`).
pub fn setup(
    mirror: &RegistryMirror,
    config: &Config,
    access: SecretAccess,
    public_key: impl Into<SignatureMaterial>,
) -> Result<MirrorSetup, PlanError> {
    let spec = &mirror.spec;
    let selection = TagSelection::new(&spec.tags).map_err(|e| PlanError {
        reason: reasons::INVALID_TAG_FILTER,
        message: e.to_string(),
    })?;
    let source: Repository = spec
        .source
        .repository
        .parse()
        .map_err(|e| PlanError::invalid(format!("spec.source.repository: {e}")))?;
    let mut reach = Reach::default();
    reach_host(
        config,
        access,
        "spec.source",
        &source.registry,
        spec.source.credentials.as_ref(),
        &mut reach,
    )?;
    let mut parsed = Vec::with_capacity(spec.targets.len());
    for target in &spec.targets {
        let field = format!("spec.targets[{}]", target.name);
        let repository: Repository = target
            .repository
            .parse()
            .map_err(|e| PlanError::invalid(format!("{field}.repository: {e}")))?;
        reach_host(
            config,
            access,
            &field,
            &repository.registry,
            target.credentials.as_ref(),
            &mut reach,
        )?;
        parsed.push((target, repository));
    }
    let own_secret = |repository: &Repository| {
        matches!(
            reach.access(&repository.registry),
            Some(HostAccess::Secret(_))
        )
    };
    let mut targets = Vec::with_capacity(parsed.len());
    for (target, repository) in parsed {
        let create = match &target.create_repository {
            Some(catalog) => Some(public_repository(
                &target.name,
                &repository,
                catalog,
                config,
            )?),
            None => None,
        };
        targets.push(TargetSetup {
            name: target.name.clone(),
            listing: listing_api(config, &repository, true, own_secret(&repository)),
            repository,
            create,
        });
    }
    let source_listing = listing_api(config, &source, false, own_secret(&source));
    let target_uses: Vec<TargetUse<'_>> = targets
        .iter()
        .map(|t| {
            let api_listing = t.listing != ListingApi::Registry;
            TargetUse::new(
                &t.name,
                &t.repository,
                &reach,
                t.create.is_some(),
                api_listing,
            )
        })
        .collect();
    // The source is the operator's business only when its credentials read it.
    let source_is_operators = reach
        .access(&source.registry)
        .is_some_and(HostAccess::is_operators)
        || source_listing != ListingApi::Registry;
    let namespace = mirror.metadata.namespace.as_deref();
    tenancy(
        namespace,
        config,
        source_is_operators.then_some((&source, "spec.source.repository")),
        &target_uses,
    )?;
    let (inferred, secrets) = (reach.inferred(), reach.secrets());
    let no_policy = VerificationPolicy {
        signature: None,
        ..VerificationPolicy::default()
    };
    let verifiers = verifiers(
        spec.verify.as_ref().unwrap_or(&no_policy),
        config,
        public_key.into(),
    )?;
    let verification = MirrorPolicy::new(
        spec.verify.clone(),
        config.verify.clone(),
        verifiers,
        &source_listing,
    );
    Ok(MirrorSetup {
        name: mirror.metadata.name.clone().unwrap_or_default(),
        namespace: mirror.metadata.namespace.clone(),
        generation: mirror.metadata.generation,
        source_listing,
        source,
        targets,
        selection,
        max_copies: usize::try_from(spec.max_copies_per_sync.max(1)).unwrap_or(1),
        interval: duration("spec.interval", &spec.interval)?,
        full_resync_every: duration("spec.fullResyncInterval", &spec.full_resync_interval)?,
        suspend: spec.suspend,
        options: CopyOptions {
            signatures: true,
            referrers: true,
            mount_from: namespace
                .and_then(|namespace| config.tenancy().writable(namespace))
                .map_or(MountSources::Any, MountSources::Matching),
            ..CopyOptions::default()
        },
        inferred,
        secrets,
        verification,
    })
}

/// How `repository` is listed: through the registry when the object reads
/// it with its own Secret (`own_secret`); else through ECR's API when the
/// host is ECR (the configuration's `kind: ecr` entry or an ECR host name),
/// through ECR Public's for a target there (the API lists only the account's
/// own repositories: [`ListingApi::EcrPublic`] falls back to the registry
/// under another alias), otherwise through the registry.
pub fn listing_api(
    config: &Config,
    repository: &Repository,
    target: bool,
    own_secret: bool,
) -> ListingApi {
    let host = repository.registry.as_str();
    if own_secret {
        return ListingApi::Registry;
    }
    match config.registry(host) {
        Some(entry) if entry.kind == RegistryKind::Ecr => {
            let ecr = entry.auth.ecr.as_ref();
            let resolved = resolve_ecr_registry(
                host,
                ecr.and_then(|e| e.region.as_deref()),
                ecr.and_then(|e| e.registry_id.as_deref()),
            );
            match resolved {
                Ok(registry) => ListingApi::Ecr {
                    registry,
                    endpoint: ecr.and_then(|e| e.endpoint_url.clone()),
                },
                Err(_) => ListingApi::Registry,
            }
        }
        Some(entry) if entry.kind == RegistryKind::EcrPublic && target => public_listing(
            repository,
            entry
                .auth
                .ecr_public
                .as_ref()
                .and_then(|p| p.endpoint_url.clone()),
        ),
        Some(_) => ListingApi::Registry,
        None if host == ECR_PUBLIC_HOST && target => public_listing(repository, None),
        None => parse_ecr_host(host).map_or(ListingApi::Registry, |registry| ListingApi::Ecr {
            registry,
            endpoint: None,
        }),
    }
}

fn public_listing(repository: &Repository, endpoint: Option<String>) -> ListingApi {
    match repository.name.split_once('/') {
        Some((alias, name)) => ListingApi::EcrPublic {
            endpoint,
            alias: alias.to_string(),
            name: name.to_string(),
        },
        None => ListingApi::Registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn repo(text: &str) -> Repository {
        text.parse().unwrap()
    }

    fn mirror(namespace: &str, targets: &str) -> RegistryMirror {
        serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: RegistryMirror
metadata: {{name: m, namespace: {namespace}}}
spec:
  source: {{repository: quay.test/acme/app}}
  targets: {targets}
"#
        ))
        .unwrap()
    }

    const RULES: &str = r#"
registries:
  - {host: quay.test, auth: {dockerConfig: {path: /quay.json}}}
  - {host: public.test, kind: ecrPublic, auth: {ecrPublic: {endpointUrl: "http://standin"}}}
tenancy:
  - namespaces: [team-a]
    sources: [quay.test/acme]
    targets: [public.test/acme/team-a-*]
"#;

    #[test]
    fn the_mirrors_own_secret_wins_and_every_use_of_the_operators_is_checked() {
        let file = config(RULES);
        // (targets, Ok(listing of the first target) or Err(reason, text))
        type Expected = Result<ListingApi, (&'static str, &'static str)>;
        let cases: [(&str, Expected); 6] = [
            (
                "[{name: a, repository: public.test/acme/team-a-web}]",
                Ok(ListingApi::EcrPublic {
                    endpoint: Some("http://standin".into()),
                    alias: "acme".into(),
                    name: "team-a-web".into(),
                }),
            ),
            (
                "[{name: a, repository: public.test/acme/other}]",
                Err(("RepositoryNotAllowed", "spec.targets[a].repository")),
            ),
            // Its own Secret on a declared host: used, listed through the
            // registry with it, not limited by the rules.
            (
                "[{name: a, repository: public.test/acme/other, credentials: {secretRef: {name: s}}}]",
                Ok(ListingApi::Registry),
            ),
            // createRepository is the operator's AWS identity whatever the Secret.
            (
                "[{name: a, repository: public.test/acme/other, credentials: {secretRef: {name: s}}, createRepository: {}}]",
                Err(("RepositoryNotAllowed", "spec.targets[a].createRepository")),
            ),
            (
                "[{name: a, repository: public.test/acme/other}, {name: b, repository: public.test/acme/team-a-x, credentials: {secretRef: {name: s}}}]",
                Err(("InvalidSpec", "one set of credentials per registry host")),
            ),
            (
                "[{name: b, repository: public.test/acme/team-a-x, credentials: {secretRef: {name: s}}}, {name: a, repository: public.test/acme/other}]",
                Err(("InvalidSpec", "one set of credentials per registry host")),
            ),
        ];
        for (targets, expected) in cases {
            let result = setup(&mirror("team-a", targets), &file, SecretAccess::Api, None);
            match (result, expected) {
                (Ok(planned), Ok(listing)) => {
                    assert_eq!(planned.targets[0].listing, listing, "{targets}")
                }
                (Err(err), Err((reason, text))) => {
                    assert_eq!(err.reason, reason, "{targets}: {err}");
                    assert!(err.message.contains(text), "{targets}: {err}");
                }
                (result, expected) => panic!("{targets}: {result:?}, expected {expected:?}"),
            }
        }
        let planned = setup(
            &mirror(
                "team-a",
                "[{name: a, repository: public.test/acme/x, credentials: {secretRef: {name: s}}}]",
            ),
            &file,
            SecretAccess::Api,
            None,
        )
        .unwrap();
        assert_eq!(
            planned.secrets,
            [SecretCredentials {
                host: "public.test".into(),
                secret: "s".into()
            }]
        );
        assert!(planned.inferred.is_empty());
    }

    /// What the CRD's rule accepts, the mirror runs with (the CEL rule and
    /// the mirror once disagreed on `1.5h`, and the mirror stalled).
    #[test]
    fn intervals_the_crd_accepts_are_the_mirrors_intervals() {
        let cases = [
            ("1.5h", "90m", 5_400, 5_400),
            ("1h30m", "24h", 5_400, 86_400),
            ("1m", "1.25h", 60, 4_500),
        ];
        for (interval, full, every, full_every) in cases {
            let text = format!(
                "apiVersion: imagepromoter.dev/v1alpha1\nkind: RegistryMirror\n\
                 metadata: {{name: m, namespace: team}}\n\
                 spec:\n  source: {{repository: quay.io/acme/app}}\n\
                 \x20 targets: [{{name: quay, repository: quay.io/acme/copy}}]\n\
                 \x20 interval: {interval}\n  fullResyncInterval: {full}\n"
            );
            let mirror: RegistryMirror =
                crate::cli::promote::input::parse_as(&text, "test.yaml", "RegistryMirror")
                    .unwrap_or_else(|e| panic!("{interval}: {e}"));
            let setup = setup(&mirror, &Config::default(), SecretAccess::None, None)
                .unwrap_or_else(|e| panic!("{interval}: {e}"));
            assert_eq!(setup.interval, Duration::from_secs(every), "{interval}");
            assert_eq!(
                setup.full_resync_every,
                Duration::from_secs(full_every),
                "{full}"
            );
        }
    }

    #[test]
    fn listing_follows_what_the_host_is() {
        let file = config(
            r#"
registries:
  - host: "ecr.test:5000"
    kind: ecr
    auth: {ecr: {registryId: "123456789012", region: eu-west-1, endpointUrl: "http://moto"}}
  - host: "public.test"
    kind: ecrPublic
    auth: {ecrPublic: {endpointUrl: "http://standin"}}
  - host: "quay.test"
"#,
        );
        let ecr = ListingApi::Ecr {
            registry: resolve_ecr_registry(
                "ecr.test:5000",
                Some("eu-west-1"),
                Some("123456789012"),
            )
            .unwrap(),
            endpoint: Some("http://moto".into()),
        };
        let public = |endpoint: Option<&str>| ListingApi::EcrPublic {
            endpoint: endpoint.map(str::to_string),
            alias: "acme".into(),
            name: "app".into(),
        };
        let cases = [
            ("ecr.test:5000/team/app", false, ecr.clone()),
            ("ecr.test:5000/team/app", true, ecr),
            ("public.test/acme/app", true, public(Some("http://standin"))),
            ("public.test/acme/app", false, ListingApi::Registry),
            ("public.ecr.aws/acme/app", true, public(None)),
            ("public.ecr.aws/acme/app", false, ListingApi::Registry),
            ("quay.test/acme/app", true, ListingApi::Registry),
            ("quay.io/acme/app", false, ListingApi::Registry),
        ];
        for (repository, target, expected) in cases {
            assert_eq!(
                listing_api(&file, &repo(repository), target, false),
                expected,
                "{repository}"
            );
        }
        assert!(matches!(
            listing_api(
                &file,
                &repo("123456789012.dkr.ecr.us-east-1.amazonaws.com/app"),
                false,
                false
            ),
            ListingApi::Ecr { endpoint: None, .. }
        ));
    }
}
