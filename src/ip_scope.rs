//! What one IP ban covers: an IPv4 address exactly, or the whole /64 of an
//! IPv6 address. A /64 is what one subscriber or host is given, and its low
//! bits cost nothing to change, so banning a single IPv6 address would ban
//! nobody. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is its IPv4
//! address. The database compares addresses with the same function, as the
//! SQL function `ip_scope(text)`, so the ban check, the deletion of login
//! sessions and the registry's matching of live sockets always agree.

use std::net::{IpAddr, Ipv6Addr};

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;

/// The bits of an IPv6 address that a ban keeps.
const IPV6_PREFIX_BITS: u32 = 64;

/// The scope of `ip` as text: `203.0.113.9`, or `2001:db8:1:2::/64`.
pub fn scope(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & (u128::MAX << (128 - IPV6_PREFIX_BITS));
            format!("{}/{IPV6_PREFIX_BITS}", Ipv6Addr::from(network))
        }
    }
}

/// The scope of an address stored as text. Text that is not an address
/// (none is stored; this is defence) is its own scope, so it matches only
/// itself.
pub fn scope_of(text: &str) -> String {
    text.parse().map(scope).unwrap_or_else(|_| text.to_owned())
}

/// True when a ban on `banned` covers a client at `client`.
pub fn covers(banned: &str, client: &str) -> bool {
    scope_of(banned) == scope_of(client)
}

/// Makes `ip_scope(text)` available to SQL on this connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "ip_scope",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|text| scope_of(&text))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_exact() {
        assert!(covers("203.0.113.9", "203.0.113.9"));
        assert!(!covers("203.0.113.9", "203.0.113.10"));
    }

    #[test]
    fn ipv6_covers_its_slash_64() {
        assert_eq!(scope_of("2001:db8:1:2::99"), "2001:db8:1:2::/64");
        assert!(covers("2001:db8:1:2::99", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(covers("2001:DB8:1:2:0:0:0:1", "2001:db8:1:2::abcd"));
        assert!(!covers("2001:db8:1:2::99", "2001:db8:1:3::99"));
    }

    #[test]
    fn ipv4_mapped_is_ipv4() {
        assert!(covers("::ffff:203.0.113.9", "203.0.113.9"));
        assert!(covers("203.0.113.9", "::ffff:203.0.113.9"));
        assert!(!covers("::ffff:203.0.113.9", "::ffff:203.0.113.10"));
    }

    #[test]
    fn text_that_is_no_address_matches_only_itself() {
        assert!(covers("nonsense", "nonsense"));
        assert!(!covers("nonsense", "203.0.113.9"));
    }

    #[test]
    fn sql_uses_the_same_rule() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let same: bool = conn
            .query_row(
                "SELECT ip_scope('2001:db8:1:2::1') = ip_scope('2001:db8:1:2::2') AND ip_scope(NULL) IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(same);
    }
}
