//! The per-connection task: read → parse every complete command → dispatch
//! each → encode replies into one output buffer → one write per batch.
//!
//! Pipelining is the main throughput lever, so nothing here flushes per
//! command or allocates per command beyond the argument vector. Protocol
//! errors are answered with `-ERR Protocol error: …` and close the
//! connection; so does exceeding `client-query-buffer-limit`.

pub mod client;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::commands::dispatch;
use crate::connection::client::{Client, ClientInfo, ReplyMode};
use crate::protocol::codec::{Limits, RequestParser};
use crate::protocol::reply::encode;
use crate::protocol::Reply;
use crate::server::{Server, Stats};

const READ_CHUNK: usize = 16 * 1024;
/// `ClientInfo::qbuf_trim` value asking an idle connection to release its
/// query buffer (any other non-zero value is a capacity to shrink to).
pub const QBUF_RELEASE: usize = usize::MAX;
/// Flush mid-batch once this much output is pending.
const OUT_HIGH_WATER: usize = 1 << 20;
/// A reply buffer grown past this is given back once everything in it is
/// written (`DEBUG REPLYBUFFER RESIZING 0` keeps it, for tests that
/// measure clients' memory); a smaller one is kept for the next replies.
/// A batch flushed at [`OUT_HIGH_WATER`] leaves a buffer above it: an idle
/// client keeps no more than this (Redis's cron shrinks idle clients'
/// reply buffers likewise).
const KEEP_REPLY_BUFFER: usize = 256 * 1024;
/// See [`KEEP_REPLY_BUFFER`].
pub static REPLY_BUFFER_RESIZING: AtomicBool = AtomicBool::new(true);

/// Serves one client until it disconnects, is killed, or the server stops.
pub async fn serve<S>(srv: Arc<Server>, mut stream: S, info: Arc<ClientInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authenticated = !srv.auth_required();
    let mut client = Client::new(info.clone(), authenticated);
    client.user = Some(srv.acl.default_user());
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    // Grows with the first replies: an idle connection holds no 16 KB
    // it never used (the input buffer takes reads of up to READ_CHUNK).
    let mut out = BytesMut::new();
    let mut parser = RequestParser::new();

    info.qbuf_cap.store(inbuf.capacity(), Ordering::Relaxed);
    // Since when the pending replies exceed the soft limit of
    // client-output-buffer-limit normal.
    let mut over_soft_since: Option<tokio::time::Instant> = None;

    'conn: loop {
        if info.killed.load(Ordering::Relaxed) {
            break;
        }
        if info.qbuf_trim.load(Ordering::Relaxed) != 0 {
            trim_query_buffer(&info, &mut inbuf, &parser);
        }
        // A buffer released while idle (capacity 0) stays released until
        // input arrives (see `read_input`).
        let bulk_rest = parser.wanted(&inbuf);
        if inbuf.capacity() > 0 {
            let free = inbuf.capacity() - inbuf.len();
            if bulk_rest > 0 {
                // A big argument is arriving: room for exactly the rest of
                // it, as Redis's non-greedy growth (BytesMut::reserve may
                // double the allocation, which CLIENT LIST and
                // maxmemory-clients would count). A buffer kept for a fat
                // argument (below) first takes back the room its header
                // used, and then holds the argument in place.
                if free < bulk_rest && !inbuf.try_reclaim(bulk_rest) {
                    let mut b = BytesMut::with_capacity(inbuf.len() + bulk_rest.max(READ_CHUNK));
                    b.extend_from_slice(&inbuf);
                    inbuf = b;
                }
            } else if free < READ_CHUNK / 2 {
                inbuf.reserve(READ_CHUNK);
            }
        }
        // ---- pub/sub: also wake for pushed messages while idle ----
        // Biased, reading first: a task woken because its socket is
        // readable then polls nothing else. A kill is still seen at the
        // top of every turn (`killed`), and queued pushes also leave with
        // the next reply (`emit`), so no branch waits behind a busy reader
        // for longer than one batch.
        let woke = if !out.is_empty() {
            // Replies still pending (the client is not reading yet): they
            // go out as the socket takes them while its input keeps being
            // read and run, as Redis does. A client that writes a whole
            // pipeline before reading any reply (redis-py's and Jedis's
            // pipelines) would otherwise deadlock with us. The output
            // buffer is bounded by client-output-buffer-limit normal and
            // maxmemory-clients, checked as replies are added.
            let soft = srv.obuf_normal.soft_deadline(out.len());
            if soft.is_none() {
                over_soft_since = None;
            } else if over_soft_since.is_none() {
                over_soft_since = Some(tokio::time::Instant::now());
            }
            let deadline = over_soft_since.zip(soft).map(|(t, d)| t + d);
            info.omem.store(out.len(), Ordering::Relaxed);
            let r = tokio::select! {
                biased;
                r = write_while_reading(&srv, &mut stream, &mut inbuf, &mut out) => r,
                _ = info.kill.wait() => break,
                _ = sleep_until_opt(deadline) => {
                    tracing::warn!(
                        client = client.id,
                        bytes = out.len(),
                        "Client closed for overcoming of output buffer soft limit."
                    );
                    break;
                }
            };
            info.omem.store(out.len(), Ordering::Relaxed);
            match r {
                Err(_) => break,
                Ok(Some(n)) => Wake::Read(n),
                Ok(None) => {
                    over_soft_since = None;
                    shrink_reply_buffer(&mut out);
                    // Everything is written: the client's memory (INFO
                    // mem_clients_normal, CLIENT LIST) is what it holds
                    // now, not the peak of a pipeline's replies, also when
                    // it sends nothing more.
                    if !account_mem(&srv, &client, &out) {
                        break;
                    }
                    continue;
                }
            }
        } else {
            tokio::select! {
                biased;
                r = read_input(&mut stream, &mut inbuf) => match r {
                    Ok(n) => Wake::Read(n),
                    Err(_) => break,
                },
                _ = info.kill.wait() => break,
                _ = outbox_ready(client.pubsub.outbox.as_deref(), &info) => Wake::Outbox,
                _ = token_expiry(client.auth_deadline) => Wake::TokenExpired,
            }
        };
        let n = match woke {
            Wake::Read(n) => n,
            Wake::Outbox => {
                if client.pubsub.outbox.is_none() {
                    // Created for us by a tracking client redirecting here.
                    client.pubsub.outbox = info.outbox.lock().clone();
                }
                // Let the publishers that are ready run first: the write
                // below then carries every message they queue meanwhile
                // (one syscall per batch, as Redis's write per event-loop
                // pass, instead of one per message per subscriber).
                tokio::task::yield_now().await;
                if let Some(ob) = client.pubsub.outbox.clone() {
                    if !flush_outbox(&srv, &mut stream, &ob).await {
                        break;
                    }
                }
                continue;
            }
            Wake::TokenExpired => {
                token_expired(&srv, &mut client, &mut stream, &mut out).await;
                break;
            }
        };
        // ---- end pub/sub ----
        if n == 0 {
            // A client that closed its side may still read what it asked
            // for (`nc` sending a file, then shutdown(SHUT_WR)).
            if !out.is_empty() {
                let _ = send_out(&srv, &client, &mut stream, &mut out).await;
            }
            break;
        }
        srv.stats.hot.add(Stats::NET_INPUT, n as u64);
        srv.stats.hot.add(Stats::READS, 1);
        srv.busy_poll.on_read();
        // CLIENT LIST's qbuf while this batch runs (Redis keeps the batch
        // in the query buffer until it is processed).
        let queued = publish_qbuf(&info, &inbuf, &parser);
        info.qbuf_cap.store(inbuf.capacity(), Ordering::Relaxed);
        // The peak counts the rest of a big argument being received, so
        // the cron's resizing never shrinks the room reserved for it (as
        // Redis keeps bulklen + 2).
        let peak = queued + parser.wanted(&inbuf);
        if peak > info.qbuf_peak.load(Ordering::Relaxed) {
            info.qbuf_peak.store(peak, Ordering::Relaxed);
        }
        // maxmemory-clients: before running anything, as Redis checks
        // before each command.
        if !account_mem(&srv, &client, &out) {
            break;
        }
        client.now = dispatch::unix_ms();
        info.last_interaction.store(client.now, Ordering::Relaxed);

        // A parsed command handed back by the script thread (see below).
        let mut pending: Option<crate::scripting::ParseItem> = None;
        // BCAST invalidations of this batch's writes go out once, at its
        // end (Redis sends them once per event-loop turn).
        client.tracking.batching = srv.tracking.in_use();
        // The previous command of this batch ran without the connection
        // waiting since: the next one's time starts where its ended (see
        // dispatch::invoke).
        let mut chained = false;
        loop {
            // This command's handling waited (and so ends the chain).
            let mut waited = false;
            let limits = Limits {
                max_bulk_len: srv.config.proto_max_bulk_len(),
                authenticated: client.authenticated,
            };
            let item = match pending.take() {
                Some(it) => it,
                None => parser.next(&mut inbuf, limits),
            };
            match item {
                Ok(Some(mut argv)) => {
                    // Entra ID-style token logins end at the token's exp.
                    if client.auth_deadline != 0 && client.now >= client.auth_deadline {
                        token_expired(&srv, &mut client, &mut stream, &mut out).await;
                        break 'conn;
                    }
                    // A load that has not reached its first progress point:
                    // the command waits, as Redis serves no one then.
                    if srv.persist.holds_clients() {
                        waited = true;
                        if !hold_for_load(&srv, &mut client, &mut stream, &mut out).await {
                            break 'conn;
                        }
                    }
                    // CLIENT PAUSE: hold the command (after sending what
                    // earlier ones answered) until the pause lets it run.
                    if srv.pause.maybe_active() && dispatch::must_postpone(&srv, &client, &argv) {
                        waited = true;
                        if !hold_for_pause(
                            &srv,
                            &mut client,
                            &mut stream,
                            &mut out,
                            &mut inbuf,
                            &argv,
                        )
                        .await
                        {
                            break 'conn;
                        }
                    }
                    let script = crate::scripting::wants_script_thread(&client, &argv);
                    // (A script may wait for the script thread or its gate.)
                    waited |= script;
                    let mut reply = if !script {
                        if chained && !waited {
                            client.clock_mark = client.last_end;
                        }
                        let r = dispatch::execute(&srv, &mut client, &argv);
                        // (Left unused by a command refused before it ran.)
                        client.clock_mark = 0;
                        r
                    } else if let Some(r) =
                        crate::scripting::try_inline(&srv, &mut client, &argv, !inbuf.is_empty())
                            .await
                    {
                        // A known-fast script, run right here (see
                        // scripting::try_inline).
                        r
                    } else {
                        // Scripts run on the script thread, with the script
                        // commands that follow in the buffer (see
                        // scripting::offload_batch); this task waits
                        // without holding its worker.
                        let batch = crate::scripting::offload_batch(
                            srv.clone(),
                            client,
                            parser,
                            std::mem::take(&mut inbuf),
                            argv.clone(),
                        )
                        .await;
                        let Some(b) = batch else {
                            srv.unregister_client(&info);
                            return;
                        };
                        client = b.client;
                        parser = b.parser;
                        inbuf = b.inbuf;
                        pending = b.next;
                        let mut replies = b.replies;
                        let last = replies.pop().unwrap_or(Reply::Null);
                        for r in replies {
                            emit(&mut client, &r, &mut out);
                        }
                        last
                    };
                    if let Some((off, n, deadline)) = client.wait_repl.take() {
                        waited = true;
                        // WAIT with replicas: send what earlier commands
                        // produced, then wait for their acknowledgements.
                        if !flush_before_wait(&srv, &mut client, &mut stream, &mut out).await {
                            break 'conn;
                        }
                        reply = srv.repl.wait_acks(&info, off, n, deadline).await;
                    }
                    if client.blocking.waiter.is_some() {
                        waited = true;
                        // Blocked: send what earlier commands produced, then
                        // wait for this command's final reply.
                        if !flush_before_wait(&srv, &mut client, &mut stream, &mut out).await {
                            crate::commands::blocking::park_abort(&srv, &mut client);
                            break 'conn;
                        }
                        // A parked client holds no idle buffers (10k blocked
                        // clients must stay cheap); its argv would pin the
                        // whole read chunk (the waiter keeps its own copy).
                        argv = Vec::new();
                        out = BytesMut::new();
                        if inbuf.is_empty() {
                            inbuf = BytesMut::new();
                        }
                        match crate::commands::blocking::park(
                            &srv,
                            &mut client,
                            &mut stream,
                            &mut inbuf,
                        )
                        .await
                        {
                            Some(r) => reply = r,
                            None => {
                                if client.auth_deadline != 0
                                    && dispatch::unix_ms() >= client.auth_deadline
                                {
                                    token_expired(&srv, &mut client, &mut stream, &mut out).await;
                                }
                                break 'conn;
                            }
                        }
                    }
                    emit(&mut client, &reply, &mut out);
                    if (client.obuf_overflow || srv.obuf_normal.over_hard(out.len()))
                        && !subscribed(&client)
                    {
                        // client-output-buffer-limit normal: closed
                        // without the replies, as Redis does.
                        tracing::warn!(
                            client = client.id,
                            bytes = out.len(),
                            "Client scheduled to be closed ASAP for overcoming of output buffer limits."
                        );
                        break 'conn;
                    }
                    // With client eviction on, the reply counts at once
                    // (Redis updates a client's memory after each command),
                    // so a long batch of big replies is evicted as it grows
                    // rather than counted against maxmemory first.
                    if srv.client_mem.enabled() && !account_mem(&srv, &client, &out) {
                        break 'conn;
                    }
                    if client.close_after_reply {
                        end_tracking_batch(&srv, &mut client, &mut out);
                        break;
                    }
                    if client.sync.is_some() {
                        // SYNC/PSYNC: the connection becomes a replica link
                        // (below), with whatever it sent after the request.
                        break 'conn;
                    }
                    if out.len() >= OUT_HIGH_WATER {
                        waited = true;
                        if send_ready(&srv, &client, &mut stream, &mut out)
                            .await
                            .is_err()
                        {
                            break 'conn;
                        }
                    }
                    parser.recycle(argv);
                    chained = !waited;
                }
                Ok(None) => {
                    end_tracking_batch(&srv, &mut client, &mut out);
                    break;
                }
                Err(e) => {
                    end_tracking_batch(&srv, &mut client, &mut out);
                    tracing::debug!(client = client.id, error = %e.0, "protocol error");
                    srv.stats.count_error_code("ERR");
                    encode(
                        &Reply::Error(crate::protocol::CmdError::new(e.line())),
                        client.resp,
                        &mut out,
                    );
                    let _ = send_out(&srv, &client, &mut stream, &mut out).await;
                    break 'conn;
                }
            }
        }
        let pending = publish_qbuf(&info, &inbuf, &parser);
        // Consumed input leaves the buffer's start behind: take that room
        // back (no allocation while the buffer is not shared). A large
        // buffer is trimmed by the cron, as Redis's
        // clientsCronResizeQueryBuffer does, once its peak says so.
        // Published before the replies go out, so a client that saw its
        // reply sees this batch's buffer in CLIENT LIST.
        if inbuf.is_empty() && inbuf.capacity() > 0 && inbuf.capacity() < READ_CHUNK {
            inbuf.reserve(READ_CHUNK);
        }
        // A fat argument grew the buffer and left with its command. Once
        // it is consumed, an empty buffer gets room for another argument
        // that size, as Redis gives a client a fresh query buffer of
        // bulklen + 2 ("we'll likely see another fat argument"): the next
        // one is read in place. The cron trims that room to the recent
        // peak when smaller commands follow, and releases it when the
        // client goes idle.
        let fat_arg = parser.take_fat_arg();
        if inbuf.is_empty() && fat_arg > 0 {
            // Once nothing else holds the argument (a SET copies it into
            // the keyspace), its allocation is ours again: reclaimed, not
            // reallocated. Otherwise (queued in MULTI, propagated, sent to
            // subscribers) a new one.
            if !inbuf.try_reclaim(fat_arg) || inbuf.capacity() > 2 * fat_arg {
                inbuf = BytesMut::with_capacity(fat_arg);
            }
        } else if inbuf.is_empty() && inbuf.capacity() > 2 * READ_CHUNK {
            inbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        info.qbuf_cap.store(inbuf.capacity(), Ordering::Relaxed);
        if !account_mem(&srv, &client, &out) {
            break;
        }
        if pending as u64 > srv.config.client_query_buffer_limit() {
            tracing::warn!(
                client = client.id,
                bytes = pending,
                "closing client that reached max query buffer length"
            );
            let _ = send_out(&srv, &client, &mut stream, &mut out).await;
            break;
        }
        if client.close_after_reply {
            if !out.is_empty() {
                let _ = send_out(&srv, &client, &mut stream, &mut out).await;
            }
            break;
        }
        if !out.is_empty() {
            if send_ready(&srv, &client, &mut stream, &mut out)
                .await
                .is_err()
            {
                break;
            }
            // All written: CLIENT LIST's omem (last published while replies
            // were pending) and the client's memory drop to what it holds
            // now, and a big batch's room is given back. A client that
            // sends nothing more would otherwise keep the old figures.
            if out.is_empty()
                && (out.capacity() > KEEP_REPLY_BUFFER || info.omem.load(Ordering::Relaxed) != 0)
            {
                info.omem.store(0, Ordering::Relaxed);
                shrink_reply_buffer(&mut out);
                if !account_mem(&srv, &client, &out) {
                    break;
                }
            }
        }
    }
    if let Some(req) = client.sync.take() {
        if send_out(&srv, &client, &mut stream, &mut out).await.is_ok() {
            crate::server::replication::serve_replica(
                &srv,
                &mut stream,
                &mut client,
                req,
                std::mem::take(&mut inbuf),
                parser,
            )
            .await;
        }
    }
    let _ = stream.shutdown().await;
    crate::commands::transaction::discard_state(&srv, &mut client);
    srv.pubsub.remove_client(&mut client.pubsub, client.id);
    // The buffers go before the client's memory leaves the accounts, so
    // eviction never sees that memory in neither (see ClientMem::closing).
    drop((out, inbuf));
    srv.unregister_client(&info);
}

/// Publishes the client's memory for CLIENT LIST and `maxmemory-clients`
/// (a few relaxed loads; shared counters change only when the memory
/// does) and evicts clients if the total reached the limit. False if this
/// client was killed (evicted here or elsewhere): it closes at once, its
/// replies unsent.
fn account_mem(srv: &Server, client: &Client, out: &BytesMut) -> bool {
    let info = &client.info;
    client.publish_state_mem();
    let cap = crate::server::memory::usable_size(out.capacity());
    if info.rbuf_cap.load(Ordering::Relaxed) != cap {
        info.rbuf_cap.store(cap, Ordering::Relaxed);
    }
    let pushed = client.pubsub.outbox.as_ref().map_or(0, |o| o.pending());
    let grew = crate::server::pubsub::PUSHED_GROWTH.load(Ordering::Relaxed)
        && crate::server::pubsub::PUSHED_GROWTH.swap(false, Ordering::Relaxed);
    if srv
        .client_mem
        .update(info, info.mem_besides_pushed() + pushed)
        || grew
    {
        crate::server::limits::evict_clients(srv);
    }
    // Closed by client eviction (here or by another client): nothing more
    // runs, as Redis frees an evicted client at once.
    !info.killed.load(Ordering::Relaxed)
}

/// Ends a batch of pipelined commands for client tracking: sends the BCAST
/// invalidations it collected; the client's own follow its replies.
fn end_tracking_batch(srv: &Server, client: &mut Client, out: &mut BytesMut) {
    if !client.tracking.batching {
        return;
    }
    crate::server::tracking::end_batch(srv, client);
    drain_own_invalidations(client, out);
}

/// Appends the invalidations a client's own commands caused for it.
fn drain_own_invalidations(client: &mut Client, out: &mut BytesMut) {
    if !client.tracking.pending.is_empty() {
        out.extend_from_slice(&client.tracking.pending);
        client.tracking.pending.clear();
    }
}

/// Appends a command's reply to the output buffer, honouring CLIENT REPLY.
fn emit(client: &mut Client, reply: &Reply, out: &mut BytesMut) {
    // Pub/sub: messages this command queued for its own client (RESP3
    // PUBLISH to itself) precede its reply.
    if let Some(ob) = &client.pubsub.outbox {
        ob.drain_into(out);
    }
    match client.reply_mode {
        ReplyMode::On => encode(reply, client.resp, out),
        ReplyMode::Off => {}
        ReplyMode::SkipNext => client.reply_mode = ReplyMode::Skipping,
        ReplyMode::Skipping => client.reply_mode = ReplyMode::On,
    }
    // Tracking: invalidations the command caused for this client follow
    // its reply (also with replies switched off, as Redis pushes them).
    drain_own_invalidations(client, out);
}

/// Writes the replies in `out` once the writes they acknowledge are
/// durable (`appendfsync always`).
async fn send_out<S: AsyncWrite + Unpin>(
    srv: &Server,
    client: &Client,
    stream: &mut S,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    wait_durable(srv, client).await;
    client.info.omem.store(out.len(), Ordering::Relaxed);
    let r = tokio::select! {
        r = write_out(srv, stream, out) => r,
        // CLIENT KILL or eviction of a client that does not read.
        _ = client.info.kill.wait() => Err(std::io::Error::other("client killed")),
    };
    client.info.omem.store(0, Ordering::Relaxed);
    r
}

/// Writes as much of `out` as the socket takes now, without waiting for
/// it to take the rest (left for [`write_while_reading`]); first, as any
/// write, waits until the writes these replies acknowledge are durable.
async fn send_ready<S: AsyncWrite + Unpin>(
    srv: &Server,
    client: &Client,
    stream: &mut S,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    wait_durable(srv, client).await;
    std::future::poll_fn(|cx| match poll_write_out(srv, stream, out, cx) {
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
        _ => std::task::Poll::Ready(Ok(())),
    })
    .await
}

/// Writes `out` until the socket would block; Ready(Ok) once all of it
/// is written and flushed (a TLS session may hold written bytes).
fn poll_write_out<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    out: &mut BytesMut,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<()>> {
    use bytes::Buf;
    use std::task::Poll;
    let cap0 = out.capacity();
    while !out.is_empty() {
        match std::pin::Pin::new(&mut *stream).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            Poll::Ready(Ok(n)) => {
                srv.stats.hot.add(Stats::NET_OUTPUT, n as u64);
                srv.stats.hot.add(Stats::WRITES, 1);
                out.advance(n);
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    // The written bytes' room back at the front (no allocation): the
    // buffer keeps its capacity across replies, as CLIENT LIST and
    // maxmemory-clients account it.
    // (Asking for what it had at the start reclaims the whole allocation:
    // written bytes are given back only once nothing follows them.)
    out.clear();
    let _ = out.try_reclaim(cap0);
    std::pin::Pin::new(&mut *stream).poll_flush(cx)
}

/// Writes the pending replies while reading what the client sends:
/// Ok(None) once they are all written, Ok(Some(n)) when `n` bytes of input
/// arrived first (0: the client closed).
async fn write_while_reading<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    use std::future::Future;
    use std::task::Poll;
    std::future::poll_fn(|cx| {
        match poll_write_out(srv, stream, out, cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(Ok(None)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        if inbuf.capacity() == inbuf.len() {
            inbuf.reserve(READ_CHUNK);
        }
        // `read_buf`'s future keeps no state between polls: one made per
        // poll reads what is there or registers for readiness.
        let read = stream.read_buf(inbuf);
        tokio::pin!(read);
        match read.poll(cx) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(Some(n))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Before a client waits (blocked on keys, held by CLIENT PAUSE): ends the
/// tracking batch and sends what earlier commands answered. False on a
/// write error.
async fn flush_before_wait<S: AsyncWrite + Unpin>(
    srv: &Server,
    client: &mut Client,
    stream: &mut S,
    out: &mut BytesMut,
) -> bool {
    end_tracking_batch(srv, client, out);
    out.is_empty() || send_out(srv, client, stream, out).await.is_ok()
}

/// Waits while CLIENT PAUSE holds `argv` (replies already produced are
/// written first). Input that arrives meanwhile is kept for later, as in
/// a query buffer (within client-query-buffer-limit). False if the
/// connection must end (the peer left, a write error, CLIENT KILL).
async fn hold_for_pause<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    client: &mut Client,
    stream: &mut S,
    out: &mut BytesMut,
    inbuf: &mut BytesMut,
    argv: &[bytes::Bytes],
) -> bool {
    if !flush_before_wait(srv, client, stream, out).await {
        return false;
    }
    let held = &srv.pause.held;
    held.fetch_add(1, Ordering::Relaxed);
    let mut alive = true;
    loop {
        if client.info.killed.load(Ordering::Relaxed) {
            alive = false;
            break;
        }
        if inbuf.capacity() - inbuf.len() < READ_CHUNK / 2 {
            inbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            _ = srv.pause.wait_change(dispatch::unix_ms()) => {}
            _ = client.info.kill.wait() => {
                alive = false;
                break;
            }
            r = stream.read_buf(inbuf) => {
                if !matches!(r, Ok(n) if n > 0)
                    || inbuf.len() as u64 > srv.config.client_query_buffer_limit()
                {
                    alive = false;
                    break;
                }
            }
        }
        if !dispatch::must_postpone(srv, client, argv) {
            break;
        }
    }
    held.fetch_sub(1, Ordering::Relaxed);
    client.now = dispatch::unix_ms();
    alive
}

/// Holds a command while a load has not reached its first progress point
/// ([`crate::persistence::State::holds_clients`]), after sending what
/// earlier ones answered. False when the connection is to close.
async fn hold_for_load<S: AsyncWrite + Unpin>(
    srv: &Server,
    client: &mut Client,
    stream: &mut S,
    out: &mut BytesMut,
) -> bool {
    if !flush_before_wait(srv, client, stream, out).await {
        return false;
    }
    // Polled, from 1 ms up to 16 ms: many connections held through a
    // long first stretch (a large dataset emptied before a replica's load)
    // must not keep the workers busy waking them.
    let mut nap = 1;
    while srv.persist.holds_clients() {
        if client.info.killed.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(nap)).await;
        nap = (nap * 2).min(16);
    }
    client.now = dispatch::unix_ms();
    true
}

/// What woke an idle connection.
enum Wake {
    Read(usize),
    Outbox,
    TokenExpired,
}

/// Resolves at `deadline` (unix ms; never when 0): the expiry of the
/// Entra ID-style token the connection logged in with.
pub(crate) async fn token_expiry(deadline: u64) {
    if deadline == 0 {
        return std::future::pending().await;
    }
    let left = deadline.saturating_sub(dispatch::unix_ms());
    tokio::time::sleep(std::time::Duration::from_millis(left)).await
}

/// The token expired without a fresh AUTH: as Azure does, the client is
/// told so (after the replies already produced) and the connection closes.
async fn token_expired<S: AsyncWrite + Unpin>(
    srv: &Server,
    client: &mut Client,
    stream: &mut S,
    out: &mut BytesMut,
) {
    tracing::info!(
        client = client.id,
        user = %client.info.user.lock(),
        "closing a connection whose Entra token expired"
    );
    srv.metrics
        .count(crate::server::metrics::ErrorType::EntraTokenExpired);
    client.authenticated = false;
    encode(
        &Reply::Error(crate::protocol::CmdError::from_static(
            crate::entra::EXPIRED_ERROR,
        )),
        client.resp,
        out,
    );
    let _ = send_out(srv, client, stream, out).await;
}

/// Resolves when a subscribed client's message queue has frames, or, for a
/// client without one, when a tracking client created one for it.
/// Reads input into `inbuf`; a buffer released while idle (capacity 0)
/// waits for input through a small stack buffer, so an idle connection
/// holds no query buffer at all.
async fn read_input<S: AsyncRead + Unpin>(
    stream: &mut S,
    inbuf: &mut BytesMut,
) -> std::io::Result<usize> {
    if inbuf.capacity() == 0 {
        let mut first = [0u8; 512];
        let n = stream.read(&mut first).await?;
        inbuf.reserve(READ_CHUNK);
        inbuf.extend_from_slice(&first[..n]);
        return Ok(n);
    }
    stream.read_buf(inbuf).await
}

/// Publishes CLIENT LIST's qbuf (the read buffer and a partial command's
/// arguments already cut out of it) and those arguments' bytes for
/// tot-mem; returns qbuf.
fn publish_qbuf(info: &ClientInfo, inbuf: &BytesMut, parser: &RequestParser) -> usize {
    let args = parser.pending_bytes();
    info.qbuf.store(inbuf.len() + args, Ordering::Relaxed);
    info.qbuf_args.store(args, Ordering::Relaxed);
    inbuf.len() + args
}

/// Applies the cron's trim request (`ClientInfo::qbuf_trim`): an idle
/// connection with nothing queued gives its buffer up entirely
/// ([`QBUF_RELEASE`]); otherwise a buffer much larger than its recent
/// peak shrinks to the requested size, never below what it holds.
fn trim_query_buffer(info: &ClientInfo, inbuf: &mut BytesMut, parser: &RequestParser) {
    let target = info.qbuf_trim.swap(0, Ordering::Relaxed);
    if target == QBUF_RELEASE {
        if inbuf.is_empty() && parser.pending_bytes() == 0 {
            *inbuf = BytesMut::new();
        }
    } else if target != 0 && inbuf.capacity() > target {
        let mut b = BytesMut::with_capacity(target.max(inbuf.len()));
        b.extend_from_slice(inbuf);
        *inbuf = b;
    }
    info.qbuf_cap.store(inbuf.capacity(), Ordering::Relaxed);
}

async fn outbox_ready(ob: Option<&crate::server::pubsub::Outbox>, info: &ClientInfo) {
    match ob {
        Some(o) => o.ready.wait().await,
        None => info.push_wake.wait().await,
    }
}

/// Writes a subscriber's queued messages; false when the connection must
/// close (write error, or killed, e.g. for exceeding its output buffer
/// limit while the peer does not read).
async fn flush_outbox<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    ob: &crate::server::pubsub::Outbox,
) -> bool {
    while let Some(buf) = ob.take() {
        let n = buf.len();
        let ok = tokio::select! {
            r = stream.write_all(&buf) => r.is_ok(),
            _ = ob.info.kill.wait() => false,
        };
        if !ok || ob.info.killed.load(Ordering::Relaxed) {
            return false;
        }
        srv.stats.hot.add(Stats::NET_OUTPUT, n as u64);
        srv.stats.hot.add(Stats::WRITES, 1);
        // Freed before it stops counting as in transit.
        drop(buf);
        ob.written(n);
    }
    true
}

/// A reply to a write is sent only once the write is in the AOF file, as
/// Redis writes its AOF buffer before replying (a crash of the process then
/// loses nothing acknowledged): the connection writes the queued stream
/// through itself. With `appendfsync always` it waits until the write is
/// on disk (group commit: one fsync covers a whole batch).
async fn wait_durable(srv: &Server, client: &Client) {
    let off = client.durable_upto;
    if off == 0 || srv.feed.synced() >= off {
        return;
    }
    if srv.config.appendfsync() == crate::config::Appendfsync::Always {
        srv.feed.wait_synced(off).await;
    } else if srv.feed.written() < off {
        crate::persistence::aof::write_through(srv, off);
        if srv.feed.written() < off {
            // A rotation queued before our data: the writer's to do.
            srv.feed.wake_writer();
            srv.feed.wait_written(off).await;
        }
    }
}

/// Is the client subscribed (Pub/Sub output-buffer class, not normal)?
fn subscribed(client: &Client) -> bool {
    client.info.subscribed()
}

async fn write_out<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    out: &mut BytesMut,
) -> std::io::Result<()> {
    let soft = srv.obuf_normal.soft_deadline(out.len());
    let all = std::future::poll_fn(|cx| poll_write_out(srv, stream, out, cx));
    match soft {
        None => all.await?,
        // Output above the soft limit of client-output-buffer-limit
        // normal may stay pending only that long.
        Some(limit) => match tokio::time::timeout(limit, all).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::warn!(
                    bytes = out.len(),
                    "Client closed for overcoming of output buffer soft limit."
                );
                return Err(std::io::Error::other("output buffer soft limit"));
            }
        },
    }
    shrink_reply_buffer(out);
    Ok(())
}

/// A written-out reply buffer above [`KEEP_REPLY_BUFFER`] is given back
/// (unless `DEBUG REPLYBUFFER RESIZING 0`).
fn shrink_reply_buffer(out: &mut BytesMut) {
    if out.capacity() > KEEP_REPLY_BUFFER && REPLY_BUFFER_RESIZING.load(Ordering::Relaxed) {
        *out = BytesMut::new();
    }
}
