//! A TCP proxy a test can pause: the server behind it stops answering without closing
//! anything, as when its host hangs or a network drops packets. A refused connection
//! fails fast; this is the fault that makes a client wait.
//!
//! It can also be cut, as when the server restarts: every connection through it is
//! closed at once and each new one is reset as soon as it arrives, until it is restored.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    paused: watch::Sender<bool>,
    cut: watch::Sender<bool>,
}

/// Copies one direction, holding every byte while the proxy is paused.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 || paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits until the proxy is cut (or gone).
async fn until_cut(mut cut: watch::Receiver<bool>) {
    let _ = cut.wait_for(|c| *c).await;
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, rx) = watch::channel(false);
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    // The server is down: the client's connection is reset at once.
                    let _ = client.set_zero_linger();
                    drop(client);
                    continue;
                }
                let rx = rx.clone();
                let cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let forward = async {
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(pipe(cr, sw, rx.clone()), pipe(sr, cw, rx));
                    };
                    // A cut drops both sockets, whatever they are doing.
                    tokio::select! {
                        _ = forward => {}
                        _ = until_cut(cut_rx) => {}
                    }
                });
            }
        });
        Self { addr, paused, cut }
    }

    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// The server restarts: every connection is closed, new ones are reset until
    /// [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// The server is back: connections go through again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

#[tokio::test]
async fn a_cut_closes_every_connection_and_resets_new_ones_until_restored() {
    // An echo server behind the proxy.
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = server.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let proxy = Proxy::start(target).await;
    let echo = |mut s: TcpStream| async move {
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.ok()?;
        Some((buf == *b"ping").then_some(s)).flatten()
    };
    let live = echo(TcpStream::connect(proxy.addr).await.unwrap())
        .await
        .expect("echo through the proxy");

    proxy.cut();
    let mut live = live;
    let mut buf = [0u8; 4];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = live.write_all(b"ping").await;
        live.read(&mut buf).await
    })
    .await
    .expect("the cut connection does not hang");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let refused = match TcpStream::connect(proxy.addr).await {
        Ok(s) => echo(s).await,
        Err(_) => None,
    };
    assert!(refused.is_none(), "a new connection is reset while cut");

    proxy.restore();
    assert!(echo(TcpStream::connect(proxy.addr).await.unwrap())
        .await
        .is_some());
}
