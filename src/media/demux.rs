//! Which member a datagram on the shared UDP port belongs to.
//!
//! Every member's peer connection has its own ICE username fragment. A
//! browser's connectivity check (a STUN binding request) names it in its
//! USERNAME (`<our ufrag>:<theirs>`), so the first check from an address
//! ties that address to the member; everything else (DTLS, SRTP, later
//! checks) is then routed by source address. A check naming another ufrag
//! moves the address (a NAT binding reused by someone else). The member's
//! ICE agent still verifies each check's MESSAGE-INTEGRITY, so naming a
//! ufrag gains a sender nothing but a place to be refused.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{is_stun_message, Message};
use rtc::stun::textattrs::Username;

/// Addresses remembered per member; older ones are forgotten past this.
const ADDRS_PER_MEMBER: usize = 8;

#[derive(Debug)]
pub struct Demux<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
    addrs_of: HashMap<K, Vec<SocketAddr>>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            addrs_of: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Demux<K> {
    pub fn add(&mut self, ufrag: String, key: K) {
        self.by_ufrag.insert(ufrag, key);
    }

    /// Forgets a member: its ufrag and every address routed to it.
    pub fn remove(&mut self, ufrag: &str, key: K) {
        self.by_ufrag.remove(ufrag);
        for addr in self.addrs_of.remove(&key).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The member a datagram from `from` is for, if any.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<K> {
        if is_stun_message(datagram) {
            if let Some(key) = self.key_named_in(datagram) {
                self.remember(from, key);
                return Some(key);
            }
        }
        self.by_addr.get(&from).copied()
    }

    fn key_named_in(&self, datagram: &[u8]) -> Option<K> {
        let mut message = Message::new();
        message.unmarshal_binary(datagram).ok()?;
        let username = Username::get_from_as(&message, ATTR_USERNAME).ok()?;
        let ours = username.text.split_once(':')?.0;
        self.by_ufrag.get(ours).copied()
    }

    fn remember(&mut self, from: SocketAddr, key: K) {
        match self.by_addr.insert(from, key) {
            Some(previous) if previous == key => return,
            Some(previous) => {
                if let Some(addrs) = self.addrs_of.get_mut(&previous) {
                    addrs.retain(|a| *a != from);
                }
            }
            None => {}
        }
        let addrs = self.addrs_of.entry(key).or_default();
        addrs.push(from);
        if addrs.len() > ADDRS_PER_MEMBER {
            let oldest = addrs.remove(0);
            self.by_addr.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{Setter, TransactionId, BINDING_REQUEST};
    use rtc::stun::textattrs::TextAttribute;

    fn binding_request(username: &str) -> Vec<u8> {
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ];
        let mut m = Message::new();
        m.build(&setters).unwrap();
        m.raw
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_check_ties_its_address_to_the_member_it_names() {
        let mut demux = Demux::default();
        demux.add("ufragA".into(), 1u32);
        demux.add("ufragB".into(), 2u32);
        assert_eq!(demux.route(addr(5000), b"\x16\xfe\xfd dtls"), None, "unknown address");
        assert_eq!(demux.route(addr(5000), &binding_request("ufragB:theirs")), Some(2));
        assert_eq!(demux.route(addr(5000), b"\x16\xfe\xfd dtls"), Some(2));
        assert_eq!(demux.route(addr(5001), &binding_request("nobody:theirs")), None);
        assert_eq!(demux.route(addr(5001), &binding_request("ufragB")), None, "no colon");
    }

    #[test]
    fn an_address_moves_to_the_member_its_latest_check_names() {
        let mut demux = Demux::default();
        demux.add("ufragA".into(), 1u32);
        demux.add("ufragB".into(), 2u32);
        demux.route(addr(5000), &binding_request("ufragA:x"));
        demux.route(addr(5000), &binding_request("ufragB:x"));
        assert_eq!(demux.route(addr(5000), b"media"), Some(2));
        demux.remove("ufragA", 1);
        assert_eq!(
            demux.route(addr(5000), b"media"),
            Some(2),
            "removing A keeps B's address"
        );
        demux.remove("ufragB", 2);
        assert_eq!(demux.route(addr(5000), b"media"), None);
        assert_eq!(demux.addresses(), 0);
    }

    #[test]
    fn a_member_keeps_a_bounded_number_of_addresses() {
        let mut demux = Demux::default();
        demux.add("ufragA".into(), 1u32);
        for port in 0..100 {
            demux.route(addr(6000 + port), &binding_request("ufragA:x"));
        }
        assert_eq!(demux.addresses(), ADDRS_PER_MEMBER);
        assert_eq!(demux.route(addr(6099), b"media"), Some(1));
        assert_eq!(demux.route(addr(6000), b"media"), None);
    }
}
