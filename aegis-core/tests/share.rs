//! The sharing policy against a real (embedded) store: what it shares, what it
//! never shares, thresholds, idempotence and the circuit breaker.

use aegis_core::decision::{parse_target, Action, AgentReport, Decision, Origin};
use aegis_core::share::SharePolicy;
use aegis_core::{BanEvent, ShareSettings};
use aegis_testkit::traffic::ban;
use aegis_testkit::TestStore;
use chrono::{Duration, Utc};

fn policy(settings: ShareSettings) -> SharePolicy {
    SharePolicy::from_settings(&ShareSettings {
        enabled: true,
        ..settings
    })
    .unwrap()
    .unwrap()
}

fn recent(addr: &str, jail: &str, host: &str) -> BanEvent {
    let mut e = ban(addr, jail, host, Utc::now() - Duration::seconds(5));
    e.bantime = Some(600);
    e
}

/// Records `events` and shares them, as the ban path's writer does.
async fn store_and_share(
    db: &TestStore,
    policy: &SharePolicy,
    events: &[BanEvent],
) -> Vec<Decision> {
    db.store.record_batch(events).await.unwrap();
    policy
        .share(db.store.as_ref(), events)
        .await
        .unwrap()
        .decided
}

#[tokio::test]
async fn a_ban_is_shared_once_for_every_host_as_long_as_it_lasted() {
    let db = TestStore::sqlite_memory().await;
    let p = policy(ShareSettings::default());
    let e = recent("45.155.205.7", "sshd", "web1");
    let made = store_and_share(&db, &p, std::slice::from_ref(&e)).await;
    assert_eq!(made.len(), 1);
    let d = &made[0];
    assert_eq!(
        (d.action, d.target_text(), d.hosts.len()),
        (Action::Ban, "45.155.205.7".into(), 0)
    );
    assert!(matches!(&d.origin, Origin::Policy { host, .. } if host == "web1"));
    let lasts = d.until.unwrap() - d.created;
    assert!(
        (Duration::seconds(599)..=Duration::seconds(601)).contains(&lasts),
        "{lasts}"
    );
    // Stored again (a writer's retry) or seen again: no second decision.
    let again = store_and_share(&db, &p, std::slice::from_ref(&e)).await;
    assert!(again.is_empty(), "{again:?}");
    let later = recent("45.155.205.7", "sshd", "web2");
    assert!(
        store_and_share(&db, &p, &[later]).await.is_empty(),
        "already banned everywhere for as long"
    );
    assert_eq!(db.store.decision_log().after(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn some_bans_are_never_shared() {
    let db = TestStore::sqlite_memory().await;
    let p = policy(ShareSettings {
        jails: vec!["sshd".into()],
        ..ShareSettings::default()
    });
    db.store
        .decision_log()
        .report_agent(&AgentReport {
            host: "web2".into(),
            addresses: vec!["45.155.205.2".parse().unwrap()],
            seen: Utc::now(),
            last: 0,
            applied: 0,
            refused: 0,
            failed: 0,
            error: None,
        })
        .await
        .unwrap();
    let allow = Decision::by_person(
        Action::Allow,
        parse_target("45.155.206.0/24").unwrap(),
        "ops",
        "",
    );
    db.store.decision_log().decide(&allow).await.unwrap();
    let mut restored = recent("45.155.205.9", "sshd", "web1");
    restored.restored = true;
    let never = [
        recent("192.168.1.5", "sshd", "web1"),          // private
        recent("203.0.113.5", "sshd", "web1"),          // documentation range
        recent("45.155.205.2", "sshd", "web1"),         // a reporting host's own address
        recent("45.155.206.7", "sshd", "web1"),         // allowed
        recent("45.155.205.8", "nginx", "web1"),        // not a shared jail
        recent("45.155.205.8", "aegis-shared", "web1"), // the shared jail itself
        restored,                                       // fail2ban re-applying an old ban
    ];
    assert!(store_and_share(&db, &p, &never).await.is_empty());
    assert_eq!(
        db.store.decision_log().after(0, 10).await.unwrap().len(),
        1,
        "the allow alone"
    );
}

#[tokio::test]
async fn thresholds_wait_for_enough_hosts_and_bans() {
    let db = TestStore::sqlite_memory().await;
    let p = policy(ShareSettings {
        min_hosts: Some(2),
        min_bans: Some(3),
        within: Some("1h".into()),
        ..ShareSettings::default()
    });
    let ip = "45.155.205.7";
    assert!(store_and_share(&db, &p, &[recent(ip, "sshd", "web1")])
        .await
        .is_empty());
    let mut second = recent(ip, "sshd", "web1");
    second.time -= Duration::seconds(30);
    assert!(
        store_and_share(&db, &p, &[second]).await.is_empty(),
        "two bans, one host"
    );
    let mut old = recent(ip, "sshd", "web2");
    old.time = Utc::now() - Duration::hours(2);
    assert!(
        store_and_share(&db, &p, &[old]).await.is_empty(),
        "outside the period"
    );
    let made = store_and_share(&db, &p, &[recent(ip, "sshd", "web2")]).await;
    assert_eq!(made.len(), 1, "three bans from two hosts within the hour");
}

#[tokio::test]
async fn a_flood_from_one_host_opens_its_circuit_breaker() {
    let db = TestStore::sqlite_memory().await;
    let p = policy(ShareSettings {
        per_minute: Some(3),
        ..ShareSettings::default()
    });
    let flood: Vec<BanEvent> = (1..=10)
        .map(|i| recent(&format!("45.155.205.{i}"), "sshd", "web1"))
        .collect();
    db.store.record_batch(&flood).await.unwrap();
    let shared = p.share(db.store.as_ref(), &flood).await.unwrap();
    assert_eq!(shared.decided.len(), 3);
    assert_eq!(shared.tripped.into_iter().collect::<Vec<_>>(), ["web1"]);
    assert!(p.breaker_open(db.store.as_ref(), "web1").await.unwrap());
    assert!(!p.breaker_open(db.store.as_ref(), "web2").await.unwrap());
    let other = store_and_share(&db, &p, &[recent("45.155.207.1", "sshd", "web2")]).await;
    assert_eq!(other.len(), 1, "another host's bans are still shared");
}

#[test]
fn bad_settings_name_their_key() {
    let bad = |s: ShareSettings| {
        SharePolicy::from_settings(&ShareSettings { enabled: true, ..s })
            .unwrap_err()
            .to_string()
    };
    assert!(bad(ShareSettings {
        within: Some("soon".into()),
        ..Default::default()
    })
    .contains("[share] within"));
    assert!(bad(ShareSettings {
        min_hosts: Some(0),
        ..Default::default()
    })
    .contains("min_hosts"));
    assert!(bad(ShareSettings {
        jails: vec!["aegis-shared".into()],
        ..Default::default()
    })
    .contains("shared jail"));
    assert!(
        SharePolicy::from_settings(&ShareSettings::default())
            .unwrap()
            .is_none(),
        "off by default"
    );
}
