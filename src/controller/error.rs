//! What can make a reconcile fail as a whole (everything else becomes the
//! object's status): one variant per failing operation, each with its
//! PascalCase reason and whether a retry may help.

/// A reconcile that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The status patch failed.
    #[error("writing the status of ImagePromotion {object}: {source}")]
    PatchStatus {
        /// `namespace/name`.
        object: String,
        /// What the apiserver said.
        #[source]
        source: kube::Error,
    },
    /// The reconcile panicked (a bug); other objects are unaffected.
    #[error("reconciling ImagePromotion {object} failed unexpectedly: {message}")]
    Panicked {
        /// `namespace/name`.
        object: String,
        /// The panic's message.
        message: String,
    },
}

impl ReconcileError {
    /// The PascalCase reason (condition, event, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PatchStatus { .. } => "StatusPatchFailed",
            Self::Panicked { .. } => crate::api::reasons::RECONCILE_PANICKED,
        }
    }

    /// Whether retrying later may help: a forbidden or invalid patch needs
    /// the operator's RBAC or the CRDs to change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::PatchStatus { source, .. } => !matches!(
                source,
                kube::Error::Api(status) if matches!(status.code, 400 | 403 | 404 | 422)
            ),
            Self::Panicked { .. } => true,
        }
    }
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--attestation-key` names a key that cannot be used.
    #[error("--attestation-key: {0}")]
    AttestationKey(#[source] crate::receipt::KeyError),
    /// No Kubernetes client configuration.
    #[error("no Kubernetes client configuration (KUBECONFIG or in-cluster): {0}")]
    Client(#[source] kube::Error),
    /// The CRDs are not installed.
    #[error(
        "the ImagePromotion CRD is not installed in this cluster: install the CRDs with \
         `image-promoter crds | kubectl apply --server-side -f -` (or the Helm chart), then start \
         the operator again"
    )]
    CrdsMissing,
    /// The operator's RBAC does not allow what it needs.
    #[error(
        "the operator may not {what} ({message}): apply its RBAC (deploy/rbac.yaml, or the Helm \
         chart) to its ServiceAccount"
    )]
    Forbidden {
        /// What it tried.
        what: String,
        /// The apiserver's message.
        message: String,
    },
    /// `--watch-label-selector` is not a label selector.
    #[error(
        "--watch-label-selector {selector:?} is not a label selector ({message}): write it as \
         `kubectl get -l` takes it, e.g. sharding.fluxcd.io/key=shard1"
    )]
    LabelSelector {
        /// The flag's value.
        selector: String,
        /// The apiserver's message.
        message: String,
    },
    /// The apiserver could not be asked.
    #[error("checking the ImagePromotion CRD: {0}")]
    Apiserver(#[source] kube::Error),
    /// The configuration's registry clients could not be built.
    #[error("the configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// An HTTP endpoint could not listen.
    #[error("listening on {address} for {what}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// `metrics` or `health probes`.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] super::leader::LeaderError),
    /// This replica lost the Lease: it stopped reconciling at once.
    #[error(
        "lost the leader Lease: stopped reconciling and cancelled in-flight copies; exiting so \
         that the Deployment restarts this replica as a standby"
    )]
    LeaseLost,
}
