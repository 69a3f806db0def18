//! Several replicas with `--leader-elect`: only the Lease holder reconciles;
//! a standby takes over when the leader is killed (after the Lease expires),
//! finishing what the leader had in flight, or stops on SIGTERM (at once: the
//! Lease is released); a leader cut off from the apiserver stops within the
//! renew deadline, before the standby may take the Lease.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image_promoter::controller::leader::{Election, Leadership, Timing};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{
    Operator, Rbac, config_with, create, hanging_source, is, quay_through, service_account,
};
use crate::partition::{Partition, server};
use crate::proxy::{Fault, Proxy, Rule};
use crate::world::{GOOD, TAG, World, promotion, quay_target};

const LEADER: &str = "leader_election_master_status{name=\"image-promoter\"}";

async fn promote(world: &World, cluster: &Cluster, prefix: &str) -> (String, String, String) {
    let source = world.source(prefix, GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target(prefix);
    let name = create(
        cluster,
        promotion(
            world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    (name, quay_name, source.digest)
}

/// The holder of the Lease `name` in the test's namespace.
async fn holder(cluster: &Cluster, name: &str) -> Option<String> {
    let leases: Api<Lease> = cluster.typed();
    leases
        .get_opt(name)
        .await
        .expect("reading the Lease")
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// The flags of a replica that campaigns for the Lease in the test's namespace.
fn leader_args(cluster: &Cluster) -> [&str; 3] {
    [
        "--leader-elect",
        "--leader-election-namespace",
        cluster.namespace.as_str(),
    ]
}

/// Starts a replica with `config` and waits until it leads, then a second one
/// and waits until it is a ready standby.
async fn leader_and_standby(cluster: &Cluster, config: &Path) -> (Operator, Operator) {
    let kubeconfig = service_account(cluster, Rbac::Full).await;
    let args = leader_args(cluster);
    let mut leader = Operator::start_with_config(cluster, &kubeconfig, config, &args);
    leader.wait_metric(LEADER, 1.0).await;
    let mut standby = Operator::start_with_config(cluster, &kubeconfig, config, &args);
    standby.wait_ready().await;
    standby.wait_metric(LEADER, 0.0).await;
    (leader, standby)
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_is_killed() {
    let world = World::new().await;
    let cluster = Cluster::start("op-replicas").await;
    let config = PathBuf::from(cluster.env.get("PROMOTER_TEST_CONFIG"));
    let (mut first, mut second) = leader_and_standby(&cluster, &config).await;

    let (name, quay_name, digest) = promote(&world, &cluster, "op-replicas-a").await;
    first
        .wait_status(&cluster, &name, "Ready=True by the leader", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(world.quay_tag(&quay_name, TAG).await, Ok(digest));
    assert!(
        first.log().contains("PromotionPublished"),
        "{}",
        first.log()
    );
    assert!(
        !second.log().contains("PromotionPublished"),
        "the standby wrote:\n{}",
        second.log()
    );

    first.kill();
    let (name, quay_name, digest) = promote(&world, &cluster, "op-replicas-b").await;
    second
        .wait_status(&cluster, &name, "Ready=True by the new leader", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    second.wait_metric(LEADER, 1.0).await;
    assert_eq!(world.quay_tag(&quay_name, TAG).await, Ok(digest));
}

/// Replicas that campaign at once for a Lease that does not exist yet: exactly
/// one may lead (every write carries the resourceVersion it read, so only one
/// of several at once succeeds). The race is narrow, so it is run for several
/// Leases.
#[tokio::test]
async fn campaigns_started_together_elect_exactly_one_leader() {
    let cluster = Cluster::start("op-together").await;
    for round in 0..ROUNDS {
        let name = format!("together-{round}");
        let elections: Vec<Election> = (0..4)
            .map(|i| Election {
                namespace: cluster.namespace.clone(),
                name: name.clone(),
                identity: format!("replica-{i}"),
            })
            .collect();
        // A client each, as separate processes have: one shared connection
        // would put their requests in one order.
        let mut clients = Vec::new();
        for _ in &elections {
            clients.push(cluster.env.kube_admin().await);
        }
        let campaigns = elections
            .iter()
            .zip(clients)
            .map(|(election, client)| Leadership::campaign(client, election, Timing::default()));
        let mut campaigns: Vec<Leadership> = futures::future::join_all(campaigns)
            .await
            .into_iter()
            .map(|campaign| campaign.expect("campaigning for the Lease"))
            .collect();
        let first =
            futures::future::select_all(campaigns.iter_mut().map(|c| Box::pin(c.acquired())));
        let (acquired, _, _) = tokio::time::timeout(Duration::from_secs(60), first)
            .await
            .expect("no replica took the Lease within 60 s");
        assert!(acquired, "a campaign ended without the Lease");
        let lease: Lease = Api::namespaced(cluster.client.clone(), &cluster.namespace)
            .get(&name)
            .await
            .expect("reading the Lease");
        let leaders: Vec<String> = elections
            .iter()
            .zip(&campaigns)
            .filter(|(_, campaign)| campaign.leading())
            .map(|(election, _)| election.identity.clone())
            .collect();
        let holder = lease.spec.and_then(|spec| spec.holder_identity);
        assert_eq!(
            leaders,
            Vec::from_iter(holder),
            "Lease {name}: the replicas that believe they lead, and the Lease's holder"
        );
        for campaign in campaigns {
            campaign.release().await;
        }
    }
}

/// How many Leases [`campaigns_started_together_elect_exactly_one_leader`] races for.
const ROUNDS: usize = 40;

#[tokio::test]
async fn sigterm_releases_the_lease_and_the_standby_takes_over_at_once() {
    let cluster = Cluster::start("op-sigterm").await;
    let config = PathBuf::from(cluster.env.get("PROMOTER_TEST_CONFIG"));
    let (mut first, mut second) = leader_and_standby(&cluster, &config).await;

    let exit = first
        .terminate(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no exit within 30 s of SIGTERM:\n{}", first.log()));
    assert!(exit.success(), "{exit}:\n{}", first.log());
    assert!(
        first.log().contains("released the Lease"),
        "{}",
        first.log()
    );
    let released = Instant::now();
    second.wait_metric(LEADER, 1.0).await;
    assert!(
        released.elapsed() < Duration::from_secs(10),
        "the standby took {:?}: the Lease was not released",
        released.elapsed()
    );
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_at_once_and_exits() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::Api;
    use kube::api::{Patch, PatchParams};

    let cluster = Cluster::start("op-lost").await;
    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let mut leader = Operator::start_with(&cluster, &kubeconfig, &leader_args(&cluster));
    leader.wait_metric(LEADER, 1.0).await;
    // Someone else takes the Lease (as a partitioned leader would find it).
    let leases: Api<Lease> = cluster.typed();
    // MicroTime: RFC 3339 with microseconds, UTC.
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    let stolen = serde_json::json!({"spec": {
        "holderIdentity": "another-replica",
        "acquireTime": now,
        "renewTime": now,
        "leaseDurationSeconds": 3600,
    }});
    leases
        .patch(
            "image-promoter",
            &PatchParams::default(),
            &Patch::Merge(&stolen),
        )
        .await
        .expect("taking the Lease");
    let exit = leader
        .terminate_wait(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running 30 s after losing the Lease:\n{}",
                leader.log()
            )
        });
    assert_eq!(exit.code(), Some(1), "{}", leader.log());
    assert!(
        leader.log().contains("lost the leader Lease"),
        "{}",
        leader.log()
    );
}

#[tokio::test]
async fn a_standby_finishes_the_promotion_a_killed_leader_had_in_flight() {
    let world = World::new().await;
    let cluster = Cluster::start("op-inflight").await;
    // The source registry behind a proxy whose first blob read hangs: the
    // leader is caught in the middle of its copy.
    let (proxy, config) = hanging_source(&world, &cluster, Some(1)).await;
    let (mut first, mut second) = leader_and_standby(&cluster, &config).await;

    let source = world.source("op-inflight", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-inflight");
    let mut object = promotion(
        &world,
        &source,
        json!({"encryption": "KMS"}),
        json!([quay_target("quay", &quay_repository)]),
    );
    object["spec"]["source"]["image"] = json!(format!("{}/{}:{TAG}", proxy.host(), source.name));
    let name = create(&cluster, object).await;
    proxy
        .wait_for(
            "the leader's hanging blob read",
            Duration::from_secs(60),
            |log| log.iter().any(|e| e.fault.is_some()),
        )
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "in flight: no tag yet"
    );

    first.kill();
    let status = second
        .wait_status(&cluster, &name, "Ready=True by the standby", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(status.targets_ready.as_deref(), Some("1/1"));
    assert_eq!(world.quay_tag(&quay_name, TAG).await, Ok(source.digest));
    assert!(
        second.log().contains("PromotionPublished"),
        "the standby finished it:\n{}",
        second.log()
    );
    assert!(
        !first.log().contains("PromotionPublished"),
        "the killed leader published:\n{}",
        first.log()
    );
}

/// The test world's configuration, with the "internal ECR" registry behind
/// `source` and the Quay registry behind `target` (plain HTTP proxies that
/// log every request); its path.
fn config_through(world: &World, cluster: &Cluster, source: &Proxy, target: &Proxy) -> PathBuf {
    config_with(
        cluster,
        vec![
            json!({
                "host": source.host(),
                "kind": "ecr",
                "plainHttp": true,
                "auth": {"ecr": {
                    "registryId": world.env.get("PROMOTER_TEST_ECR_ACCOUNT"),
                    "region": world.env.get("AWS_REGION"),
                    "endpointUrl": world.env.get("AWS_ENDPOINT_URL_ECR"),
                }},
            }),
            quay_through(cluster, target),
        ],
    )
}

/// controller-runtime's default Lease duration, which the replicas use.
const LEASE_DURATION: Duration = Duration::from_secs(15);

/// The leader loses the apiserver (a partition: its requests hang) in the
/// middle of a copy while its registries stay reachable. It must stop before
/// the Lease can expire — within the renew deadline, so within the Lease
/// duration and before the standby may take the Lease — and write nothing
/// more; the standby then takes over and publishes alone.
#[tokio::test]
async fn a_leader_cut_off_from_the_apiserver_stops_before_the_standby_takes_over() {
    let world = World::new().await;
    let cluster = Cluster::start("op-cut").await;
    let source = world.source("op-cut", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    // The leader's read of the source's layer trickles, 16 KiB a second: the
    // layer takes longer than the Lease duration, so the leader is cut off in
    // the middle of its copy. Later reads of it (the standby's) do not.
    let layer = crate::oci::TestImage::new(&source.name).layer;
    let layer_digest = crate::oci::sha256(&layer);
    let trickle = Fault::Trickle {
        piece: 16 << 10,
        every: Duration::from_secs(1),
    };
    assert!(
        layer.len() as u64 > 16 * (16 << 10),
        "the layer must outlast the Lease"
    );
    let source_proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &world.env.ca_pem(),
        vec![Rule::new("GET", &format!("/blobs/{layer_digest}$"), trickle).times(1)],
    )
    .await;
    let target_proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &world.env.ca_pem(),
        vec![],
    )
    .await;
    let config = config_through(&world, &cluster, &source_proxy, &target_proxy);

    let kubeconfig = service_account(&cluster, Rbac::Full).await;
    let partition = Partition::start(&server(&kubeconfig)).await;
    let args = leader_args(&cluster);
    let mut first =
        Operator::start_with_config(&cluster, &partition.kubeconfig(&kubeconfig), &config, &args);
    first.wait_metric(LEADER, 1.0).await;
    let leader = holder(&cluster, "image-promoter").await.expect("a holder");
    let mut second = Operator::start_with_config(&cluster, &kubeconfig, &config, &args);
    second.wait_ready().await;
    second.wait_metric(LEADER, 0.0).await;

    let quay_name = crate::support::unique_name("promote/op-cut");
    let mut object = promotion(
        &world,
        &source,
        json!({"encryption": "KMS"}),
        json!([quay_target(
            "quay",
            &format!("{}/{quay_name}", target_proxy.host())
        )]),
    );
    object["spec"]["source"]["image"] =
        json!(format!("{}/{}:{TAG}", source_proxy.host(), source.name));
    let name = create(&cluster, object).await;
    // The leader has read the source manifest: its blob reads come next.
    source_proxy
        .wait_for(
            "the leader reading the source manifest",
            Duration::from_secs(60),
            |log| {
                log.iter()
                    .any(|e| e.method == "GET" && e.path.contains("/manifests/"))
            },
        )
        .await;

    partition.cut();
    let cut = Instant::now();
    let exit = first
        .terminate_wait(LEASE_DURATION)
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running {LEASE_DURATION:?} after it was cut off from the apiserver:\n{}",
                first.log()
            )
        });
    let stopped = Instant::now();
    assert_eq!(
        holder(&cluster, "image-promoter").await.as_deref(),
        Some(leader.as_str()),
        "the cut-off leader stopped only after the standby took the Lease"
    );
    assert_eq!(exit.code(), Some(1), "{}", first.log());
    let log = first.log();
    assert!(
        log.contains("could not be renewed within the renew deadline"),
        "{log}"
    );
    assert!(log.contains("lost the leader Lease"), "{log}");
    assert!(!log.contains("PromotionPublished"), "{log}");
    eprintln!(
        "the cut-off leader stopped {:?} after the cut",
        stopped - cut
    );

    let status = second
        .wait_status(&cluster, &name, "Ready=True by the standby", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(status.targets_ready.as_deref(), Some("1/1"));
    second.wait_metric(LEADER, 1.0).await;
    assert_ne!(
        holder(&cluster, "image-promoter").await.as_deref(),
        Some(leader.as_str())
    );
    assert_eq!(world.quay_tag(&quay_name, TAG).await, Ok(source.digest));
    assert!(
        second.log().contains("PromotionPublished"),
        "{}",
        second.log()
    );

    // At the registries: the cut-off leader's trickled read of the layer was
    // broken off when it stopped, and every manifest was written after that.
    source_proxy
        .wait_for(
            "the cut-off leader's layer read, broken off",
            Duration::from_secs(10),
            |log| {
                log.iter().any(|e| {
                    e.fault.is_some()
                        && e.path.ends_with(&layer_digest)
                        && e.response_bytes < layer.len() as u64
                })
            },
        )
        .await;
    let early: Vec<_> = target_proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.method == "PUT" && e.path.contains("/manifests/") && e.received < stopped)
        .collect();
    assert!(
        early.is_empty(),
        "manifests written before the cut-off leader stopped: {early:?}\n{}",
        target_proxy.summary()
    );
    assert!(
        target_proxy
            .exchanges()
            .iter()
            .any(|e| e.method == "PUT" && e.path.contains("/manifests/")),
        "{}",
        target_proxy.summary()
    );

    // The kubelet restarts it: with the network back it is a standby (0)
    // and stays one while the new leader renews the Lease.
    partition.heal();
    let mut restarted =
        Operator::start_with_config(&cluster, &partition.kubeconfig(&kubeconfig), &config, &args);
    restarted.wait_ready().await;
    let leases: Api<Lease> = cluster.typed();
    let version = |lease: Lease| lease.metadata.resource_version.unwrap_or_default();
    let mut seen = version(leases.get("image-promoter").await.unwrap());
    for _ in 0..3 {
        seen = restarted
            .eventually("the new leader renewing the Lease", || {
                let (leases, seen) = (leases.clone(), seen.clone());
                async move {
                    let now = version(leases.get("image-promoter").await.ok()?);
                    (now != seen).then_some(now)
                }
            })
            .await;
        let text = restarted.metrics().await;
        assert_eq!(crate::harness::metric(&text, LEADER), Some(0.0), "{text}");
    }
    second.wait_metric(LEADER, 1.0).await;
    assert!(
        !restarted.log().contains("PromotionPublished"),
        "{}",
        restarted.log()
    );
}
