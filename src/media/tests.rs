//! The media loop in-process, with headless peers (sb-peer, the same rtc
//! stack) on loopback: delivery, mute, deafen, leave and room isolation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sb_peer::Peer;
use tokio::sync::mpsc;

use super::*;

/// Every wait is bounded by this (a loaded machine is slow, never this slow).
const WAIT: Duration = Duration::from_secs(30);

/// The media loop and the peers joined to it, signalling wired through.
struct Rig {
    handle: MediaHandle,
    metrics: Arc<Metrics>,
    peers: HashMap<MemberId, Peer>,
    answers: mpsc::UnboundedSender<(MemberId, serde_json::Value)>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    pending: mpsc::UnboundedReceiver<(MemberId, serde_json::Value)>,
}

impl Rig {
    fn start() -> Rig {
        let metrics = Arc::new(Metrics::default());
        let (tx, events) = mpsc::unbounded_channel();
        let config = MediaConfig {
            port: 0,
            public_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        };
        let handle = start(config, metrics.clone(), move |event| {
            let _ = tx.send(event);
        })
        .unwrap();
        let (answers, pending) = mpsc::unbounded_channel();
        Rig {
            handle,
            metrics,
            peers: HashMap::new(),
            answers,
            events,
            pending,
        }
    }

    async fn join(&mut self, id: u64, room: &str) -> MemberId {
        let member = MemberId(id);
        let (peer, mut out) = Peer::spawn(id as u32).await.unwrap();
        let answers = self.answers.clone();
        tokio::spawn(async move {
            while let Some(data) = out.recv().await {
                if answers.send((member, data)).is_err() {
                    break;
                }
            }
        });
        self.peers.insert(member, peer);
        self.handle
            .join(member, SessionId(format!("s{id}")), RoomCode(room.into()))
            .unwrap();
        member
    }

    /// Passes signalling both ways until `done` holds.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Rig) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            tokio::select! {
                Some(event) = self.events.recv() => self.deliver(event),
                Some((member, data)) = self.pending.recv() => {
                    let version = data["version"].as_u64().unwrap() as u32;
                    let sdp = data["sdp"].as_str().unwrap().to_owned();
                    self.handle.answer(member, version, sdp).unwrap();
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }

    fn deliver(&mut self, event: MediaEvent) {
        match event {
            MediaEvent::Signal { member, data } => {
                if let Some(peer) = self.peers.get(&member) {
                    peer.signal(serde_json::to_value(data).unwrap());
                }
            }
            MediaEvent::Refused { member, message } => panic!("{member:?} refused: {message}"),
            MediaEvent::Ended { member, reason } => {
                if let Some(peer) = self.peers.get(&member) {
                    peer.signal(serde_json::json!({"action": "closed", "reason": reason}));
                }
            }
        }
    }

    /// Members `ids` join `room` and talk, until each has heard each other
    /// `packets` times.
    async fn talking<const N: usize>(&mut self, room: &str, ids: [u64; N], packets: u64) -> [MemberId; N] {
        let mut members = ids.map(MemberId);
        for (member, id) in members.iter_mut().zip(ids) {
            *member = self.join(id, room).await;
        }
        for id in &members {
            self.peer(*id).set_sending(true);
        }
        let pairs: Vec<(MemberId, MemberId)> = members
            .iter()
            .flat_map(|to| {
                members
                    .iter()
                    .filter(move |from| *from != to)
                    .map(move |from| (*to, *from))
            })
            .collect();
        self.until("everyone hears everyone", |r| {
            pairs.iter().all(|(to, from)| r.from(*to, *from) >= packets)
        })
        .await;
        members
    }

    fn peer(&self, id: MemberId) -> &Peer {
        &self.peers[&id]
    }

    fn from(&self, to: MemberId, from: MemberId) -> u64 {
        self.peer(to).packets_from(&format!("s{}", from.0))
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT * 3, future)
        .await
        .expect("the test took too long")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_reaches_the_other_member_with_its_payload() {
    within(async {
        let mut rig = Rig::start();
        let [a, b] = rig.talking("r", [1, 2], 50).await;
        let stats = rig.peer(b).stats();
        assert_eq!(stats.from["s1"].tags, vec![1], "b hears a's packets, and only a's");
        assert_eq!(stats.foreign + stats.unattributed, 0);
        assert!(stats.errors.is_empty(), "{:?}", stats.errors);
        assert_eq!(rig.peer(a).stats().from["s2"].tags, vec![2]);
        assert!(rig.metrics.sfu_packets_forwarded.load(Ordering::Relaxed) >= 100);
        assert_eq!(rig.metrics.sfu_members.load(Ordering::Relaxed), 2);
    })
    .await;
}

/// Waits until `to` has `more` further packets from `from`: the loop has
/// moved on by that much since now.
async fn heard_more(rig: &mut Rig, to: MemberId, from: MemberId, more: u64) {
    let target = rig.from(to, from) + more;
    rig.until("more voice", |r| r.from(to, from) >= target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_member_is_not_forwarded_until_unmuted() {
    within(async {
        let mut rig = Rig::start();
        let [a, b] = rig.talking("r", [1, 2], 20).await;
        rig.handle.set_muted(a, true).unwrap();
        // b's voice reaching a is the clock: once 25 more of its packets went
        // through the loop, the mute is in force; after 50 more, nothing of
        // a's may have followed.
        heard_more(&mut rig, a, b, 25).await;
        let at_mute = rig.from(b, a);
        heard_more(&mut rig, a, b, 50).await;
        assert_eq!(rig.from(b, a), at_mute, "a muted member's voice went through");

        rig.handle.set_muted(a, false).unwrap();
        rig.until("a's voice again", |r| r.from(b, a) >= at_mute + 20).await;
        assert!(rig.peer(b).stats().errors.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deafened_member_hears_nothing_and_is_not_heard() {
    within(async {
        let mut rig = Rig::start();
        let [a, b, c] = rig.talking("r", [1, 2, 3], 20).await;
        rig.handle.set_deafened(b, true).unwrap();
        heard_more(&mut rig, c, a, 25).await;
        let before = [rig.from(b, a), rig.from(b, c), rig.from(a, b), rig.from(c, b)];
        heard_more(&mut rig, c, a, 50).await;
        let after = [rig.from(b, a), rig.from(b, c), rig.from(a, b), rig.from(c, b)];
        assert_eq!(after, before, "b heard or was heard while deafened");
        assert!(rig.from(a, c) > 0, "the others still hear each other");

        rig.handle.set_deafened(b, false).unwrap();
        rig.until("b hears and is heard again", |r| {
            r.from(b, a) >= before[0] + 20 && r.from(a, b) >= before[2] + 20
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_stops_the_voice_and_frees_the_slot_for_the_next_member() {
    within(async {
        let mut rig = Rig::start();
        let [a, b] = rig.talking("r", [1, 2], 20).await;
        let answers = rig.peer(b).stats().answers;

        rig.handle.leave(a).unwrap();
        rig.until("b told that a's slot is idle", |r| {
            r.peer(b).stats().tracks.values().all(Option::is_none)
        })
        .await;
        assert_eq!(rig.metrics.sfu_members.load(Ordering::Relaxed), 1);
        let at_leave = rig.from(b, a);

        // The next member takes the idle slot: b is told who it carries,
        // with no new offer.
        let c = rig.join(3, "r").await;
        rig.peer(c).set_sending(true);
        rig.until("c's voice at b", |r| r.from(b, c) >= 20).await;
        assert_eq!(rig.peer(b).stats().answers, answers, "the slot was reused, not added");
        assert_eq!(rig.peer(b).stats().from["s3"].tags, vec![3]);
        assert_eq!(rig.from(b, a), at_leave, "a's voice went on after its leave");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_hear_only_themselves() {
    within(async {
        let mut rig = Rig::start();
        let [a, b] = rig.talking("one", [1, 2], 50).await;
        let [c, d] = rig.talking("two", [3, 4], 50).await;
        // Room one went on talking while room two started.
        heard_more(&mut rig, a, b, 50).await;
        for (id, own_room) in [(a, [1, 2]), (b, [1, 2]), (c, [3, 4]), (d, [3, 4])] {
            let stats = rig.peer(id).stats();
            assert_eq!(stats.foreign + stats.unattributed, 0);
            for (sid, received) in &stats.from {
                for tag in &received.tags {
                    assert!(own_room.contains(tag), "{sid} brought tag {tag} into room of {id:?}");
                }
            }
            assert_eq!(stats.from.len(), 1, "{id:?} hears exactly its one room-mate");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_who_never_speaks_adds_no_m_line_to_the_others() {
    within(async {
        let mut rig = Rig::start();
        let [a, b] = rig.talking("r", [1, 2], 20).await;
        let answers = [rig.peer(a).stats().answers, rig.peer(b).stats().answers];

        // c only listens: its first offer holds both speakers' slots, and
        // nobody else is offered anything for it.
        let c = rig.join(3, "r").await;
        rig.until("c hears both", |r| r.from(c, a) >= 20 && r.from(c, b) >= 20)
            .await;
        assert_eq!(rig.peer(c).stats().answers, 1);
        assert_eq!([rig.peer(a).stats().answers, rig.peer(b).stats().answers], answers);
        assert_eq!(rig.peer(a).stats().tracks.len(), 1, "a has one slot: b's");

        // Once c speaks, the others get a slot for it.
        rig.peer(c).set_sending(true);
        rig.until("c's voice at a and b", |r| r.from(a, c) >= 20 && r.from(b, c) >= 20)
            .await;
        assert_eq!(rig.peer(a).stats().from["s3"].tags, vec![3]);
    })
    .await;
}
