//! The `RedisCluster` guard itself, checked with `redis-cli` alone (no
//! greenhub-redis): the cluster it starts serves every slot, a killed master
//! is replaced by its replica, and a resharding moves the slots it says.

use greenhub_tests::RedisCluster;

#[test]
fn a_started_cluster_has_three_masters_with_a_replica_each_serving_every_slot() {
    let cluster = RedisCluster::start();
    let topology = cluster.topology();
    assert_eq!(topology.len(), 6);
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    for master in &masters {
        let replica = cluster.replica_of(*master);
        assert!(!masters.contains(&replica));
    }
    let served: usize = topology
        .iter()
        .flat_map(|n| &n.slots)
        .map(|&(a, b)| usize::from(b - a) + 1)
        .sum();
    assert_eq!(served, 16384);
    let slot: u16 = cluster
        .cli(masters[0], &["CLUSTER", "KEYSLOT", "a"])
        .parse()
        .unwrap();
    assert_eq!(
        cluster.cli(cluster.master_of_slot(slot), &["SET", "a", "1"]),
        "OK"
    );
}

#[test]
fn a_killed_master_is_replaced_by_its_replica_and_rejoins_as_a_replica() {
    let mut cluster = RedisCluster::start();
    let master = cluster.master_ports()[2];
    let replica = cluster.replica_of(master);
    cluster.kill_node(master);
    cluster.wait_for_promotion(replica);
    assert!(cluster.master_ports().contains(&replica));
    cluster.restart_node(master);
    cluster.wait_until_ready();
    assert_eq!(cluster.replica_of(replica), master);
}

#[test]
fn a_reshard_moves_the_lowest_slots_of_its_source() {
    let cluster = RedisCluster::start();
    let masters = cluster.master_ports();
    assert_eq!(cluster.master_of_slot(0), masters[0]);
    cluster.reshard(masters[0], masters[1], 100).wait();
    cluster.wait_until_ready();
    assert_eq!(cluster.master_of_slot(0), masters[1]);
    assert_eq!(cluster.master_of_slot(99), masters[1]);
    assert_eq!(cluster.master_of_slot(100), masters[0]);
}

#[test]
fn a_whole_cluster_killed_and_restarted_serves_again() {
    let mut cluster = RedisCluster::start();
    cluster.kill_all();
    assert!(cluster.live_ports().is_empty());
    cluster.restart_all();
    assert_eq!(cluster.master_ports().len(), 3);
}
