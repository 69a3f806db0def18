//! What one `promote` run will do, decided before any request: pure, from the
//! validated ImagePromotion, the configuration file and the public key given.
//!
//! The plan pins nothing yet (the tag is resolved later); it settles what
//! the object leaves to the cluster: which ECR registry and API endpoint the
//! source is inspected through, whose credentials reach each registry host
//! ([`HostAccess`]: the object's own Secret first, else the configuration
//! file's entry, else the operator's AWS identity for ECR and ECR Public
//! hosts), which ECR Public repositories may be created, and the copy the
//! engine is asked for. Every use of the operator's credentials (its
//! configuration entries, its AWS identity, `createRepository`) is held to
//! the tenancy rules for that exact repository ([`tenancy`]).

use std::fmt;

use crate::api::{
    EcrPublicRepository, ImagePromotion, RegistryCredentials, VerificationPolicy, reasons,
};
use crate::aws::{EcrRegistry, parse_ecr_host, resolve_ecr_registry};
use crate::config::{Config, RegistryConfig};
use crate::registry::copy::MountSources;
use crate::registry::{CopyOptions, ImageReference, Platforms, Repository, Target};
use crate::tenancy::Use;
use crate::verify::cosign::{PublicKey, Verifier};
use crate::verify::keyless::{Identity, KeylessVerifier, TrustedRoot};

pub use crate::aws::ECR_PUBLIC_HOST;

/// Why the object cannot be run as it is: its reason (`InvalidSpec`, or
/// `CredentialsNotAllowed` / `RepositoryNotAllowed` for what the operator's
/// configuration does not allow) and a message that says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// PascalCase, from [`crate::api::reasons`].
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

impl PlanError {
    pub(crate) fn invalid(message: String) -> Self {
        Self {
            reason: reasons::INVALID_SPEC,
            message,
        }
    }

    fn credentials_not_allowed(message: String) -> Self {
        Self {
            reason: reasons::CREDENTIALS_NOT_ALLOWED,
            message,
        }
    }

    /// True for refusals by the operator's configuration (the object itself
    /// is valid).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self.reason,
            reasons::INVALID_SPEC | reasons::INVALID_TAG_FILTER
        )
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PlanError {}

/// The source image and where its ECR facts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePlan {
    /// The image as the object names it (tag, digest or both).
    pub image: ImageReference,
    /// The digest the object requires, from `@digest` or `spec.source.digest`.
    pub digest: Option<String>,
    /// The ECR registry (account and region) of the source repository.
    pub ecr: EcrRegistry,
    /// The ECR API endpoint, from the configuration file (default: AWS's).
    pub ecr_endpoint: Option<String>,
}

/// An ECR Public repository to create when it is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicRepositoryPlan {
    /// The registry alias the target names (`acme` in
    /// `public.ecr.aws/acme/app`): the repository is created only when it
    /// is one of the operator's own aliases.
    pub alias: String,
    /// The repository name in the ECR Public API (the path after the alias).
    pub name: String,
    /// Its gallery catalog data.
    pub catalog: EcrPublicRepository,
    /// The ECR Public API endpoint, from the configuration file (default: AWS's).
    pub endpoint: Option<String>,
}

/// One target of the promotion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetPlan {
    /// `spec.targets[].name`.
    pub name: String,
    /// What the engine copies to.
    pub target: Target,
    /// The repository to create first, for `createRepository`.
    pub create: Option<PublicRepositoryPlan>,
}

/// Credentials for a registry the configuration file does not list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InferredCredentials {
    /// `ecr:GetAuthorizationToken` for this registry.
    Ecr {
        /// `host[:port]`.
        host: String,
        /// The account and region.
        registry: EcrRegistry,
    },
    /// `ecr-public:GetAuthorizationToken`.
    EcrPublic {
        /// `host[:port]`.
        host: String,
    },
}

/// The signature checks to make.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verifiers {
    /// For `spec.verify.signature`.
    pub object: Option<Verifier>,
    /// For the floor's `signature.publicKeys`.
    pub floor: Option<Verifier>,
}

impl Verifiers {
    /// Whether any signature must be read.
    pub fn any(&self) -> bool {
        self.object.is_some() || self.floor.is_some()
    }
}

/// Everything one run does, decided up front.
#[derive(Clone, Debug)]
pub struct PromotionPlan {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.generation`, 0 for an object that was never stored.
    pub generation: i64,
    /// The source.
    pub source: SourcePlan,
    /// `spec.verify`.
    pub policy: VerificationPolicy,
    /// The signature checks.
    pub verifiers: Verifiers,
    /// The targets, in spec order.
    pub targets: Vec<TargetPlan>,
    /// `spec.copy` for the engine.
    pub options: CopyOptions,
    /// Token credentials for hosts the configuration file does not list.
    pub inferred: Vec<InferredCredentials>,
    /// dockerconfigjson Secrets to read for hosts the configuration file does
    /// not list ([`SecretAccess::Api`] only; the command line refuses them).
    pub secrets: Vec<SecretCredentials>,
}

/// Whether the run can read the object's Secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretAccess {
    /// The command line: no Secrets; `secretRef` needs a configuration entry.
    None,
    /// The controller: `secretRef` Secrets are read through the API.
    Api,
}

/// A registry host reached with a dockerconfigjson Secret of the object's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretCredentials {
    /// `host[:port]`.
    pub host: String,
    /// The Secret's name.
    pub secret: String,
}

/// The key material an object's `spec.verify.signature` refers to, read by
/// the caller: the public key of `publicKey`, the trusted root of `keyless`.
#[derive(Clone, Debug, Default)]
pub struct SignatureMaterial {
    /// The PEM key `publicKey.secretRef` names (or `--public-key`).
    pub public_key: Option<PublicKey>,
    /// The root `keyless.trustedRoot` names; `None`: the floor's default.
    pub trusted_root: Option<std::sync::Arc<TrustedRoot>>,
}

impl From<Option<PublicKey>> for SignatureMaterial {
    fn from(public_key: Option<PublicKey>) -> Self {
        Self {
            public_key,
            trusted_root: None,
        }
    }
}

/// Plans the run of a validated `promotion` with `config`; `public_key` is
/// what `--public-key` gave for `spec.verify.signature.publicKey`.
pub fn plan(
    promotion: &ImagePromotion,
    config: &Config,
    public_key: impl Into<SignatureMaterial>,
) -> Result<PromotionPlan, PlanError> {
    plan_with(promotion, config, public_key, SecretAccess::None)
}

/// [`plan`], with `access` saying whether `secretRef` Secrets can be read
/// (the controller) or need a configuration entry (the command line).
pub fn plan_with(
    promotion: &ImagePromotion,
    config: &Config,
    public_key: impl Into<SignatureMaterial>,
    access: SecretAccess,
) -> Result<PromotionPlan, PlanError> {
    let material = public_key.into();
    let spec = &promotion.spec;
    let image = ImageReference::parse_image(&spec.source.image)
        .map_err(|e| PlanError::invalid(format!("spec.source.image: {e}")))?;
    let source = source(promotion, config, image)?;
    let source_tags: Vec<String> = source.image.tag.iter().cloned().collect();
    let targets = spec
        .targets
        .iter()
        .map(|t| {
            let repository: Repository = t.repository.parse().map_err(|e| {
                PlanError::invalid(format!("spec.targets[{}].repository: {e}", t.name))
            })?;
            let create = match &t.create_repository {
                Some(catalog) => Some(public_repository(&t.name, &repository, catalog, config)?),
                None => None,
            };
            Ok(TargetPlan {
                name: t.name.clone(),
                target: Target {
                    repository,
                    tags: t.tags.clone().unwrap_or_else(|| source_tags.clone()),
                    floating: t.floating_tags.clone(),
                },
                create,
            })
        })
        .collect::<Result<Vec<_>, PlanError>>()?;
    let mut reach = Reach::default();
    let source_host = &source.image.repository.registry;
    let source_ecr = source.ecr.clone();
    let implied = move || match spec.source.credentials.as_ref().map(kind_of) {
        Some(Kind::EcrPublic) => Ok(Kind::EcrPublic),
        _ => Ok(Kind::Ecr(source_ecr)),
    };
    let chosen = choose(
        config,
        access,
        "spec.source.image",
        source_host,
        spec.source.credentials.as_ref(),
        implied,
    )?;
    reach.add("spec.source", source_host, chosen)?;
    for (spec_target, planned) in spec.targets.iter().zip(&targets) {
        let field = format!("spec.targets[{}]", planned.name);
        let host = &planned.target.repository.registry;
        reach_host(
            config,
            access,
            &field,
            host,
            spec_target.credentials.as_ref(),
            &mut reach,
        )?;
    }
    let target_uses: Vec<TargetUse<'_>> = targets
        .iter()
        .map(|t| {
            TargetUse::new(
                &t.name,
                &t.target.repository,
                &reach,
                t.create.is_some(),
                false,
            )
        })
        .collect();
    tenancy(
        promotion.metadata.namespace.as_deref(),
        config,
        // The source is always inspected with the operator's AWS identity.
        Some((&source.image.repository, "spec.source.image")),
        &target_uses,
    )?;
    let (inferred, secrets) = (reach.inferred(), reach.secrets());
    Ok(PromotionPlan {
        name: promotion.metadata.name.clone().unwrap_or_default(),
        generation: promotion.metadata.generation.unwrap_or(0),
        verifiers: verifiers(&spec.verify, config, material)?,
        policy: spec.verify.clone(),
        source,
        targets,
        options: CopyOptions {
            mount_from: promotion
                .metadata
                .namespace
                .as_deref()
                .and_then(|namespace| config.tenancy().writable(namespace))
                .map_or(MountSources::Any, MountSources::Matching),
            ..copy_options(&spec.copy)
        },
        inferred,
        secrets,
    })
}

/// Whose credentials reach one registry host for an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostAccess {
    /// The configuration file's entry for the host: the operator's.
    Configured,
    /// A token from the operator's AWS identity.
    Inferred(InferredCredentials),
    /// A dockerconfigjson Secret of the object's namespace (its name).
    Secret(String),
    /// No credentials at all.
    Anonymous,
}

impl HostAccess {
    /// Whether requests to the host are the operator's to answer for:
    /// everything but the object's own Secret. Anonymous requests count too,
    /// since they come from where the operator stands (a registry inside the
    /// cluster's network may accept them from it and no one else).
    pub fn is_operators(&self) -> bool {
        !matches!(self, Self::Secret(_))
    }

    fn describe(&self) -> String {
        match self {
            Self::Configured => "the operator's configured credentials".into(),
            Self::Inferred(InferredCredentials::Ecr { registry, .. }) => format!(
                "the operator's ECR token for registry {} in {}",
                registry.registry_id, registry.region
            ),
            Self::Inferred(InferredCredentials::EcrPublic { .. }) => {
                "the operator's ECR Public token".into()
            }
            Self::Secret(name) => format!("Secret {name:?}"),
            Self::Anonymous => "no credentials".into(),
        }
    }
}

/// How an object reaches each registry host it names: one [`HostAccess`]
/// per host, whatever order its fields come in (the engine has one client
/// per host). A use that asks for no credentials takes the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    hosts: Vec<(String, HostAccess)>,
}

impl Reach {
    /// Records `access` for `host`; another access for a host already
    /// reached is refused (one object uses one set of credentials per host).
    pub(crate) fn add(
        &mut self,
        field: &str,
        host: &str,
        access: HostAccess,
    ) -> Result<(), PlanError> {
        match self.hosts.iter_mut().find(|(h, _)| h == host) {
            None => {
                self.hosts.push((host.to_string(), access));
                Ok(())
            }
            Some((_, existing)) if *existing == access || access == HostAccess::Anonymous => Ok(()),
            // What asked for no credentials is reached with the host's
            // (and judged by them: the tenancy check reads the final access).
            Some((_, existing)) if *existing == HostAccess::Anonymous => {
                *existing = access;
                Ok(())
            }
            Some((_, existing)) => Err(PlanError::invalid(format!(
                "{field}.credentials: {host} is reached with {} elsewhere in this object, and \
                 here with {}; one object uses one set of credentials per registry host",
                existing.describe(),
                access.describe()
            ))),
        }
    }

    /// How `host` is reached, when the object names it.
    pub fn access(&self, host: &str) -> Option<&HostAccess> {
        self.hosts.iter().find(|(h, _)| h == host).map(|(_, a)| a)
    }

    /// The operator's token credentials, by host, in the object's order.
    pub fn inferred(&self) -> Vec<InferredCredentials> {
        self.hosts
            .iter()
            .filter_map(|(_, a)| match a {
                HostAccess::Inferred(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    /// The object's own Secrets, by host.
    pub fn secrets(&self) -> Vec<SecretCredentials> {
        self.hosts
            .iter()
            .filter_map(|(host, a)| match a {
                HostAccess::Secret(secret) => Some(SecretCredentials {
                    host: host.clone(),
                    secret: secret.clone(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// Records how the object reaches `host` for a target-like use (written to,
/// or a mirror's source), with [`choose`].
pub(crate) fn reach_host(
    config: &Config,
    access: SecretAccess,
    field: &str,
    host: &str,
    credentials: Option<&RegistryCredentials>,
    reach: &mut Reach,
) -> Result<(), PlanError> {
    let chosen = choose(config, access, field, host, credentials, || {
        target_credentials(credentials, host)
            .map_err(|e| PlanError::invalid(format!("{field}.{}", e.message)))
    })?;
    reach.add(field, host, chosen)
}

/// Whose credentials reach `host` (pure). The object's own
/// `credentials.secretRef` comes first: a Secret the object names is always
/// the one used, on a host the configuration declares too, so a wrong or
/// missing Secret fails instead of quietly writing with the operator's
/// credentials (the command line cannot read Secrets: there the
/// configuration's entry stands in for it). Otherwise the configuration
/// file's entry when it lists the host, else what the object's credentials
/// or the host imply (`implied`): the operator's AWS identity only for ECR
/// and ECR Public hosts, anonymous otherwise.
pub(crate) fn choose(
    config: &Config,
    access: SecretAccess,
    field: &str,
    host: &str,
    credentials: Option<&RegistryCredentials>,
    implied: impl FnOnce() -> Result<Kind, PlanError>,
) -> Result<HostAccess, PlanError> {
    let secret = credentials
        .and_then(|c| c.secret_ref.as_ref())
        .map(|s| s.name.clone());
    let configured = entry(config, host).is_some();
    match (secret, access) {
        (Some(secret), SecretAccess::Api) => return Ok(HostAccess::Secret(secret)),
        (Some(secret), SecretAccess::None) if !configured => {
            let field = field.trim_end_matches(".image");
            return Err(no_secrets(field, &secret, host));
        }
        _ => {}
    }
    if configured {
        return Ok(HostAccess::Configured);
    }
    Ok(match infer(field, host, implied()?)? {
        Some(inferred) => HostAccess::Inferred(inferred),
        None => HostAccess::Anonymous,
    })
}

/// One target repository and whether anything done to it uses the
/// operator's credentials: the host's access, `createRepository` (always the
/// operator's AWS identity), or a listing through the operator's AWS API.
#[derive(Clone, Debug)]
pub(crate) struct TargetUse<'a> {
    pub field: String,
    pub repository: &'a Repository,
    pub operators: bool,
}

impl<'a> TargetUse<'a> {
    pub(crate) fn new(
        name: &str,
        repository: &'a Repository,
        reach: &Reach,
        create: bool,
        api_listing: bool,
    ) -> Self {
        let by_host = reach
            .access(&repository.registry)
            .is_some_and(HostAccess::is_operators);
        let field = if create && !by_host {
            // Written with the object's own credentials, but created with
            // the operator's AWS identity: say so in a refusal.
            format!("spec.targets[{name}].createRepository (it uses the operator's AWS identity)")
        } else {
            format!("spec.targets[{name}].repository")
        };
        Self {
            field,
            repository,
            operators: by_host || create || api_listing,
        }
    }
}

impl InferredCredentials {
    /// The registry host these credentials are for.
    pub fn host(&self) -> &str {
        match self {
            Self::Ecr { host, .. } | Self::EcrPublic { host } => host,
        }
    }
}

/// The configuration file's entry for `host`.
fn entry<'a>(config: &'a Config, host: &str) -> Option<&'a RegistryConfig> {
    config.registries.iter().find(|r| r.host == host)
}

fn source(
    promotion: &ImagePromotion,
    config: &Config,
    image: ImageReference,
) -> Result<SourcePlan, PlanError> {
    let spec = &promotion.spec.source;
    let host = image.repository.registry.clone();
    let explicit = spec.credentials.as_ref().and_then(|c| c.ecr.as_ref());
    let configured = entry(config, &host).and_then(|r| r.auth.ecr.as_ref());
    let region = explicit
        .and_then(|e| e.region.as_deref())
        .or(configured.and_then(|e| e.region.as_deref()));
    let registry_id = explicit
        .and_then(|e| e.registry_id.as_deref())
        .or(configured.and_then(|e| e.registry_id.as_deref()));
    let ecr = resolve_ecr_registry(&host, region, registry_id).map_err(|e| {
        PlanError::invalid(format!(
            "spec.source.image: {e} (verification reads the source's ECR repository: set \
             spec.source.credentials.ecr.region and registryId, or declare {host} with \
             auth.ecr in the configuration file)"
        ))
    })?;
    let digest = image
        .digest
        .as_ref()
        .map(ToString::to_string)
        .or_else(|| spec.digest.clone());
    Ok(SourcePlan {
        image,
        digest,
        ecr,
        ecr_endpoint: configured.and_then(|e| e.endpoint_url.clone()),
    })
}

pub(crate) fn public_repository(
    target: &str,
    repository: &Repository,
    catalog: &EcrPublicRepository,
    config: &Config,
) -> Result<PublicRepositoryPlan, PlanError> {
    let (alias, name) = repository.name.split_once('/').ok_or_else(|| {
        PlanError::invalid(format!(
            "spec.targets[{target}].repository: {repository} has no registry alias; ECR Public \
             repositories are <registry>/<alias>/<name>, e.g. public.ecr.aws/acme/app"
        ))
    })?;
    let endpoint = entry(config, &repository.registry)
        .and_then(|r| r.auth.ecr_public.as_ref())
        .and_then(|p| p.endpoint_url.clone());
    Ok(PublicRepositoryPlan {
        alias: alias.to_string(),
        name: name.to_string(),
        catalog: catalog.clone(),
        endpoint,
    })
}

/// Which credentials member is set.
pub(crate) enum Kind {
    Ecr(EcrRegistry),
    EcrPublic,
    /// Chosen before these are asked for ([`choose`]).
    SecretRef,
    Anonymous,
}

fn kind_of(credentials: &RegistryCredentials) -> Kind {
    match (
        &credentials.ecr,
        &credentials.ecr_public,
        &credentials.secret_ref,
    ) {
        (_, _, Some(_)) => Kind::SecretRef,
        (_, Some(_), _) => Kind::EcrPublic,
        _ => Kind::Anonymous,
    }
}

fn target_credentials(
    credentials: Option<&RegistryCredentials>,
    host: &str,
) -> Result<Kind, PlanError> {
    if let Some(ecr) = credentials.and_then(|c| c.ecr.as_ref()) {
        return resolve_ecr_registry(host, ecr.region.as_deref(), ecr.registry_id.as_deref())
            .map(Kind::Ecr)
            .map_err(|e| PlanError::invalid(format!("credentials.ecr: {e}")));
    }
    match credentials.map(kind_of) {
        Some(kind) => Ok(kind),
        None if host == ECR_PUBLIC_HOST => Ok(Kind::EcrPublic),
        None => Ok(parse_ecr_host(host).map_or(Kind::Anonymous, Kind::Ecr)),
    }
}

/// The operator's AWS identity for `host`, where it may go: an ECR token
/// only to an ECR host, an ECR Public token only to ECR Public. Hosts the
/// configuration file declares never reach here (their entry decides).
fn infer(field: &str, host: &str, kind: Kind) -> Result<Option<InferredCredentials>, PlanError> {
    let owned = host.to_string();
    match kind {
        Kind::Ecr(registry) if parse_ecr_host(host).is_some() => {
            Ok(Some(InferredCredentials::Ecr {
                host: owned,
                registry,
            }))
        }
        Kind::Ecr(registry) => Err(PlanError::credentials_not_allowed(format!(
            "{field}: {host} is not an Amazon ECR host (<account>.dkr.ecr.<region>.amazonaws.com) \
             and the operator's configuration does not declare it, so the operator's AWS \
             identity is not sent there; if {host} is an ECR registry under another name, an \
             administrator declares it in the configuration file: registries: [{{host: \
             \"{host}\", kind: ecr, auth: {{ecr: {{registryId: \"{}\", region: {}}}}}}}]",
            registry.registry_id, registry.region
        ))),
        Kind::EcrPublic if host == ECR_PUBLIC_HOST => {
            Ok(Some(InferredCredentials::EcrPublic { host: owned }))
        }
        Kind::EcrPublic => Err(PlanError::credentials_not_allowed(format!(
            "{field}: {host} is not ECR Public ({ECR_PUBLIC_HOST}) and the operator's \
             configuration does not declare it, so the operator's ECR Public identity is not \
             sent there; if {host} is ECR Public under another name, an administrator declares \
             it in the configuration file: registries: [{{host: \"{host}\", kind: ecrPublic, \
             auth: {{ecrPublic: {{}}}}}}]"
        ))),
        Kind::SecretRef | Kind::Anonymous => Ok(None),
    }
}

/// The operator's tenancy rules, for an object that names its namespace:
/// its source (None when nothing reads it with the operator's credentials)
/// and its targets. Every target something is done to with the operator's
/// credentials is checked for that exact repository; the rest are written
/// with the object's own Secret or anonymously, the namespace's business.
pub(crate) fn tenancy(
    namespace: Option<&str>,
    config: &Config,
    source: Option<(&Repository, &str)>,
    targets: &[TargetUse<'_>],
) -> Result<(), PlanError> {
    let Some(namespace) = namespace else {
        return Ok(());
    };
    let rules = config.tenancy();
    let refused = |e: crate::tenancy::NotAllowed| PlanError {
        reason: reasons::REPOSITORY_NOT_ALLOWED,
        message: e.message,
    };
    if let Some((source, field)) = source {
        rules
            .check(namespace, Use::Source, source, field)
            .map_err(refused)?;
    }
    for target in targets.iter().filter(|t| t.operators) {
        rules
            .check(namespace, Use::Target, target.repository, &target.field)
            .map_err(refused)?;
    }
    Ok(())
}

fn no_secrets(field: &str, secret: &str, host: &str) -> PlanError {
    PlanError::invalid(format!(
        "{field}.credentials.secretRef names Secret {secret:?}, which the command line cannot \
         read: declare registry {host} with its credentials (auth.dockerConfig or auth.basic) \
         in the configuration file given with --config"
    ))
}

pub(crate) fn verifiers(
    policy: &VerificationPolicy,
    config: &Config,
    material: SignatureMaterial,
) -> Result<Verifiers, PlanError> {
    let signature = policy.signature.as_ref();
    let object = match (signature, material.public_key) {
        (Some(s), _) if s.keyless.is_some() => Some(keyless_verifier(
            s.keyless.as_ref().expect("checked"),
            config,
            material.trusted_root,
        )?),
        (Some(_), Some(key)) => Some(Verifier::PublicKeys(vec![key])),
        (Some(s), None) => {
            let secret = s.public_key.as_ref().map(|k| &k.secret_ref);
            return Err(PlanError::invalid(format!(
                "spec.verify.signature.publicKey names Secret {:?} (key {:?}), which the command \
                 line cannot read: give the PEM public key with --public-key FILE",
                secret.map(|s| s.name.as_str()).unwrap_or_default(),
                secret.map(|s| s.key.as_str()).unwrap_or_default(),
            )));
        }
        (None, Some(_)) => {
            return Err(PlanError::invalid(
                "--public-key is given but spec.verify.signature is not set, so no signature \
                 would be checked: add spec.verify.signature.publicKey, or leave out --public-key"
                    .into(),
            ));
        }
        (None, None) => None,
    };
    let floor = config
        .verify
        .signature
        .verifier()
        .map_err(|e| PlanError::invalid(format!("{e} (in the configuration file)")))?;
    Ok(Verifiers { object, floor })
}

/// The verifier of `spec.verify.signature.keyless`: its identity (a bad
/// pattern is an invalid spec) under its own root or the floor's default.
fn keyless_verifier(
    spec: &crate::api::KeylessSignature,
    config: &Config,
    own_root: Option<std::sync::Arc<TrustedRoot>>,
) -> Result<Verifier, PlanError> {
    let identity = Identity::from_spec(spec)
        .map_err(|e| PlanError::invalid(format!("spec.verify.signature.keyless: {e}")))?;
    let root = match (&spec.trusted_root, own_root) {
        (_, Some(root)) => root,
        (Some(reference), None) => {
            let (kind, key) = match (&reference.secret_ref, &reference.config_map_ref) {
                (Some(key), _) => ("Secret", key),
                (None, Some(key)) => ("ConfigMap", key),
                (None, None) => {
                    return Err(PlanError::invalid(
                        "spec.verify.signature.keyless.trustedRoot: set secretRef or configMapRef"
                            .into(),
                    ));
                }
            };
            return Err(PlanError::invalid(format!(
                "spec.verify.signature.keyless.trustedRoot names {kind} {:?} (key {:?}), which \
                 the command line cannot read: leave trustedRoot out and name the root with \
                 verify.signature.trustedRoot in the configuration file",
                key.name, key.key
            )));
        }
        (None, None) => config.verify.signature.default_root().ok_or_else(|| {
            PlanError::invalid(
                "spec.verify.signature.keyless names no trustedRoot and the operator's \
                 configuration has no default (verify.signature.trustedRoot): add \
                 keyless.trustedRoot with a Secret or ConfigMap holding Sigstore's \
                 trusted_root.json"
                    .into(),
            )
        })?,
    };
    Ok(Verifier::Keyless(KeylessVerifier {
        identities: vec![identity],
        root,
    }))
}

fn copy_options(copy: &crate::api::CopyOptions) -> CopyOptions {
    CopyOptions {
        platforms: if copy.platforms.is_empty() {
            Platforms::All
        } else {
            Platforms::Only(copy.platforms.clone())
        },
        signatures: copy.signatures,
        referrers: copy.referrers,
        ..CopyOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/fixtures/cosign/key-a.pub");

    fn promotion(yaml: &str) -> ImagePromotion {
        crate::cli::promote::input::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn gold() -> ImagePromotion {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/imagepromotion-gold.yaml"
        );
        promotion(&std::fs::read_to_string(path).unwrap())
    }

    fn config(yaml: &str) -> Config {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn key() -> Option<PublicKey> {
        Some(PublicKey::from_pem(KEY.as_bytes()).unwrap())
    }

    const QUAY: &str = "registries: [{host: quay.io, auth: {dockerConfig: {path: /quay.json}}}]";

    #[test]
    fn the_gold_example_plans_both_targets_with_inferred_aws_credentials() {
        let plan = plan(&gold(), &config(QUAY), key()).unwrap();
        assert_eq!(plan.name, "postgres-17.2.1");
        assert_eq!(plan.generation, 0);
        assert_eq!(plan.source.image.tag.as_deref(), Some("17.2.1"));
        assert_eq!(plan.source.digest, None);
        assert_eq!(
            (
                plan.source.ecr.registry_id.as_str(),
                plan.source.ecr.region.as_str()
            ),
            ("123456789012", "us-east-1")
        );
        assert_eq!(plan.source.ecr_endpoint, None);
        let [public, quay] = &plan.targets[..] else {
            panic!("two targets")
        };
        assert_eq!(
            public.target.repository.to_string(),
            "public.ecr.aws/acme/postgres"
        );
        assert_eq!(public.target.tags, ["17.2.1", "17.2", "17", "latest"]);
        assert_eq!(public.target.floating, ["17.2", "17", "latest"]);
        let create = public.create.as_ref().unwrap();
        assert_eq!(create.name, "postgres");
        assert_eq!(create.endpoint, None);
        assert!(quay.create.is_none());
        assert_eq!(
            plan.inferred,
            [
                InferredCredentials::Ecr {
                    host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
                    registry: plan.source.ecr.clone()
                },
                InferredCredentials::EcrPublic {
                    host: "public.ecr.aws".into()
                },
            ],
            "quay.io comes from the file; the AWS hosts from the AWS identity"
        );
        assert!(matches!(
            plan.verifiers.object,
            Some(Verifier::PublicKeys(_))
        ));
        assert_eq!(plan.verifiers.floor, None);
        assert!(plan.options.signatures && plan.options.referrers);
        assert_eq!(plan.options.platforms, Platforms::All);
    }

    #[test]
    fn the_configuration_file_supplies_what_a_stand_in_needs() {
        let yaml = r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app, generation: 4}
spec:
  source:
    image: 127.0.0.1:5000/team/app:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  copy: {signatures: false, platforms: [linux/amd64]}
  targets:
    - name: public
      repository: 127.0.0.1:6000/alias/team/app
      tags: ["1.0"]
      credentials: {ecrPublic: {}}
      createRepository: {description: The app}
"#;
        let config = config(
            r#"
registries:
  - host: 127.0.0.1:5000
    auth: {ecr: {registryId: "123456789012", region: eu-west-1, endpointUrl: "http://moto"}}
  - host: 127.0.0.1:6000
    auth: {ecrPublic: {endpointUrl: "http://standin"}}
"#,
        );
        let plan = plan(&promotion(yaml), &config, None).unwrap();
        assert_eq!(plan.generation, 4);
        assert_eq!(plan.source.ecr.region, "eu-west-1");
        assert_eq!(plan.source.ecr_endpoint.as_deref(), Some("http://moto"));
        assert!(
            plan.source
                .digest
                .as_deref()
                .unwrap()
                .starts_with("sha256:0123")
        );
        let create = plan.targets[0].create.as_ref().unwrap();
        assert_eq!(create.name, "team/app");
        assert_eq!(create.endpoint.as_deref(), Some("http://standin"));
        assert!(plan.inferred.is_empty());
        assert!(!plan.options.signatures);
        assert_eq!(
            plan.options.platforms,
            Platforms::Only(vec!["linux/amd64".into()])
        );
        assert!(!plan.verifiers.any());
    }

    #[test]
    fn what_the_command_line_cannot_do_is_refused_with_what_to_do() {
        let no_signature = gold_without_signature();
        let cases = [
            (plan(&gold(), &config("{}"), key()), "Secret \"quay-robot\""),
            (
                plan(&gold(), &config(QUAY), None),
                "give the PEM public key with --public-key",
            ),
            (
                plan(&no_signature, &config(QUAY), key()),
                "leave out --public-key",
            ),
            (
                plan(
                    &promotion(&GOLD_ON_LOOPBACK.replace("SOURCE", "127.0.0.1:5000/acme/app:1")),
                    &config(QUAY),
                    None,
                ),
                "declare 127.0.0.1:5000 with auth.ecr",
            ),
        ];
        for (result, expected) in cases {
            let message = result.unwrap_err().to_string();
            assert!(message.contains(expected), "{expected:?} not in {message}");
        }
    }

    const GOLD_ON_LOOPBACK: &str = r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app}
spec:
  source: {image: SOURCE}
  targets: [{name: quay, repository: quay.io/acme/app}]
"#;

    fn gold_without_signature() -> ImagePromotion {
        let mut promotion = gold();
        promotion.spec.verify.signature = None;
        promotion
    }

    const ON_EVIL: &str = r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app}
spec:
  source: {image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1"}
  targets: [{name: t, repository: evil.io/acme/app, CREDENTIALS}]
"#;

    #[test]
    fn the_operators_aws_identity_goes_only_to_aws_hosts_or_declared_ones() {
        let on_evil = |credentials: &str| promotion(&ON_EVIL.replace("CREDENTIALS", credentials));
        let cases = [
            (
                on_evil("credentials: {ecr: {registryId: '123456789012', region: us-east-1}}"),
                "{host: \"evil.io\", kind: ecr, auth: {ecr: {registryId: \"123456789012\", region: us-east-1}}}",
            ),
            (
                on_evil("credentials: {ecrPublic: {}}"),
                "{host: \"evil.io\", kind: ecrPublic, auth: {ecrPublic: {}}}",
            ),
            (
                promotion(&GOLD_ON_LOOPBACK.replace(
                    "{image: SOURCE}",
                    "{image: 'evil.io/acme/app:1', credentials: {ecr: {registryId: '123456789012', region: us-east-1}}}",
                )),
                "spec.source.image: evil.io is not an Amazon ECR host",
            ),
        ];
        for (object, expected) in cases {
            let err = plan(&object, &config("{}"), None).unwrap_err();
            assert_eq!(err.reason, "CredentialsNotAllowed", "{err}");
            assert!(err.is_refusal());
            assert!(err.message.contains(expected), "{expected:?} not in {err}");
        }
        // Declared by the operator's configuration: its entry decides.
        let declared =
            config("registries: [{host: evil.io, kind: ecrPublic, auth: {ecrPublic: {}}}]");
        let planned = plan(&on_evil("credentials: {ecrPublic: {}}"), &declared, None).unwrap();
        assert_eq!(
            planned.inferred,
            [InferredCredentials::Ecr {
                host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
                registry: planned.source.ecr.clone()
            }]
        );
        // No credentials asked for at an unknown host: anonymous, nothing inferred.
        let anonymous = plan(&on_evil("tags: ['1']"), &config("{}"), None).unwrap();
        assert_eq!(anonymous.inferred.len(), 1, "only the source's ECR host");
    }

    #[test]
    fn one_host_gets_one_set_of_credentials() {
        let yaml = ON_EVIL.replace(
            "targets: [{name: t, repository: evil.io/acme/app, CREDENTIALS}]",
            "targets:\n    - {name: a, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/a}\n    - {name: b, repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/b, credentials: {ecr: {registryId: '210987654321'}}}",
        );
        let err = plan(&promotion(&yaml), &config("{}"), None).unwrap_err();
        assert_eq!(err.reason, "InvalidSpec");
        assert!(err.message.contains("spec.targets[b].credentials"), "{err}");
    }

    #[test]
    fn tenancy_rules_apply_to_objects_that_name_their_namespace() {
        let rules = config(
            r#"
tenancy:
  - namespaces: [team-a]
    sources: [123456789012.dkr.ecr.us-east-1.amazonaws.com/team]
    targets: [evil.io/acme/*]
"#,
        );
        let object = |namespace: &str, target: &str| {
            let mut object = promotion(
                &ON_EVIL
                    .replace("CREDENTIALS", "tags: ['1']")
                    .replace("evil.io/acme/app", target),
            );
            if !namespace.is_empty() {
                object.metadata.namespace = Some(namespace.into());
            }
            object
        };
        let planned = plan(&object("team-a", "evil.io/acme/app"), &rules, None).unwrap();
        assert_eq!(
            planned.options.mount_from,
            MountSources::Matching(vec!["evil.io/acme/*".into()]),
            "mounts only from what the namespace may write"
        );
        let unnamed = plan(&object("", "evil.io/other/app"), &rules, None).unwrap();
        assert_eq!(
            unnamed.options.mount_from,
            MountSources::Any,
            "no namespace, no tenancy"
        );
        let cases = [
            (
                object("team-a", "evil.io/other/app"),
                "spec.targets[t].repository: namespace team-a may not write",
            ),
            (
                object("team-b", "evil.io/acme/app"),
                "spec.source.image: namespace team-b may not promote from",
            ),
        ];
        for (object, expected) in cases {
            let err = plan(&object, &rules, None).unwrap_err();
            assert_eq!(err.reason, "RepositoryNotAllowed");
            assert!(err.message.contains(expected), "{expected:?} not in {err}");
        }
        // Written with the namespace's own Secret (in the cluster): not the
        // operator's credentials, so not limited by the rules.
        let mut own = object("team-a", "evil.io/other/app");
        own.spec.targets[0].credentials = Some(RegistryCredentials {
            secret_ref: Some(crate::api::LocalSecretReference {
                name: "robot".into(),
            }),
            ..RegistryCredentials::default()
        });
        let planned = plan_with(&own, &rules, None, SecretAccess::Api).unwrap();
        assert_eq!(planned.secrets[0].host, "evil.io");
    }

    const TWO_ON_PUBLIC: &str = r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app, namespace: team-a}
spec:
  source: {image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1"}
  targets: [{name: replaced, repository: quay.io/replaced/app, tags: ["1"]}]
"#;

    fn team_a_rules() -> Config {
        config(
            r#"
registries: [{host: quay.io, auth: {dockerConfig: {path: /quay.json}}}]
tenancy:
  - namespaces: [team-a]
    sources: [123456789012.dkr.ecr.us-east-1.amazonaws.com/team]
    targets: [public.ecr.aws/acme/team-a-*]
"#,
        )
    }

    fn target(
        name: &str,
        repository: &str,
        secret: Option<&str>,
        create: bool,
    ) -> crate::api::PromotionTarget {
        let mut target: crate::api::PromotionTarget = serde_json::from_value(serde_json::json!({
            "name": name,
            "repository": repository,
            "tags": ["1"],
        }))
        .unwrap();
        target.credentials = secret.map(|name| RegistryCredentials {
            secret_ref: Some(crate::api::LocalSecretReference { name: name.into() }),
            ..RegistryCredentials::default()
        });
        if create {
            target.create_repository = Some(EcrPublicRepository {
                description: Some("not team-a's".into()),
                ..EcrPublicRepository::default()
            });
        }
        target
    }

    #[test]
    fn every_use_of_the_operators_credentials_is_inside_tenancy() {
        let rules = team_a_rules();
        let with = |targets: Vec<crate::api::PromotionTarget>| {
            let mut object = promotion(TWO_ON_PUBLIC);
            object.spec.targets = targets;
            plan_with(&object, &rules, None, SecretAccess::Api)
        };
        let elsewhere = "public.ecr.aws/acme/anything";
        let granted = "public.ecr.aws/acme/team-a-web";
        // (targets, the reason of the refusal, text it contains); None: planned.
        type Case = (
            Vec<crate::api::PromotionTarget>,
            Option<(&'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            // A junk Secret on the same host does not lend its exemption to a
            // target written (and created) with the operator's identity, in
            // either order.
            (
                vec![
                    target("x", elsewhere, None, true),
                    target("y", granted, Some("junk"), false),
                ],
                Some(("InvalidSpec", "one set of credentials per registry host")),
            ),
            (
                vec![
                    target("y", granted, Some("junk"), false),
                    target("x", elsewhere, None, true),
                ],
                Some(("InvalidSpec", "one set of credentials per registry host")),
            ),
            // createRepository always uses the operator's AWS identity, even
            // for a target written with the object's own Secret.
            (
                vec![target("x", elsewhere, Some("junk"), true)],
                Some(("RepositoryNotAllowed", "spec.targets[x].createRepository")),
            ),
            (
                vec![
                    target("x", elsewhere, Some("junk"), true),
                    target("y", granted, Some("junk"), false),
                ],
                Some((
                    "RepositoryNotAllowed",
                    "may not write with the operator's credentials to public.ecr.aws/acme/anything",
                )),
            ),
            (vec![target("x", granted, Some("junk"), true)], None),
            (vec![target("x", granted, None, true)], None),
            // Written with the object's own Secret, nothing of the operator's.
            (vec![target("x", elsewhere, Some("robot"), false)], None),
            (
                vec![target("x", elsewhere, None, false)],
                Some(("RepositoryNotAllowed", "spec.targets[x].repository")),
            ),
        ];
        for (i, (targets, expected)) in cases.into_iter().enumerate() {
            match (with(targets), expected) {
                (Ok(_), None) => {}
                (Err(err), Some((reason, text))) => {
                    assert_eq!(err.reason, reason, "case {i}: {err}");
                    assert!(
                        err.message.contains(text),
                        "case {i}: {text:?} not in {err}"
                    );
                }
                (result, expected) => panic!("case {i}: {result:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn the_objects_own_secret_wins_over_the_configuration() {
        let rules = team_a_rules();
        let mut object = promotion(TWO_ON_PUBLIC);
        object.spec.targets = vec![target(
            "quay",
            "quay.io/elsewhere/app",
            Some("wrong"),
            false,
        )];
        // In the cluster: the object's Secret, on a host the configuration
        // declares too, and tenancy does not limit it.
        let planned = plan_with(&object, &rules, None, SecretAccess::Api).unwrap();
        assert_eq!(
            planned.secrets,
            [SecretCredentials {
                host: "quay.io".into(),
                secret: "wrong".into()
            }]
        );
        // Without it, the operator's configured credentials, held to the rules.
        object.spec.targets[0].credentials = None;
        let err = plan_with(&object, &rules, None, SecretAccess::Api).unwrap_err();
        assert_eq!(err.reason, "RepositoryNotAllowed", "{err}");
        // The command line reads no Secrets: the configuration stands in.
        object.spec.targets[0].credentials = Some(RegistryCredentials {
            secret_ref: Some(crate::api::LocalSecretReference {
                name: "wrong".into(),
            }),
            ..RegistryCredentials::default()
        });
        object.metadata.namespace = None;
        let planned = plan(&object, &rules, None).unwrap();
        assert!(planned.secrets.is_empty());
    }

    #[test]
    fn one_host_one_access_whatever_the_order() {
        let mut reach = Reach::default();
        let public = || {
            HostAccess::Inferred(InferredCredentials::EcrPublic {
                host: "public.ecr.aws".into(),
            })
        };
        // (access, accepted, the host's access afterwards)
        let steps = [
            (HostAccess::Anonymous, true, HostAccess::Anonymous),
            (public(), true, public()),
            (HostAccess::Anonymous, true, public()),
            (public(), true, public()),
            (HostAccess::Secret("s".into()), false, public()),
            (HostAccess::Configured, false, public()),
        ];
        for (i, (access, accepted, after)) in steps.into_iter().enumerate() {
            assert_eq!(
                reach
                    .add("spec.targets[t]", "public.ecr.aws", access)
                    .is_ok(),
                accepted,
                "step {i}"
            );
            assert_eq!(reach.access("public.ecr.aws"), Some(&after), "step {i}");
        }
        assert_eq!(reach.inferred().len(), 1);
        assert!(reach.secrets().is_empty());
    }

    #[test]
    fn a_bad_floor_key_is_refused() {
        let config = config(&format!(
            "{QUAY}\nverify: {{signature: {{publicKeys: [garbage]}}}}"
        ));
        let err = plan(&gold_without_signature(), &config, None).unwrap_err();
        assert!(err.message.contains("verify.signature.publicKeys"), "{err}");
    }
}
