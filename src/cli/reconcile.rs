//! `image-promoter reconcile promotion|mirror NAME [-n NS]`: asks the
//! operator to reconcile one object now, as `flux reconcile` does. It sets
//! the annotation `imagepromoter.dev/reconcile-requested-at` to the current
//! time, waits until the status echoes that value in
//! `lastHandledReconcileAt`, and prints the object's Ready condition.
//!
//! Exit codes: 0 the object is Ready, 1 it is not (or the wait timed out),
//! 2 bad usage or no such object.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{FAILED, usage_error};
use crate::api::conditions::{READY, RECONCILE_REQUESTED_AT, find_condition};
use crate::api::parse_duration;
use crate::api::{ImagePromotion, RegistryMirror};

/// The kinds that can be asked to reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// An ImagePromotion.
    Promotion,
    /// A RegistryMirror.
    Mirror,
}

/// `image-promoter reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// What to reconcile.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The object's name.
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// How long to wait for the operator to handle the request, e.g. 5m, 90s.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What the object says once the request was handled.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    ready: Option<(String, String, String)>,
}

/// Runs `image-promoter reconcile`.
pub fn run(args: ReconcileArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let outcome = runtime.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| {
            Failure::Usage(format!(
                "connecting to the cluster (KUBECONFIG or in-cluster): {e}"
            ))
        })?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let requested = k8s_openapi::jiff::Timestamp::now().to_string();
        match args.kind {
            Kind::Promotion => {
                let api: Api<ImagePromotion> = Api::namespaced(client, &namespace);
                request(&api, &args, &requested, |o: &ImagePromotion| {
                    o.status
                        .as_ref()
                        .map(|s| (s.last_handled_reconcile_at.clone(), s.conditions.clone()))
                })
                .await
            }
            Kind::Mirror => {
                let api: Api<RegistryMirror> = Api::namespaced(client, &namespace);
                request(&api, &args, &requested, |o: &RegistryMirror| {
                    o.status
                        .as_ref()
                        .map(|s| (s.last_handled_reconcile_at.clone(), s.conditions.clone()))
                })
                .await
            }
        }
    });
    let kind = match args.kind {
        Kind::Promotion => "imagepromotion",
        Kind::Mirror => "registrymirror",
    };
    match outcome {
        Ok(Answer {
            ready: Some((status, reason, message)),
        }) => {
            println!("{kind}/{}: Ready={status} {reason}: {message}", args.name);
            if status == "True" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(FAILED)
            }
        }
        Ok(Answer { ready: None }) => {
            println!("{kind}/{}: reconciled; no Ready condition yet", args.name);
            ExitCode::from(FAILED)
        }
        Err(Failure::Usage(message)) => usage_error(message),
        Err(Failure::Failed(message)) => {
            eprintln!("image-promoter: {message}");
            ExitCode::from(FAILED)
        }
    }
}

enum Failure {
    Usage(String),
    Failed(String),
}

type Conditions = Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;

/// The handled request and the conditions of an object's status, if it has one.
type Handled = Option<(Option<String>, Conditions)>;

/// Sets the annotation on the object of `api` and waits for its status to echo it.
async fn request<K>(
    api: &Api<K>,
    args: &ReconcileArgs,
    requested: &str,
    handled: fn(&K) -> Handled,
) -> Result<Answer, Failure>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: requested}}});
    api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| match &e {
            kube::Error::Api(status) if status.code == 404 => Failure::Usage(format!(
                "{} not found in namespace {}",
                args.name,
                api.namespace().unwrap_or_default()
            )),
            _ => Failure::Failed(format!("annotating {}: {e}", args.name)),
        })?;
    let wanted = requested.to_string();
    let echoed = move |object: Option<&K>| {
        object
            .and_then(handled)
            .is_some_and(|(at, _)| at.as_deref() == Some(wanted.as_str()))
    };
    let waited = tokio::time::timeout(
        args.timeout,
        await_condition(api.clone(), &args.name, echoed),
    )
    .await;
    let object = match waited {
        Ok(Ok(Some(object))) => object,
        Ok(Ok(None)) => return Err(Failure::Failed(format!("{} was deleted", args.name))),
        Ok(Err(e)) => return Err(Failure::Failed(format!("watching {}: {e}", args.name))),
        Err(_) => {
            return Err(Failure::Failed(format!(
                "the operator did not handle the request within {:?} (is it running and watching this namespace?)",
                args.timeout
            )));
        }
    };
    let ready = handled(&object).and_then(|(_, conditions)| {
        find_condition(&conditions, READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    });
    Ok(Answer { ready })
}
