//! `hyperdht listen` and `hyperdht connect`: reachability between two machines from a shell.
//!
//! - `listen [--seed HEX] [--echo]` prints `{"publicKey": HEX}` on stderr, then either echoes
//!   every connection back to its sender (`--echo`, any number at once) or pipes the first
//!   connection to stdout and stdin to it, and exits when that connection ends (or on Ctrl-C /
//!   SIGTERM, unannouncing the key).
//! - `connect PUBLIC_KEY` pipes stdin to one connection and the connection to stdout; on
//!   stderr it prints `{"connected": HOW, "ms": N, "remotePublicKey": HEX}` once the stream is
//!   open. Stdin's end ends our half; the command exits once the server ends its half.

use std::time::Instant;

use dht::runtime::{Connection, HyperDhtNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Result, err, from_hex32, js, key_pair, stopped, to_hex};

/// `listen`.
pub(crate) async fn listen(dht: &HyperDhtNode, seed: Option<&str>, echo: bool) -> Result<()> {
    let kp = key_pair(seed)?;
    let mut server = dht
        .listen(&kp, None)
        .await
        .map_err(|e| err(format!("cannot listen: {e}")))?;
    eprintln!("{{\"publicKey\":{}}}", js(&to_hex(&kp.public_key)));
    let result = tokio::select! {
        r = serve(&mut server, echo) => r,
        () = stopped() => Ok(()),
    };
    server.close().await;
    result
}

async fn serve(server: &mut dht::runtime::Server, echo: bool) -> Result<()> {
    loop {
        let Some(conn) = server.accept().await else {
            return Err(err("the DHT node stopped"));
        };
        eprintln!(
            "{{\"connection\":{},\"remoteAddress\":{}}}",
            js(&to_hex(&conn.remote_public_key)),
            js(&conn.remote_addr.map(|a| a.to_string()).unwrap_or_default())
        );
        if echo {
            tokio::spawn(echo_back(conn));
        } else {
            return pipe(conn).await;
        }
    }
}

async fn echo_back(mut conn: Connection) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match conn.stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let Some(chunk) = buf.get(..n) else { break };
                if conn.stream.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = conn.stream.shutdown().await;
}

/// stdin → connection (then our half ends), connection → stdout until the peer's half ends.
async fn pipe(conn: Connection) -> Result<()> {
    let (mut reader, mut writer) = conn
        .stream
        .into_split()
        .await
        .map_err(|e| err(format!("connection failed: {e}")))?;
    let up = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let Some(chunk) = buf.get(..n) else { break };
                    if writer.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    let copied = tokio::io::copy(&mut reader, &mut stdout).await;
    let _ = stdout.flush().await;
    // The peer ended its half; stop reading stdin (a terminal would block forever).
    up.abort();
    copied
        .map(|_| ())
        .map_err(|e| err(format!("connection failed: {e}")))
}

/// `connect`.
pub(crate) async fn connect(dht: &HyperDhtNode, public_key: &str) -> Result<()> {
    let pk = from_hex32(public_key, "public key")?;
    let start = Instant::now();
    let conn = dht
        .connect(pk)
        .await
        .map_err(|e| err(format!("cannot connect: {e}")))?;
    eprintln!(
        "{{\"connected\":{},\"ms\":{},\"remotePublicKey\":{},\"remoteAddress\":{}}}",
        js(&conn.how.to_string()),
        start.elapsed().as_millis(),
        js(&to_hex(&conn.remote_public_key)),
        js(&conn.remote_addr.map(|a| a.to_string()).unwrap_or_default())
    );
    pipe(conn).await
}
