//! The `cinnabar` binary: parse the command line, load the configuration,
//! set up logging, build the runtime and run the server.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cli, config) = match cinnabar::config::load(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!(
                "*** FATAL CONFIG ERROR (Cinnabar {}) ***",
                env!("CARGO_PKG_VERSION")
            );
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if let Some(cinnabar::config::Command::DevCert { out, .. }) = &cli.command {
        match cinnabar::devcert::generate(out) {
            Ok(d) => print!("{}", cinnabar::devcert::instructions(&d)),
            Err(e) => {
                eprintln!("cinnabar dev-cert: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(cinnabar::config::Command::Cluster {
        shards,
        port,
        announce_ip,
        dir,
        config,
        tls,
        node_args,
        ..
    }) = &cli.command
    {
        std::process::exit(cinnabar::server::cluster_local::run(
            &cinnabar::server::cluster_local::Plan {
                shards: *shards,
                port: *port,
                announce_ip: announce_ip.clone(),
                dir: dir.clone(),
                config: config.clone(),
                tls: *tls,
                node_args: node_args.clone(),
            },
        ));
    }
    if let Some(cinnabar::config::Command::CheckAof {
        fix,
        truncate_to_timestamp,
        file,
        ..
    }) = &cli.command
    {
        std::process::exit(cinnabar::persistence::aof::check_aof_main(
            file,
            *fix,
            *truncate_to_timestamp,
        ));
    }
    if cli.help {
        print!("{}", cinnabar::config::Cli::help_text());
        return;
    }
    if cli.version {
        println!("{}", cinnabar::config::version_line());
        return;
    }
    if config.daemonize() {
        if let Err(e) = cinnabar::server::process::daemonize() {
            eprintln!("cannot daemonize: {e}");
            std::process::exit(1);
        }
    }
    if config.set_proc_title() {
        // Before any other thread starts (see server::proctitle).
        let argv0 = std::env::args().next().unwrap_or_default();
        cinnabar::server::proctitle::init(&argv0);
    }
    let _guard = cinnabar::server::logging::init(&config);
    let config = Arc::new(config);
    let workers = config.effective_worker_threads();
    cinnabar::server::logging::crash::big_signal_stack();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(workers)
        .on_thread_start(cinnabar::server::logging::crash::big_signal_stack)
        .on_thread_stop(cinnabar::server::logging::crash::drop_signal_stack)
        .enable_all();
    // Connections that became readable together run in the order the
    // kernel reported them, so commands sent on two connections one after
    // the other run in that order, as in Redis. Otherwise the last task
    // woken runs first (tokio's LIFO slot): with one worker, 2,945 of 3,000
    // such pairs ran reversed. With several workers they can still race.
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(cinnabar::server::run(config));
    // Bound the wait for tasks still parked at an await point.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Err(e) = result {
        tracing::error!("{e}");
        eprintln!("{e}");
        std::process::exit(1);
    }
}
