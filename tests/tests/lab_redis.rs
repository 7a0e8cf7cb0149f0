//! The lab's redis-server runs on the SHIPPED redis.conf (rendered) and
//! behaves as a cache: allkeys-lru eviction really evicts when memory runs
//! out, nothing is persisted, the default user is off.

use okome_lab::Lab;
use okome_lab::redis::Reply;

#[test]
fn lab_redis_is_an_evicting_cache() {
    let lab = Lab::builder().redis(true).start();
    let redis = lab.redis();
    assert_eq!(redis.config_get("maxmemory-policy").unwrap(), "allkeys-lru");
    assert_eq!(redis.config_get("appendonly").unwrap(), "no");
    assert_eq!(redis.config_get("save").unwrap(), "");
    // Shrink the limit (the shipped one is for a real Pi) and overfill it.
    let used: u64 = info_field(redis, "used_memory").parse().unwrap();
    let limit = (used + 2 * 1024 * 1024).to_string();
    assert_eq!(
        redis
            .command(&["CONFIG", "SET", "maxmemory", &limit])
            .unwrap(),
        Reply::Simple("OK".into())
    );
    let value = "v".repeat(10_000);
    for i in 0..1000 {
        let key = format!("okome:planner:lab:{i}");
        let reply = redis.command(&["SET", &key, &value]).unwrap();
        assert_eq!(
            reply,
            Reply::Simple("OK".into()),
            "SET {key} refused: writes must evict, not fail"
        );
    }
    let evicted: u64 = info_field(redis, "evicted_keys").parse().unwrap();
    assert!(
        evicted > 0,
        "no key evicted after writing ~10 MB into a 2 MB headroom"
    );
}

#[test]
fn lab_redis_refuses_the_default_user() {
    let lab = Lab::builder().redis(true).start();
    let refused = lab.redis().command_as("default", "", &["PING"]);
    assert!(refused.is_err(), "{refused:?}");
}

fn info_field(redis: &okome_lab::redis::Redis, field: &str) -> String {
    let info = redis.command(&["INFO"]).unwrap().text().unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in INFO"))
        .trim()
        .to_owned()
}
