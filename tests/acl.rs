//! ACL through the real server: users (SETUSER/GETUSER/LIST/USERS/WHOAMI/
//! DELUSER), passwords, command/key/channel permissions and selectors,
//! NOPERM texts at top level, in MULTI (queue and EXEC time) and in
//! scripts, the ACL log, revocation of open connections, requirepass and
//! the access keys as the default user's passwords, aclfile LOAD/SAVE and
//! startup, protected mode, and differential checks against redis-server.

mod common;
use common::diff::{same_replies, script, Conn};
use common::TestServer;

/// Runs a space-separated command; returns the raw reply as text.
async fn q(c: &mut Conn, cmd: &str) -> String {
    let args: Vec<&[u8]> = cmd
        .split(' ')
        .map(|a| if a == "''" { &b""[..] } else { a.as_bytes() })
        .collect();
    String::from_utf8_lossy(&c.call(&args).await).into_owned()
}

async fn call(c: &mut Conn, args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.call(&v).await
}

async fn conn(srv: &TestServer) -> Conn {
    Conn::connect(srv.addr.port()).await
}

const NOPERM_KEYS: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";
const NOPERM_CHANNELS: &str =
    "-NOPERM this user has no permissions to access one of the channels used as arguments\r\n";

#[tokio::test]
async fn users_are_created_described_and_deleted() {
    let srv = TestServer::start();
    let mut c = conn(&srv).await;
    assert_eq!(q(&mut c, "ACL USERS").await, "*1\r\n$7\r\ndefault\r\n");
    assert_eq!(
        q(&mut c, "ACL LIST").await,
        "*1\r\n$34\r\nuser default on nopass ~* &* +@all\r\n"
    );
    assert_eq!(q(&mut c, "ACL WHOAMI").await, "$7\r\ndefault\r\n");
    assert_eq!(q(&mut c, "ACL SETUSER alice").await, "+OK\r\n");
    assert_eq!(
        q(&mut c, "ACL LIST").await,
        "*2\r\n$34\r\nuser alice off resetchannels -@all\r\n$34\r\nuser default on nopass ~* &* +@all\r\n"
    );
    assert_eq!(
        q(
            &mut c,
            "ACL SETUSER alice on >pw ~k* %R~r* &ch* +@all -@dangerous -get"
        )
        .await,
        "+OK\r\n"
    );
    let hash = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";
    let line = format!("user alice on #{hash} ~k* %R~r* resetchannels &ch* +@all -@dangerous -get");
    assert_eq!(
        q(&mut c, "ACL LIST").await,
        format!(
            "*2\r\n${}\r\n{line}\r\n$34\r\nuser default on nopass ~* &* +@all\r\n",
            line.len()
        )
    );
    // A failing SETUSER changes nothing (all modifiers or none).
    assert_eq!(
        q(&mut c, "ACL SETUSER alice off +nosuchcmd").await,
        "-ERR Error in ACL SETUSER modifier '+nosuchcmd': Unknown command or category name in ACL\r\n"
    );
    assert!(q(&mut c, "ACL GETUSER alice")
        .await
        .contains("$2\r\non\r\n"));
    assert_eq!(
        q(&mut c, "ACL SETUSER alice ~*").await,
        "+OK\r\n",
        "~* after patterns replaces them"
    );
    assert_eq!(
        q(&mut c, "ACL SETUSER alice ~x").await,
        "-ERR Error in ACL SETUSER modifier '~x': Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns\r\n"
    );
    assert_eq!(
        q(&mut c, "ACL SETUSER alice #abc").await,
        "-ERR Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters\r\n"
    );
    assert_eq!(
        q(&mut c, "ACL SETUSER alice <nothere").await,
        "-ERR Error in ACL SETUSER modifier '<nothere': The password you are trying to remove from the user does not exist\r\n"
    );
    assert_eq!(
        q(&mut c, "ACL SETUSER alice (+get ~x").await,
        "-ERR Unmatched parenthesis in acl selector starting at '(+get'.\r\n"
    );
    assert_eq!(
        q(&mut c, "ACL DELUSER default").await,
        "-ERR The 'default' user cannot be removed\r\n"
    );
    assert_eq!(q(&mut c, "ACL DELUSER alice nobody").await, ":1\r\n");
    assert_eq!(q(&mut c, "ACL GETUSER alice").await, "$-1\r\n");
    let g = q(&mut c, "ACL GENPASS").await;
    assert!(g.starts_with("$64\r\n"), "{g}");
    assert!(q(&mut c, "ACL GENPASS 5").await.starts_with("$2\r\n"));
    assert_eq!(
        q(&mut c, "ACL GENPASS 0").await,
        "-ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096\r\n"
    );
    assert_eq!(
        q(&mut c, "ACL CAT nosuch").await,
        "-ERR Unknown category 'nosuch'\r\n"
    );
    let cat = q(&mut c, "ACL CAT string").await;
    assert!(cat.contains("\r\nget\r\n") && !cat.contains("\r\nhset\r\n"));
    assert_eq!(
        q(&mut c, "ACL LOAD").await,
        "-ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.\r\n"
    );
}

#[tokio::test]
async fn command_key_and_channel_permissions() {
    let srv = TestServer::start();
    let mut admin = conn(&srv).await;
    q(
        &mut admin,
        "ACL SETUSER bob on >pw +@all -flushall %R~r* %W~w* ~rw* resetchannels &news.*",
    )
    .await;
    let mut c = conn(&srv).await;
    assert_eq!(
        q(&mut c, "AUTH bob wrong").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(q(&mut c, "AUTH bob pw").await, "+OK\r\n");
    assert_eq!(q(&mut c, "ACL WHOAMI").await, "$3\r\nbob\r\n");
    assert!(q(&mut c, "CLIENT INFO").await.contains(" user=bob "));
    assert_eq!(
        q(&mut c, "FLUSHALL").await,
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n"
    );
    assert_eq!(q(&mut c, "SET w1 v").await, "+OK\r\n");
    assert_eq!(q(&mut c, "GET w1").await, NOPERM_KEYS);
    assert_eq!(q(&mut c, "SET w1 v GET").await, NOPERM_KEYS);
    assert_eq!(q(&mut c, "GET r1").await, "$-1\r\n");
    assert_eq!(q(&mut c, "SET r1 v").await, NOPERM_KEYS);
    assert_eq!(q(&mut c, "SET rw1 v").await, "+OK\r\n");
    assert_eq!(q(&mut c, "GET rw1").await, "$1\r\nv\r\n");
    assert_eq!(q(&mut c, "MSET rw1 a other b").await, NOPERM_KEYS);
    assert_eq!(q(&mut c, "PUBLISH news.x m").await, ":0\r\n");
    assert_eq!(q(&mut c, "PUBLISH sports m").await, NOPERM_CHANNELS);
    assert_eq!(q(&mut c, "SUBSCRIBE sports").await, NOPERM_CHANNELS);
    assert_eq!(q(&mut c, "PSUBSCRIBE news.x*").await, NOPERM_CHANNELS);
    // Subcommands: allow CONFIG GET only.
    q(&mut admin, "ACL SETUSER bob -config +config|get").await;
    assert!(q(&mut c, "CONFIG GET maxmemory").await.starts_with("*2"));
    assert_eq!(
        q(&mut c, "CONFIG SET maxmemory 0").await,
        "-NOPERM this user has no permissions to run the 'config|set' command\r\n"
    );
    // Selectors: a second selector adds GET on x* only.
    q(
        &mut admin,
        "ACL SETUSER sel on nopass -@all +set ~s* (+get ~x*)",
    )
    .await;
    assert_eq!(q(&mut c, "AUTH sel any").await, "+OK\r\n");
    assert_eq!(q(&mut c, "GET x1").await, "$-1\r\n");
    assert_eq!(q(&mut c, "GET s1").await, NOPERM_KEYS);
    assert_eq!(q(&mut c, "SET x1 v").await, NOPERM_KEYS);
    assert_eq!(
        q(&mut c, "DEL s1").await,
        "-NOPERM this user has no permissions to run the 'del' command\r\n"
    );
    assert_eq!(
        q(&mut admin, "ACL DRYRUN sel get s1").await,
        "$51\r\nThis user has no permissions to access the 's1' key\r\n"
    );
    assert_eq!(q(&mut admin, "ACL DRYRUN sel get x1").await, "+OK\r\n");
    assert_eq!(
        q(&mut admin, "ACL DRYRUN nobody get x").await,
        "-ERR User 'nobody' not found\r\n"
    );
    assert_eq!(
        q(&mut admin, "ACL DRYRUN sel get").await,
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    let g = q(&mut admin, "ACL GETUSER sel").await;
    assert!(
        g.contains("$9\r\nselectors\r\n*1\r\n*6\r\n$8\r\ncommands\r\n$10\r\n-@all +get\r\n$4\r\nkeys\r\n$3\r\n~x*\r\n"),
        "{g}"
    );
}

#[tokio::test]
async fn multi_exec_and_scripts_are_checked() {
    let srv = TestServer::start();
    let mut admin = conn(&srv).await;
    q(&mut admin, "ACL SETUSER m on nopass +@all -del ~k*").await;
    let mut c = conn(&srv).await;
    q(&mut c, "AUTH m x").await;
    assert_eq!(q(&mut c, "MULTI").await, "+OK\r\n");
    assert_eq!(q(&mut c, "SET k1 v").await, "+QUEUED\r\n");
    assert_eq!(
        q(&mut c, "DEL k1").await,
        "-NOPERM this user has no permissions to run the 'del' command\r\n"
    );
    assert_eq!(
        q(&mut c, "EXEC").await,
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Rules changed between queueing and EXEC.
    q(&mut c, "MULTI").await;
    q(&mut c, "SET k1 v").await;
    q(&mut c, "GET k1").await;
    q(&mut admin, "ACL SETUSER m -get").await;
    assert_eq!(
        q(&mut c, "EXEC").await,
        "*2\r\n+OK\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand\r\n"
    );
    // redis.call checks the script caller's user.
    let args: Vec<&[u8]> = vec![b"EVAL", b"return redis.call('set','other','v')", b"0"];
    let r = String::from_utf8_lossy(&c.call(&args).await).into_owned();
    assert!(
        r.starts_with("-ERR The user executing the script can't access at least one of the keys mentioned in the command arguments"),
        "{r}"
    );
    let args: Vec<&[u8]> = vec![b"EVAL", b"return redis.call('set','k2','v')", b"0"];
    assert_eq!(c.call(&args).await, b"+OK\r\n");
    // ACL LOG: the script denial, the EXEC-time denial, the queue denial.
    let log = q(&mut admin, "ACL LOG").await;
    assert!(log.starts_with("*3\r\n"), "{log}");
    for want in [
        "$7\r\ncontext\r\n$3\r\nlua\r\n",
        "$7\r\ncontext\r\n$5\r\nmulti\r\n",
        "$6\r\nobject\r\n$5\r\nother\r\n",
        "$6\r\nreason\r\n$3\r\nkey\r\n",
        "$6\r\nobject\r\n$3\r\ndel\r\n",
        "$8\r\nusername\r\n$1\r\nm\r\n",
        "$11\r\nage-seconds\r\n",
        "$11\r\nclient-info\r\n",
    ] {
        assert!(log.contains(want), "{want:?} in {log}");
    }
    assert_eq!(q(&mut admin, "ACL LOG RESET").await, "+OK\r\n");
    assert_eq!(q(&mut admin, "ACL LOG").await, "*0\r\n");
    // Failed AUTH is logged with reason auth and object AUTH.
    q(&mut c, "AUTH m-nobody x").await;
    let log = q(&mut admin, "ACL LOG 1").await;
    assert!(
        log.contains("$4\r\nauth\r\n")
            && log.contains("$4\r\nAUTH\r\n")
            && log.contains("m-nobody"),
        "{log}"
    );
}

#[tokio::test]
async fn changes_reach_open_connections() {
    let srv = TestServer::start();
    let mut admin = conn(&srv).await;
    q(&mut admin, "ACL SETUSER u on >p +@all ~* &*").await;
    let mut c = conn(&srv).await;
    q(&mut c, "AUTH u p").await;
    assert_eq!(q(&mut c, "SET a 1").await, "+OK\r\n");
    let mut doomed = srv.raw().await;
    doomed
        .expect(&common::resp(&[b"AUTH", b"u", b"p"]), b"+OK\r\n")
        .await;
    // -@all applies to the very next command.
    q(&mut admin, "ACL SETUSER u -@all").await;
    assert_eq!(
        q(&mut c, "GET a").await,
        "-NOPERM this user has no permissions to run the 'get' command\r\n"
    );
    // off: no new logins, existing ones keep working (Redis 7.0).
    q(&mut admin, "ACL SETUSER u +@all off").await;
    assert_eq!(q(&mut c, "GET a").await, "$1\r\n1\r\n");
    let mut c2 = conn(&srv).await;
    assert_eq!(
        q(&mut c2, "AUTH u p").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    // DELUSER disconnects the user's clients.
    q(&mut admin, "ACL DELUSER u").await;
    let list = q(&mut admin, "CLIENT LIST").await;
    assert!(!list.contains("user=u "), "{list}");
    assert!(
        doomed.is_closed().await,
        "client of a deleted user is disconnected"
    );

    // Revoking a subscribed channel disconnects the subscriber.
    q(
        &mut admin,
        "ACL SETUSER ps on nopass +@all resetchannels &foo:1 &bar:*",
    )
    .await;
    let mut sub = conn(&srv).await;
    q(&mut sub, "AUTH ps x").await;
    q(&mut sub, "CLIENT SETNAME subscriber").await;
    q(&mut sub, "SUBSCRIBE foo:1").await;
    // Keeping it (plus more) pardons the subscriber.
    q(&mut admin, "ACL SETUSER ps &baz").await;
    assert!(q(&mut admin, "CLIENT LIST")
        .await
        .contains("name=subscriber"));
    q(&mut admin, "ACL SETUSER ps resetchannels &bar:*").await;
    assert!(!q(&mut admin, "CLIENT LIST")
        .await
        .contains("name=subscriber"));
}

#[tokio::test]
async fn requirepass_and_access_keys_are_default_user_passwords() {
    let srv = TestServer::start_with(&[
        "--requirepass",
        "rp",
        "--primary-access-key",
        "k1",
        "--secondary-access-key",
        "k2",
    ]);
    let mut c = conn(&srv).await;
    assert_eq!(
        q(&mut c, "GET x").await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        q(&mut c, "AUTH bad").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    for p in ["rp", "k1", "k2"] {
        assert_eq!(q(&mut c, &format!("AUTH {p}")).await, "+OK\r\n");
        assert_eq!(q(&mut c, &format!("AUTH default {p}")).await, "+OK\r\n");
    }
    let g = q(&mut c, "ACL GETUSER default").await;
    assert!(g.contains("$9\r\npasswords\r\n*3\r\n"), "{g}");
    // Rotating a key through CONFIG SET updates the default user.
    q(&mut c, "CONFIG SET secondary-access-key k3").await;
    let mut c2 = conn(&srv).await;
    assert_eq!(
        q(&mut c2, "AUTH k2").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(q(&mut c2, "AUTH k3").await, "+OK\r\n");
    // HELLO AUTH with an ACL user.
    q(&mut c, "ACL SETUSER h on >hp +@all ~*").await;
    let mut c3 = conn(&srv).await;
    let r = q(&mut c3, "HELLO 2 AUTH h hp").await;
    assert!(r.starts_with("*14\r\n"), "{r}");
    assert_eq!(q(&mut c3, "ACL WHOAMI").await, "$1\r\nh\r\n");
    // No password at all: AUTH <pass> is refused as in Redis.
    q(&mut c, "CONFIG SET requirepass ''").await;
    q(&mut c, "CONFIG SET primary-access-key ''").await;
    q(&mut c, "CONFIG SET secondary-access-key ''").await;
    let mut c4 = conn(&srv).await;
    assert_eq!(q(&mut c4, "GET x").await, "$-1\r\n");
    assert_eq!(
        q(&mut c4, "AUTH x").await,
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
}

#[tokio::test]
async fn aclfile_load_save_and_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(
        &path,
        "user default on nopass ~* &* +@all\nuser fileuser on >fp ~f* resetchannels -@all +get\n",
    )
    .expect("write");
    let p = path.to_string_lossy().into_owned();
    let srv = TestServer::start_with(&["--aclfile", &p]);
    let mut c = conn(&srv).await;
    assert_eq!(
        q(&mut c, "ACL USERS").await,
        "*2\r\n$7\r\ndefault\r\n$8\r\nfileuser\r\n"
    );
    q(&mut c, "ACL SETUSER newone on nopass +@read ~*").await;
    assert_eq!(q(&mut c, "ACL SAVE").await, "+OK\r\n");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        text.contains("user newone on nopass ~* resetchannels -@all +@read\n"),
        "{text}"
    );
    // LOAD replaces the users; a broken file changes nothing.
    std::fs::write(
        &path,
        "user default on nopass ~* &* +@all\nuser other on nopass +@all ~*\n",
    )
    .expect("write");
    let mut other = conn(&srv).await;
    q(&mut other, "AUTH newone x").await;
    assert_eq!(q(&mut c, "ACL LOAD").await, "+OK\r\n");
    assert_eq!(
        q(&mut c, "ACL USERS").await,
        "*2\r\n$7\r\ndefault\r\n$5\r\nother\r\n"
    );
    std::fs::write(&path, "user x +nosuch\n").expect("write");
    let e = q(&mut c, "ACL LOAD").await;
    assert!(e.starts_with("-ERR ") && e.contains("Unknown command or category name in ACL") && e.contains("WARNING: ACL errors detected, no change to the previously active ACL rules was performed"), "{e}");
    assert_eq!(
        q(&mut c, "ACL USERS").await,
        "*2\r\n$7\r\ndefault\r\n$5\r\nother\r\n"
    );
}

#[tokio::test]
async fn protected_mode_refuses_remote_clients_without_password() {
    // A non-loopback address of this machine, if any.
    let ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    let Some(ip) = ip else {
        eprintln!("no non-loopback address: protected mode covered by the unit test only");
        return;
    };
    // One wildcard listener: loopback and the interface share its port.
    let srv = TestServer::start_with(&["--bind", "0.0.0.0"]);
    let port = srv.addr.port();
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.write_all(b"PING\r\n").await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface.")
            && text.ends_with("NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n"),
        "{text}"
    );
    // Loopback is served; with a password remote clients are served too.
    let mut c = conn(&srv).await;
    assert_eq!(q(&mut c, "PING").await, "+PONG\r\n");
    q(&mut c, "CONFIG SET requirepass pw").await;
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .expect("connect");
    s.write_all(b"PING\r\n").await.expect("write");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("reply")
        .expect("read");
    assert_eq!(&buf[..n], b"-NOAUTH Authentication required.\r\n");
    // protected-mode no lets them in without a password.
    q(&mut c, "CONFIG SET requirepass ''").await;
    q(&mut c, "CONFIG SET protected-mode no").await;
    let mut s = tokio::net::TcpStream::connect((ip, port))
        .await
        .expect("connect");
    s.write_all(b"PING\r\n").await.expect("write");
    let n = s.read(&mut buf).await.expect("read");
    assert_eq!(&buf[..n], b"+PONG\r\n");
}

#[tokio::test]
async fn same_as_redis() {
    let srv = TestServer::start();
    let s = script(
        "
        ACL SETUSER u1 on >pw ~k* %R~r* %W~w* resetchannels &c* +@all -@dangerous
        ACL GETUSER u1
        ACL SETUSER u2 on nopass -@all +@hash ~* (+set ~s*) (+get %R~g*)
        ACL GETUSER u2
        ACL SETUSER u3 reset
        ACL GETUSER u3
        ACL SETUSER u4 on nopass +@all -@write ~*
        ACL SETUSER u5 nocommands +@string
        ACL LIST
        ACL USERS
        ACL CAT
        ACL DRYRUN u1 flushall
        ACL DRYRUN u1 get k1
        ACL DRYRUN u1 get x1
        ACL DRYRUN u1 set r1 v
        ACL DRYRUN u1 get w1
        ACL DRYRUN u1 set w1 v
        ACL DRYRUN u1 set w1 v get
        ACL DRYRUN u1 publish c1 m
        ACL DRYRUN u1 publish d1 m
        ACL DRYRUN u1 subscribe c1 d1
        ACL DRYRUN u1 hexists r1 f
        ACL DRYRUN u1 sort r1 store w1
        ACL DRYRUN u1 sort r1 store r2
        ACL DRYRUN u2 set s1 v
        ACL DRYRUN u2 set t1 v
        ACL DRYRUN u2 get g1
        ACL DRYRUN nobody get a
        ACL DRYRUN u1 nosuchcmd
        ACL SETUSER u1 +nosuch
        ACL SETUSER u1 -@nosuch
        ACL SETUSER u1 ~x
        ACL SETUSER u1 +select|0 +config|get
        ACL GETUSER u1
        ACL DELUSER default
        ACL DELUSER u3 u4 nobody
        ACL USERS
        AUTH u1 bad
        AUTH u1 pw
        ACL WHOAMI
        GET k1
        GET x1
        FLUSHALL
        PUBLISH d1 m
        CONFIG GET maxmemory
        SELECT 0
        AUTH u2 any
        SET s1 v
        SET t1 v
        GET t1
        DEL s1
        ",
    );
    same_replies(srv.addr.port(), &s).await;
}

#[tokio::test]
async fn user_directives_in_config() {
    let srv = TestServer::start_with(&[
        "--user",
        "default on nopass ~* &* +@all -flushdb",
        "--user",
        "carol on >cp ~c* +get",
    ]);
    let mut c = conn(&srv).await;
    assert_eq!(
        q(&mut c, "FLUSHDB").await,
        "-NOPERM this user has no permissions to run the 'flushdb' command\r\n"
    );
    assert_eq!(q(&mut c, "AUTH carol cp").await, "+OK\r\n");
    assert_eq!(q(&mut c, "GET c1").await, "$-1\r\n");
    assert_eq!(q(&mut c, "GET d1").await, NOPERM_KEYS);
}

/// Script and EXEC-time refusals, and the ACL LOG shape, byte for byte
/// against redis-server (two connections per server: admin and user).
#[tokio::test]
async fn script_and_exec_refusals_same_as_redis() {
    let srv = TestServer::start();
    let Some(reference) = common::diff::RedisRef::start() else {
        return;
    };
    let mut outs = Vec::new();
    for port in [srv.addr.port(), reference.port] {
        let mut admin = Conn::connect(port).await;
        let mut u = Conn::connect(port).await;
        let mut out = Vec::new();
        out.push(
            call(
                &mut admin,
                &[
                    "ACL",
                    "SETUSER",
                    "s",
                    "on",
                    "nopass",
                    "+@all",
                    "-del",
                    "~k*",
                    "resetchannels",
                    "&c",
                ],
            )
            .await,
        );
        out.push(call(&mut u, &["AUTH", "s", "x"]).await);
        out.push(
            call(
                &mut u,
                &["EVAL", "return redis.call('set','other','v')", "0"],
            )
            .await,
        );
        out.push(call(&mut u, &["EVAL", "return redis.call('del','k1')", "0"]).await);
        out.push(
            call(
                &mut u,
                &["EVAL", "return redis.call('publish','d','m')", "0"],
            )
            .await,
        );
        out.push(call(&mut u, &["EVAL", "return redis.pcall('del','k1')", "0"]).await);
        out.push(call(&mut u, &["MULTI"]).await);
        out.push(call(&mut u, &["SET", "k1", "v"]).await);
        out.push(call(&mut u, &["PUBLISH", "c", "m"]).await);
        out.push(call(&mut u, &["GET", "k1"]).await);
        out.push(
            call(
                &mut admin,
                &["ACL", "SETUSER", "s", "resetkeys", "~z*", "resetchannels"],
            )
            .await,
        );
        out.push(call(&mut u, &["EXEC"]).await);
        out.push(call(&mut u, &["MULTI"]).await);
        out.push(call(&mut u, &["GET", "k1"]).await);
        out.push(call(&mut u, &["EXEC"]).await);
        out.push(call(&mut admin, &["ACL", "LOG", "0"]).await);
        outs.push(out);
    }
    for (i, (a, b)) in outs[0].iter().zip(outs[1].iter()).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b),
            "reply {i} differs from redis-server"
        );
    }
}

/// CONFIG REWRITE stores the ACL users as `user` lines in place of the
/// old ones (as Redis does without an aclfile), so rules set at runtime
/// and rules from the file survive a restart; before, a rewrite turned
/// `user` lines into `# ???` comments and lost them.
#[tokio::test]
async fn config_rewrite_keeps_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nephemeral-port yes\nsave \"\"\ndir {}\n# users\nuser default on nopass ~* +@all -flushdb\nuser bob on nopass +ping\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (mut child, addr) = common::spawn_conf(&conf);
    let mut c = Conn::connect(addr.port()).await;
    assert_eq!(q(&mut c, "ACL DELUSER bob").await, ":1\r\n");
    assert_eq!(
        q(&mut c, "ACL SETUSER alice on >pw ~cache:* +get").await,
        "+OK\r\n"
    );
    assert_eq!(q(&mut c, "CONFIG REWRITE").await, "+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    let users: Vec<&str> = text.lines().filter(|l| l.starts_with("user ")).collect();
    assert_eq!(users.len(), 2, "{text}");
    assert!(
        users.iter().any(|l| l.starts_with("user alice on #")),
        "{text}"
    );
    assert!(
        users
            .iter()
            .any(|l| l.starts_with("user default on nopass") && l.ends_with("-flushdb")),
        "{text}"
    );
    assert!(!text.contains("???"), "{text}");
    let _ = child.kill();
    let _ = child.wait();

    let (mut child, addr) = common::spawn_conf(&conf);
    let mut c = Conn::connect(addr.port()).await;
    assert_eq!(
        q(&mut c, "FLUSHDB").await,
        "-NOPERM this user has no permissions to run the 'flushdb' command\r\n"
    );
    assert_eq!(q(&mut c, "AUTH alice pw").await, "+OK\r\n");
    assert_eq!(q(&mut c, "GET cache:1").await, "$-1\r\n");
    assert_eq!(q(&mut c, "GET other").await, NOPERM_KEYS);
    assert_eq!(
        q(&mut c, "AUTH bob x").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    let _ = child.kill();
    let _ = child.wait();
}
