//! The IAM actions the operator's AWS identity needs, by what it is used for.
//!
//! One catalog, [`PERMISSIONS`], lists every action: the AWS SDK operations
//! the clients of this module send, the ECR actions the registry API maps
//! to (a pull is `ecr:BatchGetImage` and `ecr:GetDownloadUrlForLayer`, a push
//! to ECR Public is `ecr-public:InitiateLayerUpload` …), and the actions
//! another one needs (`sts:GetServiceBearerToken` for an ECR Public token).
//! Each entry says which objects need it: promotions, promotions that create
//! their ECR Public repository, mirrors.
//!
//! The errors of this module name the action when AWS denies it
//! ([`denied_hint`]), and the tests below hold the catalog to the code and to
//! docs/aws.md: every SDK call in `src/aws` is catalogued, each entry is
//! reached from the kinds it names and from no other, and the JSON policies
//! of docs/aws.md grant exactly the catalogued actions for each use — nothing
//! missing (an `AccessDenied` for someone who followed the docs), nothing
//! extra (more than least privilege).

use super::error::{AwsErrorKind, AwsFailure};

/// What the operator's identity is used for; each is one policy set in docs/aws.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Use {
    /// ImagePromotions: pull and inspect internal ECR, push to ECR Public.
    Promotion,
    /// ImagePromotions with a target's `createRepository`.
    PromotionCreatingRepositories,
    /// RegistryMirrors: list both sides, pull, inspect, push.
    Mirror,
}

impl Use {
    /// Every use, in the order docs/aws.md presents them.
    pub const ALL: [Use; 3] = [
        Use::Promotion,
        Use::PromotionCreatingRepositories,
        Use::Mirror,
    ];

    /// The name docs/aws.md labels its policies with (`<!-- iam-policy: … -->`).
    pub fn label(self) -> &'static str {
        match self {
            Use::Promotion => "promotion",
            Use::PromotionCreatingRepositories => "promotion-creating-repositories",
            Use::Mirror => "mirror",
        }
    }
}

/// The AWS API a client of this module calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Amazon ECR (`aws_sdk_ecr`, src/aws/ecr.rs).
    Ecr,
    /// Amazon ECR Public (`aws_sdk_ecrpublic`, src/aws/public.rs).
    EcrPublic,
}

/// How the operator comes to need an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// An SDK operation (snake case, as the client's method) sent by the
    /// method `wrapper` of this module; the kinds reach it through `called_as`
    /// (a method call or constructor as it appears in their source).
    Sdk {
        /// The API.
        service: Service,
        /// The client method, e.g. `describe_image_tags`.
        operation: &'static str,
        /// The method of this module that sends it, e.g. `tagged_images`.
        wrapper: &'static str,
        /// How callers reach it, e.g. `.tagged_images(` or `EcrTokenSource(`.
        called_as: &'static str,
    },
    /// What the OCI registry API maps to on ECR's side.
    RegistryApi,
    /// Needed by AWS for another catalogued action.
    RequiredFor(&'static str),
}

/// What an action may be scoped to in a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The action takes no resource: `"Resource": "*"`.
    Any,
    /// Repository ARNs (`arn:aws:ecr:…:repository/…`, `arn:aws:ecr-public::…:repository/…`).
    Repository,
}

/// One IAM action and why the operator needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// The IAM action, e.g. `ecr-public:DescribeImageTags`.
    pub action: &'static str,
    /// How it is called.
    pub call: Call,
    /// What a policy may scope it to.
    pub scope: Scope,
    /// Who needs it; empty for library functions no kind calls.
    pub uses: &'static [Use],
}

const ALL_USES: &[Use] = &[
    Use::Promotion,
    Use::PromotionCreatingRepositories,
    Use::Mirror,
];
const CREATING: &[Use] = &[Use::PromotionCreatingRepositories];

const fn sdk(
    service: Service,
    operation: &'static str,
    wrapper: &'static str,
    called_as: &'static str,
) -> Call {
    Call::Sdk {
        service,
        operation,
        wrapper,
        called_as,
    }
}

/// `ecr:GetAuthorizationToken`: the registry password of an `auth.ecr` registry.
pub const ECR_GET_AUTHORIZATION_TOKEN: Permission = Permission {
    action: "ecr:GetAuthorizationToken",
    call: sdk(
        Service::Ecr,
        "get_authorization_token",
        "authorization_token",
        "EcrTokenSource(",
    ),
    scope: Scope::Any,
    uses: ALL_USES,
};
/// `ecr:DescribeImages`: a promotion's source tag → digest; a mirror's ECR listing.
pub const ECR_DESCRIBE_IMAGES: Permission = Permission {
    action: "ecr:DescribeImages",
    call: sdk(
        Service::Ecr,
        "describe_images",
        "resolve_tag",
        ".resolve_tag(",
    ),
    scope: Scope::Repository,
    uses: &[Use::Promotion, Use::PromotionCreatingRepositories],
};
/// `ecr:DescribeImages` again, for a mirror: every tag of an ECR source with its digest.
pub const ECR_LIST_IMAGES: Permission = Permission {
    action: "ecr:DescribeImages",
    call: sdk(
        Service::Ecr,
        "describe_images",
        "tagged_images",
        ".tagged_images(",
    ),
    scope: Scope::Repository,
    uses: &[Use::Mirror],
};
/// `ecr:DescribeRepositories`: tag immutability and encryption of a source.
pub const ECR_DESCRIBE_REPOSITORIES: Permission = Permission {
    action: "ecr:DescribeRepositories",
    call: sdk(
        Service::Ecr,
        "describe_repositories",
        "repository_settings",
        ".repository_settings(",
    ),
    scope: Scope::Repository,
    uses: ALL_USES,
};
/// `ecr:DescribeImageScanFindings`: scan status and findings of a source image.
pub const ECR_DESCRIBE_IMAGE_SCAN_FINDINGS: Permission = Permission {
    action: "ecr:DescribeImageScanFindings",
    call: sdk(
        Service::Ecr,
        "describe_image_scan_findings",
        "scan_report",
        ".scan_report(",
    ),
    scope: Scope::Repository,
    uses: ALL_USES,
};
/// `ecr-public:GetAuthorizationToken`: the ECR Public push token.
pub const ECR_PUBLIC_GET_AUTHORIZATION_TOKEN: Permission = Permission {
    action: "ecr-public:GetAuthorizationToken",
    call: sdk(
        Service::EcrPublic,
        "get_authorization_token",
        "authorization_token",
        "EcrPublicTokenSource(",
    ),
    scope: Scope::Any,
    uses: ALL_USES,
};
/// `ecr-public:DescribeImageTags`: every tag of an ECR Public repository with its digest (mirrors).
pub const ECR_PUBLIC_DESCRIBE_IMAGE_TAGS: Permission = Permission {
    action: "ecr-public:DescribeImageTags",
    call: sdk(
        Service::EcrPublic,
        "describe_image_tags",
        "tagged_images",
        ".tagged_images(",
    ),
    scope: Scope::Repository,
    uses: &[Use::Mirror],
};
/// `ecr-public:DescribeRegistries`: the operator's own registry aliases.
pub const ECR_PUBLIC_DESCRIBE_REGISTRIES: Permission = Permission {
    action: "ecr-public:DescribeRegistries",
    call: sdk(
        Service::EcrPublic,
        "describe_registries",
        "own_aliases",
        ".own_aliases(",
    ),
    scope: Scope::Any,
    uses: &[Use::PromotionCreatingRepositories, Use::Mirror],
};
/// `ecr-public:DescribeRepositories`: whether a `createRepository` target exists.
pub const ECR_PUBLIC_DESCRIBE_REPOSITORIES: Permission = Permission {
    action: "ecr-public:DescribeRepositories",
    call: sdk(
        Service::EcrPublic,
        "describe_repositories",
        "repository",
        ".repository(",
    ),
    scope: Scope::Repository,
    uses: CREATING,
};
/// `ecr-public:CreateRepository`: a missing `createRepository` target, with its catalog data.
pub const ECR_PUBLIC_CREATE_REPOSITORY: Permission = Permission {
    action: "ecr-public:CreateRepository",
    call: sdk(
        Service::EcrPublic,
        "create_repository",
        "create_repository",
        ".create_repository(",
    ),
    scope: Scope::Repository,
    uses: CREATING,
};
/// `ecr-public:GetRepositoryCatalogData`: [`super::EcrPublic::sync_catalog_data`]
/// only, which no kind calls (an existing repository's catalog data is left alone).
pub const ECR_PUBLIC_GET_REPOSITORY_CATALOG_DATA: Permission = Permission {
    action: "ecr-public:GetRepositoryCatalogData",
    call: sdk(
        Service::EcrPublic,
        "get_repository_catalog_data",
        "sync_catalog_data",
        ".sync_catalog_data(",
    ),
    scope: Scope::Repository,
    uses: &[],
};
/// `ecr-public:PutRepositoryCatalogData`: as GetRepositoryCatalogData, used by no kind.
pub const ECR_PUBLIC_PUT_REPOSITORY_CATALOG_DATA: Permission = Permission {
    action: "ecr-public:PutRepositoryCatalogData",
    call: sdk(
        Service::EcrPublic,
        "put_repository_catalog_data",
        "sync_catalog_data",
        ".ensure_repository(",
    ),
    scope: Scope::Repository,
    uses: &[],
};

/// Every action, SDK operation and registry API mapping the operator can need.
pub const PERMISSIONS: &[Permission] = &[
    ECR_GET_AUTHORIZATION_TOKEN,
    Permission {
        action: "ecr:BatchGetImage",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr:GetDownloadUrlForLayer",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr:BatchCheckLayerAvailability",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    ECR_DESCRIBE_IMAGES,
    ECR_LIST_IMAGES,
    ECR_DESCRIBE_REPOSITORIES,
    ECR_DESCRIBE_IMAGE_SCAN_FINDINGS,
    ECR_PUBLIC_GET_AUTHORIZATION_TOKEN,
    Permission {
        action: "sts:GetServiceBearerToken",
        call: Call::RequiredFor("ecr-public:GetAuthorizationToken"),
        scope: Scope::Any,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr-public:BatchCheckLayerAvailability",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr-public:InitiateLayerUpload",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr-public:UploadLayerPart",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr-public:CompleteLayerUpload",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    Permission {
        action: "ecr-public:PutImage",
        call: Call::RegistryApi,
        scope: Scope::Repository,
        uses: ALL_USES,
    },
    ECR_PUBLIC_DESCRIBE_IMAGE_TAGS,
    ECR_PUBLIC_DESCRIBE_REGISTRIES,
    ECR_PUBLIC_DESCRIBE_REPOSITORIES,
    ECR_PUBLIC_CREATE_REPOSITORY,
    ECR_PUBLIC_GET_REPOSITORY_CATALOG_DATA,
    ECR_PUBLIC_PUT_REPOSITORY_CATALOG_DATA,
];

/// The actions `use_` needs (pure).
pub fn actions_for(use_: Use) -> std::collections::BTreeSet<&'static str> {
    PERMISSIONS
        .iter()
        .filter(|p| p.uses.contains(&use_))
        .map(|p| p.action)
        .collect()
}

/// What an error message adds when AWS denied `permission`: the action to
/// grant and where the policy is; nothing for other failures (pure).
pub fn denied_hint(failure: &AwsFailure, permission: &Permission) -> String {
    if failure.kind() == AwsErrorKind::AccessDenied {
        format!(
            " (the operator's AWS role needs {}: docs/aws.md)",
            permission.action
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// A file's text without its `#[cfg(test)]` module.
    fn code(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap();
        match text.find("#[cfg(test)]") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    }

    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files.sort();
        files
    }

    /// `(fn name, client method)` of every SDK call (`.client` then `.method(`) in `text`.
    fn sdk_calls(text: &str) -> Vec<(String, String)> {
        let mut calls = Vec::new();
        let mut current = String::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let trimmed = line.trim();
            if let Some(at) = trimmed.find("fn ") {
                let name: String = trimmed[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty()
                    && (trimmed.starts_with("pub")
                        || trimmed.starts_with("fn")
                        || trimmed.starts_with("async"))
                {
                    current = name;
                }
            }
            let client = trimmed.ends_with(".client")
                || trimmed == "client"
                || trimmed.ends_with("self.client");
            let inline = trimmed.split(".client.").nth(1);
            let next = if let Some(rest) = inline {
                Some(rest.to_string())
            } else if client {
                lines
                    .peek()
                    .map(|l| l.trim().trim_start_matches('.').to_string())
            } else {
                None
            };
            if let Some(next) = next {
                let method: String = next
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if next[method.len()..].starts_with("()") && !method.is_empty() {
                    calls.push((current.clone(), method));
                }
            }
        }
        calls
    }

    #[test]
    fn every_sdk_call_in_src_aws_is_catalogued_and_every_entry_is_called() {
        let mut found = BTreeSet::new();
        for path in rust_files(&root().join("src/aws")) {
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            for (wrapper, operation) in sdk_calls(&code(&path)) {
                let service = match file.as_str() {
                    "ecr.rs" => "Ecr",
                    "public.rs" => "EcrPublic",
                    other => panic!(
                        "{other} calls the AWS SDK ({operation} in {wrapper}): only ecr.rs and public.rs may, through the catalog"
                    ),
                };
                found.insert((service.to_string(), wrapper, operation));
            }
        }
        let catalogued: BTreeSet<_> = PERMISSIONS
            .iter()
            .filter_map(|p| match p.call {
                Call::Sdk {
                    service,
                    operation,
                    wrapper,
                    ..
                } => Some((
                    format!("{service:?}"),
                    wrapper.to_string(),
                    operation.to_string(),
                )),
                _ => None,
            })
            .collect();
        assert!(
            found.len() >= 10,
            "the scan found too few SDK calls: {found:?}"
        );
        let missing: Vec<_> = found.difference(&catalogued).collect();
        let stale: Vec<_> = catalogued.difference(&found).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "SDK calls (service, method, operation) not in PERMISSIONS: {missing:?}; \
             catalogued but not called: {stale:?}"
        );
    }

    #[test]
    fn the_scan_sees_calls_split_over_lines_and_inline() {
        let text = "pub async fn a(&self) {\n    self\n        .client\n        .describe_images()\n}\n\
                    async fn b(&self) { let x = self.client.put_image().send(); }\n";
        assert_eq!(
            sdk_calls(text),
            [
                ("a".to_string(), "describe_images".to_string()),
                ("b".to_string(), "put_image".to_string())
            ]
        );
    }

    /// Where each kind's code lives; `src/config.rs` builds the registries
    /// every kind uses.
    fn kind_sources() -> BTreeMap<&'static str, String> {
        let read = |dir: &str| {
            rust_files(&root().join(dir))
                .iter()
                .map(|p| code(p))
                .collect::<Vec<_>>()
                .join("\n")
        };
        BTreeMap::from([
            ("promotion", read("src/promotion")),
            ("mirror", read("src/mirror")),
            ("shared", code(&root().join("src/config.rs"))),
        ])
    }

    #[test]
    fn each_sdk_entry_is_reached_by_the_kinds_it_names_and_no_other() {
        let sources = kind_sources();
        for permission in PERMISSIONS {
            let Call::Sdk { called_as, .. } = permission.call else {
                continue;
            };
            let shared = sources["shared"].contains(called_as);
            for (kind, uses) in [
                (
                    "promotion",
                    [Use::Promotion, Use::PromotionCreatingRepositories],
                ),
                ("mirror", [Use::Mirror, Use::Mirror]),
            ] {
                let needed = uses.iter().any(|u| permission.uses.contains(u));
                let called = sources[kind].contains(called_as);
                assert!(
                    !needed || called || shared,
                    "{}: catalogued for {kind}, but src/{kind} never calls {called_as}",
                    permission.action
                );
                assert!(
                    needed || !called,
                    "{}: src/{kind} calls {called_as}, but the catalog does not name {kind}",
                    permission.action
                );
            }
        }
    }

    /// The labelled JSON policies of a docs page: `(uses, policy)` for each
    /// ```json block right after a `<!-- iam-policy: a, b -->` line.
    fn labelled_policies(text: &str) -> Result<Vec<(Vec<String>, serde_json::Value)>, String> {
        let mut policies = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(label) = line
                .trim()
                .strip_prefix("<!-- iam-policy:")
                .and_then(|l| l.strip_suffix("-->"))
            else {
                continue;
            };
            if lines.get(i + 1).map(|l| l.trim()) != Some("```json") {
                return Err(format!("line {}: no ```json block after {line}", i + 1));
            }
            let body: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| l.trim() != "```")
                .copied()
                .collect();
            let policy = serde_json::from_str(&body.join("\n"))
                .map_err(|e| format!("line {}: the policy is not JSON: {e}", i + 3))?;
            let uses = label.split(',').map(|u| u.trim().to_string()).collect();
            policies.push((uses, policy));
        }
        Ok(policies)
    }

    fn as_list(value: &serde_json::Value) -> Vec<String> {
        match value {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().expect("a string").to_string())
                .collect(),
            other => panic!("expected a string or a list: {other}"),
        }
    }

    /// What is wrong with the policies of a docs page, compared with the catalog.
    fn policy_problems(text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let policies = match labelled_policies(text) {
            Ok(policies) => policies,
            Err(error) => return vec![error],
        };
        let labels: BTreeSet<&str> = Use::ALL.iter().map(|u| u.label()).collect();
        for (uses, _) in &policies {
            for label in uses {
                if !labels.contains(label.as_str()) {
                    problems.push(format!("unknown use {label:?} (known: {labels:?})"));
                }
            }
        }
        let scopes: BTreeMap<&str, Scope> =
            PERMISSIONS.iter().map(|p| (p.action, p.scope)).collect();
        for use_ in Use::ALL {
            let mut granted = BTreeSet::new();
            for (_, policy) in policies
                .iter()
                .filter(|(u, _)| u.iter().any(|l| l == use_.label()))
            {
                for statement in policy["Statement"].as_array().into_iter().flatten() {
                    if statement["Effect"] != "Allow" {
                        problems.push(format!(
                            "{}: a statement that is not Allow: {statement}",
                            use_.label()
                        ));
                    }
                    let resources = as_list(&statement["Resource"]);
                    for action in as_list(&statement["Action"]) {
                        match scopes.get(action.as_str()) {
                            Some(Scope::Any) if resources != ["*"] => problems.push(format!(
                                "{action} takes no resource: its statement must say \"Resource\": \"*\""
                            )),
                            Some(Scope::Repository)
                                if !resources.iter().all(|r| {
                                    r.starts_with("arn:aws:ecr:") || r.starts_with("arn:aws:ecr-public::")
                                }) || resources.iter().any(|r| !r.contains(":repository/")) =>
                            {
                                problems.push(format!("{action} is granted on {resources:?}, not on repositories"))
                            }
                            _ => {}
                        }
                        granted.insert(action);
                    }
                }
            }
            let needed: BTreeSet<String> =
                actions_for(use_).into_iter().map(str::to_string).collect();
            for action in needed.difference(&granted) {
                problems.push(format!(
                    "{}: {action} is needed but not granted",
                    use_.label()
                ));
            }
            for action in granted.difference(&needed) {
                problems.push(format!(
                    "{}: {action} is granted but never needed",
                    use_.label()
                ));
            }
        }
        problems
    }

    #[test]
    fn the_policies_of_docs_aws_md_grant_exactly_what_each_use_needs() {
        let text = std::fs::read_to_string(root().join("docs/aws.md")).unwrap();
        let policies = labelled_policies(&text).unwrap();
        assert!(
            policies.len() >= 3,
            "docs/aws.md has {} labelled policies",
            policies.len()
        );
        let problems = policy_problems(&text);
        assert!(problems.is_empty(), "docs/aws.md:\n{}", problems.join("\n"));
    }

    #[test]
    fn the_policy_check_catches_a_missing_an_extra_and_a_misscoped_action() {
        let page = r#"
<!-- iam-policy: promotion, promotion-creating-repositories, mirror -->
```json
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"], "Resource": "*"},
  {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:DescribeImageScanFindings"], "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/app"},
  {"Effect": "Allow", "Action": ["ecr-public:BatchCheckLayerAvailability", "ecr-public:InitiateLayerUpload", "ecr-public:UploadLayerPart", "ecr-public:CompleteLayerUpload", "ecr-public:PutImage"], "Resource": "arn:aws:ecr-public::123456789012:repository/app"}
]}
```
<!-- iam-policy: promotion-creating-repositories -->
```json
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["ecr-public:DescribeRepositories", "ecr-public:CreateRepository"], "Resource": "arn:aws:ecr-public::123456789012:repository/*"},
  {"Effect": "Allow", "Action": "ecr-public:DescribeRegistries", "Resource": "*"}
]}
```
<!-- iam-policy: mirror -->
```json
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["ecr-public:DescribeRegistries", "ecr-public:DescribeImageTags"], "Resource": "*"}
]}
```
"#;
        // The mirror block scopes DescribeImageTags to "*": refused.
        assert_eq!(
            policy_problems(page),
            ["ecr-public:DescribeImageTags is granted on [\"*\"], not on repositories"]
        );
        let fixed = page.replace(
            r#"["ecr-public:DescribeRegistries", "ecr-public:DescribeImageTags"], "Resource": "*"}"#,
            r#""ecr-public:DescribeRegistries", "Resource": "*"}, {"Effect": "Allow", "Action": "ecr-public:DescribeImageTags", "Resource": "arn:aws:ecr-public::123456789012:repository/app"}"#,
        );
        assert_eq!(policy_problems(&fixed), Vec::<String>::new());
        // The policy of docs/aws.md before DescribeImageTags was added.
        let without = fixed.replace(
            r#", {"Effect": "Allow", "Action": "ecr-public:DescribeImageTags", "Resource": "arn:aws:ecr-public::123456789012:repository/app"}"#,
            "",
        );
        assert_eq!(
            policy_problems(&without),
            ["mirror: ecr-public:DescribeImageTags is needed but not granted"]
        );
        let extra = fixed.replace(
            "\"ecr:DescribeImages\",",
            "\"ecr:DescribeImages\", \"ecr:PutImage\",",
        );
        let problems = policy_problems(&extra);
        assert!(
            problems.contains(&"promotion: ecr:PutImage is granted but never needed".to_string()),
            "{problems:?}"
        );
    }

    #[test]
    fn a_denied_call_names_the_action_to_grant() {
        let denied = AwsFailure::new(
            AwsErrorKind::AccessDenied,
            Some("AccessDeniedException"),
            "no",
        );
        assert_eq!(
            denied_hint(&denied, &ECR_PUBLIC_DESCRIBE_IMAGE_TAGS),
            " (the operator's AWS role needs ecr-public:DescribeImageTags: docs/aws.md)"
        );
        let throttled = AwsFailure::new(AwsErrorKind::Throttled, None, "slow down");
        assert_eq!(denied_hint(&throttled, &ECR_PUBLIC_DESCRIBE_IMAGE_TAGS), "");
    }
}
