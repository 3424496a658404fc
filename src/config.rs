//! INTERIM configuration (replaced by the full registry module).
use parking_lot::RwLock;
use std::collections::HashMap;

#[derive(Debug)]
pub struct ConfigError(pub String);
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MaxmemoryPolicy {
    NoEviction,
    AllkeysLru,
}
impl MaxmemoryPolicy {
    pub fn is_lfu(self) -> bool {
        false
    }
    pub fn name(self) -> &'static str {
        "noeviction"
    }
}

pub struct Cli {
    pub version: bool,
}

pub struct Config {
    vals: RwLock<HashMap<String, String>>,
}

pub fn version_line() -> String {
    format!(
        "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc bits=64 build=0 cinnabar={}",
        env!("CARGO_PKG_VERSION")
    )
}

fn mem(s: &str) -> u64 {
    let l = s.to_ascii_lowercase();
    let (n, m) = if let Some(x) = l.strip_suffix("gb") {
        (x, 1u64 << 30)
    } else if let Some(x) = l.strip_suffix("mb") {
        (x, 1 << 20)
    } else if let Some(x) = l.strip_suffix("kb") {
        (x, 1 << 10)
    } else {
        (l.as_str(), 1)
    };
    n.parse::<u64>().unwrap_or(0) * m
}

pub fn load(args: Vec<String>) -> Result<(Cli, Config), ConfigError> {
    let mut m = HashMap::new();
    for (k, v) in [
        ("port", "6379"),
        ("bind", "127.0.0.1"),
        ("databases", "16"),
        ("shards", "16"),
        ("proto-max-bulk-len", "512mb"),
        ("client-query-buffer-limit", "1gb"),
        ("maxclients", "10000"),
        ("hz", "10"),
        ("maxmemory", "0"),
        ("loglevel", "notice"),
        ("logfile", ""),
        ("enable-debug-command", "no"),
        ("ephemeral-port", "no"),
        ("requirepass", ""),
        ("dir", "."),
    ] {
        m.insert(k.to_string(), v.to_string());
    }
    let mut cli = Cli { version: false };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-v" || a == "--version" {
            cli.version = true;
            i += 1;
            continue;
        }
        if let Some(name) = a.strip_prefix("--") {
            let v = args.get(i + 1).cloned().unwrap_or_default();
            if !m.contains_key(name) {
                return Err(ConfigError(format!(
                    "unknown setting '{name}' (command line)"
                )));
            }
            m.insert(name.to_string(), v);
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok((
        cli,
        Config {
            vals: RwLock::new(m),
        },
    ))
}

impl Config {
    fn g(&self, k: &str) -> String {
        self.vals.read().get(k).cloned().unwrap_or_default()
    }
    pub fn port(&self) -> u16 {
        self.g("port").parse().unwrap_or(6379)
    }
    pub fn bind(&self) -> Vec<String> {
        self.g("bind")
            .split_whitespace()
            .map(String::from)
            .collect()
    }
    pub fn databases(&self) -> usize {
        self.g("databases").parse().unwrap_or(16)
    }
    pub fn shards(&self) -> usize {
        self.g("shards").parse().unwrap_or(16)
    }
    pub fn proto_max_bulk_len(&self) -> u64 {
        mem(&self.g("proto-max-bulk-len"))
    }
    pub fn client_query_buffer_limit(&self) -> u64 {
        mem(&self.g("client-query-buffer-limit"))
    }
    pub fn maxclients(&self) -> u64 {
        self.g("maxclients").parse().unwrap_or(10000)
    }
    pub fn hz(&self) -> u64 {
        self.g("hz").parse().unwrap_or(10)
    }
    pub fn maxmemory(&self) -> u64 {
        mem(&self.g("maxmemory"))
    }
    pub fn maxmemory_policy(&self) -> MaxmemoryPolicy {
        MaxmemoryPolicy::NoEviction
    }
    pub fn requirepass(&self) -> Option<String> {
        Some(self.g("requirepass")).filter(|s| !s.is_empty())
    }
    pub fn enable_debug_command(&self) -> bool {
        self.g("enable-debug-command") == "yes"
    }
    pub fn ephemeral_port(&self) -> bool {
        self.g("ephemeral-port") == "yes"
    }
    pub fn loglevel(&self) -> String {
        self.g("loglevel")
    }
    pub fn logfile(&self) -> String {
        self.g("logfile")
    }
    pub fn log_format(&self) -> String {
        "text".into()
    }
    pub fn get_many(&self, pats: &[&[u8]]) -> Vec<(String, String)> {
        let v = self.vals.read();
        let mut out: Vec<(String, String)> = v
            .iter()
            .filter(|(k, _)| {
                pats.iter()
                    .any(|p| crate::util::glob::glob_match(p, k.as_bytes(), true))
            })
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == "maxmemory" {
                        mem(v).to_string()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        out.sort();
        out
    }
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<Vec<&'static str>, String> {
        let mut v = self.vals.write();
        for (k, _) in pairs {
            let k = String::from_utf8_lossy(k).to_lowercase();
            if !v.contains_key(&k) {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{k}'"
                ));
            }
        }
        for (k, val) in pairs {
            v.insert(
                String::from_utf8_lossy(k).to_lowercase(),
                String::from_utf8_lossy(val).into_owned(),
            );
        }
        Ok(vec![])
    }
    pub fn rewrite(&self) -> Result<(), String> {
        Err("ERR The server is running without a config file".into())
    }
}
