//! Loopback TCP connections as the kernel lists them (`/proc/net/tcp`, `/proc/net/tcp6`):
//! how many connections a server holds, seen from outside the server, so a test can check
//! that many requests went over few connections.

/// `/proc/net/tcp*` state code of an established connection.
const ESTABLISHED: &str = "01";

/// Established TCP connections whose local port is `port`: the server side of every
/// connection a server listening on `port` has accepted and not yet closed (in this network
/// namespace). Clients' sockets have an ephemeral local port and are not counted.
pub fn established_on_port(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| count_in_table(&table, port))
        .sum()
}

/// Rows of one table (header line first) with local port `port` in state established.
fn count_in_table(table: &str, port: u16) -> usize {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let mut fields = row.split_whitespace();
            let local = fields.nth(1).unwrap_or("");
            let state = fields.nth(1).unwrap_or("");
            local.rsplit_once(':').is_some_and(|(_, p)| p == want) && state == ESTABLISHED
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_server_side_of_established_rows() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2C1B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:2C1B 0200007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0200007F:D431 0100007F:2C1B 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:2C1B 0300007F:D432 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0 0 0 0 0 0";
        // listener (0A), one established server side, its client side (other local port),
        // and a TIME_WAIT row (06)
        assert_eq!(count_in_table(table, 0x2C1B), 1);
        assert_eq!(count_in_table(table, 0xD431), 1);
        assert_eq!(count_in_table(table, 80), 0);
    }

    #[test]
    fn sees_a_live_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(established_on_port(port), 0);
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        assert_eq!(established_on_port(port), 1);
    }
}
