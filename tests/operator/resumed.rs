//! The operator follows its objects again soon after its apiserver restarts:
//! a promotion created right after the restart is promoted within a bound,
//! and one deleted after it is forgotten. Against a private control plane
//! (tests/soak/private.rs), whose apiserver this test may stop without
//! disturbing the other tests.
//!
//! The restart is repeated: how long the operator stays blind depends on the
//! errors its watches collect while the apiserver is away (refused
//! connections, 403 while the new apiserver loads its RBAC, 410 Expired when a
//! watch resumes from a resourceVersion older than the new watch cache), and
//! one restart may be too lucky to show it.

use std::time::{Duration, Instant};

use image_promoter::api::ImagePromotion;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::forgotten::promotions_gauge;
use crate::harness::{Operator, Rbac, create, is};
use crate::private::PrivateWorld;
use crate::world::{GOOD, Source, World, promotion, quay_target};

/// How long a promotion created right after a restart may take to be Ready.
const BOUND: Duration = Duration::from_secs(30);
/// How long the apiserver stays away in each round (with its start, about
/// the 13 s a loaded CI machine's restart took in the soak that found this).
const AWAY: Duration = Duration::from_secs(8);
const ROUNDS: usize = 3;

fn promotion_named(world: &World, source: &Source, name: &str) -> Value {
    let (_, repository) = world.quay_target(name);
    let mut object = promotion(
        world,
        source,
        json!({"encryption": "KMS"}),
        json!([quay_target("quay", &repository)]),
    );
    object["metadata"]["name"] = json!(name);
    object
}

#[tokio::test]
async fn after_an_apiserver_restart_new_promotions_are_promoted_and_deleted_ones_forgotten() {
    let private = PrivateWorld::start("resumed-world").await;
    let world = World::with_env(private.env.clone()).await;
    let cluster = Cluster::start_in(private.env.clone(), "op-resumed").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-resumed", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;

    // One promotion that stays, and one per round to delete after that round's restart.
    let mut live = vec![create(&cluster, promotion_named(&world, &source, "kept")).await];
    for round in 0..ROUNDS {
        create(
            &cluster,
            promotion_named(&world, &source, &format!("deleted-{round}")),
        )
        .await;
    }
    for name in
        std::iter::once("kept".to_string()).chain((0..ROUNDS).map(|r| format!("deleted-{r}")))
    {
        operator
            .wait_status(&cluster, &name, "Ready", |s| {
                is(s, "Ready", ("True", "Promoted"))
            })
            .await;
    }

    let api: Api<ImagePromotion> = cluster.typed();
    for round in 0..ROUNDS {
        private.stop("kube-apiserver").await;
        // The outage itself, not a wait for something to happen.
        tokio::time::sleep(AWAY).await;
        private.start_stopped().await;

        // Deleted first, created next: once the new one is seen, so is the deletion.
        api.delete(&format!("deleted-{round}"), &DeleteParams::default())
            .await
            .expect("deleting a promotion after the restart");
        let name = create(
            &cluster,
            promotion_named(&world, &source, &format!("new-{round}")),
        )
        .await;
        let created = Instant::now();
        operator
            .wait_status(&cluster, &name, "Ready", |s| {
                is(s, "Ready", ("True", "Promoted"))
            })
            .await;
        let took = created.elapsed();
        eprintln!("round {round}: {name} Ready {took:.1?} after its creation");
        assert!(
            took < BOUND,
            "round {round}: {name}, created right after the apiserver restarted, took {took:?} to be Ready (bound {BOUND:?}); the operator's log:\n{}",
            operator.log()
        );
        live.push(name);
    }

    // Forgotten: the gauges count exactly the promotions that exist (a
    // deletion the watch missed while it listed again is pruned within a minute).
    let url = operator.metrics_url.clone();
    let expected = live.len() as f64;
    operator
        .eventually(
            &format!("the gauges to count the {expected} promotions that exist"),
            || {
                let url = url.clone();
                async move {
                    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                    (promotions_gauge(&text) == expected).then_some(())
                }
            },
        )
        .await;
}
