//! `TCP_NODELAY` on the driver's sockets.
//!
//! SQLx 0.9.0 stopped setting it (launchbadge/sqlx#4335; fixed by #4336, merged but not
//! released at the time of writing). Without it, a statement larger than one TCP
//! segment leaves its last partial segment in the kernel until the server acknowledges
//! the previous one, and the server delays that acknowledgement by up to 40 ms: every
//! large statement stalls. SQLx gives no hook on its socket, so after each new
//! connection we find the process's TCP sockets whose peer is the database server and
//! set the option on them. Setting it again on a socket that has it is harmless, and
//! every socket to the database server is a driver socket that wants it.
//!
//! Remove this module (and its two `hook_into` calls in `connect_options`) once the workspace builds
//! against an SQLx release that sets `TCP_NODELAY` itself: the test
//! `connection_every_database_socket_has_tcp_nodelay` keeps passing without it then.

use std::net::{IpAddr, SocketAddr};

/// The database server, as the sockets to it will name their peer.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    host: String,
    port: u16,
}

impl Server {
    pub(crate) fn new(host: String, port: u16) -> Self {
        Self { host, port }
    }

    async fn addresses(&self) -> Vec<IpAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return vec![ip];
        }
        match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
            Ok(found) => found.map(|addr| addr.ip()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// `pool` with the hook that sets `TCP_NODELAY` after each new connection.
    pub(crate) fn hook_into<DB: sea_orm::sqlx::Database>(
        self,
        pool: sea_orm::sqlx::pool::PoolOptions<DB>,
    ) -> sea_orm::sqlx::pool::PoolOptions<DB> {
        pool.after_connect(move |_, _| {
            let server = self.clone();
            Box::pin(async move {
                server.enable_nodelay().await;
                Ok(())
            })
        })
    }

    /// Sets `TCP_NODELAY` on every socket of this process connected to the server;
    /// returns how many it found.
    pub(crate) async fn enable_nodelay(&self) -> usize {
        let addresses = self.addresses().await;
        let port = self.port;
        let is_server = move |peer: SocketAddr| {
            peer.port() == port && addresses.iter().any(|ip| same_ip(*ip, peer.ip()))
        };
        let mut found = 0;
        for_each_tcp_socket(|socket| {
            let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
            if peer.is_some_and(&is_server) {
                found += 1;
                if let Err(error) = socket.set_tcp_nodelay(true) {
                    tracing::warn!(%error, "could not set TCP_NODELAY on a database socket");
                }
            }
        });
        found
    }
}

/// A socket of this process connected to the database server, and whether it has
/// `TCP_NODELAY` (tests use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseSocket {
    pub local: SocketAddr,
    pub nodelay: bool,
}

/// The sockets of this process connected to `host:port` (an IP address; any address
/// when `host` is a name).
pub fn database_sockets(host: &str, port: u16) -> Vec<DatabaseSocket> {
    let ip: Option<IpAddr> = host.parse().ok();
    let mut sockets = Vec::new();
    for_each_tcp_socket(|socket| {
        if let Some(peer) = socket.peer_addr().ok().and_then(|a| a.as_socket())
            && peer.port() == port
            && ip.is_none_or(|ip| same_ip(ip, peer.ip()))
            && let Some(local) = socket.local_addr().ok().and_then(|a| a.as_socket())
        {
            sockets.push(DatabaseSocket {
                local,
                nodelay: socket.tcp_nodelay().unwrap_or(false),
            });
        }
    });
    sockets
}

/// An IPv4 server reached over a dual-stack socket is named `::ffff:a.b.c.d`.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(target_os = "linux")]
fn for_each_tcp_socket(mut visit: impl FnMut(socket2::SockRef<'_>)) {
    use std::os::fd::{BorrowedFd, RawFd};
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is borrowed for a few socket-option calls and never
        // closed through it. Another thread may close it meanwhile; the kernel then
        // answers EBADF (ignored), or, if the number was reused for a new socket, the
        // peer check decides as for any other socket.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        visit(socket2::SockRef::from(&fd));
    }
}

#[cfg(not(target_os = "linux"))]
fn for_each_tcp_socket(_visit: impl FnMut(socket2::SockRef<'_>)) {
    // No portable way to list a process's descriptors; large statements may stall
    // here until SQLx sets TCP_NODELAY itself.
}
