//! How the operator authenticates to a registry, shared by sources and targets
//! of both kinds.
//!
//! Three ways exist: the operator's own AWS identity for Amazon ECR, the same
//! identity for ECR Public, or a `kubernetes.io/dockerconfigjson` Secret in the
//! object's namespace (Quay robot accounts, any other OCI registry). When no
//! credentials are given the controller infers them from the registry host:
//! `*.dkr.ecr.*.amazonaws.com` means `ecr`, `public.ecr.aws` means `ecrPublic`,
//! anything else is pulled anonymously (and pushing to it fails).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules;

/// Credentials for one registry. Set exactly one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one_of(&["ecr", "ecrPublic", "secretRef"]))]
pub struct RegistryCredentials {
    /// Use the operator's AWS identity (IRSA or EKS Pod Identity) to get an
    /// Amazon ECR authorization token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecr: Option<EcrCredentials>,
    /// Use the operator's AWS identity to get an ECR Public authorization token
    /// (ECR Public's API lives in us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecr_public: Option<EcrPublicCredentials>,
    /// Use the `.dockerconfigjson` of a Secret of type
    /// `kubernetes.io/dockerconfigjson` in the object's namespace, e.g. a Quay
    /// robot account created with `kubectl create secret docker-registry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretReference>,
}

/// The operator's AWS identity against Amazon ECR (private).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcrCredentials {
    /// AWS region of the registry. Default: taken from the registry host
    /// `<account>.dkr.ecr.<region>.amazonaws.com`. Set it when the registry is
    /// reached under another name (a pull-through proxy or a VPC endpoint alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub region: Option<String>,
    /// AWS account id of the registry (12 digits). Default: taken from the
    /// registry host, like region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9]{12}$"))]
    pub registry_id: Option<String>,
}

/// The operator's AWS identity against ECR Public. No settings yet: the
/// repository and its registry follow from the target's repository reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EcrPublicCredentials {}

/// A Secret in the same namespace as the object that refers to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
